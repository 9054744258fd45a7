"""Reservations, call history, id-tag removal and stale transactions, end to end.

Through the operator API (``request``) and the message processor (``from_charger``), with the
in-memory store, the recording publisher and the fake clock of ``make_deps`` (the ``deps``
fixture). The fixture's call ids are ``call-1``, ``call-2``, ... shared by every charger: the
call history is ordered by id (the deployed ids are UUIDv7), so a test that lists calls makes
fewer than ten, or swaps in ``TimeOrderedIds``.
"""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

import pytest

from lambdas.operator_api import handle
from lambdas.runtime import Dependencies, TimeOrderedIds
from ocpp_core.timefmt import format_ms
from tests.fakes import START_MS

from .support import connect, disconnect, event, from_charger, request

V16, V201, V21 = "ocpp1.6", "ocpp2.0.1", "ocpp2.1"
PROTOCOLS = (V16, V201, V21)
V2X = (V201, V21)
ANSWERS = ("Accepted", "Faulted", "Occupied", "Rejected", "Unavailable")

HOUR_S = 3600
#: one hour after the fake clock's start, as the API stores it
EXPIRY = format_ms(START_MS + HOUR_S * 1000)
EXPIRY_IN = "2025-06-15T16:06:40Z"  # the same instant, as an operator writes it

_message_ids = itertools.count(1)


# --- helpers -------------------------------------------------------------------------------


def _frames(deps: Dependencies) -> list[list[Any]]:
    """Every CSMS call published to a charger, decoded: ``[2, uniqueId, action, payload]`` (the
    processor's replies to the charger's own calls go out through the publisher too: left out)."""
    frames = [json.loads(payload) for _, payload, _ in deps.publisher.messages]  # type: ignore[attr-defined]
    return [frame for frame in frames if frame[0] == 2]


def _send(deps: Dependencies, cp: str, protocol: str, action: str, payload: dict[str, Any]) -> Any:
    """A CALL from the charger; its CALLRESULT payload."""
    outcome = from_charger(deps, cp, protocol, [2, f"m{next(_message_ids)}", action, payload])
    reply = json.loads(outcome.reply)
    assert reply[0] == 3, reply
    return reply[2]


def _answer(deps: Dependencies, cp: str, protocol: str, unique_id: str, payload: dict[str, Any]) -> None:
    """The charger's CALLRESULT to the CSMS call ``unique_id``."""
    outcome = from_charger(deps, cp, protocol, [3, unique_id, payload])
    assert outcome.kind == "result"


def _report_connectors(deps: Dependencies, cp: str, protocol: str, ids: tuple[int, ...] = (1, 2)) -> None:
    """StatusNotification Available for connectors (1.6) / EVSEs (2.x) ``ids``."""
    for n in ids:
        if protocol == V16:
            payload: dict[str, Any] = {"connectorId": n, "errorCode": "NoError", "status": "Available"}
        else:
            payload = {
                "timestamp": "2025-06-15T15:06:00Z",
                "connectorStatus": "Available",
                "evseId": n,
                "connectorId": 1,
            }
        _send(deps, cp, protocol, "StatusNotification", payload)


def _charger(deps: Dependencies, cp: str, protocol: str) -> None:
    connect(deps, cp, protocol)
    _report_connectors(deps, cp, protocol)


def _body(protocol: str, **extra: Any) -> dict[str, Any]:
    """A valid reservation body for the protocol (connector / EVSE 1, expiring in an hour)."""
    place = {"connectorId": 1} if protocol == V16 else {"evseId": 1}
    return {"idTag": "TAG-1", "expiryDate": EXPIRY_IN, **place, **extra}


def _reserve(deps: Dependencies, cp: str, protocol: str, answer: str | None = "Accepted", **extra: Any) -> int:
    """Create a reservation (and answer its ReserveNow unless ``answer`` is None): its id."""
    created = request("POST", f"/chargers/{cp}/reservations", _body(protocol, **extra))
    assert created.status == 202, created.body
    if answer is not None:
        _answer(deps, cp, protocol, created.body["call"]["uniqueId"], {"status": answer})
    return int(created.body["reservation"]["reservationId"])


def _reservation(rid: int) -> dict[str, Any]:
    shown = request("GET", f"/reservations/{rid}")
    assert shown.status == 200, shown.body
    return shown.body  # type: ignore[no-any-return]


def _start(deps: Dependencies, cp: str, protocol: str, reservation_id: int | None, tx: str = "tx-1") -> str:
    """A transaction started on connector / EVSE 1 (with ``reservationId``): its id as the API shows it."""
    if protocol == V16:
        payload: dict[str, Any] = {
            "connectorId": 1,
            "idTag": "TAG-1",
            "meterStart": 0,
            "timestamp": "2025-06-15T15:10:00Z",
        }
        if reservation_id is not None:
            payload["reservationId"] = reservation_id
        return str(_send(deps, cp, protocol, "StartTransaction", payload)["transactionId"])
    payload = {
        "eventType": "Started",
        "timestamp": "2025-06-15T15:10:00Z",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": tx},
        "evse": {"id": 1, "connectorId": 1},
        "idToken": {"idToken": "TAG-1", "type": "Central"},
    }
    if reservation_id is not None:
        payload["reservationId"] = reservation_id
    _send(deps, cp, protocol, "TransactionEvent", payload)
    return tx


def _status_update(deps: Dependencies, cp: str, protocol: str, rid: int, status: str) -> None:
    update = {"reservationId": rid, "reservationUpdateStatus": status}
    assert _send(deps, cp, protocol, "ReservationStatusUpdate", update) == {}


