"""OCPP 1.6 charger-initiated actions (core profiles and the 1.6 security whitepaper)."""

from __future__ import annotations

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

_V16_AUTH = {"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"}


def id_tag_info(ctx: CallContext, id_tag: str) -> dict[str, Any]:
    status, record = token_status(ctx, id_tag)
    info: dict[str, Any] = {"status": status if status in _V16_AUTH else "Blocked"}
    if record is not None:
        expiry = record.get("expiryDate")
        if isinstance(expiry, str):
            info["expiryDate"] = expiry
        parent = record.get("parentIdTag")
        if isinstance(parent, str) and 0 < len(parent) <= 20:
            info["parentIdTag"] = parent
    return info


def boot_notification(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    status, charger = registration_decision(ctx)
    interval = ctx.config.heartbeat_interval_s if status == "Accepted" else ctx.config.boot_retry_interval_s
    record_boot(ctx, status, charger, dict(payload), interval)
    return {"status": status, "currentTime": ctx.now_iso, "interval": interval}


def heartbeat(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {"currentTime": ctx.now_iso}


def status_notification(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    connector = payload["connectorId"]
    record = {
        "chargePointId": ctx.charge_point_id,
        "connectorId": connector,
        "status": payload["status"],
        "errorCode": payload["errorCode"],
        "timestamp": payload.get("timestamp") or ctx.now_iso,
        "updatedAt": ctx.now_ms,
    }
    for key in ("info", "vendorId", "vendorErrorCode"):
        if key in payload:
            record[key] = payload[key]
    ctx.store.put_status(ctx.charge_point_id, f"C{connector}", record)
    return {}


def authorize(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    return {"idTagInfo": id_tag_info(ctx, payload["idTag"])}


def start_transaction(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    info = id_tag_info(ctx, payload["idTag"])
    # Even a refused id tag gets a transaction id: the charger needs one to stop it (1.6 §5.19).
    transaction_id = ctx.store.next_transaction_id()
    record: dict[str, Any] = {
        "chargePointId": ctx.charge_point_id,
        "transactionId": str(transaction_id),
        "protocol": ctx.version.value,
        "connectorId": payload["connectorId"],
        "idTag": payload["idTag"],
        "authorizationStatus": info["status"],
        "meterStart": payload["meterStart"],
        "startTimestamp": payload["timestamp"],
        "startedAt": ctx.now_ms,
        "status": "Active",
    }
    if "reservationId" in payload:
        record["reservationId"] = payload["reservationId"]
    ctx.store.update_transaction(ctx.charge_point_id, str(transaction_id), record)
    ctx.notes["transactionId"] = transaction_id
    return {"transactionId": transaction_id, "idTagInfo": info}


def meter_values(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    transaction_id = payload.get("transactionId")
    tx_key = str(transaction_id) if transaction_id is not None else None
    ctx.store.put_meter_values(
        ctx.charge_point_id,
        ctx.unique_id,
        ctx.now_ms,
        {
            "chargePointId": ctx.charge_point_id,
            "connectorId": payload["connectorId"],
            "transactionId": tx_key,
            "meterValue": payload["meterValue"],
            "receivedAt": ctx.received_at_ms,
        },
    )
    reading = energy_register_wh(payload["meterValue"], v16=True)
    if tx_key is not None and reading is not None:
        transaction = ctx.store.get_transaction(ctx.charge_point_id, tx_key)
        if transaction is not None and transaction.get("status") == "Active":
            changes: dict[str, Any] = {"meterLast": whole(reading), "meterLastAt": ctx.now_ms}
            used = energy_used(transaction.get("meterStart"), reading)
            if used is not None:
                changes["energyWh"] = whole(used)
            ctx.store.update_transaction(ctx.charge_point_id, tx_key, changes)
    return {}


def stop_transaction(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    tx_key = str(payload["transactionId"])
    transaction = ctx.store.get_transaction(ctx.charge_point_id, tx_key)
    changes: dict[str, Any] = {
        "meterStop": payload["meterStop"],
        "stopTimestamp": payload["timestamp"],
        "stoppedAt": ctx.now_ms,
        "status": "Completed",
    }
    for source, target in (("reason", "stopReason"), ("idTag", "stopIdTag")):
        if source in payload:
            changes[target] = payload[source]
    if transaction is None:
        # Accepted all the same: a charger that gets an error retries forever (1.6 §4.10),
        # so the stop is kept, marked as belonging to no transaction we know.
        changes.update(
            chargePointId=ctx.charge_point_id,
            transactionId=tx_key,
            protocol=ctx.version.value,
            unknownTransaction=True,
        )
    else:
        used = energy_used(transaction.get("meterStart"), payload["meterStop"])
        if used is not None:
            changes["energyWh"] = whole(used)
    if payload.get("transactionData"):
        ctx.store.put_meter_values(
            ctx.charge_point_id,
            ctx.unique_id,
            ctx.now_ms,
            {
                "chargePointId": ctx.charge_point_id,
                "transactionId": tx_key,
                "meterValue": payload["transactionData"],
                "receivedAt": ctx.received_at_ms,
            },
        )
    ctx.store.update_transaction(ctx.charge_point_id, tx_key, changes)
    response: dict[str, Any] = {}
    if "idTag" in payload:
        response["idTagInfo"] = id_tag_info(ctx, payload["idTag"])
    return response


def data_transfer(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Recorded; Accepted for a vendor in ``config.data_transfer_vendors`` (an extension's hook or
    handler, ``@extensions.on("DataTransfer")``, acts on it), else UnknownVendorId."""
    record_event(ctx, "DataTransfer", payload)
    accepted = payload["vendorId"] in ctx.config.data_transfer_vendors
    return {"status": "Accepted" if accepted else "UnknownVendorId"}


def _recorder(kind: str, charger_field: str | None = None, response: dict[str, Any] | None = None) -> Handler:
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


HANDLERS: dict[str, Handler] = {
    "Authorize": authorize,
    "BootNotification": boot_notification,
    "DataTransfer": data_transfer,
    "DiagnosticsStatusNotification": _recorder("DiagnosticsStatusNotification", "diagnosticsStatus"),
    "FirmwareStatusNotification": _recorder("FirmwareStatusNotification", "firmwareStatus"),
    "Heartbeat": heartbeat,
    "MeterValues": meter_values,
    "StartTransaction": start_transaction,
    "StatusNotification": status_notification,
    "StopTransaction": stop_transaction,
    "SecurityEventNotification": _recorder("SecurityEventNotification"),
    # The CSR is kept for the operator's CA; the signed certificate goes back with CertificateSigned.
    "SignCertificate": _recorder("SignCertificate", response={"status": "Accepted"}),
    "LogStatusNotification": _recorder("LogStatusNotification", "logStatus"),
    "SignedFirmwareStatusNotification": _recorder("SignedFirmwareStatusNotification", "firmwareStatus"),
}
