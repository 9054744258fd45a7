"""OCPP-J RPC framing (OCPP-J 1.6 §4, OCPP 2.0.1 part 4 §4, OCPP 2.1 part 4 §4).

``parse_frame`` turns the text of one WebSocket frame into a frame object, or raises
:class:`FrameError`, which says whether the unique id could be read (then the frame gets a
CALLERROR) or not (then it is logged and dropped). ``serialize`` does the reverse. Pure: no
I/O, no clock.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import (
    ErrorKind,
    OcppError,
    error_code,
    error_for_kind,
)
from .versions import OcppVersion


class MessageType(enum.IntEnum):
    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4
    CALLRESULTERROR = 5  # OCPP 2.1 only
    SEND = 6  # OCPP 2.1 only


#: The message id is "maximum of 36 characters" (OCPP-J 1.6 §4.1.3, 2.0.1 part 4 §4.1.3).
MAX_UNIQUE_ID = 36
#: Longer ids are still answered (with an error) up to this length, then treated as unreadable.
_MAX_READABLE_ID = 255
_MAX_DESCRIPTION = 255


@dataclass(frozen=True, slots=True)
class Call:
    unique_id: str
    action: str
    payload: Any
    message_type: MessageType = field(default=MessageType.CALL, init=False)


@dataclass(frozen=True, slots=True)
class Send:
    unique_id: str
    action: str
    payload: Any
    message_type: MessageType = field(default=MessageType.SEND, init=False)


@dataclass(frozen=True, slots=True)
class CallResult:
    unique_id: str
    payload: Any
    message_type: MessageType = field(default=MessageType.CALLRESULT, init=False)


@dataclass(frozen=True, slots=True)
class CallError:
    unique_id: str
    error_code: str
    error_description: str
    error_details: Any
    message_type: MessageType = MessageType.CALLERROR


Frame = Call | Send | CallResult | CallError


class FrameError(Exception):
    """A frame that cannot be processed.

    ``unique_id`` is None when the id could not be read: the frame is logged and dropped.
    ``answerable`` says whether a CALLERROR goes back: never for a CALLRESULT, CALLERROR or
    SEND (answering those could loop, and a SEND has no answer by definition).
    """

    def __init__(self, error: OcppError, unique_id: str | None, answerable: bool):
        self.error = error
        self.unique_id = unique_id
        self.answerable = answerable and unique_id is not None
        super().__init__(error.description)


# Recovers the id of a CALL whose JSON is broken further on, so the charger still gets an
# answer instead of waiting for its timeout.
_CALL_PREFIX = re.compile(r'\s*\[\s*2\s*,\s*"([A-Za-z0-9_.:\-]{1,36})"\s*,')
# A lone surrogate reaches a string escaped ("\\ud800") or raw (the frame text itself holds one,
# e.g. an envelope that was not valid UTF-8): either would make a reply echoing it unpublishable.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}|[\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _has_surrogates(value: Any, depth: int = 0) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if depth > 200:
        return False
    if isinstance(value, list):
        return any(_has_surrogates(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_has_surrogates(k, depth + 1) or _has_surrogates(v, depth + 1) for k, v in value.items())
    return False


def _readable_id(value: Any) -> str | None:
    if not isinstance(value, str) or len(value) > _MAX_READABLE_ID:
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return None
    return value


_NEVER_ANSWERED = {
    OcppVersion.V16: frozenset({MessageType.CALLRESULT, MessageType.CALLERROR}),
    OcppVersion.V201: frozenset({MessageType.CALLRESULT, MessageType.CALLERROR}),
    OcppVersion.V21: frozenset(
        {
            MessageType.CALLRESULT,
            MessageType.CALLERROR,
            MessageType.CALLRESULTERROR,
            MessageType.SEND,
        }
    ),
}


def _fail(
    kind: ErrorKind,
    description: str,
    unique_id: str | None,
    type_id: int | None,
    version: OcppVersion,
) -> FrameError:
    # Results, errors and SENDs are never answered; a CALL or an unknown type id is.
    answerable = type_id not in _NEVER_ANSWERED[version]
    return FrameError(error_for_kind(kind, description), unique_id, answerable)


def parse_frame(text: str, version: OcppVersion) -> Frame:
    """Parse one OCPP-J frame. Never raises anything but :class:`FrameError`."""
    if not isinstance(text, str):
        raise _fail(ErrorKind.FORMAT, "Frame is not text", None, None, version)
    try:
        message = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        match = _CALL_PREFIX.match(text)
        reason = "Frame is nested too deeply" if isinstance(exc, RecursionError) else "Frame is not valid JSON"
        raise _fail(
            ErrorKind.RPC_FRAMEWORK,
            reason,
            match.group(1) if match else None,
            2 if match else None,
            version,
        ) from None
    if not isinstance(message, list) or len(message) < 2:
        raise _fail(ErrorKind.RPC_FRAMEWORK, "Frame is not an OCPP-J array", None, None, version)
    type_id = message[0]
    unique_id = _readable_id(message[1])
    if isinstance(type_id, bool) or not isinstance(type_id, int):
        raise _fail(ErrorKind.RPC_FRAMEWORK, "Message type id is not an integer", unique_id, None, version)
    if unique_id is None:
        raise _fail(ErrorKind.RPC_FRAMEWORK, "Unique id is not a readable string", None, type_id, version)
    if len(unique_id) > MAX_UNIQUE_ID:
        raise _fail(
            ErrorKind.RPC_FRAMEWORK,
            f"Unique id is longer than {MAX_UNIQUE_ID} characters",
            unique_id,
            type_id,
            version,
        )
    if _SURROGATE.search(text) is not None and _has_surrogates(message):
        raise _fail(
            ErrorKind.FORMAT,
            "Frame contains an unpaired UTF-16 surrogate",
            unique_id,
            type_id,
            version,
        )

    if type_id == MessageType.CALL or (type_id == MessageType.SEND and version is OcppVersion.V21):
        if len(message) < 4:
            raise _fail(
                ErrorKind.PROTOCOL,
                "CALL is incomplete: expected [2, id, action, payload]",
                unique_id,
                type_id,
                version,
            )
        if len(message) > 4:
            raise _fail(
                ErrorKind.RPC_FRAMEWORK,
                "CALL has more than 4 elements",
                unique_id,
                type_id,
                version,
            )
        action = message[2]
        if not isinstance(action, str):
            raise _fail(ErrorKind.RPC_FRAMEWORK, "Action is not a string", unique_id, type_id, version)
        if type_id == MessageType.SEND:
            return Send(unique_id, action, message[3])
        return Call(unique_id, action, message[3])
    if type_id == MessageType.CALLRESULT:
        if len(message) != 3:
            raise _fail(
                ErrorKind.RPC_FRAMEWORK,
                "CALLRESULT must have 3 elements",
                unique_id,
                type_id,
                version,
            )
        return CallResult(unique_id, message[2])
    if type_id == MessageType.CALLERROR or (type_id == MessageType.CALLRESULTERROR and version is OcppVersion.V21):
        # Lenient on what we receive: details may be missing.
        if len(message) not in (4, 5) or not isinstance(message[2], str) or not isinstance(message[3], str):
            raise _fail(
                ErrorKind.RPC_FRAMEWORK,
                "CALLERROR must be [4, id, code, description, details]",
                unique_id,
                type_id,
                version,
            )
        details = message[4] if len(message) == 5 else {}
        return CallError(unique_id, message[2], message[3], details, MessageType(type_id))
    raise _fail(
        ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED,
        f"Message type {type_id} is not supported in {version.value}",
        unique_id,
        type_id,
        version,
    )


# Built once: json.loads/dumps with arguments construct a new codec object on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def _dumps(value: Any) -> str:
    return _ENCODER.encode(value)


def serialize_call(unique_id: str, action: str, payload: Any) -> str:
    return _dumps([MessageType.CALL.value, unique_id, action, payload])


def serialize_result(unique_id: str, payload: Any) -> str:
    return _dumps([MessageType.CALLRESULT.value, unique_id, payload])


def serialize_error(
    unique_id: str,
    error: OcppError,
    version: OcppVersion,
    message_type: MessageType = MessageType.CALLERROR,
) -> str:
    description = error.description
    if len(description) > _MAX_DESCRIPTION:
        description = description[: _MAX_DESCRIPTION - 3] + "..."
    details = error.details if isinstance(error.details, dict) else {}
    return _dumps([message_type.value, unique_id, error_code(error.kind, version), description, details])


def serialize(frame: Frame) -> str:
    if isinstance(frame, (Call, Send)):
        return _dumps([frame.message_type.value, frame.unique_id, frame.action, frame.payload])
    if isinstance(frame, CallResult):
        return serialize_result(frame.unique_id, frame.payload)
    return _dumps(
        [
            frame.message_type.value,
            frame.unique_id,
            frame.error_code,
            frame.error_description,
            frame.error_details,
        ]
    )
