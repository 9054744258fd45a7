"""Presence: is a charger connected, from bridge events that arrive in any order (DESIGN §7).

The bridge publishes ``connected`` when a socket's MQTT session is up (again: IoT Core cuts every
MQTT-over-WebSocket session after 24 h, so one socket has a ``connected`` a day) and
``disconnected`` when it ends, also as the MQTT will. The IoT rule invokes the presence Lambda
asynchronously, so these events are applied in any order, twice, or late. They are ordered by the
broker's own clock (the rule's ``timestamp()``, ``ruleTimestamp``), since a will carries the time
its client was built, not the time it was sent.

What is kept, each write moved forward only, never read first:

* per connection (``CONN#<connectionId>``): the latest ``connectedAt`` and ``disconnectedAt``;
* on the charger item: the current connection, the one with the latest ``connected`` event
  (``connectionId``, ``connectionAt``). A takeover's new socket becomes current; the old socket's
  late ``disconnected`` only updates the old connection's item.

A charger is connected when its current connection's latest ``connected`` is newer than its
latest ``disconnected``. Every order of the same events gives the same answer, which is the one
in-order delivery gives (tests/lambdas/test_store_contract.py checks each permutation of several
event histories on both adapters; tests/lambdas/test_unordered_delivery.py, whole histories).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def is_connected(charger: Mapping[str, Any] | None, connection: Mapping[str, Any] | None) -> bool:
    """``connection``: the item of ``charger["connectionId"]`` (None if it has none or it expired)."""
    if charger is None or not charger.get("connectionId"):
        return False
    if connection is None:
        # No item for the current connection: it expired (a connection item outlives its last
        # event by CONNECTION_TTL_S), so nothing ended it since: it is up.
        return True
    connected_at = connection.get("connectedAt")
    disconnected_at = connection.get("disconnectedAt")
    if not isinstance(connected_at, int):
        return False
    return not isinstance(disconnected_at, int) or disconnected_at < connected_at


def current_connection_key(charger: Mapping[str, Any] | None) -> tuple[str, str] | None:
    """``(charger id, connection id)`` of the charger's current connection, for ``get_connections``."""
    if charger is None:
        return None
    cp, connection_id = charger.get("chargePointId"), charger.get("connectionId")
    if isinstance(cp, str) and isinstance(connection_id, str) and connection_id:
        return cp, connection_id
    return None


def with_presence(charger: dict[str, Any], connections: Mapping[tuple[str, str], Mapping[str, Any]]) -> dict[str, Any]:
    """The charger record with ``connected`` (and the connection's times) filled in."""
    key = current_connection_key(charger)
    connection = connections.get(key) if key is not None else None
    charger["connected"] = is_connected(charger, connection)
    if connection is not None:
        for name in ("connectedAt", "disconnectedAt", "disconnectReason"):
            if name in connection:
                charger[name] = connection[name]
    return charger


#: How long a connection item outlives its last event (epoch-seconds TTL). A live connection gets
#: an event at least daily on AWS (the 24 h MQTT cut), so its item never lapses while it is up.
CONNECTION_TTL_S = 30 * 24 * 3600
