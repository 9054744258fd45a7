"""The rule emulator: a handler that raises is logged and the next message still flows; both delivery modes.

Runs against a mosquitto of the test's own (or the session's), with the message rule's very SQL.
In ``aws`` mode the tests check that the emulator really does what AWS may do (permute one
charger's frames, duplicate, redeliver late) and never loses a message; with a seed, what it does
to one charger's messages is exactly its seeded plan, so the counts are asserted exactly.
"""

from __future__ import annotations

import itertools
import json
import logging
import queue
import random
import threading
import time
import uuid
import zlib
from dataclasses import replace
from typing import Any

import pytest

from lambdas.rules import MESSAGE_RULE
from local_stack.broker import MosquittoProcess
from local_stack.delivery import Delivery, DeliveryError, DeliveryKind, DeliveryMode, DeliverySettings
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


# --- delivery modes -------------------------------------------------------------------------

SEED = 20260301


class Recorder:
    """A rule handler that records (sequence number, monotonic time) of every delivery it gets."""

    def __init__(self, *, raise_on_odd: bool = False, block: threading.Event | None = None):
        self.seen: list[tuple[int, float]] = []
        self.started = threading.Event()
        self._raise_on_odd = raise_on_odd
        self._block = block
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        self.started.set()
        if self._block is not None:
            self._block.wait(30)
        with self._lock:
            self.seen.append((event["seq"], time.monotonic()))
        if self._raise_on_odd and event["seq"] % 2:
            raise RuntimeError("odd messages fail on purpose")


def _emulator(
    broker: MosquittoProcess, handler: Recorder, delivery: DeliverySettings, workers: int = 8
) -> RuleEmulator:
    return RuleEmulator(
        broker.host,
        broker.port,
        [MESSAGE_RULE],
        handlers={MESSAGE_RULE.name: handler},
        workers=workers,
        delivery=delivery,
    ).start()


def _publish(broker: MosquittoProcess, topic: str, count: int) -> dict[int, float]:
    """Publishes ``count`` frames of one charger back to back; returns when each was sent."""
    sent: dict[int, float] = {}
    publisher = MqttClient(broker.host, broker.port, f"test-publisher-{uuid.uuid4().hex[:8]}").start()
    try:
        for seq in range(count):
            sent[seq] = time.monotonic()
            publisher.publish(topic, json.dumps({"chargePointId": topic.split("/")[1], "seq": seq}))
    finally:
        publisher.stop()
    return sent


def _expected_plan(settings: DeliverySettings, topic: str, count: int) -> list[list[DeliveryKind]]:
    """What the emulator must do with ``count`` messages on ``topic``: its seeded stream, replayed."""
    rng = random.Random(f"{settings.seed}/{topic}")
    return [[d.kind for d in settings.plan(rng)] for _ in range(count)]


def test_aws_mode_permutes_duplicates_and_redelivers_late_without_losing_a_message(
    mosquitto: MosquittoProcess,
) -> None:
    settings = DeliverySettings(
        DeliveryMode.AWS, max_delay_s=0.05, duplicate_rate=0.2, late_rate=0.1, late_delay_s=(0.4, 0.8), seed=SEED
    )
    topic, count = "ocpp/CP-AWS-ORDER/in", 300
    recorder = Recorder()
    emulator = _emulator(mosquitto, recorder, settings)
    try:
        sent = _publish(mosquitto, topic, count)
        assert emulator.wait_idle(timeout=20), f"{emulator.outstanding} deliveries still outstanding"
    finally:
        emulator.stop()

    plan = _expected_plan(settings, topic, count)
    expected_duplicates = sum(kinds.count(DeliveryKind.DUPLICATE) for kinds in plan)
    expected_late = sum(kinds.count(DeliveryKind.LATE) for kinds in plan)
    # The seeded stream of this charger's topic is what happened, exactly.
    assert (emulator.messages, emulator.duplicates, emulator.late) == (count, expected_duplicates, expected_late)
    assert emulator.invocations == count + expected_duplicates + expected_late and emulator.dropped == 0

    deliveries: dict[int, list[float]] = {}
    for seq, at in recorder.seen:
        deliveries.setdefault(seq, []).append(at)
    # Nothing lost, and each message handled as often as planned.
    assert sorted(deliveries) == list(range(count))
    assert {seq: len(times) for seq, times in deliveries.items()} == {seq: len(kinds) for seq, kinds in enumerate(plan)}
    # One charger's frames, handled out of order (the order of their first deliveries).
    first = sorted(deliveries, key=lambda seq: min(deliveries[seq]))
    inversions = sum(1 for a, b in itertools.pairwise(first) if a > b)
    assert inversions >= 10, f"only {inversions} of {count} adjacent pairs out of order"
    # Late ones come after the late delay, measured from the frame's publish; the others well before it.
    late_seen = [at - sent[seq] for seq, times in deliveries.items() for at in times if at - sent[seq] >= 0.4]
    assert len(late_seen) == expected_late
    assert all(0.4 <= delay <= 0.8 + 0.5 for delay in late_seen), late_seen


