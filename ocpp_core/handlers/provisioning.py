"""Provisioning (OCPP 1.6 Core; 2.0.1 / 2.1 block B): boot, heartbeat, device model reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..context import CallContext
from .common import record_boot, record_event, registration_decision, routes

#: the charger map that NotifyReport and GetVariables results fill (``PUT`` of one key per variable)
VARIABLES = "variables"


def boot_notification(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """1.6 §4.2 / B01-B04. 1.6 sends the station's fields flat, 2.x nests them in ``chargingStation``."""
    status, charger = registration_decision(ctx)
    interval = ctx.config.heartbeat_interval_s if status == "Accepted" else ctx.config.boot_retry_interval_s
    if ctx.version.is_2x:
        boot = dict(payload.get("chargingStation") or {})
        boot["reason"] = payload.get("reason")
    else:
        boot = dict(payload)
    record_boot(ctx, status, charger, boot, interval)
    return {"status": status, "currentTime": ctx.received_iso, "interval": interval}


def heartbeat(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's ``touch_charger`` already moved ``lastSeen``: one write in all."""
    return {"currentTime": ctx.received_iso}


def notify_report(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """B07/B08: keep the report, and the Actual values as the charger's variables (key by key)."""
    record_event(ctx, "NotifyReport", payload)
    values: dict[str, Any] = {}
    for item in payload.get("reportData") or []:
        key = variable_key(item.get("component") or {}, item.get("variable") or {})
        for attribute in item.get("variableAttribute") or []:
            if attribute.get("type", "Actual") == "Actual" and "value" in attribute:
                values[key] = attribute["value"]
    if values:
        ctx.store.set_charger_map_entries(ctx.charge_point_id, VARIABLES, values)
    return {}


def variable_key(component: Mapping[str, Any], variable: Mapping[str, Any]) -> str:
    """``Component[.instance][@evse[.connector]]/Variable[.instance]``, e.g. ``OCPPCommCtrlr/HeartbeatInterval``."""
    key = str(component.get("name", ""))
    if component.get("instance"):
        key += "." + str(component["instance"])
    evse = component.get("evse")
    if isinstance(evse, Mapping) and "id" in evse:
        key += f"@{evse['id']}"
        if "connectorId" in evse:
            key += f".{evse['connectorId']}"
    key += "/" + str(variable.get("name", ""))
    if variable.get("instance"):
        key += "." + str(variable["instance"])
    return key


ROUTES = routes(
    every={"BootNotification": boot_notification, "Heartbeat": heartbeat},
    v2={"NotifyReport": notify_report},
)
