"""The balancing state of a site and what to send: pure functions, no I/O (DESIGN §10).

The state (one record per site, ``BalanceStore``) holds every session of the site's chargers:

* ``share``: what ``allocate`` gives it now (in the site's unit, A per phase or W);
* ``granted``: the limit of the last profile the charger **accepted** (None: none yet);
* ``queued``: the limit of the profile queued or sent and not answered yet (None: nothing out);
* ``failures`` / ``failed``: rejected or unanswered profiles in a row; after ``MAX_FAILURES`` the
  session is reported (``failed``) and not retried until its share changes or its charger
  reconnects.

**The invariant.** A session may be using up to its *bound*: the greatest of the limit it accepted,
the limit queued for it, and, before any TxProfile was accepted, 0 if its charger accepted the
site's default profile (TxDefaultProfile at 0 A: a session starts paused) or else its share.
``plan`` never queues an increase that would make the sum of the bounds exceed the site's limit:
decreases go out at once, an increase waits until the decreases it needs are *accepted*. A charger
that rejects or never answers a decrease keeps its old bound, so nobody else is raised on its
account: it cannot make the others exceed the limit. ``plan`` is the only place that decides, so
every trigger (a start, a stop, a result, a reconnect, meter values) keeps the invariant whatever
their order; the store's optimistic concurrency makes each change apply to the latest state.

Sessions that end stay as tombstones (``ended``) for ``TOMBSTONE_MS``, so a start delivered late
(after its stop) never brings a finished session back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .allocation import Session, allocate

#: rejected or unanswered profiles in a row before a session is reported instead of retried
MAX_FAILURES = 3
#: how long an ended session is remembered (a late start of it changes nothing)
TOMBSTONE_MS = 7 * 24 * 3600 * 1000
#: the nominal phase voltage for converting between A and W (IEC 60038: 230 V)
NOMINAL_VOLTAGE = 230
#: an EV drawing below this fraction of its share, for DEMAND_WINDOW_MS, is capped near its draw
LOW_DRAW_RATIO = 0.8
#: an EV capped that way and drawing at least this fraction of its cap gets the cap lifted
FULL_DRAW_RATIO = 0.95
DEMAND_WINDOW_MS = 60_000
#: a capped EV gets this much above its measured draw (headroom to ramp up and be seen doing so)
DEMAND_HEADROOM = 1.2
#: a profile out (queued or sent, unanswered) longer than this is taken as lost: longer than the
#: outbox expiry plus the longest call timeout
LOST_MS = 20 * 60 * 1000
_EPSILON = 1e-6

ACTIVE, ENDED = "active", "ended"


@dataclass(frozen=True, slots=True)
class SiteLimits:
    """A site record in the allocation's terms: the limit and the minimum in the site's unit."""

    limit: float
    minimum: float
    unit: str  # "A" (per phase) or "W"
    phases: int
    chargers: frozenset[str]

    @classmethod
    def of(cls, site: Mapping[str, Any]) -> SiteLimits:
        phases = int(site.get("phases") or 3)
        minimum = float(site["minAmps"])
        if "limitAmps" in site:
            return cls(float(site["limitAmps"]), minimum, "A", phases, frozenset(site.get("chargers") or ()))
        watts_minimum = minimum * NOMINAL_VOLTAGE * phases
        return cls(float(site["limitWatts"]), watts_minimum, "W", phases, frozenset(site.get("chargers") or ()))

    @property
    def step(self) -> float:
        """OCPP limits have one decimal (1.6 §7.13): 0.1 A; whole watts for a limit in W."""
        return 0.1 if self.unit == "A" else 1.0


@dataclass(frozen=True, slots=True)
class Send:
    """A profile to queue for a session (``key``) or, with ``default``, a charger's default profile."""

    key: str
    charge_point_id: str
    limit: float
    default: bool = False
    #: remove the balancing's profile instead (a charger that left the site): ``where`` names its
    #: connector / EVSE (0: the default profile), ``protocol`` its OCPP version
    clear: bool = False
    where: int = 0
    protocol: str | None = None
    #: read the charger's rate units instead (1.6 ChargingScheduleAllowedChargingRateUnit, 2.x
    #: SmartChargingCtrlr.RateUnit), once: its profiles are then written in a unit it takes
    probe: bool = False


