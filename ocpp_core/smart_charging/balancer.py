"""Site load balancing, wired to the state store and the outbox (DESIGN §10).

Triggers, each one change of the site's balancing state (``balancing``) followed by a ``plan``:
a transaction starts or ends on a member charger, its meter values show it drawing well below
its share (or back up to its cap), a profile is answered (or times out, or expires unsent), a
member charger reconnects, the operator changes the site. Each returns the chargers it queued
calls for; the caller drains their outboxes once its own reply is out (a 1.6 charger must have
its StartTransaction answer, with the transaction id, before a TxProfile naming it).

The state is changed by optimistic concurrency (``BalanceStore``): read, change, plan, write back
only if nobody wrote in between, else again. The calls are queued only after the write held.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from typing import Any

from .. import outbox
from ..context import CallContext
from ..ports import Record, StateStore, StoreError, TransactionStatus
from ..timefmt import parse_ms
from ..versions import OcppVersion
from . import BALANCING_PROFILE_ID_BASE, BALANCING_STACK_LEVEL
from .balancing import (
    NOMINAL_VOLTAGE,
    Send,
    SiteLimits,
    add_session,
    charger_reconnected,
    empty_state,
    end_session,
    known_charger,
    observe_draw,
    plan,
    record_result,
    session_key,
    set_units,
)

logger = logging.getLogger(__name__)

#: writes of one change tried before giving up (each loss means another change got in first)
_ATTEMPTS = 10
ORIGIN_KIND = "balancing"
#: the 1.6 configuration key and the 2.x variable that list the rate units a charger takes
_UNIT_CONFIGURATION = "ChargingScheduleAllowedChargingRateUnit"
_UNIT_VARIABLE = "SmartChargingCtrlr/RateUnit"

Change = Callable[[dict[str, Any]], bool]


def rebalance(
    store: StateStore, site_id: str, now_ms: int, change: Change | None = None, *, site: Record | None = None
) -> set[str]:
    """Apply ``change`` to the site's state, plan, write, queue; the chargers with new calls.
    ``site``: the site record, if the caller read it already."""
    site = site if site is not None else store.get_site(site_id)
    if site is None:
        return set()
    limits = SiteLimits.of(site)
    for _ in range(_ATTEMPTS):
        stored = store.get_balance(site_id)
        state = copy.deepcopy(stored) if stored is not None else empty_state(site_id)
        changed = change(state) if change is not None else False
        sends = plan(state, limits, now_ms)
        if stored is not None and not changed and not sends and state == stored:
            return set()
        version = int(stored["version"]) if stored is not None else None
        state["version"] = (version or 0) + 1
        if store.put_balance(site_id, state, version):
            return _queue(store, site_id, state, limits, sends, now_ms)
    raise StoreError(f"the balancing state of site {site_id} kept changing: {_ATTEMPTS} attempts lost")


def _queue(
    store: StateStore, site_id: str, state: Mapping[str, Any], limits: SiteLimits, sends: list[Send], now_ms: int
) -> set[str]:
    queued: set[str] = set()
    for send in sends:
        protocol = send.protocol or (state["chargers"].get(send.charge_point_id) or {}).get("protocol")
        call: outbox.OutboxCall | None
        if send.probe:
            call = _units_call(site_id, send, int(state["version"]), protocol) if protocol else None
        elif send.clear:
            call = _clear_call(site_id, send, int(state["version"]), str(protocol))
        else:
            call = _profile_call(site_id, state, limits, send, int(state["version"]), protocol)
        if call is None:
            continue
        if outbox.queue(store, now_ms, send.charge_point_id, call):
            queued.add(send.charge_point_id)
    return queued


# --- triggers --------------------------------------------------------------------------------


def _site_of(ctx: CallContext) -> str | None:
    """The charger's site, from the charger record every frame reads anyway (``siteId``, a copy
    the store keeps with the membership): no request for a charger in no site."""
    site = (ctx.charger or {}).get("siteId")
    return site if isinstance(site, str) else None


def transaction_started(ctx: CallContext, transaction_id: str, where: Mapping[str, int]) -> None:
    """``where``: ``{"connectorId": n}`` (1.6) or ``{"evseId": n}`` (2.x)."""
    site_id = _site_of(ctx)
    site = ctx.store.get_site(site_id) if site_id is not None else None
    if site_id is None or site is None:
        return
    info = {
        "chargePointId": ctx.charge_point_id,
        "transactionId": transaction_id,
        "protocol": ctx.version.value,
        "unit": _unit_of(ctx.store, ctx.charge_point_id, site, ctx.version),
        "startedAt": ctx.received_at_ms,
        **where,
    }
    key = session_key(ctx.charge_point_id, transaction_id)
    ctx.drain |= rebalance(
        ctx.store, site_id, ctx.now_ms, lambda state: add_session(state, key, info, ctx.now_ms), site=site
    )


def transaction_ended(ctx: CallContext, transaction_id: str) -> None:
    site_id = _site_of(ctx)
    if site_id is None:
        return
    key = session_key(ctx.charge_point_id, transaction_id)
    info = {"chargePointId": ctx.charge_point_id, "transactionId": transaction_id}
    ctx.drain |= rebalance(ctx.store, site_id, ctx.now_ms, lambda state: end_session(state, key, info, ctx.now_ms))


def meter_values(ctx: CallContext, transaction_id: str, meter_value: Any) -> None:
    """What the EV draws, from Current.Import (A, the highest phase) or Power.Active.Import (W)."""
    site_id = _site_of(ctx)
    if site_id is None:
        return
    site = ctx.store.get_site(site_id)
    if site is None:
        return
    limits = SiteLimits.of(site)
    sample = _draw(meter_value, limits)
    if sample is None:
        return
    drawn, sampled_at = sample
    key = session_key(ctx.charge_point_id, transaction_id)
    before = ctx.store.get_balance(site_id)
    session = ((before or {}).get("sessions") or {}).get(key)
    if session is None:
        return

    def change(state: dict[str, Any]) -> bool:
        previous = (
            {name: state["sessions"][key].get(name) for name in ("cap", "lowSince")} if key in state["sessions"] else {}
        )
        observe_draw(state, key, drawn, sampled_at)
        now = {name: state["sessions"].get(key, {}).get(name) for name in ("cap", "lowSince")}
        return now != previous  # only a new cap (or a window opened or closed) is worth a write

    probe = copy.deepcopy(before) if before is not None else empty_state(site_id)
    if not change(probe):
        return  # nothing to remember: no read-write cycle for an ordinary sample
    ctx.drain |= rebalance(ctx.store, site_id, ctx.now_ms, change, site=site)


def charger_connected(store: StateStore, now_ms: int, charge_point_id: str, *, site_id: str | None = None) -> set[str]:
    """A member charger (re)connected: its profiles are sent again (``site_id``: its site, if read)."""
    site_id = site_id if site_id is not None else store.site_of(charge_point_id)
    if site_id is None:
        return set()
    protocol = (store.get_charger(charge_point_id) or {}).get("protocol")
    return rebalance(store, site_id, now_ms, lambda state: charger_reconnected(state, charge_point_id, protocol))


def site_changed(store: StateStore, now_ms: int, site_id: str) -> set[str]:
    """The operator changed the site (limit, minimum, members): shares recomputed, profiles sent.
    Transactions already running on its chargers (started before they joined) are taken in."""
    site = store.get_site(site_id)
    if site is None:
        return set()
    running = [
        tx
        for cp in site.get("chargers") or []
        for tx in store.list_transactions(str(cp))
        if tx.get("status") == TransactionStatus.ACTIVE and not tx.get("stoppedAt")
    ]
    members = store.get_chargers([str(cp) for cp in site.get("chargers") or []])
    units = {
        cp: _unit_of(store, cp, site, OcppVersion.parse((members.get(cp) or {}).get("protocol")))
        for cp in {str(tx.get("chargePointId")) for tx in running}
    }

    def adopt(state: dict[str, Any]) -> bool:
        changed = False
        for cp, charger in members.items():
            known_charger(state, cp, charger.get("protocol"))
        for tx in running:
            cp, tx_id = str(tx.get("chargePointId")), str(tx.get("transactionId"))
            where = {"evseId": tx["evseId"]} if "evseId" in tx else {"connectorId": tx.get("connectorId")}
            info = {
                "chargePointId": cp,
                "transactionId": tx_id,
                "protocol": tx.get("protocol"),
                "unit": units[cp],
                "startedAt": tx.get("startedAt") or now_ms,
                **where,
            }
            changed |= add_session(state, session_key(cp, tx_id), info, now_ms)
        return changed

    return rebalance(store, site_id, now_ms, adopt)


def profile_finished(
    store: StateStore, now_ms: int, cp: str, origin: Mapping[str, Any], status: str, detail: str, response: Any
) -> set[str]:
    """``calls.ORIGINS``: a profile the balancing queued is final."""
    if origin.get("probe"):
        if status != "accepted":
            return set()  # the unit stays what it was taken to be ("A" when unknown)
        site_id = str(origin.get("siteId"))
        site = store.get_site(site_id)
        if site is None:
            return set()
        unit = _unit_of(store, cp, site, OcppVersion.parse((store.get_charger(cp) or {}).get("protocol")))
        return rebalance(store, site_id, now_ms, lambda state: set_units(state, cp, unit), site=site)
    if origin.get("clear"):
        # The charger left the site: nothing of the site's state depends on the answer.
        if status != "accepted":
            logger.warning("could not remove the balancing profile of %s (%s): %s", cp, origin.get("key"), detail)
        return set()
    outcome = status
    if status == "accepted":
        answer = response.get("status") if isinstance(response, Mapping) else None
        outcome = "accepted" if answer == "Accepted" else "rejected"
        detail = f"the charger answered {answer}"
    if outcome != "accepted":
        logger.warning("balancing profile for %s (%s) %s: %s", cp, origin.get("key"), outcome, detail)
    site_id = str(origin.get("siteId"))
    return rebalance(store, site_id, now_ms, lambda state: record_result(state, origin, outcome, detail, now_ms))


# --- profiles ----------------------------------------------------------------------------------


def _profile_call(
    site_id: str, state: Mapping[str, Any], limits: SiteLimits, send: Send, seq: int, protocol: str | None
) -> outbox.OutboxCall | None:
    origin = {
        "kind": ORIGIN_KIND,
        "siteId": site_id,
        "key": send.key,
        "chargePointId": send.charge_point_id,
        "limit": send.limit,
        "default": send.default,
    }
    if send.default:
        if protocol is None:
            return None  # never connected: its version is unknown (sent when it reconnects)
        payload = _payload(protocol, 0, None, "TxDefaultProfile", "A", 0.0, limits.phases)
        return outbox.OutboxCall("PROFILE#default", "SetChargingProfile", payload, origin, seq)
    session: Record = state["sessions"][send.key]
    protocol = str(session.get("protocol") or protocol)
    where = int(session.get("evseId") or session.get("connectorId") or 0)
    if where <= 0:
        logger.warning("session %s has no connector / EVSE: no profile can name it", send.key)
        return None
    unit = str(session.get("unit") or "A")
    limit = _convert(send.limit, limits, unit)
    payload = _payload(protocol, where, str(session["transactionId"]), "TxProfile", unit, limit, limits.phases)
    return outbox.OutboxCall(f"PROFILE#{where}", "SetChargingProfile", payload, origin, seq)


def _units_call(site_id: str, send: Send, seq: int, protocol: str) -> outbox.OutboxCall:
    """Read the rate units the charger's schedules may use (the result fills its configuration or
    variables map, as any GetConfiguration / GetVariables result does)."""
    payload: dict[str, Any]
    if protocol == "ocpp1.6":
        action, payload = "GetConfiguration", {"key": [_UNIT_CONFIGURATION]}
    else:
        component, variable = _UNIT_VARIABLE.split("/")
        action = "GetVariables"
        payload = {"getVariableData": [{"component": {"name": component}, "variable": {"name": variable}}]}
    origin: dict[str, Any] = {"kind": ORIGIN_KIND, "siteId": site_id, "key": send.key}
    origin.update(chargePointId=send.charge_point_id, probe=True, limit=0.0, default=False)
    return outbox.OutboxCall("READ#units", action, payload, origin, seq)


def _clear_call(site_id: str, send: Send, seq: int, protocol: str) -> outbox.OutboxCall:
    """ClearChargingProfile of the balancing's own profile on connector / EVSE ``send.where`` (by id:
    nothing the operator installed is touched)."""
    profile_id = BALANCING_PROFILE_ID_BASE + send.where
    payload = {"id": profile_id} if protocol == "ocpp1.6" else {"chargingProfileId": profile_id}
    origin: dict[str, Any] = {"kind": ORIGIN_KIND, "siteId": site_id, "key": send.key}
    origin.update(chargePointId=send.charge_point_id, clear=True, limit=0.0, default=False)
    return outbox.OutboxCall(f"CLEAR#{send.where}", "ClearChargingProfile", payload, origin, seq)


def _payload(
    protocol: str, where: int, transaction_id: str | None, purpose: str, unit: str, limit: float, phases: int
) -> dict[str, Any]:
    period = {"startPeriod": 0, "limit": limit, "numberPhases": phases}
    profile_id = BALANCING_PROFILE_ID_BASE + where
    if protocol == "ocpp1.6":
        profile: dict[str, Any] = {
            "chargingProfileId": profile_id,
            "stackLevel": BALANCING_STACK_LEVEL,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Relative",
            "chargingSchedule": {"chargingRateUnit": unit, "chargingSchedulePeriod": [period]},
        }
        if transaction_id is not None:
            profile["transactionId"] = int(transaction_id)
        return {"connectorId": where, "csChargingProfiles": profile}
    profile = {
        "id": profile_id,
        "stackLevel": BALANCING_STACK_LEVEL,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": [{"id": 1, "chargingRateUnit": unit, "chargingSchedulePeriod": [period]}],
    }
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    return {"evseId": where, "chargingProfile": profile}


def _convert(limit: float, limits: SiteLimits, unit: str) -> float:
    """A share in the site's unit as a limit in the charger's, rounded down (never above it)."""
    if unit == limits.unit:
        return limit
    factor = NOMINAL_VOLTAGE * limits.phases
    if unit == "A":
        return int(limit / factor * 10 + 1e-9) / 10
    return int(limit * factor * 10 + 1e-9) / 10


def _unit_of(store: StateStore, cp: str, site: Mapping[str, Any], version: OcppVersion | None) -> str:
    """The unit the charger's schedules may use, as its configuration says (if the CSMS read it:
    1.6 ChargingScheduleAllowedChargingRateUnit, 2.x SmartChargingCtrlr.RateUnit): the site's own
    if it takes that, else the one it takes; "A" when unknown (what chargers support most)."""
    try:
        if version in (None, OcppVersion.V16):
            entry = store.get_charger_map(cp, "configuration").get(_UNIT_CONFIGURATION)
            raw = entry.get("value") if isinstance(entry, Mapping) else None
        else:
            raw = store.get_charger_map(cp, "variables").get(_UNIT_VARIABLE)
    except StoreError:
        raw = None
    words = {word.strip() for word in str(raw or "").split(",")}
    units = {unit for word, unit in (("Current", "A"), ("Power", "W"), ("A", "A"), ("W", "W")) if word in words}
    site_unit = "A" if "limitAmps" in site else "W"
    if not units:
        return "A"
    return site_unit if site_unit in units else units.pop()


def _unit(sample: Mapping[str, Any]) -> str | None:
    """1.6 ``unit``; 2.x ``unitOfMeasure.unit``."""
    measure = sample.get("unitOfMeasure")
    unit = measure.get("unit") if isinstance(measure, Mapping) else sample.get("unit")
    return unit if isinstance(unit, str) else None


def _draw(meter_value: Any, limits: SiteLimits) -> tuple[float, int] | None:
    """(what is drawn, in the site's unit; when) from the latest sampled value that says it."""
    best: tuple[float, int] | None = None
    for entry in meter_value if isinstance(meter_value, list) else []:
        if not isinstance(entry, Mapping):
            continue
        at = parse_ms(entry.get("timestamp"))
        amps: list[float] = []
        watts: list[float] = []
        for sample in entry.get("sampledValue") or []:
            if not isinstance(sample, Mapping):
                continue
            measurand = sample.get("measurand", "Energy.Active.Import.Register")
            try:
                value = float(str(sample.get("value")))
            except (TypeError, ValueError):
                continue
            if measurand == "Current.Import":
                amps.append(value)
            elif measurand == "Power.Active.Import":
                watts.append(value * 1000 if _unit(sample) == "kW" else value)
        drawn: float | None = None
        if limits.unit == "A" and amps:
            drawn = max(amps)
        elif limits.unit == "W" and watts:
            drawn = sum(watts) if len(watts) > 1 else watts[0]
        elif watts:
            drawn = max(watts) / (NOMINAL_VOLTAGE * limits.phases)
        elif amps:
            drawn = max(amps) * NOMINAL_VOLTAGE * limits.phases
        if drawn is not None and at is not None and (best is None or at > best[1]):
            best = (drawn, at)
    return best
