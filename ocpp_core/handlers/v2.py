"""OCPP 2.0.1 and 2.1 charger-initiated actions.

2.1 is a superset of 2.0.1 for what a CSMS receives; the 2.1-only actions are at the end.
Actions without CSMS-side logic are recorded (``EVT#`` items) and answered with what the
specification says a CSMS that has no more to add answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..context import CallContext
from ..extensions import Handler
from .common import (
    energy_register_wh,
    energy_used,
    record_boot,
    record_event,
    registration_decision,
    token_status,
    whole,
)

_V2_AUTH = {
    "Accepted",
    "Blocked",
    "ConcurrentTx",
    "Expired",
    "Invalid",
    "NoCredit",
    "NotAllowedTypeEVSE",
    "NotAtThisLocation",
    "NotAtThisTime",
    "Unknown",
}


def id_token_info(ctx: CallContext, id_token: Mapping[str, Any]) -> dict[str, Any]:
    token = id_token.get("idToken", "")
    if id_token.get("type") == "NoAuthorization":
        return {"status": "Accepted"}  # free vending / no authorization needed (C01)
    status, record = token_status(ctx, token)
    info: dict[str, Any] = {"status": status if status in _V2_AUTH else "Invalid"}
    if record is not None:
        expiry = record.get("expiryDate")
        if isinstance(expiry, str):
            info["cacheExpiryDateTime"] = expiry
        parent = record.get("parentIdTag")
        if isinstance(parent, str) and 0 < len(parent) <= 36:
            info["groupIdToken"] = {"idToken": parent, "type": "Central"}
    return info


def boot_notification(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    status, charger = registration_decision(ctx)
    interval = ctx.config.heartbeat_interval_s if status == "Accepted" else ctx.config.boot_retry_interval_s
    boot = dict(payload.get("chargingStation") or {})
    boot["reason"] = payload.get("reason")
    record_boot(ctx, status, charger, boot, interval)
    return {"status": status, "currentTime": ctx.now_iso, "interval": interval}


def heartbeat(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": ctx.now_iso}


def status_notification(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    evse, connector = payload["evseId"], payload["connectorId"]
    ctx.store.put_status(
        ctx.charge_point_id,
        f"E{evse}C{connector}",
        {
            "chargePointId": ctx.charge_point_id,
            "evseId": evse,
            "connectorId": connector,
            "status": payload["connectorStatus"],
            "timestamp": payload["timestamp"],
            "updatedAt": ctx.now_ms,
        },
    )
    return {}


def authorize(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {"idTokenInfo": id_token_info(ctx, payload["idToken"])}


def transaction_event(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """TransactionEvent Started / Updated / Ended (E01-E15), keyed by the station's transaction id.

    Events may arrive out of order (queued while offline): every event upserts, the first
    energy reading seen is the start, the last one the stop, ``seqNo`` is tracked.
    """
    info = payload["transactionInfo"]
    tx_key = info["transactionId"]
    event = payload["eventType"]
    existing = ctx.store.get_transaction(ctx.charge_point_id, tx_key) or {}
    changes: dict[str, Any] = {
        "chargePointId": ctx.charge_point_id,
        "transactionId": tx_key,
        "protocol": ctx.version.value,
        "lastEventType": event,
        "lastTriggerReason": payload["triggerReason"],
        "lastEventAt": payload["timestamp"],
        "updatedAt": ctx.now_ms,
    }
    seq = payload["seqNo"]
    latest = seq >= int(existing.get("lastSeqNo", -1))
    if latest:
        changes["lastSeqNo"] = seq
    evse = payload.get("evse")
    if isinstance(evse, Mapping):
        changes["evseId"] = evse.get("id")
        if "connectorId" in evse:
            changes["connectorId"] = evse["connectorId"]
    for source in ("chargingState", "remoteStartId", "timeSpentCharging"):
        if source in info:
            changes[source] = info[source]
    if payload.get("offline"):
        changes["offlineEvents"] = int(existing.get("offlineEvents", 0)) + 1

    response: dict[str, Any] = {}
    id_token = payload.get("idToken")
    if isinstance(id_token, Mapping):
        token_info = id_token_info(ctx, id_token)
        changes["idToken"] = id_token.get("idToken")
        changes["idTokenType"] = id_token.get("type")
        changes["authorizationStatus"] = token_info["status"]
        # "idTokenInfo ... SHALL be sent when the request contained an idToken" (E01.FR.?/E03).
        response["idTokenInfo"] = token_info

    meter = payload.get("meterValue")
    reading = energy_register_wh(meter, v16=False) if meter else None
    if meter:
        ctx.store.put_meter_values(
            ctx.charge_point_id,
            ctx.unique_id,
            ctx.now_ms,
            {
                "chargePointId": ctx.charge_point_id,
                "transactionId": tx_key,
                "evseId": changes.get("evseId"),
                "meterValue": meter,
                "receivedAt": ctx.received_at_ms,
            },
        )
    meter_start = existing.get("meterStart")
    if reading is not None:
        if meter_start is None or event == "Started":
            meter_start = whole(reading)
            changes["meterStart"] = meter_start
        # An older event delivered late (lower seqNo) does not move the last reading back.
        if latest or existing.get("meterLast") is None:
            changes["meterLast"] = whole(reading)
        used = energy_used(meter_start, changes.get("meterLast", existing.get("meterLast")))
        if used is not None:
            changes["energyWh"] = whole(used)

    if event == "Started" or "startedAt" not in existing:
        if event == "Started":
            changes["startTimestamp"] = payload["timestamp"]
            changes["startedAt"] = ctx.now_ms
        if existing.get("status") != "Completed":
            changes["status"] = "Active"
    if event == "Ended":
        changes["status"] = "Completed"
        changes["stopTimestamp"] = payload["timestamp"]
        changes["stoppedAt"] = ctx.now_ms
        changes["stopReason"] = info.get("stoppedReason", "Local")  # "Local" is the spec's default
        if reading is not None:
            changes["meterStop"] = whole(reading)
    ctx.store.update_transaction(ctx.charge_point_id, tx_key, changes)
    return response


def meter_values(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    ctx.store.put_meter_values(
        ctx.charge_point_id,
        ctx.unique_id,
        ctx.now_ms,
        {
            "chargePointId": ctx.charge_point_id,
            "evseId": payload["evseId"],
            "transactionId": None,
            "meterValue": payload["meterValue"],
            "receivedAt": ctx.received_at_ms,
        },
    )
    return {}


def notify_report(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """B07/B08: keep the report, and the Actual values as the charger's variables."""
    record_event(ctx, "NotifyReport", payload)
    values: dict[str, Any] = {}
    for item in payload.get("reportData") or []:
        key = variable_key(item.get("component") or {}, item.get("variable") or {})
        for attribute in item.get("variableAttribute") or []:
            if attribute.get("type", "Actual") == "Actual" and "value" in attribute:
                values[key] = attribute["value"]
    if values:
        charger = ctx.store.get_charger(ctx.charge_point_id) or {}
        merged = dict(charger.get("variables") or {})
        merged.update(values)
        ctx.store.update_charger(ctx.charge_point_id, {"variables": merged, "variablesAt": ctx.now_ms})
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


