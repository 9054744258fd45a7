"""Bad input fuzz: at least 10,000 generated frames per version through ``process``.

Each hypothesis example is a batch of 100 frames against one fresh store: a few valid CALLs drawn
from the official schemas (and, in 2.1, valid SENDs), then mutations of them (wrong types, missing
and unknown fields, truncated text, bad ids and message types, unknown and CSMS-only actions,
lone surrogates raw and escaped, NaN, huge numbers, duplicate keys), random JSON, random text,
random bytes decoded with surrogateescape, and answers to a pending CSMS call (valid, invalid,
CALLERROR, broken).

Every frame is checked by an oracle written from the specification, not from ``ocpp_core``:

* nothing raises, nothing reaches the processor's last line of defence, nothing is logged at
  ERROR (an exception caught inside, or an invalid response of our own);
* a frame whose message type is not a result/error (nor a 2.1 SEND) and whose unique id can be
  read gets an answer with that id: a CALLRESULT whose payload validates against the response
  schema (``jsonschema``), or a CALLERROR ``[4, id, code, str, dict]`` with a code of the version;
* a well-formed CALL gets NotImplemented for an unknown action, NotSupported for one the charger
  may not send, a schema-violation code when the payload does not validate (oracle), and a
  CALLRESULT (or a 2.x SecurityError after a rejected boot) when it does, never InternalError;
* results, errors and SENDs are never answered, except a 2.1 CALLRESULTERROR to an invalid
  CALLRESULT; an answer to the pending CSMS call completes it;
* a redelivered CALL gets the very reply it got the first time.
"""

from __future__ import annotations

import json
import logging
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from ocpp_core import process
from ocpp_core.calls import start_call
from ocpp_core.config import ProcessorConfig, UnknownChargerPolicy
from ocpp_core.memory_store import InMemoryStore
from ocpp_core.processor import OutcomeKind
from ocpp_core.schemas import SchemaKind
from ocpp_core.versions import CHARGER_INITIATED, CSMS_INITIATED, SEND_ACTIONS, OcppVersion
from tests.fakes import FakeClock, SeqIds, mark_connected
from tests.strategies import json_values, payloads, schema_validator

from .support import CODES, V16, V21, VERSIONS, strict_loads

FRAMES_PER_EXAMPLE = 100
EXAMPLES = 100
MIN_FRAMES = 10_000
VALID_PER_EXAMPLE = 6
PENDING = "@PENDING@"  # stands for the unique id of the CSMS call pending when the frame is sent
LAST_RESORT = "internal failure before a reply could be built"

SCHEMA_CODES = {
    V16: {
        "FormationViolation",
        "OccurenceConstraintViolation",
        "PropertyConstraintViolation",
        "TypeConstraintViolation",
    },
    OcppVersion.V201: {
        "FormatViolation",
        "OccurrenceConstraintViolation",
        "PropertyConstraintViolation",
        "TypeConstraintViolation",
    },
}
SCHEMA_CODES[V21] = SCHEMA_CODES[OcppVersion.V201]
# The answer a charger may send that is never answered back: results and errors (and 2.1 SEND).
NEVER_ANSWERED = {V16: {3, 4}, OcppVersion.V201: {3, 4}, V21: {3, 4, 5, 6}}
RECOVERABLE_CALL = re.compile(r'\s*\[\s*2\s*,\s*"([A-Za-z0-9_.:\-]{1,36})"\s*,')

# --- generation ----------------------------------------------------------------------------------

ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12)  # lone surrogates too
ID_CHARS = string.ascii_letters + string.digits + "-_.:"
JUNK_VALUES = st.sampled_from(
    [
        None,
        True,
        False,
        0,
        -1,
        1.5,
        -0.0,
        2**31,
        2**64,
        10**30,
        1e308,
        "",
        "Bogus",
        "x" * 300,
        "2025-13-01T00:00:00Z",
        "2025-01-01T00:00:00Z",
        [],
        {},
        [1, "a"],
        {"vendorId": "v"},
    ]
)
ACTION_JUNK = st.sampled_from(["MakeCoffee", "", "heartbeat", "BOOTNOTIFICATION", "Heartbeat ", "../schemas/Heartbeat"])
BAD_IDS = st.one_of(
    st.sampled_from([None, 7, 7.5, True, [], {}, "", "x" * 36, "y" * 37, "z" * 255, "w" * 256, "\ud800", "a\udfff"]),
    st.text(max_size=40),
    ANY_TEXT,
)
BAD_TYPES = st.sampled_from([0, 1, 3, 4, 5, 6, 7, -2, 99, 10**20, "2", 2.0, True, None, [2], {"2": 2}])
NUMBER_INJECTIONS = st.sampled_from(
    ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "-0", "9" * 5000, "1" + "0" * 400]
)


