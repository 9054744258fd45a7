"""Whole charging sessions through the running local stack, one per OCPP version.

The simulator is the charger; what the processor stored is read back from the stack's moto.
"""

from __future__ import annotations

import asyncio

import pytest

from ocpp_core.handlers.transactions import transaction_view
from ocpp_core.versions import OcppVersion
from simulator.station import Station

from .conftest import E2EStack, wait_for


@pytest.mark.parametrize("version", list(OcppVersion), ids=lambda v: v.value)
def test_full_session_is_stored(stack: E2EStack, version: OcppVersion) -> None:
    cp = f"E2E-{version.value.replace('ocpp', 'V').replace('.', '')}"

    async def session() -> tuple[dict, object, dict]:
        async with Station(cp, version, url=stack.ws_url, call_timeout=20) as station:
            boot = await station.boot()
            await station.status(1, "Available")
            auth = await station.authorize("DEMO-TAG")
            transaction = await station.start_transaction(1, "DEMO-TAG", meter_start=10_000)
            await station.meter_values(1, energy_wh=12_500)
            await station.meter_values(1, energy_wh=15_000)
            await station.stop_transaction(1, meter_stop=17_250)
            await station.status(1, "Available")
            return boot, transaction, auth

    boot, transaction, auth = asyncio.run(asyncio.wait_for(session(), timeout=90))
    assert boot["status"] == "Accepted" and boot["interval"] == 300
    assert (auth.get("idTagInfo") or auth.get("idTokenInfo"))["status"] == "Accepted"
    tx_id = str(transaction.transaction_id)
    if version is OcppVersion.V16:
        assert tx_id.isdigit()

    stack.settle()
    store = stack.store()
    stored = wait_for(
        lambda: (t := store.get_transaction(cp, tx_id)) and t.get("status") == "Completed" and t, timeout=15
    )
    assert stored, store.get_transaction(cp, tx_id)
    assert stored["meterStart"] == 10_000
    assert stored["meterStop"] == 17_250
    assert transaction_view(stored)["energyWh"] == 7_250  # derived from the readings when read
    assert stored["authorizationStatus"] == "Accepted"
    charger = store.get_charger(cp)
    assert charger is not None and charger["protocol"] == version.value and charger["bootStatus"] == "Accepted"
    assert charger["lastSeen"] >= charger["bootAt"]
    statuses = store.list_statuses(cp)
    assert [s["status"] for s in statuses] == ["Available"]
    samples = store.list_meter_values(cp, tx_id)
    assert len(samples) >= 2
