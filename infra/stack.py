"""The CSMS stack: composes the constructs, wires them together and grants each the least it needs.

One stage per stack; several stages may share an account and region (DESIGN §8). Everything
account-wide is the stage's own: the topic root and MQTT client-id prefix (from which the IoT
policy, the rule SQL, the bridge's and the Lambdas' environment all derive), the rule names, the
alarm and dashboard names, and the ``Stage`` dimension of the EMF metrics.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.api import OperatorApi
from infra.bridge_service import BRIDGE_DOCKERFILE, BridgeService
from infra.bundling import current_python, extension_packages, lambda_code
from infra.config import ConfigError, StageConfig
from infra.events import DomainEvents
from infra.files import FilesBucket
from infra.iot_endpoint import IotDataEndpoint
from infra.monitoring import CSMS_METRICS_NAMESPACE, Monitoring
from infra.nag import acknowledge
from infra.network import BRIDGE_PORT, Network
from infra.processing import Processing
from infra.state import StateTable
from lambdas import settings as lambda_settings
from lambdas.rules import MESSAGE_RULE_NAME, rules_for
from ocpp_core import keys
from ocpp_core.topics import basic_ingest_topic

TABLE_DATA_ACTIONS = [
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:Query",
    "dynamodb:Scan",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
]

#: the path prefix chargers are told to use; the bridge takes the last segment as the charger id
CHARGER_PATH_PREFIX = "/ocpp/"

#: Past this, a full task's reconnect after an outage is slow enough to warn at synth.
RECONNECT_WARNING_S = 600


# CloudWatch Logs retention in days -> CDK's enum (whose Python values are names, not days).
RETENTION_BY_DAYS: dict[int, logs.RetentionDays] = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
    1096: logs.RetentionDays.THREE_YEARS,
    1827: logs.RetentionDays.FIVE_YEARS,
    2192: logs.RetentionDays.SIX_YEARS,
    2557: logs.RetentionDays.SEVEN_YEARS,
    2922: logs.RetentionDays.EIGHT_YEARS,
    3288: logs.RetentionDays.NINE_YEARS,
    3653: logs.RetentionDays.TEN_YEARS,
}


def stack_name(stage: str) -> str:
    return f"OcppCsms-{stage}"


class CsmsStack(cdk.Stack):
    """Everything one stage needs: network, bridge, IoT rules, Lambdas, table, API, monitoring."""

    def __init__(
        self, scope: Construct, construct_id: str, *, config: StageConfig, repo_root: Path, **kwargs: Any
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config
        retention = RETENTION_BY_DAYS[config.log_retention_days]
        removal = cdk.RemovalPolicy.RETAIN if config.retain_data else cdk.RemovalPolicy.DESTROY
        # Found before any asset is staged, so a missing extension package fails as bad config.
        extra_packages = extension_packages(repo_root, config.extensions)
        python = current_python(config.lambda_python)
        if not python.bytecode:
            cdk.Annotations.of(self).add_warning_v2(
                "ocpp:lambda-sources-only",
                f"The Lambda runtime is {python.runtime_name} but this is Python "
                f"{sys.version_info[0]}.{sys.version_info[1]}: the bundle ships sources only "
                "(every cold start compiles them); synthesize with that Python to ship bytecode.",
            )
        topics = config.topics
        rules = rules_for(topics, config.stage)
        message_rule = next(rule for rule in rules if rule.base_name == MESSAGE_RULE_NAME)
        if not (repo_root / BRIDGE_DOCKERFILE).is_file():
            raise ConfigError(f"invalid repo_root={repo_root}: no {BRIDGE_DOCKERFILE} to build the bridge image from")

        # --- state and endpoint -------------------------------------------------------------
        self.state = StateTable(
            self, "State", deletion_protection=config.deletion_protection, retain=config.retain_data
        )
        table = self.state.table
        self.iot_endpoint = IotDataEndpoint(
            self, "IotEndpoint", host=config.iot_endpoint, log_retention=retention, removal_policy=removal
        )

        # The chargers' CA (DESIGN §9): an asymmetric KMS key, so the signing key never leaves KMS
        # (docs/deployment.md: why KMS rather than ACM Private CA, and what each costs).
        self.ca_key = kms.Key(
            self,
            "ChargerCaKey",
            key_spec=kms.KeySpec.ECC_NIST_P256,
            key_usage=kms.KeyUsage.SIGN_VERIFY,
            description=f"OCPP CSMS {config.stage}: the chargers' certificate authority (CertificateSigned)",
            removal_policy=cdk.RemovalPolicy.RETAIN if config.retain_data else cdk.RemovalPolicy.DESTROY,
        )

        # --- processing -----------------------------------------------------------------------
        environment = {
            "OCPP_TABLE_NAME": table.table_name,
            "OCPP_UNKNOWN_CHARGERS": config.unknown_chargers,
            "OCPP_HEARTBEAT_INTERVAL": str(config.heartbeat_interval),
            "OCPP_CALL_TIMEOUT": str(config.call_timeout),
            "IOT_DATA_ENDPOINT": self.iot_endpoint.url,
            "POWERTOOLS_METRICS_NAMESPACE": CSMS_METRICS_NAMESPACE,
            lambda_settings.TOPIC_ROOT: topics.root,
            lambda_settings.STAGE: config.stage,
            lambda_settings.CA_KMS_KEY: self.ca_key.key_arn,
            "POWERTOOLS_LOG_LEVEL": config.log_level,
            "LOG_LEVEL": config.log_level,
            # Without X-Ray the Powertools tracer must not try to reach the daemon.
            "POWERTOOLS_TRACE_DISABLED": "false" if config.xray else "true",
        }
        if config.extensions:
            environment["OCPP_EXTENSIONS"] = ",".join(config.extensions)
        self.processing = Processing(
            self,
            "Processing",
            code=lambda_code(repo_root=repo_root, python=python, extra_packages=extra_packages),
            runtime=python.runtime,
            environment=environment,
            rules=rules,
            processor_memory_mib=config.processor_memory_mib,
            processor_reserved_concurrency=config.processor_reserved_concurrency,
            xray=config.xray,
            log_retention=retention,
            removal_policy=removal,
        )
        processing = self.processing

        # --- events and files (DESIGN §11) ---------------------------------------------------------
        self.events = DomainEvents(
            self,
            "Events",
            stage=config.stage,
            table=table,
            publisher=processing.events_publisher,
            archive_days=config.events_archive_days,
            example_queue=config.events_queue,
        )
        self.files = FilesBucket(
            self, "Files", stage=config.stage, receiver=processing.files_received, removal_policy=removal
        )
        # Nothing else gets the bucket (the files-received function learns all it records from the
        # notification itself); the uploads function may put under uploads/ only.
        self.files.grant_api(processing.operator_api)
        self.files.grant_uploads(processing.uploads)

        # --- network and bridge -----------------------------------------------------------------
        self.network = Network(
            self,
            "Network",
            vpc_id=config.vpc_id,
            nat_gateways=config.nat_gateways,
            plain_port=config.plain_port if config.plain_listener_enabled else None,
            tls_port=config.tls_port if config.tls else None,
            certificate_arn=config.certificate_arn,
            deregistration_delay=cdk.Duration.seconds(config.deregistration_delay_seconds),
            log_retention=retention,
            removal_policy=removal,
        )
        self.bridge = BridgeService(
            self,
            "Bridge",
            repo_root=repo_root,
            stage=config.stage,
            topics=topics,
            client_id_prefix=config.client_id_prefix,
            basic_ingest_rule=message_rule.name if config.basic_ingest else None,
            mqtt_connect_rate=config.mqtt_connect_rate_per_task,
            mqtt_connect_burst=config.mqtt_connect_burst_per_task,
            deployment_max_percent=config.deployment_max_percent,
            vpc=self.network.vpc,
            task_subnets=self.network.task_subnets,
            assign_public_ip=self.network.tasks_need_public_ip,
            iot_endpoint_host=self.iot_endpoint.host,
            table_name=table.table_name,
            unknown_chargers=config.bridge_unknown_chargers,
            require_password=config.require_password,
            cpu=config.bridge_cpu,
            memory_mib=config.bridge_memory_mib,
            architecture=config.bridge_architecture,
            min_tasks=config.min_tasks,
            max_tasks=config.max_tasks,
            chargers_per_task=config.chargers_per_task,
            max_connections_per_task=config.max_connections_per_task,
            cpu_target_percent=config.cpu_target_percent,
            drain_timeout=cdk.Duration.seconds(config.drain_timeout_seconds),
            stop_timeout=cdk.Duration.seconds(config.stop_timeout_seconds),
            log_level=config.log_level,
            log_retention=retention,
            removal_policy=removal,
        )
        self.network.target_group.add_target(
            self.bridge.service.load_balancer_target(container_name="bridge", container_port=BRIDGE_PORT)
        )
        if config.profile3:
            # Security profile 3: TLS passthrough to the bridge, which checks client certificates.
            assert config.profile3_secret_arn is not None
            self.bridge.serve_profile3(
                self.network, secret_arn=config.profile3_secret_arn, nlb_port=config.profile3_port
            )
        # Chargers and the NLB's health checks reach the tasks only through the NLB's security group.
        self.bridge.service.connections.allow_from(
            self.network.security_group, ec2.Port.tcp(BRIDGE_PORT), "NLB to bridge: WebSocket and /health/live"
        )
        if config.full_task_reconnect_seconds > RECONNECT_WARNING_S:
            cdk.Annotations.of(self).add_warning_v2(
                "ocpp:slow-reconnect",
                f"Each bridge task may open {config.mqtt_connect_rate_per_task:g} MQTT connections/s "
                f"(IoT Core quota {config.iot_connect_quota}/s x {config.iot_connect_budget_percent}% "
                f"/ {config.stages_per_account} stages / {config.max_tasks} tasks): a task with "
                f"{config.chargers_per_task} chargers takes {config.full_task_reconnect_seconds:.0f} s to "
                "reconnect them after an outage. Ask for a higher 'Connect requests per second per account' "
                "(Service Quotas, AWS IoT Core) and set iot_connect_quota.",
            )

        # --- API ----------------------------------------------------------------------------------
        self.api = OperatorApi(
            self,
            "OperatorApi",
            handler=processing.operator_api,
            uploads_handler=processing.uploads,
            api_name=f"ocpp-csms-{config.stage}",
            log_retention=retention,
            removal_policy=removal,
        )

        # --- grants -------------------------------------------------------------------------------
        # What the DynamoDB adapter calls (lambdas/adapters/dynamo.py), on the table alone; only
        # the operator API (listing chargers and sites) and the outbox timer (overdue calls,
        # chargers with queued calls) query the one index they need.
        table_data = iam.PolicyStatement(actions=TABLE_DATA_ACTIONS, resources=[table.table_arn])
        table_users = (
            processing.message_processor,
            processing.lifecycle,
            processing.operator_api,
            processing.timer,
            processing.files_received,
            processing.uploads,
        )
        for function in table_users:
            function.add_to_role_policy(table_data)
        list_index = iam.PolicyStatement(
            actions=["dynamodb:Query"], resources=[f"{table.table_arn}/index/{keys.LIST_INDEX}"]
        )
        for function in (processing.operator_api, processing.timer):
            function.add_to_role_policy(list_index)
        # Signing certificates (SignCertificate) and serving the CA (GET /ca): Sign and GetPublicKey
        # on the CA key alone, for the two functions that do it.
        ca_use = iam.PolicyStatement(actions=["kms:Sign", "kms:GetPublicKey"], resources=[self.ca_key.key_arn])
        for function in (processing.message_processor, processing.operator_api):
            function.add_to_role_policy(ca_use)
        # The events publisher reads a charger's item when one of its connections ends (is it still
        # the current one? lambdas/events_publisher.py): GetItem only.
        processing.events_publisher.add_to_role_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[table.table_arn])
        )
        # The bridge only reads a charger's registry item (password hash, protocol) at handshake.
        self.bridge.task_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["dynamodb:GetItem"], resources=[table.table_arn])
        )

        # Replies, operator calls and the outbox's queued calls (sent by the processor, the timer, the
        # lifecycle function when a charger connects, the API when a site changes): only this stage's
        # out topics.
        out_topics = topics.iam_resource("out")
        publish_replies = iam.PolicyStatement(actions=["iot:Publish"], resources=[self.iot_arn(out_topics)])
        senders = (processing.message_processor, processing.operator_api, processing.timer, processing.lifecycle)
        for function in senders:
            function.add_to_role_policy(publish_replies)
            acknowledge(
                function,
                _iot_finding(self, out_topics),
                f"Replies and CSMS calls go to the charger's own topic {topics.root}/<id>/out; the id is "
                "data, so the charger level is a wildcard. Only iot:Publish, only on this stage's out topics.",
            )

        # The bridge's MQTT connections are signed by its task role, one client per charger, with
        # this stage's client-id prefix. What each permission is for: CONNECT (the will is on the
        # events topic, which IoT Core checks at CONNECT too), publishing frames (through Basic
        # Ingest straight to the message rule, or on the plain inbound topic) and presence events,
        # subscribing to and receiving the replies. One role holds every charger's connection, so
        # the policy cannot bind a topic to a client id (lambdas/rules.py says why the topic is
        # trusted anyway).
        bridge_role = self.bridge.task_role
        clients = f"client/{config.client_id_prefix}*"
        inbound = (
            "topic/" + basic_ingest_topic(message_rule.name, f"{topics.root}/*/in")
            if config.basic_ingest
            else topics.iam_resource("in")
        )
        events = topics.iam_resource("events")
        out_filter = topics.iam_resource("out", filter_=True)
        self.bridge_iot_resources = (clients, inbound, events, out_topics, out_filter)
        bridge_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["iot:Connect"], resources=[self.iot_arn(clients)])
        )
        bridge_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["iot:Publish"], resources=[self.iot_arn(inbound), self.iot_arn(events)])
        )
        bridge_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["iot:Subscribe"], resources=[self.iot_arn(out_filter)])
        )
        bridge_role.add_to_principal_policy(
            iam.PolicyStatement(actions=["iot:Receive"], resources=[self.iot_arn(out_topics)])
        )
        for resource in self.bridge_iot_resources:
            acknowledge(
                bridge_role,
                _iot_finding(self, resource),
                f"The bridge connects one MQTT client per charger (client id {config.client_id_prefix}<id>) and "
                f"uses only that charger's {topics.root}/<id>/in|out|events topics; charger ids are data, "
                "so that level is a wildcard.",
            )

        # --- monitoring ---------------------------------------------------------------------------
        dead_letter_queues = {
            "FailedInvocations": processing.failure_queue,
            "RuleErrors": processing.rule_error_queue,
            "EventsStreamFailures": self.events.failure_queue,
        }
        if self.events.example_dead_letter_queue is not None:
            dead_letter_queues["TransactionEndedDeadLetters"] = self.events.example_dead_letter_queue
        self.monitoring = Monitoring(
            self,
            "Monitoring",
            stage=config.stage,
            alarm_email=config.alarm_email,
            functions=processing.functions,
            message_processor=processing.message_processor,
            rule_names=processing.rule_names,
            dead_letter_queues=dead_letter_queues,
            load_balancer=self.network.load_balancer,
            target_group=self.network.target_group,
            service=self.bridge.service,
            table=table,
            http_api=self.api.http_api,
            connected_drop_std_devs=config.connected_drop_std_devs,
            stream_consumer=processing.events_publisher,
        )

        # --- outputs ------------------------------------------------------------------------------
        cdk.CfnOutput(
            self,
            "ChargerEndpointUrl",
            value=self.charger_url(),
            description="Chargers connect to this URL followed by their id",
        )
        cdk.CfnOutput(
            self,
            "NlbDnsName",
            value=self.network.load_balancer.load_balancer_dns_name,
            description="Point your domain's CNAME (or alias) record here",
        )
        cdk.CfnOutput(self, "OperatorApiUrl", value=self.api.url, description="Operator API (SigV4, execute-api)")
        cdk.CfnOutput(
            self,
            "OperatorApiInvokeArn",
            value=self.api.http_api.arn_for_execute_api(),
            description="Resource for execute-api:Invoke in the operators' IAM policy",
        )
        cdk.CfnOutput(
            self,
            "DashboardUrl",
            value=cdk.Fn.join(
                "",
                [
                    "https://",
                    self.region,
                    ".console.aws.amazon.com/cloudwatch/home?region=",
                    self.region,
                    "#dashboards:name=",
                    self.monitoring.dashboard.dashboard_name,
                ],
            ),
            description="CloudWatch dashboard",
        )
        cdk.CfnOutput(self, "TableName", value=table.table_name)
        cdk.CfnOutput(self, "EventBusName", value=self.events.bus.event_bus_name, description="Domain events")
        cdk.CfnOutput(self, "FilesBucketName", value=self.files.bucket_name, description="Uploads and firmware")
        if self.events.example_queue is not None:
            cdk.CfnOutput(
                self,
                "TransactionEndedQueueUrl",
                value=self.events.example_queue.queue_url,
                description="The example rule's queue (events_queue=true)",
            )
        cdk.CfnOutput(self, "AlarmTopicArn", value=self.monitoring.topic.topic_arn)

    # ------------------------------------------------------------------------------------------
    def iot_arn(self, resource: str) -> str:
        return self.format_arn(service="iot", resource=resource, arn_format=cdk.ArnFormat.NO_RESOURCE_NAME)

    def charger_url(self) -> str:
        config = self.config
        if config.tls:
            port = "" if config.tls_port == 443 else f":{config.tls_port}"
            return f"wss://{config.domain_name}{port}{CHARGER_PATH_PREFIX}"
        port = "" if config.plain_port == 80 else f":{config.plain_port}"
        return cdk.Fn.join("", ["ws://", self.network.load_balancer.load_balancer_dns_name, port + CHARGER_PATH_PREFIX])


def _iot_finding(stack: cdk.Stack, resource: str) -> str:
    """The cdk-nag finding id of a wildcard IoT resource (it spells unresolved parts as <AWS::...>)."""
    region = "<AWS::Region>" if cdk.Token.is_unresolved(stack.region) else stack.region
    account = "<AWS::AccountId>" if cdk.Token.is_unresolved(stack.account) else stack.account
    return f"AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:iot:{region}:{account}:{resource}]"
