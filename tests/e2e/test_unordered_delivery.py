"""State that two frames of one charger leave, whatever order the CSMS processes them in.

OCPP-J allows one outstanding CALL per direction, so a charger that waits for each answer
never has two of its CALLs in flight at once. But on AWS a frame can sit in Lambda's event
queue (throttled, or retried after an error) long after the charger's call timed out; the
charger then goes on (OCPP 1.6 J §4.1.1: a new message after the timeout) and its next frame
may be processed first (DESIGN §7). This charger does exactly what the wire then shows: it sends
a StatusNotification `Charging` and, without waiting for its answer, the newer `Available`
(timestamps one second apart), on six connectors. In order, every connector ends Available;
under aws delivery (unordered) the older status, processed last, must not win.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import websockets

from .conftest import E2EStack, wait_for

CONNECTORS = range(1, 7)


async def _pipelined_statuses(url: str, cp: str) -> list[Any]:
    async with websockets.connect(f"{url}/{cp}", subprotocols=["ocpp1.6"]) as ws:
        boot_id = str(uuid.uuid4())
        boot = {"chargePointVendor": "OCA", "chargePointModel": "Unordered"}
        await ws.send(json.dumps([2, boot_id, "BootNotification", boot]))
        while json.loads(await ws.recv())[1] != boot_id:
            pass
        sent: set[str] = set()
        for connector in CONNECTORS:
            for status, ts in (("Charging", "2026-03-01T10:00:00Z"), ("Available", "2026-03-01T10:00:01Z")):
                unique_id = str(uuid.uuid4())
                sent.add(unique_id)
                payload = {"connectorId": connector, "errorCode": "NoError", "status": status, "timestamp": ts}
                await ws.send(json.dumps([2, unique_id, "StatusNotification", payload]))
        answers: list[Any] = []
        answered: set[str] = set()
        async with asyncio.timeout(30):
            while answered != sent:
                frame = json.loads(await ws.recv())
                answers.append(frame)
                answered.add(frame[1])
        return answers


def test_the_newer_status_wins_whatever_the_processing_order(stack: E2EStack) -> None:
    cp = "UNORDERED-STATUS"
    answers = asyncio.run(asyncio.wait_for(_pipelined_statuses(stack.ws_url, cp), timeout=60))
    assert all(frame[0] == 3 for frame in answers), answers
    stack.settle()
    store = stack.store()
    expected = {connector: "Available" for connector in CONNECTORS}

    def final() -> dict[int, str]:
        return {s["connectorId"]: s["status"] for s in store.list_statuses(cp) if s.get("connectorId") in expected}

    assert wait_for(lambda: final() == expected, timeout=5), final()