@dataclass
class Batch:
    version: OcppVersion
    frames: list[str]
    policy: UnknownChargerPolicy
    registered: bool
    registration: str
    csms_action: str
    csms_request: Any


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside a payload (dict keys and list indexes)."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found.extend(_paths(item, (*prefix, key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(_paths(item, (*prefix, index)))
    return found


def _replace(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def _delete(value: Any, path: tuple) -> Any:
    if len(path) == 1:
        copy = dict(value) if isinstance(value, dict) else list(value)
        del copy[path[0]]
        return copy
    return _replace(value, path[:1], _delete(value[path[0]], path[1:]))


def _call(uid: Any, action: Any, payload: Any, *, raw: bool = False) -> str:
    return json.dumps([2, uid, action, payload], ensure_ascii=not raw)


def valid_calls(version: OcppVersion) -> st.SearchStrategy[tuple[int, str, Any]]:
    actions = sorted(CHARGER_INITIATED[version])
    choices = [
        st.tuples(st.just(6), st.just(action), payloads(version, action, SchemaKind.SEND, max_items=2))
        if action in SEND_ACTIONS[version]
        else st.tuples(st.just(2), st.just(action), payloads(version, action, max_items=2))
        for action in actions
    ]
    return st.one_of(choices)


@st.composite
def mutation(draw: st.DrawFn, version: OcppVersion, bases: list[tuple[int, str, str, Any]], csms_action: str) -> str:
    type_id, uid, action, payload = bases[draw(st.integers(0, len(bases) - 1))]
    kind = draw(st.integers(0, 21))
    if kind == 0:  # redelivery, byte for byte
        return json.dumps([type_id, uid, action, payload])
    if kind == 1:  # the same message, new id, other whitespace
        return json.dumps([type_id, uid + "r", action, payload], indent=draw(st.sampled_from([None, 1, "\t"])))
    if kind in (2, 3, 4):  # a value somewhere replaced by one of another type or out of range
        paths = _paths(payload)
        path = paths[draw(st.integers(0, len(paths) - 1))]
        junk = draw(json_values) if kind == 4 else draw(JUNK_VALUES)
        return json.dumps([type_id, uid + "m", action, _replace(payload, path, junk)])
    if kind == 5:  # a field removed (required or not)
        paths = [p for p in _paths(payload) if p]
        if not paths:
            return json.dumps([type_id, uid + "d", action, {"unknown": 1}])
        path = paths[draw(st.integers(0, len(paths) - 1))]
        return json.dumps([type_id, uid + "d", action, _delete(payload, path)])
    if kind == 6:  # an unknown field added to some object
        objects = [p for p in _paths(payload) if isinstance(_get(payload, p), dict)]
        path = objects[draw(st.integers(0, len(objects) - 1))]
        extended = {
            **_get(payload, path),
            draw(st.sampled_from(["extra", "vendorId", "", "customData"])): draw(JUNK_VALUES),
        }
        return json.dumps([type_id, uid + "x", action, _replace(payload, path, extended)])
    if kind == 7:  # payload of the wrong JSON type
        return json.dumps([type_id, uid + "t", action, draw(st.sampled_from([[], [payload], 0, None, "{}", True]))])
    if kind == 8:  # truncated text
        text = json.dumps([type_id, uid, action, payload])
        return text[: draw(st.integers(0, max(0, len(text) - 1)))]
    if kind == 9:  # message type id
        return json.dumps([draw(BAD_TYPES), uid + "y", action, payload])
    if kind == 10:  # unique id
        return json.dumps([type_id, draw(BAD_IDS), action, payload], ensure_ascii=draw(st.booleans()))
    if kind == 11:  # action: unknown, CSMS-initiated, SEND-only, not a string
        other = draw(
            st.one_of(
                ACTION_JUNK,
                st.sampled_from(sorted(CSMS_INITIATED[version] | {"NotifyPeriodicEventStream", "Authorize"})),
                JUNK_VALUES,
                ANY_TEXT,
            )
        )
        return json.dumps([type_id, uid + "a", other, payload], ensure_ascii=draw(st.booleans()))
    if kind == 12:  # too few or too many elements
        frame = [type_id, uid + "n", action, payload]
        size = draw(st.integers(0, 6))
        return json.dumps(frame[:size] if size <= 4 else frame + [{}] * (size - 4))
    if kind == 13:  # any JSON at all
        return json.dumps(draw(json_values))
    if kind == 14:  # random bytes, as a broken UTF-8 decoder would hand them over
        return draw(st.binary(max_size=40)).decode("utf-8", "surrogateescape")
    if kind == 15:  # random text
        return draw(ANY_TEXT)
    if kind == 16:  # a string replaced by one with a lone surrogate, escaped or raw
        strings = [p for p in _paths(payload) if isinstance(_get(payload, p), str)] or [()]
        path = strings[draw(st.integers(0, len(strings) - 1))]
        bad = draw(st.sampled_from(["\ud800", "x\udcff", "\udfff\ud800", "ok\ud83d"]))
        return _call(uid + "s", action, _replace(payload, path, bad), raw=draw(st.booleans()))
    if kind == 17:  # a number written as NaN, Infinity, beyond float range or the parser's limit
        text = json.dumps([type_id, uid + "i", action, payload])
        numbers = [m for m in re.finditer(r"(?<=[:\[,])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", text)]
        injection = draw(NUMBER_INJECTIONS)
        if not numbers:
            return text[:-2] + ',"n":' + injection + "}]" if text.endswith("}]") else text
        match = numbers[draw(st.integers(0, len(numbers) - 1))]
        return text[: match.start()] + injection + text[match.end() :]
    if kind == 18:  # duplicate keys: the last occurrence counts
        if not isinstance(payload, dict) or not payload:
            return json.dumps([type_id, uid + "k", action, payload])
        key = draw(st.sampled_from(sorted(payload)))
        body = json.dumps(payload)
        junk = json.dumps(draw(JUNK_VALUES))
        if draw(st.booleans()):
            body = "{" + json.dumps(key) + ":" + junk + "," + body[1:]  # shadowed by the real value
        else:
            body = body[:-1] + "," + json.dumps(key) + ":" + junk + "}"  # shadows it
        return "[" + str(type_id) + "," + json.dumps(uid + "k") + "," + json.dumps(action) + "," + body + "]"
    if kind == 19:  # results and errors for calls that do not exist
        return json.dumps(
            draw(
                st.sampled_from(
                    [
                        [3, uid, payload],
                        [4, uid, "GenericError", "x", {}],
                        [5, uid, "FormatViolation", "x", {}],
                        [3, uid],
                        [4, uid, 1, 2, 3],
                        [6, uid, action, payload],
                    ]
                )
            )
        )
    # 20, 21: the charger answers the pending CSMS call
    response = draw(payloads(version, csms_action, SchemaKind.RESPONSE, max_items=2))
    answer = draw(
        st.sampled_from(
            [
                [3, PENDING, response],
                [3, PENDING, response],
                [3, PENDING, {"status": "Bogus"}],
                [3, PENDING, []],
                [4, PENDING, "NotSupported", "no", {"why": 1}],
                [4, PENDING, "GenericError", "no"],
                [5, PENDING, "FormatViolation", "bad result", {}],
                [3, PENDING],
            ]
        )
    )
    text = json.dumps(answer)
    if draw(st.integers(0, 9)) == 0:
        text = text[: draw(st.integers(0, len(text)))]
    return text


def _get(value: Any, path: tuple) -> Any:
    for step in path:
        value = value[step]
    return value


@st.composite
def batches(draw: st.DrawFn, version: OcppVersion) -> Batch:
    valid = draw(st.lists(valid_calls(version), min_size=VALID_PER_EXAMPLE - 1, max_size=VALID_PER_EXAMPLE - 1))
    # One more that every batch has: a 2.1 SEND, or a boot (registration decides what follows).
    if version is V21:
        valid.append(
            (6, "NotifyPeriodicEventStream", draw(payloads(version, "NotifyPeriodicEventStream", SchemaKind.SEND)))
        )
    else:
        valid.insert(0, (2, "BootNotification", draw(payloads(version, "BootNotification", max_items=1))))
    bases = []
    for index, (type_id, action, payload) in enumerate(valid):
        suffix = draw(st.text(alphabet=ID_CHARS, max_size=8))
        bases.append((type_id, f"{index}{suffix}", action, payload))
    csms_action = draw(st.sampled_from(sorted(CSMS_INITIATED[version])))
    csms_request = draw(payloads(version, csms_action, max_items=1))
    frames = [json.dumps([t, u, a, p], ensure_ascii=draw(st.booleans())) for t, u, a, p in bases]
    while len(frames) < FRAMES_PER_EXAMPLE:
        frames.append(draw(mutation(version, bases, csms_action)))
    return Batch(
        version=version,
        frames=frames,
        policy=draw(st.sampled_from(list(UnknownChargerPolicy))),
        registered=draw(st.booleans()),
        registration=draw(st.sampled_from(["Accepted", "Accepted", "Pending", "Rejected"])),
        csms_action=csms_action,
        csms_request=csms_request,
    )


# --- the oracle ------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _readable(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 255:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, list):
        return any(_has_lone_surrogate(v) for v in value)
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    return False


def _payload_is_valid(version: OcppVersion, action: str, payload: Any) -> bool:
    try:
        schema_validator(version, action, SchemaKind.REQUEST)(payload)
    except jsonschema.ValidationError:
        return False
    return _depth(payload) <= 30  # the documented bound on nesting (README, "What the processor does")


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@dataclass
class Run:
    """What one batch saw: replies per unique id, and counts for the coverage checks."""

    version: OcppVersion
    replied: dict[str, tuple[str, str]] = field(default_factory=dict)  # uid -> (action, CALLRESULT text)
    kinds: Counter = field(default_factory=Counter)


def check(run: Run, text: str, outcome: Any, store: InMemoryStore, pending: str | None) -> None:
    version = run.version
    run.kinds[outcome.kind] += 1
    assert outcome.detail != LAST_RESORT, text[:300]
    assert outcome.kind != OutcomeKind.IN_PROGRESS, text[:300]  # a claim leaked (never released)
    reply = outcome.reply
    if reply is not None:
        assert isinstance(reply, str)
        reply.encode("utf-8")  # publishable
        answer = strict_loads(reply)
        assert isinstance(answer, list) and answer[0] in (3, 4, 5), reply
    try:
        message = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        match = RECOVERABLE_CALL.match(text)
        if match is None:
            assert reply is None, (text[:300], reply)
        else:
            assert reply is not None, text[:300]
            _check_error(version, answer, match.group(1))
            assert answer[2] != "InternalError"
        return
    if not isinstance(message, list) or len(message) < 2 or not _readable(message[1]):
        assert reply is None, (text[:300], reply)
        return
    type_id, uid = message[0], message[1]
    is_int = isinstance(type_id, int) and not isinstance(type_id, bool)
    if is_int and type_id in NEVER_ANSWERED[version]:
        _check_answer_to_csms(run, message, reply, store, pending)
        return

    # Everything else with a readable id is answered, with that id.
    assert reply is not None, text[:300]
    assert answer[1] == uid, (text[:300], reply)
    well_formed = (
        is_int and type_id == 2 and len(message) == 4 and len(uid) <= 36 and isinstance(message[2], str)
    ) and not _has_lone_surrogate(message)
    if not well_formed:
        _check_error(version, answer, uid)
        assert answer[2] != "InternalError" and answer[2] not in ("NotImplemented", "NotSupported"), reply
        return

    action, payload = message[2], message[3]
    if outcome.kind == OutcomeKind.DUPLICATE:
        if uid in run.replied:
            first_action, first_reply = run.replied[uid]
            assert reply == first_reply
            schema_validator(version, first_action, SchemaKind.RESPONSE)(answer[2])
        else:  # the first delivery's stored answer was a handler's CALLERROR
            _check_error(version, answer, uid)
        return
    if action not in CHARGER_INITIATED[version] and action not in CSMS_INITIATED[version]:
        _check_error(version, answer, uid)
        assert answer[2] == "NotImplemented", reply
    elif action not in CHARGER_INITIATED[version] or action in SEND_ACTIONS[version]:
        _check_error(version, answer, uid)
        assert answer[2] == "NotSupported", reply
    elif not _payload_is_valid(version, action, payload):
        _check_error(version, answer, uid)
        assert answer[2] in SCHEMA_CODES[version], (text[:300], reply)
    elif answer[0] == 3:
        assert len(answer) == 3, reply
        schema_validator(version, action, SchemaKind.RESPONSE)(answer[2])
        run.replied[uid] = (action, reply)
    else:
        _check_error(version, answer, uid)
        # A valid request is answered, unless a 2.x station rejected at boot sends something else.
        assert answer[2] == "SecurityError" and version is not V16 and action != "BootNotification", (
            text[:300],
            reply,
        )


def _check_error(version: OcppVersion, answer: Any, uid: str, message_type: int = 4) -> None:
    assert isinstance(answer, list) and len(answer) == 5, answer
    assert answer[0] == message_type and type(answer[0]) is int, answer
    assert answer[1] == uid, answer
    assert answer[2] in CODES[version], answer
    assert isinstance(answer[3], str) and len(answer[3]) <= 255, answer
    assert isinstance(answer[4], dict), answer


def _check_answer_to_csms(
    run: Run, message: list, reply: str | None, store: InMemoryStore, pending: str | None
) -> None:
    version, type_id, uid = run.version, message[0], message[1]
    if reply is not None:
        # Only a 2.1 CALLRESULT that does not validate is answered (CALLRESULTERROR).
        assert version is V21 and type_id == 3 and uid == pending, (message, reply)
        _check_error(version, strict_loads(reply), uid, message_type=5)
    if pending is None or uid != pending:
        return
    record = store.get_call("CP1", uid)
    if type_id == 3 and len(message) == 3:
        assert record["status"] in ("accepted", "error"), record
        if record["status"] == "accepted":
            assert record["response"] == message[2]
    elif type_id == 4 and len(message) in (4, 5) and isinstance(message[2], str) and isinstance(message[3], str):
        assert record["status"] == "error" and record["error"]["errorCode"] == message[2], record


# --- the run ---------------------------------------------------------------------------------------


class _ErrorCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage() + (f" ({record.exc_info[1]!r})" if record.exc_info else ""))