def _cancel(deps: Dependencies, rid: int, answer: str | None, cp: str = "CP1", protocol: str = V16) -> Any:
    cancelled = request("DELETE", f"/reservations/{rid}")
    assert cancelled.status == 202, cancelled.body
    if answer is not None:
        _answer(deps, cp, protocol, cancelled.body["call"]["uniqueId"], {"status": answer})
    return cancelled


def _delete(path: str) -> tuple[int, str, dict[str, str]]:
    """A DELETE that may answer 204 (no body, no content type, so not through ``request``)."""
    response = handle(event("DELETE", path))
    return response["statusCode"], response["body"], response["headers"]


# --- reservations: creation and the charger's answer --------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_reserve_now_is_published_with_the_allocated_id(deps: Dependencies, protocol: str) -> None:
    _charger(deps, "CP1", protocol)
    created = request("POST", "/chargers/CP1/reservations", _body(protocol, parentIdTag="FLEET"))
    assert created.status == 202
    reservation, call = created.body["reservation"], created.body["call"]
    rid = reservation["reservationId"]
    assert isinstance(rid, int)
    assert created.headers["location"] == f"/reservations/{rid}"
    assert reservation["status"] == "Requested"
    assert reservation["expiryDate"] == EXPIRY and reservation["parentIdTag"] == "FLEET"
    assert reservation["uniqueId"] == call["uniqueId"]
    assert call["action"] == "ReserveNow" and call["status"] == "pending" and call["protocol"] == protocol

    if protocol == V16:
        expected = {
            "connectorId": 1,
            "expiryDate": EXPIRY,
            "idTag": "TAG-1",
            "reservationId": rid,
            "parentIdTag": "FLEET",
        }
    else:
        expected = {
            "id": rid,
            "expiryDateTime": EXPIRY,
            "idToken": {"idToken": "TAG-1", "type": "Central"},
            "groupIdToken": {"idToken": "FLEET", "type": "Central"},
            "evseId": 1,
        }
    assert _frames(deps) == [[2, call["uniqueId"], "ReserveNow", expected]]
    assert call["payload"] == expected

    # Requested until the charger answers, then its answer.
    assert _reservation(rid)["status"] == "Requested"
    assert "answeredAt" not in _reservation(rid)
    _answer(deps, "CP1", protocol, call["uniqueId"], {"status": "Accepted"})
    shown = _reservation(rid)
    assert shown["status"] == "Accepted" and shown["answeredAt"].endswith("Z")
    assert request("GET", f"/chargers/CP1/reservations/{rid}").body == shown


def test_reservation_ids_are_unique_across_chargers(deps: Dependencies) -> None:
    _charger(deps, "CP1", V16)
    _charger(deps, "CS2", V201)
    first = _reserve(deps, "CP1", V16)
    second = _reserve(deps, "CS2", V201)
    assert first != second
    assert _reservation(first)["chargePointId"] == "CP1"
    assert _reservation(second)["chargePointId"] == "CS2"
    frames = _frames(deps)
    assert frames[0][3]["reservationId"] == first and frames[1][3]["id"] == second


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_reserve_now_answer_becomes_the_status(deps: Dependencies, protocol: str, answer: str) -> None:
    _charger(deps, "CP1", protocol)
    rid = _reserve(deps, "CP1", protocol, answer)
    assert _reservation(rid)["status"] == answer
    listed = request("GET", "/chargers/CP1/reservations", query={"status": answer}).body
    assert [r["reservationId"] for r in listed["reservations"]] == [rid]


def test_2_1_allows_what_2_0_1_refuses_in_the_id_token(deps: Dependencies) -> None:
    """2.1 ``idToken.type`` is any string of up to 20 and ``idToken`` up to 255; 2.0.1: an enum and 36."""
    _charger(deps, "CS201", V201)
    _charger(deps, "CS21", V21)
    long_tag = "T" * 40
    for body in (_body(V201, idTokenType="VendorTag"), {**_body(V201), "idTag": long_tag}):
        refused = request("POST", "/chargers/CS201/reservations", body)
        assert refused.status == 400 and refused.body["protocol"] == V201
    assert _frames(deps) == []
    assert request("GET", "/chargers/CS201/reservations").body["count"] == 0

    created = request("POST", "/chargers/CS21/reservations", {**_body(V21, idTokenType="VendorTag"), "idTag": long_tag})
    assert created.status == 202
    assert _frames(deps)[0][3]["idToken"] == {"idToken": long_tag, "type": "VendorTag"}
    # connectorType is passed through in both 2.x versions
    _answer(deps, "CS21", V21, created.body["call"]["uniqueId"], {"status": "Accepted"})
    again = request("POST", "/chargers/CS21/reservations", _body(V21, connectorType="cType2"))
    assert again.status == 202 and _frames(deps)[1][3]["connectorType"] == "cType2"
    assert again.body["reservation"]["connectorType"] == "cType2"


# --- reservations: used, expired, reported by the charger ---------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_transaction_started_with_the_reservation_uses_it(deps: Dependencies, protocol: str) -> None:
    _charger(deps, "CP1", protocol)
    rid = _reserve(deps, "CP1", protocol)
    deps.clock.advance(60)  # type: ignore[attr-defined]
    tx = _start(deps, "CP1", protocol, rid)
    shown = _reservation(rid)
    assert shown["status"] == "Used"
    assert shown["transactionId"] == tx
    assert shown["endedAt"] == format_ms(START_MS + 60_000)
    if protocol == V16:
        transaction = request("GET", "/transactions", query={"chargePointId": "CP1"}).body["transactions"][0]
        assert transaction["reservationId"] == rid
    # Ended: it does not expire any more.
    deps.clock.advance(2 * HOUR_S)  # type: ignore[attr-defined]
    assert _reservation(rid)["status"] == "Used"


