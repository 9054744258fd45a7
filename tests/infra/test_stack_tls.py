"""The prod stage with a domain and certificate (TLS at the NLB), in a concrete account and region.

Also what prod does that dev does not: no plain listener by default once there is a certificate,
a pinned Lambda runtime (the same template from any laptop), a deployment that replaces a batch
of its 2 to 50 tasks at a time, and a warning about IoT Core's CONNECT quota at that scale.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import pytest
from aws_cdk.assertions import Annotations, Match

from lambdas.rules import RULES

from .support import Synthesized, bridge_environment, nag_violations, synthesize, wildcard_findings

ACCOUNT = "123456789012"
REGION = "eu-west-1"
DOMAIN = "ocpp.example.com"
IOT_HOST = "abc123example-ats.iot.eu-west-1.amazonaws.com"
CERT = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/12345678-90ab-cdef-1234-567890abcdef"
#: a runtime other than this interpreter's: the bundle then ships sources only
PINNED_PYTHON = "3.13" if sys.version_info[:2] != (3, 13) else "3.12"


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize(
        {
            "stage": "prod",
            "account": ACCOUNT,
            "region": REGION,
            "domain_name": DOMAIN,
            "certificate_arn": CERT,
            # no plain_listener: with a certificate it is off unless asked for (secure by default)
            "lambda_python": PINNED_PYTHON,
            "xray": "true",
            "alarm_email": "ops@example.com",
            "processor_reserved_concurrency": "50",
            "iot_endpoint": IOT_HOST,  # given: no DescribeEndpoint custom resource
        },
        tmp_path_factory.mktemp("cdk-prod"),
    )


def test_tls_listener_terminates_with_the_certificate_and_forwards_tcp(synth: Synthesized) -> None:
    listeners = synth.resources("AWS::ElasticLoadBalancingV2::Listener")
    # no ws:// listener: Basic-auth passwords never travel in clear unless plain_listener=true
    assert [p["Properties"]["Protocol"] for p in listeners.values()] == ["TLS"]
    synth.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 443,
            "Protocol": "TLS",
            "Certificates": [{"CertificateArn": CERT}],
            "SslPolicy": Match.string_like_regexp("TLS13"),
            "DefaultActions": [{"Type": "forward", "TargetGroupArn": Match.any_value()}],
        },
    )
    synth.template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup", {"Protocol": "TCP", "HealthCheckPath": "/health/live"}
    )


def test_only_the_tls_port_is_open_to_chargers(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {
            "GroupDescription": Match.string_like_regexp("Charger-facing NLB"),
            "SecurityGroupIngress": [Match.object_like({"CidrIp": "0.0.0.0/0", "FromPort": 443, "ToPort": 443})],
        },
    )


def test_charger_url_is_wss_on_the_domain(synth: Synthesized) -> None:
    assert synth.json["Outputs"]["ChargerEndpointUrl"]["Value"] == f"wss://{DOMAIN}/ocpp/"


def test_prod_keeps_its_data(synth: Synthesized) -> None:
    synth.template.has_resource(
        "AWS::DynamoDB::Table",
        {"DeletionPolicy": "Retain", "Properties": Match.object_like({"DeletionProtectionEnabled": True})},
    )
    log_groups = synth.resources("AWS::Logs::LogGroup").values()
    assert log_groups
    for resource in log_groups:
        assert resource["Properties"]["RetentionInDays"] == 90  # cdk.json prod
        assert resource["DeletionPolicy"] == "Retain"


def test_prod_sizes_come_from_cdk_json(synth: Synthesized) -> None:
    synth.template.has_resource_properties("AWS::ECS::TaskDefinition", {"Cpu": "1024", "Memory": "2048"})
    synth.template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 2, "MaxCapacity": 20}
    )
    synth.template.resource_count_is("AWS::EC2::NatGateway", 2)


def test_alarm_email_is_subscribed(synth: Synthesized) -> None:
    synth.template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )


def test_xray_and_reserved_concurrency_when_asked(synth: Synthesized) -> None:
    functions = {
        p["Properties"]["Handler"]: p["Properties"]
        for p in synth.resources("AWS::Lambda::Function").values()
        if p["Properties"].get("Handler", "").startswith("lambdas.")
    }
    for handler, props in functions.items():
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["Environment"]["Variables"]["POWERTOOLS_TRACE_DISABLED"] == "false"
        # the configured processor's, and the outbox timer's own single run at a time
        expected = {"lambdas.message_processor.handler": 50, "lambdas.timer.handler": 1}.get(handler)
        assert props.get("ReservedConcurrentExecutions") == expected
    # X-Ray's actions are the allowed '*' ones; nothing else widened
    assert wildcard_findings(synth.json) == []


def test_a_given_iot_endpoint_replaces_the_lookup(synth: Synthesized) -> None:
    synth.template.resource_count_is("Custom::AWS", 0)
    (task,) = synth.resources("AWS::ECS::TaskDefinition").values()
    env = {e["Name"]: e["Value"] for e in task["Properties"]["ContainerDefinitions"][0]["Environment"]}
    assert env["BRIDGE_IOT_ENDPOINT"] == IOT_HOST
    for resource in synth.resources("AWS::Lambda::Function").values():
        assert resource["Properties"]["Environment"]["Variables"]["IOT_DATA_ENDPOINT"] == f"https://{IOT_HOST}"


def test_rule_names_carry_the_stage(synth: Synthesized) -> None:
    names = {p["Properties"]["RuleName"] for p in synth.resources("AWS::IoT::TopicRule").values()}
    assert names == {f"prod_{rule.name}" for rule in RULES}


def test_iam_arns_name_the_region_and_account(synth: Synthesized) -> None:
    text = json.dumps(synth.json)
    assert f":iot:{REGION}:{ACCOUNT}:client/ocpp-prod.*" in text


def test_a_pinned_lambda_runtime_ships_sources_without_bytecode(synth: Synthesized) -> None:
    functions = [
        p["Properties"]
        for p in synth.resources("AWS::Lambda::Function").values()
        if p["Properties"].get("Handler", "").startswith("lambdas.")
    ]
    assert {props["Runtime"] for props in functions} == {f"python{PINNED_PYTHON}"}
    (key,) = {props["Code"]["S3Key"] for props in functions}
    asset = synth.assembly_dir / ("asset." + key.removesuffix(".zip"))
    assert (asset / "ocpp_core" / "processor.py").is_file()
    assert not list(asset.rglob("*.pyc")), "bytecode of this interpreter would not load on another runtime"
    warnings = Annotations.from_stack(synth.stack).find_warning("*", Match.string_like_regexp("sources only"))
    assert warnings


def test_a_deployment_replaces_a_quarter_of_the_tasks_at_a_time(synth: Synthesized) -> None:
    # min_tasks=2: 125 % of 2 tasks rounds down to 2, so 150 % (one more task) is the least that moves
    synth.template.has_resource_properties(
        "AWS::ECS::Service",
        {"DeploymentConfiguration": Match.object_like({"MinimumHealthyPercent": 100, "MaximumPercent": 150})},
    )


def test_twenty_tasks_share_the_connect_budget_and_synth_warns_about_the_quota(synth: Synthesized) -> None:
    env = bridge_environment(synth)
    # 500/s x 80 % / 2 stages / 20 tasks: all 20 reconnecting at once make 200/s, within the budget
    assert float(env["BRIDGE_MQTT_CONNECT_RATE"]) == 10.0
    assert int(env["BRIDGE_MQTT_CONNECT_BURST"]) == 10
    (warning,) = Annotations.from_stack(synth.stack).find_warning(
        "*", Match.string_like_regexp("Connect requests per second per account")
    )
    assert "1000 s" in json.dumps(warning.entry.data)  # 10,000 chargers at 10/s


def test_cdk_nag_finds_nothing_unacknowledged(synth: Synthesized) -> None:
    assert nag_violations(synth.stack) == []
