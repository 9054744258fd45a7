"""Domain events through the running local stack (DESIGN §11): a 1.6 and a 2.0.1 session each make
their events once, in ``events.jsonl`` and at the webhook, in both delivery modes (the aws mode
duplicates and redelivers frames late: none of that may show as a second event)."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest

from ocpp_core.versions import OcppVersion
from simulator.station import Station

from .conftest import E2EStack, WebhookReceiver, wait_for


def _events_file(stack: E2EStack) -> list[dict[str, Any]]:
    path = stack.log.parent / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _of(events: list[dict[str, Any]], cp: str) -> list[dict[str, Any]]:
    return [e for e in events if e["chargePointId"] == cp]


@pytest.mark.parametrize("version", [OcppVersion.V16, OcppVersion.V201], ids=lambda v: v.value)
def test_a_session_makes_each_event_once(
    stack: E2EStack, webhooks: dict[str, WebhookReceiver], version: OcppVersion
) -> None:
    cp = f"EVT-{version.value.replace('ocpp', 'V').replace('.', '')}"
    security = (
        ("SecurityEventNotification", {"type": "TamperDetectionActivated", "timestamp": "2026-12-02T06:00:00Z"})
        if version.is_2x
        else ("DataTransfer", {"vendorId": "none"})
    )

    async def session() -> str:
        async with Station(cp, version, url=stack.ws_url, call_timeout=20) as station:
            await station.boot()
            await station.status(1, "Available")
            transaction = await station.start_transaction(1, "DEMO-TAG", meter_start=1_000)
            await station.meter_values(1, energy_wh=2_000)
            await station.stop_transaction(1, meter_stop=4_500)
            await station.status(1, "Available")
            await station.call(*security)
            return str(transaction.transaction_id)

    transaction_id = asyncio.run(asyncio.wait_for(session(), timeout=90))
    stack.settle()
    expected = {"ChargerConnected", "ChargerBooted", "TransactionStarted", "TransactionEnded", "ChargerDisconnected"}
    if version.is_2x:
        expected.add("SecurityEventReceived")

    def complete() -> list[dict[str, Any]] | None:
        events = _of(_events_file(stack), cp)
        return events if expected <= {e["type"] for e in events} else None

    events = wait_for(complete, timeout=20) or _of(_events_file(stack), cp)
    assert expected <= {e["type"] for e in events}, [e["type"] for e in events]
    stack.settle()  # a late redelivery must not add a second event: give it its time
    events = _of(_events_file(stack), cp)
    assert len({e["id"] for e in events}) == len(events), Counter(e["type"] for e in events)
    counts = Counter(e["type"] for e in events)
    for kind in expected:
        assert counts[kind] == 1, (kind, counts)

    (ended,) = [e for e in events if e["type"] == "TransactionEnded"]
    assert ended["detail"]["transactionId"] == transaction_id
    assert ended["detail"]["energyWh"] == 3_500
    assert ended["detail"]["idToken"] == "DEMO-TAG"
    assert ended["detail"]["durationS"] >= 0
    assert ended["detail"]["stopReason"]
    statuses = [e["detail"]["status"] for e in events if e["type"] == "ConnectorStatusChanged"]
    assert statuses and statuses[-1] == "Available"
    for event in events:
        assert set(event) == {"type", "id", "chargePointId", "at", "detail"}

    # the webhook got the same events (it may still be catching up: bounded wait)
    receiver = webhooks[stack.delivery.mode.value]
    ids = {e["id"] for e in events}
    got = wait_for(lambda: ids <= {e["id"] for e in receiver.events()}, timeout=10)
    assert got, ids - {e["id"] for e in receiver.events()}
    assert Counter(e["id"] for e in receiver.events() if e["id"] in ids) == Counter(ids)
