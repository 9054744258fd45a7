"""Topics and payloads the bridge publishes (DESIGN §2, a contract). Pure functions."""

from __future__ import annotations

import json
from typing import Any, Literal

EventKind = Literal["connected", "disconnected"]


def inbound_topic(charge_point_id: str) -> str:
    """Frames from the charger, wrapped in an envelope, for the processor."""
    return f"ocpp/{charge_point_id}/in"


def outbound_topic(charge_point_id: str) -> str:
    """OCPP-J frames for the charger, forwarded verbatim."""
    return f"ocpp/{charge_point_id}/out"


def events_topic(charge_point_id: str) -> str:
    """``connected`` / ``disconnected`` events (the latter is also the MQTT will)."""
    return f"ocpp/{charge_point_id}/events"


def envelope(
    charge_point_id: str, protocol: str, connection_id: str, received_at_ms: int, frame: str
) -> dict[str, Any]:
    """The ``ocpp/{cp}/in`` payload as a dict (the reference for :class:`EnvelopeEncoder`)."""
    return {
        "chargePointId": charge_point_id,
        "protocol": protocol,
        "connectionId": connection_id,
        "receivedAt": received_at_ms,
        "frame": frame,
    }


class EnvelopeEncoder:
    """Encodes the envelopes of one connection.

    Everything but ``receivedAt`` and ``frame`` is fixed for the life of a connection, so that
    part is serialized once; per frame only the frame text is JSON-escaped. The output is the
    same JSON object as :func:`envelope` (a test checks it).
    """

    __slots__ = ("_prefix",)

    def __init__(self, charge_point_id: str, protocol: str, connection_id: str):
        head = json.dumps(
            {"chargePointId": charge_point_id, "protocol": protocol, "connectionId": connection_id},
            separators=(",", ":"),
        )
        self._prefix = head[:-1] + ',"receivedAt":'

    def encode(self, received_at_ms: int, frame: str) -> bytes:
        # ensure_ascii=False keeps the frame's UTF-8 as is (a text frame is valid UTF-8, so it
        # holds no lone surrogates that could not be encoded).
        text = json.dumps(frame, ensure_ascii=False)
        return f'{self._prefix}{received_at_ms},"frame":{text}}}'.encode()


def event(
    kind: EventKind, charge_point_id: str, protocol: str, connection_id: str, at_ms: int, reason: str | None
) -> dict[str, Any]:
    return {
        "event": kind,
        "chargePointId": charge_point_id,
        "protocol": protocol,
        "connectionId": connection_id,
        "at": at_ms,
        "reason": reason,
    }


def encode_event(
    kind: EventKind, charge_point_id: str, protocol: str, connection_id: str, at_ms: int, reason: str | None
) -> bytes:
    return json.dumps(
        event(kind, charge_point_id, protocol, connection_id, at_ms, reason), separators=(",", ":")
    ).encode()
