"""lambdas/rules.py per stage: each stage's rules read its own topics, and Basic Ingest names the charger.

The SQL is evaluated with the local rule emulator's evaluator (local_stack/rules.py), the same one
the local stack runs; :func:`lambdas.rules.topic_seen_by_rule` is what the AWS documentation says
a rule sees of a Basic Ingest topic (the ``$aws/rules/<rule>/`` prefix removed).
"""

from __future__ import annotations

import json

import pytest

from lambdas.rules import (
    LIFECYCLE_RULE,
    LIFECYCLE_RULE_NAME,
    MESSAGE_RULE,
    MESSAGE_RULE_NAME,
    RULES,
    rules_for,
    topic_seen_by_rule,
)
from local_stack.rules import compile_rule, topic_matches
from ocpp_core.topics import DEFAULT_TOPICS, Topics, basic_ingest_topic

ENVELOPE = json.dumps(
    {
        "chargePointId": "CP-1",
        "protocol": "ocpp1.6",
        "connectionId": "c1",
        "receivedAt": 1,
        "frame": '[2,"1","Heartbeat",{}]',
    }
).encode()


def test_the_default_rules_are_the_local_stacks_on_the_root_ocpp() -> None:
    assert rules_for(DEFAULT_TOPICS) == RULES == (MESSAGE_RULE, LIFECYCLE_RULE)
    assert MESSAGE_RULE.name == MESSAGE_RULE_NAME and LIFECYCLE_RULE.name == LIFECYCLE_RULE_NAME
    assert MESSAGE_RULE.sql == (
        "SELECT *, topic(2) AS topicChargePointId, timestamp() AS ruleTimestamp FROM 'ocpp/+/in'"
    )
    assert compile_rule(LIFECYCLE_RULE.sql).topic_filter == "ocpp/+/events"


@pytest.mark.parametrize("root", ["ocpp-dev", "fleet/prod", "a/b/c/d"])
def test_a_stages_rules_read_its_topics_and_name_the_charger_at_its_level(root: str) -> None:
    topics = Topics(root)
    message, lifecycle = rules_for(topics, "dev-x")
    assert (message.name, lifecycle.name) == ("dev_x_ocpp_inbound_messages", "dev_x_ocpp_connection_events")
    assert (message.base_name, lifecycle.base_name) == (MESSAGE_RULE_NAME, LIFECYCLE_RULE_NAME)
    for rule, topic in ((message, topics.inbound("CP-9")), (lifecycle, topics.events("CP-9"))):
        compiled = compile_rule(rule.sql)
        assert compiled.matches(topic)
        assert compiled.evaluate(topic, ENVELOPE, 7)["topicChargePointId"] == "CP-9"
    assert not compile_rule(message.sql).matches(topics.events("CP-9"))
    # and never the other roots' topics (the local stack's included)
    assert not compile_rule(message.sql).matches(DEFAULT_TOPICS.inbound("CP-9"))


def test_basic_ingest_the_rule_sees_the_topic_without_its_prefix() -> None:
    topics = Topics("ocpp-prod")
    message, _ = rules_for(topics, "prod")
    published = basic_ingest_topic(message.name, topics.inbound("CP-7"))
    assert published == "$aws/rules/prod_ocpp_inbound_messages/ocpp-prod/CP-7/in"
    # "The initial prefix of a Basic Ingest topic ($aws/rules/rule_name) isn't available to the
    # topic(Decimal) function" (iot-basic-ingest.html): the rule sees ocpp-prod/CP-7/in
    seen = topic_seen_by_rule(published)
    assert seen == topics.inbound("CP-7")
    event = compile_rule(message.sql).evaluate(seen, ENVELOPE, 42)
    assert event["topicChargePointId"] == "CP-7" and event["ruleTimestamp"] == 42
    assert event["frame"] == '[2,"1","Heartbeat",{}]'


def test_the_same_sql_names_the_charger_with_and_without_basic_ingest() -> None:
    topics = Topics("ocpp-dev")
    message, _ = rules_for(topics, "dev")
    compiled = compile_rule(message.sql)
    plain = topics.inbound("CP-3")
    ingest = basic_ingest_topic(message.name, plain)
    events = [compiled.evaluate(topic_seen_by_rule(t), ENVELOPE, 1) for t in (plain, ingest)]
    assert events[0] == events[1] and events[0]["topicChargePointId"] == "CP-3"
    # a Basic Ingest topic never reaches a subscriber (the broker is not on its path): the
    # emulator's filter matching does not take it either
    assert not topic_matches(topics.filter("in"), ingest)


def test_topic_seen_by_rule_leaves_other_topics_alone() -> None:
    assert topic_seen_by_rule("ocpp/CP-1/in") == "ocpp/CP-1/in"
    assert topic_seen_by_rule("$aws/rules/r") == ""
    assert topic_seen_by_rule("$aws/things/x/shadow/update") == "$aws/things/x/shadow/update"


def test_rule_names_are_iot_rule_names_unique_per_stage() -> None:
    names = {rule.name for stage in ("dev", "prod", "dev-x", "qa-2") for rule in rules_for(Topics(), stage)}
    assert len(names) == 8
    assert all(name.replace("_", "").isalnum() for name in names)
