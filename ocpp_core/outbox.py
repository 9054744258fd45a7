"""The per-charger outbox: CSMS calls the system decides itself (DESIGN §10).

OCPP-J allows one outstanding CALL per direction (1.6 §4.1.1; 2.0.1 / 2.1 part 4 §4.2.1), and an
operator's call to a busy charger is refused with 409. A call the system decides (a charging
profile of the balancing; later CertificateSigned) must not be refused, nor collide with an
operator's: it is *queued* here and sent when the charger has no call pending, oldest first, each
with its own expiry (``notAfter``: a queued call that could not be sent in time is dropped and its
origin told so).

Who sends: ``calls.start_outbox_call`` takes the oldest queued call and the charger's slot (the same
conditional write an operator call takes, so the two never collide). It runs in the message
processor when a CALLRESULT / CALLERROR frees the slot and right after something is queued, and in
the timer, which also applies the timeouts of calls nobody answered. No process waits for anything.

Each queued call carries an ``origin`` (``{"kind": ..., ...}``): when the call is final (accepted,
rejected, error, timeout, or expired unsent) the origin's handler is told (``calls.ORIGINS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .ports import Record, StateStore

#: how long a queued call waits for its charger by default (it may be offline)
DEFAULT_EXPIRY_S = 600
#: how long an outbox item lingers after its expiry before the table's TTL removes it
_TTL_MARGIN_S = 3600


@dataclass(frozen=True, slots=True)
class OutboxCall:
    """A call to queue: ``slot`` names its purpose on the charger (a newer call with a higher
    ``seq`` for the same slot replaces one still queued)."""

    slot: str
    action: str
    payload: Mapping[str, Any]
    origin: Mapping[str, Any]
    seq: int
    expiry_s: int = DEFAULT_EXPIRY_S
    extra: Mapping[str, Any] = field(default_factory=dict)


def queue(store: StateStore, now_ms: int, charge_point_id: str, call: OutboxCall) -> bool:
    """Queue ``call`` for the charger; whether it was queued (False: a newer one is there)."""
    record: Record = {
        "action": call.action,
        "payload": dict(call.payload),
        "origin": dict(call.origin),
        "queuedAt": now_ms,
        "notAfter": now_ms + call.expiry_s * 1000,
        "expiresAt": now_ms // 1000 + call.expiry_s + _TTL_MARGIN_S,
        **call.extra,
    }
    return store.queue_outbox(charge_point_id, call.slot, record, call.seq)


def split_expired(items: list[Record], now_ms: int) -> tuple[list[Record], list[Record]]:
    """(live, expired) queued calls, each list oldest first."""
    live = [item for item in items if now_ms < int(item.get("notAfter") or 0)]
    expired = [item for item in items if now_ms >= int(item.get("notAfter") or 0)]
    return live, expired
