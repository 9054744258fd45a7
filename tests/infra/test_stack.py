"""The dev stage as ``cdk synth`` builds it: synthesized once for the module, asserted by meaning."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Capture, Match

from infra.api import ROUTES, UPLOAD_ROUTES
from infra.bundling import current_python
from infra.processing import ASYNC_MAX_EVENT_AGE, OPERATOR_API_HANDLER, UPLOADS_HANDLER
from lambdas.rules import AWS_IOT_SQL_VERSION, RULES, rules_for
from ocpp_core import keys
from ocpp_core.topics import Topics

from .support import (
    Synthesized,
    bridge_environment,
    dashboard_metrics,
    grants,
    iot_arn,
    nag_violations,
    policy_statements,
    role_of,
    synthesize,
    wildcard_findings,
)

HANDLERS = {rule.handler for rule in RULES} | {OPERATOR_API_HANDLER}
#: the dev stage's own topics and rules (DESIGN §8): never the local stack's ``ocpp``
DEV_TOPICS = Topics("ocpp-dev")
DEV_RULES = rules_for(DEV_TOPICS, "dev")


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize({"stage": "dev"}, tmp_path_factory.mktemp("cdk-dev"))


def functions_by_handler(synth: Synthesized) -> dict[str, tuple[str, dict[str, Any]]]:
    found = {}
    for logical_id, resource in synth.resources("AWS::Lambda::Function").items():
        handler = resource["Properties"].get("Handler")
        if handler in HANDLERS:
            found[handler] = (logical_id, resource["Properties"])
    assert set(found) == HANDLERS
    return found


# --- state --------------------------------------------------------------------------------------


def test_one_on_demand_table_with_the_shared_keys_ttl_and_pitr(synth: Synthesized) -> None:
    synth.template.resource_count_is("AWS::DynamoDB::Table", 1)
    synth.template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "Properties": {
                "KeySchema": [
                    {"AttributeName": keys.PK, "KeyType": "HASH"},
                    {"AttributeName": keys.SK, "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": Match.array_with(
                    [{"AttributeName": keys.PK, "AttributeType": "S"}, {"AttributeName": keys.SK, "AttributeType": "S"}]
                ),
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {"AttributeName": keys.TTL_ATTRIBUTE, "Enabled": True},
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "DeletionProtectionEnabled": False,
                # GET /chargers pages through a sparse keys-only index instead of scanning
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": keys.LIST_INDEX,
                        "KeySchema": [
                            {"AttributeName": keys.LIST_PK, "KeyType": "HASH"},
                            {"AttributeName": keys.LIST_SK, "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "KEYS_ONLY"},
                    }
                ],
            },
            # dev: `cdk destroy` removes it; prod keeps it (see the TLS/prod variant)
            "DeletionPolicy": "Delete",
        },
    )


# --- processing ---------------------------------------------------------------------------------


def test_lambdas_run_the_synthesizing_python_on_arm64_with_the_settings_they_read(synth: Synthesized) -> None:
    runtime = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    assert current_python().runtime_name == runtime  # this interpreter is a Lambda runtime: bytecode ships
    for handler, (_, props) in functions_by_handler(synth).items():
        assert props["Runtime"] == runtime
        assert props["Architectures"] == ["arm64"]
        env = props["Environment"]["Variables"]
        assert env["OCPP_TABLE_NAME"] == {"Ref": next(iter(synth.resources("AWS::DynamoDB::Table")))}
        assert env["OCPP_UNKNOWN_CHARGERS"] == "reject"
        assert env["OCPP_HEARTBEAT_INTERVAL"] == "300"
        assert env["OCPP_CALL_TIMEOUT"] == "30"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "OCPP/CSMS"
        # the stage's topics (replies) and the Stage dimension of the handlers' metrics
        assert env["OCPP_TOPIC_ROOT"] == "ocpp-dev"
        assert env["OCPP_STAGE"] == "dev"
        assert env["POWERTOOLS_SERVICE_NAME"].startswith("ocpp-")
        assert env["POWERTOOLS_LOG_LEVEL"] == env["LOG_LEVEL"] == "INFO"
        assert "OCPP_EXTENSIONS" not in env  # none configured
        # https:// + the DescribeEndpoint custom resource's answer
        join = env["IOT_DATA_ENDPOINT"]["Fn::Join"]
        assert join[1][0] == "https://" and join[1][1]["Fn::GetAtt"][1] == "endpointAddress"
        assert "LoggingConfig" in props  # a log group of ours, with retention
        assert handler != OPERATOR_API_HANDLER or props["Timeout"] < 30  # below API Gateway's 30 s


def test_all_functions_share_one_locally_bundled_asset(synth: Synthesized) -> None:
    keys_ = {json.dumps(props["Code"]["S3Key"]) for _, props in functions_by_handler(synth).values()}
    assert len(keys_) == 1
    asset = synth.assembly_dir / ("asset." + json.loads(keys_.pop()).removesuffix(".zip"))
    assert (asset / "lambdas" / "rules.py").is_file()
    assert (asset / "ocpp_core" / "keys.py").is_file()
    assert (asset / "aws_lambda_powertools").is_dir() and (asset / "fastjsonschema").is_dir()
    assert (asset / "ocpp").is_dir() and (asset / "jmespath").is_dir() and (asset / "typing_extensions.py").is_file()
    assert not (asset / "boto3").exists() and not (asset / "tests").exists()
    # Bytecode is compiled into the bundle (read-only file system at run time), never copied from
    # this machine: every .pyc is an unchecked-hash one (flags == 1) for a .py that travels with it.
    pycs = list(asset.rglob("*.pyc"))
    assert asset / "ocpp_core" / "__pycache__" / f"processor.{sys.implementation.cache_tag}.pyc" in pycs
    for pyc in pycs:
        assert int.from_bytes(pyc.read_bytes()[4:8], "little") == 1, pyc
        assert (pyc.parent.parent / (pyc.name.split(".", 1)[0] + ".py")).is_file(), pyc


def test_log_groups_have_a_retention(synth: Synthesized) -> None:
    for resource in synth.resources("AWS::Logs::LogGroup").values():
        assert resource["Properties"]["RetentionInDays"] == 14  # cdk.json dev


def test_iot_invoked_functions_do_not_retry_and_send_failures_to_a_dlq(synth: Synthesized) -> None:
    by_handler = functions_by_handler(synth)
    for rule in RULES:
        logical_id, _ = by_handler[rule.handler]
        synth.template.has_resource_properties(
            "AWS::Lambda::EventInvokeConfig",
            {
                "FunctionName": {"Ref": logical_id},
                "MaximumRetryAttempts": 0,
                "MaximumEventAgeInSeconds": int(ASYNC_MAX_EVENT_AGE.to_seconds()),
                "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [Match.any_value(), "Arn"]}}},
            },
        )
    queue = Capture()
    synth.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {"DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [queue, "Arn"]}}}},
    )
    assert synth.json["Resources"][queue.as_string()]["Type"] == "AWS::SQS::Queue"


def test_reserved_concurrency_is_unset_unless_configured(synth: Synthesized) -> None:
    for _, props in functions_by_handler(synth).values():
        assert "ReservedConcurrentExecutions" not in props


def test_one_topic_rule_per_rule_definition_with_the_shared_sql(synth: Synthesized) -> None:
    by_handler = functions_by_handler(synth)
    rules = synth.resources("AWS::IoT::TopicRule")
    assert len(rules) == len(DEV_RULES)
    for rule in DEV_RULES:
        sql = Capture()
        target = Capture()
        error_queue = Capture()
        synth.template.has_resource_properties(
            "AWS::IoT::TopicRule",
            {
                "RuleName": rule.name,
                "TopicRulePayload": {
                    "Sql": sql,
                    "AwsIotSqlVersion": AWS_IOT_SQL_VERSION,
                    "RuleDisabled": False,
                    "Actions": [{"Lambda": {"FunctionArn": {"Fn::GetAtt": [target, "Arn"]}}}],
                    "ErrorAction": {"Sqs": {"QueueUrl": {"Ref": error_queue}, "RoleArn": Match.any_value()}},
                },
            },
        )
        # exactly the string lambdas.rules builds (and the local rule emulator evaluates), on the
        # stage's own topics: the default root ocpp is the local stack's
        assert sql.as_string() == rule.sql
        assert f"FROM '{DEV_TOPICS.root}/+/" in rule.sql and rule.name.startswith("dev_")
        assert target.as_string() == by_handler[rule.handler][0]
        assert synth.json["Resources"][error_queue.as_string()]["Type"] == "AWS::SQS::Queue"


def test_only_iot_core_may_invoke_the_rule_functions_and_only_from_its_rule(synth: Synthesized) -> None:
    by_handler = functions_by_handler(synth)
    rule_ids = {
        props["Properties"]["RuleName"]: logical_id
        for logical_id, props in synth.resources("AWS::IoT::TopicRule").items()
    }
    for rule in DEV_RULES:
        synth.template.has_resource_properties(
            "AWS::Lambda::Permission",
            {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Fn::GetAtt": [by_handler[rule.handler][0], "Arn"]},
                "Principal": "iot.amazonaws.com",
                "SourceArn": {"Fn::GetAtt": [rule_ids[rule.name], "Arn"]},
                "SourceAccount": {"Ref": "AWS::AccountId"},
            },
        )


# --- network and bridge ---------------------------------------------------------------------


def test_nlb_plain_tcp_listener_to_a_tcp_target_group_checked_on_liveness(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::LoadBalancer", {"Type": "network", "Scheme": "internet-facing"}
    )
    listeners = synth.resources("AWS::ElasticLoadBalancingV2::Listener")
    assert [props["Properties"]["Protocol"] for props in listeners.values()] == ["TCP"]  # no TLS without a cert
    synth.template.has_resource_properties("AWS::ElasticLoadBalancingV2::Listener", {"Port": 80, "Protocol": "TCP"})
    attributes = Capture()
    synth.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "Protocol": "TCP",
            "Port": 9000,
            "TargetType": "ip",
            "HealthCheckProtocol": "HTTP",
            # liveness, not readiness: ECS replaces tasks failing it, broker or not (issue 12)
            "HealthCheckPath": "/health/live",
            "HealthCheckPort": "traffic-port",
            "TargetGroupAttributes": attributes,
        },
    )
    attrs = {a["Key"]: a["Value"] for a in attributes.as_array()}
    assert attrs["preserve_client_ip.enabled"] == "true"
    drain = int(bridge_environment(synth)["BRIDGE_DRAIN_TIMEOUT"])
    assert drain <= int(attrs["deregistration_delay.timeout_seconds"]) <= 120


def bridge_container(synth: Synthesized) -> dict[str, Any]:
    (task,) = synth.resources("AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    return container


def test_bridge_container_drains_within_its_stop_timeout_with_many_file_descriptors(synth: Synthesized) -> None:
    container = bridge_container(synth)
    assert container["StopTimeout"] == 60
    assert int(bridge_environment(synth)["BRIDGE_DRAIN_TIMEOUT"]) < container["StopTimeout"]
    assert container["Ulimits"] == [{"Name": "nofile", "SoftLimit": 65536, "HardLimit": 65536}]
    assert container["PortMappings"] == [{"ContainerPort": 9000, "Protocol": "tcp"}]
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    # ECS ignores an image's Docker HEALTHCHECK; the NLB's liveness check is the one that counts
    assert "HealthCheck" not in container


def test_bridge_environment_matches_its_contract(synth: Synthesized) -> None:
    env = bridge_environment(synth)
    assert env["BRIDGE_HOST"] == "0.0.0.0"
    assert env["BRIDGE_PORT"] == "9000"
    assert env["BRIDGE_MQTT_AUTH"] == "sigv4"
    assert env["BRIDGE_IOT_ENDPOINT"]["Fn::GetAtt"][1] == "endpointAddress"  # host name, no scheme
    assert env["AWS_REGION"] == {"Ref": "AWS::Region"}
    assert env["BRIDGE_REGISTRY_TABLE"] == {"Ref": next(iter(synth.resources("AWS::DynamoDB::Table")))}
    assert env["BRIDGE_UNKNOWN_CHARGERS"] == "reject"
    assert env["BRIDGE_REQUIRE_PASSWORD"] == "true"
    assert env["BRIDGE_MAX_CONNECTIONS"] == "6000"
    assert env["BRIDGE_METRICS_NAMESPACE"] == "OCPP/Bridge"
    # DESIGN §8: this stage's topics, MQTT sessions and metrics only
    assert env["OCPP_STAGE"] == "dev"
    assert env["OCPP_TOPIC_ROOT"] == "ocpp-dev"
    assert env["BRIDGE_CLIENT_ID_PREFIX"] == "ocpp-dev."
    # inbound frames through Basic Ingest, to the stage's message rule
    assert env["BRIDGE_BASIC_INGEST_RULE"] == "dev_ocpp_inbound_messages" == DEV_RULES[0].name
    # 500 CONNECT/s x 80 % / 2 stages / max_tasks=4: every task reconnecting at once stays within it
    assert float(env["BRIDGE_MQTT_CONNECT_RATE"]) == 50.0
    assert int(env["BRIDGE_MQTT_CONNECT_BURST"]) == 50


def test_the_bridge_reads_the_environment_the_stack_gives_it(synth: Synthesized) -> None:
    """The task's environment parses with the bridge's own Settings (tokens given stand-in values)."""
    from fargate_bridge.settings import Settings as BridgeSettings

    env = {k: v if isinstance(v, str) else "stand-in" for k, v in bridge_environment(synth).items()}
    env["BRIDGE_IOT_ENDPOINT"] = "abc-ats.iot.eu-west-1.amazonaws.com"
    env["AWS_REGION"] = "eu-west-1"
    settings = BridgeSettings.from_env(env)
    assert settings.topic_root == "ocpp-dev"
    assert settings.client_id_prefix == "ocpp-dev."
    assert settings.basic_ingest_rule == "dev_ocpp_inbound_messages"
    assert settings.stage == "dev"
    assert settings.mqtt_connect_rate == 50.0 and settings.mqtt_connect_burst == 50
    assert settings.port == 9000 and settings.plain_port is None  # TLS ends at the NLB


def test_the_lambdas_read_the_environment_the_stack_gives_them(synth: Synthesized) -> None:
    from lambdas.settings import Settings as LambdaSettings

    for _, props in functions_by_handler(synth).values():
        env = {k: v if isinstance(v, str) else "stand-in" for k, v in props["Environment"]["Variables"].items()}
        settings = LambdaSettings.from_env(env)
        assert settings.topics == DEV_TOPICS and settings.stage == "dev"


def test_bridge_image_context_excludes_everything_it_is_not_built_from(synth: Synthesized) -> None:
    image = bridge_container(synth)["Image"]["Fn::Sub"]
    context = synth.assembly_dir / ("asset." + image.rsplit(":", 1)[1])
    assert (context / "fargate_bridge" / "Dockerfile").is_file()
    assert (context / "ocpp_core").is_dir() and (context / "process_gc").is_dir()
    present = {p.name for p in context.iterdir()}
    assert not present & {".venv", "cdk.out", "tests", ".git", "lambdas", "infra", "docs", "app.py"}
    assert not list(context.rglob("__pycache__"))
    # ECS ignores a HEALTHCHECK in the image; one there would only mislead (it checked readiness)
    instructions = [
        line.split()[0]
        for line in (context / "fargate_bridge" / "Dockerfile").read_text().splitlines()
        if line.strip() and not line.startswith((" ", "#"))
    ]
    assert "HEALTHCHECK" not in instructions and "CMD" in instructions


def test_service_keeps_capacity_during_deployments_and_scales_on_cpu_and_chargers(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "LaunchType": "FARGATE",
            # one task at a time with min_tasks=1 (ECS rounds 125 % of one task down to one)
            "DeploymentConfiguration": Match.object_like(
                {
                    "MinimumHealthyPercent": 100,
                    "MaximumPercent": 200,
                    "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True},
                }
            ),
            "LoadBalancers": [Match.object_like({"ContainerName": "bridge", "ContainerPort": 9000})],
        },
    )
    synth.template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 1, "MaxCapacity": 4}
    )
    synth.template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {"PredefinedMetricSpecification": {"PredefinedMetricType": "ECSServiceAverageCPUUtilization"}}
            ),
        },
    )
    synth.template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalingPolicy",
        {
            "TargetTrackingScalingPolicyConfiguration": Match.object_like(
                {
                    "CustomizedMetricSpecification": {
                        "Namespace": "OCPP/Bridge",
                        "MetricName": "ConnectedChargers",
                        # the stage's own tasks only: never the other stage's chargers
                        "Dimensions": [{"Name": "Service", "Value": "bridge"}, {"Name": "Stage", "Value": "dev"}],
                        "Statistic": "Average",
                    },
                    "TargetValue": 5000,
                }
            )
        },
    )


def test_tasks_accept_traffic_only_through_the_nlb_security_group(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress",
        {
            "IpProtocol": "tcp",
            "FromPort": 9000,
            "ToPort": 9000,
            "SourceSecurityGroupId": {"Fn::GetAtt": [Match.string_like_regexp("NetworkNlbSecurityGroup"), "GroupId"]},
        },
    )


# --- API ---------------------------------------------------------------------------------------


def test_every_operator_route_requires_iam_and_proxies_to_the_api_function(synth: Synthesized) -> None:
    """Operator routes: IAM, the operator function. The chargers' upload routes alone: no
    authorization (the token is the credential), the uploads function."""
    routes = synth.resources("AWS::ApiGatewayV2::Route")
    integrations = synth.resources("AWS::ApiGatewayV2::Integration")
    api_function = functions_by_handler(synth)[OPERATOR_API_HANDLER][0]
    (uploads_function,) = [
        logical_id
        for logical_id, resource in synth.resources("AWS::Lambda::Function").items()
        if resource["Properties"].get("Handler") == UPLOADS_HANDLER
    ]
    operator = {f"{m.value} {p}" for m, p in ROUTES}
    uploads = {f"{m.value} {p}" for m, p in UPLOAD_ROUTES}
    assert {r["Properties"]["RouteKey"] for r in routes.values()} == operator | uploads
    assert not operator & uploads and len(uploads) == 4
    for route in routes.values():
        props = route["Properties"]
        (integration,) = [part["Ref"] for part in props["Target"]["Fn::Join"][1] if isinstance(part, dict)]
        target = integrations[integration]["Properties"]["IntegrationUri"]["Fn::GetAtt"][0]
        if props["RouteKey"] in uploads:
            assert (props["AuthorizationType"], target) == ("NONE", uploads_function), props["RouteKey"]
        else:
            assert (props["AuthorizationType"], target) == ("AWS_IAM", api_function), props["RouteKey"]
    synth.template.has_resource_properties(
        "AWS::ApiGatewayV2::Integration",
        {
            "IntegrationType": "AWS_PROXY",
            "PayloadFormatVersion": "2.0",
            "IntegrationUri": {"Fn::GetAtt": [api_function, "Arn"]},
        },
    )
    synth.template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "StageName": "$default",
            "AutoDeploy": True,
            "AccessLogSettings": {
                "DestinationArn": {"Fn::GetAtt": [Match.any_value(), "Arn"]},
                "Format": Match.string_like_regexp(r"\$context\.requestId"),
            },
        },
    )


# --- IAM ---------------------------------------------------------------------------------------


def test_no_wildcard_action_or_resource_where_a_narrower_one_exists(synth: Synthesized) -> None:
    assert wildcard_findings(synth.json) == []


def test_the_wildcard_check_catches_what_it_should() -> None:
    fake = {
        "Resources": {
            "P": {
                "Type": "AWS::IAM::Policy",
                "Properties": {
                    "PolicyDocument": {
                        "Statement": [
                            {"Effect": "Allow", "Action": "iot:*", "Resource": "arn:aws:iot:::topic/x"},
                            {"Effect": "Allow", "Action": ["dynamodb:GetItem"], "Resource": "*"},
                            {"Effect": "Allow", "Action": "*", "Resource": "arn:x"},
                            {"Effect": "Allow", "Action": "xray:PutTraceSegments", "Resource": "*"},
                        ]
                    }
                },
            },
            "Q": {
                "Type": "AWS::SQS::QueuePolicy",
                "Properties": {
                    "PolicyDocument": {"Statement": [{"Effect": "Deny", "Action": "sqs:*", "Resource": "*"}]}
                },
            },
        }
    }
    assert wildcard_findings(fake) == ["P: action iot:*", "P: dynamodb:GetItem on Resource *", "P: action *"]


def test_bridge_task_role_has_exactly_its_iot_and_registry_permissions(synth: Synthesized) -> None:
    (task,) = synth.resources("AWS::ECS::TaskDefinition").values()
    role = task["Properties"]["TaskRoleArn"]["Fn::GetAtt"][0]
    table = {"Fn::GetAtt": [next(iter(synth.resources("AWS::DynamoDB::Table"))), "Arn"]}

    def pair(action: str, resource: Any) -> tuple[str, str]:
        return action, json.dumps(resource, sort_keys=True)

    expected = {
        # only this stage's client ids: a dev charger never takes over its prod session
        pair("iot:Connect", iot_arn("client/ocpp-dev.*")),
        # frames through Basic Ingest to the stage's message rule, presence events (and the will)
        pair("iot:Publish", iot_arn("topic/$aws/rules/dev_ocpp_inbound_messages/ocpp-dev/*/in")),
        pair("iot:Publish", iot_arn("topic/ocpp-dev/*/events")),
        # the replies, and nothing else
        pair("iot:Subscribe", iot_arn("topicfilter/ocpp-dev/*/out")),
        pair("iot:Receive", iot_arn("topic/ocpp-dev/*/out")),
        pair("dynamodb:GetItem", table),
    }
    assert grants(synth.json, role) == expected


def test_lambdas_publish_only_to_the_out_topics(synth: Synthesized) -> None:
    by_handler = functions_by_handler(synth)
    for handler, (_, props) in by_handler.items():
        iot = {(a, r) for a, r in grants(synth.json, role_of(props)) if a.startswith("iot:")}
        # Every function may send calls to chargers (the lifecycle one drains a charger's outbox
        # when it connects), and only there.
        assert iot == {("iot:Publish", json.dumps(iot_arn("topic/ocpp-dev/*/out"), sort_keys=True))}, handler


def test_functions_read_and_write_the_table_and_nothing_else_of_dynamodb(synth: Synthesized) -> None:
    table_arn = {"Fn::GetAtt": [next(iter(synth.resources("AWS::DynamoDB::Table"))), "Arn"]}
    table = json.dumps(table_arn, sort_keys=True)
    index = json.dumps({"Fn::Join": ["", [table_arn, f"/index/{keys.LIST_INDEX}"]]}, sort_keys=True)
    for handler, (_, props) in functions_by_handler(synth).items():
        dynamo = {(a, r) for a, r in grants(synth.json, role_of(props)) if a.startswith("dynamodb:")}
        if "operator_api" in handler or "timer" in handler:  # list from the index, and may only query it
            assert {a for a, r in dynamo if r == index} == {"dynamodb:Query"}
            assert {r for _, r in dynamo} == {table, index}
        else:
            assert {r for _, r in dynamo} == {table}
        assert {
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
        } <= {a for a, _ in dynamo}


def test_describe_endpoint_is_granted_only_to_the_custom_resource(synth: Synthesized) -> None:
    holders = {ref.logical_id for ref in policy_statements(synth.json) if "iot:DescribeEndpoint" in ref.actions}
    assert len(holders) == 1 and "IotEndpoint" in holders.pop()
    synth.template.has_resource_properties(
        "Custom::AWS", {"Create": Match.string_like_regexp(r"iot:Data-ATS"), "InstallLatestAwsSdk": False}
    )


# --- monitoring --------------------------------------------------------------------------------


def dashboard_body(synth: Synthesized) -> str:
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    return json.dumps(dashboard["Properties"]["DashboardBody"])


@pytest.mark.parametrize(
    "needle",
    [
        "ConnectedChargers",
        "BrokerReachable",
        "FramesIn",
        "FramesOut",
        "AuthFailures",
        "Invocations",
        "Throttles",
        "p99",
        "p50",
        "MessagesProcessed",
        "HandlerFailures",
        "CallsTimedOut",
        "CallsCreated",
        "ConnectionEvents",
        "TopicMatch",
        "RuleMessageThrottled",
        '\\"Failure\\"',
        "dev_ocpp_inbound_messages",
        "HealthyHostCount",
        "UnHealthyHostCount",
        "CPUUtilization",
        "MemoryUtilization",
        "ApproximateNumberOfMessagesVisible",
    ],
)
def test_dashboard_shows(synth: Synthesized, needle: str) -> None:
    assert needle in dashboard_body(synth)


def alarms(synth: Synthesized) -> dict[str, dict[str, Any]]:
    return {k: v["Properties"] for k, v in synth.resources("AWS::CloudWatch::Alarm").items()}


def test_every_alarm_notifies_the_sns_topic_and_says_what_missing_data_means(synth: Synthesized) -> None:
    (topic,) = synth.resources("AWS::SNS::Topic")
    assert alarms(synth)
    for props in alarms(synth).values():
        assert props["AlarmActions"] == [{"Ref": topic}]
        assert props["OKActions"] == [{"Ref": topic}]
        assert props["TreatMissingData"] in ("notBreaching", "breaching")
        assert props["AlarmName"].startswith("OCPP-CSMS-dev-")
    synth.template.resource_count_is("AWS::SNS::Subscription", 0)  # no alarm_email in dev


def metric_names(props: dict[str, Any]) -> set[str]:
    if "MetricName" in props:
        return {props["MetricName"]}
    return {m["MetricStat"]["Metric"]["MetricName"] for m in props.get("Metrics", []) if "MetricStat" in m}


@pytest.mark.parametrize(
    ("metric", "count", "missing"),
    [
        # each function: processor, lifecycle, operator API, outbox timer, events publisher, files
        # received, uploads
        ("Errors", 7, "notBreaching"),
        ("Throttles", 7, "notBreaching"),
        # the dead-letter queues: processor, lifecycle, and the events stream's failures
        ("ApproximateNumberOfMessagesVisible", 3, "notBreaching"),
        ("UnHealthyHostCount", 1, "notBreaching"),
        ("BrokerReachable", 1, "notBreaching"),  # no data: no task, NoHealthyBridgeTask says so
        ("HealthyHostCount", 1, "breaching"),  # no data: the bridge is gone
        ("ConnectedChargers", 1, "notBreaching"),  # the drop alarm
    ],
)
def test_alarms_cover(synth: Synthesized, metric: str, count: int, missing: str) -> None:
    matching = [p for p in alarms(synth).values() if metric in metric_names(p)]
    assert len(matching) == count
    assert {p["TreatMissingData"] for p in matching} == {missing}


def alarm_metrics(props: dict[str, Any]) -> list[dict[str, Any]]:
    """The metrics an alarm reads, as ``{Namespace, MetricName, Dimensions, Stat, Period}``."""
    if "MetricName" in props:
        return [
            {k: props.get(k) for k in ("Namespace", "MetricName", "Dimensions", "Period")}
            | {"Stat": props.get("Statistic")}
        ]
    return [
        {**m["MetricStat"]["Metric"], "Stat": m["MetricStat"]["Stat"], "Period": m["MetricStat"]["Period"]}
        for m in props.get("Metrics", [])
        if "MetricStat" in m
    ]


def test_an_unreachable_broker_alarms_on_the_bridges_gauge_not_on_target_health(synth: Synthesized) -> None:
    (alarm,) = [p for p in alarms(synth).values() if "BrokerReachable" in metric_names(p)]
    (metric,) = alarm_metrics(alarm)
    assert (metric["Namespace"], metric["Stat"], metric["Period"]) == ("OCPP/Bridge", "Minimum", 60)
    assert metric["Dimensions"] == [{"Name": "Service", "Value": "bridge"}, {"Name": "Stage", "Value": "dev"}]
    assert alarm["ComparisonOperator"] == "LessThanThreshold" and alarm["Threshold"] == 1
    assert (alarm["DatapointsToAlarm"], alarm["EvaluationPeriods"]) == (3, 5)
    (unhealthy,) = [p for p in alarms(synth).values() if "UnHealthyHostCount" in metric_names(p)]
    assert "/health/live" in unhealthy["AlarmDescription"] and "IoT Core" in unhealthy["AlarmDescription"]


def test_every_metric_of_the_shared_namespaces_names_the_stage(synth: Synthesized) -> None:
    """Alarms, scaling and dashboard read the dev stage's EMF metrics only (DESIGN §8)."""
    stage_dimension = {"Name": "Stage", "Value": "dev"}
    own = [m for p in alarms(synth).values() for m in alarm_metrics(p) if m["Namespace"].startswith("OCPP/")]
    assert own and all(stage_dimension in m["Dimensions"] for m in own)
    rows = dashboard_metrics(synth)
    bridge_rows = [row for row in rows if row[0] == "OCPP/Bridge"]
    assert bridge_rows and all(row[2:6] == ["Service", "bridge", "Stage", "dev"] for row in bridge_rows)
    searches = [row[0]["expression"] for row in rows if "SEARCH(" in str(row[0])]
    assert searches and all("{OCPP/CSMS,Stage,service}" in e and 'Stage="dev"' in e for e in searches)


