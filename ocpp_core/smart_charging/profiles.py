"""What the CSMS believes each charger has installed: its charging profiles (DESIGN §10).

Kept from the charger's answers (a profile it accepted, a ClearChargingProfile it accepted, a
GetCompositeSchedule it computed) and from what a 2.x charger reports (ReportChargingProfiles).
The call results are ``ocpp_core.calls`` effects; the report is called by its handler.

A profile record is kept under ``<scope>#<chargingProfileId>``: the scope is ``C<n>`` for 1.6
connector ``n``, ``E<n>`` for 2.x EVSE ``n`` (0: the whole charger), as is the label of a composite
schedule. A record::

    {"chargingProfileId", "connectorId" (1.6) | "evseId" (2.x), "stackLevel",
     "chargingProfilePurpose", "chargingProfileKind", "transactionId" (if any),
     "chargingProfile" (the profile as sent or reported), "source", "installedAt" | "reportedAt"}

with ``source`` ``balancing`` (the site balancing's own ids), ``operator`` (any other profile the
CSMS sent) or ``report`` (what the charger reported). The store keeps each record only if it is
not older than the stored one (``observedAt``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..context import CallContext
from ..ports import Record, StateStore
from ..timefmt import parse_ms
from . import is_balancing_profile

ACCEPTED = "Accepted"
TX_PROFILE = "TxProfile"
#: 2.x: a limit set by an external system (an EMS), which the CSMS can neither replace nor clear
#: (2.0.1 K01.FR.05; K10)
EXTERNAL_CONSTRAINTS = "ChargingStationExternalConstraints"


class ProfileSource(enum.StrEnum):
    BALANCING = "balancing"
    OPERATOR = "operator"
    REPORT = "report"


@dataclass(frozen=True, slots=True)
class _Shape:
    """How one version spells a profile's place and id."""

    prefix: str
    scope_field: str
    id_field: str
    is_2x: bool


_V16 = _Shape("C", "connectorId", "chargingProfileId", is_2x=False)
_V2 = _Shape("E", "evseId", "id", is_2x=True)


def scope_label(shape_prefix: str, number: Any) -> str:
    """``C1`` (1.6 connector 1), ``E0`` (2.x: the whole station)."""
    return f"{shape_prefix}{number}"


def profile_key(scope: str, charging_profile_id: Any) -> str:
    return f"{scope}#{charging_profile_id}"


def _scope_of(record: Mapping[str, Any]) -> str:
    return str(record.get("profileKey") or "").partition("#")[0]


def _accepted(response: Any) -> bool:
    return isinstance(response, Mapping) and response.get("status") == ACCEPTED


def _set_request(request: Mapping[str, Any]) -> tuple[_Shape, Any, Mapping[str, Any]] | None:
    """(shape, connector / EVSE id, profile) of a SetChargingProfile request of either version:
    1.6 ``{connectorId, csChargingProfiles}``, 2.x ``{evseId, chargingProfile}``."""
    for shape, field in ((_V16, "csChargingProfiles"), (_V2, "chargingProfile")):
        profile = request.get(field)
        if isinstance(profile, Mapping) and shape.scope_field in request:
            return shape, request[shape.scope_field], profile
    return None


def _record(shape: _Shape, number: Any, profile: Mapping[str, Any], source: ProfileSource) -> dict[str, Any]:
    record: dict[str, Any] = {
        "chargingProfileId": profile.get(shape.id_field),
        shape.scope_field: number,
        "stackLevel": profile.get("stackLevel"),
        "chargingProfilePurpose": profile.get("chargingProfilePurpose"),
        "chargingProfileKind": profile.get("chargingProfileKind"),
        "chargingProfile": dict(profile),
        "source": source.value,
    }
    if profile.get("transactionId") is not None:
        record["transactionId"] = profile["transactionId"]
    return record


def _validity(profile: Any) -> tuple[float, float]:
    """``[validFrom, validTo)`` in epoch ms; an absent bound is open."""
    profile = profile if isinstance(profile, Mapping) else {}
    start, end = parse_ms(profile.get("validFrom")), parse_ms(profile.get("validTo"))
    return (float("-inf") if start is None else start, float("inf") if end is None else end)


def _overlap(a: Any, b: Any) -> bool:
    (a_start, a_end), (b_start, b_end) = _validity(a), _validity(b)
    return a_start < b_end and b_start < a_end


def _replaced(old: Mapping[str, Any], new: Mapping[str, Any], scope: str, shape: _Shape) -> bool:
    """Whether the charger no longer has ``old`` once it accepted ``new`` (on ``scope``).

    1.6 §5.16 (during and outside a transaction): "If a charging profile with the same chargingProfileId, or the same
    combination of stackLevel / ChargingProfilePurpose, exists on the Charge Point, the new
    charging profile SHALL replace the existing charging profile" (on the same connector).
    2.0.1 K01.FR.05: a SetChargingProfileRequest with an already known ChargingProfile.id
    replaces that profile (unless it is a ChargingStationExternalConstraints one). 2.x does not
    replace by stack level: K01.FR.06 forbids the CSMS to send a non-TxProfile with the
    stackLevel / purpose / evseId of another one "with an overlapping validity period" (K01.FR.39
    likewise a TxProfile with the stackLevel of another one of its transaction). Accepted anyway,
    the other one is not in force any more; with validity periods apart, both stay installed.
    """
    if shape.is_2x and old.get("chargingProfilePurpose") == EXTERNAL_CONSTRAINTS:
        return False
    if old.get("chargingProfileId") == new["chargingProfileId"]:
        return True
    same_slot = (
        _scope_of(old) == scope
        and old.get("chargingProfilePurpose") == new["chargingProfilePurpose"]
        and old.get("stackLevel") == new["stackLevel"]
    )
    if not same_slot or not shape.is_2x:
        return same_slot
    # A TxProfile on the same EVSE at that level is of this transaction, or of one that ended.
    return new["chargingProfilePurpose"] == TX_PROFILE or _overlap(old.get("chargingProfile"), new["chargingProfile"])


