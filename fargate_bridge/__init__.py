"""The Fargate bridge: each charger's WebSocket bridged to its own MQTT5 session (DESIGN §1-3).

It only moves frames: ``ocpp/{cp}/in`` out, ``ocpp/{cp}/out`` back, ``ocpp/{cp}/events`` for
presence. Run it with ``python -m fargate_bridge`` (configured from the environment, see
docs/bridge.md) or in process with :class:`Bridge` / :func:`serve`.
"""

from __future__ import annotations

from .registry import ChargerCredentials, ChargerRegistry, DynamoChargerRegistry, InMemoryChargerRegistry
from .server import Bridge, serve
from .settings import Settings
from .topics import events_topic, inbound_topic, outbound_topic

__all__ = [
    "Bridge",
    "ChargerCredentials",
    "ChargerRegistry",
    "DynamoChargerRegistry",
    "InMemoryChargerRegistry",
    "Settings",
    "events_topic",
    "inbound_topic",
    "outbound_topic",
    "serve",
]
