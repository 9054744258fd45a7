"""What the handlers of every functional block share: routes, records, registration, tokens, meters.

Each block module (``provisioning``, ``authorization``, ``availability``, ``transactions``,
``firmware``, ``security``, ``smart_charging``, ``diagnostics``, ...) serves every OCPP version that
has its actions and exports ``ROUTES``, built with :func:`routes`. State writes follow the rules of
``ocpp_core.ports``: conditional, per attribute, keyed by the frame's digest, never read-modify-write.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..config import UnknownChargerPolicy
from ..context import CallContext
from ..extensions import Handler
from ..ports import ItemUpdate, Newer
from ..timefmt import parse_ms
from ..versions import OcppVersion

Routes = dict[OcppVersion, dict[str, Handler]]
#: attributes that only order writes (``<name>Order``, a status's ``order``): storage internals
ORDER_SUFFIX = "Order"
_V2 = (OcppVersion.V201, OcppVersion.V21)


def routes(
    *,
    every: Mapping[str, Handler] | None = None,
    v16: Mapping[str, Handler] | None = None,
    v2: Mapping[str, Handler] | None = None,
    v21: Mapping[str, Handler] | None = None,
) -> Routes:
    """A block's route table: ``every`` version, 1.6 only, 2.0.1 and 2.1, 2.1 only (wins over ``v2``)."""
    table: Routes = {version: dict(every or {}) for version in OcppVersion}
    table[OcppVersion.V16].update(v16 or {})
    for version in _V2:
        table[version].update(v2 or {})
    table[OcppVersion.V21].update(v21 or {})
    return table


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
    The record is the one the pipeline's ``touch_charger`` returned: no second read.
    """
    charger = ctx.charger
    if charger is not None and charger.get("registered"):
        status = charger.get("registrationStatus") or "Accepted"
        return (status if status in REGISTRATION_STATES else "Accepted"), charger
    return _POLICY_STATUS[ctx.config.unknown_chargers], charger


def record_boot(
    ctx: CallContext, status: str, charger: Mapping[str, Any] | None, boot: dict[str, Any], interval: int
) -> None:
    """The boot upsert, ordered by the bridge's receive time: a late retry of an older boot changes nothing."""
    if status == "Rejected" and charger is None:
        return  # an unknown charger that is refused leaves no trace in the registry
    changes: dict[str, Any] = {
        "boot": boot,
        "bootStatus": status,
        "protocol": ctx.version.value,
        "heartbeatInterval": interval,
        "bootAt": ctx.received_at_ms,
    }
    known = charger is not None and charger.get("registered")
    if status == "Accepted" and not known:
        changes.update(registered=True, autoRegistered=True, registeredAt=ctx.received_at_ms)
    ctx.store.update_charger_fields(
        ctx.charge_point_id,
        ItemUpdate(
            set=changes,
            # A charger the boot creates has no lastSeen yet (the pipeline's touch found nothing): set
            # it here, so that a redelivery of that first boot, whose touch now succeeds, changes nothing.
            set_if_absent={"lastSeen": ctx.received_at_ms},
            newer=Newer("bootOrder", ctx.order_key),
        ),
    )


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
    """Keep what the charger reported, under the frame's digest (a redelivery overwrites it)."""
    ctx.store.put_event(
        ctx.charge_point_id,
        kind,
        ctx.frame_digest,
        {
            "chargePointId": ctx.charge_point_id,
            "kind": kind,
            "uniqueId": ctx.unique_id,
            "connectionId": ctx.connection_id,
            "receivedAt": ctx.received_at_ms,
            "protocol": ctx.version.value,
            "payload": payload,
        },
        ctx.event_expiry_s(),
    )


def set_charger_status(ctx: CallContext, name: str, value: Any) -> None:
    """A status the charger reports about itself (``firmwareStatus``...), the latest received wins."""
    ctx.store.update_charger_fields(
        ctx.charge_point_id,
        ItemUpdate(set={name: value, name + "At": ctx.received_at_ms}, newer=Newer(name + ORDER_SUFFIX, ctx.order_key)),
    )


def recorder(kind: str, response: Mapping[str, Any] | None = None, *, charger_field: str | None = None) -> Handler:
    """A handler that keeps the request (``EVT#``) and answers ``response``; with ``charger_field``,
    the request's ``status`` also becomes that attribute of the charger."""
    answer = dict(response or {})

    def handle(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
        record_event(ctx, kind, payload)
        if charger_field is not None and "status" in payload:
            set_charger_status(ctx, charger_field, payload["status"])
        return dict(answer)

    handle.__name__ = handle.__qualname__ = f"record_{kind}"
    return handle


def timestamp_ms(ctx: CallContext, value: Any) -> int:
    """A charger-reported time in epoch ms, or the bridge's receive time when absent or unreadable."""
    parsed = parse_ms(value)
    return parsed if parsed is not None else ctx.received_at_ms


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


def latest_sample_ms(ctx: CallContext, meter_values: Any) -> int:
    """The newest ``timestamp`` of a list of MeterValue (the order of readings), else receive time."""
    times = [
        parsed
        for meter_value in (meter_values if isinstance(meter_values, list) else [])
        if isinstance(meter_value, Mapping) and (parsed := parse_ms(meter_value.get("timestamp"))) is not None
    ]
    return max(times) if times else ctx.received_at_ms


def whole(number: float | None) -> int | float | None:
    """Store integral readings as ints (Wh registers usually are)."""
    if number is None:
        return None
    return int(number) if float(number).is_integer() else number
