"""The station's configuration: OCPP 1.6 configuration keys, or a small OCPP 2.x device model.

1.6 reads and writes keys with GetConfiguration / ChangeConfiguration (1.6 §9 lists the
standard keys). 2.x addresses variables of components with GetVariables / SetVariables and
reports them with GetBaseReport / GetReport (2.0.1 part 2, appendix 3 lists the standard ones).
The model is flat: component instances and EVSE-scoped components are not simulated, a request
names a component by name only. Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ocpp_core.versions import OcppVersion

RO = "ReadOnly"
RW = "ReadWrite"

MEASURANDS = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,Voltage,SoC"
#: What the station keeps of charging profiles (1.6 §9.4 Smart Charging keys, 2.x SmartChargingCtrlr).
MAX_STACK_LEVEL = 8
MAX_PERIODS = 24
MAX_PROFILES = 16


@dataclass(slots=True)
class Setting:
    """One 1.6 key (``component`` empty) or one 2.x variable of a component."""

    component: str
    name: str
    value: str
    data_type: str = "string"  # 2.x DataEnumType: integer, boolean, decimal, string, OptionList, MemberList
    mutability: str = RW
    instance: str | None = None
    values_list: str | None = None  # allowed values of an OptionList / MemberList

    @property
    def readonly(self) -> bool:
        return self.mutability == RO


def _v16_settings(connectors: int) -> list[Setting]:
    def key(name: str, value: str, data_type: str = "string", mutability: str = RW) -> Setting:
        return Setting("", name, value, data_type, mutability)

    return [
        key("AllowOfflineTxForUnknownId", "false", "boolean"),
        key("AuthorizationCacheEnabled", "false", "boolean"),
        key("AuthorizeRemoteTxRequests", "false", "boolean"),
        # 1.6 §9.4 (Smart Charging profile).
        key("ChargeProfileMaxStackLevel", str(MAX_STACK_LEVEL), "integer", RO),
        key("ChargingScheduleAllowedChargingRateUnit", "Current,Power", mutability=RO),
        key("ChargingScheduleMaxPeriods", str(MAX_PERIODS), "integer", RO),
        key("ClockAlignedDataInterval", "0", "integer"),
        key("ConnectionTimeOut", "60", "integer"),
        key("GetConfigurationMaxKeys", "50", "integer", RO),
        key("HeartbeatInterval", "300", "integer"),
        key("LocalAuthListEnabled", "true", "boolean"),
        key("LocalAuthListMaxLength", "100", "integer", RO),
        key("LocalAuthorizeOffline", "true", "boolean"),
        key("LocalPreAuthorize", "false", "boolean"),
        key("MaxChargingProfilesInstalled", str(MAX_PROFILES), "integer", RO),
        key("MeterValuesAlignedData", "Energy.Active.Import.Register"),
        key("MeterValuesSampledData", "Energy.Active.Import.Register"),
        # 0: no periodic samples of our own (a scenario or load run decides when to send them).
        key("MeterValueSampleInterval", "0", "integer"),
        key("NumberOfConnectors", str(connectors), "integer", RO),
        # 1.6 §9.4 (Reservation profile): ReserveNow may name connector 0, the whole station.
        key("ReserveConnectorZeroSupported", "true", "boolean", RO),
        key("ResetRetries", "1", "integer"),
        key("SendLocalListMaxLength", "100", "integer", RO),
        key("StopTransactionOnEVSideDisconnect", "true", "boolean"),
        key("StopTransactionOnInvalidId", "true", "boolean"),
        key("StopTxnAlignedData", ""),
        key("StopTxnSampledData", "Energy.Active.Import.Register"),
        key(
            "SupportedFeatureProfiles",
            "Core,FirmwareManagement,LocalAuthListManagement,Reservation,SmartCharging,RemoteTrigger",
            mutability=RO,
        ),
        key("TransactionMessageAttempts", "3", "integer"),
        key("TransactionMessageRetryInterval", "60", "integer"),
        key("UnlockConnectorOnEVSideDisconnect", "true", "boolean"),
        key("WebSocketPingInterval", "30", "integer"),
    ]


def _v2_settings(charge_point_id: str, vendor: str, model: str, security_profile: int) -> list[Setting]:
    def var(
        component: str, name: str, value: str, data_type: str = "string", mutability: str = RW, **kw: Any
    ) -> Setting:
        return Setting(component, name, value, data_type, mutability, **kw)

    return [
        var("ChargingStation", "Model", model, mutability=RO),
        var("ChargingStation", "VendorName", vendor, mutability=RO),
        var(
            "ChargingStation",
            "AvailabilityState",
            "Available",
            "OptionList",
            RO,
            values_list="Available,Occupied,Reserved,Unavailable,Faulted",
        ),
        var("OCPPCommCtrlr", "HeartbeatInterval", "300", "integer"),
        var("OCPPCommCtrlr", "MessageTimeout", "30", "integer", instance="Default"),
        var("OCPPCommCtrlr", "NetworkProfileConnectionAttempts", "3", "integer"),
        var("OCPPCommCtrlr", "OfflineThreshold", "60", "integer"),
        var("OCPPCommCtrlr", "ResetRetries", "1", "integer"),
        var("OCPPCommCtrlr", "WebSocketPingInterval", "30", "integer"),
        var("DeviceDataCtrlr", "ItemsPerMessage", "20", "integer", RO, instance="GetReport"),
        var("DeviceDataCtrlr", "ItemsPerMessage", "50", "integer", RO, instance="GetVariables"),
        var("DeviceDataCtrlr", "ItemsPerMessage", "50", "integer", RO, instance="SetVariables"),
        var("SecurityCtrlr", "Identity", charge_point_id, mutability=RO),
        var("SecurityCtrlr", "SecurityProfile", str(security_profile), "integer", RO),
        var("AuthCtrlr", "AuthorizeRemoteStart", "false", "boolean"),
        var("AuthCtrlr", "LocalAuthorizeOffline", "true", "boolean"),
        var("AuthCtrlr", "LocalPreAuthorize", "false", "boolean"),
        var("LocalAuthListCtrlr", "Enabled", "true", "boolean"),
        var("LocalAuthListCtrlr", "Entries", "0", "integer", RO),
        var("TxCtrlr", "EVConnectionTimeOut", "60", "integer"),
        var("TxCtrlr", "StopTxOnEVSideDisconnect", "true", "boolean"),
        var("TxCtrlr", "StopTxOnInvalidId", "true", "boolean"),
        var(
            "TxCtrlr",
            "TxStartPoint",
            "PowerPathClosed",
            "MemberList",
            values_list="ParkingBayOccupancy,EVConnected,Authorized,DataSigned,PowerPathClosed,EnergyTransfer",
        ),
        var(
            "TxCtrlr",
            "TxStopPoint",
            "EVConnected,Authorized",
            "MemberList",
            values_list="ParkingBayOccupancy,EVConnected,Authorized,DataSigned,PowerPathClosed,EnergyTransfer",
        ),
        # 0: no periodic samples of our own (see the 1.6 MeterValueSampleInterval above).
        var("SampledDataCtrlr", "TxUpdatedInterval", "0", "integer"),
        var(
            "SampledDataCtrlr",
            "TxUpdatedMeasurands",
            "Energy.Active.Import.Register",
            "MemberList",
            values_list=MEASURANDS,
        ),
        var(
            "SampledDataCtrlr",
            "TxEndedMeasurands",
            "Energy.Active.Import.Register",
            "MemberList",
            values_list=MEASURANDS,
        ),
        # 2.0.1 appendix 3 (ReservationCtrlr): reservations on, also without an evseId (H01).
        var("ReservationCtrlr", "Available", "true", "boolean", RO),
        var("ReservationCtrlr", "Enabled", "true", "boolean"),
        var("ReservationCtrlr", "NonEvseSpecific", "true", "boolean", RO),
        # 2.0.1 appendix 3 (SmartChargingCtrlr): charging profiles in A or W (block K).
        var("SmartChargingCtrlr", "Available", "true", "boolean", RO),
        var("SmartChargingCtrlr", "Enabled", "true", "boolean"),
        var("SmartChargingCtrlr", "PeriodsPerSchedule", str(MAX_PERIODS), "integer", RO),
        var("SmartChargingCtrlr", "ProfileStackLevel", str(MAX_STACK_LEVEL), "integer", RO),
        var("SmartChargingCtrlr", "RateUnit", "A,W", "MemberList", RO, values_list="A,W"),
        var("AlignedDataCtrlr", "Interval", "0", "integer"),
        var("AlignedDataCtrlr", "Measurands", "Energy.Active.Import.Register", "MemberList", values_list=MEASURANDS),
    ]


def _valid_value(setting: Setting, value: str) -> bool:
    """Whether ``value`` fits the setting's data type (a real station refuses the others)."""
    if setting.data_type == "integer":
        try:
            return int(value.strip()) >= 0
        except ValueError:
            return False
    if setting.data_type == "decimal":
        try:
            return math.isfinite(float(value))
        except ValueError:
            return False
    if setting.data_type == "boolean":
        return value.strip().lower() in ("true", "false")
    allowed = set(setting.values_list.split(",")) if setting.values_list else None
    if setting.data_type == "OptionList" and allowed is not None:
        return value in allowed
    if setting.data_type == "MemberList" and allowed is not None:
        return all(item.strip() in allowed for item in value.split(",") if item.strip())
    return True