def test_a_sudden_drop_in_connected_chargers_alarms_below_an_anomaly_band(synth: Synthesized) -> None:
    (drop,) = [p for p in alarms(synth).values() if "ConnectedChargers" in metric_names(p)]
    assert drop["ComparisonOperator"] == "LessThanLowerThreshold"
    expressions = [m["Expression"] for m in drop["Metrics"] if "Expression" in m]
    assert any(e.startswith("ANOMALY_DETECTION_BAND(") for e in expressions)


def test_sns_topic_requires_tls_and_lets_cloudwatch_publish(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::SNS::TopicPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}}),
                        Match.object_like({"Effect": "Allow", "Principal": {"Service": "cloudwatch.amazonaws.com"}}),
                    ]
                )
            }
        },
    )


# --- outputs -----------------------------------------------------------------------------------


def test_outputs_give_the_charger_url_the_api_url_and_the_dashboard(synth: Synthesized) -> None:
    outputs = synth.json["Outputs"]
    nlb = next(iter(synth.resources("AWS::ElasticLoadBalancingV2::LoadBalancer")))
    assert outputs["ChargerEndpointUrl"]["Value"] == {
        "Fn::Join": ["", ["ws://", {"Fn::GetAtt": [nlb, "DNSName"]}, "/ocpp/"]]
    }
    api = next(iter(synth.resources("AWS::ApiGatewayV2::Api")))
    assert {"Ref": api} in outputs["OperatorApiUrl"]["Value"]["Fn::Join"][1]
    dashboard_url = json.dumps(outputs["DashboardUrl"]["Value"])
    assert "console.aws.amazon.com/cloudwatch/home" in dashboard_url and "#dashboards:name=" in dashboard_url