def test_aws_mode_rates_are_the_configured_ones() -> None:
    settings = DeliverySettings(DeliveryMode.AWS, duplicate_rate=0.05, late_rate=0.02, seed=SEED)
    rng = random.Random(SEED)
    plans = [settings.plan(rng) for _ in range(20_000)]
    assert all(plan[0].kind is DeliveryKind.ORIGINAL for plan in plans)
    duplicates = sum(d.kind is DeliveryKind.DUPLICATE for plan in plans for d in plan) / len(plans)
    late = [d.delay_s for plan in plans for d in plan if d.kind is DeliveryKind.LATE]
    assert 0.045 <= duplicates <= 0.055
    assert 0.017 <= len(late) / len(plans) <= 0.023
    assert all(1.0 <= delay <= 3.0 for delay in late)
    assert all(0.0 <= d.delay_s <= 0.05 for plan in plans for d in plan if d.kind is not DeliveryKind.LATE)
    # Ordered mode: one delivery, at once.
    assert DeliverySettings().plan(rng) == [Delivery(0.0, DeliveryKind.ORIGINAL)]


def test_ordered_mode_keeps_each_chargers_order(mosquitto: MosquittoProcess) -> None:
    recorder = Recorder()
    emulator = _emulator(mosquitto, recorder, DeliverySettings(), workers=4)
    try:
        _publish(mosquitto, "ocpp/CP-IN-ORDER/in", 200)
        assert emulator.wait_idle(timeout=20)
    finally:
        emulator.stop()
    assert [seq for seq, _ in recorder.seen] == list(range(200))
    assert (emulator.duplicates, emulator.late, emulator.invocations) == (0, 0, 200)


def _publish_many(broker: MosquittoProcess, topics: list[str], count: int) -> None:
    """``count`` frames on each topic, interleaved."""
    publisher = MqttClient(broker.host, broker.port, f"test-publisher-{uuid.uuid4().hex[:8]}").start()
    try:
        for seq in range(count):
            for topic in topics:
                publisher.publish(topic, json.dumps({"chargePointId": topic.split("/")[1], "seq": seq}))
    finally:
        publisher.stop()


def test_ordered_mode_keeps_every_chargers_order_across_workers(mosquitto: MosquittoProcess) -> None:
    seen: dict[str, list[int]] = {}
    lock = threading.Lock()

    def record(event: dict[str, Any], context: Any) -> None:
        time.sleep(random.random() / 1000)  # let the workers overtake each other
        with lock:
            seen.setdefault(event["chargePointId"], []).append(event["seq"])

    emulator = RuleEmulator(
        mosquitto.host, mosquitto.port, [MESSAGE_RULE], handlers={MESSAGE_RULE.name: record}, workers=6
    ).start()
    topics = [f"ocpp/CP-MANY-{n}/in" for n in range(20)]
    try:
        _publish_many(mosquitto, topics, 40)
        assert emulator.wait_idle(timeout=20)
    finally:
        emulator.stop()
    assert seen == {topic.split("/")[1]: list(range(40)) for topic in topics}


