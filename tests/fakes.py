"""The clock and id source the processor takes as ports, for tests: deterministic and thread-safe."""

from __future__ import annotations

import itertools
import threading
from typing import Any

#: 2025-06-15T15:06:40Z; the fixture events in tests/events are stamped a few seconds after it.
START_MS = 1_750_000_000_000


class FakeClock:
    """Epoch time that moves only when told to, or by ``step_ms`` on every read."""

    def __init__(self, start_ms: int = START_MS, step_ms: int = 0):
        self.ms = start_ms
        self.step_ms = step_ms
        self._lock = threading.Lock()

    def now_ms(self) -> int:
        with self._lock:
            now = self.ms
            self.ms += self.step_ms
            return now

    def now_s(self) -> float:
        return self.now_ms() / 1000

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.ms += int(seconds * 1000)


class SeqIds:
    """``<prefix>-1``, ``<prefix>-2``, ... (the ids of CSMS calls)."""

    def __init__(self, prefix: str = "csms") -> None:
        self._count = itertools.count(1)
        self.prefix = prefix

    def new_id(self) -> str:
        return f"{self.prefix}-{next(self._count)}"


def mark_connected(store: Any, cp: str, connection_id: str, at_ms: int, **charger_changes: Any) -> bool:
    """A bridge ``connected`` event as the presence Lambda applies it (tests' shorthand)."""
    recorded = store.record_connection(
        cp, connection_id, connected=True, at_ms=at_ms, charger_changes=charger_changes, connection_changes={}
    )
    return bool(recorded.changed)


def mark_disconnected(store: Any, cp: str, connection_id: str, at_ms: int, reason: str | None = None) -> bool:
    recorded = store.record_connection(
        cp,
        connection_id,
        connected=False,
        at_ms=at_ms,
        charger_changes={},
        connection_changes={"disconnectReason": reason},
    )
    return bool(recorded.changed)


def charger_connected(store: Any, cp: str) -> bool:
    """What the operator API shows as ``connected``."""
    from ocpp_core.presence import current_connection_key, is_connected

    charger = store.get_charger(cp)
    key = current_connection_key(charger)
    return is_connected(charger, store.get_connections([key]).get(key) if key else None)
