"""OCPP 1.6 transactions: integer ids from the counter, meter values, energy, unknown stops."""

from __future__ import annotations

from typing import Any

from ocpp_core.timefmt import parse_ms
from tests.fakes import START_MS

from .support import V16, Charger, energy_sample_v16

TS = "2025-06-15T15:07:00Z"


def start(charger: Charger, tag: str = "TAG", meter: int = 1000, connector: int = 1, **extra: Any) -> dict:
    return charger.result(
        "StartTransaction", {"connectorId": connector, "idTag": tag, "meterStart": meter, "timestamp": TS, **extra}
    )


def stop(charger: Charger, tx: int, meter: int, **extra: Any) -> dict:
    return charger.result("StopTransaction", {"transactionId": tx, "meterStop": meter, "timestamp": TS, **extra})


def test_ids_come_from_the_counter_and_are_never_reused(make_charger) -> None:
    cp1: Charger = make_charger(V16, cp="CP1")
    cp2: Charger = make_charger(V16, cp="CP2")
    cp1.store.put_id_token("TAG", {"status": "Accepted"})
    ids = [start(cp1)["transactionId"], start(cp2)["transactionId"], start(cp1, connector=2)["transactionId"]]
    assert ids == [1, 2, 3]
    stop(cp1, 1, 2000)
    # A stopped transaction's id is not handed out again.
    assert start(cp1, meter=2000)["transactionId"] == 4
    assert cp1.store.next_transaction_id() == 5  # the counter moved once per new start
    assert [t["transactionId"] for t in cp1.store.list_transactions("CP1")] == ["1", "3", "4"]
    assert [t["transactionId"] for t in cp1.store.list_transactions("CP2")] == ["2"]


def test_start_is_recorded(make_charger) -> None:
    charger: Charger = make_charger(V16)
    charger.store.put_id_token("TAG", {"status": "Accepted"})
    response = start(charger, meter=1234, connector=2, reservationId=7)
    assert response == {"transactionId": 1, "idTagInfo": {"status": "Accepted"}}
    tx = charger.transaction("CP1", "1")
    assert tx is not None
    assert tx["status"] == "Active"
    assert tx["meterStart"] == 1234
    assert tx["connectorId"] == 2
    assert tx["idTag"] == "TAG"
    assert tx["authorizationStatus"] == "Accepted"
    assert tx["reservationId"] == 7
    assert tx["startTimestamp"] == TS
    assert tx["startedAt"] == START_MS
    assert tx["protocol"] == "ocpp1.6"


def test_refused_tag_still_gets_a_transaction_id(make_charger) -> None:
    # The charger needs an id to stop the transaction it may already have started (1.6 §5.19).
    charger: Charger = make_charger(V16)
    response = start(charger, tag="STRANGER")
    assert response == {"transactionId": 1, "idTagInfo": {"status": "Invalid"}}
    assert charger.transaction("CP1", "1")["authorizationStatus"] == "Invalid"


