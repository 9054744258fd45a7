"""The IoT rule SQL is defined once (lambdas.rules) and gives the same event locally and on AWS.

infra/ deploys the rules from ``lambdas.rules.RULES``; the local stack's rule emulator
evaluates the same definitions. The fixture events in tests/events are checked here to be
exactly what the rule makes of the bridge's payloads, so the handler tests use the real shape.
"""

from __future__ import annotations

import ast
import inspect
import json
import pathlib
import queue
import re
from typing import Any

import pytest

from fargate_bridge import topics
from lambdas import lifecycle, message_processor, rules
from lambdas.rules import LIFECYCLE_RULE, MESSAGE_RULE, RULES
from local_stack import emulator as emulator_module
from local_stack.emulator import RuleEmulator, resolve_handler
from local_stack.rules import compile_rule

from .support import load_event

ROOT = pathlib.Path(__file__).resolve().parents[2]
ADDED_BY_THE_RULE = ("topicChargePointId", "ruleTimestamp")

INBOUND_FIXTURES = (
    "boot_notification_16",
    "heartbeat_201",
    "transaction_event_21",
    "call_result_16",
    "garbage_frame",
)
LIFECYCLE_FIXTURES = ("connected", "disconnected")


def bridge_payload(name: str) -> tuple[str, bytes, int]:
    """(topic, payload bytes as the bridge publishes them, rule time) for a fixture event."""
    event = load_event(name)
    cp = event["topicChargePointId"]
    if "frame" in event:
        encoder = topics.EnvelopeEncoder(cp, event["protocol"], event["connectionId"])
        return topics.inbound_topic(cp), encoder.encode(event["receivedAt"], event["frame"]), event["ruleTimestamp"]
    payload = topics.encode_event(
        event["event"], cp, event["protocol"], event["connectionId"], event["at"], event["reason"]
    )
    return topics.events_topic(cp), payload, event["ruleTimestamp"]


def test_the_rules_invoke_the_handlers_they_name() -> None:
    assert RULES == (MESSAGE_RULE, LIFECYCLE_RULE)
    assert resolve_handler(MESSAGE_RULE.handler) is message_processor.handler
    assert resolve_handler(LIFECYCLE_RULE.handler) is lifecycle.handler
    assert compile_rule(MESSAGE_RULE.sql).topic_filter == "ocpp/+/in"
    assert compile_rule(LIFECYCLE_RULE.sql).topic_filter == "ocpp/+/events"


@pytest.mark.parametrize("name", INBOUND_FIXTURES)
def test_inbound_fixtures_are_exactly_what_the_message_rule_makes_of_the_bridges_envelope(name: str) -> None:
    topic, payload, rule_time = bridge_payload(name)
    envelope = json.loads(payload)
    assert set(envelope) == {"chargePointId", "protocol", "connectionId", "receivedAt", "frame"}  # DESIGN §2
    rule = compile_rule(MESSAGE_RULE.sql)
    assert rule.matches(topic)
    assert rule.evaluate(topic, payload, rule_time) == load_event(name)


@pytest.mark.parametrize("name", LIFECYCLE_FIXTURES)
def test_lifecycle_fixtures_are_exactly_what_the_events_rule_makes_of_the_bridges_event(name: str) -> None:
    topic, payload, rule_time = bridge_payload(name)
    assert set(json.loads(payload)) == {"event", "chargePointId", "protocol", "connectionId", "at", "reason"}
    rule = compile_rule(LIFECYCLE_RULE.sql)
    assert rule.matches(topic) and not compile_rule(MESSAGE_RULE.sql).matches(topic)
    assert rule.evaluate(topic, payload, rule_time) == load_event(name)


@pytest.mark.parametrize(
    ("name", "rule", "suffix"),
    [("malformed_envelope", MESSAGE_RULE, "in"), ("malformed_lifecycle", LIFECYCLE_RULE, "events")],
)
def test_malformed_fixtures_are_what_the_rule_makes_of_a_payload_missing_fields(
    name: str, rule: rules.RuleDefinition, suffix: str
) -> None:
    event = load_event(name)
    body = {k: v for k, v in event.items() if k not in ADDED_BY_THE_RULE}
    topic = f"ocpp/{event['topicChargePointId']}/{suffix}"
    assert compile_rule(rule.sql).evaluate(topic, json.dumps(body).encode(), event["ruleTimestamp"]) == event


