"""Connector / EVSE status, DataTransfer, and what chargers report, as the store keeps it."""

from __future__ import annotations

import pytest

from tests.fakes import START_MS

from .support import START_ISO, V2X, V16, V21, V201, VERSIONS, Charger

TS = "2025-06-15T15:00:00Z"


def test_v16_connector_status(make_charger) -> None:
    charger: Charger = make_charger(V16)
    payload = {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": TS, "info": "ok"}
    assert charger.result("StatusNotification", payload) == {}
    charger.clock.advance(10)
    faulted = {"connectorId": 0, "errorCode": "GroundFailure", "status": "Faulted", "vendorErrorCode": "E42"}
    assert charger.result("StatusNotification", faulted) == {}
    statuses = {s["connectorId"]: s for s in charger.store.list_statuses("CP1")}
    assert statuses[1]["status"] == "Charging" and statuses[1]["errorCode"] == "NoError"
    assert statuses[1]["timestamp"] == TS and statuses[1]["info"] == "ok"
    assert statuses[1]["updatedAt"] == START_MS
    assert statuses[0]["status"] == "Faulted" and statuses[0]["vendorErrorCode"] == "E42"
    # No timestamp from the charger: the time it was received.
    assert statuses[0]["timestamp"] == "2025-06-15T15:06:50.000Z"
    # The latest status of a connector replaces the previous one.
    charger.result("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"})
    statuses = {s["connectorId"]: s for s in charger.store.list_statuses("CP1")}
    assert len(statuses) == 2 and statuses[1]["status"] == "Available"
    assert charger.store.list_statuses("CP2") == []


