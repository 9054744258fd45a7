"""Security profile 3 on AWS (DESIGN §9): an NLB TCP listener passing TLS through to the bridge.

The constructs are composed here as the stack composes them (``Network``, ``BridgeService``,
then ``BridgeService.serve_profile3``), in a stack of the test's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk import aws_logs as logs
from aws_cdk.assertions import Match, Template

import app as cdk_app
from fargate_bridge.settings import Env
from infra import bridge_service, network
from infra.bridge_service import BridgeService
from infra.config import ConfigError, StageConfig
from infra.network import BRIDGE_PORT, BRIDGE_TLS_PORT, LIVENESS_PATH, Network
from ocpp_core.topics import Topics

ACCOUNT = "123456789012"
REGION = "eu-west-1"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ocpp/bridge-profile3-AbC123"
CERT = f"arn:aws:acm:{REGION}:{ACCOUNT}:certificate/12345678-90ab-cdef-1234-567890abcdef"


def config(**overrides: Any) -> StageConfig:
    return StageConfig.from_context({**cdk_app.load_cdk_json_context(), **overrides})


# --- configuration ----------------------------------------------------------------------------
def test_profile3_is_off_unless_a_secret_is_given() -> None:
    assert not config().profile3
    on = config(profile3_secret_arn=SECRET, account=ACCOUNT, region=REGION)
    assert on.profile3 and on.profile3_secret_arn == SECRET and on.profile3_port == 9443
    assert config(profile3_secret_arn=SECRET, profile3_port="443").profile3_port == 443  # no TLS listener there


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"profile3_secret_arn": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:profile3"}, "complete"),
        ({"profile3_secret_arn": SECRET, "region": "us-east-1"}, "the secret is in eu-west-1"),
        ({"profile3_secret_arn": SECRET, "account": "210987654321"}, "belongs to account"),
        ({"profile3_secret_arn": SECRET, "profile3_port": "80"}, "equals plain_port"),
        (
            {
                "profile3_secret_arn": SECRET,
                "profile3_port": "443",
                "domain_name": "ocpp.example.com",
                "certificate_arn": CERT,
            },
            "equals tls_port",
        ),
    ],
)
def test_bad_profile3_settings_are_one_clear_error(overrides: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        config(**overrides)


def test_environment_names_are_the_bridges() -> None:
    assert bridge_service.ENV_TLS_PORT == Env.TLS_PORT
    assert bridge_service.ENV_TLS_PORT_CERT == Env.TLS_PORT_CERT
    assert bridge_service.ENV_TLS_PORT_KEY == Env.TLS_PORT_KEY
    assert bridge_service.ENV_CLIENT_CA == Env.CLIENT_CA


# --- template ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    app = cdk.App(outdir=str(tmp_path_factory.mktemp("cdk-profile3")))
    stack = cdk.Stack(app, "Profile3", env=cdk.Environment(account=ACCOUNT, region=REGION))
    removal = cdk.RemovalPolicy.DESTROY
    net = Network(
        stack,
        "Network",
        vpc_id=None,
        nat_gateways=0,
        plain_port=80,
        tls_port=None,
        certificate_arn=None,
        deregistration_delay=cdk.Duration.seconds(60),
        log_retention=logs.RetentionDays.ONE_WEEK,
        removal_policy=removal,
    )
    bridge = BridgeService(
        stack,
        "Bridge",
        repo_root=Path(cdk_app.REPO_ROOT),
        stage="dev",
        topics=Topics("ocpp-dev"),
        client_id_prefix="ocpp-dev.",
        basic_ingest_rule=None,
        mqtt_connect_rate=50.0,
        mqtt_connect_burst=50,
        deployment_max_percent=200,
        vpc=net.vpc,
        task_subnets=net.task_subnets,
        assign_public_ip=net.tasks_need_public_ip,
        iot_endpoint_host="abc123example-ats.iot.eu-west-1.amazonaws.com",
        table_name="table",
        unknown_chargers="reject",
        require_password=True,
        cpu=512,
        memory_mib=1024,
        architecture="x86_64",
        min_tasks=1,
        max_tasks=2,
        chargers_per_task=5000,
        max_connections_per_task=6000,
        cpu_target_percent=60,
        drain_timeout=cdk.Duration.seconds(45),
        stop_timeout=cdk.Duration.seconds(60),
        log_level="INFO",
        log_retention=logs.RetentionDays.ONE_WEEK,
        removal_policy=removal,
    )
    net.target_group.add_target(
        bridge.service.load_balancer_target(container_name="bridge", container_port=BRIDGE_PORT)
    )
    bridge.service.connections.allow_from(net.security_group, cdk.aws_ec2.Port.tcp(BRIDGE_PORT), "health")
    bridge.serve_profile3(net, secret_arn=SECRET, nlb_port=9443)
    yield Template.from_stack(stack)


def test_a_tcp_listener_passes_tls_through_to_the_bridges_tls_port(template: Template) -> None:
    template.has_resource_properties("AWS::ElasticLoadBalancingV2::Listener", {"Port": 9443, "Protocol": "TCP"})
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::TargetGroup",
        {
            "Port": BRIDGE_TLS_PORT,
            "Protocol": "TCP",
            "TargetType": "ip",
            "HealthCheckProtocol": "HTTP",
            "HealthCheckPath": LIVENESS_PATH,
            "HealthCheckPort": str(BRIDGE_PORT),
        },
    )
    # No TLS listener carries a certificate for it: the NLB never ends this TLS.
    listeners = template.find_resources("AWS::ElasticLoadBalancingV2::Listener")
    assert all(listener["Properties"]["Protocol"] == "TCP" for listener in listeners.values())
    template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "LoadBalancers": Match.array_with(
                [Match.object_like({"ContainerName": "bridge", "ContainerPort": BRIDGE_TLS_PORT})]
            )
        },
    )


def test_chargers_reach_the_listener_and_the_nlb_reaches_the_task(template: Template) -> None:
    template.has_resource_properties(
        "AWS::EC2::SecurityGroup",
        {"SecurityGroupIngress": Match.array_with([Match.object_like({"FromPort": 9443, "CidrIp": "0.0.0.0/0"})])},
    )
    template.has_resource_properties(
        "AWS::EC2::SecurityGroupIngress", {"FromPort": BRIDGE_TLS_PORT, "ToPort": BRIDGE_TLS_PORT}
    )


def test_the_server_key_comes_from_the_secret_never_the_plain_environment(template: Template) -> None:
    (task,) = template.find_resources("AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    environment = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert environment[Env.TLS_PORT] == str(BRIDGE_TLS_PORT)
    assert not {Env.TLS_PORT_CERT, Env.TLS_PORT_KEY, Env.CLIENT_CA} & set(environment)
    secrets = {item["Name"]: item["ValueFrom"] for item in container["Secrets"]}
    assert secrets == {
        Env.TLS_PORT_CERT: f"{SECRET}:cert::",
        Env.TLS_PORT_KEY: f"{SECRET}:key::",
        Env.CLIENT_CA: f"{SECRET}:ca::",
    }
    assert {"ContainerPort": BRIDGE_TLS_PORT, "Protocol": "tcp"} in container["PortMappings"]
    # ECS reads the secret with the execution role, on that secret only.
    template.has_resource_properties(
        "AWS::IAM::Policy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Action": Match.array_with(["secretsmanager:GetSecretValue"]),
                                "Resource": SECRET,
                            }
                        )
                    ]
                )
            }
        },
    )


def test_network_constant_is_the_local_default() -> None:
    assert network.BRIDGE_TLS_PORT == 9443  # the same port as the local stack's OCPP_BRIDGE_TLS_PORT


def test_the_stack_serves_profile_3_when_a_secret_is_given(tmp_path: Path) -> None:
    """The whole stack, as ``cdk synth -c profile3_secret_arn=...`` builds it (not just the parts)."""
    from tests.infra.support import synthesize

    with_secret = synthesize({"profile3_secret_arn": SECRET, "account": ACCOUNT, "region": REGION}, tmp_path / "on")
    listeners = with_secret.resources("AWS::ElasticLoadBalancingV2::Listener")
    assert any(
        lst["Properties"]["Protocol"] == "TCP" and lst["Properties"]["Port"] == 9443 for lst in listeners.values()
    )
    without = synthesize({"account": ACCOUNT, "region": REGION}, tmp_path / "off")
    ports = {lst["Properties"]["Port"] for lst in without.resources("AWS::ElasticLoadBalancingV2::Listener").values()}
    assert 9443 not in ports
