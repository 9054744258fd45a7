"""Network: the VPC and the charger-facing Network Load Balancer (DESIGN §3).

The NLB passes TCP through to the bridge (or terminates TLS and passes the plain stream on):
WebSocket frames are never looked at on the way, and a connection lives as long as the charger
keeps it. The target group is always TCP, so a TLS listener and a plain one share it.

Security profile 3 (DESIGN §9) needs the charger's certificate at the bridge, so its listener
(:meth:`Network.add_profile3_listener`) is TCP passing TLS through, to a target group of its own
on the bridge's TLS port; its health check is the same liveness check on ``BRIDGE_PORT``.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.nag import acknowledge

#: the bridge's WebSocket port, also serving GET /health and GET /health/live (BRIDGE_PORT)
BRIDGE_PORT = 9000
#: the bridge's security-profile-3 port: TLS with client certificates, ended in the task (BRIDGE_TLS_PORT)
BRIDGE_TLS_PORT = 9443
#: The bridge's liveness path (``fargate_bridge.handshake.LIVE_PATH``, a test checks they agree):
#: 200 whenever the process serves, whatever the broker. ECS replaces a task whose load-balancer
#: health check fails (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/load-balancer-healthcheck.html),
#: so checking readiness (``/health``, 503 while IoT Core is unreachable) would turn a short IoT
#: Core or NAT hiccup into every charger socket of the fleet dropped. Broker reachability is the
#: ``BrokerReachable`` metric and its alarm instead (infra/monitoring.py).
LIVENESS_PATH = "/health/live"


class Network(Construct):
    """VPC (new, or an existing one looked up by id), NLB, listeners and the bridge target group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc_id: str | None,
        nat_gateways: int,
        plain_port: int | None,
        tls_port: int | None,
        certificate_arn: str | None,
        deregistration_delay: cdk.Duration,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self._deregistration_delay = deregistration_delay
        if plain_port is None and tls_port is None:
            raise ValueError("the NLB needs at least one listener")

        if vpc_id is not None:
            # Only when asked: a look-up needs credentials (its result is cached in cdk.context.json).
            self.vpc: ec2.IVpc = ec2.Vpc.from_lookup(self, "Vpc", vpc_id=vpc_id)
        else:
            self.vpc = self._new_vpc(nat_gateways, log_retention, removal_policy)

        # The bridge tasks: private subnets behind NAT when there are any, else public subnets
        # with a public IP (a NAT-less dev VPC), since they must reach IoT Core and ECR.
        if self.vpc.private_subnets:
            self.task_subnets = ec2.SubnetSelection(subnets=self.vpc.private_subnets)
            self.tasks_need_public_ip = False
        else:
            self.task_subnets = ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC)
            self.tasks_need_public_ip = True

        self.security_group = ec2.SecurityGroup(
            self,
            "NlbSecurityGroup",
            vpc=self.vpc,
            description="Charger-facing NLB: OCPP WebSocket listeners",
            allow_all_outbound=False,  # egress only to the bridge, added by the stack's wiring
        )
        listener_ports = [port for port in (plain_port, tls_port) if port is not None]
        for port in listener_ports:
            self.security_group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(port), f"chargers, port {port}")
        acknowledge(
            self.security_group,
            "AwsSolutions-EC23",
            "Chargers connect from anywhere on the internet (mobile networks); "
            "only the OCPP listener ports are open, and the bridge authenticates every charger.",
        )

        self.load_balancer = elbv2.NetworkLoadBalancer(
            self,
            "Nlb",
            vpc=self.vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_groups=[self.security_group],
            # Long-lived sockets: spread them over every task, not only those in the client's AZ.
            cross_zone_enabled=True,
        )
        acknowledge(
            self.load_balancer,
            "AwsSolutions-ELB2",
            "NLB access logs record only TLS handshakes; connections and frames are logged "
            "by the bridge, per charger, in CloudWatch Logs.",
        )

        self.target_group = elbv2.NetworkTargetGroup(
            self,
            "BridgeTargets",
            vpc=self.vpc,
            port=BRIDGE_PORT,
            protocol=elbv2.Protocol.TCP,  # TLS ends at the listener; the bridge speaks plain ws
            target_type=elbv2.TargetType.IP,  # Fargate tasks (awsvpc)
            # The bridge sees the charger's address (logs, per-IP limits) without PROXY protocol.
            preserve_client_ip=True,
            deregistration_delay=deregistration_delay,
            health_check=_liveness_check("traffic-port"),
        )

        self.plain_listener: elbv2.NetworkListener | None = None
        self.tls_listener: elbv2.NetworkListener | None = None
        if plain_port is not None:
            self.plain_listener = self.load_balancer.add_listener(
                "Plain",
                port=plain_port,
                protocol=elbv2.Protocol.TCP,
                default_target_groups=[self.target_group],
            )
        if tls_port is not None:
            if certificate_arn is None:
                raise ValueError("a TLS listener needs a certificate")
            # The TLS listener's idle timeout is fixed at 350 s; the bridge pings every 30-60 s.
            self.tls_listener = self.load_balancer.add_listener(
                "Tls",
                port=tls_port,
                protocol=elbv2.Protocol.TLS,
                certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
                ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
                default_target_groups=[self.target_group],
            )

    def add_profile3_listener(self, *, port: int) -> elbv2.NetworkTargetGroup:
        """A TCP listener on ``port`` passing TLS through to the bridge's ``BRIDGE_TLS_PORT``.

        Returns its target group, for the bridge service to register in. The NLB's TCP idle
        timeout (350 s by default) is longer than the bridge's ping interval.
        """
        self.security_group.add_ingress_rule(
            ec2.Peer.any_ipv4(), ec2.Port.tcp(port), f"chargers, port {port} (security profile 3)"
        )
        self.profile3_target_group = elbv2.NetworkTargetGroup(
            self,
            "BridgeTlsTargets",
            vpc=self.vpc,
            port=BRIDGE_TLS_PORT,
            protocol=elbv2.Protocol.TCP,  # TLS passes through: the bridge ends it and reads the client certificate
            target_type=elbv2.TargetType.IP,
            preserve_client_ip=True,
            deregistration_delay=self._deregistration_delay,
            # The TLS port answers only TLS: check the process's liveness on its plain port.
            health_check=_liveness_check(str(BRIDGE_PORT)),
        )
        self.profile3_listener = self.load_balancer.add_listener(
            "Profile3",
            port=port,
            protocol=elbv2.Protocol.TCP,
            default_target_groups=[self.profile3_target_group],
        )
        return self.profile3_target_group

    def _new_vpc(
        self, nat_gateways: int, log_retention: logs.RetentionDays, removal_policy: cdk.RemovalPolicy
    ) -> ec2.Vpc:
        subnets = [ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24)]
        if nat_gateways > 0:
            subnets.append(
                ec2.SubnetConfiguration(name="bridge", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=20)
            )
        vpc = ec2.Vpc(
            self,
            "Vpc",
            # Two AZs: the NLB and the tasks survive one AZ; Fn::GetAZs keeps synthesis look-up free.
            max_azs=2,
            nat_gateways=nat_gateways,
            subnet_configuration=subnets,
            # DynamoDB traffic stays off the NAT gateways (free gateway endpoint).
            gateway_endpoints={
                "DynamoDb": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB)
            },
        )
        flow_log_group = logs.LogGroup(self, "FlowLogs", retention=log_retention, removal_policy=removal_policy)
        # Rejected traffic only: what an operator needs to debug a security group, at a fraction of the cost.
        vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_log_group),
            traffic_type=ec2.FlowLogTrafficType.REJECT,
        )
        return vpc


def _liveness_check(port: str) -> elbv2.HealthCheck:
    return elbv2.HealthCheck(
        protocol=elbv2.Protocol.HTTP,
        path=LIVENESS_PATH,
        port=port,
        healthy_http_codes="200",
        interval=cdk.Duration.seconds(10),
        timeout=cdk.Duration.seconds(5),
        healthy_threshold_count=2,
        unhealthy_threshold_count=2,
    )
