"""``csms files list|download`` and ``csms firmware upload|list|show`` against the operator API on a
free port, with the local file host and its file server."""

from __future__ import annotations

import hashlib
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from lambdas import runtime
from lambdas.api.files import body_limits
from lambdas.files.local import LocalFileHost
from lambdas.runtime import Dependencies
from local_stack.api_server import ApiServer, start_api_server
from local_stack.file_server import FileServer
from local_stack.ports import free_port
from ocpp_core.memory_store import InMemoryStore
from tests.fakes import FakeClock

from .support import connect, from_charger, make_deps, run_cli


@pytest.fixture
def deps(tmp_path: Path) -> Iterator[Dependencies]:
    clock = FakeClock()
    injected = make_deps(InMemoryStore(lock=threading.RLock()), clock=clock)
    port = free_port()
    injected.files = LocalFileHost(tmp_path / "state", f"http://127.0.0.1:{port}", clock_s=clock.now_s)
    files = FileServer(
        "127.0.0.1", port, store=injected.store, files=injected.files, now_ms=clock.now_ms, max_bytes=1 << 20
    ).start()
    runtime.configure(injected)
    yield injected
    runtime.configure(None)
    files.stop()


@pytest.fixture
def server(deps: Dependencies) -> Iterator[ApiServer]:
    started = start_api_server("127.0.0.1", free_port(), body_limits=body_limits(deps.settings))
    yield started
    started.stop()


def run(server: ApiServer, *args: str) -> tuple[int, str, str]:
    return run_cli(server.url, *args)


def test_firmware_upload_list_show(server: ApiServer, tmp_path: Path) -> None:
    image = tmp_path / "station-fw-2.0.bin"
    image.write_bytes(b"\x00\x01\x02 firmware " * 40_000)  # 480 KB: above the JSON routes' 256 KiB
    code, out, err = run(server, "firmware", "upload", str(image), "--json")
    assert code == 0, err
    created = json.loads(out)
    assert created["sha256"] == hashlib.sha256(image.read_bytes()).hexdigest()
    assert created["name"] == "station-fw-2.0.bin" and created["size"] == image.stat().st_size
    code, out, _ = run(server, "firmware", "list")
    header, row = out.strip().splitlines()
    assert header.split()[:2] == ["FIRMWARE", "ID"] and row.split()[:2] == [created["firmwareId"], created["name"]]
    code, out, _ = run(server, "firmware", "show", created["firmwareId"])
    assert code == 0 and created["downloadUrl"] in out
    code, _, err = run(server, "firmware", "upload", str(tmp_path / "missing.bin"))
    assert code == 2 and "cannot read" in err
    code, _, err = run(server, "firmware", "upload", str(image), "--name", "../x")
    assert code == 1 and "Invalid firmware name" in err


def test_files_list_and_download(server: ApiServer, deps: Dependencies, tmp_path: Path) -> None:
    connect(deps, "CP1", "ocpp2.0.1")
    code, out, err = run(server, "call", "CP1", "GetLog", '{"logType": "DiagnosticsLog", "requestId": 5}', "--json")
    assert code == 0, err
    location = json.loads(out)["payload"]["log"]["remoteLocation"]
    parts = urlsplit(location)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    connection.request("PUT", parts.path + "/station.log", body=b"line 1\nline 2\n")
    assert connection.getresponse().status == 201
    connection.close()
    from_charger(deps, "CP1", "ocpp2.0.1", [2, "n1", "LogStatusNotification", {"status": "Uploaded", "requestId": 5}])

    code, out, err = run(server, "files", "list", "CP1")
    assert code == 0, err
    header, row = out.strip().splitlines()
    assert header.split()[:2] == ["FILE", "ID"]
    file_id, name, size, kind, status = row.split()[:5]
    assert (name, size, kind, status) == ("station.log", "14", "log", "Uploaded")
    target = tmp_path / "got.log"
    code, out, err = run(server, "files", "download", "CP1", file_id, "-o", str(target))
    assert code == 0, err
    assert target.read_bytes() == b"line 1\nline 2\n" and "14 bytes" in out
    code, _, err = run(server, "files", "download", "CP1", "0123abc")
    assert code == 1 and "No file" in err