def test_a_reservation_id_of_another_charger_changes_nothing(deps: Dependencies) -> None:
    _charger(deps, "CP1", V16)
    _charger(deps, "CP2", V16)
    rid = _reserve(deps, "CP1", V16)
    _start(deps, "CP2", V16, rid)
    shown = _reservation(rid)
    assert shown["status"] == "Accepted" and "transactionId" not in shown and "endedAt" not in shown
    assert request("GET", "/chargers/CP2/reservations").body == {"reservations": [], "count": 0}
    assert request("GET", f"/chargers/CP2/reservations/{rid}").status == 404


@pytest.mark.parametrize("protocol", (V16, V201))
def test_an_accepted_reservation_expires_without_any_message(deps: Dependencies, protocol: str) -> None:
    _charger(deps, "CP1", protocol)
    rid = _reserve(deps, "CP1", protocol)
    deps.clock.advance(HOUR_S - 1)  # type: ignore[attr-defined]
    assert _reservation(rid)["status"] == "Accepted"
    deps.clock.advance(1)  # type: ignore[attr-defined]
    assert _reservation(rid)["status"] == "Expired"
    expired = request("GET", "/chargers/CP1/reservations", query={"status": "Expired"}).body
    assert [r["reservationId"] for r in expired["reservations"]] == [rid]
    assert request("GET", "/chargers/CP1/reservations", query={"status": "Accepted"}).body["count"] == 0
    assert len(_frames(deps)) == 1  # the ReserveNow only


@pytest.mark.parametrize(("reported", "status"), [("Expired", "Expired"), ("Removed", "Cancelled")])
@pytest.mark.parametrize("protocol", V2X)
def test_reservation_status_update_ends_the_reservation(
    deps: Dependencies, protocol: str, reported: str, status: str
) -> None:
    _charger(deps, "CS1", protocol)
    rid = _reserve(deps, "CS1", protocol)
    _status_update(deps, "CS1", protocol, rid, reported)
    shown = _reservation(rid)
    assert shown["status"] == status
    assert shown["endReportedAs"] == reported and shown["endedAt"].endswith("Z")
    # Ended: a StartTransaction afterwards does not make it Used.
    deps.clock.advance(1)  # type: ignore[attr-defined]
    _start(deps, "CS1", protocol, rid)
    assert _reservation(rid)["status"] == status


# --- reservations: cancel -------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_cancel_sends_cancel_reservation_and_accepted_cancels(deps: Dependencies, protocol: str) -> None:
    _charger(deps, "CP1", protocol)
    rid = _reserve(deps, "CP1", protocol)
    cancelled = _cancel(deps, rid, None, protocol=protocol)
    uid = cancelled.body["call"]["uniqueId"]
    assert cancelled.body["call"]["action"] == "CancelReservation"
    assert cancelled.body["reservation"]["cancelUniqueId"] == uid
    assert cancelled.body["reservation"]["status"] == "Accepted"  # until the charger accepts
    assert _frames(deps)[-1] == [2, uid, "CancelReservation", {"reservationId": rid}]

    _answer(deps, "CP1", protocol, uid, {"status": "Accepted"})
    shown = _reservation(rid)
    assert shown["status"] == "Cancelled" and shown["endedAt"].endswith("Z")

    again = request("DELETE", f"/reservations/{rid}")
    assert again.status == 409 and again.body["reservationStatus"] == "Cancelled"
    assert len(_frames(deps)) == 2


def test_a_rejected_cancel_leaves_the_reservation_accepted(deps: Dependencies) -> None:
    _charger(deps, "CP1", V16)
    rid = _reserve(deps, "CP1", V16)
    _cancel(deps, rid, "Rejected")
    shown = _reservation(rid)
    assert shown["status"] == "Accepted" and shown["cancelAnswer"] == "Rejected"
    assert "endedAt" not in shown
    # It can be cancelled again, here through the charger's own route.
    retry = request("DELETE", f"/chargers/CP1/reservations/{rid}")
    assert retry.status == 202
    _answer(deps, "CP1", V16, retry.body["call"]["uniqueId"], {"status": "Accepted"})
    assert _reservation(rid)["status"] == "Cancelled"


def test_used_expired_and_refused_reservations_cannot_be_cancelled(deps: Dependencies) -> None:
    _charger(deps, "CP1", V16)
    used = _reserve(deps, "CP1", V16)
    _start(deps, "CP1", V16, used)
    rejected = _reserve(deps, "CP1", V16, "Rejected")
    expired = _reserve(deps, "CP1", V16)
    sent = len(_frames(deps))
    deps.clock.advance(HOUR_S)  # type: ignore[attr-defined]
    for rid, status in ((used, "Used"), (expired, "Expired"), (rejected, "Rejected")):
        refused = request("DELETE", f"/reservations/{rid}")
        assert refused.status == 409, (status, refused.body)
        assert refused.body["reservationStatus"] == status
        assert _reservation(rid)["status"] == status
    assert len(_frames(deps)) == sent


# --- reservations: whatever order the facts arrive in --------------------------------------