def session_key(charge_point_id: str, transaction_id: str) -> str:
    return f"{charge_point_id}|{transaction_id}"


def empty_state(site_id: str) -> dict[str, Any]:
    return {"siteId": site_id, "version": 0, "sessions": {}, "chargers": {}}


# --- changes -------------------------------------------------------------------------------


def add_session(state: dict[str, Any], key: str, info: Mapping[str, Any], now_ms: int) -> bool:
    """A transaction started (``info``: chargePointId, transactionId, protocol, connectorId or
    evseId, unit). A session already known, active or ended, is left as it is."""
    sessions = state["sessions"]
    if key in sessions:
        return False
    started = int(info.get("startedAt") or now_ms)
    known_charger(state, str(info.get("chargePointId")), info.get("protocol"))
    sessions[key] = {
        **dict(info),
        "state": ACTIVE,
        "startedAt": started,
        "waitingSince": started,
        "share": 0.0,
        "granted": None,
        "queued": None,
        "failures": 0,
    }
    return True


def end_session(state: dict[str, Any], key: str, info: Mapping[str, Any], now_ms: int) -> bool:
    """A transaction ended: its share is freed at once (the EV stopped drawing). Kept as a tombstone."""
    session = state["sessions"].get(key)
    if session is None:
        state["sessions"][key] = {**dict(info), "state": ENDED, "endedAt": now_ms, "share": 0.0}
        return True
    if session["state"] == ENDED:
        return False
    session.update(state=ENDED, endedAt=now_ms, share=0.0, queued=None)
    return True


def known_charger(state: dict[str, Any], charge_point_id: str, protocol: Any) -> None:
    """Remember the charger's OCPP version (its default profile is written in it)."""
    charger = state["chargers"].setdefault(charge_point_id, {"granted": None, "queued": None, "failures": 0})
    if isinstance(protocol, str) and protocol:
        charger["protocol"] = protocol


def set_units(state: dict[str, Any], charge_point_id: str, unit: str) -> bool:
    """The charger's rate unit became known: its sessions' profiles are written in it from now on."""
    changed = False
    for session in _active(state):
        if session.get("chargePointId") == charge_point_id and session.get("unit") != unit:
            session["unit"] = unit
            changed = True
    return changed


def charger_reconnected(state: dict[str, Any], charge_point_id: str, protocol: Any = None) -> bool:
    """Its profiles are sent again (a charger that lost them gets them back), failures forgotten."""
    known_charger(state, charge_point_id, protocol)
    changed = False
    for session in _active(state):
        if session.get("chargePointId") == charge_point_id:
            # A profile out before the reconnect may have been applied, its answer lost.
            _assume_applied(session)
            session.update(failures=0, failed=False, resend=True, offline=False)
            changed = True
    charger = state["chargers"].get(charge_point_id)
    if charger is not None:
        charger.update(queued=None, failures=0, failed=False, resend=True, offline=False)
        changed = True
    return changed


def _assume_applied(session: dict[str, Any]) -> None:
    """A profile whose answer will not come may be in force or not: count the higher of the two
    (the safe side of the bound) and send the share again to be sure (``uncertain``)."""
    queued = session.get("queued")
    if queued is None:
        return
    granted = session.get("granted")
    session.update(granted=float(queued) if granted is None else max(float(granted), float(queued)))
    session.update(queued=None, uncertain=True)


def record_result(state: dict[str, Any], send: Mapping[str, Any], outcome: str, detail: str, now_ms: int) -> bool:
    """The answer to a profile ``plan`` asked for (``send``: the call's origin): ``accepted``,
    ``rejected`` / ``error`` / ``timeout`` (retried, up to MAX_FAILURES), or ``expired`` (never sent:
    its charger was offline; sent again when it reconnects)."""
    target = _target(state, send)
    if target is None:
        return False
    limit = float(send["limit"])
    in_flight = target.get("queued") is not None and math.isclose(float(target["queued"]), limit)
    if outcome == "accepted":
        target.update(granted=limit, failures=0, failed=False, uncertain=False, lastResultAt=now_ms)
        target.pop("lastError", None)
        if in_flight:
            target["queued"] = None
        return True
    if not in_flight:
        return False  # an answer to a profile superseded since: the newer one is what counts
    target["queued"] = None
    if outcome == "expired":
        target["offline"] = True
        return True
    if outcome == "timeout" and not send.get("default"):
        # No answer: it may be in force or not (a default profile not known to be in force counts
        # as absent: that is its safe side).
        target["queued"] = limit
        _assume_applied(target)
    failures = int(target.get("failures") or 0) + 1
    target.update(failures=failures, lastError=f"{outcome}: {detail}"[:300], lastResultAt=now_ms)
    if failures >= MAX_FAILURES:
        target["failed"] = True
    return True