def run_batch(batch: Batch, errors: _ErrorCounter, totals: Counter) -> None:
    version = batch.version
    store, clock, ids = InMemoryStore(), FakeClock(), SeqIds()
    mark_connected(
        store,
        "CP1",
        "conn-1",
        clock.now_ms(),
        protocol=version.value,
        registered=batch.registered,
        registrationStatus=batch.registration,
    )
    config = ProcessorConfig(unknown_chargers=batch.policy)
    run = Run(version)
    pending: str | None = None
    for text in batch.frames:
        if PENDING in text:
            record = store.get_call("CP1", pending) if pending else None
            if record is None or record["status"] != "pending":
                pending = start_call(
                    store, ids, clock.now_ms(), "CP1", batch.csms_action, batch.csms_request, timeout_s=30
                ).record["uniqueId"]
            text = text.replace(PENDING, pending)
        envelope = {
            "chargePointId": "CP1",
            "protocol": version.value,
            "connectionId": "conn-1",
            "receivedAt": clock.now_ms(),
            "frame": text,
        }
        seen = len(errors.messages)
        outcome = process(envelope, store=store, clock=clock, ids=ids, config=config)
        assert errors.messages[seen:] == [], text[:300]
        check(run, text, outcome, store, pending)
        assert outcome.run_after_hooks() == []
        clock.advance(0.001)
    totals.update(run.kinds)
    totals["frames"] += len(batch.frames)