@pytest.mark.parametrize("late_answer", ["Accepted", "Occupied"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_start_before_the_reserve_now_answer_still_ends_used(
    deps: Dependencies, protocol: str, late_answer: str
) -> None:
    _charger(deps, "CP1", protocol)
    created = request("POST", "/chargers/CP1/reservations", _body(protocol))
    rid = created.body["reservation"]["reservationId"]
    tx = _start(deps, "CP1", protocol, rid)
    assert _reservation(rid)["status"] == "Used"
    deps.clock.advance(1)  # type: ignore[attr-defined]
    _answer(deps, "CP1", protocol, created.body["call"]["uniqueId"], {"status": late_answer})
    shown = _reservation(rid)
    assert shown["status"] == "Used" and shown["transactionId"] == tx
    assert shown["answer"] == late_answer  # kept as a fact, not as the status


@pytest.mark.parametrize("protocol", V2X)
def test_a_late_expired_update_after_used_leaves_used(deps: Dependencies, protocol: str) -> None:
    _charger(deps, "CS1", protocol)
    rid = _reserve(deps, "CS1", protocol)
    _start(deps, "CS1", protocol, rid)
    deps.clock.advance(5)  # type: ignore[attr-defined]
    _status_update(deps, "CS1", protocol, rid, "Expired")
    shown = _reservation(rid)
    assert shown["status"] == "Used" and shown["transactionId"] == "tx-1"
    # and past the expiry date too
    deps.clock.advance(2 * HOUR_S)  # type: ignore[attr-defined]
    assert _reservation(rid)["status"] == "Used"


def test_a_start_after_an_accepted_cancel_leaves_cancelled(deps: Dependencies) -> None:
    _charger(deps, "CP1", V16)
    rid = _reserve(deps, "CP1", V16)
    _cancel(deps, rid, "Accepted")
    deps.clock.advance(1)  # type: ignore[attr-defined]
    _start(deps, "CP1", V16, rid)
    assert _reservation(rid)["status"] == "Cancelled"


# --- reservations: refused requests change nothing ----------------------------------------


@pytest.mark.parametrize(
    ("protocol", "body", "mentioned"),
    [
        (V16, {**_body(V16), "expiryDate": "2025-06-15T15:00:00Z"}, "in the past"),
        (V16, {**_body(V16), "expiryDate": format_ms(START_MS)}, "in the past"),  # now is not the future
        (V16, {k: v for k, v in _body(V16).items() if k != "idTag"}, "idTag"),
        (V16, {k: v for k, v in _body(V16).items() if k != "expiryDate"}, "expiryDate"),
        (V16, {**_body(V16), "expiryDate": "in an hour"}, "expiryDate"),
        (V16, {k: v for k, v in _body(V16).items() if k != "connectorId"}, "connectorId"),
        (V16, {**_body(V16), "connectorId": 3}, "Unknown connector 3"),
        (V16, {**_body(V16), "connectorId": "1"}, "connectorId"),
        (V16, {**_body(V16), "connectorId": True}, "connectorId"),
        (V16, {**_body(V16), "connectorId": -1}, "connectorId"),
        (V16, _body(V16, evseId=1), "evseId"),
        (V16, _body(V16, idTokenType="Central"), "idTokenType"),
        (V16, _body(V16, connectorType="cType2"), "connectorType"),
        (V16, {**_body(V16), "idTag": "T" * 21}, "Invalid ReserveNow payload"),  # 1.6 idTag: at most 20
        (V16, _body(V16, colour="red"), "colour"),
        (V201, {**_body(V201), "expiryDate": "2025-06-15T15:00:00Z"}, "in the past"),
        (V201, {k: v for k, v in _body(V201).items() if k != "idTag"}, "idTag"),
        (V201, {k: v for k, v in _body(V201).items() if k != "expiryDate"}, "expiryDate"),
        (V201, {**_body(V201), "evseId": 3}, "Unknown EVSE 3"),
        (V201, {**_body(V201), "evseId": "1"}, "evseId"),
        (V201, _body(V201, connectorId=1), "evseId"),
        (V201, _body(V201, idTokenType="Bogus"), "Invalid ReserveNow payload"),
        (V21, _body(V21, connectorId=1), "evseId"),
        (V21, {**_body(V21), "evseId": 3}, "Unknown EVSE 3"),
    ],
)
def test_bad_reservation_requests_are_400_and_change_nothing(
    deps: Dependencies, protocol: str, body: dict[str, Any], mentioned: str
) -> None:
    _charger(deps, "CP1", protocol)
    refused = request("POST", "/chargers/CP1/reservations", body)
    assert refused.status == 400, refused.body
    assert mentioned in refused.body["error"]
    assert _frames(deps) == []
    assert request("GET", "/chargers/CP1/reservations").body == {"reservations": [], "count": 0}
    # the charger's slot is free: the same request, fixed, goes out
    assert request("POST", "/chargers/CP1/reservations", _body(protocol)).status == 202


def test_unknown_connector_lists_the_known_ones(deps: Dependencies) -> None:
    _charger(deps, "CP1", V16)
    refused = request("POST", "/chargers/CP1/reservations", {**_body(V16), "connectorId": 3})
    assert refused.body["knownConnectors"] == [1, 2]
    # 0, the whole charger, is always allowed
    assert request("POST", "/chargers/CP1/reservations", {**_body(V16), "connectorId": 0}).status == 202


def test_reservation_of_another_charger_is_404_on_its_route(deps: Dependencies) -> None:
    _charger(deps, "CP1", V16)
    _charger(deps, "CP2", V16)
    rid = _reserve(deps, "CP1", V16)
    sent = len(_frames(deps))
    assert request("GET", f"/chargers/CP2/reservations/{rid}").status == 404
    refused = request("DELETE", f"/chargers/CP2/reservations/{rid}")
    assert refused.status == 404 and refused.body["reservationId"] == rid
    assert len(_frames(deps)) == sent
    assert _reservation(rid)["status"] == "Accepted" and "cancelUniqueId" not in _reservation(rid)
    assert request("GET", "/reservations/999").status == 404
    assert request("DELETE", "/reservations/999").status == 404


@pytest.mark.parametrize("bad", ["abc", "1.5", "-1", "1e3", "%20", "99999999999", "2147483648"])
def test_a_reservation_id_that_is_not_an_integer_is_400(deps: Dependencies, bad: str) -> None:
    _charger(deps, "CP1", V16)
    for method, path in (
        ("GET", f"/reservations/{bad}"),
        ("DELETE", f"/reservations/{bad}"),
        ("GET", f"/chargers/CP1/reservations/{bad}"),
        ("DELETE", f"/chargers/CP1/reservations/{bad}"),
    ):
        answer = request(method, path)
        assert answer.status == 400, (method, path, answer.body)
        assert "reservation id" in answer.body["error"]


def test_a_superscript_digit_as_reservation_id_is_400(deps: Dependencies) -> None:
    assert request("GET", "/reservations/%C2%B2").status == 400


def test_reservations_of_an_unknown_charger_are_404(deps: Dependencies) -> None:
    assert request("POST", "/chargers/GHOST/reservations", _body(V16)).status == 404
    assert request("GET", "/chargers/GHOST/reservations").status == 404
    assert request("GET", "/chargers/bad!/reservations").status == 400


def test_a_charger_not_connected_gets_no_reservation(deps: Dependencies) -> None:
    request("PUT", "/chargers/NEW", {})
    never = request("POST", "/chargers/NEW/reservations", _body(V16))
    assert never.status == 409 and "never connected" in never.body["error"]

    _charger(deps, "CP1", V16)
    disconnect(deps, "CP1")
    gone = request("POST", "/chargers/CP1/reservations", _body(V16))
    assert gone.status == 409 and "not connected" in gone.body["error"]
    assert _frames(deps) == []
    assert request("GET", "/chargers/CP1/reservations").body == {"reservations": [], "count": 0}
    # The id it would have had is skipped, and not found.
    assert request("GET", "/reservations/1").status == 404
    deps.clock.advance(1)  # type: ignore[attr-defined]
    connect(deps, "CP1", V16, "conn-2")
    assert _reserve(deps, "CP1", V16) == 2


def test_a_charger_with_a_call_pending_gets_no_reservation(deps: Dependencies) -> None:
    _charger(deps, "CP1", V16)
    pending = request("POST", "/chargers/CP1/calls", {"action": "ClearCache"}).body["uniqueId"]
    busy = request("POST", "/chargers/CP1/reservations", _body(V16))
    assert busy.status == 409 and busy.body["pendingUniqueId"] == pending
    assert len(_frames(deps)) == 1
    assert request("GET", "/chargers/CP1/reservations").body["count"] == 0


def test_list_is_newest_first_and_filters_by_status(deps: Dependencies) -> None:
    _charger(deps, "CP1", V16)
    _charger(deps, "CP2", V16)
    accepted = _reserve(deps, "CP1", V16)
    rejected = _reserve(deps, "CP1", V16, "Rejected")
    other = _reserve(deps, "CP2", V16)
    cancelled = _reserve(deps, "CP1", V16)
    _cancel(deps, cancelled, "Accepted")
    requested = _reserve(deps, "CP1", V16, answer=None)

    listed = request("GET", "/chargers/CP1/reservations").body
    assert [r["reservationId"] for r in listed["reservations"]] == [requested, cancelled, rejected, accepted]
    assert listed["count"] == 4
    assert [r["status"] for r in listed["reservations"]] == ["Requested", "Cancelled", "Rejected", "Accepted"]
    assert listed["reservations"][3] == _reservation(accepted)
    for status, expected in (("Accepted", [accepted]), ("Cancelled", [cancelled]), ("Used", [])):
        found = request("GET", "/chargers/CP1/reservations", query={"status": status}).body
        assert [r["reservationId"] for r in found["reservations"]] == expected and found["count"] == len(expected)
    assert _reservation(other)["chargePointId"] == "CP2"
    bad = request("GET", "/chargers/CP1/reservations", query={"status": "accepted"})
    assert bad.status == 400 and "Accepted" in bad.body["allowedValues"]


def test_a_raw_reserve_now_is_not_tracked_and_takes_no_allocated_record(deps: Dependencies) -> None:
    """A ReserveNow sent through /calls chose its own id: its answer makes no record (one made then
    could collide with the id the counter hands out next)."""
    _charger(deps, "CP1", V16)
    raw = {"connectorId": 1, "expiryDate": EXPIRY_IN, "idTag": "RAW", "reservationId": 1}
    uid = request("POST", "/chargers/CP1/calls", {"action": "ReserveNow", "payload": raw}).body["uniqueId"]
    _answer(deps, "CP1", V16, uid, {"status": "Accepted"})
    assert request("GET", "/reservations/1").status == 404
    allocated = _reserve(deps, "CP1", V16)
    assert _reservation(allocated)["idTag"] != "RAW"


def test_a_raw_reserve_now_reusing_a_tracked_id_replaces_what_the_record_says(deps: Dependencies) -> None:
    """The charger replaces a reservation whose id comes again (1.6 §5.13): so does the record."""
    _charger(deps, "CP1", V16)
    rid = _reserve(deps, "CP1", V16)
    raw = {"connectorId": 1, "expiryDate": EXPIRY_IN, "idTag": "OTHER", "reservationId": rid}
    uid = request("POST", "/chargers/CP1/calls", {"action": "ReserveNow", "payload": raw}).body["uniqueId"]
    _answer(deps, "CP1", V16, uid, {"status": "Accepted"})
    assert _reservation(rid)["idTag"] == "OTHER"
    assert _reservation(rid)["status"] == "Accepted"


# --- call history -----------------------------------------------------------------------------


def test_call_history_pages_newest_first_with_every_call_once(deps: Dependencies) -> None:
    _charger(deps, "CP1", V16)
    _charger(deps, "CP2", V16)
    made: list[str] = []

    def call(action: str, payload: dict[str, Any]) -> str:
        uid = request("POST", "/chargers/CP1/calls", {"action": action, "payload": payload}).body["uniqueId"]
        made.append(uid)
        return uid

    _answer(deps, "CP1", V16, call("ClearCache", {}), {"status": "Accepted"})
    from_charger(deps, "CP1", V16, [4, call("Reset", {"type": "Soft"}), "NotSupported", "no", {}])
    config = {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]}
    _answer(deps, "CP1", V16, call("GetConfiguration", {"key": ["HeartbeatInterval"]}), config)
    rid = _reserve(deps, "CP1", V16)
    made.append(_reservation(rid)["uniqueId"])
    request("POST", "/chargers/CP2/calls", {"action": "ClearCache"})  # another charger's
    _answer(deps, "CP1", V16, call("ClearCache", {}), {"status": "Rejected"})
    pending = call("ClearCache", {})
    assert len(made) == 6 and len(set(made)) == 6

    full = request("GET", "/chargers/CP1/calls").body
    assert [c["uniqueId"] for c in full["calls"]] == made[::-1]
    assert full["count"] == 6 and full["next"] is None
    by_id = {c["uniqueId"]: c for c in full["calls"]}
    assert by_id[made[0]]["status"] == "accepted" and by_id[made[0]]["response"] == {"status": "Accepted"}
    assert by_id[made[1]]["status"] == "error" and by_id[made[1]]["error"]["errorCode"] == "NotSupported"
    assert by_id[made[2]]["response"] == config and by_id[made[2]]["payload"] == {"key": ["HeartbeatInterval"]}
    assert by_id[made[3]]["action"] == "ReserveNow" and by_id[made[3]]["payload"]["reservationId"] == rid
    assert by_id[pending]["status"] == "pending" and "response" not in by_id[pending]
    for listed in full["calls"]:
        assert listed == request("GET", f"/chargers/CP1/calls/{listed['uniqueId']}").body

    for limit in (1, 2, 4, 5, 6, 7):
        seen: list[str] = []
        after: str | None = None
        pages = 0
        while True:
            query = {"limit": str(limit), **({"after": after} if after else {})}
            page = request("GET", "/chargers/CP1/calls", query=query).body
            pages += 1
            assert page["count"] == len(page["calls"]) <= limit
            seen += [c["uniqueId"] for c in page["calls"]]
            after = page["next"]
            if after is None:
                break
            assert after == page["calls"][-1]["uniqueId"]
        assert seen == made[::-1], limit
        assert pages == max(1, -(-6 // limit)), limit


def test_call_history_with_time_ordered_ids(deps: Dependencies) -> None:
    """The deployed id source: more than nine calls still list newest first across pages."""
    deps.ids = TimeOrderedIds()
    connect(deps, "CP1", V16)
    made = []
    for _ in range(12):
        uid = request("POST", "/chargers/CP1/calls", {"action": "ClearCache"}).body["uniqueId"]
        _answer(deps, "CP1", V16, uid, {"status": "Accepted"})
        made.append(uid)
        time.sleep(0.002)  # UUIDv7 orders by the millisecond only
    seen: list[str] = []
    after: str | None = None
    while True:
        page = request("GET", "/chargers/CP1/calls", query={"limit": "5", **({"after": after} if after else {})}).body
        seen += [c["uniqueId"] for c in page["calls"]]
        if (after := page["next"]) is None:
            break
    assert seen == made[::-1]


def test_an_overdue_pending_call_is_listed_as_timeout(deps: Dependencies) -> None:
    connect(deps, "CP1", V16)
    uid = request("POST", "/chargers/CP1/calls", {"action": "ClearCache"}).body["uniqueId"]
    deps.clock.advance(29)  # type: ignore[attr-defined]
    assert request("GET", "/chargers/CP1/calls").body["calls"][0]["status"] == "pending"
    deps.clock.advance(1)  # type: ignore[attr-defined]
    listed = request("GET", "/chargers/CP1/calls").body["calls"][0]
    assert listed["uniqueId"] == uid and listed["status"] == "timeout"
    assert "completedAt" not in listed  # the listing shows it, without writing it
    assert deps.store.get_call("CP1", uid)["status"] == "pending"  # type: ignore[index]
    assert request("GET", f"/chargers/CP1/calls/{uid}").body["status"] == "timeout"
    assert deps.store.get_call("CP1", uid)["status"] == "timeout"  # type: ignore[index]


@pytest.mark.parametrize("bad", ["0", "501", "x", "-1", "", "1.5", " 5"])
def test_a_bad_limit_is_400(deps: Dependencies, bad: str) -> None:
    connect(deps, "CP1", V16)
    answer = request("GET", "/chargers/CP1/calls", query={"limit": bad})
    assert answer.status == 400 and "limit" in answer.body["error"]


def test_call_history_limits_and_unknown_charger(deps: Dependencies) -> None:
    connect(deps, "CP1", V16)
    assert request("GET", "/chargers/CP1/calls", query={"limit": "1"}).status == 200
    assert request("GET", "/chargers/CP1/calls", query={"limit": "500"}).status == 200
    assert request("GET", "/chargers/CP1/calls").body == {"calls": [], "count": 0, "next": None}
    assert request("GET", "/chargers/CP1/calls", query={"after": "x" * 37}).status == 400
    unknown = request("GET", "/chargers/GHOST/calls")
    assert unknown.status == 404 and unknown.body["chargePointId"] == "GHOST"


def test_a_superscript_digit_as_limit_is_400(deps: Dependencies) -> None:
    connect(deps, "CP1", V16)
    assert request("GET", "/chargers/CP1/calls", query={"limit": "²"}).status == 400


# --- id tags: DELETE ------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_deleted_id_tag_is_unknown_to_the_api_and_the_chargers(deps: Dependencies, protocol: str) -> None:
    connect(deps, "CP1", protocol)

    def authorize() -> str:
        if protocol == V16:
            return str(_send(deps, "CP1", protocol, "Authorize", {"idTag": "TAG-1"})["idTagInfo"]["status"])
        token = {"idToken": {"idToken": "TAG-1", "type": "ISO14443"}}
        return str(_send(deps, "CP1", protocol, "Authorize", token)["idTokenInfo"]["status"])

    assert request("PUT", "/id-tags/TAG-1", {"status": "Accepted"}).status == 201
    assert authorize() == "Accepted"
    tx = _start(deps, "CP1", protocol, None)

    status, body, headers = _delete("/id-tags/TAG-1")
    assert (status, body) == (204, "")
    assert "content-type" not in headers
    assert request("GET", "/id-tags/TAG-1").status == 404
    # Unknown: the processor answers Invalid in every version (2.x has Unknown, but it is not used).
    assert authorize() == "Invalid"
    assert _delete("/id-tags/TAG-1")[0] == 404
    # Transactions made with it are kept.
    kept = request("GET", "/transactions", query={"chargePointId": "CP1"}).body["transactions"]
    assert [t["transactionId"] for t in kept] == [tx]


def test_delete_of_an_invalid_id_tag_is_400(deps: Dependencies) -> None:
    assert request("DELETE", "/id-tags/%20x").status == 400
    assert request("DELETE", "/id-tags/" + "x" * 256).status == 400


# --- transactions: close and the stale ones -------------------------------------------------


def _meter(deps: Dependencies, cp: str, tx: str, wh: int, timestamp: str | None = None) -> None:
    at = timestamp or format_ms(deps.clock.now_ms())
    sample = {"timestamp": at, "sampledValue": [{"value": str(wh)}]}
    assert (
        _send(deps, cp, V16, "MeterValues", {"connectorId": 1, "transactionId": int(tx), "meterValue": [sample]}) == {}
    )


def _start_16(deps: Dependencies, cp: str, meter_start: int = 1000) -> str:
    payload = {"connectorId": 1, "idTag": "TAG-1", "meterStart": meter_start, "timestamp": "2025-06-15T15:10:00Z"}
    return str(_send(deps, cp, V16, "StartTransaction", payload)["transactionId"])


def _stop_16(deps: Dependencies, cp: str, tx: str, meter_stop: int) -> None:
    payload = {
        "transactionId": int(tx),
        "meterStop": meter_stop,
        "timestamp": "2025-06-15T18:00:00Z",
        "reason": "PowerLoss",
    }
    _send(deps, cp, V16, "StopTransaction", payload)


def _transaction(cp: str, tx: str) -> dict[str, Any]:
    found = [t for t in request("GET", "/transactions", query={"chargePointId": cp}).body["transactions"]]
    return next(t for t in found if t["transactionId"] == tx)


def test_close_an_open_1_6_transaction(deps: Dependencies) -> None:
    request("PUT", "/id-tags/TAG-1", {})
    connect(deps, "CP1", V16)
    tx = _start_16(deps, "CP1")
    deps.clock.advance(1800)  # type: ignore[attr-defined]
    _meter(deps, "CP1", tx, 5400)
    deps.clock.advance(2 * 86400)  # type: ignore[attr-defined]

    closed = request("POST", f"/transactions/{tx}/close", {"reason": "charger replaced"})
    assert closed.status == 200, closed.body
    view = closed.body
    assert view["status"] == "Completed" and view["closedBy"] == "operator"
    assert view["closeReason"] == "charger replaced"
    assert view["closedAt"] == view["stoppedAt"] == format_ms(deps.clock.now_ms())
    assert (view["meterStart"], view["meterLast"], view["energyWh"]) == (1000, 5400, 4400)
    assert view["lastActivityAt"] == format_ms(START_MS + 1800_000)  # closing is not activity
    assert _frames(deps) == []  # nothing is sent to the charger
    assert _transaction("CP1", tx) == view

    again = request("POST", f"/transactions/{tx}/close", {"reason": "twice"})
    assert again.status == 409 and again.body["transactionStatus"] == "Completed"
    assert _transaction("CP1", tx)["closeReason"] == "charger replaced"

    # The charger's own stop, arriving later, is still applied; closedBy stays.
    deps.clock.advance(60)  # type: ignore[attr-defined]
    _stop_16(deps, "CP1", tx, 6000)
    after = _transaction("CP1", tx)
    assert (after["meterStop"], after["energyWh"], after["stopReason"]) == (6000, 5000, "PowerLoss")
    assert after["closedBy"] == "operator" and after["closeReason"] == "charger replaced"
    assert after["closedAt"] == view["closedAt"] and after["status"] == "Completed"


def test_a_transaction_the_charger_stopped_cannot_be_closed(deps: Dependencies) -> None:
    connect(deps, "CP1", V16)
    tx = _start_16(deps, "CP1")
    _stop_16(deps, "CP1", tx, 2000)
    refused = request("POST", f"/transactions/{tx}/close", {"reason": "stale"})
    assert refused.status == 409 and refused.body["transactionStatus"] == "Completed"
    shown = _transaction("CP1", tx)
    assert "closedBy" not in shown and shown["meterStop"] == 2000


def test_close_errors(deps: Dependencies) -> None:
    connect(deps, "CP1", V16)
    tx = _start_16(deps, "CP1")
    assert request("POST", "/transactions/999/close", {"reason": "x"}).status == 404
    for body in (
        {},
        {"reason": ""},
        {"reason": "   "},
        {"reason": "x" * 256},
        {"reason": 5},
        {"reason": "x", "why": 1},
    ):
        assert request("POST", f"/transactions/{tx}/close", body).status == 400, body
    assert request("POST", f"/transactions/{tx}/close").status == 400  # no body at all
    assert request("POST", f"/transactions/{tx}/close", {"reason": "x", "chargePointId": "CP2"}).status == 404
    assert request("POST", f"/transactions/{tx}/close", {"reason": "x", "chargePointId": "bad id"}).status == 400
    assert request("GET", f"/transactions/{tx}/close").status == 405
    assert _transaction("CP1", tx)["status"] == "Active"
    assert request("POST", f"/transactions/{tx}/close", {"reason": "x" * 255}).status == 200


@pytest.mark.parametrize("protocol", V2X)
def test_close_a_2x_id_two_chargers_use(deps: Dependencies, protocol: str) -> None:
    connect(deps, "CS1", protocol)
    connect(deps, "CS2", protocol)
    _start(deps, "CS2", protocol, None, tx="tx-shared")
    _start(deps, "CS1", protocol, None, tx="tx-shared")
    ambiguous = request("POST", "/transactions/tx-shared/close", {"reason": "stale"})
    assert ambiguous.status == 409
    assert ambiguous.body["chargePointIds"] == ["CS1", "CS2"]
    assert [t["status"] for t in request("GET", "/transactions").body["transactions"]] == ["Active", "Active"]

    closed = request("POST", "/transactions/tx-shared/close", {"reason": "stale", "chargePointId": "CS2"})
    assert closed.status == 200
    assert closed.body["chargePointId"] == "CS2" and closed.body["status"] == "Completed"
    assert _transaction("CS1", "tx-shared")["status"] == "Active"
    assert _frames(deps) == []


def test_stale_active_transactions_by_older_than(deps: Dependencies) -> None:
    connect(deps, "OLD", V16)
    connect(deps, "DONE", V16)
    connect(deps, "METERED", V16)
    connect(deps, "NEW", V16)
    stale = _start_16(deps, "OLD")
    done = _start_16(deps, "DONE")
    _stop_16(deps, "DONE", done, 1500)
    metered = _start_16(deps, "METERED")
    deps.clock.advance(HOUR_S + 1800)  # type: ignore[attr-defined]
    _meter(deps, "METERED", metered, 3000)  # activity 1.5 h after its start
    deps.clock.advance(1800)  # type: ignore[attr-defined]
    _start_16(deps, "NEW")
    deps.clock.advance(HOUR_S)  # type: ignore[attr-defined]
    # now: OLD and DONE started 3 h ago, METERED's last reading 1.5 h ago, NEW 1 h ago

    def found(**query: str) -> list[tuple[str, str]]:
        answer = request("GET", "/transactions", query=query)
        assert answer.status == 200, answer.body
        return sorted((t["chargePointId"], t["transactionId"]) for t in answer.body["transactions"])

    assert found(status="Active", olderThan="2h") == [("OLD", stale)]
    assert found(status="Active", olderThan="120m") == [("OLD", stale)]
    assert found(olderThan="2h") == [("DONE", done), ("OLD", stale)]
    assert found(status="Active", olderThan="1h") == [("METERED", metered), ("OLD", stale)]
    two_hours_ago = format_ms(deps.clock.now_ms() - 2 * HOUR_S * 1000)
    assert found(status="Active", olderThan=two_hours_ago) == [("OLD", stale)]
    assert found(status="Active", olderThan="2025-06-15T17:06:40+01:00") == [("OLD", stale)]  # the same instant
    assert found(status="Active", olderThan="4h") == []
    assert found(status="Active", olderThan="2h", chargePointId="NEW") == []
    assert found(status="Active", olderThan="2h", chargePointId="OLD") == [("OLD", stale)]
    stale_view = request("GET", "/transactions", query={"chargePointId": "OLD"}).body["transactions"][0]
    assert stale_view["lastActivityAt"] == format_ms(START_MS)

    for bad in ("yesterday", "2x", "h", "-2h", "", "2025-13-01T00:00:00Z"):
        refused = request("GET", "/transactions", query={"olderThan": bad})
        assert refused.status == 400, bad
        assert "olderThan" in refused.body["error"]


def test_a_charger_clock_ahead_does_not_hide_a_stale_transaction(deps: Dependencies) -> None:
    connect(deps, "CP1", V16)
    tx = _start_16(deps, "CP1")
    _meter(deps, "CP1", tx, 2000, timestamp="2026-01-01T00:00:00Z")  # the charger's clock is months ahead
    deps.clock.advance(3 * HOUR_S)  # type: ignore[attr-defined]
    stale = request("GET", "/transactions", query={"status": "Active", "olderThan": "2h"}).body
    assert [t["transactionId"] for t in stale["transactions"]] == [tx]
