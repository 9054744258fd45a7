"""The operator API on ``http://127.0.0.1:9001``: each HTTP request becomes an API Gateway v2 event.

The event has the shape API Gateway's HTTP API (payload format 2.0) gives the Lambda, and
goes to the same handler logic (``lambdas.operator_api.handle``), so routes, errors and
bodies are the same locally and on AWS. The server must survive anything a client sends:
bodies are size-checked before they are read, sockets time out, and a failure while
answering only ends that one connection.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from lambdas.api.http import MAX_BODY_BYTES

logger = logging.getLogger(__name__)

#: A client that sends nothing for this long is dropped (its thread is freed).
SOCKET_TIMEOUT_S = 60.0


def build_event(
    method: str, target: str, headers: list[tuple[str, str]], body: bytes, source_ip: str = "127.0.0.1"
) -> dict[str, Any]:
    """The API Gateway HTTP API v2 event for one request (``target`` is the request-line path)."""
    parts = urlsplit(target)
    path = parts.path or "/"
    merged: dict[str, str] = {}
    for name, value in headers:
        key = name.lower()
        # As API Gateway does: repeated headers are joined with commas.
        merged[key] = f"{merged[key]},{value}" if key in merged else value
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": parts.query,
        "headers": merged,
        "requestContext": {
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": merged.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": time.time_ns() // 1_000_000,
        },
        "isBase64Encoded": False,
    }
    if parts.query:
        query: dict[str, str] = {}
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value
        event["queryStringParameters"] = query
    if body:
        try:
            event["body"] = body.decode("utf-8")
        except UnicodeDecodeError:
            # API Gateway base64-encodes bodies it does not take for text.
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
    return event


def _default_handler(event: dict[str, Any]) -> dict[str, Any]:
    from lambdas.operator_api import handle  # deferred: the stack configures dependencies first

    return handle(event)


class _RequestHandler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"
    timeout = SOCKET_TIMEOUT_S
    server_version = "ocpp-csms-operator-api"

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler looks up do_<METHOD>; every method goes to the router, which
        # answers 405 (or 404) itself, exactly as the Lambda behind API Gateway would.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def _reply(self, status: int, headers: dict[str, str], body: bytes, *, close: bool = False) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "connection"):
                self.send_header(name, value)
        if status != 204:  # RFC 9110 §8.6: no Content-Length in a 204
            self.send_header("content-length", str(len(body)))
        if close:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        # The body was not read, so the connection cannot be reused.
        self._reply(status, {"content-type": "application/json"}, body, close=True)

    def _serve(self) -> None:
        if self.headers.get("transfer-encoding"):
            self._error(411, "Send the body with a Content-Length header (chunked bodies are not supported here).")
            return
        raw_length = self.headers.get("content-length", "0").strip() or "0"
        if not raw_length.isdigit():
            self._error(400, "Invalid Content-Length header.")
            return
        length = int(raw_length)
        limit = self.server.body_limits.get((self.command, urlsplit(self.path).path.rstrip("/")), MAX_BODY_BYTES)
        if length > limit:
            self._error(413, f"The request body is larger than {limit} bytes.")
            return
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            self.close_connection = True  # the client went away mid-body
            return
        event = build_event(self.command, self.path, list(self.headers.items()), body, self.client_address[0])
        try:
            result = self.server.handler(event)
            status = int(result.get("statusCode", 500))
            headers = {str(k): str(v) for k, v in (result.get("headers") or {}).items()}
            payload = result.get("body") or ""
            data = base64.b64decode(payload) if result.get("isBase64Encoded") else str(payload).encode("utf-8")
        except Exception:  # one bad request must never take the server down
            logger.exception("operator API handler failed on %s %s", self.command, self.path[:200])
            self._error(500, "Internal error: the operator API failed; the failure is logged.")
            return
        self._reply(status, headers, data)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # DEBUG: the handler already logs every request it answers (lambdas.operator_api).
        # Also called for request lines too broken to have a command or a path.
        logger.debug("%s %s -> %s", getattr(self, "command", None), str(getattr(self, "path", "-"))[:200], code)


class ApiServer(ThreadingHTTPServer):
    """A threaded HTTP server serving the operator API until :meth:`stop` (or ``shutdown``)."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self, host: str, port: int, handler: Any = None, body_limits: Mapping[tuple[str, str], int] | None = None
    ):
        super().__init__((host, port), _RequestHandler)
        self.handler = handler or _default_handler
        #: (method, path) of the routes whose body is a file, and their limit (``lambdas.api.files``)
        self.body_limits = dict(body_limits or {})
        self._thread: threading.Thread | None = None
        self._stopped = False
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def start(self) -> ApiServer:
        # A short poll interval keeps stop() quick (it waits for the loop to notice).
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="operator-api", daemon=True
        )
        self._thread.start()
        return self

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A broken connection (reset, timeout) is the client's problem, not the server's.
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)

    def shutdown(self) -> None:
        """Stop serving, close the listening socket and wait for the serving thread."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._thread is not None:
            super().shutdown()
            self._thread.join(timeout=10)
        self.server_close()

    stop = shutdown


def start_api_server(
    host: str = "127.0.0.1",
    port: int = 9001,
    handler: Any = None,
    body_limits: Mapping[tuple[str, str], int] | None = None,
) -> ApiServer:
    """Listen on ``host:port`` and serve in a daemon thread. ``handler`` maps an event to a response."""
    server = ApiServer(host, port, handler, body_limits).start()
    logger.info("operator API listening on %s", server.url)
    return server


def stop_api_server(server: ApiServer) -> None:
    server.stop()