def observe_draw(state: dict[str, Any], key: str, drawn: float, sampled_at_ms: int) -> bool:
    """Meter values of a session (in the site's unit). An EV drawing clearly less than its share
    for ``DEMAND_WINDOW_MS`` gets a cap near what it draws (the rest goes to the others); a capped
    EV drawing near its cap has the cap lifted. Older samples than the last one seen are ignored."""
    session = state["sessions"].get(key)
    if session is None or session["state"] != ACTIVE or not math.isfinite(drawn) or drawn < 0:
        return False
    if sampled_at_ms <= int(session.get("drawAt") or 0):
        return False
    session.update(drawn=drawn, drawAt=sampled_at_ms)
    share = float(session.get("share") or 0.0)
    cap = session.get("cap")
    if cap is not None and drawn >= FULL_DRAW_RATIO * float(cap):
        session.pop("cap", None)
        session.pop("lowSince", None)
        return True
    if share > 0 and drawn < LOW_DRAW_RATIO * share:
        low_since = session.setdefault("lowSince", sampled_at_ms)
        if sampled_at_ms - int(low_since) >= DEMAND_WINDOW_MS and cap is None:
            session["cap"] = drawn * DEMAND_HEADROOM
        return True
    session.pop("lowSince", None)
    return True


# --- the plan ------------------------------------------------------------------------------


def plan(state: dict[str, Any], site: SiteLimits, now_ms: int) -> list[Send]:
    """Recompute the shares and decide what to queue now (updating ``state``: shares, ``queued``)."""
    _prune(state, now_ms)
    _recover_lost(state, now_ms)
    left: list[dict[str, Any]] = []
    for session in state["sessions"].values():
        if session["state"] == ACTIVE and session.get("chargePointId") not in site.chargers:
            left.append(dict(session))
            session.update(state=ENDED, endedAt=now_ms, share=0.0, queued=None, leftSite=True)
    active = {key: s for key, s in state["sessions"].items() if s["state"] == ACTIVE}
    sessions = [
        Session(key, int(s.get("waitingSince") or 0), float(s["cap"]) if s.get("cap") is not None else None)
        for key, s in active.items()
    ]
    shares = allocate(site.limit, site.minimum, sessions, step=site.step)
    before = {key: float(s.get("share") or 0.0) for key, s in active.items()}
    for key, share in shares.items():
        if share == 0 and before[key] > 0:
            active[key]["waitingSince"] = now_ms  # paused now: behind those running, ahead of newcomers
        active[key]["share"] = share

    sends: list[Send] = []
    sends.extend(_released(state, site, left))
    sends.extend(_defaults(state, site, now_ms))
    held = {key: _bound(state, s) for key, s in active.items()}
    # Every decrease (and every profile that changes no bound) before any increase, the smallest
    # change first, as ``transition`` orders them; an increase only if the bounds leave room.
    for key in sorted(active, key=lambda k: (shares[k] > held[k] + _EPSILON, shares[k] - held[k], k)):
        session = active[key]
        share = shares[key]
        if not _wants(session, share):
            continue
        others = sum(bound for other, bound in held.items() if other != key)
        if share > held[key] + _EPSILON and others + share > site.limit + _EPSILON:
            continue  # an increase that must wait for decreases to be accepted
        session.update(queued=share, queuedAt=now_ms)
        session.pop("resend", None)
        held[key] = max(held[key], share)
        sends.append(Send(key, str(session["chargePointId"]), share))
    return sends


