"""lambdas.message_processor.handler on moto: fixture events in, iot-data publishes and DynamoDB items out.

The events in tests/events are exactly what the ``ocpp/+/in`` rule hands the Lambda (the
bridge's envelope plus ``topicChargePointId`` and ``ruleTimestamp``; test_rules checks that).
Replies are read back from moto's iot-data backend, state from the table itself.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from lambdas import message_processor, runtime
from lambdas.adapters.dynamo import DynamoStore
from lambdas.publisher import IotDataPublisher, RecordingPublisher
from lambdas.runtime import Dependencies
from lambdas.settings import Settings
from ocpp_core import calls, keys
from ocpp_core.extensions import Extensions
from ocpp_core.handlers.transactions import transaction_view
from ocpp_core.timefmt import format_ms
from tests.fakes import mark_connected

from .support import (
    REGION,
    TABLE,
    FakeClock,
    FakeLambdaContext,
    SeqIds,
    load_event,
    moto_dependencies,
    published,
    raw_item,
    table_items,
)


def invoke(event: Any) -> dict[str, Any]:
    result: dict[str, Any] = message_processor.handler(event, FakeLambdaContext())
    return result


def frame_of(event: dict[str, Any]) -> list[Any]:
    frame: list[Any] = json.loads(event["frame"])
    return frame


def test_boot_notification_16_is_answered_on_the_out_topic_and_recorded(
    deps: Dependencies, dynamodb: Any, clock: FakeClock
) -> None:
    event = load_event("boot_notification_16")
    clock.advance(3)  # processed a little after the bridge received it
    assert invoke(event) == {"outcome": "replied", "uniqueId": "boot-16-1", "replied": True}

    [(topic, payload)] = published()
    assert topic == "ocpp/CP-16/out"
    # currentTime is the bridge's receive time (not the Lambda's clock): a redelivery, whenever it
    # is processed, gets the same reply.
    assert json.loads(payload) == [
        3,
        "boot-16-1",
        {"status": "Accepted", "currentTime": format_ms(event["receivedAt"]), "interval": 300},
    ]
    charger = deps.store.get_charger("CP-16")
    assert charger is not None
    assert charger["bootStatus"] == "Accepted" and charger["protocol"] == "ocpp1.6"
    assert charger["boot"] == {
        "chargePointVendor": "VendorX",
        "chargePointModel": "Model-16",
        "firmwareVersion": "1.2.3",
    }
    assert charger["bootAt"] == event["receivedAt"] and charger["lastSeen"] == event["receivedAt"]
    # A built-in handler is idempotent by construction: no idempotency record is written.
    assert [i for i in table_items(dynamodb) if i[keys.SK]["S"].startswith("MSG#")] == []


def test_a_redelivered_call_gets_the_same_reply_and_changes_state_once(
    deps: Dependencies, dynamodb: Any, clock: FakeClock
) -> None:
    event = load_event("boot_notification_16")
    invoke(event)
    items_after_first = table_items(dynamodb)

    clock.advance(5)  # a retry or an at-least-once duplicate, a little later
    # Built-in handlers run again and change nothing: the outcome is a reply, not a duplicate.
    assert invoke(event) == {"outcome": "replied", "uniqueId": "boot-16-1", "replied": True}

    first, second = published()
    assert first == second, "the duplicate must get the same reply, byte for byte"
    assert json.loads(second[1])[2]["currentTime"] == format_ms(event["receivedAt"])
    assert table_items(dynamodb) == items_after_first, "a duplicate must not change state"


def test_a_reused_unique_id_in_another_frame_is_a_new_message(deps: Dependencies, clock: FakeClock) -> None:
    """Unique ids are unique per connection only (OCPP-J): the same id in another frame, or on
    another connection, is answered for itself, not with the first frame's reply."""
    event = load_event("boot_notification_16")
    invoke(event)
    heartbeat = {**event, "receivedAt": event["receivedAt"] + 60_000, "frame": '[2,"boot-16-1","Heartbeat",{}]'}
    assert invoke(heartbeat)["outcome"] == "replied"
    rebooted = {**event, "connectionId": "after-reboot", "receivedAt": event["receivedAt"] + 120_000}
    assert invoke(rebooted)["outcome"] == "replied"
    replies = [json.loads(payload) for _, payload in published()]
    assert replies[1] == [3, "boot-16-1", {"currentTime": format_ms(heartbeat["receivedAt"])}]
    assert replies[2][2]["currentTime"] == format_ms(rebooted["receivedAt"])
    charger = deps.store.get_charger("CP-16")
    assert charger is not None and charger["bootAt"] == rebooted["receivedAt"]


