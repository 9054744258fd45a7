"""Uploads (GetDiagnostics, GetLog) and firmware downloads (UpdateFirmware) against a real HTTP server.

The server is ``http.server`` on a free loopback port in a thread; it records every request, and
the multipart bodies are parsed here independently of the simulator's encoder (``email``).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import hashlib
import http.server
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from ocpp_core.framing import CallResult
from ocpp_core.timefmt import format_ms
from ocpp_core.versions import OcppVersion
from simulator import messages
from simulator.files import multipart
from simulator.station import Station

from .fake_csms import FakeCsms
from .helpers import eventually, run, station

ROOT = Path(__file__).resolve().parents[2]
IMAGE = bytes(range(256)) * 4096 + b"tail"  # 1 MiB and a bit: read in several chunks


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FileServer:
    """What the handler answers (``status`` by path; ``fail_first`` paths fail once) and what it got."""

    base: str = ""
    status: dict[str, int] = field(default_factory=dict)
    fail_first: set[str] = field(default_factory=set)
    files: dict[str, bytes] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def file_server() -> Iterator[FileServer]:
    state = FileServer()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _record(self) -> int | None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            with state.lock:
                state.received.append(Received(self.command, self.path, dict(self.headers.items()), body))
                if self.path in state.fail_first:
                    state.fail_first.discard(self.path)
                    return 503
            return state.status.get(self.path)

        def _answer(self, status: int, body: bytes = b"") -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            self._answer(self._record() or 201, b'{"fileId": "f1"}')

        do_PUT = do_POST

        def do_GET(self) -> None:
            status = self._record()
            content = state.files.get(self.path)
            if status is None and content is None:
                status = 404
            self._answer(status or 200, content or b"")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="file server", daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def parse_multipart(received: Received) -> list[Any]:
    head = f"Content-Type: {received.headers['Content-Type']}\r\n\r\n".encode()
    message = BytesParser(policy=email.policy.HTTP).parsebytes(head + received.body)
    assert message.is_multipart()
    return list(message.iter_parts())


def statuses(csms: FakeCsms, cp: str, action: str) -> list[str]:
    return [p["status"] for p in csms.calls_of(cp, action)]


def _upload_request(version: OcppVersion, url: str, **extra: Any) -> tuple[str, dict[str, Any], str]:
    """(action, payload, notification action) of an upload request to ``url``."""
    if version is OcppVersion.V16:
        return "GetDiagnostics", {"location": url, **extra}, "DiagnosticsStatusNotification"
    payload = {"logType": "DiagnosticsLog", "requestId": 7, "log": {"remoteLocation": url}, **extra}
    return "GetLog", payload, "LogStatusNotification"


def _file_name(version: OcppVersion, answer: CallResult) -> str:
    if version is OcppVersion.V16:
        return str(answer.payload["fileName"])
    assert answer.payload["status"] == "Accepted"
    return str(answer.payload["filename"])


async def _booted(csms: FakeCsms, cp: str, version: OcppVersion, **kwargs: Any) -> Station:
    st = station(csms, cp, version.value, connectors=2, **kwargs)
    await st.connect()
    await st.boot()
    return st


@pytest.mark.parametrize("method", ["post", "put"])
@pytest.mark.parametrize("version", [OcppVersion.V16, OcppVersion.V201])
def test_upload_then_status_notifications(version: OcppVersion, method: str) -> None:
    async def body() -> None:
        with file_server() as server:
            async with FakeCsms() as csms:
                st = await _booted(csms, "CP-UP", version, upload_method=method)
                action, payload, notification = _upload_request(version, f"{server.base}/upload/tok1")
                answer = await csms.call("CP-UP", action, payload)
                assert isinstance(answer, CallResult)
                name = _file_name(version, answer)
                assert name.endswith(".txt") and "CP-UP" in name
                await csms.wait_for_call("CP-UP", notification, count=2)
                assert statuses(csms, "CP-UP", notification) == ["Uploading", "Uploaded"]
                if version.is_2x:
                    assert [p["requestId"] for p in csms.calls_of("CP-UP", notification)] == [7, 7]
                [got] = server.received
                assert (got.method, got.path) == (method.upper(), "/upload/tok1")
                if method == "post":
                    assert got.headers["Content-Type"].startswith("multipart/form-data; boundary=")
                    [part] = parse_multipart(got)
                    assert part.get_param("name", header="content-disposition") == "file"
                    assert part.get_filename() == name
                    content = part.get_payload(decode=True)
                else:
                    content = got.body
                text = content.decode()
                assert "CP-UP" in text and f"({version.value})" in text and "connector 2: Available" in text
                assert 100 < len(content) < 1000
                [upload] = st.files.uploads
                assert (upload.status, upload.method, upload.size, upload.name) == (
                    "Uploaded",
                    method,
                    len(content),
                    name,
                )
                assert csms.violations == []
                await st.close()

    run(body)


@pytest.mark.parametrize("version", [OcppVersion.V16, OcppVersion.V201, OcppVersion.V21])
def test_http_error_gives_upload_failed(version: OcppVersion) -> None:
    async def body() -> None:
        with file_server() as server:
            server.status["/upload/broken"] = 500
            async with FakeCsms() as csms:
                st = await _booted(csms, "CP-500", version)
                action, payload, notification = _upload_request(version, f"{server.base}/upload/broken")
                answer = await csms.call("CP-500", action, payload)
                assert isinstance(answer, CallResult)
                await csms.wait_for_call("CP-500", notification, count=2)
                # The schemas' words: UploadFailed in 1.6 diagnostics, UploadFailure for logs.
                failed = "UploadFailed" if version is OcppVersion.V16 else "UploadFailure"
                assert statuses(csms, "CP-500", notification) == ["Uploading", failed]
                assert len(server.received) == 1  # no retries asked: one attempt
                assert st.files.uploads[0].error is not None and "500" in st.files.uploads[0].error
                assert csms.violations == []
                await st.close()

    run(body)


def test_one_retry_when_retries_are_asked_for() -> None:
    async def body() -> None:
        with file_server() as server:
            server.fail_first.add("/upload/flaky")
            async with FakeCsms() as csms:
                st = await _booted(csms, "CP-RETRY", OcppVersion.V201)
                _, payload, _ = _upload_request(
                    OcppVersion.V201, f"{server.base}/upload/flaky", retries=3, retryInterval=0
                )
                await csms.call("CP-RETRY", "GetLog", payload)
                await csms.wait_for_call("CP-RETRY", "LogStatusNotification", count=2)
                assert statuses(csms, "CP-RETRY", "LogStatusNotification") == ["Uploading", "Uploaded"]
                assert len(server.received) == 2
                await st.close()

    run(body)


def test_unreachable_server_gives_upload_failed() -> None:
    async def body() -> None:
        with file_server() as server:
            url = f"{server.base}/upload/gone"
        # The server is shut now: the connection is refused.
        async with FakeCsms() as csms:
            st = await _booted(csms, "CP-GONE", OcppVersion.V16)
            await csms.call("CP-GONE", "GetDiagnostics", {"location": url})
            await csms.wait_for_call("CP-GONE", "DiagnosticsStatusNotification", count=2)
            assert statuses(csms, "CP-GONE", "DiagnosticsStatusNotification") == ["Uploading", "UploadFailed"]
            await st.close()

    run(body)


def test_other_schemes_are_not_uploaded() -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            v16 = await _booted(csms, "CP-FTP16", OcppVersion.V16)
            v2 = await _booted(csms, "CP-FTP2", OcppVersion.V201)
            answer = await csms.call("CP-FTP16", "GetDiagnostics", {"location": "ftp://example.com/diag"})
            assert isinstance(answer, CallResult) and answer.payload == {}
            _, payload, _ = _upload_request(OcppVersion.V201, "ftp://example.com/log")
            answer = await csms.call("CP-FTP2", "GetLog", payload)
            assert isinstance(answer, CallResult) and answer.payload == {"status": "Rejected"}
            await asyncio.sleep(0.1)
            assert "DiagnosticsStatusNotification" not in csms.actions("CP-FTP16")
            assert "LogStatusNotification" not in csms.actions("CP-FTP2")
            assert v16.files.uploads == [] and v2.files.uploads == []
            await v16.close()
            await v2.close()

    run(body)


def _firmware_request(version: OcppVersion, url: str, action: str = "UpdateFirmware") -> dict[str, Any]:
    now = format_ms(messages.now_ms())
    if version is OcppVersion.V16 and action == "UpdateFirmware":
        return {"location": url, "retrieveDate": now}
    firmware: dict[str, Any] = {"location": url, "retrieveDateTime": now}
    if action == "SignedUpdateFirmware":
        firmware |= {"signingCertificate": "-----BEGIN CERTIFICATE-----", "signature": "c2ln"}
    return {"requestId": 5, "firmware": firmware}


FIRMWARE_CASES = [
    (OcppVersion.V16, "UpdateFirmware", "FirmwareStatusNotification"),
    (OcppVersion.V16, "SignedUpdateFirmware", "SignedFirmwareStatusNotification"),
    (OcppVersion.V201, "UpdateFirmware", "FirmwareStatusNotification"),
    (OcppVersion.V21, "UpdateFirmware", "FirmwareStatusNotification"),
]


@pytest.mark.parametrize(("version", "action", "notification"), FIRMWARE_CASES)
def test_firmware_download_and_install(version: OcppVersion, action: str, notification: str) -> None:
    async def body() -> None:
        with file_server() as server:
            server.files["/firmware/abc/image.bin"] = IMAGE
            async with FakeCsms() as csms:
                st = await _booted(csms, "CP-FW", version)
                url = f"{server.base}/firmware/abc/image.bin"
                answer = await csms.call("CP-FW", action, _firmware_request(version, url, action))
                assert isinstance(answer, CallResult)
                assert answer.payload == (
                    {} if action == "UpdateFirmware" and version is OcppVersion.V16 else {"status": "Accepted"}
                )
                await csms.wait_for_call("CP-FW", notification, count=4)
                assert statuses(csms, "CP-FW", notification) == ["Downloading", "Downloaded", "Installing", "Installed"]
                sent = csms.calls_of("CP-FW", notification)
                if action == "UpdateFirmware" and version is OcppVersion.V16:
                    assert all("requestId" not in p for p in sent)
                else:
                    assert all(p["requestId"] == 5 for p in sent)
                assert st.files.firmware is not None
                assert st.files.firmware.size == len(IMAGE)
                assert st.files.firmware.sha256 == hashlib.sha256(IMAGE).hexdigest()
                assert st.files.firmware.md5 == hashlib.md5(IMAGE).hexdigest()
                assert [(r.method, r.path) for r in server.received] == [("GET", "/firmware/abc/image.bin")]
                assert st.connected  # no reboot
                assert csms.violations == []
                await st.close()

    run(body)


@pytest.mark.parametrize("version", [OcppVersion.V16, OcppVersion.V201])
def test_firmware_not_found_gives_download_failed(version: OcppVersion) -> None:
    async def body() -> None:
        with file_server() as server:
            async with FakeCsms() as csms:
                st = await _booted(csms, "CP-404", version)
                url = f"{server.base}/firmware/none/image.bin"
                await csms.call("CP-404", "UpdateFirmware", _firmware_request(version, url))
                await csms.wait_for_call("CP-404", "FirmwareStatusNotification", count=2)
                await asyncio.sleep(0.05)
                assert statuses(csms, "CP-404", "FirmwareStatusNotification") == ["Downloading", "DownloadFailed"]
                assert st.files.firmware is None
                assert csms.violations == []
                await st.close()

    run(body)


def test_firmware_larger_than_the_limit_fails() -> None:
    async def body() -> None:
        with file_server() as server:
            server.files["/big.bin"] = IMAGE
            async with FakeCsms() as csms:
                st = await _booted(csms, "CP-BIG", OcppVersion.V201)
                st.files.max_firmware_bytes = 1024
                await csms.call(
                    "CP-BIG", "UpdateFirmware", _firmware_request(OcppVersion.V201, f"{server.base}/big.bin")
                )
                await csms.wait_for_call("CP-BIG", "FirmwareStatusNotification", count=2)
                assert statuses(csms, "CP-BIG", "FirmwareStatusNotification") == ["Downloading", "DownloadFailed"]
                assert st.files.firmware is None
                await st.close()

    run(body)


def test_trigger_reports_the_upload_in_progress_then_idle() -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            st = await _booted(csms, "CP-TRIG", OcppVersion.V201)
            st.files.busy["LogStatusNotification"] = ("Uploading", 9)
            await csms.call("CP-TRIG", "TriggerMessage", {"requestedMessage": "LogStatusNotification"})
            first = await csms.wait_for_call("CP-TRIG", "LogStatusNotification")
            assert first == {"status": "Uploading", "requestId": 9}
            st.files.busy.clear()
            await csms.call("CP-TRIG", "TriggerMessage", {"requestedMessage": "LogStatusNotification"})
            second = await csms.wait_for_call("CP-TRIG", "LogStatusNotification", count=2)
            assert second == {"status": "Idle"}
            assert csms.violations == []
            await st.close()

    run(body)


def test_multipart_encoding_parses_back() -> None:
    data = b"line one\r\n--not-a-boundary\r\n\x00\xff"
    encoded, content_type = multipart("file", 'odd "name".txt', data)
    got = Received("POST", "/", {"Content-Type": content_type}, encoded)
    [part] = parse_multipart(got)
    assert part.get_filename() == 'odd "name".txt'
    assert part.get_payload(decode=True) == data


def test_bad_upload_method_is_refused() -> None:
    with pytest.raises(ValueError, match="upload_method"):
        Station("CP-BAD", "1.6", upload_method="ftp")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_cli_upload_method_put() -> None:
    async def body() -> None:
        with file_server() as server:
            async with FakeCsms() as csms:
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "simulator",
                    "scenario",
                    "--id",
                    "CP-CLI",
                    "--version",
                    "1.6",
                    "--url",
                    csms.url,
                    "--no-session",
                    "--stay",
                    "--quiet",
                    "--upload-method",
                    "put",
                    cwd=ROOT,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )
                try:
                    await csms.wait_for_call("CP-CLI", "StatusNotification", timeout=20)
                    await csms.call("CP-CLI", "GetDiagnostics", {"location": f"{server.base}/upload/cli"})
                    await csms.wait_for_call("CP-CLI", "DiagnosticsStatusNotification", count=2)
                    assert statuses(csms, "CP-CLI", "DiagnosticsStatusNotification") == ["Uploading", "Uploaded"]
                    await eventually(lambda: len(server.received) == 1)
                    assert server.received[0].method == "PUT"
                finally:
                    if proc.returncode is None:
                        proc.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(proc.wait(), 10)
                assert proc.returncode == 0

    run(body, timeout=60)


def test_scheduled_download_superseded_by_a_new_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("simulator.files.SOON_S", 0.1)

    async def body() -> None:
        with file_server() as server:
            server.files["/fw.bin"] = b"firmware"
            async with FakeCsms() as csms:
                st = await _booted(csms, "CP-SCHED", OcppVersion.V201)
                later = _firmware_request(OcppVersion.V201, f"{server.base}/fw.bin")
                later["firmware"]["retrieveDateTime"] = format_ms(messages.now_ms() + 800)
                answer = await csms.call("CP-SCHED", "UpdateFirmware", later)
                assert isinstance(answer, CallResult) and answer.payload == {"status": "Accepted"}
                first = await csms.wait_for_call("CP-SCHED", "FirmwareStatusNotification")
                assert first == {"status": "DownloadScheduled", "requestId": 5}
                now = _firmware_request(OcppVersion.V201, f"{server.base}/fw.bin")
                now["requestId"] = 6
                answer = await csms.call("CP-SCHED", "UpdateFirmware", now)
                assert isinstance(answer, CallResult) and answer.payload == {"status": "AcceptedCanceled"}
                await csms.wait_for_call("CP-SCHED", "FirmwareStatusNotification", count=5)
                await asyncio.sleep(1.0)  # past the first request's retrieve date: it stays cancelled
                sent = [(p["status"], p["requestId"]) for p in csms.calls_of("CP-SCHED", "FirmwareStatusNotification")]
                assert sent == [
                    ("DownloadScheduled", 5),
                    ("Downloading", 6),
                    ("Downloaded", 6),
                    ("Installing", 6),
                    ("Installed", 6),
                ]
                assert len(server.received) == 1
                assert csms.violations == []
                await st.close()

    run(body)
