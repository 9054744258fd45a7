"""Bridge: the Fargate service that holds the charger WebSockets (``fargate_bridge/``).

The image is built from ``fargate_bridge/Dockerfile`` at deploy time (``cdk deploy`` needs
Docker; ``cdk synth`` only stages the build context). Each task opens one MQTT connection per
charger to IoT Core, signed with the task role (SigV4), so the role's IoT permissions are the
bridge's whole authority; the stack grants them.
"""

from __future__ import annotations

from pathlib import Path

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.nag import acknowledge
from infra.network import BRIDGE_PORT

BRIDGE_DOCKERFILE = "fargate_bridge/Dockerfile"
CONTAINER_NAME = "bridge"

#: EMF metrics of the bridge (namespace and dimension fixed by the bridge's contract).
BRIDGE_METRICS_NAMESPACE = "OCPP/Bridge"
BRIDGE_METRICS_DIMENSIONS = {"Service": "bridge"}

# The Docker build context is the repository root, so the Dockerfile can COPY our packages.
# Everything is excluded except what the image is built from: then a change to the Lambda code,
# the infrastructure or the tests leaves the image hash alone, and deploying it does not restart
# the bridge (and drop every charger connection). Docker ignore syntax: later '!' re-includes.
BRIDGE_IMAGE_EXCLUDE = (
    "*",
    "!fargate_bridge",
    "!ocpp_core",
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


def bridge_metric(
    metric_name: str, *, statistic: str = "Sum", period: cdk.Duration | None = None, label: str | None = None
) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=BRIDGE_METRICS_NAMESPACE,
        metric_name=metric_name,
        dimensions_map=BRIDGE_METRICS_DIMENSIONS,
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
            environment={
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
            },
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
            # Start new tasks before stopping old ones, so a deployment never leaves chargers
            # without a place to reconnect; roll back a task definition that does not come up.
            min_healthy_percent=100,
            max_healthy_percent=200,
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
        self.connected_chargers_per_task = bridge_metric("ConnectedChargers", statistic="Average")
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
            "the bridge has no secrets: it signs with its task role.",
        )