def test_ordered_mode_a_slow_message_holds_up_only_its_own_charger(mosquitto: MosquittoProcess) -> None:
    """With two workers and two chargers whose topics once shared a worker (the same CRC32 bucket,
    the former design), a handler stuck on one charger's message leaves the other's flowing."""
    workers = 2
    slow = "ocpp/CP-SLOW-0/in"
    other = next(
        f"ocpp/CP-OTHER-{n}/in"
        for n in itertools.count()
        if zlib.crc32(f"ocpp/CP-OTHER-{n}/in".encode()) % workers == zlib.crc32(slow.encode()) % workers
    )
    release = threading.Event()
    stuck = threading.Event()
    handled: queue.Queue[tuple[str, int]] = queue.Queue()

    def handle(event: dict[str, Any], context: Any) -> None:
        if event["chargePointId"] == "CP-SLOW-0" and event["seq"] == 0:
            stuck.set()
            release.wait(30)
        handled.put((event["chargePointId"], event["seq"]))

    emulator = RuleEmulator(
        mosquitto.host, mosquitto.port, [MESSAGE_RULE], handlers={MESSAGE_RULE.name: handle}, workers=workers
    ).start()
    try:
        _publish(mosquitto, slow, 3)
        assert stuck.wait(10)
        _publish(mosquitto, other, 5)
        got = [handled.get(timeout=5) for _ in range(5)]  # all while the slow one is stuck
        assert got == [(other.split("/")[1], seq) for seq in range(5)]
        assert handled.empty()  # the slow charger's next messages wait for its first
        release.set()
        assert emulator.wait_idle(timeout=10)
    finally:
        release.set()
        emulator.stop()
    assert [handled.get_nowait() for _ in range(3)] == [("CP-SLOW-0", seq) for seq in range(3)]


def test_a_handler_that_raises_never_stops_the_aws_mode_workers(mosquitto: MosquittoProcess) -> None:
    settings = DeliverySettings(DeliveryMode.AWS, duplicate_rate=0.0, late_rate=0.0, seed=SEED)
    recorder = Recorder(raise_on_odd=True)
    emulator = _emulator(mosquitto, recorder, settings, workers=2)
    try:
        _publish(mosquitto, "ocpp/CP-AWS-RAISES/in", 100)
        assert emulator.wait_idle(timeout=20)
    finally:
        emulator.stop()
    assert sorted(seq for seq, _ in recorder.seen) == list(range(100))
    assert (emulator.invocations, emulator.failures) == (100, 50)


def test_stop_is_bounded_and_drops_the_deliveries_not_started(mosquitto: MosquittoProcess) -> None:
    # Every message redelivered late (in 30 s), and the one worker stuck in a handler.
    settings = DeliverySettings(DeliveryMode.AWS, duplicate_rate=0.0, late_rate=1.0, late_delay_s=(30, 30), seed=SEED)
    release = threading.Event()
    recorder = Recorder(block=release)
    emulator = _emulator(mosquitto, recorder, settings, workers=1)
    try:
        _publish(mosquitto, "ocpp/CP-AWS-STOP/in", 5)
        assert recorder.started.wait(10)
        deadline = time.monotonic() + 10
        while emulator.messages < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        emulator.stop(timeout=1.0)
        took = time.monotonic() - started
    finally:
        release.set()
    assert took < 2.0, f"stop() took {took:.1f} s"
    # 5 late ones waiting, and 4 originals queued behind the stuck handler: none of them ran.
    assert emulator.dropped == 9
    time.sleep(0.2)
    assert len(recorder.seen) <= 1