# --- cdk-nag and annotations ----------------------------------------------------------------------


def test_cdk_nag_aws_solutions_finds_nothing_unacknowledged(synth: Synthesized) -> None:
    assert nag_violations(synth.stack) == []


def test_every_acknowledgment_gives_a_reason(synth: Synthesized) -> None:
    found = {}
    for construct in synth.stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == cdk.Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                found.update({f"{construct.node.path} {rule}": reason for rule, reason in entry.data.items()})
    nag = {k: v for k, v in found.items() if "AwsSolutions-" in k}
    assert nag, "the stack acknowledges some findings"
    for key, reason in nag.items():
        assert len(reason) >= 40, f"{key}: give a specific reason, not {reason!r}"


def test_no_error_annotations(synth: Synthesized) -> None:
    assert Annotations.from_stack(synth.stack).find_error("*", Match.any_value()) == []


def test_cdk_s_own_template_validation_found_nothing(synth: Synthesized) -> None:
    report = json.loads((synth.assembly_dir / "validation-report.json").read_text())
    assert [v for plugin in report["pluginReports"] for v in plugin.get("violations", [])] == []


def test_synthesis_needed_no_lookup(synth: Synthesized) -> None:
    manifest = json.loads((synth.assembly_dir / "manifest.json").read_text())
    assert not manifest.get("missing"), "the default path must synthesize offline"


