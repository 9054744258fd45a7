"""Files and firmware through the operator API (in-memory store, the local file host and its real
file server on a free port): upload URLs filled into GetDiagnostics / GetLog, received files with
their status, firmware stored and downloaded, and a clear 400 for every bad input."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from lambdas import runtime
from lambdas.files.local import LocalFileHost
from lambdas.operator_api import handle
from lambdas.runtime import Dependencies
from lambdas.settings import Settings
from local_stack.file_server import FileServer
from local_stack.ports import free_port
from ocpp_core.config import UnknownChargerPolicy
from ocpp_core.memory_store import InMemoryStore
from tests.fakes import FakeClock

from .support import Answer, connect, event, from_charger, make_deps, request

FIRMWARE_LIMIT = 64 * 1024


@pytest.fixture
def deps(tmp_path: Path) -> Iterator[Dependencies]:
    settings = Settings(
        call_timeout_s=30,
        max_wait_s=5,
        unknown_chargers=UnknownChargerPolicy.ACCEPT,
        firmware_max_bytes=FIRMWARE_LIMIT,
        upload_url_ttl_s=600,
    )
    clock = FakeClock()
    injected = make_deps(InMemoryStore(lock=threading.RLock()), settings=settings, clock=clock)
    port = free_port()
    injected.files = LocalFileHost(tmp_path, f"http://127.0.0.1:{port}", clock_s=clock.now_s)
    server = FileServer(
        "127.0.0.1",
        port,
        store=injected.store,
        files=injected.files,
        now_ms=injected.clock.now_ms,
        max_bytes=1024 * 1024,
        socket_timeout_s=5,
    ).start()
    runtime.configure(injected)
    yield injected
    runtime.configure(None)
    server.stop()


def _published(deps: Dependencies) -> list[Any]:
    return [json.loads(payload) for _, payload, _ in deps.publisher.messages]  # type: ignore[attr-defined]


def _http(method: str, url: str, body: bytes = b"") -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request(method, parts.path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _firmware(body: bytes, name: str = "fw-1.2.bin", content_type: str = "application/octet-stream") -> Answer:
    """``POST /firmware`` as API Gateway sends a binary body: base64, ``isBase64Encoded``."""
    ev = event("POST", "/firmware", query={"name": name})
    ev["headers"] = {"content-type": content_type}
    ev["body"] = base64.b64encode(body).decode()
    ev["isBase64Encoded"] = True
    response = handle(ev)
    return Answer(response["statusCode"], json.loads(response["body"]), response["headers"])


# --- upload requests filled into the calls ----------------------------------------------------
def test_get_diagnostics_without_a_location_gets_an_upload_url(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    answer = request("POST", "/chargers/CP1/calls", {"action": "GetDiagnostics", "payload": {}})
    assert answer.status == 202, answer.body
    uid = answer.body["uniqueId"]
    [frame] = _published(deps)
    location = frame[3]["location"]
    assert frame[:3] == [2, uid, "GetDiagnostics"] and answer.body["payload"] == {"location": location}
    [upload] = request("GET", "/chargers/CP1/uploads").body["uploads"]
    assert location == f"{deps.files.base_url}/upload/{upload['uploadId']}"  # type: ignore[union-attr]
    assert (upload["uniqueId"], upload["kind"], upload["status"]) == (uid, "diagnostics", "Requested")
    assert "requestId" not in upload

    # the charger uploads (multipart, with a file name appended to the URL), then reports
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="diag"; filename="CP1-diag.zip"\r\n\r\n'.encode()
        + b"PK\x03\x04 zip bytes"
        + f"\r\n--{boundary}--\r\n".encode()
    )
    status, _ = _upload(location + "/CP1-diag.zip", body, f"multipart/form-data; boundary={boundary}")
    assert status == 201
    from_charger(deps, "CP1", "ocpp1.6", [2, "n1", "DiagnosticsStatusNotification", {"status": "Uploaded"}])
    [listed] = request("GET", "/chargers/CP1/files").body["files"]
    assert listed["name"] == "CP1-diag.zip" and listed["size"] == 14 and listed["status"] == "Uploaded"
    assert (listed["uniqueId"], listed["kind"], listed["uploadId"]) == (uid, "diagnostics", upload["uploadId"])
    assert listed["requestId"] is None and listed["receivedAt"].endswith("Z")
    assert _http("GET", listed["downloadUrl"]) == (200, b"PK\x03\x04 zip bytes")
    one = request("GET", f"/chargers/CP1/files/{listed['fileId']}")
    assert one.status == 200 and one.body["fileId"] == listed["fileId"]


def _upload(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("POST", parts.path, body=body, headers={"content-type": content_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("protocol", ["ocpp2.0.1", "ocpp2.1"])
def test_get_log_gets_a_location_and_a_request_id(deps: Dependencies, protocol: str) -> None:
    connect(deps, "CP1", protocol)
    answer = request("POST", "/chargers/CP1/calls", {"action": "GetLog", "payload": {"logType": "DiagnosticsLog"}})
    assert answer.status == 202, answer.body
    payload = _published(deps)[0][3]
    assert payload["log"]["remoteLocation"].startswith(deps.files.base_url + "/upload/")  # type: ignore[union-attr]
    assert isinstance(payload["requestId"], int) and payload["requestId"] > 0
    [upload] = request("GET", "/chargers/CP1/uploads").body["uploads"]
    assert upload["requestId"] == payload["requestId"] and upload["uniqueId"] == answer.body["uniqueId"]

    given = {"logType": "SecurityLog", "requestId": 42, "log": {"oldestTimestamp": "2025-06-01T00:00:00Z"}}
    from_charger(deps, "CP1", protocol, [3, answer.body["uniqueId"], {"status": "Accepted"}])
    second = request("POST", "/chargers/CP1/calls", {"action": "GetLog", "payload": given})
    assert second.status == 202, second.body
    sent = _published(deps)[1][3]
    assert sent["requestId"] == 42 and sent["log"]["oldestTimestamp"] == "2025-06-01T00:00:00Z"
    # the charger PUTs the file and reports by requestId
    assert _http("PUT", sent["log"]["remoteLocation"], b"security log")[0] == 201
    from_charger(deps, "CP1", protocol, [2, "n1", "LogStatusNotification", {"status": "Uploaded", "requestId": 42}])
    [listed] = request("GET", "/chargers/CP1/files").body["files"]
    assert (listed["name"], listed["requestId"], listed["status"], listed["kind"]) == ("log.log", 42, "Uploaded", "log")


def test_a_location_given_by_the_operator_is_left_alone(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    payload = {"location": "ftp://files.example.com/diag/"}
    assert request("POST", "/chargers/CP1/calls", {"action": "GetDiagnostics", "payload": payload}).status == 202
    assert _published(deps)[0][3] == payload
    assert request("GET", "/chargers/CP1/uploads").body["uploads"] == []


def test_a_refused_call_leaves_no_upload_request(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp2.0.1")
    # GetDiagnostics is not a 2.0.1 action: refused after the upload was prepared
    answer = request("POST", "/chargers/CP1/calls", {"action": "GetDiagnostics", "payload": {}})
    assert answer.status == 400
    assert request("GET", "/chargers/CP1/uploads").body["uploads"] == []
    assert deps.store.list_uploads("CP1") == []


def test_without_file_hosting_the_schema_asks_for_the_location(deps: Dependencies) -> None:
    deps.files = None
    connect(deps, "CP1", "ocpp1.6")
    answer = request("POST", "/chargers/CP1/calls", {"action": "GetDiagnostics", "payload": {}})
    assert answer.status == 400 and "location" in answer.body["error"]
    assert _firmware(b"x").status == 503


# --- firmware -----------------------------------------------------------------------------------
def test_post_firmware_round_trip_with_independent_checksums(deps: Dependencies) -> None:
    image = bytes(range(256)) * 100 + b"\xff\xfe not utf-8"
    created = _firmware(image)
    assert created.status == 201, created.body
    body = created.body
    assert set(body) == {"firmwareId", "name", "size", "sha256", "md5", "downloadUrl", "createdAt"}
    assert body["sha256"] == hashlib.sha256(image).hexdigest()
    assert body["md5"] == hashlib.md5(image).hexdigest()
    assert (body["name"], body["size"]) == ("fw-1.2.bin", len(image))
    assert created.headers["location"] == f"/firmware/{body['firmwareId']}"
    with urllib.request.urlopen(body["downloadUrl"], timeout=5) as response:
        assert hashlib.sha256(response.read()).hexdigest() == body["sha256"]
    assert request("GET", "/firmware").body["firmware"] == [body]
    assert request("GET", f"/firmware/{body['firmwareId']}").body == body


def test_charger_firmware_status_and_history(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp2.0.1")
    for i, status in enumerate(["Downloading", "Downloaded", "Installing", "Installed"]):
        deps.clock.advance(1)  # type: ignore[attr-defined]
        frame = [2, f"f{i}", "FirmwareStatusNotification", {"status": status, "requestId": 9}]
        from_charger(deps, "CP1", "ocpp2.0.1", frame)
    view = request("GET", "/chargers/CP1/firmware").body
    assert view["status"] == "Installed" and view["statusAt"].endswith("Z")
    assert [(h["status"], h["requestId"]) for h in view["history"]] == [
        ("Downloading", 9),
        ("Downloaded", 9),
        ("Installing", 9),
        ("Installed", 9),
    ]


# --- bad input: 400 (or 404 / 413) with one sentence ----------------------------------------------
def _one_sentence(answer: Answer) -> None:
    message = answer.body["error"]
    assert message.endswith(".") and message.count(". ") == 0, message


@pytest.mark.parametrize(
    ("name", "body", "content_type", "status"),
    [
        (None, b"img", "application/octet-stream", 400),
        ("../fw.bin", b"img", "application/octet-stream", 400),
        ("a\\b", b"img", "application/octet-stream", 400),
        ("", b"img", "application/octet-stream", 400),
        ("fw.bin", b"", "application/octet-stream", 400),
        ("fw.bin", b"{}", "application/json", 400),
        ("fw.bin", b"x" * (FIRMWARE_LIMIT + 1), "application/octet-stream", 413),
    ],
)
def test_bad_firmware_uploads(
    deps: Dependencies, name: str | None, body: bytes, content_type: str, status: int
) -> None:
    ev = event("POST", "/firmware", query={"name": name} if name is not None else None)
    ev["headers"] = {"content-type": content_type}
    if body:
        ev["body"] = base64.b64encode(body).decode()
        ev["isBase64Encoded"] = True
    response = handle(ev)
    answer = Answer(response["statusCode"], json.loads(response["body"]))
    assert answer.status == status, answer.body
    _one_sentence(answer)
    assert deps.store.list_firmware() == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/firmware/not-an-id!", 400),
        ("GET", "/firmware/0123abc", 404),
        ("DELETE", "/firmware", 405),
        ("GET", "/chargers/NOPE/files", 404),
        ("GET", "/chargers/NOPE/uploads", 404),
        ("GET", "/chargers/NOPE/firmware", 404),
        ("GET", "/chargers/CP1/files/..", 400),
        ("GET", "/chargers/CP1/files/0123abc", 404),
        ("GET", "/chargers/bad%20id/files", 400),
        ("POST", "/chargers/CP1/files", 405),
    ],
)
def test_bad_reads(deps: Dependencies, method: str, path: str, status: int) -> None:
    connect(deps, "CP1", "ocpp1.6")
    answer = request(method, path)
    assert answer.status == status, answer.body
    _one_sentence(answer)
