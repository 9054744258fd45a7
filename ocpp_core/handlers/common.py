"""What the handlers of every version share: registration, authorization, meter readings."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..config import UnknownChargerPolicy
from ..context import CallContext
from ..timefmt import parse_ms

#: Operator-set registration states (``PUT /chargers/{id}`` ``registrationStatus``).
REGISTRATION_STATES = ("Accepted", "Pending", "Rejected")

_POLICY_STATUS = {
    UnknownChargerPolicy.ACCEPT: "Accepted",
    UnknownChargerPolicy.PENDING: "Pending",
    UnknownChargerPolicy.REJECT: "Rejected",
}


def registration_decision(ctx: CallContext) -> tuple[str, Mapping[str, Any] | None]:
    """Accepted / Pending / Rejected for a BootNotification: the registry decides.

    A charger is in the registry once an operator registered it (``registered``) or it was
    accepted on the fly under the ``accept`` policy. Otherwise the unknown-charger policy applies.
    """
    charger = ctx.store.get_charger(ctx.charge_point_id)
    if charger is not None and charger.get("registered"):
        status = charger.get("registrationStatus") or "Accepted"
        return (status if status in REGISTRATION_STATES else "Accepted"), charger
    return _POLICY_STATUS[ctx.config.unknown_chargers], charger


def record_boot(
    ctx: CallContext, status: str, charger: Mapping[str, Any] | None, boot: dict[str, Any], interval: int
) -> None:
    changes: dict[str, Any] = {
        "chargePointId": ctx.charge_point_id,
        "boot": boot,
        "bootStatus": status,
        "bootAt": ctx.now_ms,
        "protocol": ctx.version.value,
        "lastSeen": ctx.now_ms,
        "heartbeatInterval": interval,
    }
    known = charger is not None and charger.get("registered")
    if status == "Accepted" and not known:
        changes.update(registered=True, autoRegistered=True, registeredAt=ctx.now_ms)
    if status == "Rejected" and charger is None:
        return  # an unknown charger that is refused leaves no trace in the registry
    if charger is None:
        changes["createdAt"] = ctx.now_ms
    ctx.store.update_charger(ctx.charge_point_id, changes)


def token_status(ctx: CallContext, token: str) -> tuple[str, Mapping[str, Any] | None]:
    """The authorization status of an id tag / id token: unknown is Invalid; expiry is checked."""
    record = ctx.store.get_id_token(token)
    if record is None:
        return "Invalid", None
    status = record.get("status") or "Accepted"
    expiry = parse_ms(record.get("expiryDate"))
    if status == "Accepted" and expiry is not None and expiry <= ctx.now_ms:
        status = "Expired"
    return str(status), record


def record_event(ctx: CallContext, kind: str, payload: Any) -> None:
    ctx.store.put_event(
        ctx.charge_point_id,
        kind,
        ctx.unique_id,
        ctx.now_ms,
        {
            "chargePointId": ctx.charge_point_id,
            "kind": kind,
            "uniqueId": ctx.unique_id,
            "receivedAt": ctx.received_at_ms,
            "protocol": ctx.version.value,
            "payload": payload,
        },
        ctx.event_expiry_s(),
    )


def _to_number(value: Any) -> float | None:
    """A finite float, or None: JSON integers beyond float range and 1e400 (inf) are no reading."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


_UNIT_SCALE = {"Wh": 1.0, "kWh": 1000.0, "MWh": 1_000_000.0}


def energy_register_wh(meter_values: Iterable[Any], *, v16: bool) -> float | None:
    """The last Energy.Active.Import.Register reading, in Wh, from a list of MeterValue.

    1.6 sampledValue: ``value`` is a string, ``unit`` default Wh, measurand default the register.
    2.x sampledValue: ``value`` is a number, ``unitOfMeasure.unit`` default Wh with
    ``multiplier`` (power of ten). Values with phases or in other measurands are skipped.
    """
    found: float | None = None
    for meter_value in meter_values if isinstance(meter_values, list) else []:
        if not isinstance(meter_value, Mapping):
            continue
        for sample in meter_value.get("sampledValue") or []:
            if not isinstance(sample, Mapping):
                continue
            if sample.get("measurand", "Energy.Active.Import.Register") != "Energy.Active.Import.Register":
                continue
            if sample.get("phase") is not None:
                continue
            value = _to_number(sample.get("value"))
            if value is None:
                continue
            if v16:
                scale = _UNIT_SCALE.get(str(sample.get("unit", "Wh")))
            else:
                unit = sample.get("unitOfMeasure") or {}
                scale = _UNIT_SCALE.get(str(unit.get("unit", "Wh")))
                multiplier = unit.get("multiplier", 0)
                if scale is not None and isinstance(multiplier, int) and -9 <= multiplier <= 9:
                    scale *= 10.0**multiplier
            if scale is None or not math.isfinite(value * scale):
                continue
            found = value * scale
    return found


def energy_used(meter_start: Any, meter_stop: Any) -> float | None:
    start, stop = _to_number(meter_start), _to_number(meter_stop)
    if start is None or stop is None or stop < start:
        return None
    return stop - start


def whole(number: float | None) -> int | float | None:
    """Store integral readings as ints (Wh registers usually are)."""
    if number is None:
        return None
    return int(number) if float(number).is_integer() else number