def test_the_assembly_holds_one_stack_named_after_the_stage(synth: Synthesized) -> None:
    templates = sorted(p.name for p in Path(synth.assembly_dir).glob("*.template.json"))
    assert templates == ["OcppCsms-dev.template.json"]


def test_the_deployed_routes_are_the_routes_the_api_serves() -> None:
    """infra's API Gateway routes and lambdas.api.app.ROUTES: the same methods on the same paths."""
    import re

    from lambdas.api.app import ROUTES as SERVED

    def shape(path: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", path)

    served = {(method, shape(route.template)) for route in SERVED for method in route.methods}
    deployed = {(method.value, shape(path)) for method, path in ROUTES}
    assert deployed == served


def test_the_table_grant_covers_every_operation_the_adapter_calls() -> None:
    """Each DynamoDB operation the adapter's modules call (``_call("op", ...)`` or
    ``self._client.op(...)``) is in the functions' grant: a new one cannot ship unpermitted."""
    import pathlib
    import re

    from infra.stack import TABLE_DATA_ACTIONS

    adapters = pathlib.Path(__file__).parents[2] / "lambdas" / "adapters"
    called: set[str] = set()
    for path in adapters.glob("dynamo*.py"):
        text = path.read_text(encoding="utf-8")
        called |= set(re.findall(r'_call\(\s*"([a-z_]+)"', text))
        called |= set(re.findall(r"self\._client\.([a-z_]+)\(", text))
    called.discard("get_waiter")
    assert called, "no operation found: the pattern no longer matches the adapter"
    # A transaction is authorized per action inside it, not as a whole: its Puts need PutItem
    # (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/transaction-apis-iam.html).
    assert "transact_write_items" in called
    called = (called - {"transact_write_items"}) | {"put_item"}
    actions = {"dynamodb:" + "".join(word.capitalize() for word in op.split("_")) for op in called}
    assert actions <= set(TABLE_DATA_ACTIONS), actions - set(TABLE_DATA_ACTIONS)


def test_the_charger_ca_is_a_kms_signing_key_only_two_functions_use(synth: Synthesized) -> None:
    [(key_id, key)] = synth.resources("AWS::KMS::Key").items()
    assert (key["Properties"]["KeySpec"], key["Properties"]["KeyUsage"]) == ("ECC_NIST_P256", "SIGN_VERIFY")
    key_arn = json.dumps({"Fn::GetAtt": [key_id, "Arn"]}, sort_keys=True)
    for handler, (_, props) in functions_by_handler(synth).items():
        kms = {(a, r) for a, r in grants(synth.json, role_of(props)) if a.startswith("kms:")}
        if handler in ("lambdas.message_processor.handler", OPERATOR_API_HANDLER):
            assert kms == {("kms:Sign", key_arn), ("kms:GetPublicKey", key_arn)}, handler
            assert props["Environment"]["Variables"]["OCPP_CA_KMS_KEY_ID"] == {"Fn::GetAtt": [key_id, "Arn"]}
        else:
            assert kms == set(), handler
