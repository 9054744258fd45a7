"""Payloads of the messages a station sends, per OCPP version. Pure: no I/O, no clock.

The station passes the timestamp in, so these functions are easy to test and always produce
the same payload for the same input. Field names follow OCPP 1.6 (core profile) and OCPP
2.0.1 / 2.1 part 2 (the 2.x messages are the same here unless noted).
"""

from __future__ import annotations

import time
from typing import Any

from ocpp_core.timefmt import format_ms
from ocpp_core.versions import OcppVersion

ENERGY = "Energy.Active.Import.Register"

#: OCPP 1.6 ChargePointStatus values (1.6 §7.7).
STATUS_V16 = frozenset(
    {
        "Available",
        "Preparing",
        "Charging",
        "SuspendedEVSE",
        "SuspendedEV",
        "Finishing",
        "Reserved",
        "Unavailable",
        "Faulted",
    }
)
#: OCPP 2.x ConnectorStatusEnumType values.
STATUS_V2 = frozenset({"Available", "Occupied", "Reserved", "Unavailable", "Faulted"})

# 1.6 has finer states than 2.x: every state "with a car attached" is Occupied in 2.x.
_V16_TO_V2 = {"Preparing": "Occupied", "Charging": "Occupied", "SuspendedEVSE": "Occupied", "SuspendedEV": "Occupied"}
_V16_TO_V2["Finishing"] = "Occupied"
_V2_TO_V16 = {"Occupied": "Charging"}

# 1.6 stop reasons that 2.x spells differently (ReasonEnumType).
_STOP_REASON_V2 = {"HardReset": "ImmediateReset", "SoftReset": "ImmediateReset", "UnlockCommand": "Other"}
# Which 2.x triggerReason goes with a stoppedReason in TransactionEvent Ended.
_TRIGGER_FOR_STOP = {
    "Local": "StopAuthorized",
    "Remote": "RemoteStop",
    "ImmediateReset": "ResetCommand",
    "DeAuthorized": "Deauthorized",
    "EVDisconnected": "EVCommunicationLost",
    "EnergyLimitReached": "EnergyLimitReached",
    "TimeLimitReached": "TimeLimitReached",
}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def timestamp(epoch_ms: int | None = None) -> str:
    """RFC 3339 UTC with ``Z``, millisecond precision (what every OCPP version accepts)."""
    return format_ms(now_ms() if epoch_ms is None else epoch_ms)


def connector_status(version: OcppVersion, status: str) -> str:
    """``status`` in the vocabulary of ``version``; either vocabulary is accepted."""
    if version.is_2x:
        return _V16_TO_V2.get(status, status)
    return _V2_TO_V16.get(status, status)


def stop_reason(version: OcppVersion, reason: str) -> str:
    return _STOP_REASON_V2.get(reason, reason) if version.is_2x else reason


def trigger_for_stop(reason: str) -> str:
    return _TRIGGER_FOR_STOP.get(reason, "AbnormalCondition")


def boot_notification(
    version: OcppVersion,
    vendor: str,
    model: str,
    *,
    reason: str = "PowerUp",
    serial_number: str | None = None,
    firmware_version: str | None = None,
) -> dict[str, Any]:
    if not version.is_2x:
        # 1.6 has no boot reason: every BootNotification is "I (re)started".
        payload: dict[str, Any] = {"chargePointVendor": vendor, "chargePointModel": model}
        if serial_number:
            payload["chargePointSerialNumber"] = serial_number
        if firmware_version:
            payload["firmwareVersion"] = firmware_version
        return payload
    station: dict[str, Any] = {"model": model, "vendorName": vendor}
    if serial_number:
        station["serialNumber"] = serial_number
    if firmware_version:
        station["firmwareVersion"] = firmware_version
    return {"chargingStation": station, "reason": reason}


def status_notification(version: OcppVersion, connector: int, status: str, ts: str) -> dict[str, Any]:
    if not version.is_2x:
        return {
            "connectorId": connector,
            "errorCode": "NoError",
            "status": connector_status(version, status),
            "timestamp": ts,
        }
    # One connector per EVSE in this simulator: connectorId is always 1 within the EVSE.
    return {
        "timestamp": ts,
        "connectorStatus": connector_status(version, status),
        "evseId": connector,
        "connectorId": 1,
    }


def id_token(token: str) -> dict[str, Any]:
    return {"idToken": token, "type": "ISO14443"}


def authorize(version: OcppVersion, token: str) -> dict[str, Any]:
    return {"idToken": id_token(token)} if version.is_2x else {"idTag": token}


def authorization_status(version: OcppVersion, response: dict[str, Any]) -> str | None:
    """The status in an Authorize / StartTransaction / TransactionEvent response, if any."""
    info = response.get("idTokenInfo" if version.is_2x else "idTagInfo")
    if isinstance(info, dict) and isinstance(info.get("status"), str):
        return str(info["status"])
    return None


