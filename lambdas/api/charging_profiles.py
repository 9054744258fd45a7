"""``GET /chargers/{chargePointId}/charging-profiles``: what the CSMS believes is installed (DESIGN §10).

The records ``ocpp_core.smart_charging.profiles`` keeps: the profiles the charger accepted (an
operator's or the balancing's), less those a ClearChargingProfile or a replacement removed, plus
what a 2.x charger reported (ReportChargingProfiles); and the latest composite schedule per
connector / EVSE. A TxProfile lasts as long as its transaction (1.6 §3.13.1, 2.0.1 K01): one
whose transaction has ended is not shown, though its record stays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ocpp_core.handlers.transactions import TransactionStatus
from ocpp_core.ports import Record, StateStore
from ocpp_core.smart_charging.profiles import TX_PROFILE

from .context import ApiContext
from .errors import NotFound
from .http import Request, Response
from .views import present

_DROP = frozenset({"chargePointId"})


def _ended_transactions(store: StateStore, cp: str, profiles: Sequence[Mapping[str, Any]]) -> set[str]:
    """The transactions of the TxProfiles that have ended: one read per distinct transaction.

    A transaction the CSMS does not know (or has no status for yet) is not known to have ended.
    """
    ids = {str(p["transactionId"]) for p in profiles if _is_tx_profile(p)}
    ended = set()
    for tx in sorted(ids):
        record = store.get_transaction(cp, tx)
        if record is not None and record.get("status") == TransactionStatus.COMPLETED:
            ended.add(tx)
    return ended


def _is_tx_profile(profile: Mapping[str, Any]) -> bool:
    return profile.get("chargingProfilePurpose") == TX_PROFILE and profile.get("transactionId") is not None


def installed_profiles(store: StateStore, cp: str) -> list[Record]:
    """The charger's profile records, in key order, without the TxProfiles of ended transactions."""
    profiles = store.list_charging_profiles(cp)
    ended = _ended_transactions(store, cp, profiles)
    return [p for p in profiles if not (_is_tx_profile(p) and str(p["transactionId"]) in ended)]


def get_charging_profiles(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp = params["chargePointId"]
    store = ctx.deps.store
    if store.get_charger(cp) is None:
        raise NotFound(f"Unknown charger {cp}.", chargePointId=cp)
    profiles = [present(p, drop=_DROP) for p in installed_profiles(store, cp)]
    schedules = [present(s, drop=_DROP) for s in store.list_composite_schedules(cp)]
    return Response(
        200,
        {"chargePointId": cp, "profiles": profiles, "compositeSchedules": schedules, "count": len(profiles)},
    )