def data_transfer(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Recorded; Accepted for a vendor in ``config.data_transfer_vendors`` (an extension's hook or
    handler, ``@extensions.on("DataTransfer")``, acts on it), else UnknownVendorId."""
    record_event(ctx, "DataTransfer", payload)
    accepted = payload["vendorId"] in ctx.config.data_transfer_vendors
    return {"status": "Accepted" if accepted else "UnknownVendorId"}


def get_certificate_chain_status(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """2.1 M06: no OCSP/CRL client here, so each certificate's status is reported Failed."""
    record_event(ctx, "GetCertificateChainStatus", payload)
    return {
        "certificateStatus": [
            {
                "certificateHashData": request["certificateHashData"],
                "source": request["source"],
                "status": "Failed",
                "nextUpdate": ctx.now_iso,
            }
            for request in payload["certificateStatusRequests"]
        ]
    }


def vat_number_validation(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    record_event(ctx, "VatNumberValidation", payload)
    # No VAT registry is wired in: refuse rather than vouch for a number we cannot check.
    response: dict[str, Any] = {"vatNumber": payload["vatNumber"], "status": "Rejected"}
    if "evseId" in payload:
        response["evseId"] = payload["evseId"]
    return response


def _recorder(kind: str, response: dict[str, Any] | None = None, charger_field: str | None = None) -> Handler:
    answer = response or {}

    def handle(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
        record_event(ctx, kind, payload)
        if charger_field is not None and "status" in payload:
            ctx.store.update_charger(
                ctx.charge_point_id, {charger_field: payload["status"], charger_field + "At": ctx.now_ms}
            )
        return dict(answer)

    handle.__name__ = handle.__qualname__ = f"record_{kind}"
    return handle


HANDLERS_V201: dict[str, Handler] = {
    "Authorize": authorize,
    "BootNotification": boot_notification,
    "ClearedChargingLimit": _recorder("ClearedChargingLimit"),
    "DataTransfer": data_transfer,
    "FirmwareStatusNotification": _recorder("FirmwareStatusNotification", charger_field="firmwareStatus"),
    # No ISO 15118 PKI is wired in: the EXI request is kept and answered Failed (M02/M03).
    "Get15118EVCertificate": _recorder("Get15118EVCertificate", {"status": "Failed", "exiResponse": ""}),
    # No OCSP responder is wired in (M06).
    "GetCertificateStatus": _recorder("GetCertificateStatus", {"status": "Failed"}),
    "Heartbeat": heartbeat,
    "LogStatusNotification": _recorder("LogStatusNotification", charger_field="logStatus"),
    "MeterValues": meter_values,
    "NotifyChargingLimit": _recorder("NotifyChargingLimit"),
    "NotifyCustomerInformation": _recorder("NotifyCustomerInformation"),
    "NotifyDisplayMessages": _recorder("NotifyDisplayMessages"),
    # No smart-charging engine computes schedules here, so the needs are kept, no profile promised.
    "NotifyEVChargingNeeds": _recorder("NotifyEVChargingNeeds", {"status": "Rejected"}),
    "NotifyEVChargingSchedule": _recorder("NotifyEVChargingSchedule", {"status": "Accepted"}),
    "NotifyEvent": _recorder("NotifyEvent"),
    "NotifyMonitoringReport": _recorder("NotifyMonitoringReport"),
    "NotifyReport": notify_report,
    "PublishFirmwareStatusNotification": _recorder("PublishFirmwareStatusNotification"),
    "ReportChargingProfiles": _recorder("ReportChargingProfiles"),
    "ReservationStatusUpdate": _recorder("ReservationStatusUpdate"),
    "SecurityEventNotification": _recorder("SecurityEventNotification"),
    # The CSR is kept for the operator's CA; the signed chain goes back with CertificateSigned (A02).
    "SignCertificate": _recorder("SignCertificate", {"status": "Accepted"}),
    "StatusNotification": status_notification,
    "TransactionEvent": transaction_event,
}

HANDLERS_V21: dict[str, Handler] = {
    **HANDLERS_V201,
    "NotifyEVChargingNeeds": _recorder("NotifyEVChargingNeeds", {"status": "NoChargingProfile"}),
    "BatterySwap": _recorder("BatterySwap"),
    "ClosePeriodicEventStream": _recorder("ClosePeriodicEventStream"),
    "GetCertificateChainStatus": get_certificate_chain_status,
    "NotifyDERAlarm": _recorder("NotifyDERAlarm"),
    "NotifyDERStartStop": _recorder("NotifyDERStartStop"),
    "NotifyPeriodicEventStream": _recorder("NotifyPeriodicEventStream"),  # SEND: the answer is not sent
    "NotifyPriorityCharging": _recorder("NotifyPriorityCharging"),
    "NotifySettlement": _recorder("NotifySettlement"),
    "OpenPeriodicEventStream": _recorder("OpenPeriodicEventStream", {"status": "Accepted"}),
    # No dynamic schedule is kept here (K28): nothing newer to hand out.
    "PullDynamicScheduleUpdate": _recorder("PullDynamicScheduleUpdate", {"status": "Rejected"}),
    "ReportDERControl": _recorder("ReportDERControl"),
    "VatNumberValidation": vat_number_validation,
}
