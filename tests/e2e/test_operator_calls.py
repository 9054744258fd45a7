"""CSMS-initiated calls from the operator API, through the stack, answered by simulated stations."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from ocpp_core.versions import OcppVersion
from simulator.station import Station

from .conftest import E2EStack, wait_for


def _http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


async def _api(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    # Blocking HTTP off the event loop, so the station keeps answering meanwhile.
    return await asyncio.to_thread(_http, method, url, body)


CALLS: dict[OcppVersion, list[tuple[str, dict[str, Any]]]] = {
    OcppVersion.V16: [
        ("GetConfiguration", {"key": ["HeartbeatInterval"]}),
        ("ChangeConfiguration", {"key": "HeartbeatInterval", "value": "120"}),
        ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
        ("ClearCache", {}),
        ("RemoteStartTransaction", {"idTag": "DEMO-TAG", "connectorId": 1}),
    ],
    OcppVersion.V201: [
        (
            "GetVariables",
            {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]},
        ),
        ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
        (
            "RequestStartTransaction",
            {"idToken": {"idToken": "DEMO-TAG", "type": "ISO14443"}, "remoteStartId": 77, "evseId": 1},
        ),
    ],
    OcppVersion.V21: [
        (
            "GetVariables",
            {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]},
        ),
        (
            "RequestStartTransaction",
            {"idToken": {"idToken": "DEMO-TAG", "type": "ISO14443"}, "remoteStartId": 78, "evseId": 1},
        ),
    ],
}


@pytest.mark.parametrize("version", list(OcppVersion), ids=lambda v: v.value)
def test_operator_calls_are_answered_by_stations(stack: E2EStack, version: OcppVersion) -> None:
    cp = f"OPS-{version.value.replace('ocpp', 'V').replace('.', '')}"
    base = f"{stack.api_url}/chargers/{cp}"

    async def run() -> dict[str, Any]:
        results: dict[str, Any] = {}
        async with Station(cp, version, url=stack.ws_url, call_timeout=20) as station:
            await station.boot()
            await station.status(1, "Available")
            for action, payload in CALLS[version]:
                status, record = await _api("POST", f"{base}/calls?wait=20", {"action": action, "payload": payload})
                assert status == 200, (action, record)
                results[action] = record
            # A station that is busy with one call: the second is refused (one outstanding per direction).
            # Both are sent at once: the first answer needs a round trip through the station, so the
            # other POST meets the pending call (sent one after the other, a fast station could answer
            # the first before the second arrives).
            trigger = {"action": "TriggerMessage", "payload": {"requestedMessage": "Heartbeat"}}
            both = await asyncio.gather(_api("POST", f"{base}/calls", trigger), _api("POST", f"{base}/calls", trigger))
            first, second = sorted(both, key=lambda answer: answer[0])
            results["busy"] = (first, second)
            final = await _api("GET", f"{base}/calls/{first[1]['uniqueId']}")
            for _ in range(100):
                if final[1]["status"] != "pending":
                    break
                await asyncio.sleep(0.1)
                final = await _api("GET", f"{base}/calls/{first[1]['uniqueId']}")
            results["first_final"] = final
            await asyncio.sleep(0.5)  # let the remote-started transaction reach the CSMS
        return results

    results = asyncio.run(asyncio.wait_for(run(), timeout=120))
    for action, _ in CALLS[version]:
        assert results[action]["status"] == "accepted", (action, results[action])
    (first_status, first), (second_status, second) = results["busy"]
    assert first_status == 202 and first["status"] == "pending"
    assert second_status == 409 and "pending" in second["error"]
    assert results["first_final"][1]["status"] == "accepted"

    stack.settle()
    store = stack.store()
    charger = store.get_charger(cp)
    assert charger is not None
    if version is OcppVersion.V16:
        assert results["GetConfiguration"]["response"]["configurationKey"][0]["key"] == "HeartbeatInterval"
        # the CSMS keeps what the charger reported, updated by the accepted change
        assert store.get_charger_map(cp, "configuration")["HeartbeatInterval"]["value"] == "120"
        started = wait_for(lambda: [t for t in store.list_transactions(cp) if t.get("idTag") == "DEMO-TAG"])
    else:
        assert store.get_charger_map(cp, "variables")["OCPPCommCtrlr/HeartbeatInterval"]
        remote_id = CALLS[version][-1][1]["remoteStartId"]
        started = wait_for(lambda: [t for t in store.list_transactions(cp) if t.get("remoteStartId") == remote_id])
    assert started, store.list_transactions(cp)


def test_refusals_through_the_stack(stack: E2EStack) -> None:
    cp = "OPS-REFUSE"

    async def run() -> dict[str, tuple[int, Any]]:
        out: dict[str, tuple[int, Any]] = {}
        async with Station(cp, OcppVersion.V16, url=stack.ws_url) as station:
            await station.boot()
            base = f"{stack.api_url}/chargers/{cp}/calls"
            out["wrong_version"] = await _api("POST", base, {"action": "RequestStartTransaction", "payload": {}})
            out["invalid"] = await _api("POST", base, {"action": "Reset", "payload": {"type": "Sideways"}})
            out["unknown"] = await _api(
                "POST", f"{stack.api_url}/chargers/NOBODY-HERE/calls", {"action": "Reset", "payload": {"type": "Soft"}}
            )
        out["offline"] = await _api(
            "POST", f"{stack.api_url}/chargers/{cp}/calls", {"action": "Reset", "payload": {"type": "Soft"}}
        )
        return out

    out = asyncio.run(asyncio.wait_for(run(), timeout=60))
    assert out["wrong_version"][0] == 400 and "ocpp1.6" in out["wrong_version"][1]["error"]
    assert out["invalid"][0] == 400
    assert out["unknown"][0] == 404
    # After the station disconnected, presence says so (the bridge's event, through the lifecycle Lambda).
    assert out["offline"][0] == 409 or wait_for(
        lambda: (
            _http("POST", f"{stack.api_url}/chargers/{cp}/calls", {"action": "Reset", "payload": {"type": "Soft"}})[0]
            == 409
        )
    )
