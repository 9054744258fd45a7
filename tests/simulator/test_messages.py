"""Payload builders: every message the station builds passes its schema, in every version."""

from __future__ import annotations

import pytest

from ocpp_core.schemas import validate_request
from ocpp_core.versions import OcppVersion
from simulator import messages, parse_version

TS = "2025-01-01T12:00:00.000Z"
V2 = [OcppVersion.V201, OcppVersion.V21]


@pytest.mark.parametrize("version", list(OcppVersion))
def test_common_messages_validate(version: OcppVersion) -> None:
    validate_request(version, "BootNotification", messages.boot_notification(version, "V", "M", serial_number="S1"))
    validate_request(version, "Authorize", messages.authorize(version, "TAG-1"))
    for status in ("Available", "Occupied", "Charging", "Preparing", "Unavailable", "Faulted", "Reserved"):
        validate_request(version, "StatusNotification", messages.status_notification(version, 1, status, TS))
    validate_request(version, "MeterValues", messages.meter_values(version, 1, 1234, TS, context="Trigger"))


def test_v16_transaction_messages_validate() -> None:
    v = OcppVersion.V16
    validate_request(v, "StartTransaction", messages.start_transaction_v16(1, "TAG", 0, TS, reservation_id=3))
    validate_request(v, "MeterValues", messages.meter_values(v, 1, 500, TS, transaction_id=7))
    for reason in ("Local", "Remote", "HardReset", "SoftReset", "UnlockCommand", "DeAuthorized"):
        validate_request(v, "StopTransaction", messages.stop_transaction_v16(7, 900, TS, reason, "TAG"))


@pytest.mark.parametrize("version", V2)
def test_v2_transaction_events_validate(version: OcppVersion) -> None:
    started = messages.transaction_event(
        event_type="Started",
        transaction_id="tx-1",
        seq_no=0,
        trigger_reason="RemoteStart",
        evse_id=1,
        ts=TS,
        energy_wh=0,
        context="Transaction.Begin",
        token="TAG",
        charging_state="Charging",
        remote_start_id=9,
    )
    validate_request(version, "TransactionEvent", started)
    assert started["transactionInfo"]["remoteStartId"] == 9
    assert started["idToken"] == {"idToken": "TAG", "type": "ISO14443"}
    for reason in ("Local", "Remote", "HardReset", "UnlockCommand", "DeAuthorized", "EVDisconnected"):
        stopped = messages.stop_reason(version, reason)
        ended = messages.transaction_event(
            event_type="Ended",
            transaction_id="tx-1",
            seq_no=3,
            trigger_reason=messages.trigger_for_stop(stopped),
            evse_id=1,
            ts=TS,
            energy_wh=900,
            context="Transaction.End",
            stopped_reason=stopped,
        )
        validate_request(version, "TransactionEvent", ended)


def test_timestamps_are_rfc3339_utc_z() -> None:
    assert messages.timestamp(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"
    assert messages.timestamp().endswith("Z")


def test_status_vocabularies_map_both_ways() -> None:
    assert messages.connector_status(OcppVersion.V201, "Charging") == "Occupied"
    assert messages.connector_status(OcppVersion.V16, "Occupied") == "Charging"
    assert messages.connector_status(OcppVersion.V16, "Preparing") == "Preparing"
    assert messages.connector_status(OcppVersion.V21, "Available") == "Available"


@pytest.mark.parametrize(
    ("text", "version"),
    [("1.6", OcppVersion.V16), ("ocpp1.6", OcppVersion.V16), ("2.0.1", OcppVersion.V201), ("OCPP2.1", OcppVersion.V21)],
)
def test_parse_version(text: str, version: OcppVersion) -> None:
    assert parse_version(text) is version


def test_parse_version_refuses_unknown() -> None:
    with pytest.raises(ValueError, match="unknown OCPP version"):
        parse_version("1.5")
