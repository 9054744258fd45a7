"""Two stages in one account never touch (DESIGN §8): dev and prod synthesized side by side.

Each stage's topics, MQTT client ids, IoT rules, IAM resources, metric dimensions and
account-wide resource names are its own; and within a stage, the IoT policy, the rule SQL, the
bridge's and the Lambdas' environment all derive from the same topic root and client-id prefix.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from local_stack.rules import compile_rule
from ocpp_core.topics import Topics, basic_ingest_topic

from .support import Synthesized, bridge_environment, dashboard_metrics, policy_statements, synthesize_stages

STAGES = ("dev", "prod")
CHARGER = "CP-1"  # the same charger id registered in both stages

#: Physical names that must be unique in an account and region (CloudFormation properties).
ACCOUNT_WIDE_NAMES = frozenset(
    {
        "RuleName",
        "AlarmName",
        "DashboardName",
        "FunctionName",
        "TableName",
        "QueueName",
        "TopicName",
        "RoleName",
        "LogGroupName",
        "ClusterName",
        "ServiceName",
        "Name",
    }
)


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Synthesized]]:
    yield synthesize_stages({stage: {} for stage in STAGES}, tmp_path_factory.mktemp("cdk-two-stages"))


def other(stage: str) -> str:
    return next(s for s in STAGES if s != stage)


def topic_rules(synth: Synthesized) -> dict[str, str]:
    """Rule name -> SQL."""
    return {
        r["Properties"]["RuleName"]: r["Properties"]["TopicRulePayload"]["Sql"]
        for r in synth.resources("AWS::IoT::TopicRule").values()
    }


def iot_resources(synth: Synthesized) -> set[str]:
    """The IoT resources (after ``arn:...:iot:<region>:<account>:``) of every IAM grant."""
    found = set()
    for ref in policy_statements(synth.json):
        if not any(action.startswith("iot:") and action != "iot:DescribeEndpoint" for action in ref.actions):
            continue
        for resource in ref.resources:
            parts = resource["Fn::Join"][1]
            assert isinstance(parts[-1], str) and parts[-1].startswith(":"), resource
            found.add(parts[-1][1:])
    return found


def iam_matches(pattern: str, value: str) -> bool:
    """IAM resource matching: ``*`` any run of characters (``/`` included), ``?`` any one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value) is not None


def concrete_resources(synth: Synthesized) -> set[str]:
    """What the stage's bridge and Lambdas actually touch for one charger, as IAM resources."""
    env = bridge_environment(synth)
    topics = Topics(env["OCPP_TOPIC_ROOT"])
    resources = {
        f"client/{env['BRIDGE_CLIENT_ID_PREFIX']}{CHARGER}",
        f"topic/{topics.inbound(CHARGER)}",
        f"topic/{topics.events(CHARGER)}",
        f"topic/{topics.outbound(CHARGER)}",
        f"topicfilter/{topics.outbound(CHARGER)}",
    }
    if "BRIDGE_BASIC_INGEST_RULE" in env:
        resources.add("topic/" + basic_ingest_topic(env["BRIDGE_BASIC_INGEST_RULE"], topics.inbound(CHARGER)))
    return resources


def _names_a_resource_of_this_stack(value: Any) -> bool:
    """A Ref / GetAtt of one of the stack's own resources: a generated name, stack-scoped."""
    if isinstance(value, dict):
        if "Ref" in value:
            return not str(value["Ref"]).startswith("AWS::")
        if "Fn::GetAtt" in value:
            return True
        return any(_names_a_resource_of_this_stack(v) for v in value.values())
    if isinstance(value, list):
        return any(_names_a_resource_of_this_stack(v) for v in value)
    return False


def account_wide_names(synth: Synthesized) -> set[str]:
    """Physical names the template sets itself (literal, or built from the stage and region)."""
    names = set()
    for resource in synth.json["Resources"].values():
        if resource["Type"] == "AWS::EC2::VPCEndpoint":  # ServiceName is AWS's service, not a name of ours
            continue
        for key, value in resource.get("Properties", {}).items():
            if key in ACCOUNT_WIDE_NAMES and not _names_a_resource_of_this_stack(value):
                names.add(json.dumps(value, sort_keys=True))
    return names


