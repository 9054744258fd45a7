"""The rule emulator survives a handler that raises: it logs the failure, and the next message still flows.

Runs against a mosquitto of the test's own, with the message rule's very SQL and a handler
resolved by its dotted path, as the local stack resolves the Lambda handlers.
"""

from __future__ import annotations

import json
import logging
import queue
import time
from dataclasses import replace
from typing import Any

import pytest

from lambdas.rules import MESSAGE_RULE
from local_stack.broker import MosquittoProcess
from local_stack.emulator import RuleEmulator
from local_stack.mqtt import MqttClient

pytestmark = pytest.mark.timeout(60)

HANDLED: queue.Queue[tuple[dict[str, Any], Any]] = queue.Queue()


def flaky_handler(event: dict[str, Any], context: Any) -> None:
    """The rule's Lambda handler in this test: raises on a frame asking for it, records the others."""
    if event.get("frame") == "raise":
        raise RuntimeError("the handler failed on purpose")
    HANDLED.put((event, context))


def test_a_handler_that_raises_is_logged_and_the_next_message_of_the_charger_still_flows(
    private_mosquitto: MosquittoProcess, caplog: pytest.LogCaptureFixture
) -> None:
    rule = replace(MESSAGE_RULE, handler=f"{__name__}.flaky_handler")
    cp = "CP-FLAKY"
    topic = f"ocpp/{cp}/in"
    host, port = private_mosquitto.host, private_mosquitto.port
    caplog.set_level(logging.ERROR, logger="local_stack.emulator")
    # One worker: the very thread that saw the exception must handle the next message.
    emulator = RuleEmulator(host, port, [rule], workers=1).start()
    publisher = MqttClient(host, port, "test-emulator-publisher").start()
    try:
        before = time.time_ns() // 1_000_000
        publisher.publish(topic, json.dumps({"chargePointId": cp, "frame": "raise"}))
        body = {"chargePointId": cp, "protocol": "ocpp1.6", "frame": [2, "1", "Heartbeat", {}]}
        publisher.publish(topic, json.dumps(body))
        event, context = HANDLED.get(timeout=10)
        after = time.time_ns() // 1_000_000
        deadline = time.monotonic() + 5
        while emulator.invocations < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        publisher.stop()
        emulator.stop()

    assert emulator.failures == 1 and emulator.invocations == 2
    assert HANDLED.empty()
    # The event is what the rule's SQL makes of the message: the JSON body, topic(2), timestamp().
    assert event == {**body, "topicChargePointId": cp, "ruleTimestamp": event["ruleTimestamp"]}
    assert before <= event["ruleTimestamp"] <= after
    assert context.function_name == rule.name

    [record] = [r for r in caplog.records if r.name == "local_stack.emulator" and r.levelno >= logging.ERROR]
    message = record.getMessage()
    assert topic in message and rule.handler in message and rule.name in message, message
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError
    assert "failed on purpose" in str(record.exc_info[1])