def set_charging_profile_result(
    store: StateStore, now_ms: int, charge_point_id: str, request: Mapping[str, Any], response: Any
) -> None:
    """SetChargingProfile ``Accepted``: the profile is installed, the ones it replaces are gone."""
    if not _accepted(response):
        return
    parsed = _set_request(request)
    if parsed is None:
        return
    shape, number, profile = parsed
    profile_id = profile.get(shape.id_field)
    source = ProfileSource.BALANCING if is_balancing_profile(profile_id) else ProfileSource.OPERATOR
    record = {**_record(shape, number, profile, source), "installedAt": now_ms}
    scope = scope_label(shape.prefix, number)
    key = profile_key(scope, profile_id)
    store.put_charging_profile(charge_point_id, key, record, now_ms)
    replaced = [
        str(old["profileKey"])
        for old in store.list_charging_profiles(charge_point_id)
        if old.get("profileKey") != key and _replaced(old, record, scope, shape)
    ]
    if replaced:
        store.delete_charging_profiles(charge_point_id, replaced)


def _clear_matcher(request: Mapping[str, Any]) -> Callable[[Record], bool]:
    """Which stored profiles a ClearChargingProfile request names.

    1.6 §5.5 and 2.0.1 K10 alike: "either a specific charging profile (denoted by id) or a
    selection of charging profiles that match with the values of the optional" connector / EVSE,
    stackLevel and chargingProfilePurpose fields: an id names its profile whatever the criteria
    (K10.FR.03); each given criterion must match; none given clears every profile. A 2.x
    ChargingStationExternalConstraints profile is never cleared by the CSMS.
    """
    criteria: Mapping[str, Any]
    if "chargingProfileId" in request or "chargingProfileCriteria" in request:  # 2.x
        profile_id = request.get("chargingProfileId")
        found = request.get("chargingProfileCriteria")
        criteria = found if isinstance(found, Mapping) else {}
    else:  # 1.6: the criteria are the request's own fields ({} is both versions' "all")
        profile_id, criteria = request.get("id"), request
    scope: str | None = None
    for shape in (_V16, _V2):
        if criteria.get(shape.scope_field) is not None:
            scope = scope_label(shape.prefix, criteria[shape.scope_field])
    wanted = {
        name: criteria[name] for name in ("chargingProfilePurpose", "stackLevel") if criteria.get(name) is not None
    }

    def matches(record: Record) -> bool:
        if record.get("chargingProfilePurpose") == EXTERNAL_CONSTRAINTS:
            return False
        if profile_id is not None:
            return bool(record.get("chargingProfileId") == profile_id)
        if scope is not None and _scope_of(record) != scope:
            return False
        return all(record.get(name) == value for name, value in wanted.items())

    return matches


def clear_charging_profile_result(
    store: StateStore, now_ms: int, charge_point_id: str, request: Mapping[str, Any], response: Any
) -> None:
    """ClearChargingProfile ``Accepted``: the profiles it names are gone (``Unknown``: none was there)."""
    if not _accepted(response):
        return
    matches = _clear_matcher(request)
    cleared = [str(r["profileKey"]) for r in store.list_charging_profiles(charge_point_id) if matches(r)]
    if cleared:
        store.delete_charging_profiles(charge_point_id, cleared)


def composite_schedule_result(
    store: StateStore, now_ms: int, charge_point_id: str, request: Mapping[str, Any], response: Any
) -> None:
    """GetCompositeSchedule ``Accepted``: the schedule the charger computed, one per connector / EVSE
    (the latest replaces the previous one)."""
    if not _accepted(response):
        return
    shape = _V16 if "connectorId" in request else _V2
    label = scope_label(shape.prefix, request.get(shape.scope_field))
    store.put_composite_schedule(
        charge_point_id, label, {"request": dict(request), "response": response, "receivedAt": now_ms}
    )


def report_charging_profiles(ctx: CallContext, payload: Mapping[str, Any]) -> None:
    """2.x ReportChargingProfiles (K09): each reported profile, as the charger has it.

    Keyed by EVSE and id and observed at the frame's receive time, so a redelivered frame writes
    the same records again (or, being no later, nothing), and an older report never overwrites
    what a later answer or report said.
    """
    evse = payload.get("evseId")
    for profile in payload.get("chargingProfile") or []:
        if not isinstance(profile, Mapping):
            continue
        record = {
            **_record(_V2, evse, profile, ProfileSource.REPORT),
            "chargingLimitSource": payload.get("chargingLimitSource"),
            "requestId": payload.get("requestId"),
            "reportedAt": ctx.received_at_ms,
        }
        key = profile_key(scope_label(_V2.prefix, evse), profile.get(_V2.id_field))
        ctx.store.put_charging_profile(ctx.charge_point_id, key, record, ctx.received_at_ms)
