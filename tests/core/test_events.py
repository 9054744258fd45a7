"""``ocpp_core.events.derive``: which item changes are domain events, and what they say."""

from __future__ import annotations

from typing import Any

from ocpp_core.events import EventType, derive, event_id, is_event_source

T0 = 1_750_000_000_000


def _item(sk: str, **attributes: Any) -> dict[str, Any]:
    return {"pk": "CP#CP1", "sk": sk, **attributes}


def _types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def test_ids_are_named_by_the_change_and_look_like_uuids() -> None:
    assert event_id("a", 1) == event_id("a", 1) != event_id("a", 2)
    assert len(event_id("x")) == 36 and event_id("x")[14] == "8"


def test_a_boot_is_an_event_and_a_heartbeat_is_not() -> None:
    old = _item("CHARGER", lastSeen=T0)
    boot = {"chargePointVendor": "V", "chargePointModel": "M", "firmwareVersion": "1.2"}
    new = _item("CHARGER", lastSeen=T0, bootOrder="o1", bootStatus="Accepted", bootAt=T0, boot=boot, protocol="ocpp1.6")
    (event,) = derive(old, new)
    assert event["type"] == "ChargerBooted" and event["chargePointId"] == "CP1"
    assert event["detail"] == {
        "bootStatus": "Accepted",
        "protocol": "ocpp1.6",
        "vendor": "V",
        "model": "M",
        "firmwareVersion": "1.2",
    }
    assert event["at"] == "2025-06-15T15:06:40.000Z"
    assert derive(new, {**new, "lastSeen": T0 + 5}) == []  # lastSeen moved: no boot


def test_status_events_only_for_a_new_status() -> None:
    old = _item("STATUS#C1", status="Available", order="1", connectorId=1, timestamp="2026-01-01T00:00:00Z")
    same = {**old, "order": "2"}
    assert derive(old, same) == []
    faulted = {**old, "order": "3", "status": "Faulted", "errorCode": "GroundFailure"}
    (event,) = derive(old, faulted)
    assert event["detail"]["status"] == "Faulted" and event["detail"]["previousStatus"] == "Available"
    assert event["detail"]["errorCode"] == "GroundFailure"
    assert derive(None, old)[0]["detail"].get("previousStatus") is None


def test_a_transaction_ends_once_its_start_is_known() -> None:
    ended_first = _item(
        "TX#t1", transactionId="t1", stoppedAt=T0 + 60_000, meterStop=5_000, meterStart=5_000, stopReason="Local"
    )
    assert derive(None, ended_first) == []  # the Ended came before the Started: wait for it
    complete = {**ended_first, "startedAt": T0, "meterStart": 1_000, "idToken": "A"}
    events = derive(ended_first, complete)
    assert _types(events) == ["TransactionStarted", "TransactionEnded"]
    ended = events[1]["detail"]
    assert ended["energyWh"] == 4_000 and ended["durationS"] == 60 and ended["idToken"] == "A"
    assert derive(complete, {**complete, "meterLast": 6_000}) == []  # nothing new to say
    assert _types(derive(None, _item("TX#t2", transactionId="t2", startedAt=T0, meterStart=0))) == [
        "TransactionStarted"
    ]


def test_presence_events_and_a_takeover() -> None:
    up = _item("CONN#c1", connectionId="c1", connectedAt=T0)
    assert _types(derive(None, up)) == ["ChargerConnected"]
    down = {**up, "disconnectedAt": T0 + 10, "disconnectReason": "closed"}
    (event,) = derive(up, down, current_connection=lambda cp: "c1")
    assert event["type"] == "ChargerDisconnected" and event["detail"]["reason"] == "closed"
    assert derive(up, down, current_connection=lambda cp: "c2") == []  # a newer socket took over
    stale = {**up, "disconnectedAt": T0 - 10}
    assert derive(up, stale) == []  # an older will: still connected


def test_reports_calls_certificates_and_files() -> None:
    security = _item(
        "EVT#SecurityEventNotification#d1",
        kind="SecurityEventNotification",
        receivedAt=T0,
        payload={"type": "FirmwareUpdated", "timestamp": "2026-01-01T00:00:00Z"},
    )
    assert _types(derive(None, security)) == ["SecurityEventReceived"]
    assert derive(security, {**security, "expiresAt": 1}) == []  # a redelivery rewriting it
    notify = _item("EVT#NotifyReport#d2", kind="NotifyReport", receivedAt=T0, payload={})
    assert derive(None, notify) == []
    call = _item("CALL#u1", uniqueId="u1", action="Reset", status="pending")
    done = {**call, "status": "accepted", "completedAt": T0, "response": {"status": "Accepted"}}
    (completed,) = derive(call, done)
    assert completed["detail"]["response"] == {"status": "Accepted"}
    assert derive(done, {**done, "lateAnswerAt": T0}) == [] and derive(None, call) == []
    cert = _item("CERT#0a", serial="0a", subject="CN=CP1", issuedAt=T0, notAfter=T0 + 1000)
    assert _types(derive(None, cert)) == ["CertificateIssued"]
    file = _item("FILE#f1", fileId="f1", name="diag.txt", size=10, receivedAt=T0, kind="diagnostics")
    assert derive(None, file)[0]["detail"]["name"] == "diag.txt"


def test_items_that_are_not_events() -> None:
    assert derive(_item("CHARGER"), None) == []  # a removal
    assert derive(None, {"pk": "IDTAG#A", "sk": "IDTAG"}) == []
    assert derive(None, _item("MV#d")) == []
    assert derive(None, _item("TX#x", transactionId=None)) == []  # nothing known yet


def test_the_stream_filter_names_every_item_that_makes_events() -> None:
    samples = {
        "CHARGER": EventType.CHARGER_BOOTED,
        "CONN#c": EventType.CHARGER_CONNECTED,
        "STATUS#C1": EventType.CONNECTOR_STATUS_CHANGED,
        "TX#t": EventType.TRANSACTION_STARTED,
        "EVT#x#y": EventType.SECURITY_EVENT_RECEIVED,
        "CALL#u": EventType.CALL_COMPLETED,
        "CERT#s": EventType.CERTIFICATE_ISSUED,
        "FILE#f": EventType.FILE_RECEIVED,
    }
    for sk in samples:
        assert is_event_source(sk), sk
    for sk in ("MV#d", "MSG#d", "OUTBOX#s", "OUTSTANDING", "SITE", "CHARGERS", "TXSTART#d", "MAP#variables"):
        assert not is_event_source(sk), sk
