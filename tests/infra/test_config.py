"""infra/config.py: context validation without synthesizing anything (fast)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import app as cdk_app
from infra.config import (
    FARGATE_MEMORY_BY_CPU,
    LOG_RETENTION_DAYS,
    ConfigError,
    StageConfig,
)

CERT = "arn:aws:acm:eu-west-1:123456789012:certificate/12345678-90ab-cdef-1234-567890abcdef"
STAGES = {"dev": {}, "prod": {"min_tasks": 2, "max_tasks": 50, "retain_data": True}}

#: whole-number keys and their inclusive ranges
INT_RANGES = {
    "nat_gateways": (0, 3),
    "plain_port": (1, 65535),
    "min_tasks": (1, 1000),
    "chargers_per_task": (1, 100_000),
    "cpu_target_percent": (10, 95),
    "drain_timeout_seconds": (1, 105),
    "heartbeat_interval": (10, 86_400),
    "call_timeout": (1, 3600),
    "processor_reserved_concurrency": (1, 100_000),
    "processor_memory_mib": (128, 10_240),
}


def config(**context: Any) -> StageConfig:
    return StageConfig.from_context({"stages": STAGES, **context})


def error(**context: Any) -> str:
    with pytest.raises(ConfigError) as caught:
        config(**context)
    message = str(caught.value)
    assert "\n" not in message, "one line, for app.py to print"
    return message


def test_defaults_are_the_documented_ones() -> None:
    cfg = config()
    assert cfg.stage == "dev"
    assert cfg.unknown_chargers == "reject"  # AWS refuses unknown chargers by default (DESIGN §5)
    assert cfg.require_password is True
    assert cfg.account is None and cfg.region is None  # env-agnostic: synth needs no look-up
    assert not cfg.tls
    assert cfg.stop_timeout_seconds > cfg.drain_timeout_seconds
    assert cfg.deregistration_delay_seconds >= cfg.drain_timeout_seconds


def test_the_real_cdk_json_stages_are_valid() -> None:
    context = cdk_app.load_cdk_json_context()
    assert set(context["stages"]) >= {"dev", "prod"}
    dev = StageConfig.from_context(context)
    prod = StageConfig.from_context({**context, "stage": "prod"})
    assert dev.stage == "dev" and not dev.retain_data and not dev.deletion_protection
    assert prod.retain_data and prod.deletion_protection and prod.min_tasks >= 2


def test_command_line_beats_stage_beats_default() -> None:
    assert config(stage="prod").min_tasks == 2  # from the stage
    assert config(stage="prod", min_tasks="3").min_tasks == 3  # -c min_tasks=3
    assert config(stage="prod").cpu_target_percent == 60  # default


def test_account_and_region_fall_back_to_the_cli_environment() -> None:
    environ = {"CDK_DEFAULT_ACCOUNT": "123456789012", "CDK_DEFAULT_REGION": "eu-west-1"}
    cfg = StageConfig.from_context({"stages": STAGES}, environ)
    assert (cfg.account, cfg.region) == ("123456789012", "eu-west-1")
    assert StageConfig.from_context({"stages": STAGES, "region": "us-east-1"}, environ).region == "us-east-1"


def test_tls_needs_domain_and_certificate_together() -> None:
    cfg = config(domain_name="OCPP.Example.com", certificate_arn=CERT, region="eu-west-1")
    assert cfg.tls and cfg.domain_name == "ocpp.example.com"
    assert "domain_name=ocpp.example.com" in error(domain_name="ocpp.example.com")
    assert f"certificate_arn={CERT}" in error(certificate_arn=CERT)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("domain_name", "not a domain"),
        ("domain_name", "localhost"),
        ("domain_name", "a..example.com"),
        ("domain_name", "-bad.example.com"),
        ("domain_name", "10.0.0.1"),
        ("certificate_arn", "arn:aws:acm:eu-west-1:123:certificate/nope"),
        ("certificate_arn", "arn:aws:iam::123456789012:server-certificate/x"),
        ("unknown_chargers", "maybe"),
        ("unknown_chargers", "ACCEPT-ALL"),
        ("min_tasks", "-1"),
        ("min_tasks", "0"),
        ("min_tasks", "two"),
        ("min_tasks", "1.5"),
        ("max_tasks", "1e3"),
        ("chargers_per_task", ""),
        ("log_retention_days", "10"),
        ("log_level", "LOUD"),
        ("alarm_email", "ops-at-example.com"),
        ("account", "12345"),
        ("region", "mars-1"),
        ("vpc_id", "vpc-xyz"),
        ("bridge_cpu", "300"),
        ("bridge_architecture", "sparc"),
        ("require_password", "perhaps"),
        ("processor_reserved_concurrency", "0"),
        ("extensions", "my-ext"),
        ("iot_endpoint", "example.com"),
        ("connected_drop_std_devs", "wide"),
    ],
)
def test_a_bad_value_fails_with_one_line_naming_it(key: str, value: str) -> None:
    assert f"{key}={value}" in error(**{key: value})


def test_unknown_stage_names_the_stage_and_the_known_ones() -> None:
    message = error(stage="staging")
    assert "stage=staging" in message and "dev" in message and "prod" in message
    assert "stage=Prod!" in error(stage="Prod!")


def test_unknown_keys_are_refused_rather_than_ignored() -> None:
    assert "min_task=3" in error(min_task="3")
    with pytest.raises(ConfigError, match=r"stages\.dev\.tasks=2"):
        StageConfig.from_context({"stages": {"dev": {"tasks": 2}}})


def test_cdk_s_own_context_keys_are_left_alone() -> None:
    config(**{"@aws-cdk/core:checkSecretUsage": True, "aws:cdk:enable-path-metadata": True, "cli-telemetry": "x"})


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"max_tasks": "1", "min_tasks": "2"}, "max_tasks=1"),
        ({"chargers_per_task": "6000", "max_connections_per_task": "5000"}, "max_connections_per_task=5000"),
        ({"bridge_cpu": "256", "bridge_memory_mib": "4096"}, "bridge_memory_mib=4096"),
        ({"plain_listener": "false"}, "plain_listener=false"),
        ({"vpc_id": "vpc-0123456789abcdef0"}, "vpc_id=vpc-0123456789abcdef0"),
        ({"domain_name": "ocpp.example.com", "certificate_arn": CERT, "region": "us-east-1"}, "certificate_arn="),
        (
            {"domain_name": "ocpp.example.com", "certificate_arn": CERT, "account": "210987654321"},
            "certificate_arn=",
        ),
    ],
)
def test_inconsistent_combinations_name_the_offending_value(context: dict[str, str], named: str) -> None:
    assert named in error(**context)


def test_json_values_from_cdk_json_are_accepted_as_well_as_strings() -> None:
    cfg = config(min_tasks=3, max_tasks="7", xray=True, require_password="no", extensions=["a.b", "c"])
    assert (cfg.min_tasks, cfg.max_tasks, cfg.xray, cfg.require_password) == (3, 7, True, False)
    assert cfg.extensions == ("a.b", "c")
    assert config(extensions="a.b, c").extensions == ("a.b", "c")
    assert config(alarm_email="").alarm_email is None  # -c alarm_email= clears it


def test_a_boolean_is_not_a_count() -> None:
    assert "min_tasks=True" in error(min_tasks=True)


def test_pending_lets_the_socket_in_so_the_processor_can_answer_pending() -> None:
    assert config(unknown_chargers="pending").bridge_unknown_chargers == "accept"
    assert config(unknown_chargers="reject").bridge_unknown_chargers == "reject"


def test_iot_endpoint_may_be_given_with_its_scheme() -> None:
    assert config(iot_endpoint="https://abc123-ats.iot.eu-west-1.amazonaws.com").iot_endpoint == (
        "abc123-ats.iot.eu-west-1.amazonaws.com"
    )


# --- property-based: numeric fields -----------------------------------------------------------


@given(key=st.sampled_from(sorted(INT_RANGES)), data=st.data())
def test_every_whole_number_in_range_is_accepted_as_int_or_text(key: str, data: st.DataObject) -> None:
    low, high = INT_RANGES[key]
    value = data.draw(st.integers(low, high))
    as_text = data.draw(st.booleans())
    extra = {"max_tasks": "1000"} if key == "min_tasks" else {}
    if key == "chargers_per_task":
        extra = {"max_connections_per_task": "100000"}
    cfg = config(**{key: str(value) if as_text else value}, **extra)
    assert getattr(cfg, key) == value


@given(key=st.sampled_from(sorted(INT_RANGES)), data=st.data())
def test_every_whole_number_out_of_range_is_refused_by_name(key: str, data: st.DataObject) -> None:
    low, high = INT_RANGES[key]
    value = data.draw(st.one_of(st.integers(max_value=low - 1), st.integers(min_value=high + 1)))
    assert f"{key}={value}" in error(**{key: str(value)})


@given(
    key=st.sampled_from(sorted(INT_RANGES)),
    text=st.text(min_size=1, max_size=12).filter(lambda s: not s.strip().lstrip("+-").isdigit()),
)
def test_text_that_is_not_a_whole_number_is_refused_by_name(key: str, text: str) -> None:
    if text.strip().lower() in ("", "none", "null") and key == "processor_reserved_concurrency":
        return  # an optional key: these mean "unset"
    message = error(**{key: text})
    assert message.startswith(f"invalid context value {key}=")


@given(cpu=st.sampled_from(sorted(FARGATE_MEMORY_BY_CPU)), memory=st.integers(256, 130_000))
def test_fargate_sizes_follow_the_cpu_memory_table(cpu: int, memory: int) -> None:
    context = {"bridge_cpu": str(cpu), "bridge_memory_mib": str(memory)}
    if memory in FARGATE_MEMORY_BY_CPU[cpu]:
        assert config(**context).bridge_memory_mib == memory
    else:
        with pytest.raises(ConfigError, match="bridge_memory_mib="):
            config(**context)


@given(days=st.integers(0, 4000))
def test_log_retention_is_one_cloudwatch_accepts(days: int) -> None:
    if days in LOG_RETENTION_DAYS:
        assert config(log_retention_days=days).log_retention_days == days
    else:
        assert f"log_retention_days={days}" in error(log_retention_days=days)


@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_the_anomaly_band_width_is_a_sane_number(value: float) -> None:
    if 0.5 <= value <= 20:
        assert config(connected_drop_std_devs=value).connected_drop_std_devs == value
    else:
        with pytest.raises(ConfigError, match="connected_drop_std_devs="):
            config(connected_drop_std_devs=value)


# --- secure by default -------------------------------------------------------------------------


def test_with_a_certificate_the_plain_listener_is_off_unless_asked_for() -> None:
    assert config().plain_listener_enabled  # no certificate: ws:// is the only way in
    with_tls = {"domain_name": "ocpp.example.com", "certificate_arn": CERT}
    assert not config(**with_tls).plain_listener_enabled  # passwords never travel in clear by default
    assert config(**with_tls, plain_listener="true").plain_listener_enabled  # asked for
    assert not config(**with_tls, plain_listener="false").plain_listener_enabled


# --- stages in one account (DESIGN §8) -----------------------------------------------------------


def test_each_stage_has_its_own_topic_root_and_client_id_prefix() -> None:
    dev, prod = config(), config(stage="prod")
    assert (dev.topics.root, prod.topics.root) == ("ocpp-dev", "ocpp-prod")
    assert (dev.client_id_prefix, prod.client_id_prefix) == ("ocpp-dev.", "ocpp-prod.")
    assert config(topic_root="fleet/dev").topics.root == "fleet/dev"


def test_no_client_id_prefix_is_the_start_of_another_stages() -> None:
    # '-' may be in a stage name, '.' may not: dev's prefix never matches stage dev-x's client ids
    stages = {"dev": {}, "dev-x": {}}
    dev = StageConfig.from_context({"stages": stages})
    dev_x = StageConfig.from_context({"stages": stages, "stage": "dev-x"})
    assert not (dev_x.client_id_prefix + "CP1").startswith(dev.client_id_prefix)
    assert not (dev.client_id_prefix + "x.CP1").startswith(dev_x.client_id_prefix)


@pytest.mark.parametrize("root", ["ocpp/+", "#", "$aws/x", "a//b", "a/b/c/d/e"])
def test_a_topic_root_must_be_a_plain_topic_prefix(root: str) -> None:
    assert "topic_root=" in error(topic_root=root)


@pytest.mark.parametrize(("dev_root", "prod_root"), [("ocpp-prod", None), ("shared", "shared/prod"), ("a/b", "a")])
def test_stages_in_cdk_json_never_share_topics(dev_root: str, prod_root: str | None) -> None:
    stages = {"dev": {"topic_root": dev_root}, "prod": {} if prod_root is None else {"topic_root": prod_root}}
    with pytest.raises(ConfigError, match="overlaps stage prod's topic root"):
        StageConfig.from_context({"stages": stages})
    # a root that merely starts with the same letters is another topic
    StageConfig.from_context({"stages": {"dev": {"topic_root": "ocpp-prod-x"}, "prod": {}}})


# --- IoT Core's CONNECT quota -----------------------------------------------------------------------


def test_the_connect_rate_per_task_shares_the_account_budget_between_stages_and_tasks() -> None:
    cfg = config(max_tasks="50")
    assert cfg.connect_budget_per_second == 200.0  # 500/s x 80 % / 2 stages
    assert cfg.mqtt_connect_rate_per_task == 4.0  # all 50 tasks reconnecting at once: 200/s
    assert cfg.mqtt_connect_burst_per_task == 4
    assert cfg.full_task_reconnect_seconds == 1250.0  # 5,000 chargers at 4/s
    raised = config(max_tasks="50", iot_connect_quota="3000", stages_per_account="1")
    assert raised.mqtt_connect_rate_per_task == 48.0


def test_a_budget_too_small_for_the_tasks_is_refused() -> None:
    message = error(max_tasks="1000", iot_connect_quota="1", iot_connect_budget_percent="1")
    assert message.startswith("invalid context value max_tasks=1000: the CONNECT budget")


@pytest.mark.parametrize(("min_tasks", "batch", "expected"), [(1, 25, 200), (2, 25, 150), (4, 25, 125), (10, 50, 150)])
def test_deployments_replace_a_batch_of_tasks_but_at_least_one(min_tasks: int, batch: int, expected: int) -> None:
    cfg = config(min_tasks=str(min_tasks), max_tasks="50", deployment_batch_percent=str(batch))
    assert cfg.deployment_max_percent == expected
    # ECS rounds the maximum down: it must leave room for one new task at min_tasks
    assert min_tasks * cfg.deployment_max_percent // 100 > min_tasks