def _normalized(setting: Setting, value: str) -> str:
    if setting.data_type == "integer":
        return str(int(value.strip()))
    if setting.data_type == "boolean":
        return value.strip().lower()
    return value


class DeviceModel:
    """Settings of one station, for its version. Values are strings, as on the wire."""

    def __init__(
        self,
        version: OcppVersion,
        *,
        charge_point_id: str = "",
        connectors: int = 1,
        vendor: str = "",
        model: str = "",
        security_profile: int = 0,
    ):
        self.version = version
        if version.is_2x:
            settings = _v2_settings(charge_point_id, vendor, model, security_profile)
        else:
            settings = _v16_settings(connectors)
        self._settings: dict[tuple[str, str, str | None], Setting] = {
            (s.component, s.name, s.instance): s for s in settings
        }
        self._components = frozenset(s.component for s in settings)

    # -- typed access to the settings the station itself acts on

    def _key(self, v16: str, component: str, name: str) -> tuple[str, str, str | None]:
        return (component, name, None) if self.version.is_2x else ("", v16, None)

    def _int(self, key: tuple[str, str, str | None]) -> int:
        try:
            return int(self._settings[key].value)
        except (KeyError, ValueError):
            return 0

    @property
    def heartbeat_interval(self) -> int:
        return self._int(self._key("HeartbeatInterval", "OCPPCommCtrlr", "HeartbeatInterval"))

    @heartbeat_interval.setter
    def heartbeat_interval(self, seconds: int) -> None:
        self._settings[self._key("HeartbeatInterval", "OCPPCommCtrlr", "HeartbeatInterval")].value = str(seconds)

    @property
    def meter_interval(self) -> int:
        """Seconds between meter samples during a transaction (0: none)."""
        return self._int(self._key("MeterValueSampleInterval", "SampledDataCtrlr", "TxUpdatedInterval"))

    @meter_interval.setter
    def meter_interval(self, seconds: int) -> None:
        self._settings[self._key("MeterValueSampleInterval", "SampledDataCtrlr", "TxUpdatedInterval")].value = str(
            seconds
        )

    @property
    def authorize_remote_start(self) -> bool:
        return self._flag(self._key("AuthorizeRemoteTxRequests", "AuthCtrlr", "AuthorizeRemoteStart"))

    def _flag(self, key: tuple[str, str, str | None]) -> bool:
        setting = self._settings.get(key)
        return setting is not None and setting.value == "true"

    @property
    def reservations_enabled(self) -> bool:
        """2.x ReservationCtrlr.Enabled (1.6 has no such switch: the Reservation profile is on)."""
        return not self.version.is_2x or self._flag(("ReservationCtrlr", "Enabled", None))

    @property
    def reserve_whole_station(self) -> bool:
        """A reservation without a connector: 1.6 ReserveConnectorZeroSupported, 2.x
        ReservationCtrlr.NonEvseSpecific."""
        return self._flag(self._key("ReserveConnectorZeroSupported", "ReservationCtrlr", "NonEvseSpecific"))

    @property
    def smart_charging_enabled(self) -> bool:
        """2.x SmartChargingCtrlr.Enabled (1.6: the SmartCharging feature profile is on)."""
        return not self.version.is_2x or self._flag(("SmartChargingCtrlr", "Enabled", None))

    @property
    def rate_units(self) -> str:
        """The units charging schedules may use: 1.6 ChargingScheduleAllowedChargingRateUnit
        (``Current,Power``), 2.x SmartChargingCtrlr.RateUnit (``A,W``)."""
        setting = self._settings.get(
            self._key("ChargingScheduleAllowedChargingRateUnit", "SmartChargingCtrlr", "RateUnit")
        )
        return setting.value if setting is not None else ""

    @property
    def max_stack_level(self) -> int:
        return self._int(self._key("ChargeProfileMaxStackLevel", "SmartChargingCtrlr", "ProfileStackLevel"))

    @property
    def max_periods(self) -> int:
        return self._int(self._key("ChargingScheduleMaxPeriods", "SmartChargingCtrlr", "PeriodsPerSchedule"))

    @property
    def max_profiles(self) -> int:
        # 2.x has no such variable of its own here (SmartChargingCtrlr.Entries is not modelled).
        return MAX_PROFILES if self.version.is_2x else self._int(("", "MaxChargingProfilesInstalled", None))

    @property
    def sampled_measurands(self) -> list[str]:
        """What a sample during a transaction carries: 1.6 MeterValuesSampledData, 2.x
        SampledDataCtrlr.TxUpdatedMeasurands."""
        setting = self._settings.get(self._key("MeterValuesSampledData", "SampledDataCtrlr", "TxUpdatedMeasurands"))
        value = setting.value if setting is not None else ""
        return [m.strip() for m in value.split(",") if m.strip()]

    def force(self, name: str, value: str, component: str = "") -> None:
        """Set a setting whatever its mutability: what the manufacturer configured (say, a
        station that takes schedules in amps only). ``component`` empty for a 1.6 key."""
        self._settings[(component, name, None)].value = value

    def set_availability_state(self, state: str) -> None:
        setting = self._settings.get(("ChargingStation", "AvailabilityState", None))
        if setting is not None:
            setting.value = state

    # -- OCPP 1.6 configuration keys

    def get_configuration(self, keys: Iterable[str] | None) -> dict[str, Any]:
        """A GetConfiguration.conf payload (1.6 §6.25)."""
        wanted = None if keys is None else list(keys)
        known: list[dict[str, Any]] = []
        unknown: list[str] = []
        if wanted is None or not wanted:
            known = [self._key_entry(s) for s in self._settings.values()]
        else:
            for name in wanted:
                setting = self._settings.get(("", name, None))
                if setting is None:
                    unknown.append(name[:50])
                else:
                    known.append(self._key_entry(setting))
        payload: dict[str, Any] = {}
        if known:
            payload["configurationKey"] = known
        if unknown:
            payload["unknownKey"] = unknown
        return payload

    @staticmethod
    def _key_entry(setting: Setting) -> dict[str, Any]:
        return {"key": setting.name, "readonly": setting.readonly, "value": setting.value[:500]}

    def change_configuration(self, key: str, value: str) -> str:
        """The ChangeConfiguration.conf status (1.6 §6.9), storing the value when Accepted."""
        setting = self._settings.get(("", key, None))
        if setting is None:
            return "NotSupported"
        if setting.readonly or not _valid_value(setting, value):
            return "Rejected"
        setting.value = _normalized(setting, value)
        return "Accepted"

    # -- OCPP 2.x variables

    def _find(self, component: dict[str, Any], variable: dict[str, Any]) -> tuple[str, Setting | None]:
        name = component.get("name")
        if name not in self._components:
            return "UnknownComponent", None
        setting = self._settings.get((str(name), str(variable.get("name")), variable.get("instance")))
        if setting is None:
            return "UnknownVariable", None
        return "Accepted", setting

    def get_variable(self, request: dict[str, Any]) -> dict[str, Any]:
        """One GetVariableResultType for one GetVariableDataType."""
        component, variable = request["component"], request["variable"]
        result: dict[str, Any] = {"component": component, "variable": variable}
        attribute = request.get("attributeType", "Actual")
        status, setting = self._find(component, variable)
        if setting is not None and attribute != "Actual":
            status = "NotSupportedAttributeType"
        elif setting is not None and setting.mutability == "WriteOnly":
            status = "Rejected"
        result["attributeStatus"] = status
        if "attributeType" in request:
            result["attributeType"] = attribute
        if status == "Accepted" and setting is not None:
            result["attributeValue"] = setting.value[:2500]
        return result

    def set_variable(self, request: dict[str, Any]) -> dict[str, Any]:
        """One SetVariableResultType for one SetVariableDataType, storing the value when Accepted."""
        component, variable = request["component"], request["variable"]
        result: dict[str, Any] = {"component": component, "variable": variable}
        attribute = request.get("attributeType", "Actual")
        status, setting = self._find(component, variable)
        if setting is not None:
            if attribute != "Actual":
                status = "NotSupportedAttributeType"
            elif setting.readonly or not _valid_value(setting, str(request["attributeValue"])):
                status = "Rejected"
            else:
                setting.value = _normalized(setting, str(request["attributeValue"]))
        result["attributeStatus"] = status
        if "attributeType" in request:
            result["attributeType"] = attribute
        return result

    def report(self, base: str | None = None, selection: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """ReportDataType items: for GetBaseReport (``base``) or GetReport (``selection``)."""
        items = list(self._settings.values())
        if base == "ConfigurationInventory":
            items = [s for s in items if not s.readonly]
        elif base == "SummaryInventory":
            items = [s for s in items if s.component == "ChargingStation"]
        if selection:
            items = [s for s in items if any(_selected(s, entry) for entry in selection)]
        return [_report_item(s) for s in items]


def _selected(setting: Setting, entry: dict[str, Any]) -> bool:
    component = entry.get("component") or {}
    if component.get("name") != setting.component:
        return False
    variable = entry.get("variable")
    if not variable:
        return True
    if variable.get("name") != setting.name:
        return False
    return "instance" not in variable or variable.get("instance") == setting.instance


def _report_item(setting: Setting) -> dict[str, Any]:
    variable: dict[str, Any] = {"name": setting.name}
    if setting.instance is not None:
        variable["instance"] = setting.instance
    characteristics: dict[str, Any] = {"dataType": setting.data_type, "supportsMonitoring": False}
    if setting.values_list:
        characteristics["valuesList"] = setting.values_list
    return {
        "component": {"name": setting.component},
        "variable": variable,
        "variableAttribute": [{"type": "Actual", "value": setting.value[:2500], "mutability": setting.mutability}],
        "variableCharacteristics": characteristics,
    }