def _wants(session: Mapping[str, Any], share: float) -> bool:
    """Whether the session needs a profile for ``share``: none out for it, and the charger has
    another limit, or none, or lost it (``resend``: it reconnected)."""
    if session.get("failed") or session.get("offline"):
        return False
    if session.get("queued") is not None:
        # One profile out per session at a time: its answer (or its loss) is awaited, then the
        # state is planned again. So the bound always knows every limit the charger may accept.
        return False
    if session.get("resend") or session.get("uncertain"):
        return True
    granted = session.get("granted")
    return granted is None or not math.isclose(float(granted), share)


def _bound(state: Mapping[str, Any], session: Mapping[str, Any]) -> float:
    """The most the session may be drawing now (see the module docstring)."""
    granted = session.get("granted")
    if granted is None:
        charger = state["chargers"].get(session.get("chargePointId")) or {}
        base = 0.0 if charger.get("granted") == 0 else float(session.get("share") or 0.0)
    else:
        base = float(granted)
    queued = session.get("queued")
    return max(base, float(queued) if queued is not None else 0.0)


def _defaults(state: dict[str, Any], site: SiteLimits, now_ms: int) -> list[Send]:
    """The site's chargers each get a TxDefaultProfile at 0 once, so a session starts paused."""
    sends = []
    for cp in sorted(site.chargers):
        charger = state["chargers"].setdefault(cp, {"granted": None, "queued": None, "failures": 0})
        if not charger.get("protocol"):
            continue  # never connected: its OCPP version is unknown (sent when it connects)
        if not charger.get("unitsAsked"):
            charger["unitsAsked"] = True
            sends.append(Send(f"{cp}|units", cp, 0.0, probe=True))
        if charger.get("failed") or charger.get("offline") or charger.get("queued") is not None:
            continue
        if charger.get("granted") == 0 and not (charger.get("resend") or charger.get("uncertain")):
            continue
        charger.update(queued=0.0, queuedAt=now_ms)
        charger.pop("resend", None)
        sends.append(Send(f"{cp}|default", cp, 0.0, default=True))
    return sends


def _released(state: dict[str, Any], site: SiteLimits, left: list[dict[str, Any]]) -> list[Send]:
    """A charger that left the site gets the balancing's profiles removed: its default at 0 (else
    it would pause every session it starts, for ever) and the TxProfiles of its running sessions."""
    sends = []
    for cp in sorted(cp for cp in state["chargers"] if cp not in site.chargers):
        charger = state["chargers"].pop(cp)
        protocol = charger.get("protocol")
        if not protocol:
            continue
        if charger.get("granted") is not None or charger.get("queued") is not None or charger.get("uncertain"):
            sends.append(Send(f"{cp}|clear-default", cp, 0.0, clear=True, where=0, protocol=protocol))
        for session in left:
            if session.get("chargePointId") != cp:
                continue
            where = int(session.get("evseId") or session.get("connectorId") or 0)
            had = session.get("granted") is not None or session.get("queued") is not None
            if where > 0 and had:
                key = f"{cp}|clear-{where}"
                sends.append(Send(key, cp, 0.0, clear=True, where=where, protocol=protocol))
    return sends


def _recover_lost(state: dict[str, Any], now_ms: int) -> None:
    """A profile out for longer than ``LOST_MS`` lost its answer (a crash between sending and
    recording): assume the charger may have accepted it (the safe side for the bound), send again."""
    for session in _active(state):
        if session.get("queued") is not None and now_ms - int(session.get("queuedAt") or 0) > LOST_MS:
            _assume_applied(session)
    for charger in state["chargers"].values():
        if charger.get("queued") is not None and now_ms - int(charger.get("queuedAt") or 0) > LOST_MS:
            charger.update(queued=None, resend=True)  # a default not known to be accepted counts as absent


def _target(state: dict[str, Any], send: Mapping[str, Any]) -> dict[str, Any] | None:
    if send.get("default"):
        found = state["chargers"].get(send.get("chargePointId"))
    else:
        found = state["sessions"].get(send.get("key"))
        if found is not None and found["state"] != ACTIVE:
            return None
    return found if isinstance(found, dict) else None


def _active(state: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [s for s in state["sessions"].values() if s["state"] == ACTIVE]


def _prune(state: dict[str, Any], now_ms: int) -> None:
    sessions = state["sessions"]
    for key in [k for k, s in sessions.items() if s["state"] == ENDED and now_ms - int(s["endedAt"]) > TOMBSTONE_MS]:
        del sessions[key]