def sampled_energy(version: OcppVersion, energy_wh: int, context: str) -> dict[str, Any]:
    if version.is_2x:
        return {"value": energy_wh, "context": context, "measurand": ENERGY, "unitOfMeasure": {"unit": "Wh"}}
    # 1.6 carries sampled values as strings.
    return {"value": str(energy_wh), "context": context, "measurand": ENERGY, "unit": "Wh"}


#: Measurands a station samples besides the energy register, with their unit.
UNITS = {"Current.Import": "A", "Power.Active.Import": "W", "Voltage": "V"}


def sampled_value(version: OcppVersion, measurand: str, value: float, context: str) -> dict[str, Any]:
    """One sampled value of ``measurand`` (a key of :data:`UNITS`), rounded to 0.1."""
    unit = UNITS[measurand]
    number = round(value, 1)
    if version.is_2x:
        return {"value": number, "context": context, "measurand": measurand, "unitOfMeasure": {"unit": unit}}
    return {"value": f"{number:g}", "context": context, "measurand": measurand, "unit": unit}


def meter_value(
    version: OcppVersion,
    energy_wh: int,
    context: str,
    ts: str,
    extra: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A MeterValue: the energy register, then ``extra`` (measurand -> value) if any."""
    sampled = [sampled_energy(version, energy_wh, context)]
    for measurand, value in (extra or {}).items():
        sampled.append(sampled_value(version, measurand, value, context))
    return {"timestamp": ts, "sampledValue": sampled}


def meter_values(
    version: OcppVersion,
    connector: int,
    energy_wh: int,
    ts: str,
    *,
    transaction_id: int | None = None,
    context: str = "Sample.Periodic",
    extra: dict[str, float] | None = None,
) -> dict[str, Any]:
    """MeterValues (1.6 with an optional transaction, 2.x outside a transaction)."""
    sample = [meter_value(version, energy_wh, context, ts, extra)]
    if version.is_2x:
        return {"evseId": connector, "meterValue": sample}
    payload: dict[str, Any] = {"connectorId": connector, "meterValue": sample}
    if transaction_id is not None:
        payload["transactionId"] = transaction_id
    return payload


def start_transaction_v16(
    connector: int, id_tag: str, meter_start: int, ts: str, reservation_id: int | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {"connectorId": connector, "idTag": id_tag, "meterStart": meter_start, "timestamp": ts}
    if reservation_id is not None:
        payload["reservationId"] = reservation_id
    return payload


def stop_transaction_v16(
    transaction_id: int, meter_stop: int, ts: str, reason: str, id_tag: str | None = None
) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "transactionId": transaction_id,
        "meterStop": meter_stop,
        "timestamp": ts,
        "reason": reason,
    }
    if id_tag is not None:
        payload["idTag"] = id_tag
    return payload


def transaction_event(
    *,
    event_type: str,
    transaction_id: str,
    seq_no: int,
    trigger_reason: str,
    evse_id: int,
    ts: str,
    energy_wh: int | None = None,
    context: str = "Sample.Periodic",
    token: str | None = None,
    charging_state: str | None = None,
    stopped_reason: str | None = None,
    remote_start_id: int | None = None,
    reservation_id: int | None = None,
    extra: dict[str, float] | None = None,
) -> dict[str, Any]:
    """TransactionEvent (2.0.1 / 2.1 E01-E15): Started, Updated or Ended.

    ``reservation_id``: the reservation the transaction ends by using it (H03, in Started);
    ``extra``: sampled values besides the energy register (measurand -> value).
    """
    info: dict[str, Any] = {"transactionId": transaction_id}
    if charging_state is not None:
        info["chargingState"] = charging_state
    if stopped_reason is not None:
        info["stoppedReason"] = stopped_reason
    if remote_start_id is not None:
        info["remoteStartId"] = remote_start_id
    payload: dict[str, Any] = {
        "eventType": event_type,
        "timestamp": ts,
        "triggerReason": trigger_reason,
        "seqNo": seq_no,
        "transactionInfo": info,
        # The EVSE is only required in the first event of a transaction; sending it every
        # time costs a few bytes and spares the CSMS a lookup.
        "evse": {"id": evse_id, "connectorId": 1},
    }
    if token is not None:
        payload["idToken"] = id_token(token)
    if reservation_id is not None:
        payload["reservationId"] = reservation_id
    if energy_wh is not None:
        payload["meterValue"] = [meter_value(OcppVersion.V201, energy_wh, context, ts, extra)]
    return payload


def reservation_status_update(reservation_id: int, status: str) -> dict[str, Any]:
    """2.x ReservationStatusUpdate (H04): ``Expired``, ``Removed`` (2.1 also ``NoTransaction``)."""
    return {"reservationId": reservation_id, "reservationUpdateStatus": status}
