"""Reservations through the whole stack: the operator API reserves, a simulated station holds,
uses and cancels them (1.6 ReserveNow / StartTransaction reservationId / CancelReservation;
2.0.1 ReserveNow / TransactionEvent Started reservationId / CancelReservation)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ocpp_core.versions import OcppVersion
from simulator import messages
from simulator.station import Station

from .conftest import E2EStack, wait_for
from .test_operator_calls import _api, _http

TAG = "DEMO-TAG"  # known to the local stack


def _body(version: OcppVersion) -> dict[str, Any]:
    where = {"connectorId": 1} if version is OcppVersion.V16 else {"evseId": 1}
    return {"idTag": TAG, "expiryDate": messages.timestamp(messages.now_ms() + 600_000), **where}


def _connector_status(stack: E2EStack, cp: str) -> str | None:
    for status in stack.store().list_statuses(cp):
        if status.get("evseId", status.get("connectorId")) == 1:
            return str(status["status"])
    return None


def _reservation(stack: E2EStack, reservation_id: int) -> dict[str, Any]:
    status, record = _http("GET", f"{stack.api_url}/reservations/{reservation_id}")
    assert status == 200, record
    return dict(record)


async def _until(predicate: Any, timeout: float = 10.0) -> Any:
    """``wait_for`` off the event loop, so the station keeps answering meanwhile."""
    return await asyncio.to_thread(wait_for, predicate, timeout)


@pytest.mark.parametrize("version", [OcppVersion.V16, OcppVersion.V201], ids=lambda v: v.value)
def test_reserve_use_and_cancel(stack: E2EStack, version: OcppVersion) -> None:
    cp = f"RSV-{version.value.replace('ocpp', 'V').replace('.', '')}"
    base = f"{stack.api_url}/chargers/{cp}/reservations"

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with Station(cp, version, url=stack.ws_url, call_timeout=20) as station:
            await station.boot()
            await station.status(1, "Available")
            await _until(lambda: _connector_status(stack, cp) == "Available")

            # Reserve: the station accepts and reports the connector Reserved.
            status, created = await _api("POST", f"{base}?wait=10", _body(version))
            assert status == 200, created
            out["created"] = created
            first = created["reservation"]["reservationId"]
            out["reserved_on_station"] = await _until(lambda: station.connectors[1].status == "Reserved", 5)
            out["reserved_in_csms"] = await _until(lambda: _connector_status(stack, cp) == "Reserved")

            # The reserved driver starts a session on it: the start carries the reservation.
            await station.authorize(TAG)
            tx = await station.start_transaction(1, TAG)
            out["tx_reservation"], out["tx_id"] = tx.reservation_id, str(tx.transaction_id)
            await station.status(1, "Charging")
            out["used"] = await _until(lambda: (r := _reservation(stack, first))["status"] == "Used" and r)
            await station.stop_transaction(1)
            await station.status(1, "Available")

            # A second one, cancelled: the station accepts the CancelReservation.
            status, second = await _api("POST", f"{base}?wait=10", _body(version))
            assert status == 200 and second["reservation"]["status"] == "Accepted", second
            rid = second["reservation"]["reservationId"]
            out["cancel"] = await _api("DELETE", f"{stack.api_url}/reservations/{rid}?wait=10")
            out["held_after_cancel"] = dict(station.reservations)
            out["after_cancel"] = await _until(lambda: _connector_status(stack, cp) == "Available")
            out["cancelled"] = await _until(lambda: (r := _reservation(stack, rid))["status"] == "Cancelled" and r)
        return out

    out = asyncio.run(asyncio.wait_for(run(), timeout=60))
    created = out["created"]
    assert created["reservation"]["status"] == "Accepted", created
    assert created["call"]["action"] == "ReserveNow" and created["call"]["response"] == {"status": "Accepted"}
    assert out["reserved_on_station"], "the station did not report the connector Reserved"
    assert out["reserved_in_csms"], "the CSMS never stored the Reserved status"
    assert out["tx_reservation"] == created["reservation"]["reservationId"]
    assert out["used"], "the reservation never read Used"
    assert out["used"]["transactionId"] == out["tx_id"]

    cancel_status, cancelled = out["cancel"]
    assert cancel_status == 200, cancelled
    assert cancelled["call"]["action"] == "CancelReservation"
    assert cancelled["call"]["response"] == {"status": "Accepted"}
    assert cancelled["reservation"]["status"] == "Cancelled"
    assert out["held_after_cancel"] == {}
    assert out["after_cancel"], "the connector did not go back to Available"
    assert out["cancelled"]["status"] == "Cancelled"
