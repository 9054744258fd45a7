"""The outbox timer on AWS (DESIGN §10): a function an EventBridge rule invokes every minute,
allowed what the message processor is allowed plus the index query it needs, and monitored."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from aws_cdk.assertions import Match

from infra.processing import TIMER_HANDLER
from infra.stack import TABLE_DATA_ACTIONS
from lambdas.rules import MESSAGE_RULE
from ocpp_core import keys

from .support import Synthesized, as_json, function, grants, iot_arn, nag_violations, role_of, synthesize


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize({"stage": "dev"}, tmp_path_factory.mktemp("cdk-timer"))


def test_the_timer_function_runs_the_timer_handler_alone_for_up_to_a_minute(synth: Synthesized) -> None:
    _, props = function(synth, TIMER_HANDLER)
    assert props["MemorySize"] == 256
    assert props["Timeout"] == 60
    # two runs that meet are harmless but useless
    assert props["ReservedConcurrentExecutions"] == 1
    assert props["Description"] == "Outbox timer: applies CSMS call timeouts and sends queued calls"
    assert props["Architectures"] == ["arm64"]
    assert "LoggingConfig" in props  # a log group of ours, with retention


def test_the_timer_has_the_message_processors_environment(synth: Synthesized) -> None:
    _, timer = function(synth, TIMER_HANDLER)
    _, processor = function(synth, MESSAGE_RULE.handler)
    timer_env = dict(timer["Environment"]["Variables"])
    processor_env = dict(processor["Environment"]["Variables"])
    # its own service (the log field and the EMF dimension), everything else the same
    assert timer_env.pop("POWERTOOLS_SERVICE_NAME") == "ocpp-timer"
    processor_env.pop("POWERTOOLS_SERVICE_NAME")
    assert timer_env == processor_env


def test_a_rule_invokes_it_every_minute_without_retries(synth: Synthesized) -> None:
    timer_id, _ = function(synth, TIMER_HANDLER)
    (rule_id, rule), *others = [
        (logical_id, resource["Properties"])
        for logical_id, resource in synth.resources("AWS::Events::Rule").items()
        if any(target["Arn"] == {"Fn::GetAtt": [timer_id, "Arn"]} for target in resource["Properties"]["Targets"])
    ]
    assert others == []
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    assert rule["State"] == "ENABLED"
    (target,) = rule["Targets"]
    # the next minute is the retry
    assert target["RetryPolicy"]["MaximumRetryAttempts"] == 0
    # only EventBridge, only from this rule
    synth.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [timer_id, "Arn"]},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
        },
    )
    # nor does Lambda retry a failed run (its default for async invocations is twice)
    synth.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {"FunctionName": {"Ref": timer_id}, "MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60},
    )


def test_the_timers_role_publishes_only_to_the_out_topics_and_uses_only_the_table(synth: Synthesized) -> None:
    _, timer = function(synth, TIMER_HANDLER)
    table_arn = {"Fn::GetAtt": [next(iter(synth.resources("AWS::DynamoDB::Table"))), "Arn"]}
    table = as_json(table_arn)
    index = as_json({"Fn::Join": ["", [table_arn, f"/index/{keys.LIST_INDEX}"]]})
    expected = {
        ("iot:Publish", as_json(iot_arn("topic/ocpp-dev/*/out"))),
        *((action, table) for action in TABLE_DATA_ACTIONS),
        # overdue calls and chargers with queued calls: the sparse list index, queried only
        ("dynamodb:Query", index),
    }
    assert grants(synth.json, role_of(timer)) == expected


def test_the_timer_may_do_what_the_message_processor_may_do_with_the_table_and_topics(synth: Synthesized) -> None:
    _, timer = function(synth, TIMER_HANDLER)
    _, processor = function(synth, MESSAGE_RULE.handler)

    def table_and_topics(role: str) -> set[tuple[str, str]]:
        # (the processor also sends failed events to the failure queue; the timer has none)
        return {(a, r) for a, r in grants(synth.json, role) if a.startswith(("dynamodb:", "iot:"))}

    assert table_and_topics(role_of(processor)) <= table_and_topics(role_of(timer))


def test_errors_and_throttles_of_the_timer_alarm(synth: Synthesized) -> None:
    timer_id, _ = function(synth, TIMER_HANDLER)
    for metric, name in (("Errors", "TimerErrors"), ("Throttles", "TimerThrottles")):
        synth.template.has_resource_properties(
            "AWS::CloudWatch::Alarm",
            {
                "AlarmName": f"OCPP-CSMS-dev-{name}",
                "Namespace": "AWS/Lambda",
                "MetricName": metric,
                "Dimensions": [{"Name": "FunctionName", "Value": {"Ref": timer_id}}],
                "AlarmActions": [Match.any_value()],
            },
        )


def test_the_dashboard_graphs_the_timer(synth: Synthesized) -> None:
    timer_id, _ = function(synth, TIMER_HANDLER)
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    assert "outbox timer" in body and json.dumps({"Ref": timer_id}) in body


def test_cdk_nag_finds_nothing_unacknowledged_with_the_timer(synth: Synthesized) -> None:
    assert nag_violations(synth.stack) == []
