"""Bridge: the Fargate service that holds the charger WebSockets (``fargate_bridge/``).

The image is built from ``fargate_bridge/Dockerfile`` at deploy time (``cdk deploy`` needs
Docker; ``cdk synth`` only stages the build context). Each task opens one MQTT connection per
charger to IoT Core, signed with the task role (SigV4), so the role's IoT permissions are the
bridge's whole authority; the stack grants them.

The task's environment carries the stage's topic root, MQTT client-id prefix, Basic Ingest rule
and stage name (DESIGN §8), and a CONNECT rate derived from the account's quota (StageConfig).
Deployments replace a batch of tasks at a time (``maximumPercent`` above 100, minimum healthy
100), so only that share of the chargers reconnects at once, paced by the surviving tasks.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.nag import acknowledge
from infra.network import BRIDGE_PORT, BRIDGE_TLS_PORT, Network
from ocpp_core.topics import TOPIC_ROOT_ENV, Topics

BRIDGE_DOCKERFILE = "fargate_bridge/Dockerfile"
CONTAINER_NAME = "bridge"

# The bridge's contract (fargate_bridge/settings.py ``Env``, fargate_bridge/metrics.py); spelled
# here so that synthesis does not import the bridge's runtime, and checked equal by
# tests/infra/test_contract.py.
#: EMF metrics of the bridge: namespace, and the dimensions of every document.
BRIDGE_METRICS_NAMESPACE = "OCPP/Bridge"
BRIDGE_SERVICE = "bridge"
CONNECTED_CHARGERS = "ConnectedChargers"
#: 1 while the task reaches its broker, 0 when not (a gauge per task).
BROKER_REACHABLE = "BrokerReachable"
ENV_TOPIC_ROOT = TOPIC_ROOT_ENV
ENV_CLIENT_ID_PREFIX = "BRIDGE_CLIENT_ID_PREFIX"
ENV_BASIC_INGEST_RULE = "BRIDGE_BASIC_INGEST_RULE"
ENV_STAGE = "OCPP_STAGE"
ENV_MQTT_CONNECT_RATE = "BRIDGE_MQTT_CONNECT_RATE"
ENV_MQTT_CONNECT_BURST = "BRIDGE_MQTT_CONNECT_BURST"
#: Security profile 3 (DESIGN §9): the listener, its server certificate and key, the client CA.
ENV_TLS_PORT = "BRIDGE_TLS_PORT"
ENV_TLS_PORT_CERT = "BRIDGE_TLS_PORT_CERT"
ENV_TLS_PORT_KEY = "BRIDGE_TLS_PORT_KEY"
ENV_CLIENT_CA = "BRIDGE_CLIENT_CA"
#: The JSON fields of the profile-3 secret, each injected into the variable it names.
PROFILE3_SECRET_FIELDS = {ENV_TLS_PORT_CERT: "cert", ENV_TLS_PORT_KEY: "key", ENV_CLIENT_CA: "ca"}

# The Docker build context is the repository root, so the Dockerfile can COPY our packages.
# Everything is excluded except what the image is built from: then a change to the Lambda code,
# the infrastructure or the tests leaves the image hash alone, and deploying it does not restart
# the bridge (and drop every charger connection). Docker ignore syntax: later '!' re-includes.
BRIDGE_IMAGE_EXCLUDE = (
    "*",
    "!fargate_bridge",
    "!ocpp_core",
    "!process_gc",
    "!pyproject.toml",
    "!README.md",
    "!LICENSE",
    "**/__pycache__",
    "**/*.pyc",
    "**/.pytest_cache",
    "**/.mypy_cache",
)

#: File descriptors per task: one socket per charger plus one MQTT connection per charger.
NOFILE_LIMIT = 65536


def bridge_dimensions(stage: str) -> dict[str, str]:
    """The dimensions of the bridge's EMF metrics: without ``Stage`` two stages would mix."""
    return {"Service": BRIDGE_SERVICE, "Stage": stage}


def bridge_metric(
    metric_name: str,
    *,
    stage: str,
    statistic: str = "Sum",
    period: cdk.Duration | None = None,
    label: str | None = None,
) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=BRIDGE_METRICS_NAMESPACE,
        metric_name=metric_name,
        dimensions_map=bridge_dimensions(stage),
        statistic=statistic,
        period=period or cdk.Duration.minutes(1),
        label=label,
    )


