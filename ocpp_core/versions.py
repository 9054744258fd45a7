"""OCPP versions as negotiated on the wire, and which side initiates each action.

The direction lists follow the message overviews of OCPP 1.6 (core profiles plus the
1.6 security whitepaper), OCPP 2.0.1 part 2 and OCPP 2.1 part 2. The schemas shipped by
the ``ocpp`` package do not say who sends a message, so the lists live here; a test checks
that every schema in the package is covered by exactly one direction.
"""

from __future__ import annotations

import enum


class OcppVersion(enum.StrEnum):
    """A WebSocket subprotocol, with its wire value."""

    V16 = "ocpp1.6"
    V201 = "ocpp2.0.1"
    V21 = "ocpp2.1"

    @property
    def is_2x(self) -> bool:
        return self is not OcppVersion.V16

    @property
    def package_dir(self) -> str:
        """Folder of the version in the ``ocpp`` package (``ocpp/v16/schemas``...)."""
        return {"ocpp1.6": "v16", "ocpp2.0.1": "v201", "ocpp2.1": "v21"}[self.value]

    @classmethod
    def parse(cls, value: object) -> OcppVersion | None:
        """The version for a subprotocol string, or None if it is not one we speak."""
        if isinstance(value, str):
            try:
                return cls(value)
            except ValueError:
                return None
        return None


#: Server preference when negotiating the subprotocol (DESIGN §3).
SUBPROTOCOL_PREFERENCE: tuple[OcppVersion, ...] = (
    OcppVersion.V21,
    OcppVersion.V201,
    OcppVersion.V16,
)

_V16_CHARGER = frozenset(
    {
        "Authorize",
        "BootNotification",
        "DataTransfer",
        "DiagnosticsStatusNotification",
        "FirmwareStatusNotification",
        "Heartbeat",
        "MeterValues",
        "StartTransaction",
        "StatusNotification",
        "StopTransaction",
        # security whitepaper (edition 3)
        "SecurityEventNotification",
        "SignCertificate",
        "LogStatusNotification",
        "SignedFirmwareStatusNotification",
    }
)
_V16_CSMS = frozenset(
    {
        "CancelReservation",
        "ChangeAvailability",
        "ChangeConfiguration",
        "ClearCache",
        "ClearChargingProfile",
        "DataTransfer",
        "GetCompositeSchedule",
        "GetConfiguration",
        "GetDiagnostics",
        "GetLocalListVersion",
        "RemoteStartTransaction",
        "RemoteStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "TriggerMessage",
        "UnlockConnector",
        "UpdateFirmware",
        # security whitepaper (edition 3)
        "CertificateSigned",
        "DeleteCertificate",
        "ExtendedTriggerMessage",
        "GetInstalledCertificateIds",
        "GetLog",
        "InstallCertificate",
        "SignedUpdateFirmware",
    }
)
_V201_CHARGER = frozenset(
    {
        "Authorize",
        "BootNotification",
        "ClearedChargingLimit",
        "DataTransfer",
        "FirmwareStatusNotification",
        "Get15118EVCertificate",
        "GetCertificateStatus",
        "Heartbeat",
        "LogStatusNotification",
        "MeterValues",
        "NotifyChargingLimit",
        "NotifyCustomerInformation",
        "NotifyDisplayMessages",
        "NotifyEVChargingNeeds",
        "NotifyEVChargingSchedule",
        "NotifyEvent",
        "NotifyMonitoringReport",
        "NotifyReport",
        "PublishFirmwareStatusNotification",
        "ReportChargingProfiles",
        "ReservationStatusUpdate",
        "SecurityEventNotification",
        "SignCertificate",
        "StatusNotification",
        "TransactionEvent",
    }
)
_V201_CSMS = frozenset(
    {
        "CancelReservation",
        "CertificateSigned",
        "ChangeAvailability",
        "ClearCache",
        "ClearChargingProfile",
        "ClearDisplayMessage",
        "ClearVariableMonitoring",
        "CostUpdated",
        "CustomerInformation",
        "DataTransfer",
        "DeleteCertificate",
        "GetBaseReport",
        "GetChargingProfiles",
        "GetCompositeSchedule",
        "GetDisplayMessages",
        "GetInstalledCertificateIds",
        "GetLocalListVersion",
        "GetLog",
        "GetMonitoringReport",
        "GetReport",
        "GetTransactionStatus",
        "GetVariables",
        "InstallCertificate",
        "PublishFirmware",
        "RequestStartTransaction",
        "RequestStopTransaction",
        "ReserveNow",
        "Reset",
        "SendLocalList",
        "SetChargingProfile",
        "SetDisplayMessage",
        "SetMonitoringBase",
        "SetMonitoringLevel",
        "SetNetworkProfile",
        "SetVariableMonitoring",
        "SetVariables",
        "TriggerMessage",
        "UnlockConnector",
        "UnpublishFirmware",
        "UpdateFirmware",
    }
)
_V21_CHARGER = _V201_CHARGER | frozenset(
    {
        "BatterySwap",
        "ClosePeriodicEventStream",
        "GetCertificateChainStatus",
        "NotifyDERAlarm",
        "NotifyDERStartStop",
        "NotifyPeriodicEventStream",  # a SEND (message type 6): never answered
        "NotifyPriorityCharging",
        "NotifySettlement",
        "OpenPeriodicEventStream",
        "PullDynamicScheduleUpdate",
        "ReportDERControl",
        "VatNumberValidation",
    }
)
_V21_CSMS = _V201_CSMS | frozenset(
    {
        "AFRRSignal",
        "AdjustPeriodicEventStream",
        "ChangeTransactionTariff",
        "ClearDERControl",
        "ClearTariffs",
        "GetDERControl",
        "GetPeriodicEventStream",
        "GetTariffs",
        "NotifyAllowedEnergyTransfer",
        "NotifyWebPaymentStarted",
        "RequestBatterySwap",
        "SetDERControl",
        "SetDefaultTariff",
        "UpdateDynamicSchedule",
        "UsePriorityCharging",
    }
)

#: Actions a charging station sends to the CSMS, per version.
CHARGER_INITIATED: dict[OcppVersion, frozenset[str]] = {
    OcppVersion.V16: _V16_CHARGER,
    OcppVersion.V201: _V201_CHARGER,
    OcppVersion.V21: _V21_CHARGER,
}
_EVERY_SESSION = ("BootNotification", "Heartbeat", "StatusNotification", "Authorize", "MeterValues")
#: What chargers send on every connection and charging session, per version: the validators a
#: warmed-up process compiles before its first frame (``schemas.compile_ahead``).
FREQUENT_ACTIONS: dict[OcppVersion, tuple[str, ...]] = {
    OcppVersion.V16: (*_EVERY_SESSION, "StartTransaction", "StopTransaction"),
    OcppVersion.V201: (*_EVERY_SESSION, "TransactionEvent"),
    OcppVersion.V21: (*_EVERY_SESSION, "TransactionEvent"),
}
#: Actions the CSMS sends to a charging station, per version.
CSMS_INITIATED: dict[OcppVersion, frozenset[str]] = {
    OcppVersion.V16: _V16_CSMS,
    OcppVersion.V201: _V201_CSMS,
    OcppVersion.V21: _V21_CSMS,
}
#: Actions that travel as SEND frames (OCPP 2.1 message type 6) and have no response.
SEND_ACTIONS: dict[OcppVersion, frozenset[str]] = {
    OcppVersion.V16: frozenset(),
    OcppVersion.V201: frozenset(),
    OcppVersion.V21: frozenset({"NotifyPeriodicEventStream"}),
}