def test_meter_values_are_stored_and_energy_follows_them(make_charger) -> None:
    charger: Charger = make_charger(V16)
    tx = start(charger, meter=1000)["transactionId"]
    charger.clock.advance(60)
    assert (
        charger.result("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [energy_sample_v16(1500)]})
        == {}
    )
    tx_record = charger.transaction("CP1", "1")
    assert tx_record["meterLast"] == 1500 and tx_record["energyWh"] == 500
    assert tx_record["meterLastAt"] == parse_ms(energy_sample_v16(1500)["timestamp"])  # the sample's own time

    # kWh readings are converted; readings of other measurands or per phase are not energy.
    charger.result(
        "MeterValues",
        {
            "connectorId": 1,
            "transactionId": tx,
            "meterValue": [
                {
                    "timestamp": "2025-06-15T15:20:00Z",  # newer than the first sample: it counts
                    "sampledValue": [
                        {"value": "2.25", "unit": "kWh"},
                        {"value": "9999", "measurand": "Power.Active.Import", "unit": "W"},
                        {"value": "9999", "phase": "L1"},
                    ],
                }
            ],
        },
    )
    assert charger.transaction("CP1", "1")["energyWh"] == 1250

    stored = charger.store.list_meter_values("CP1", "1")
    assert len(stored) == 2
    assert stored[0]["meterValue"] == [energy_sample_v16(1500)]
    assert stored[0]["connectorId"] == 1
    # Meter values outside a transaction are kept too.
    charger.result("MeterValues", {"connectorId": 0, "meterValue": [energy_sample_v16(42)]})
    assert len(charger.store.list_meter_values("CP1")) == 3
    assert charger.store.list_meter_values("CP1")[-1]["transactionId"] is None


def test_stop_computes_energy_and_keeps_the_transaction_data(make_charger) -> None:
    charger: Charger = make_charger(V16)
    charger.store.put_id_token("TAG", {"status": "Accepted"})
    tx = start(charger, meter=1000)["transactionId"]
    charger.clock.advance(3600)
    response = stop(charger, tx, 8500, idTag="TAG", reason="EVDisconnected", transactionData=[energy_sample_v16(8500)])
    assert response == {"idTagInfo": {"status": "Accepted"}}
    record = charger.transaction("CP1", str(tx))
    assert record["status"] == "Completed"
    assert record["meterStart"] == 1000 and record["meterStop"] == 8500
    assert record["energyWh"] == 7500
    assert record["stopReason"] == "EVDisconnected"
    assert record["stopIdTag"] == "TAG"
    assert record["stoppedAt"] == START_MS + 3_600_000
    assert "unknownTransaction" not in record
    [data] = charger.store.list_meter_values("CP1", str(tx))
    assert data["meterValue"] == [energy_sample_v16(8500)]


def test_stop_without_id_tag_has_no_id_tag_info(make_charger) -> None:
    charger: Charger = make_charger(V16)
    tx = start(charger)["transactionId"]
    assert stop(charger, tx, 1000) == {}


def test_meter_values_after_the_stop_do_not_change_the_energy(make_charger) -> None:
    charger: Charger = make_charger(V16)
    tx = start(charger, meter=100)["transactionId"]
    stop(charger, tx, 600)
    charger.result("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [energy_sample_v16(9000)]})
    assert charger.transaction("CP1", str(tx))["energyWh"] == 500


def test_stop_of_an_unknown_transaction_is_accepted_and_recorded(make_charger) -> None:
    # A charger answered with an error would retry forever: accept, and keep what it said.
    charger: Charger = make_charger(V16)
    assert stop(charger, 777, 5000, reason="PowerLoss") == {}
    record = charger.transaction("CP1", "777")
    assert record is not None
    assert record["unknownTransaction"] is True
    assert record["status"] == "Completed"
    assert record["meterStop"] == 5000
    assert record["stopReason"] == "PowerLoss"
    assert "energyWh" not in record
    # The counter is not touched by a stop.
    assert charger.store.next_transaction_id() == 1


def test_meter_below_the_start_gives_no_energy(make_charger) -> None:
    # A replaced meter or a reset register: no negative energy.
    charger: Charger = make_charger(V16)
    tx = start(charger, meter=5000)["transactionId"]
    stop(charger, tx, 10)
    assert "energyWh" not in charger.transaction("CP1", str(tx))


def test_readings_beyond_float_range_are_accepted_without_energy(make_charger) -> None:
    # Valid JSON integers far beyond any meter: the stop is still accepted (never an InternalError,
    # which the charger would retry forever), the energy is unknown.
    charger: Charger = make_charger(V16)
    huge = 10**400
    tx = start(charger, meter=huge)["transactionId"]
    assert (
        charger.result("MeterValues", {"connectorId": 1, "transactionId": tx, "meterValue": [energy_sample_v16(5)]})
        == {}
    )
    assert stop(charger, tx, huge + 1) == {}
    record = charger.transaction("CP1", str(tx))
    assert record["status"] == "Completed" and record["meterStop"] == huge + 1
    assert "energyWh" not in record
    tx2 = start(charger, meter=0)["transactionId"]
    text_reading = {"timestamp": TS, "sampledValue": [{"value": "1e400"}]}
    charger.result("MeterValues", {"connectorId": 1, "transactionId": tx2, "meterValue": [text_reading]})
    assert "energyWh" not in charger.transaction("CP1", str(tx2))
    assert stop(charger, tx2, huge) == {}
