"""The local file server (``http://127.0.0.1:9003``): chargers upload here, and download firmware.

Routes (``docs/operator_api.md``, "Files and firmware"):

* ``POST`` (multipart/form-data: the first part with a filename) or ``PUT`` (the raw body) at
  ``/upload/<token>`` or ``/upload/<token>/<filename>``: 201 ``{"fileId", "name", "size"}``; 400 bad
  multipart or name, 404 unknown token, 410 expired, 409 already used, 413 too large, 411 no
  Content-Length, 405 another method. Nothing is stored on refusal.
* ``GET /files/<signed token>``: a received file (``lambdas.files.local`` signs the tokens).
* ``GET /firmware/<firmwareId>/<name>``: a firmware image.

The steps of an upload (the checks, the claim, the record, the name rules) are
``lambdas.files.receive``'s, which the uploads Lambda (``lambdas.uploads``) shares on AWS, and the
body parser is ``lambdas.files.multipart``. The upload request is checked before the body is read;
the body is streamed in 64 KiB chunks to a temporary file (never more than the limit, never all in
memory), the request is claimed (one file per URL, a conditional write), then the file is renamed
into place and recorded. One thread per
connection, each socket with a timeout: a slow or broken client holds only its own thread.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from lambdas.files import receive
from lambdas.files.local import LocalFileHost
from lambdas.files.multipart import (
    CHUNK,
    MULTIPART_OVERHEAD,
    Body,
    HttpRefusal,
    Sink,
    TooLarge,
    boundary_of,
    read_multipart,
)
from ocpp_core.files import upload_key
from ocpp_core.ports import StateStore

logger = logging.getLogger(__name__)

SOCKET_TIMEOUT_S = 30.0


class _Handler(BaseHTTPRequestHandler):
    server: FileServer
    protocol_version = "HTTP/1.1"
    server_version = "ocpp-csms-files"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.socket_timeout_s)

    def _json(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("connection", "close")
        self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _dispatch(self) -> None:
        try:
            path = urlsplit(self.path).path
            parts = path.strip("/").split("/")
            upload = receive.upload_path(path)
            if upload is not None:
                receive.check_method(self.command)
                self._upload(*upload)
            elif parts[0] in ("files", "firmware") and len(parts) in (2, 3):
                if self.command not in ("GET", "HEAD"):
                    raise HttpRefusal(405, f"{self.command} is not allowed on a download URL; use GET.")
                self._download(parts)
            else:
                raise HttpRefusal(404, "No such file URL.")
        except HttpRefusal as refusal:
            self._json(refusal.status, receive.refusal_body(refusal))
        except UnicodeDecodeError:
            self._json(400, {"error": "The URL has a percent-encoded name that is not UTF-8."})
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # one bad request must never take the server down
            logger.exception("file server failed on %s %s", self.command, self.path[:200])
            self._json(500, {"error": "Internal error: the file server failed; the failure is logged."})

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _dispatch

    def _length(self) -> int:
        if self.headers.get("transfer-encoding"):
            raise HttpRefusal(411, "Send the file with a Content-Length header (chunked bodies are not supported).")
        raw = (self.headers.get("content-length") or "").strip()
        if not raw.isdigit():
            raise HttpRefusal(411, "The upload needs a Content-Length header.")
        return int(raw)

    def _upload(self, token: str, raw_name: str | None) -> None:
        server = self.server
        url_name = receive.url_name(raw_name)
        upload = receive.find_upload(server.store, token, server.now_ms())
        length = self._length()
        multipart = self.command == "POST"
        if length > server.max_bytes + (MULTIPART_OVERHEAD if multipart else 0):
            raise TooLarge(server.max_bytes)
        boundary = boundary_of(self.headers.get("content-type")) if multipart else b""
        temp = server.files.temp_dir / f"upload-{secrets.token_hex(8)}"
        try:
            with open(temp, "xb") as out:
                sink, body = Sink(out, server.max_bytes), Body(self.rfile, length)
                part_name = read_multipart(body, boundary, sink) if multipart else None
                if not multipart:
                    body.copy_all(sink)
            name = receive.file_name(upload, part_name=part_name, url_name=url_name)
            record = self._keep(upload, name, sink.size, temp)
        finally:
            temp.unlink(missing_ok=True)
        self._json(201, receive.created(record))

    def _keep(self, upload: dict[str, Any], name: str, size: int, temp: Path) -> dict[str, Any]:
        server = self.server
        path = server.files.path_of(upload_key(str(upload["chargePointId"]), str(upload["uploadId"]), name))
        if path is None:
            raise HttpRefusal(400, "Invalid file name: it cannot be stored.")

        def put(key: str) -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(temp, path)

        return receive.keep(server.store, upload, name, size, server.now_ms(), put)

    def _download(self, parts: list[str]) -> None:
        files = self.server.files
        if parts[0] == "files":
            key = files.verify(parts[1]) if len(parts) == 2 else None
            if key is None:
                raise HttpRefusal(404, "This download link is invalid or has expired.")
        else:
            key = "firmware/" + "/".join(unquote(p, errors="strict") for p in parts[1:])
        path = files.path_of(key)
        if path is None or not path.is_file():
            raise HttpRefusal(404, "No such file.")
        size = path.stat().st_size
        self.send_response(200)
        self.send_header("content-type", "application/octet-stream")
        self.send_header("content-length", str(size))
        self.send_header("content-disposition", f'attachment; filename="{path.name.replace(chr(34), "")}"')
        self.end_headers()
        if self.command == "HEAD":
            return
        with open(path, "rb") as source:
            while chunk := source.read(CHUNK):
                self.wfile.write(chunk)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)


class FileServer(ThreadingHTTPServer):
    """The file server on ``host:port`` until :meth:`stop`; ``port`` 0 picks a free one."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64

    def __init__(
        self,
        host: str,
        port: int,
        *,
        store: StateStore,
        files: LocalFileHost,
        now_ms: Callable[[], int],
        max_bytes: int,
        socket_timeout_s: float = SOCKET_TIMEOUT_S,
    ) -> None:
        super().__init__((host, port), _Handler)
        self.store = store
        self.files = files
        self.now_ms = now_ms
        self.max_bytes = max_bytes
        self.socket_timeout_s = socket_timeout_s
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def start(self) -> FileServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name="file-server", daemon=True
        )
        self._thread.start()
        return self

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)

    def stop(self) -> None:
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._thread is not None:
            self.shutdown()
            self._thread.join(timeout=10)
        self.server_close()