def _hooked(seen: list[str]) -> Extensions:
    """An ``after`` hook on BootNotification: frames that reach it are claimed under MSG#<digest>."""
    extensions = Extensions()

    @extensions.after("BootNotification")
    def hook(ctx: Any, request: Any, response: Any) -> None:
        seen.append(ctx.unique_id)

    return extensions


def _message_key(event: dict[str, Any]) -> str:
    return keys.message_sk(keys.message_digest(event["connectionId"], frame_of(event)[1], event["frame"]))


def test_a_frame_reaching_an_extension_is_claimed_and_its_redelivery_gets_the_stored_reply(
    deps: Dependencies, dynamodb: Any, clock: FakeClock
) -> None:
    seen: list[str] = []
    deps.extensions = _hooked(seen)
    event = load_event("boot_notification_16")
    assert invoke(event)["outcome"] == "replied"
    [(_, payload)] = published()
    # The idempotency record holds the very reply that went out, with its TTL attribute.
    record = raw_item(dynamodb, keys.charger_pk("CP-16"), _message_key(event))
    assert record is not None
    assert record["status"] == {"S": "completed"} and record["reply"] == {"S": payload}
    assert record[keys.TTL_ATTRIBUTE] == {"N": str(clock.now_ms() // 1000 + deps.config.idempotency_ttl_s)}

    clock.advance(5)
    assert invoke(event) == {"outcome": "duplicate", "uniqueId": "boot-16-1", "replied": True}
    first, second = published()
    assert first == second
    assert seen == ["boot-16-1"], "the hook runs once"


def test_after_the_idempotency_ttl_a_lingering_record_no_longer_blocks_the_message(
    deps: Dependencies, dynamodb: Any, clock: FakeClock
) -> None:
    seen: list[str] = []
    deps.extensions = _hooked(seen)
    event = load_event("boot_notification_16")
    invoke(event)
    boot_at = deps.store.get_charger("CP-16")["bootAt"]  # type: ignore[index]
    clock.advance(deps.config.idempotency_ttl_s)
    # DynamoDB has not deleted the expired record (moto never does): the code checks the TTL.
    assert raw_item(dynamodb, keys.charger_pk("CP-16"), _message_key(event)) is not None
    assert invoke(event)["outcome"] == "replied"
    assert seen == ["boot-16-1", "boot-16-1"], "handled again once the record expired"
    first, second = published()
    assert first == second, "the built-in state and reply are the same: the frame's own time"
    assert deps.store.get_charger("CP-16")["bootAt"] == boot_at  # type: ignore[index]


def test_heartbeat_201_is_answered_and_touches_last_seen(deps: Dependencies, clock: FakeClock) -> None:
    deps.store.update_charger("CP-201", {"registered": True, "protocol": "ocpp2.0.1", "lastSeen": 1})
    assert invoke(load_event("heartbeat_201")) == {"outcome": "replied", "uniqueId": "hb-201-1", "replied": True}
    [(topic, payload)] = published()
    assert topic == "ocpp/CP-201/out"
    event = load_event("heartbeat_201")
    assert json.loads(payload) == [3, "hb-201-1", {"currentTime": format_ms(event["receivedAt"])}]
    charger = deps.store.get_charger("CP-201")
    assert charger is not None and charger["lastSeen"] == event["receivedAt"] and charger["registered"] is True
    # An older frame processed late does not move lastSeen back.
    older = {**event, "receivedAt": event["receivedAt"] - 10_000, "frame": '[2,"hb-201-0","Heartbeat",{}]'}
    assert invoke(older)["outcome"] == "replied"
    assert deps.store.get_charger("CP-201")["lastSeen"] == event["receivedAt"]  # type: ignore[index]


def test_transaction_event_21_starts_a_transaction_in_dynamodb(deps: Dependencies, clock: FakeClock) -> None:
    deps.store.update_charger("CP-21", {"registered": True, "protocol": "ocpp2.1"})
    deps.store.put_id_token("RFID-21", {"idTag": "RFID-21", "status": "Accepted"})
    event = load_event("transaction_event_21")
    assert invoke(event) == {"outcome": "replied", "uniqueId": "txe-21-1", "replied": True}

    [(topic, payload)] = published()
    assert topic == "ocpp/CP-21/out"
    uid, response = json.loads(payload)[1:]
    assert uid == "txe-21-1" and response["idTokenInfo"]["status"] == "Accepted"
    transaction = deps.store.get_transaction("CP-21", "tx-21-0001")
    assert transaction is not None
    assert transaction["status"] == "Active" and transaction["protocol"] == "ocpp2.1"
    assert transaction["evseId"] == 1 and transaction["connectorId"] == 1
    assert transaction["meterStart"] == transaction["meterLast"] == 12345.5
    assert "energyWh" not in transaction, "derived when read, never stored"
    assert transaction_view(transaction)["energyWh"] == 0
    assert transaction["startedAt"] == event["receivedAt"]
    [sample] = deps.store.list_meter_values("CP-21", "tx-21-0001")
    assert sample["meterValue"] == frame_of(event)[3]["meterValue"]
    assert sample["receivedAt"] == event["receivedAt"]

    clock.advance(2)
    assert invoke(event)["outcome"] == "replied"
    assert published()[1] == published()[0], "the same reply again"
    assert len(deps.store.list_meter_values("CP-21")) == 1
    assert deps.store.get_transaction("CP-21", "tx-21-0001") == transaction


def test_a_callresult_completes_the_pending_csms_call(deps: Dependencies, clock: FakeClock) -> None:
    deps.store.update_charger("CP-16", {"registered": True, "protocol": "ocpp1.6"})
    mark_connected(deps.store, "CP-16", "5f0c6b1e9a2d4c3b8e7f6a5d4c3b2a19", clock.now_ms())
    new = calls.start_call(deps.store, SeqIds(), clock.now_ms(), "CP-16", "Reset", {"type": "Soft"}, timeout_s=30)
    assert new.record["uniqueId"] == "csms-1" == frame_of(load_event("call_result_16"))[1]

    clock.advance(2)
    assert invoke(load_event("call_result_16")) == {"outcome": "result", "uniqueId": "csms-1", "replied": False}
    assert published() == [], "a CALLRESULT is never answered"
    record = deps.store.get_call("CP-16", "csms-1")
    assert record is not None
    assert record["status"] == "accepted" and record["response"] == {"status": "Accepted"}
    assert record["completedAt"] == clock.now_ms()
    # The one-outstanding-call slot was released.
    assert deps.store.acquire_outstanding("CP-16", "next", clock.now_ms(), clock.now_ms() + 1000) is None

    # The same answer delivered again changes nothing.
    clock.advance(2)
    assert invoke(load_event("call_result_16"))["outcome"] == "result_unmatched"
    assert deps.store.get_call("CP-16", "csms-1") == record


def test_a_callresult_for_no_known_call_is_ignored(deps: Dependencies, dynamodb: Any) -> None:
    assert invoke(load_event("call_result_16")) == {
        "outcome": "result_unmatched",
        "uniqueId": "csms-1",
        "replied": False,
    }
    assert published() == []
    assert table_items(dynamodb) == []


def test_a_garbage_frame_is_logged_and_dropped(
    deps: Dependencies, dynamodb: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert invoke(load_event("garbage_frame")) == {"outcome": "dropped", "uniqueId": None, "replied": False}
    assert published() == []
    assert table_items(dynamodb) == []
    assert any("not valid JSON" in r.getMessage() for r in caplog.records)


def test_a_call_that_does_not_validate_gets_a_callerror_and_changes_nothing(deps: Dependencies, dynamodb: Any) -> None:
    event = load_event("boot_notification_16")
    event["frame"] = json.dumps([2, "boot-bad", "BootNotification", {"chargePointVendor": "VendorX"}])
    assert invoke(event) == {"outcome": "call_error", "uniqueId": "boot-bad", "replied": True}
    [(topic, payload)] = published()
    assert topic == "ocpp/CP-16/out"
    reply = json.loads(payload)
    assert reply[:3] == [4, "boot-bad", "OccurenceConstraintViolation"]  # 1.6 spelling
    assert table_items(dynamodb) == []


@pytest.mark.parametrize(
    "event",
    [
        pytest.param("malformed_envelope", id="missing-protocol-and-frame"),
        pytest.param(None, id="null"),
        pytest.param([1, 2, 3], id="array"),
        pytest.param("a string", id="string"),
        pytest.param({}, id="empty-object"),
        pytest.param(
            {"chargePointId": "bad id/../x", "protocol": "ocpp1.6", "frame": '[2,"a","Heartbeat",{}]'}, id="bad-id"
        ),
    ],
)
def test_a_malformed_event_is_logged_and_does_not_raise(
    deps: Dependencies, dynamodb: Any, caplog: pytest.LogCaptureFixture, event: Any
) -> None:
    if event == "malformed_envelope":
        event = load_event(event)
    assert invoke(event) == {"outcome": "dropped", "uniqueId": None, "replied": False}
    assert published() == []
    assert table_items(dynamodb) == []
    assert any(r.getMessage().startswith("dropped envelope") for r in caplog.records)


def test_a_body_naming_another_charger_than_its_topic_is_dropped(deps: Dependencies, dynamodb: Any) -> None:
    # topic(2) is what the IoT policy vouches for: a bridge may only publish on its client id's topics.
    event = load_event("boot_notification_16")
    event["topicChargePointId"] = "CP-other"
    assert invoke(event)["outcome"] == "dropped"
    assert published() == []
    assert table_items(dynamodb) == []


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_failed_publish_raises_and_a_redelivery_sends_the_stored_reply(
    deps: Dependencies, dynamodb: Any, clock: FakeClock
) -> None:
    """Documented in lambdas/message_processor.py: the invocation fails, the state change stays,
    and the redelivery gets the reply the first delivery would have sent."""
    working = deps.publisher
    deps.publisher = RecordingPublisher(fail=True)
    event = load_event("boot_notification_16")
    with pytest.raises(ConnectionError):
        invoke(event)
    charger = deps.store.get_charger("CP-16")
    assert charger is not None and charger["bootStatus"] == "Accepted", "the state change is kept"
    kept = table_items(dynamodb)

    deps.publisher = working
    clock.advance(1)
    assert invoke(event)["outcome"] == "replied"
    [(topic, payload)] = published()
    assert topic == "ocpp/CP-16/out"
    assert json.loads(payload) == [
        3,
        "boot-16-1",
        {"status": "Accepted", "currentTime": format_ms(event["receivedAt"]), "interval": 300},
    ]
    assert table_items(dynamodb) == kept


@pytest.mark.filterwarnings("ignore:No application metrics to publish")
def test_a_failed_publish_of_a_claimed_frame_is_answered_from_the_stored_reply(
    deps: Dependencies, dynamodb: Any, clock: FakeClock
) -> None:
    working = deps.publisher
    deps.publisher = RecordingPublisher(fail=True)
    deps.extensions = _hooked([])
    event = load_event("boot_notification_16")
    with pytest.raises(ConnectionError):
        invoke(event)
    deps.publisher = working
    clock.advance(1)
    assert invoke(event)["outcome"] == "duplicate"
    [(topic, payload)] = published()
    stored = raw_item(dynamodb, keys.charger_pk("CP-16"), _message_key(event))
    assert stored is not None and topic == "ocpp/CP-16/out" and payload == stored["reply"]["S"]


def test_dependencies_built_from_the_environment_use_dynamodb_and_iot_data(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cold-start path: no injection, everything from the environment (as on AWS)."""
    monkeypatch.setenv("OCPP_TABLE_NAME", TABLE)
    monkeypatch.setenv("OCPP_UNKNOWN_CHARGERS", "accept")
    runtime.configure(None)
    try:
        assert invoke(load_event("boot_notification_16"))["outcome"] == "replied"
        built = runtime.dependencies()
        assert isinstance(built.store, DynamoStore) and built.store.table_name == TABLE
        assert isinstance(built.publisher, IotDataPublisher)
    finally:
        runtime.configure(None)
    [(topic, payload)] = published()
    assert topic == "ocpp/CP-16/out" and json.loads(payload)[2]["status"] == "Accepted"
    raw = dynamodb.get_item(TableName=TABLE, Key={"pk": {"S": "CP#CP-16"}, "sk": {"S": "CHARGER"}})
    assert raw["Item"]["bootStatus"] == {"S": "Accepted"}


def test_unknown_chargers_are_rejected_by_default_and_leave_no_trace(dynamodb: Any, clock: FakeClock) -> None:
    runtime.configure(moto_dependencies(clock, Settings(table_name=TABLE)))
    try:
        assert invoke(load_event("boot_notification_16"))["outcome"] == "replied"
    finally:
        runtime.configure(None)
    [(_, payload)] = published()
    assert json.loads(payload)[2]["status"] == "Rejected"
    assert DynamoStore(boto3.client("dynamodb", region_name=REGION), TABLE).get_charger("CP-16") is None


def test_a_valid_frame_with_numbers_beyond_dynamodb_is_answered_and_stored(deps: Dependencies) -> None:
    deps.store.update_charger("CP-201", {"registered": True, "protocol": "ocpp2.0.1"})
    data = {"counter": 10**40, "ratio": 1e-200, "nested": [[{"x": 1.5e300}]]}
    event = {
        **load_event("heartbeat_201"),
        "frame": json.dumps([2, "dt-1", "DataTransfer", {"vendorId": "v", "data": data}]),
    }
    assert invoke(event) == {"outcome": "replied", "uniqueId": "dt-1", "replied": True}
    [(_, payload)] = published()
    assert json.loads(payload) == [3, "dt-1", {"status": "UnknownVendorId"}]
    [stored] = deps.store.list_events("CP-201", "DataTransfer")
    assert stored["payload"]["data"] == data


def test_a_payload_nested_deeper_than_dynamodb_allows_is_refused_up_front(deps: Dependencies) -> None:
    deps.store.update_charger("CP-201", {"registered": True, "protocol": "ocpp2.0.1"})
    data: Any = "leaf"
    for _ in range(40):
        data = {"d": data}
    event = {
        **load_event("heartbeat_201"),
        "frame": json.dumps([2, "dt-2", "DataTransfer", {"vendorId": "v", "data": data}]),
    }
    assert invoke(event)["outcome"] == "call_error"
    [(_, payload)] = published()
    assert json.loads(payload) == [4, "dt-2", "FormatViolation", "Payload is nested deeper than 30 levels", {}]
    assert deps.store.list_events("CP-201") == []
