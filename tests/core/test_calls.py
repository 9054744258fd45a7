"""CSMS-initiated calls: created by ``start_call``, completed by the charger's CALLRESULT / CALLERROR."""

from __future__ import annotations

import json

import pytest

from ocpp_core import calls
from ocpp_core.calls import CallRefused, start_call, view_call
from ocpp_core.calls import RefusalKind as K
from ocpp_core.processor import OutcomeKind
from tests.fakes import START_MS, mark_connected, mark_disconnected

from .support import V2X, V16, V21, V201, VERSIONS, Charger, check_call_error

RESET = {V16: {"type": "Soft"}, V201: {"type": "Immediate"}, V21: {"type": "Immediate"}}
RESET_OK = {"status": "Accepted"}


def connect(charger: Charger) -> None:
    mark_connected(
        charger.store, charger.cp, "conn-1", charger.clock.now_ms(), protocol=charger.version.value, registered=True
    )


def begin(charger: Charger, action: str = "Reset", payload: dict | None = None, timeout_s: int = 30):
    return start_call(
        charger.store,
        charger.ids,
        charger.clock.now_ms(),
        charger.cp,
        action,
        RESET[charger.version] if payload is None else payload,
        timeout_s=timeout_s,
    )


@pytest.mark.parametrize("version", VERSIONS)
def test_callresult_completes_the_pending_call(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    connect(charger)
    new = begin(charger)
    uid = new.record["uniqueId"]
    assert json.loads(new.frame) == [2, uid, "Reset", RESET[version]]
    assert charger.store.get_call("CP1", uid)["status"] == "pending"

    charger.clock.advance(2)
    outcome = charger.send_text(json.dumps([3, uid, RESET_OK]))
    assert (outcome.kind, outcome.reply, outcome.action) == (OutcomeKind.RESULT, None, "Reset")
    record = charger.store.get_call("CP1", uid)
    assert record["status"] == "accepted"
    assert record["response"] == RESET_OK
    assert record["completedAt"] == START_MS + 2000
    # The outbound slot is free again: the next call can go.
    assert begin(charger).record["status"] == "pending"


@pytest.mark.parametrize("version", VERSIONS)
def test_callerror_completes_the_call_as_error(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    connect(charger)
    uid = begin(charger).record["uniqueId"]
    outcome = charger.send_text(json.dumps([4, uid, "NotSupported", "not here", {"why": "model"}]))
    assert (outcome.kind, outcome.reply) == (OutcomeKind.RESULT, None)
    record = charger.store.get_call("CP1", uid)
    assert record["status"] == "error"
    assert record["error"] == {
        "errorCode": "NotSupported",
        "errorDescription": "not here",
        "errorDetails": {"why": "model"},
    }
    assert "response" not in record
    begin(charger)  # slot released


def test_callerror_with_odd_details(make_charger) -> None:
    charger: Charger = make_charger(V16)
    connect(charger)
    uid = begin(charger).record["uniqueId"]
    charger.send_text(json.dumps([4, uid, "GenericError", "x", ["not", "a", "dict"]]))
    assert charger.store.get_call("CP1", uid)["error"]["errorDetails"] == {}


@pytest.mark.parametrize("version", (V16, V201))
def test_invalid_callresult_is_an_error_record_without_reply(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    connect(charger)
    uid = begin(charger).record["uniqueId"]
    outcome = charger.send_text(json.dumps([3, uid, {"status": "Maybe"}]))
    assert (outcome.kind, outcome.reply) == (OutcomeKind.RESULT, None)
    record = charger.store.get_call("CP1", uid)
    assert record["status"] == "error"
    assert record["error"]["errorCode"] == "PropertyConstraintViolation"
    assert record["error"]["invalidResponse"] == {"status": "Maybe"}
    assert "response" not in record
    begin(charger)  # slot released


def test_v21_invalid_callresult_gets_a_callresulterror(make_charger) -> None:
    # OCPP 2.1 part 4: a CALLRESULT the receiver cannot process is answered with CALLRESULTERROR (5).
    charger: Charger = make_charger(V21)
    connect(charger)
    uid = begin(charger).record["uniqueId"]
    outcome = charger.send_text(json.dumps([3, uid, {}]))
    assert outcome.kind == OutcomeKind.RESULT
    frame = check_call_error(outcome.reply, V21, uid, message_type=5)
    assert frame[2] == "OccurrenceConstraintViolation"
    record = charger.store.get_call("CP1", uid)
    assert record["status"] == "error" and record["error"]["errorCode"] == "OccurrenceConstraintViolation"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    "answer",
    ['[3,"nobody",{"status":"Accepted"}]', '[4,"nobody","GenericError","x",{}]', '[4,"nobody","GenericError","x"]'],
)
def test_answer_to_no_call_is_ignored(make_charger, version, answer: str) -> None:
    charger: Charger = make_charger(version)
    connect(charger)
    uid = begin(charger).record["uniqueId"]
    outcome = charger.send_text(answer)
    assert (outcome.kind, outcome.reply) == (OutcomeKind.RESULT_UNMATCHED, None)
    assert charger.store.get_call("CP1", uid)["status"] == "pending"  # the real call is untouched


def test_answer_from_another_charger_does_not_complete_the_call(make_charger) -> None:
    cp1: Charger = make_charger(V16, cp="CP1")
    cp2: Charger = make_charger(V16, cp="CP2")
    connect(cp1)
    uid = begin(cp1).record["uniqueId"]
    assert cp2.send_text(json.dumps([3, uid, RESET_OK])).kind == OutcomeKind.RESULT_UNMATCHED
    assert cp1.store.get_call("CP1", uid)["status"] == "pending"


@pytest.mark.parametrize("version", VERSIONS)
def test_second_answer_is_ignored(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    connect(charger)
    uid = begin(charger).record["uniqueId"]
    charger.send_text(json.dumps([3, uid, RESET_OK]))
    outcome = charger.send_text(json.dumps([4, uid, "InternalError", "late", {}]))
    assert (outcome.kind, outcome.reply) == (OutcomeKind.RESULT_UNMATCHED, None)
    assert charger.store.get_call("CP1", uid)["status"] == "accepted"


def test_late_answer_marks_the_call_timed_out(make_charger) -> None:
    charger: Charger = make_charger(V16)
    connect(charger)
    uid = begin(charger, timeout_s=30).record["uniqueId"]
    charger.clock.advance(30)
    outcome = charger.send_text(json.dumps([3, uid, RESET_OK]))
    assert (outcome.kind, outcome.reply) == (OutcomeKind.RESULT_UNMATCHED, None)
    record = charger.store.get_call("CP1", uid)
    assert record["status"] == "timeout" and record["lateAnswerAt"] == START_MS + 30_000
    assert "response" not in record
    begin(charger)  # slot released


def test_view_call_times_out_an_overdue_call(make_charger) -> None:
    charger: Charger = make_charger(V201)
    connect(charger)
    uid = begin(charger, timeout_s=10).record["uniqueId"]
    assert view_call(charger.store, START_MS + 9_999, "CP1", uid)["status"] == "pending"
    assert view_call(charger.store, START_MS + 10_000, "CP1", uid)["status"] == "timeout"
    assert charger.store.get_call("CP1", uid)["status"] == "timeout"
    assert view_call(charger.store, START_MS, "CP1", "unknown") is None


def test_v21_callresulterror_from_the_charger_completes_nothing(make_charger) -> None:
    charger: Charger = make_charger(V21)
    connect(charger)
    uid = begin(charger).record["uniqueId"]
    outcome = charger.send_text(json.dumps([5, uid, "FormatViolation", "bad", {}]))
    assert (outcome.kind, outcome.reply) == (OutcomeKind.RESULT_UNMATCHED, None)
    assert charger.store.get_call("CP1", uid)["status"] == "pending"


def test_only_one_outstanding_call_per_charger(make_charger) -> None:
    charger: Charger = make_charger(V16)
    connect(charger)
    first = begin(charger).record["uniqueId"]
    with pytest.raises(CallRefused) as refused:
        begin(charger)
    assert refused.value.kind is K.BUSY and refused.value.extra["pendingUniqueId"] == first
    # Another charger has its own slot.
    other: Charger = make_charger(V16, cp="CP2")
    connect(other)
    begin(other)


@pytest.mark.parametrize(
    ("setup", "action", "payload", "kind"),
    [
        ("none", "Reset", {"type": "Soft"}, K.UNKNOWN_CHARGER),
        ("never-connected", "Reset", {"type": "Soft"}, K.NEVER_CONNECTED),
        ("disconnected", "Reset", {"type": "Soft"}, K.NOT_CONNECTED),
        ("connected", "Heartbeat", {}, K.INVALID),  # charger-initiated
        ("connected", "RequestStartTransaction", {"idToken": {}, "remoteStartId": 1}, K.INVALID),  # 2.x only
        ("connected", "Reset", {"type": "Sideways"}, K.INVALID),
        ("connected", "Reset", [], K.INVALID),
        ("connected", ["Reset"], {}, K.INVALID),
    ],
)
def test_refused_calls(make_charger, setup, action, payload, kind) -> None:
    charger: Charger = make_charger(V16)
    if setup == "never-connected":
        charger.store.update_charger("CP1", {"registered": True})
    elif setup == "disconnected":
        connect(charger)
        mark_disconnected(charger.store, "CP1", "conn-1", START_MS + 1)
    elif setup == "connected":
        connect(charger)
    with pytest.raises(CallRefused) as refused:
        begin(charger, action, payload)
    assert refused.value.kind is kind
    if setup == "connected":
        begin(charger)  # nothing was left holding the slot


@pytest.mark.parametrize("version", V2X)
def test_results_feed_the_charger_state(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    connect(charger)
    request = {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}
    uid = begin(charger, "GetVariables", request).record["uniqueId"]
    response = {
        "getVariableResult": [
            {
                "attributeStatus": "Accepted",
                "attributeValue": "300",
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
            }
        ]
    }
    assert charger.send_text(json.dumps([3, uid, response])).kind == OutcomeKind.RESULT
    assert charger.store.get_charger_map("CP1", "variables") == {"OCPPCommCtrlr/HeartbeatInterval": "300"}


def test_v16_get_configuration_result_is_kept(make_charger) -> None:
    charger: Charger = make_charger(V16)
    connect(charger)
    uid = begin(charger, "GetConfiguration", {}).record["uniqueId"]
    response = {
        "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}],
        "unknownKey": ["X"],
    }
    charger.send_text(json.dumps([3, uid, response]))
    record = charger.store.get_charger("CP1")
    assert charger.store.get_charger_map("CP1", "configuration") == {
        "HeartbeatInterval": {"value": "300", "readonly": False}
    }
    assert record["unknownConfigurationKeys"] == ["X"]


def test_results_are_effects_only_once_accepted(make_charger) -> None:
    charger: Charger = make_charger(V16)
    connect(charger)
    uid = begin(charger, "GetConfiguration", {}).record["uniqueId"]
    charger.send_text(json.dumps([3, uid, {"configurationKey": [{"key": "K"}]}]))  # readonly missing
    assert charger.store.get_call("CP1", uid)["status"] == "error"
    assert charger.store.get_charger_map("CP1", "configuration") == {}


def test_fail_call_frees_the_slot(make_charger) -> None:
    charger: Charger = make_charger(V16)
    connect(charger)
    uid = begin(charger).record["uniqueId"]
    calls.fail_call(charger.store, START_MS, "CP1", uid, "publish failed")
    record = charger.store.get_call("CP1", uid)
    assert record["status"] == "error" and record["error"]["errorCode"] == "NotSent"
    begin(charger)
