"""Publishing to the per-charger MQTT topics: a port and its AWS adapter.

On AWS the processor and the operator API publish with the IoT data plane (``iot-data``
Publish, QoS 1). Locally the stack plugs in an MQTT adapter that publishes to mosquitto
(``local_stack.mqtt``). Tests use :class:`RecordingPublisher`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ocpp_core.topics import DEFAULT_TOPICS, Topics


def outbound_topic(charge_point_id: str, topics: Topics = DEFAULT_TOPICS) -> str:
    """Where the bridge listens for the charger's frames: ``<root>/<cp>/out`` of the stage.

    Pass the stage's ``Settings.topics``: the default root ``ocpp`` is the local stack's only.
    """
    return topics.outbound(charge_point_id)


class Publisher(Protocol):
    def publish(self, topic: str, payload: str, *, expiry_s: int | None = None) -> None:
        """Publish at QoS 1; ``expiry_s`` is the MQTT5 message expiry. Raises on failure."""
        ...


class IotDataPublisher:
    """AWS IoT Core data plane (``iot-data`` Publish)."""

    def __init__(self, client: Any):
        self._client = client

    def publish(self, topic: str, payload: str, *, expiry_s: int | None = None) -> None:
        kwargs: dict[str, Any] = {"topic": topic, "qos": 1, "payload": payload.encode("utf-8")}
        if expiry_s is not None:
            # MQTT5 message expiry: a command nobody picked up in time is never delivered late.
            kwargs["messageExpiry"] = expiry_s
        self._client.publish(**kwargs)


@dataclass
class RecordingPublisher:
    """Keeps what was published (tests)."""

    messages: list[tuple[str, str, int | None]] = field(default_factory=list)
    fail: bool = False

    def publish(self, topic: str, payload: str, *, expiry_s: int | None = None) -> None:
        if self.fail:
            raise ConnectionError("publish failed (test)")
        self.messages.append((topic, payload, expiry_s))