# --- within a stage: one root, one prefix, everywhere -----------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_policy_rules_bridge_and_lambdas_derive_from_the_same_root(stages: dict[str, Synthesized], stage: str) -> None:
    synth = stages[stage]
    env = bridge_environment(synth)
    root = env["OCPP_TOPIC_ROOT"]
    assert root == f"ocpp-{stage}" and env["OCPP_STAGE"] == stage
    assert env["BRIDGE_CLIENT_ID_PREFIX"] == f"ocpp-{stage}."
    rules = topic_rules(synth)
    assert env["BRIDGE_BASIC_INGEST_RULE"] in rules
    assert {compile_rule(sql).topic_filter for sql in rules.values()} == {f"{root}/+/in", f"{root}/+/events"}
    for props in (r["Properties"] for r in synth.resources("AWS::Lambda::Function").values()):
        variables = props.get("Environment", {}).get("Variables", {})
        if props.get("Handler", "").startswith("lambdas."):
            assert (variables["OCPP_TOPIC_ROOT"], variables["OCPP_STAGE"]) == (root, stage)
    # every IoT grant is on the stage's own client ids or topics
    for resource in iot_resources(synth):
        assert resource.startswith(
            (f"client/ocpp-{stage}.", f"topic/{root}/", f"topicfilter/{root}/", "topic/$aws/rules/")
        )
    # and covers everything the stage does
    patterns = iot_resources(synth)
    for concrete in concrete_resources(synth) - {f"topic/{Topics(root).inbound(CHARGER)}"}:  # Basic Ingest instead
        assert any(iam_matches(p, concrete) for p in patterns), concrete


# --- between stages: nothing shared ---------------------------------------------------------------


@pytest.mark.parametrize("stage", STAGES)
def test_no_rule_of_one_stage_takes_the_other_stages_messages(stages: dict[str, Synthesized], stage: str) -> None:
    mine = topic_rules(stages[stage])
    theirs = topic_rules(stages[other(stage)])
    assert not set(mine) & set(theirs)
    their_topics = Topics(bridge_environment(stages[other(stage)])["OCPP_TOPIC_ROOT"])
    for sql in mine.values():
        rule = compile_rule(sql)
        for direction in ("in", "out", "events"):
            assert not rule.matches(their_topics.topic(CHARGER, direction))


@pytest.mark.parametrize("stage", STAGES)
def test_no_grant_of_one_stage_reaches_the_other_stages_clients_or_topics(
    stages: dict[str, Synthesized], stage: str
) -> None:
    patterns = iot_resources(stages[stage])
    for concrete in concrete_resources(stages[other(stage)]):
        # same charger id in both: a dev connection can never take over the prod session
        assert not any(iam_matches(p, concrete) for p in patterns), (stage, concrete)


def test_the_same_charger_has_a_different_mqtt_client_id_in_each_stage(stages: dict[str, Synthesized]) -> None:
    client_ids = {bridge_environment(s)["BRIDGE_CLIENT_ID_PREFIX"] + CHARGER for s in stages.values()}
    assert len(client_ids) == len(STAGES)


def _stage_dimensions(synth: Synthesized) -> set[str]:
    """The Stage value of every metric of the shared EMF namespaces the stack reads."""
    values: set[str] = set()
    for resource in synth.json["Resources"].values():
        text = json.dumps(resource.get("Properties", {}))
        if '"OCPP/' not in text:
            continue
        for match in re.finditer(r'"Name": "Stage", "Value": "([^"]+)"', text):
            values.add(match.group(1))
        for match in re.finditer(r'Stage=\\\\"([^\\]+)\\\\"', text):
            values.add(match.group(1))
    for row in dashboard_metrics(synth):
        if row and row[0] in ("OCPP/Bridge", "OCPP/CSMS"):
            values.add(row[row.index("Stage") + 1])
    return values


@pytest.mark.parametrize("stage", STAGES)
def test_alarms_autoscaling_and_dashboard_read_only_the_stages_own_metrics(
    stages: dict[str, Synthesized], stage: str
) -> None:
    assert _stage_dimensions(stages[stage]) == {stage}
    scaling = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]
        for p in stages[stage].resources("AWS::ApplicationAutoScaling::ScalingPolicy").values()
    ]
    custom = [c["CustomizedMetricSpecification"] for c in scaling if "CustomizedMetricSpecification" in c]
    assert custom and all({"Name": "Stage", "Value": stage} in c["Dimensions"] for c in custom)


def test_no_account_wide_name_is_shared(stages: dict[str, Synthesized]) -> None:
    names: dict[str, set[str]] = {stage: account_wide_names(synth) for stage, synth in stages.items()}
    # rule, alarm, dashboard and API names at least: the ones a stage writes itself
    assert {"RuleName", "AlarmName", "DashboardName"} <= {
        key
        for resource in stages["dev"].json["Resources"].values()
        for key in resource.get("Properties", {})
        if key in ACCOUNT_WIDE_NAMES
    }
    assert len(names["dev"]) >= 15 and len(names["prod"]) >= 15
    assert not names["dev"] & names["prod"]
    assert len({synth.stack.stack_name for synth in stages.values()}) == len(STAGES)
