"""A charger we did not write: the ``ocpp`` library's own ChargePoint, OCPP 1.6, a whole session."""

from __future__ import annotations

import asyncio
from typing import Any

import websockets
from ocpp.v16 import ChargePoint, call
from ocpp.v16.enums import AuthorizationStatus, ChargePointErrorCode, ChargePointStatus, RegistrationStatus

from ocpp_core.handlers.transactions import transaction_view
from tests.fakes import charger_connected

from .conftest import E2EStack, wait_for

TS = "2026-03-01T10:00:00Z"


async def _session(url: str, cp_id: str) -> dict[str, Any]:
    async with websockets.connect(f"{url}/{cp_id}", subprotocols=["ocpp1.6"]) as ws:
        assert ws.subprotocol == "ocpp1.6"
        cp = ChargePoint(cp_id, ws)
        reader = asyncio.create_task(cp.start())
        try:
            boot = await cp.call(call.BootNotification(charge_point_vendor="OCA", charge_point_model="LibCP"))
            heartbeat = await cp.call(call.Heartbeat())
            await cp.call(
                call.StatusNotification(
                    connector_id=1, error_code=ChargePointErrorCode.no_error, status=ChargePointStatus.available
                )
            )
            auth = await cp.call(call.Authorize(id_tag="DEMO-TAG"))
            unknown = await cp.call(call.Authorize(id_tag="NOBODY"))
            start = await cp.call(
                call.StartTransaction(connector_id=1, id_tag="DEMO-TAG", meter_start=1000, timestamp=TS)
            )
            await cp.call(
                call.MeterValues(
                    connector_id=1,
                    transaction_id=start.transaction_id,
                    meter_value=[{"timestamp": TS, "sampledValue": [{"value": "2500", "unit": "Wh"}]}],
                )
            )
            stop = await cp.call(
                call.StopTransaction(
                    meter_stop=4200, timestamp=TS, transaction_id=start.transaction_id, id_tag="DEMO-TAG"
                )
            )
        finally:
            reader.cancel()
        return {"boot": boot, "heartbeat": heartbeat, "auth": auth, "unknown": unknown, "start": start, "stop": stop}


def test_ocpp_library_charge_point_full_session(stack: E2EStack) -> None:
    result = asyncio.run(asyncio.wait_for(_session(stack.ws_url, "LIB-CP-1"), timeout=60))
    assert result["boot"].status == RegistrationStatus.accepted
    assert result["boot"].interval == 300
    assert result["heartbeat"].current_time.endswith("Z")
    assert result["auth"].id_tag_info["status"] == AuthorizationStatus.accepted
    assert result["unknown"].id_tag_info["status"] == AuthorizationStatus.invalid
    tx_id = result["start"].transaction_id
    assert isinstance(tx_id, int) and tx_id >= 1
    assert result["stop"].id_tag_info["status"] == AuthorizationStatus.accepted

    stack.settle()
    store = stack.store()
    transaction = wait_for(
        lambda: (t := store.get_transaction("LIB-CP-1", str(tx_id))) and t.get("status") == "Completed" and t
    )
    assert transaction, store.get_transaction("LIB-CP-1", str(tx_id))
    transaction = transaction_view(transaction)  # the energy is derived when read
    assert transaction["meterStart"] == 1000 and transaction["meterStop"] == 4200 and transaction["energyWh"] == 3200
    charger = store.get_charger("LIB-CP-1")
    assert charger is not None
    assert charger["bootStatus"] == "Accepted" and charger["boot"]["chargePointModel"] == "LibCP"
    assert charger["protocol"] == "ocpp1.6" and charger.get("connectionId"), charger
    # The session closed its socket: the bridge's `disconnected` event marks it offline.
    assert wait_for(lambda: not charger_connected(store, "LIB-CP-1"))
    connection = store.get_connections([("LIB-CP-1", charger["connectionId"])])[("LIB-CP-1", charger["connectionId"])]
    assert connection["disconnectedAt"] >= connection["connectedAt"]
    statuses = store.list_statuses("LIB-CP-1")
    assert [s["status"] for s in statuses] == ["Available"]
    assert store.list_meter_values("LIB-CP-1", str(tx_id))