@pytest.mark.parametrize("version", V2X)
def test_v2_evse_connector_status(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    for evse, connector, status in ((1, 1, "Occupied"), (1, 2, "Available"), (2, 1, "Faulted")):
        payload = {"timestamp": TS, "connectorStatus": status, "evseId": evse, "connectorId": connector}
        assert charger.result("StatusNotification", payload) == {}
    statuses = {(s["evseId"], s["connectorId"]): s["status"] for s in charger.store.list_statuses("CP1")}
    assert statuses == {(1, 1): "Occupied", (1, 2): "Available", (2, 1): "Faulted"}


@pytest.mark.parametrize("version", VERSIONS)
def test_data_transfer_unknown_vendor(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    payload = {"vendorId": "com.example", "messageId": "m", "data": "hello"}
    assert charger.result("DataTransfer", payload) == {"status": "UnknownVendorId"}
    [event] = charger.store.list_events("CP1", "DataTransfer")
    assert event["payload"] == payload
    assert event["uniqueId"] == "m-1" and event["protocol"] == version.value
    assert event["receivedAt"] == START_MS


@pytest.mark.parametrize(
    ("version", "action", "payload", "field"),
    [
        (V16, "FirmwareStatusNotification", {"status": "Installed"}, "firmwareStatus"),
        (V16, "DiagnosticsStatusNotification", {"status": "Uploaded"}, "diagnosticsStatus"),
        (V16, "LogStatusNotification", {"status": "Uploaded", "requestId": 3}, "logStatus"),
        (V16, "SignedFirmwareStatusNotification", {"status": "Downloading", "requestId": 1}, "firmwareStatus"),
        (V201, "FirmwareStatusNotification", {"status": "Installed", "requestId": 1}, "firmwareStatus"),
        (V21, "LogStatusNotification", {"status": "Uploading", "requestId": 2}, "logStatus"),
    ],
)
def test_status_reports_update_the_charger(make_charger, version, action, payload, field) -> None:
    charger: Charger = make_charger(version)
    charger.store.update_charger("CP1", {"registered": True})
    assert charger.result(action, payload) == {}
    record = charger.store.get_charger("CP1")
    assert record[field] == payload["status"] and record[field + "At"] == START_MS
    [event] = charger.store.list_events("CP1", action)
    assert event["payload"] == payload


@pytest.mark.parametrize("version", VERSIONS)
def test_security_events_are_kept(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    payload = {"type": "FirmwareUpdated", "timestamp": TS, "techInfo": "v2"}
    assert charger.result("SecurityEventNotification", payload) == {}
    [event] = charger.store.list_events("CP1", "SecurityEventNotification")
    assert event["payload"] == payload and event["chargePointId"] == "CP1"
    assert charger.store.list_events("CP1", "DataTransfer") == []


@pytest.mark.parametrize("version", VERSIONS)
def test_sign_certificate_without_a_ca_is_rejected_and_kept(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    answer = charger.result("SignCertificate", {"csr": "-----BEGIN CERTIFICATE REQUEST-----"})
    assert answer["status"] == "Rejected"  # nothing can sign it (tests/api/test_certificates.py: with a CA)
    assert charger.store.list_events("CP1", "SignCertificate")[0]["payload"]["csr"].startswith("-----BEGIN")


@pytest.mark.parametrize("version", V2X)
def test_notify_report_keeps_the_report_and_actual_values(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    report = {
        "requestId": 1,
        "generatedAt": TS,
        "seqNo": 0,
        "tbc": False,
        "reportData": [
            {
                "component": {"name": "OCPPCommCtrlr"},
                "variable": {"name": "HeartbeatInterval"},
                "variableAttribute": [{"type": "Actual", "value": "300"}, {"type": "Target", "value": "600"}],
            },
            {
                "component": {"name": "Connector", "instance": "main", "evse": {"id": 1, "connectorId": 2}},
                "variable": {"name": "Available", "instance": "x"},
                "variableAttribute": [{"value": "true"}],  # type defaults to Actual
            },
        ],
    }
    assert charger.result("NotifyReport", report) == {}
    assert charger.store.list_events("CP1", "NotifyReport")[0]["payload"] == report
    assert charger.store.get_charger_map("CP1", "variables") == {
        "OCPPCommCtrlr/HeartbeatInterval": "300",
        "Connector.main@1.2/Available.x": "true",
    }
    # A later report part merges into what is known.
    part = {**report, "seqNo": 1, "reportData": [{**report["reportData"][0], "variableAttribute": [{"value": "60"}]}]}
    charger.result("NotifyReport", part)
    variables = charger.store.get_charger_map("CP1", "variables")
    assert variables["OCPPCommCtrlr/HeartbeatInterval"] == "60" and len(variables) == 2
    assert len(charger.store.list_events("CP1", "NotifyReport")) == 2


@pytest.mark.parametrize("version", V2X)
def test_notify_event_is_kept(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    payload = {
        "generatedAt": TS,
        "seqNo": 0,
        "eventData": [
            {
                "eventId": 1,
                "timestamp": TS,
                "trigger": "Alerting",
                "actualValue": "Faulted",
                "eventNotificationType": "HardWiredNotification",
                "component": {"name": "Connector"},
                "variable": {"name": "Problem"},
            }
        ],
    }
    assert charger.result("NotifyEvent", payload) == {}
    [event] = charger.store.list_events("CP1", "NotifyEvent")
    assert event["payload"] == payload and event["kind"] == "NotifyEvent"


def test_v21_certificate_chain_status_is_failed_without_ocsp(make_charger) -> None:
    charger: Charger = make_charger(V21)
    hash_data = {"hashAlgorithm": "SHA256", "issuerNameHash": "a", "issuerKeyHash": "b", "serialNumber": "c"}
    payload = {
        "certificateStatusRequests": [
            {"source": "OCSP", "urls": ["http://ocsp.example"], "certificateHashData": hash_data}
        ]
    }
    response = charger.result("GetCertificateChainStatus", payload)
    assert response == {
        "certificateStatus": [
            {"certificateHashData": hash_data, "source": "OCSP", "status": "Failed", "nextUpdate": START_ISO}
        ]
    }
    assert len(charger.store.list_events("CP1", "GetCertificateChainStatus")) == 1


def test_v21_vat_number_is_not_vouched_for(make_charger) -> None:
    charger: Charger = make_charger(V21)
    assert charger.result("VatNumberValidation", {"vatNumber": "DE123", "evseId": 2}) == {
        "vatNumber": "DE123",
        "evseId": 2,
        "status": "Rejected",
    }
    assert charger.result("VatNumberValidation", {"vatNumber": "FR9"}) == {"vatNumber": "FR9", "status": "Rejected"}


def test_events_are_per_charger(make_charger) -> None:
    a: Charger = make_charger(V16, cp="A")
    b: Charger = make_charger(V16, cp="B")
    a.result("DataTransfer", {"vendorId": "a"})
    b.result("DataTransfer", {"vendorId": "b"})
    assert [e["payload"]["vendorId"] for e in a.store.list_events("A")] == ["a"]
    assert [e["payload"]["vendorId"] for e in a.store.list_events("B")] == ["b"]
