"""Availability (OCPP 1.6 Core; 2.0.1 / 2.1 block G): connector and EVSE status.

A status is replaced only by a newer one: ordered by the charger's ``timestamp`` (optional in 1.6:
the bridge's receive time stands in), then the receive time, then the frame's digest, so equal
times are resolved the same way whatever the order of delivery. A late retry of an old
StatusNotification never overwrites the newer status.
"""

from __future__ import annotations

from typing import Any

from ..context import CallContext
from .common import routes, timestamp_ms


def status_order(ctx: CallContext, timestamp: Any) -> str:
    return f"{timestamp_ms(ctx, timestamp):015d}#{ctx.received_at_ms:015d}#{ctx.frame_digest}"


def status_notification(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = {"chargePointId": ctx.charge_point_id, "updatedAt": ctx.received_at_ms}
    if ctx.version.is_2x:
        evse, connector = payload["evseId"], payload["connectorId"]
        label = f"E{evse}C{connector}"
        record.update(
            evseId=evse, connectorId=connector, status=payload["connectorStatus"], timestamp=payload["timestamp"]
        )
    else:
        connector = payload["connectorId"]
        label = f"C{connector}"
        record.update(
            connectorId=connector,
            status=payload["status"],
            errorCode=payload["errorCode"],
            timestamp=payload.get("timestamp") or ctx.received_iso,
        )
        for key in ("info", "vendorId", "vendorErrorCode"):
            if key in payload:
                record[key] = payload[key]
    ctx.store.update_status(ctx.charge_point_id, label, record, status_order(ctx, payload.get("timestamp")))
    return {}


ROUTES = routes(every={"StatusNotification": status_notification})
