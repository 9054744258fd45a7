"""The local file server on a free loopback port: uploads (POST multipart, PUT), refusals that store
nothing, a slow client that blocks no one, signed downloads and firmware, no way out of its dirs."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambdas.files.local import LocalFileHost
from local_stack.file_server import FileServer
from local_stack.ports import free_port
from ocpp_core import files
from ocpp_core.memory_store import InMemoryStore
from tests.fakes import START_MS, FakeClock

MAX_BYTES = 4096


class Env:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.store = InMemoryStore(lock=threading.RLock())
        port = free_port()
        self.host = LocalFileHost(tmp_path, f"http://127.0.0.1:{port}", clock_s=self.clock.now_s)
        self.server = FileServer(
            "127.0.0.1",
            port,
            store=self.store,
            files=self.host,
            now_ms=self.clock.now_ms,
            max_bytes=MAX_BYTES,
            socket_timeout_s=5,
        ).start()
        self.port = port
        self._count = 0

    def upload(self, kind: str = "log", ttl_s: int = 60) -> str:
        self._count += 1
        upload_id = f"{START_MS:013d}{self._count:020x}"
        url = self.host.upload_url("CP1", upload_id, files.DEFAULT_NAMES[kind], ttl_s)
        record = files.upload_record(
            "CP1", upload_id, kind=kind, unique_id=f"call-{self._count}", request_id=self._count,
            created_at_ms=self.clock.now_ms(), ttl_s=ttl_s, url=url,
        )  # fmt: skip
        self.store.create_upload("CP1", upload_id, record)
        return upload_id

    def send(self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> tuple[int, Any]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
            kind = response.getheader("content-type") or ""
            return response.status, json.loads(data) if kind.startswith("application/json") else data
        finally:
            connection.close()

    def stored(self) -> list[Path]:
        return sorted(p for p in self.host.files_dir.rglob("*") if p.is_file() and self.host.temp_dir not in p.parents)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    started = Env(tmp_path)
    yield started
    started.server.stop()


def multipart(filename: str | None, content: bytes, *, boundary: str = "XyZ-bound", field_first: bool = True) -> bytes:
    parts = []
    if field_first:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'.encode())
    disposition = 'form-data; name="file"' + (f'; filename="{filename}"' if filename is not None else "")
    parts.append(
        f"--{boundary}\r\nContent-Disposition: {disposition}\r\nContent-Type: text/plain\r\n\r\n".encode()
        + content
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode()


def form(boundary: str = "XyZ-bound") -> dict[str, str]:
    return {"content-type": f"multipart/form-data; boundary={boundary}"}


def test_put_without_and_with_a_trailing_file_name(env: Env) -> None:
    first, second = env.upload(), env.upload("diagnostics")
    assert env.send("PUT", f"/upload/{first}", b"log lines\n") == (
        201,
        {"fileId": first, "name": "log.log", "size": 10},
    )
    status, body = env.send("PUT", f"/upload/{second}/diag%202025.txt", b"\x00\x01binary")
    assert status == 201 and body["name"] == "diag 2025.txt"
    assert (env.host.files_dir / "CP1" / second / "diag 2025.txt").read_bytes() == b"\x00\x01binary"
    record = env.store.get_file("CP1", second)
    assert record is not None
    assert record["storageKey"] == f"uploads/CP1/{second}/diag 2025.txt"
    assert record["kind"] == "diagnostics" and record["uniqueId"] == "call-2" and record["size"] == 8


def test_post_multipart_keeps_the_first_part_with_a_filename(env: Env) -> None:
    upload_id = env.upload()
    content = b"line 1\r\n--not-the-boundary\r\nline 3" * 50
    status, body = env.send("POST", f"/upload/{upload_id}/ignored.txt", multipart("station.log", content), form())
    assert status == 201, body
    assert body == {"fileId": upload_id, "name": "station.log", "size": len(content)}
    assert (env.host.files_dir / "CP1" / upload_id / "station.log").read_bytes() == content
    assert env.store.find_upload(upload_id)["fileId"] == upload_id


def test_one_file_per_url_unknown_and_expired(env: Env) -> None:
    upload_id = env.upload(ttl_s=60)
    assert env.send("PUT", f"/upload/{upload_id}", b"one")[0] == 201
    status, body = env.send("PUT", f"/upload/{upload_id}", b"two")
    assert status == 409 and "already" in body["error"]
    assert env.send("PUT", "/upload/000unknown000", b"x")[0] == 404
    late = env.upload(ttl_s=60)
    env.clock.advance(61)
    status, body = env.send("POST", f"/upload/{late}", multipart("a.txt", b"x"), form())
    assert status == 410 and "expired" in body["error"]
    assert [p.name for p in env.stored()] == ["log.log"]  # the first one only


def test_too_large_stores_nothing_and_leaves_no_temp_file(env: Env) -> None:
    upload_id = env.upload()
    assert env.send("PUT", f"/upload/{upload_id}", b"x" * (MAX_BYTES + 1))[0] == 413
    # within the multipart overhead, so the server streams it and stops at the limit
    status, _ = env.send("POST", f"/upload/{upload_id}", multipart("big.bin", b"y" * (MAX_BYTES + 1)), form())
    assert status == 413
    assert env.stored() == [] and list(env.host.temp_dir.iterdir()) == []
    assert env.store.find_upload(upload_id).get("fileId") is None  # still usable
    assert env.send("PUT", f"/upload/{upload_id}", b"y" * MAX_BYTES)[0] == 201


@pytest.mark.parametrize("name", ["..", "..%2Fescape", "a%5Cb", "nul%00", "x%0Ay", "a" * 256])
def test_traversal_names_in_the_url_are_refused(env: Env, name: str) -> None:
    upload_id = env.upload()
    status, body = env.send("PUT", f"/upload/{upload_id}/{name}", b"data")
    assert status == 400 and "file name" in body["error"]
    assert env.stored() == []


@pytest.mark.parametrize("filename", ["../../etc/passwd", "C:\\logs\\a.log", "", "dots.."])
def test_traversal_names_in_the_multipart_are_refused(env: Env, filename: str) -> None:
    upload_id = env.upload()
    status, body = env.send("POST", f"/upload/{upload_id}", multipart(filename, b"data"), form())
    assert status == 400, body
    assert env.stored() == [] and list(env.host.temp_dir.iterdir()) == []
    assert env.store.find_upload(upload_id).get("fileId") is None


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b"raw bytes", {"content-type": "application/octet-stream"}),  # POST must be multipart
        (b"raw bytes", {"content-type": "multipart/form-data"}),  # no boundary
        (b"--XyZ-bound\r\nContent-Disposition: form-data; name=a\r\n\r\nno end", form()),
        (multipart(None, b"no filename", field_first=False), form()),
        (b"garbage without any boundary line", form()),
    ],
)
def test_bad_multipart_is_400(env: Env, body: bytes, headers: dict[str, str]) -> None:
    upload_id = env.upload()
    status, answer = env.send("POST", f"/upload/{upload_id}", body, headers)
    assert status == 400 and answer["error"].endswith(".")
    assert env.stored() == []


def test_other_methods_and_routes(env: Env) -> None:
    upload_id = env.upload()
    assert env.send("GET", f"/upload/{upload_id}")[0] == 405
    assert env.send("DELETE", f"/upload/{upload_id}")[0] == 405
    assert env.send("PUT", "/files/x", b"x")[0] == 405
    assert env.send("GET", "/elsewhere")[0] == 404


def test_a_slow_client_does_not_block_another_upload(env: Env) -> None:
    slow_id, fast_id = env.upload(), env.upload()
    slow = socket.create_connection(("127.0.0.1", env.port), timeout=5)
    try:
        slow.sendall(f"PUT /upload/{slow_id} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly a bit".encode())
        status, body = env.send("PUT", f"/upload/{fast_id}", b"fast")  # bounded by the client's 5 s timeout
        assert (status, body["size"]) == (201, 4)
    finally:
        slow.close()
    assert [p.parent.name for p in env.stored()] == [fast_id]
    deadline = time.monotonic() + 5  # the slow upload's thread sees the close and removes its temp file
    while list(env.host.temp_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert list(env.host.temp_dir.iterdir()) == []
    assert env.store.find_upload(slow_id).get("fileId") is None


def test_signed_downloads_and_firmware(env: Env) -> None:
    upload_id = env.upload()
    env.send("PUT", f"/upload/{upload_id}/out.log", b"the log")
    key = env.store.get_file("CP1", upload_id)["storageKey"]
    url = env.host.download_url(key, "out.log", 60)
    path = url.removeprefix(env.host.base_url)
    assert env.send("GET", path) == (200, b"the log")
    token = path.removeprefix("/files/")
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert env.send("GET", f"/files/{tampered}")[0] == 404
    forged = env.host.sign("uploads/CP1/../../secret", 10**12)
    assert env.send("GET", f"/files/{forged}")[0] == 404
    env.clock.advance(61)
    assert env.send("GET", path)[0] == 404  # expired
    firmware_key = env.host.store_firmware("0001ff", "fw.bin", b"\x7fELF image")
    firmware_url = env.host.download_url(firmware_key, "fw.bin", 60)
    assert env.send("GET", firmware_url.removeprefix(env.host.base_url)) == (200, b"\x7fELF image")
    for escape in ("/firmware/0001ff/..%2F..%2Ffiles.secret", "/firmware/..%2F/files.secret", "/firmware/0001ff/nope"):
        assert env.send("GET", escape)[0] == 404, escape


def test_the_signing_secret_is_private_and_kept(tmp_path: Path) -> None:
    first = LocalFileHost(tmp_path, "http://127.0.0.1:1")
    token = first.sign("uploads/CP1/u1/a.log", 2**40)
    assert (tmp_path / "files.secret").stat().st_mode & 0o777 == 0o600
    assert LocalFileHost(tmp_path, "http://127.0.0.1:1").verify(token) == "uploads/CP1/u1/a.log"
