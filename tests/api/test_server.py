"""local_stack.api_server: real HTTP requests, including garbage; the server keeps serving."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from lambdas.runtime import Dependencies
from local_stack.api_server import ApiServer, build_event, start_api_server
from local_stack.ports import free_port

from .support import connect


@pytest.fixture
def server(deps: Dependencies) -> Iterator[ApiServer]:
    started = start_api_server("127.0.0.1", free_port())
    yield started
    started.stop()


def _http(
    server: ApiServer, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, str]]:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else None, {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def _raw(server: ApiServer, data: bytes) -> bytes:
    """Send bytes, close our side (so the server sees the end), and read the whole answer."""
    host, port = server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def test_routes_behave_as_on_aws(server: ApiServer, deps: Dependencies) -> None:
    status, body, headers = _http(server, "PUT", "/chargers/CP1", b'{"password": "local-password-1"}')
    assert status == 201 and body["hasPassword"] is True
    assert headers["content-type"] == "application/json"
    connect(deps, "CP1", "ocpp2.1")
    status, body, headers = _http(
        server, "POST", "/chargers/CP1/calls", json.dumps({"action": "Reset", "payload": {"type": "OnIdle"}}).encode()
    )
    assert status == 202 and headers["location"] == f"/chargers/CP1/calls/{body['uniqueId']}"
    status, body, _ = _http(server, "GET", f"/chargers/CP1/calls/{body['uniqueId']}")
    assert status == 200 and body["status"] == "pending"
    status, body, _ = _http(server, "GET", "/transactions?chargePointId=CP1&status=Active")
    assert (status, body) == (200, {"transactions": [], "count": 0})


def test_garbage_never_stops_the_server(server: ApiServer) -> None:
    assert _http(server, "BREW", "/chargers")[0] == 405
    assert _http(server, "GET", "/nope")[0] == 404
    assert _http(server, "POST", "/chargers/CP1/calls", b"\xff\xfe\x00garbage")[0] == 400
    assert _http(server, "PUT", "/chargers/CP1", b"x" * (300 * 1024))[0] == 413
    assert _http(server, "GET", "/chargers/%ZZ")[0] == 400
    assert _http(server, "HEAD", "/chargers")[0] == 405
    _raw(server, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 a TLS hello on a plain port")
    assert b" 400 " in _raw(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert b" 400 " in _raw(server, b"GET /chargers HTTP/1.1\r\nContent-Length: -5\r\n\r\n")
    assert b" 411 " in _raw(server, b"POST /chargers/CP1/calls HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert b" 413 " in _raw(server, b"PUT /chargers/CP1 HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n")
    _raw(server, b"PUT /chargers/CP1 HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort")  # client gives up mid-body
    _raw(server, b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n")  # request line too long
    # Still serving.
    status, body, _ = _http(server, "GET", "/chargers")
    assert status == 200 and body["count"] == 0


def test_handler_failure_is_a_500_not_a_dead_server(deps: Dependencies) -> None:
    def explode(event: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug")

    broken = start_api_server("127.0.0.1", free_port(), handler=explode)
    try:
        for _ in range(2):
            status, body, _ = _http(broken, "GET", "/chargers")
            assert status == 500 and "error" in body
    finally:
        broken.stop()
    broken.stop()  # idempotent


def test_build_event_shape() -> None:
    ev = build_event(
        "POST",
        "/chargers/CP%2D1/calls?wait=2&x=1&x=2",
        [("Content-Type", "application/json"), ("X-A", "1"), ("x-a", "2")],
        b'{"a":1}',
    )
    assert ev["rawPath"] == "/chargers/CP%2D1/calls"  # raw, as API Gateway gives it
    assert ev["rawQueryString"] == "wait=2&x=1&x=2"
    assert ev["queryStringParameters"] == {"wait": "2", "x": "1,2"}
    assert ev["headers"] == {"content-type": "application/json", "x-a": "1,2"}
    assert ev["requestContext"]["http"]["method"] == "POST"
    assert (ev["body"], ev["isBase64Encoded"]) == ('{"a":1}', False)
    binary = build_event("PUT", "/x", [], b"\xff")
    assert binary["isBase64Encoded"] is True and binary["body"] == "/w=="