def test_delivery_settings_from_the_environment() -> None:
    assert DeliverySettings.from_env({}) == DeliverySettings()
    settings = DeliverySettings.from_env(
        {
            "OCPP_RULE_DELIVERY": "AWS",
            "OCPP_RULE_MAX_DELAY_MS": "20",
            "OCPP_RULE_DUPLICATE_RATE": "0.5",
            "OCPP_RULE_LATE_RATE": "0.25",
            "OCPP_RULE_LATE_DELAY_MS": "500-1500",
            "OCPP_RULE_SEED": "7",
        }
    )
    assert settings == DeliverySettings(DeliveryMode.AWS, 0.02, 0.5, 0.25, (0.5, 1.5), 7)
    for env in (
        {"OCPP_RULE_DELIVERY": "sometimes"},
        {"OCPP_RULE_DUPLICATE_RATE": "1.5"},
        {"OCPP_RULE_LATE_DELAY_MS": "3000-1000"},
        {"OCPP_RULE_MAX_DELAY_MS": "soon"},
    ):
        with pytest.raises(DeliveryError) as error:
            DeliverySettings.from_env(env)
        assert next(iter(env)) in str(error.value) or "rate" in str(error.value) or "late delay" in str(error.value)


class TopicRecorder:
    """A rule handler that records the charger of every delivery, per emulator."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> None:
        with self._lock:
            self.seen.append((event["chargePointId"], event["seq"]))


@pytest.mark.parametrize("mode", [DeliveryMode.ORDERED, DeliveryMode.AWS])
def test_shards_on_one_broker_handle_every_message_once_and_a_topic_always_in_the_same_one(
    mosquitto: MosquittoProcess, mode: DeliveryMode
) -> None:
    # What the stack's Lambda environments do (local_stack.environment): one emulator per process.
    delivery = DeliverySettings(mode, duplicate_rate=0.0, late_rate=0.0, seed=SEED)
    recorders = [TopicRecorder(), TopicRecorder(), TopicRecorder()]
    emulators = [
        RuleEmulator(
            mosquitto.host,
            mosquitto.port,
            [MESSAGE_RULE],
            handlers={MESSAGE_RULE.name: recorder},
            delivery=delivery,
            shard=(index, len(recorders)),
        ).start()
        for index, recorder in enumerate(recorders)
    ]
    # Fixed ids (their shards are fixed too), of this test only on the shared broker.
    chargers = [f"CP-SHARD-{mode}-{n}" for n in range(20)]
    try:
        _publish_many(mosquitto, [f"ocpp/{cp}/in" for cp in chargers], 10)
        assert all(emulator.wait_idle(timeout=20) for emulator in emulators)
        deadline = time.monotonic() + 10
        while sum(len(r.seen) for r in recorders) < 200 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        for emulator in emulators:
            emulator.stop()
    handled = sorted(seen for recorder in recorders for seen in recorder.seen)
    assert handled == sorted((cp, seq) for cp in chargers for seq in range(10))  # each once, none lost
    owners = {cp: {i for i, r in enumerate(recorders) for seen_cp, _ in r.seen if seen_cp == cp} for cp in chargers}
    assert all(len(owner) == 1 for owner in owners.values()), owners
    assert {next(iter(owner)) for owner in owners.values()} == {0, 1, 2}  # 20 chargers: every shard has some
    for cp, owner in owners.items():
        assert emulators[next(iter(owner))].handles(f"ocpp/{cp}/in")


def test_a_shard_that_takes_over_handles_every_topic(mosquitto: MosquittoProcess) -> None:
    recorder = TopicRecorder()
    emulator = RuleEmulator(
        mosquitto.host, mosquitto.port, [MESSAGE_RULE], handlers={MESSAGE_RULE.name: recorder}, shard=(0, 2)
    ).start()
    chargers = [f"CP-TAKEOVER-{n}" for n in range(8)]
    try:
        mine = {cp for cp in chargers if emulator.handles(f"ocpp/{cp}/in")}
        assert 0 < len(mine) < len(chargers)
        emulator.take_over()
        _publish_many(mosquitto, [f"ocpp/{cp}/in" for cp in chargers], 2)
        deadline = time.monotonic() + 10
        while len(recorder.seen) < 16 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        emulator.stop()
    assert sorted(recorder.seen) == sorted((cp, seq) for cp in chargers for seq in range(2))


def test_a_shard_outside_its_count_is_refused() -> None:
    with pytest.raises(ValueError, match="shard"):
        RuleEmulator("127.0.0.1", 1, [MESSAGE_RULE], handlers={MESSAGE_RULE.name: TopicRecorder()}, shard=(2, 2))