@pytest.mark.parametrize("version", VERSIONS)
def test_fuzz_frames(version: OcppVersion) -> None:
    totals: Counter = Counter()
    errors = _ErrorCounter()
    logger = logging.getLogger("ocpp_core")
    previous_level = logger.level
    logger.addHandler(errors)
    logger.setLevel(logging.ERROR)  # warnings about dropped frames would only slow the run down
    try:

        @settings(
            max_examples=EXAMPLES,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            # No shrinking: a 100-frame batch takes minutes to shrink, and the failing check
            # already names the one frame it is about.
            phases=[Phase.explicit, Phase.generate],
        )
        @given(batches(version))
        def fuzz(batch: Batch) -> None:
            run_batch(batch, errors, totals)

        fuzz()
    finally:
        logger.removeHandler(errors)
        logger.setLevel(previous_level)

    assert totals["frames"] >= MIN_FRAMES, totals
    # The generated frames really reach every path, not only the framing errors. The counts move
    # with the route tables' contents (which actions are sampled), and a full-suite run has been
    # seen at 95 unmatched results of 10,000 frames: 50 still says the path is reached often.
    for kind in (
        OutcomeKind.REPLIED,
        OutcomeKind.CALL_ERROR,
        OutcomeKind.DROPPED,
        OutcomeKind.RESULT,
        OutcomeKind.RESULT_UNMATCHED,
    ):
        assert totals[kind] >= 50, (kind, totals)
    if version is V21:
        assert totals[OutcomeKind.SEND] > 0, totals
