"""The configuration keys (1.6) and the device model (2.x), without a connection."""

from __future__ import annotations

from ocpp_core.schemas import validate_request, validate_response
from ocpp_core.versions import OcppVersion
from simulator.device_model import DeviceModel


def test_v16_configuration_keys() -> None:
    model = DeviceModel(OcppVersion.V16, connectors=2)
    assert model.change_configuration("HeartbeatInterval", "42") == "Accepted"
    assert model.heartbeat_interval == 42
    assert model.change_configuration("HeartbeatInterval", "soon") == "Rejected"
    assert model.change_configuration("NumberOfConnectors", "3") == "Rejected"  # read-only
    assert model.change_configuration("NoSuchKey", "1") == "NotSupported"
    assert model.change_configuration("LocalPreAuthorize", "TRUE") == "Accepted"
    answer = model.get_configuration(["HeartbeatInterval", "NumberOfConnectors", "NoSuchKey"])
    validate_response(OcppVersion.V16, "GetConfiguration", answer)
    assert answer["configurationKey"] == [
        {"key": "HeartbeatInterval", "readonly": False, "value": "42"},
        {"key": "NumberOfConnectors", "readonly": True, "value": "2"},
    ]
    assert answer["unknownKey"] == ["NoSuchKey"]
    everything = model.get_configuration(None)
    assert len(everything["configurationKey"]) > 20
    assert "unknownKey" not in everything


def test_v2_variables() -> None:
    model = DeviceModel(OcppVersion.V201, charge_point_id="CP9", vendor="V", model="M")
    hb = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    assert model.set_variable({**hb, "attributeValue": "60"})["attributeStatus"] == "Accepted"
    assert model.heartbeat_interval == 60
    assert model.get_variable(hb) == {**hb, "attributeStatus": "Accepted", "attributeValue": "60"}
    assert model.set_variable({**hb, "attributeValue": "-1"})["attributeStatus"] == "Rejected"
    target = model.get_variable({**hb, "attributeType": "Target"})
    assert target["attributeStatus"] == "NotSupportedAttributeType"
    unknown_component = {"component": {"name": "Nope"}, "variable": {"name": "HeartbeatInterval"}}
    assert model.get_variable(unknown_component)["attributeStatus"] == "UnknownComponent"
    unknown_variable = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "Nope"}}
    assert model.set_variable({**unknown_variable, "attributeValue": "1"})["attributeStatus"] == "UnknownVariable"
    read_only = {"component": {"name": "ChargingStation"}, "variable": {"name": "Model"}, "attributeValue": "X"}
    assert model.set_variable(read_only)["attributeStatus"] == "Rejected"
    instance = {
        "component": {"name": "DeviceDataCtrlr"},
        "variable": {"name": "ItemsPerMessage", "instance": "GetReport"},
    }
    assert model.get_variable(instance)["attributeValue"] == "20"
    option = {"component": {"name": "TxCtrlr"}, "variable": {"name": "TxStopPoint"}}
    assert model.set_variable({**option, "attributeValue": "EVConnected"})["attributeStatus"] == "Accepted"
    assert model.set_variable({**option, "attributeValue": "Banana"})["attributeStatus"] == "Rejected"


def test_v2_reports_validate() -> None:
    for version in (OcppVersion.V201, OcppVersion.V21):
        model = DeviceModel(version, charge_point_id="CP9", vendor="V", model="M")
        full = model.report(base="FullInventory")
        config = model.report(base="ConfigurationInventory")
        summary = model.report(base="SummaryInventory")
        assert len(summary) < len(config) < len(full)
        payload = {"requestId": 1, "generatedAt": "2025-01-01T00:00:00Z", "seqNo": 0, "reportData": full}
        validate_request(version, "NotifyReport", payload)
        picked = model.report(
            selection=[{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]
        )
        assert [item["variable"]["name"] for item in picked] == ["HeartbeatInterval"]