def test_the_topic_not_the_body_names_the_charger() -> None:
    _, payload, rule_time = bridge_payload("boot_notification_16")
    event = compile_rule(MESSAGE_RULE.sql).evaluate("ocpp/CP-elsewhere/in", payload, rule_time)
    assert event["topicChargePointId"] == "CP-elsewhere" and event["chargePointId"] == "CP-16"


def test_the_emulator_runs_the_very_same_rule_definitions() -> None:
    """RuleEmulator, built as the local stack builds it, routes each topic to its rule's handler."""
    recorded: list[tuple[str, dict[str, Any]]] = []
    handlers = {rule.name: (lambda event, ctx, name=rule.name: recorded.append((name, event))) for rule in RULES}
    emulator = RuleEmulator("127.0.0.1", 1, RULES, handlers=handlers, workers=1)  # never started: no broker
    assert [binding.rule for binding in emulator._bindings] == list(RULES)
    assert all(b.rule is r and b.compiled.sql is r.sql for b, r in zip(emulator._bindings, RULES, strict=True))

    for name in ("boot_notification_16", "connected"):
        topic, payload, _ = bridge_payload(name)
        emulator._on_message(topic, payload)
    emulator._on_message("ocpp/CP-16/out", b'[3,"x",{}]')  # replies are not rule input
    routed = []
    while True:  # ordered delivery: the topics with work, and each topic's line of jobs
        try:
            topic = emulator._queue.get_nowait()
        except queue.Empty:
            break
        routed.extend((binding.rule.name, event) for binding, event, _ in emulator._lines[topic])
    assert [name for name, _ in routed] == [MESSAGE_RULE.name, LIFECYCLE_RULE.name]
    for (_, event), fixture in zip(routed, ("boot_notification_16", "connected"), strict=True):
        expected = load_event(fixture)
        # The emulator stamps the wall clock as timestamp(); everything else is the fixture.
        assert isinstance(event.pop("ruleTimestamp"), int)
        expected.pop("ruleTimestamp")
        assert event == expected


def test_the_local_stack_hands_the_emulator_lambdas_rules() -> None:
    source = (ROOT / "local_stack" / "stack.py").read_text()
    tree = ast.parse(source)
    imports = {
        (node.module, alias.name) for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names
    }
    assert ("lambdas.rules", "RULES") in imports
    emulator_calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "RuleEmulator"
    ]
    assert emulator_calls, "local_stack/stack.py no longer builds the RuleEmulator"
    for call in emulator_calls:
        assert any(isinstance(arg, ast.Name) and arg.id == "RULES" for arg in call.args)
    assert emulator_module.RuleDefinition is rules.RuleDefinition


def test_infra_deploys_lambdas_rules() -> None:
    pytest.importorskip("aws_cdk")
    from infra import processing

    assert processing.RULES is RULES
    assert processing.AWS_IOT_SQL_VERSION is rules.AWS_IOT_SQL_VERSION
    default = inspect.signature(processing.Processing.__init__).parameters["rules"].default
    assert default is RULES


_RULE_SQL_TEMPLATE = re.compile(r"\bSELECT\b.+\bFROM\s+'", re.IGNORECASE | re.DOTALL)
_RULE_SQL = re.compile(r"\bSELECT\b.+\bFROM\s+'ocpp/", re.IGNORECASE | re.DOTALL)


def _string_constants(path: pathlib.Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [node.value for node in ast.walk(tree) if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_no_other_module_spells_out_rule_sql() -> None:
    """The SQL strings live in lambdas/rules.py only: nothing else can drift from them."""
    offenders = []
    for package in ("lambdas", "local_stack", "infra", "fargate_bridge", "ocpp_core"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == ROOT / "lambdas" / "rules.py":
                continue
            for text in _string_constants(path):
                if _RULE_SQL.search(text):
                    offenders.append(f"{path.relative_to(ROOT)}: {text[:80]!r}")
    assert offenders == []
    # rules.py builds every rule's SQL from one template (per stage topic root): it spells it once.
    assert sum(bool(_RULE_SQL_TEMPLATE.search(t)) for t in _string_constants(ROOT / "lambdas" / "rules.py")) == 1
