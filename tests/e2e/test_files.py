"""Uploads and firmware through the running local stack (DESIGN §11), in both delivery modes:
the operator sends GetDiagnostics (1.6, the station POSTs multipart) or GetLog (2.0.1, the station
PUTs) without a location, the CSMS fills one in, the file arrives, is listed and downloaded; the
same URL is refused a second file; a firmware image stored with POST /firmware is what the
station downloads for UpdateFirmware; the events say so once each."""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from ocpp_core.versions import OcppVersion
from simulator.station import Station

from .conftest import E2EStack, wait_for


def _http(method: str, url: str, body: Any = None, *, raw: bytes | None = None) -> tuple[int, Any]:
    data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
    kind = "application/octet-stream" if raw is not None else "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": kind})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            content = response.read()
            return response.status, json.loads(content) if content[:1] in (b"{", b"[") else content
    except urllib.error.HTTPError as error:
        content = error.read()
        return error.code, json.loads(content) if content[:1] == b"{" else content


def _events(stack: E2EStack, cp: str) -> list[dict[str, Any]]:
    path = stack.log.parent / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, filter(None, lines)) if e["chargePointId"] == cp]


CASES = {
    OcppVersion.V16: ("post", "GetDiagnostics", {}, "diagnostics"),
    OcppVersion.V201: ("put", "GetLog", {"logType": "DiagnosticsLog", "requestId": 7, "log": {}}, "log"),
}


@pytest.mark.parametrize("version", list(CASES), ids=lambda v: v.value)
def test_an_upload_and_a_firmware_update_end_to_end(stack: E2EStack, version: OcppVersion) -> None:
    method, action, payload, kind = CASES[version]
    cp = f"FILES-{version.value.replace('ocpp', 'V').replace('.', '')}"
    image = hashlib.sha256(cp.encode()).digest() * 4000  # 128 KB
    status, firmware = _http("POST", f"{stack.api_url}/firmware?name=fw-{cp}.bin", raw=image)
    assert status == 201, firmware
    assert firmware["sha256"] == hashlib.sha256(image).hexdigest() and firmware["size"] == len(image)

    async def run() -> tuple[Station, dict[str, Any]]:
        async with Station(cp, version, url=stack.ws_url, call_timeout=20, upload_method=method) as station:
            await station.boot()
            # the bridge's connected event goes its own way (delayed in the aws mode): calls wait for it
            await _until_connected(stack, cp)
            call = await asyncio.to_thread(
                _http, "POST", f"{stack.api_url}/chargers/{cp}/calls?wait=10", {"action": action, "payload": payload}
            )
            await _until(lambda: station.files.uploads and station.files.uploads[-1].status)
            if version is OcppVersion.V16:
                update = {"location": firmware["downloadUrl"], "retrieveDate": "2026-01-01T00:00:00Z"}
            else:
                update = {
                    "requestId": 8,
                    "firmware": {"location": firmware["downloadUrl"], "retrieveDateTime": "2026-01-01T00:00:00Z"},
                }
            await asyncio.to_thread(
                _http,
                "POST",
                f"{stack.api_url}/chargers/{cp}/calls?wait=10",
                {"action": "UpdateFirmware", "payload": update},
            )
            await _until(lambda: station.files.firmware is not None)
            await asyncio.sleep(0.5)  # the last FirmwareStatusNotification
            return station, call[1]

    station, call = asyncio.run(asyncio.wait_for(run(), timeout=90))
    assert call["status"] == "accepted", call
    location = call["payload"]["location"] if version is OcppVersion.V16 else call["payload"]["log"]["remoteLocation"]
    assert location.startswith(stack.files_url + "/upload/")
    (upload,) = station.files.uploads
    assert upload.status == "Uploaded" and upload.method == method

    stack.settle()
    files = wait_for(lambda: _http("GET", f"{stack.api_url}/chargers/{cp}/files")[1]["files"], timeout=10)
    (received,) = files
    assert received["kind"] == kind and received["size"] == upload.size and received["uniqueId"] == call["uniqueId"]
    assert wait_for(
        lambda: _http("GET", f"{stack.api_url}/chargers/{cp}/files")[1]["files"][0].get("status") == "Uploaded",
        timeout=10,
    )
    status, content = _http("GET", received["downloadUrl"])
    assert status == 200 and len(content) == upload.size and cp.encode() in content

    status, _ = _http("PUT", location, raw=b"a second file")  # one file per URL
    assert status == 409
    assert len(_http("GET", f"{stack.api_url}/chargers/{cp}/files")[1]["files"]) == 1

    assert station.files.firmware is not None and station.files.firmware.sha256 == firmware["sha256"]
    history = wait_for(
        lambda: (
            (h := _http("GET", f"{stack.api_url}/chargers/{cp}/firmware")[1]) and h.get("status") == "Installed" and h
        ),
        timeout=10,
    )
    assert [step["status"] for step in history["history"]] == ["Downloading", "Downloaded", "Installing", "Installed"]

    stack.settle()

    def progress() -> list[str]:  # the events follow the stored state by a stream poll or two
        return sorted(e["detail"]["status"] for e in _events(stack, cp) if e["type"] == "FirmwareStatusChanged")

    steps = sorted(["Downloading", "Downloaded", "Installing", "Installed"])
    assert wait_for(lambda: progress() == steps, timeout=10), progress()
    events = _events(stack, cp)
    assert [e["detail"]["fileId"] for e in events if e["type"] == "FileReceived"] == [received["fileId"]]


async def _until(predicate: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.05)


async def _until_connected(stack: E2EStack, cp: str, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, charger = await asyncio.to_thread(_http, "GET", f"{stack.api_url}/chargers/{cp}")
        if status == 200 and charger.get("connected"):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{cp} not shown connected: {status} {charger}")
        await asyncio.sleep(0.05)
