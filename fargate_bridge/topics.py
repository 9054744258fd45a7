"""Topics, client ids and payloads the bridge publishes (DESIGN §2 and §8, a contract). Pure.

Topic names come from :mod:`ocpp_core.topics` (one definition for the bridge, the Lambdas, the
rules and the IoT policy); :class:`Naming` adds what only the bridge decides: the MQTT client id
(stage prefix + charger id) and, with Basic Ingest, the topic inbound frames are published to.
Every topic and client id the bridge uses is built by a :class:`Naming` made from the settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from ocpp_core.topics import DEFAULT_TOPICS, Topics, basic_ingest_topic

from .settings import Settings

EventKind = Literal["connected", "disconnected"]


@dataclass(frozen=True, slots=True)
class Naming:
    """Where one stage's bridge publishes and subscribes, and under which MQTT client id."""

    topics: Topics = DEFAULT_TOPICS
    client_id_prefix: str = ""
    #: IoT rule receiving inbound frames through Basic Ingest, or None for the plain topic.
    basic_ingest_rule: str | None = None

    def client_id(self, charge_point_id: str) -> str:
        """Prefix + charger id: a dev charger never takes over the prod session of the same id."""
        return self.client_id_prefix + charge_point_id

    def inbound(self, charge_point_id: str) -> str:
        """Where the charger's frames go: the plain ``<root>/<cp>/in``, or its Basic Ingest form.

        Basic Ingest hands the message straight to that rule, without the messaging charge and
        without the broker (nobody can subscribe to it); the same rule SQL matches it, the prefix
        ``$aws/rules/<rule>/`` added in front of the usual topic
        (https://docs.aws.amazon.com/iot/latest/developerguide/iot-basic-ingest.html).
        """
        topic = self.topics.inbound(charge_point_id)
        return basic_ingest_topic(self.basic_ingest_rule, topic) if self.basic_ingest_rule else topic

    def outbound(self, charge_point_id: str) -> str:
        return self.topics.outbound(charge_point_id)

    def events(self, charge_point_id: str) -> str:
        """Presence events stay on the plain topic (other consumers may subscribe to them)."""
        return self.topics.events(charge_point_id)


def inbound_topic(charge_point_id: str) -> str:
    """Frames from the charger on the default root (``ocpp/{cp}/in``)."""
    return DEFAULT_TOPICS.inbound(charge_point_id)


def outbound_topic(charge_point_id: str) -> str:
    """OCPP-J frames for the charger on the default root (``ocpp/{cp}/out``)."""
    return DEFAULT_TOPICS.outbound(charge_point_id)


def events_topic(charge_point_id: str) -> str:
    """Presence events on the default root (``ocpp/{cp}/events``)."""
    return DEFAULT_TOPICS.events(charge_point_id)


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


def naming(settings: Settings) -> Naming:
    """The one place a stage's topics and client ids are derived from the settings."""
    return Naming(Topics(settings.topic_root), settings.client_id_prefix, settings.basic_ingest_rule)
