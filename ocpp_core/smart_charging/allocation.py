"""Sharing a site's limit among its active sessions: pure functions, no I/O (DESIGN §10).

``allocate`` decides each session's share of the site's limit (in the site's unit: amps per
phase, or watts), and ``transition`` orders the changes from the shares chargers hold now to the
new ones so that the sum of the limits in force never exceeds the site's limit at any moment:
every decrease before any increase.

The rules, in order:

1. **Who charges.** Each charging session needs at least ``minimum`` (an EV cannot charge below
   its minimum current: IEC 61851 says 6 A). If the limit cannot give every session its minimum,
   the sessions that have waited longest (earliest ``waiting_since``: when they started, or when
   they were last paused) charge and the others are paused at 0. A paused session keeps its
   ``waiting_since``, and sessions that arrive later wait behind it, so it resumes first: nobody
   starves while sessions come and go.
2. **How much.** The limit is shared equally among the charging sessions (water-filling): a
   session that can use less than its equal share (``cap``: an EV seen drawing well below its
   share, or the charger's own maximum) gets its cap, never below ``minimum``, and what it leaves
   is shared among the others.
3. **Rounding.** Shares are rounded *down* to ``step`` (0.1 A by default: OCPP limits are decimals
   with one digit, 1.6 §7.13), so rounding never pushes the sum over the limit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Session:
    """One active transaction on the site."""

    key: str
    #: epoch ms since when it waits for power (its start, or when it was last paused)
    waiting_since: int
    #: the most it can use (None: no limit of its own); below ``minimum`` counts as ``minimum``
    cap: float | None = None


def allocate(limit: float, minimum: float, sessions: Sequence[Session], *, step: float = 0.1) -> dict[str, float]:
    """Each session's share: 0 (paused) or between ``minimum`` and its cap; the sum at most ``limit``."""
    if not math.isfinite(limit) or limit < 0 or not math.isfinite(minimum) or minimum <= 0:
        raise ValueError(f"a site needs a limit >= 0 and a minimum > 0 (got {limit!r}, {minimum!r})")
    queue = sorted(sessions, key=lambda s: (s.waiting_since, s.key))
    served = min(len(queue), int((limit + 1e-9) // minimum))
    shares = {s.key: 0.0 for s in queue[served:]}
    running = queue[:served]
    remaining = limit
    # Water-filling: the session with the smallest cap first; each takes min(cap, equal share).
    pending = sorted(running, key=lambda s: (_cap(s, minimum), s.waiting_since, s.key))
    for index, session in enumerate(pending):
        equal = remaining / (len(pending) - index)
        share = max(minimum, min(_cap(session, minimum), equal))
        share = _round_down(share, step, minimum)
        shares[session.key] = share
        remaining -= share
    return shares


def _cap(session: Session, minimum: float) -> float:
    return math.inf if session.cap is None else max(session.cap, minimum)


def _round_down(value: float, step: float, minimum: float) -> float:
    """``value`` rounded down to ``step``, never below ``minimum`` (which the caller made fit)."""
    rounded = math.floor(value / step + 1e-9) * step
    return round(max(rounded, minimum), 6)


def transition(current: Mapping[str, float], target: Mapping[str, float]) -> list[tuple[str, float]]:
    """The changes from ``current`` to ``target``, in an order that never exceeds either sum.

    Sessions gone from ``target`` are dropped to 0 first, then every decrease (largest first,
    freeing the most at once), then every increase (smallest first). If ``current`` and
    ``target`` each fit the limit, so does every intermediate state.
    """
    keys = set(current) | set(target)
    changes = [(key, target.get(key, 0.0)) for key in keys if target.get(key, 0.0) != current.get(key, 0.0)]
    down = [c for c in changes if c[1] < current.get(c[0], 0.0)]
    up = [c for c in changes if c[1] > current.get(c[0], 0.0)]
    down.sort(key=lambda c: (c[1] - current.get(c[0], 0.0), c[0]))
    up.sort(key=lambda c: (c[1] - current.get(c[0], 0.0), c[0]))
    return down + up
