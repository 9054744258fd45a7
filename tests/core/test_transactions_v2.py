"""OCPP 2.0.1 / 2.1 TransactionEvent: Started / Updated / Ended by the station's transaction id."""

from __future__ import annotations

import pytest

from tests.fakes import START_MS

from .support import V2X, Charger, energy_sample_v2, transaction_event

pytestmark = pytest.mark.parametrize("version", V2X)


def test_started_updated_ended(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    charger.store.put_id_token("TAG", {"status": "Accepted"})
    token = {"idToken": "TAG", "type": "ISO14443"}
    started = transaction_event("Started", "tx-A", 0, meter=[energy_sample_v2(1000)], idToken=token)
    assert charger.result("TransactionEvent", started) == {"idTokenInfo": {"status": "Accepted"}}
    record = charger.transaction("CP1", "tx-A")
    assert record["status"] == "Active"
    assert record["meterStart"] == 1000
    assert record["idToken"] == "TAG" and record["authorizationStatus"] == "Accepted"
    assert record["evseId"] == 1 and record["connectorId"] == 1
    assert record["startedAt"] == START_MS

    charger.clock.advance(60)
    updated = transaction_event(
        "Updated",
        "tx-A",
        1,
        meter=[energy_sample_v2(1.75, unit="kWh")],
        transactionInfo={"transactionId": "tx-A", "chargingState": "Charging"},
    )
    assert charger.result("TransactionEvent", updated) == {}  # no idToken, no idTokenInfo
    record = charger.transaction("CP1", "tx-A")
    assert record["meterLast"] == 1750 and record["energyWh"] == 750
    assert record["chargingState"] == "Charging"
    assert record["lastSeqNo"] == 1 and record["lastEventType"] == "Updated"

    charger.clock.advance(60)
    ended = transaction_event(
        "Ended",
        "tx-A",
        2,
        meter=[energy_sample_v2(3.5, unit="Wh", multiplier=3)],  # 3.5 kWh written as Wh x 10^3
        transactionInfo={"transactionId": "tx-A", "stoppedReason": "EVDisconnected"},
    )
    assert charger.result("TransactionEvent", ended) == {}
    record = charger.transaction("CP1", "tx-A")
    assert record["status"] == "Completed"
    assert record["meterStop"] == 3500 and record["energyWh"] == 2500
    assert record["stopReason"] == "EVDisconnected"
    assert record["stoppedAt"] == START_MS + 120_000
    assert len(charger.store.list_meter_values("CP1", "tx-A")) == 3
    assert charger.store.list_meter_values("CP1", "tx-A")[0]["meterValue"] == [energy_sample_v2(1000)]


def test_ended_without_reason_is_local(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    charger.result("TransactionEvent", transaction_event("Started", "t", 0))
    charger.result("TransactionEvent", transaction_event("Ended", "t", 1))
    record = charger.transaction("CP1", "t")
    assert record["status"] == "Completed" and record["stopReason"] == "Local"
    assert "energyWh" not in record  # no meter values at all


def test_unknown_token_is_invalid_and_recorded(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    event = transaction_event("Started", "t", 0, idToken={"idToken": "WHO", "type": "Central"})
    assert charger.result("TransactionEvent", event) == {"idTokenInfo": {"status": "Invalid"}}
    assert charger.transaction("CP1", "t")["authorizationStatus"] == "Invalid"


def test_transactions_are_per_station(make_charger, version) -> None:
    a: Charger = make_charger(version, cp="A")
    b: Charger = make_charger(version, cp="B")
    a.result("TransactionEvent", transaction_event("Started", "same-id", 0, meter=[energy_sample_v2(10)]))
    b.result("TransactionEvent", transaction_event("Started", "same-id", 0, meter=[energy_sample_v2(20)]))
    assert a.transaction("A", "same-id")["meterStart"] == 10
    assert a.transaction("B", "same-id")["meterStart"] == 20
    assert len(a.store.list_transactions()) == 2


def test_events_out_of_order(make_charger, version) -> None:
    # Queued while offline, delivered in any order: the result is the same transaction.
    charger: Charger = make_charger(version)
    ended = transaction_event("Ended", "tx-O", 2, meter=[energy_sample_v2(2500)], offline=True)
    updated = transaction_event("Updated", "tx-O", 1, meter=[energy_sample_v2(1500)], offline=True)
    started = transaction_event("Started", "tx-O", 0, meter=[energy_sample_v2(1000)], offline=True)
    for event in (ended, updated, started):
        charger.result("TransactionEvent", event)
    record = charger.transaction("CP1", "tx-O")
    assert record["status"] == "Completed"
    assert record["meterStart"] == 1000 and record["meterStop"] == 2500
    assert record["energyWh"] == 1500
    assert record["lastSeqNo"] == 2 and record["lastEventType"] in ("Ended", "Started")
    assert record["offlineEvents"] == 3


def test_updated_before_started(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    charger.result("TransactionEvent", transaction_event("Updated", "t", 1, meter=[energy_sample_v2(1300)]))
    assert charger.transaction("CP1", "t")["status"] == "Active"
    charger.result("TransactionEvent", transaction_event("Started", "t", 0, meter=[energy_sample_v2(1000)]))
    record = charger.transaction("CP1", "t")
    assert record["meterStart"] == 1000
    assert record["energyWh"] == 300
    assert record["status"] == "Active"


def test_unusable_readings_are_not_energy(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    charger.result("TransactionEvent", transaction_event("Started", "t", 0, meter=[energy_sample_v2(1000)]))
    # 1e300 kWh x 10^9 is beyond float range: not a reading (and nothing non-finite is stored).
    absurd = energy_sample_v2(1e300, unit="kWh", multiplier=9)
    charger.result("TransactionEvent", transaction_event("Updated", "t", 1, meter=[absurd]))
    record = charger.transaction("CP1", "t")
    assert record["meterStart"] == 1000
    assert record.get("energyWh") in (None, 0)
    assert record.get("meterLast") in (None, 1000)


def test_meter_values_outside_transactions(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    assert charger.result("MeterValues", {"evseId": 0, "meterValue": [energy_sample_v2(5)]}) == {}
    [stored] = charger.store.list_meter_values("CP1")
    assert stored["evseId"] == 0 and stored["transactionId"] is None
    assert stored["meterValue"] == [energy_sample_v2(5)]
