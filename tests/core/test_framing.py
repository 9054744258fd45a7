"""OCPP-J framing per version (OCPP-J 1.6 §4, OCPP 2.0.1 / 2.1 part 4 §4), through ``process``.

Which input gets which error code, in each version's own spelling; which inputs get no answer at
all; and hostile input (deep nesting, surrogates, huge strings and numbers) that must neither
raise nor trip the processor's last line of defence.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest

from ocpp_core.errors import InternalError, PropertyConstraintViolation
from ocpp_core.framing import (
    Call,
    CallError,
    CallResult,
    FrameError,
    MessageType,
    Send,
    parse_frame,
    serialize,
    serialize_error,
)
from ocpp_core.processor import OutcomeKind

from .support import V2X, V16, V21, V201, VERSIONS, Charger, check_call_error

LAST_RESORT = "internal failure before a reply could be built"


@pytest.fixture
def no_internal_errors(caplog: pytest.LogCaptureFixture):
    """Fails the test if ``ocpp_core`` logged an ERROR (an exception it caught, or a bug it noticed)."""
    caplog.set_level(logging.WARNING, logger="ocpp_core")
    yield
    errors = [r for r in caplog.records if r.name.startswith("ocpp_core") and r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


# --- the frame types -----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_parse_call_result_and_error(version) -> None:
    assert parse_frame('[2,"a","Heartbeat",{}]', version) == Call("a", "Heartbeat", {})
    assert parse_frame(' [ 3 , "a" , {"x": [1]} ] ', version) == CallResult("a", {"x": [1]})
    assert parse_frame('[4,"a","GenericError","oops",{"k":1}]', version) == CallError(
        "a", "GenericError", "oops", {"k": 1}
    )
    # Lenient on what a charger sends: details may be missing.
    assert parse_frame('[4,"a","GenericError","oops"]', version) == CallError("a", "GenericError", "oops", {})


def test_v21_callresulterror_and_send() -> None:
    error = parse_frame('[5,"a","FormatViolation","bad result",{}]', V21)
    assert error == CallError("a", "FormatViolation", "bad result", {}, MessageType.CALLRESULTERROR)
    assert parse_frame('[6,"a","NotifyPeriodicEventStream",{"x":1}]', V21) == Send(
        "a", "NotifyPeriodicEventStream", {"x": 1}
    )


@pytest.mark.parametrize("version", (V16, V201))
@pytest.mark.parametrize("type_id", (5, 6))
def test_types_5_and_6_do_not_exist_before_21(version, type_id: int) -> None:
    with pytest.raises(FrameError) as caught:
        parse_frame(f'[{type_id},"a","X","y",{{}}]', version)
    assert caught.value.answerable
    assert caught.value.unique_id == "a"
    assert caught.value.error.code(version) == {V16: "FormationViolation", V201: "MessageTypeNotSupported"}[version]


@pytest.mark.parametrize(
    "frame",
    [
        Call("id-1", "BootNotification", {"a": [1, 2.5, None, True, "é"]}),
        CallResult("id-2", {}),
        CallError("id-3", "NotImplemented", "no", {"x": 1}),
        CallError("id-4", "FormatViolation", "bad", {}, MessageType.CALLRESULTERROR),
        Send("id-5", "NotifyPeriodicEventStream", {"id": 1}),
    ],
)
def test_serialize_round_trip(frame) -> None:
    assert parse_frame(serialize(frame), V21) == frame


def test_serialized_errors_use_the_versions_code_and_stay_short() -> None:
    error = PropertyConstraintViolation("x" * 1000, details={"field": "idTag"})
    frame = json.loads(serialize_error("u1", error, V16))
    assert frame[:3] == [4, "u1", "PropertyConstraintViolation"]
    assert len(frame[3]) <= 255 and frame[3].endswith("...")
    assert frame[4] == {"field": "idTag"}
    assert json.loads(serialize_error("u1", InternalError(), V201))[2] == "InternalError"
    assert json.loads(serialize_error("u1", error, V21, MessageType.CALLRESULTERROR))[0] == 5


# --- which input gets which code, per version -------------------------------------------------------

FORMAT = {V16: "FormationViolation", V201: "FormatViolation", V21: "FormatViolation"}
RPC = {V16: "FormationViolation", V201: "RpcFrameworkError", V21: "RpcFrameworkError"}
OCCURRENCE = {
    V16: "OccurenceConstraintViolation",
    V201: "OccurrenceConstraintViolation",
    V21: "OccurrenceConstraintViolation",
}


def _same(code: str) -> dict:
    return dict.fromkeys(VERSIONS, code)


AUTHORIZE = {
    V16: lambda token: {"idTag": token},
    V201: lambda token: {"idToken": {"idToken": token, "type": "Central"}},
    V21: lambda token: {"idToken": {"idToken": token, "type": "Central"}},
}


def _call(payload: object, action: str = "Heartbeat", uid: str = "u-1") -> str:
    return json.dumps([2, uid, action, payload])


# (name, frame text for a version, expected code per version); the reply carries id "u-1".
ERROR_CASES: list[tuple[str, Callable[..., str], dict]] = [
    ("malformed JSON, id readable", lambda v: '[2,"u-1","Heartbeat",{"a":', RPC),
    ("NaN is not JSON", lambda v: '[2,"u-1","Heartbeat",{"a":NaN}]', RPC),
    ("Infinity is not JSON", lambda v: '[2, "u-1", "Heartbeat", {"a": -Infinity}]', RPC),
    ("integer beyond the parser's limit", lambda v: '[2,"u-1","Heartbeat",{"a":' + "9" * 5000 + "}]", RPC),
    (
        "unknown message type",
        lambda v: '[7,"u-1","Heartbeat",{}]',
        {**RPC, V201: "MessageTypeNotSupported", V21: "MessageTypeNotSupported"},
    ),
    (
        "negative message type",
        lambda v: '[-2,"u-1","Heartbeat",{}]',
        {**RPC, V201: "MessageTypeNotSupported", V21: "MessageTypeNotSupported"},
    ),
    ("message type as text", lambda v: '["2","u-1","Heartbeat",{}]', RPC),
    ("message type as float", lambda v: '[2.0,"u-1","Heartbeat",{}]', RPC),
    ("message type as boolean", lambda v: '[true,"u-1","Heartbeat",{}]', RPC),
    ("CALL without payload", lambda v: '[2,"u-1","Heartbeat"]', _same("ProtocolError")),
    ("CALL with 5 elements", lambda v: '[2,"u-1","Heartbeat",{},{}]', RPC),
    ("action not a string", lambda v: '[2,"u-1",42,{}]', RPC),
    ("unknown action", lambda v: _call({}, "MakeCoffee"), _same("NotImplemented")),
    ("action in the wrong case", lambda v: _call({}, "heartbeat"), _same("NotImplemented")),
    ("action that is a path", lambda v: _call({}, "../v16/schemas/Heartbeat"), _same("NotImplemented")),
    ("CSMS-initiated action", lambda v: _call({"type": "Hard"}, "Reset"), _same("NotSupported")),
    ("CSMS-initiated action, invalid payload", lambda v: _call([], "Reset"), _same("NotSupported")),
    (
        "2.1 SEND action as a CALL",
        lambda v: _call({}, "NotifyPeriodicEventStream"),
        {V16: "NotImplemented", V201: "NotImplemented", V21: "NotSupported"},
    ),
    ("payload is a list", lambda v: _call([]), FORMAT),
    ("payload is a number", lambda v: _call(3), FORMAT),
    ("payload is null", lambda v: _call(None), FORMAT),
    ("payload is a string", lambda v: _call("{}"), FORMAT),
    ("unknown property", lambda v: _call({"surprise": 1}), FORMAT),
    ("required field missing", lambda v: _call({}, "Authorize"), OCCURRENCE),
    ("field of the wrong type", lambda v: _call(AUTHORIZE[v](7), "Authorize"), _same("TypeConstraintViolation")),
    ("string too long", lambda v: _call(AUTHORIZE[v]("x" * 300), "Authorize"), _same("PropertyConstraintViolation")),
    (
        "4 MiB string where 20 characters fit",
        lambda v: _call(AUTHORIZE[v]("x" * (4 << 20)), "Authorize"),
        _same("PropertyConstraintViolation"),
    ),
    (
        "value not in the enum",
        lambda v: _call(
            {"connectorId": 1, "errorCode": "Melted", "status": "Available"}
            if v is V16
            else {"timestamp": "2025-01-01T00:00:00Z", "connectorStatus": "Melted", "evseId": 1, "connectorId": 1},
            "StatusNotification",
        ),
        _same("PropertyConstraintViolation"),
    ),
    (
        "date-time that is not one",
        lambda v: _call(
            {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": "yesterday"}
            if v is V16
            else {"timestamp": "yesterday", "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
            "StatusNotification",
        ),
        _same("PropertyConstraintViolation"),
    ),
    (
        "array below minItems",
        lambda v: _call(
            {"connectorId": 1, "meterValue": []} if v is V16 else {"evseId": 1, "meterValue": []}, "MeterValues"
        ),
        OCCURRENCE,
    ),
    ("escaped lone surrogate", lambda v: '[2,"u-1","Authorize",' + json.dumps(AUTHORIZE[v]("\ud800")) + "]", FORMAT),
    (
        "raw lone surrogate",
        lambda v: '[2,"u-1","Authorize",' + json.dumps(AUTHORIZE[v]("\udcff"), ensure_ascii=False) + "]",
        FORMAT,
    ),
    ("duplicate keys: the last one counts", lambda v: '[2,"u-1","Heartbeat",{"a":1,"a":2}]', FORMAT),
    ("payload nested 200,000 deep", lambda v: '[2,"u-1","Heartbeat",' + "[" * 200_000 + "]" * 200_000 + "]", RPC),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "text", "codes"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_code_per_version(make_charger, no_internal_errors, version, name, text, codes) -> None:
    charger: Charger = make_charger(version)
    outcome = charger.send_text(text(version))
    assert outcome.kind == OutcomeKind.CALL_ERROR, outcome
    assert outcome.reply is not None
    frame = check_call_error(outcome.reply, version, "u-1")
    assert frame[2] == codes[version], frame
    assert outcome.error_code == codes[version]
    assert len(outcome.reply) < 1024  # the description never echoes a huge input
    # refused before anything was stored
    assert charger.store.list_chargers() == [] and charger.store.list_events("CP1") == []


def test_integer_below_its_minimum_v21(make_charger) -> None:
    # 2.1 added minimums (evseId >= 0); 1.6 and 2.0.1 have none on this field.
    charger: Charger = make_charger(V21)
    meter = [{"timestamp": "2025-01-01T00:00:00Z", "sampledValue": [{"value": 1}]}]
    assert charger.error("MeterValues", {"evseId": -1, "meterValue": meter}) == "PropertyConstraintViolation"
    assert charger.result("MeterValues", {"evseId": 0, "meterValue": meter}) == {}


def test_duplicate_keys_the_last_one_counts(make_charger) -> None:
    charger: Charger = make_charger(V16)
    assert charger.error_for_text('[2,"u-1","Authorize",{"idTag":"A","idTag":5}]', "u-1") == "TypeConstraintViolation"
    outcome = charger.send_text('[2,"u-2","Authorize",{"idTag":5,"idTag":"A"}]')
    assert outcome.kind == OutcomeKind.REPLIED


def test_unique_id_longer_than_36_is_answered_with_an_error(make_charger) -> None:
    for version in VERSIONS:
        charger: Charger = make_charger(version)
        uid = "u" * 37
        frame = check_call_error(charger.send_text(_call({}, uid=uid)).reply, version, uid)
        assert frame[2] == RPC[version]


@pytest.mark.parametrize("uid", ["", "u", "a" * 36, "Ünïcødé-✓", "with space", '"quoted"'])
def test_any_readable_id_of_up_to_36_characters_is_echoed(make_charger, uid: str) -> None:
    for version in VERSIONS:
        charger: Charger = make_charger(version, cp=f"CP-{version.package_dir}")
        outcome = charger.send_text(_call({}, uid=uid))
        assert outcome.kind == OutcomeKind.REPLIED, outcome
        assert json.loads(outcome.reply)[:2] == [3, uid]


# --- no answer: the id cannot be read, or the frame is never answered -----------------------------

DROPPED = [
    ("not JSON", "hello"),
    ("empty", ""),
    ("whitespace", " \n\t"),
    ("object", '{"2":"u-1"}'),
    ("empty array", "[]"),
    ("one element", "[2]"),
    ("id is a number", '[2,1,"Heartbeat",{}]'),
    ("id is null", '[2,null,"Heartbeat",{}]'),
    ("id is a list", '[2,["u-1"],"Heartbeat",{}]'),
    ("id with an escaped lone surrogate", '[2,"\\udc80","Heartbeat",{}]'),
    ("id with a raw lone surrogate", '[2,"\udc80","Heartbeat",{}]'),
    ("id of 300 characters", json.dumps([2, "i" * 300, "Heartbeat", {}])),
    ("id of 4 MiB", json.dumps([2, "i" * (4 << 20), "Heartbeat", {}])),
    ("array nested 200,000 deep", "[" * 200_000 + "]" * 200_000),
    ("truncated before the id ends", '[2,"u-1'),
    ("malformed JSON, id not recoverable", '[2, u-1, "Heartbeat", {}]'),
    ("random bytes", bytes(range(256)).decode("utf-8", "surrogateescape")),
    ("4 MiB of garbage", "x" * (4 << 20)),
    # Never answered, whatever is wrong with them: answering could make two sides loop.
    ("CALLRESULT too short", '[3,"u-1"]'),
    ("CALLRESULT too long", '[3,"u-1",{},{}]'),
    ("CALLERROR without description", '[4,"u-1","GenericError"]'),
    ("CALLERROR code not a string", '[4,"u-1",5,"x",{}]'),
    ("CALLRESULT for no call", '[3,"u-1",{"status":"Accepted"}]'),
    ("CALLERROR for no call", '[4,"u-1","GenericError","x",{}]'),
]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "text"), DROPPED, ids=[c[0] for c in DROPPED])
def test_no_reply(make_charger, no_internal_errors, version, name, text) -> None:
    charger: Charger = make_charger(version)
    outcome = charger.send_text(text)
    assert outcome.reply is None, outcome
    assert outcome.kind in (OutcomeKind.DROPPED, OutcomeKind.RESULT_UNMATCHED), outcome
    assert outcome.detail != LAST_RESORT
    assert charger.store.list_chargers() == [] and charger.store.list_events("CP1") == []


@pytest.mark.parametrize(
    "text",
    [
        '[5,"u-1","FormatViolation","your result was bad",{}]',
        '[5,"u-1","FormatViolation"]',  # malformed, and still never answered
        '[6,"u-1","NotifyPeriodicEventStream",{}]',  # invalid SEND
        '[6,"u-1","Heartbeat",{}]',  # not a SEND action
        '[6,"u-1","NotifyPeriodicEventStream",{"a":',  # broken JSON after a SEND prefix
    ],
)
def test_v21_callresulterror_and_send_are_never_answered(make_charger, no_internal_errors, text: str) -> None:
    charger: Charger = make_charger(V21)
    outcome = charger.send_text(text)
    assert outcome.reply is None, outcome
    assert charger.store.list_events("CP1") == []


def test_v21_send_is_processed_once_and_not_answered(make_charger, no_internal_errors) -> None:
    charger: Charger = make_charger(V21)
    payload = {"id": 3, "pending": 0, "basetime": "2025-06-15T15:00:00Z", "data": [{"t": 1.5, "v": "230.1"}]}
    text = json.dumps([6, "s-1", "NotifyPeriodicEventStream", payload])
    first = charger.send_text(text)
    assert (first.kind, first.reply, first.action) == (OutcomeKind.SEND, None, "NotifyPeriodicEventStream")
    again = charger.send_text(text)  # a redelivery: processed again, rewriting the same record
    assert (again.kind, again.reply) == (OutcomeKind.SEND, None)
    events = charger.store.list_events("CP1", "NotifyPeriodicEventStream")
    assert [e["payload"] for e in events] == [payload]


def test_v21_call_with_the_id_of_an_earlier_send_is_still_answered(make_charger, no_internal_errors) -> None:
    charger: Charger = make_charger(V21)
    payload = {"id": 3, "pending": 0, "basetime": "2025-06-15T15:00:00Z", "data": [{"t": 1.5, "v": "1"}]}
    assert charger.send_text(json.dumps([6, "same", "NotifyPeriodicEventStream", payload])).kind == OutcomeKind.SEND
    call = charger.send_text(json.dumps([2, "same", "Heartbeat", {}]))
    assert call.kind == OutcomeKind.REPLIED and json.loads(call.reply)[:2] == [3, "same"], call
    # and the other way round: a SEND after a CALL with its id is processed, not taken for a duplicate
    assert charger.send_text(json.dumps([2, "other", "Heartbeat", {}])).kind == OutcomeKind.REPLIED
    assert charger.send_text(json.dumps([6, "other", "NotifyPeriodicEventStream", payload])).kind == OutcomeKind.SEND
    assert len(charger.store.list_events("CP1", "NotifyPeriodicEventStream")) == 2


def test_v21_call_that_reuses_a_send_id_is_answered(make_charger) -> None:
    # A SEND and a CALL may carry the same unique id: different frames, so different keys.
    charger: Charger = make_charger(V21)
    payload = {"id": 3, "pending": 0, "basetime": "2025-06-15T15:00:00Z", "data": [{"t": 1.5, "v": "1"}]}
    charger.send_text(json.dumps([6, "s", "NotifyPeriodicEventStream", payload]))
    assert set(charger.result("Heartbeat", {}, uid="s")) == {"currentTime"}
    assert len(charger.store.list_events("CP1", "NotifyPeriodicEventStream")) == 1


@pytest.mark.parametrize("version", (V16, V201))
def test_send_before_21_is_an_unsupported_message_type(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    payload = {"id": 3, "pending": 0, "basetime": "2025-06-15T15:00:00Z", "data": [{"t": 1.5, "v": "1"}]}
    code = charger.error_for_text(json.dumps([6, "s-1", "NotifyPeriodicEventStream", payload]), "s-1")
    assert code == {V16: "FormationViolation", V201: "MessageTypeNotSupported"}[version]
    assert charger.store.list_events("CP1") == []


@pytest.mark.parametrize("version", (V16, V201))
def test_callresulterror_before_21_is_an_unsupported_message_type(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    code = charger.error_for_text('[5,"r-1","FormatViolation","bad",{}]', "r-1")
    assert code == {V16: "FormationViolation", V201: "MessageTypeNotSupported"}[version]


# --- envelopes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "envelope",
    [
        None,
        [],
        "text",
        {},
        {"chargePointId": "CP1", "protocol": "ocpp1.6"},  # no frame
        {"chargePointId": "CP1", "protocol": "ocpp1.6", "frame": ["not", "text"]},
        {"chargePointId": "CP1", "protocol": "ocpp1.5", "frame": '[2,"u","Heartbeat",{}]'},
        {"chargePointId": "CP1", "protocol": None, "frame": '[2,"u","Heartbeat",{}]'},
        {"chargePointId": "CP 1", "protocol": "ocpp1.6", "frame": '[2,"u","Heartbeat",{}]'},
        {"chargePointId": "C" * 49, "protocol": "ocpp1.6", "frame": '[2,"u","Heartbeat",{}]'},
        {"chargePointId": 1, "protocol": "ocpp1.6", "frame": '[2,"u","Heartbeat",{}]'},
        # the topic (vouched for by the IoT policy) names another charger: spoofed body
        {"chargePointId": "CP1", "topicChargePointId": "CP2", "protocol": "ocpp1.6", "frame": '[2,"u","Heartbeat",{}]'},
    ],
)
def test_unusable_envelopes_are_dropped(store, clock, ids, no_internal_errors, envelope) -> None:
    from ocpp_core import process

    outcome = process(envelope, store=store, clock=clock, ids=ids)
    assert (outcome.kind, outcome.reply) == (OutcomeKind.DROPPED, None)
    assert outcome.detail != LAST_RESORT
    assert store.list_chargers() == []


def test_received_at_defaults_to_the_clock(make_charger) -> None:
    charger: Charger = make_charger(V16)
    charger.send_text(_call({"vendorId": "v"}, "DataTransfer"), receivedAt="soon")
    assert charger.store.list_events("CP1", "DataTransfer")[0]["receivedAt"] == charger.clock.now_ms()
    charger.send_text(_call({"vendorId": "v"}, "DataTransfer", uid="u-2"), receivedAt=123)
    events = {e["uniqueId"]: e for e in charger.store.list_events("CP1", "DataTransfer")}
    assert events["u-2"]["receivedAt"] == 123


# --- hostile but valid input: answered normally -------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_4_mib_string_where_the_schema_allows_it(make_charger, no_internal_errors, version) -> None:
    charger: Charger = make_charger(version)
    big = "d" * (4 << 20)
    assert charger.result("DataTransfer", {"vendorId": "com.example", "data": big}) == {"status": "UnknownVendorId"}
    assert charger.store.list_events("CP1", "DataTransfer")[0]["payload"]["data"] == big


@pytest.mark.parametrize("version", V2X)
def test_nested_data_transfer_data(make_charger, no_internal_errors, version) -> None:
    # 2.x DataTransfer "data" has no schema at all: any JSON value is valid.
    charger: Charger = make_charger(version)
    data = json.loads("[" * 20 + '{"k": null}' + "]" * 20)
    assert charger.result("DataTransfer", {"vendorId": "v", "data": data}) == {"status": "UnknownVendorId"}
    assert charger.store.list_events("CP1", "DataTransfer")[0]["payload"]["data"] == data


@pytest.mark.parametrize("version", V2X)
@pytest.mark.parametrize("depth", [31, 900])
def test_data_nested_deeper_than_30_levels_is_a_format_violation(
    make_charger, no_internal_errors, version, depth
) -> None:
    # The payload object is level 1: data arrays from level 2 on. Deeper than DynamoDB keeps
    # (32 levels) would otherwise fail half way on AWS, and the charger would retry for ever.
    charger: Charger = make_charger(version)
    data = "[" * (depth - 1) + "]" * (depth - 1)
    outcome = charger.send_text('[2,"u-1","DataTransfer",{"vendorId":"v","data":' + data + "}]")
    assert check_call_error(outcome.reply, version, "u-1")[2:4] == [
        "FormatViolation",
        "Payload is nested deeper than 30 levels",
    ]
    assert charger.store.list_events("CP1") == []


@pytest.mark.parametrize("version", V2X)
def test_data_nested_30_levels_deep_is_accepted_and_stored(make_charger, no_internal_errors, version) -> None:
    charger: Charger = make_charger(version)
    data = json.loads("[" * 29 + "]" * 29)
    assert charger.result("DataTransfer", {"vendorId": "v", "data": data}) == {"status": "UnknownVendorId"}
    [event] = charger.store.list_events("CP1", "DataTransfer")
    assert event["payload"]["data"] == data


@pytest.mark.parametrize("version", VERSIONS)
def test_raw_surrogate_is_never_echoed_in_a_reply(make_charger, no_internal_errors, version) -> None:
    # A reply must be publishable (UTF-8): a raw lone surrogate in a frame is refused up front,
    # including where a handler would echo the value (2.1 VatNumberValidation echoes vatNumber).
    charger: Charger = make_charger(version)
    action, payload = (
        ("VatNumberValidation", {"vatNumber": "DE\udcff"})
        if version is V21
        else ("DataTransfer", {"vendorId": "v", "messageId": "\udcff"})
    )
    text = json.dumps([2, "u-1", action, payload], ensure_ascii=False)
    outcome = charger.send_text(text)
    assert outcome.reply is not None
    outcome.reply.encode("utf-8")
    assert check_call_error(outcome.reply, version, "u-1")[2] == FORMAT[version]
    assert charger.store.list_events("CP1") == []


def test_paired_surrogates_escaped_are_fine(make_charger) -> None:
    charger: Charger = make_charger(V16)
    text = '[2,"u-1","DataTransfer",{"vendorId":"v","data":"\\ud83d\\ude00"}]'
    outcome = charger.send_text(text)
    assert outcome.kind == OutcomeKind.REPLIED
    assert charger.store.list_events("CP1")[0]["payload"]["data"] == "😀"