class BridgeService(Construct):
    """ECS cluster, task definition and Fargate service of the bridge, with its scaling."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        repo_root: Path,
        stage: str,
        topics: Topics,
        client_id_prefix: str,
        basic_ingest_rule: str | None,
        mqtt_connect_rate: float,
        mqtt_connect_burst: int,
        deployment_max_percent: int,
        vpc: ec2.IVpc,
        task_subnets: ec2.SubnetSelection,
        assign_public_ip: bool,
        iot_endpoint_host: str,
        table_name: str,
        unknown_chargers: str,
        require_password: bool,
        cpu: int,
        memory_mib: int,
        architecture: str,
        min_tasks: int,
        max_tasks: int,
        chargers_per_task: int,
        max_connections_per_task: int,
        cpu_target_percent: int,
        drain_timeout: cdk.Duration,
        stop_timeout: cdk.Duration,
        log_level: str,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        arm = architecture == "arm64"
        environment = {
            "BRIDGE_HOST": "0.0.0.0",  # inside the task's own network namespace (awsvpc)
            "BRIDGE_PORT": str(BRIDGE_PORT),
            "BRIDGE_MQTT_AUTH": "sigv4",
            "BRIDGE_IOT_ENDPOINT": iot_endpoint_host,
            "AWS_REGION": cdk.Stack.of(self).region,
            "BRIDGE_REGISTRY_TABLE": table_name,
            "BRIDGE_UNKNOWN_CHARGERS": unknown_chargers,
            "BRIDGE_REQUIRE_PASSWORD": "true" if require_password else "false",
            "BRIDGE_MAX_CONNECTIONS": str(max_connections_per_task),
            "BRIDGE_DRAIN_TIMEOUT": str(int(drain_timeout.to_seconds())),
            "BRIDGE_METRICS_NAMESPACE": BRIDGE_METRICS_NAMESPACE,
            "BRIDGE_LOG_LEVEL": log_level,
            # DESIGN §8: this stage's topics and MQTT sessions only.
            ENV_STAGE: stage,
            ENV_TOPIC_ROOT: topics.root,
            ENV_CLIENT_ID_PREFIX: client_id_prefix,
            # IoT Core's CONNECT quota is per account: every task of every stage reconnecting at
            # once stays within the budget (StageConfig.mqtt_connect_rate_per_task).
            ENV_MQTT_CONNECT_RATE: f"{mqtt_connect_rate:g}",
            ENV_MQTT_CONNECT_BURST: str(mqtt_connect_burst),
        }
        if basic_ingest_rule is not None:
            environment[ENV_BASIC_INGEST_RULE] = basic_ingest_rule

        self.cluster = ecs.Cluster(
            self,
            "Cluster",
            vpc=vpc,
            # Task-level CPU/memory and running task counts on the dashboard.
            container_insights_v2=ecs.ContainerInsights.ENABLED,
        )

        self.task_definition = ecs.FargateTaskDefinition(
            self,
            "Task",
            cpu=cpu,
            memory_limit_mib=memory_mib,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.ARM64 if arm else ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        self.task_role = self.task_definition.task_role

        self.log_group = logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy)
        image = ecs.ContainerImage.from_asset(
            str(repo_root),
            file=BRIDGE_DOCKERFILE,
            exclude=list(BRIDGE_IMAGE_EXCLUDE),
            # Build for the task's architecture whatever the deploying machine is.
            platform=ecr_assets.Platform.LINUX_ARM64 if arm else ecr_assets.Platform.LINUX_AMD64,
        )
        self.container = self.task_definition.add_container(
            CONTAINER_NAME,
            image=image,
            essential=True,
            port_mappings=[ecs.PortMapping(container_port=BRIDGE_PORT, protocol=ecs.Protocol.TCP)],
            environment=environment,
            # No container health check: ECS ignores the image's Docker HEALTHCHECK
            # (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_HealthCheck.html) and
            # the NLB's liveness check already has ECS replace a task that stops serving.
            # SIGTERM, then this long to close every socket with 1001 before SIGKILL.
            stop_timeout=stop_timeout,
            ulimits=[ecs.Ulimit(name=ecs.UlimitName.NOFILE, soft_limit=NOFILE_LIMIT, hard_limit=NOFILE_LIMIT)],
            logging=ecs.LogDrivers.aws_logs(
                stream_prefix="bridge",
                log_group=self.log_group,
                # Never block the event loop on CloudWatch: drop log lines rather than frames.
                mode=ecs.AwsLogDriverMode.NON_BLOCKING,
                max_buffer_size=cdk.Size.mebibytes(25),
            ),
        )

        execution_role = self.task_definition.execution_role
        assert execution_role is not None  # created with the image asset's pull permissions
        acknowledge(
            execution_role,
            "AwsSolutions-IAM5[Resource::*]",
            "ecr:GetAuthorizationToken, needed to pull the image, supports no resource-level permission; "
            "the layer-pull actions are scoped to the asset repository.",
        )

        self.security_group = ec2.SecurityGroup(
            self,
            "SecurityGroup",
            vpc=vpc,
            description="OCPP bridge tasks: WebSocket from the NLB, HTTPS out to IoT Core and AWS APIs",
            allow_all_outbound=True,
        )
        self.service = ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=min_tasks,
            vpc_subnets=task_subnets,
            assign_public_ip=assign_public_ip,
            security_groups=[self.security_group],
            # Start a batch of new tasks before stopping as many old ones, so a deployment never
            # leaves chargers without a place to reconnect, and only that batch's chargers
            # reconnect at once (paced by the CONNECT rate above); roll back a task definition
            # that does not come up.
            min_healthy_percent=100,
            max_healthy_percent=deployment_max_percent,
            circuit_breaker=ecs.DeploymentCircuitBreaker(enable=True, rollback=True),
            health_check_grace_period=cdk.Duration.seconds(60),
            platform_version=ecs.FargatePlatformVersion.LATEST,
            propagate_tags=ecs.PropagatedTagSource.SERVICE,
        )

        self.scaling = self.service.auto_scale_task_count(min_capacity=min_tasks, max_capacity=max_tasks)
        # Scaling in closes a task's sockets (its chargers reconnect elsewhere): do it slowly.
        scale_in_cooldown = cdk.Duration.minutes(15)
        scale_out_cooldown = cdk.Duration.minutes(2)
        self.scaling.scale_on_cpu_utilization(
            "Cpu",
            target_utilization_percent=cpu_target_percent,
            scale_in_cooldown=scale_in_cooldown,
            scale_out_cooldown=scale_out_cooldown,
        )
        # The average over tasks of the per-task gauge: chargers per task, whatever the count.
        self.connected_chargers_per_task = bridge_metric(CONNECTED_CHARGERS, stage=stage, statistic="Average")
        self.scaling.scale_to_track_custom_metric(
            "ConnectedChargers",
            metric=self.connected_chargers_per_task,
            target_value=chargers_per_task,
            scale_in_cooldown=scale_in_cooldown,
            scale_out_cooldown=scale_out_cooldown,
        )

        acknowledge(
            self.task_definition,
            "AwsSolutions-ECS2",
            "The environment holds only non-secret settings (endpoint, table name, limits); "
            "the bridge signs to AWS with its task role, and its one secret (the profile-3 TLS key) "
            "comes from Secrets Manager as an ECS secret, never a plain environment value.",
        )

    def serve_profile3(self, network: Network, *, secret_arn: str, nlb_port: int) -> None:
        """Security profile 3: the bridge's TLS port behind an NLB TCP (passthrough) listener.

        The secret (JSON ``cert``, ``key``, ``ca``) reaches the container as three ECS secrets, the
        PEM as the variables' values (the bridge accepts a PEM or a file in each); ECS reads it
        with the execution role, which this grants. A secret encrypted with a customer managed
        KMS key also needs ``kms:Decrypt`` on that key for the execution role.
        """
        secret = secretsmanager.Secret.from_secret_complete_arn(self, "Profile3Secret", secret_arn)
        self.container.add_port_mappings(ecs.PortMapping(container_port=BRIDGE_TLS_PORT, protocol=ecs.Protocol.TCP))
        self.container.add_environment(ENV_TLS_PORT, str(BRIDGE_TLS_PORT))
        for variable, json_field in PROFILE3_SECRET_FIELDS.items():
            self.container.add_secret(variable, ecs.Secret.from_secrets_manager(secret, json_field))
        target_group = network.add_profile3_listener(port=nlb_port)
        target_group.add_target(
            self.service.load_balancer_target(container_name=CONTAINER_NAME, container_port=BRIDGE_TLS_PORT)
        )
        self.service.connections.allow_from(
            network.security_group, ec2.Port.tcp(BRIDGE_TLS_PORT), "NLB to bridge: security profile 3 (TLS passthrough)"
        )
