"""Test helpers for ``ocpp_core``: a fixed clock, sequential ids, a charger talking to ``process``.

The expectations here are written from the OCPP specifications, not read from ``ocpp_core``:
the error codes each version defines, and the response schemas (through the independent
``jsonschema`` oracle of ``tests.strategies``).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from ocpp_core import process
from ocpp_core.config import ProcessorConfig
from ocpp_core.extensions import NO_EXTENSIONS, Extensions
from ocpp_core.handlers.transactions import transaction_view
from ocpp_core.memory_store import InMemoryStore
from ocpp_core.processor import Outcome
from ocpp_core.schemas import SchemaKind
from ocpp_core.versions import OcppVersion
from tests.fakes import FakeClock, SeqIds
from tests.strategies import schema_validator

START_ISO = "2025-06-15T15:06:40.000Z"

V16, V201, V21 = OcppVersion.V16, OcppVersion.V201, OcppVersion.V21
VERSIONS = (V16, V201, V21)
V2X = (V201, V21)

#: OCPP-J 1.6 §4.2.3 (the "Occurence" typo is the specification's).
CODES_V16 = frozenset(
    {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    }
)
#: OCPP 2.0.1 part 4 §4.3 and OCPP 2.1 part 4 §4.3.
CODES_V2 = frozenset(
    {
        "FormatViolation",
        "GenericError",
        "InternalError",
        "MessageTypeNotSupported",
        "NotImplemented",
        "NotSupported",
        "OccurrenceConstraintViolation",
        "PropertyConstraintViolation",
        "ProtocolError",
        "RpcFrameworkError",
        "SecurityError",
        "TypeConstraintViolation",
    }
)
CODES = {V16: CODES_V16, V201: CODES_V2, V21: CODES_V2}


def strict_loads(text: str) -> Any:
    """JSON as RFC 8259 has it: NaN / Infinity are not JSON."""

    def reject(name: str) -> Any:
        raise ValueError(f"{name} in a frame the CSMS sent")

    return json.loads(text, parse_constant=reject)


def check_call_error(reply: str, version: OcppVersion, unique_id: str, message_type: int = 4) -> list[Any]:
    """A CALLERROR (or 2.1 CALLRESULTERROR) as the version defines it: [4, id, code, description, details]."""
    reply.encode("utf-8")  # publishable
    frame = strict_loads(reply)
    assert isinstance(frame, list) and len(frame) == 5, reply
    assert frame[0] == message_type and type(frame[0]) is int, reply
    assert frame[1] == unique_id, reply
    assert frame[2] in CODES[version], f"{frame[2]!r} is not an error code of {version.value}"
    assert isinstance(frame[3], str), reply
    assert isinstance(frame[4], dict), reply
    return frame


def check_call_result(reply: str, version: OcppVersion, unique_id: str, action: str) -> dict[str, Any]:
    """A CALLRESULT whose payload validates against ``action``'s response schema."""
    reply.encode("utf-8")
    frame = strict_loads(reply)
    assert isinstance(frame, list) and len(frame) == 3, reply
    assert frame[0] == 3 and type(frame[0]) is int, reply
    assert frame[1] == unique_id, reply
    schema_validator(version, action, SchemaKind.RESPONSE)(frame[2])
    return frame[2]


@dataclass
class Charger:
    """One charging station talking to the processor, through envelopes as the bridge builds them."""

    version: OcppVersion
    store: InMemoryStore
    clock: FakeClock
    ids: SeqIds
    cp: str = "CP1"
    config: ProcessorConfig = field(default_factory=ProcessorConfig)
    extensions: Extensions = NO_EXTENSIONS
    _uids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def envelope(self, frame: Any, **extra: Any) -> dict[str, Any]:
        return {
            "chargePointId": self.cp,
            "protocol": self.version.value,
            "connectionId": "conn-1",
            "receivedAt": self.clock.now_ms(),
            "frame": frame,
            **extra,
        }

    def send_text(self, text: Any, **extra: Any) -> Outcome:
        return process(
            self.envelope(text, **extra),
            store=self.store,
            clock=self.clock,
            ids=self.ids,
            config=self.config,
            extensions=self.extensions,
        )

    def transaction(self, cp: str, transaction_id: str) -> dict[str, Any] | None:
        """The transaction as read (``transaction_view``: energy derived from the readings)."""
        record = self.store.get_transaction(cp, transaction_id)
        return None if record is None else transaction_view(record)

    def next_uid(self) -> str:
        return f"m-{next(self._uids)}"

    def call(self, action: str, payload: Any, uid: str | None = None) -> Outcome:
        return self.send_text(json.dumps([2, uid or self.next_uid(), action, payload]))

    def result(self, action: str, payload: Any, uid: str | None = None) -> dict[str, Any]:
        """Send a CALL; assert it gets a valid CALLRESULT; its payload."""
        uid = uid or self.next_uid()
        outcome = self.call(action, payload, uid)
        assert outcome.reply is not None, outcome
        assert outcome.kind in ("replied", "duplicate"), outcome
        return check_call_result(outcome.reply, self.version, uid, action)

    def error(self, action: str, payload: Any, uid: str | None = None) -> str:
        """Send a CALL; assert it gets a valid CALLERROR; its code."""
        uid = uid or self.next_uid()
        outcome = self.call(action, payload, uid)
        assert outcome.reply is not None, outcome
        frame = check_call_error(outcome.reply, self.version, uid)
        assert outcome.error_code == frame[2]
        return frame[2]

    def error_for_text(self, text: str, unique_id: str) -> str:
        outcome = self.send_text(text)
        assert outcome.reply is not None, outcome
        return check_call_error(outcome.reply, self.version, unique_id)[2]


# --- payloads ---------------------------------------------------------------------------------------


def boot_payload(version: OcppVersion) -> dict[str, Any]:
    if version is V16:
        return {"chargePointVendor": "Acme", "chargePointModel": "Fast-1", "firmwareVersion": "1.2.3"}
    return {"reason": "PowerUp", "chargingStation": {"vendorName": "Acme", "model": "Fast-1"}}


def energy_sample_v16(wh: int | str, **extra: Any) -> dict[str, Any]:
    return {
        "timestamp": "2025-06-15T15:10:00Z",
        "sampledValue": [{"value": str(wh), "measurand": "Energy.Active.Import.Register", "unit": "Wh", **extra}],
    }


def energy_sample_v2(value: float, unit: str = "Wh", multiplier: int = 0) -> dict[str, Any]:
    return {
        "timestamp": "2025-06-15T15:10:00Z",
        "sampledValue": [
            {
                "value": value,
                "measurand": "Energy.Active.Import.Register",
                "unitOfMeasure": {"unit": unit, "multiplier": multiplier},
            }
        ],
    }


def transaction_event(
    event: str, tx: str, seq: int, *, meter: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": event,
        "timestamp": "2025-06-15T15:10:00Z",
        "triggerReason": {"Started": "Authorized", "Updated": "MeterValuePeriodic", "Ended": "StopAuthorized"}[event],
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx},
        "evse": {"id": 1, "connectorId": 1},
    }
    if meter is not None:
        payload["meterValue"] = meter
    payload.update(extra)
    return payload
