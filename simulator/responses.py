"""Default answers to every CSMS-initiated action, per OCPP version. Pure: no I/O.

A station must answer every CALL it receives (OCPP-J 1.6 §4.1, 2.0.1 part 4 §4.1). The
stateful handlers (``handlers``) cover what the simulator really does (reset, remote start,
configuration, reservations...); everything else gets the answer of a station that does not
have the feature, chosen so the CSMS is not left waiting for follow-up messages that never come:
firmware, log and certificate requests are refused, reports that have nothing to say answer
``EmptyResultSet`` / ``NotFound``. (A :class:`~simulator.station.Station` uploads diagnostics
and logs and downloads firmware instead, :mod:`simulator.files`; these are the answers without
that part.) A test checks that every action in
``CSMS_INITIATED[version]`` has an entry here whose answer passes the response schema.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ocpp_core.versions import OcppVersion

Payload = dict[str, Any]
ResponseBuilder = Callable[[Payload], Payload]


def _static(response: Payload) -> ResponseBuilder:
    def build(request: Payload) -> Payload:
        return copy.deepcopy(response)

    return build


def _status(status: str) -> ResponseBuilder:
    return _static({"status": status})


def _unknown_variables(key: str, result_key: str) -> ResponseBuilder:
    # Without a device model every component is unknown; echo what was asked (the schema
    # requires component and variable in each result).
    def build(request: Payload) -> Payload:
        return {
            result_key: [
                {"attributeStatus": "UnknownComponent", "component": item["component"], "variable": item["variable"]}
                for item in request.get(key, [])
            ]
        }

    return build


def _clear_monitoring(request: Payload) -> Payload:
    return {"clearMonitoringResult": [{"id": i, "status": "NotFound"} for i in request.get("id", [])]}


def _set_monitoring(request: Payload) -> Payload:
    # No monitoring support: every monitor is refused, echoing what the schema requires.
    return {
        "setMonitoringResult": [
            {
                "status": "Rejected",
                "type": item["type"],
                "severity": item["severity"],
                "component": item["component"],
                "variable": item["variable"],
            }
            for item in request.get("setMonitoringData", [])
        ]
    }


def _clear_tariffs(request: Payload) -> Payload:
    ids = request.get("tariffIds") or []
    if not ids:
        return {"clearTariffsResult": [{"status": "NoTariff"}]}
    return {"clearTariffsResult": [{"tariffId": tariff, "status": "NoTariff"} for tariff in ids]}


_V16: dict[str, ResponseBuilder] = {
    "CancelReservation": _status("Rejected"),
    "CertificateSigned": _status("Rejected"),
    "ChangeAvailability": _status("Accepted"),
    "ChangeConfiguration": _status("NotSupported"),
    "ClearCache": _status("Accepted"),
    "ClearChargingProfile": _status("Unknown"),
    "DataTransfer": _status("UnknownVendorId"),
    "DeleteCertificate": _status("NotFound"),
    "ExtendedTriggerMessage": _status("NotImplemented"),
    "GetCompositeSchedule": _status("Rejected"),
    "GetConfiguration": _static({}),
    "GetDiagnostics": _static({}),  # no fileName: "no diagnostics information available"
    "GetInstalledCertificateIds": _status("NotFound"),
    "GetLocalListVersion": _static({"listVersion": 0}),
    "GetLog": _status("Rejected"),
    "InstallCertificate": _status("Rejected"),
    "RemoteStartTransaction": _status("Rejected"),
    "RemoteStopTransaction": _status("Rejected"),
    "ReserveNow": _status("Rejected"),
    "Reset": _status("Accepted"),
    "SendLocalList": _status("Accepted"),
    "SetChargingProfile": _status("Accepted"),
    "SignedUpdateFirmware": _status("Rejected"),
    "TriggerMessage": _status("NotImplemented"),
    "UnlockConnector": _status("Unlocked"),
    "UpdateFirmware": _static({}),  # 1.6 has no way to refuse; no FirmwareStatusNotification follows
}

_V201: dict[str, ResponseBuilder] = {
    "CancelReservation": _status("Rejected"),
    "CertificateSigned": _status("Rejected"),
    "ChangeAvailability": _status("Accepted"),
    "ClearCache": _status("Accepted"),
    "ClearChargingProfile": _status("Unknown"),
    "ClearDisplayMessage": _status("Unknown"),
    "ClearVariableMonitoring": _clear_monitoring,
    "CostUpdated": _static({}),
    "CustomerInformation": _status("Rejected"),
    "DataTransfer": _status("UnknownVendorId"),
    "DeleteCertificate": _status("NotFound"),
    "GetBaseReport": _status("NotSupported"),
    "GetChargingProfiles": _status("NoProfiles"),
    "GetCompositeSchedule": _status("Rejected"),
    "GetDisplayMessages": _status("Unknown"),
    "GetInstalledCertificateIds": _status("NotFound"),
    "GetLocalListVersion": _static({"versionNumber": 0}),
    "GetLog": _status("Rejected"),
    "GetMonitoringReport": _status("EmptyResultSet"),
    "GetReport": _status("EmptyResultSet"),
    "GetTransactionStatus": _static({"messagesInQueue": False}),
    "GetVariables": _unknown_variables("getVariableData", "getVariableResult"),
    "InstallCertificate": _status("Rejected"),
    "PublishFirmware": _status("Rejected"),
    "RequestStartTransaction": _status("Rejected"),
    "RequestStopTransaction": _status("Rejected"),
    "ReserveNow": _status("Rejected"),
    "Reset": _status("Accepted"),
    "SendLocalList": _status("Accepted"),
    "SetChargingProfile": _status("Accepted"),
    "SetDisplayMessage": _status("Rejected"),
    "SetMonitoringBase": _status("Accepted"),
    "SetMonitoringLevel": _status("Accepted"),
    "SetNetworkProfile": _status("Rejected"),
    "SetVariableMonitoring": _set_monitoring,
    "SetVariables": _unknown_variables("setVariableData", "setVariableResult"),
    "TriggerMessage": _status("NotImplemented"),
    "UnlockConnector": _status("Unlocked"),
    "UnpublishFirmware": _status("NoFirmware"),
    "UpdateFirmware": _status("Rejected"),
}

_V21: dict[str, ResponseBuilder] = {
    **_V201,
    "AFRRSignal": _status("Rejected"),
    "AdjustPeriodicEventStream": _status("Rejected"),
    "ChangeTransactionTariff": _status("TxNotFound"),
    "ClearDERControl": _status("NotSupported"),
    "ClearTariffs": _clear_tariffs,
    "GetDERControl": _status("NotSupported"),
    "GetPeriodicEventStream": _static({}),
    "GetTariffs": _status("NoTariff"),
    "NotifyAllowedEnergyTransfer": _status("Accepted"),
    "NotifyWebPaymentStarted": _static({}),
    "RequestBatterySwap": _status("Rejected"),
    "SetDERControl": _status("NotSupported"),
    "SetDefaultTariff": _status("Rejected"),
    "UpdateDynamicSchedule": _status("Rejected"),
    "UsePriorityCharging": _status("NoProfile"),
}

DEFAULT_RESPONSES: dict[OcppVersion, dict[str, ResponseBuilder]] = {
    OcppVersion.V16: _V16,
    OcppVersion.V201: _V201,
    OcppVersion.V21: _V21,
}


def default_response(version: OcppVersion, action: str, request: Payload) -> Payload | None:
    """The default answer to ``action``, or None if the version has no such CSMS-initiated action."""
    builder = DEFAULT_RESPONSES[version].get(action)
    return None if builder is None else builder(request)
