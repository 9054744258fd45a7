"""Reading an upload's body: bounded, in chunks, and multipart/form-data streamed (RFC 7578, RFC 2046 §5.1.1).

:class:`Body` never holds more than a chunk and a delimiter; :class:`Sink` refuses more than the
limit while it writes; :func:`read_multipart` streams the first part with a filename to the sink.
A refusal is an :class:`HttpRefusal` with its status and one sentence. Shared by the local file
server (the socket's file) and the uploads Lambda (the decoded event body in an ``io.BytesIO``),
so it lives in the Lambda bundle (``infra/bundling.py`` ships ``ocpp_core`` and ``lambdas``).
"""

from __future__ import annotations

from collections.abc import Callable
from email.parser import HeaderParser
from typing import Any, BinaryIO

CHUNK = 64 * 1024
#: room for the multipart framing around the file (boundaries, part headers, small fields)
MULTIPART_OVERHEAD = 64 * 1024
MAX_PART_HEADERS = 16 * 1024


class HttpRefusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TooLarge(HttpRefusal):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"The file is larger than {limit} bytes.")


class Body:
    """The request body, at most ``length`` bytes of it, read in chunks through a small buffer."""

    def __init__(self, rfile: Any, length: int) -> None:
        self._rfile = rfile
        self.remaining = length
        self._buffer = b""

    def _more(self) -> bool:
        if not self.remaining:
            return False
        chunk = self._rfile.read(min(CHUNK, self.remaining))
        if not chunk:
            raise HttpRefusal(400, "The request body ended before its Content-Length.")
        self.remaining -= len(chunk)
        self._buffer += chunk
        return True

    def copy_all(self, sink: Callable[[bytes], None]) -> None:
        sink(self._buffer)
        self._buffer = b""
        while self._more():
            sink(self._buffer)
            self._buffer = b""

    def copy_until(self, delimiter: bytes, sink: Callable[[bytes], None]) -> bool:
        """Everything before ``delimiter`` to ``sink`` (the delimiter is consumed); False at the end without it."""
        keep = len(delimiter) - 1
        while True:
            found = self._buffer.find(delimiter)
            if found >= 0:
                sink(self._buffer[:found])
                self._buffer = self._buffer[found + len(delimiter) :]
                return True
            if len(self._buffer) > keep:
                sink(self._buffer[: len(self._buffer) - keep])
                self._buffer = self._buffer[len(self._buffer) - keep :]
            if not self._more():
                return False

    def take(self, count: int) -> bytes:
        while len(self._buffer) < count and self._more():
            pass
        taken, self._buffer = self._buffer[:count], self._buffer[count:]
        return taken


class Sink:
    """Writes a file to ``out`` (a temporary file, a buffer), refusing more than ``limit`` bytes."""

    def __init__(self, out: BinaryIO, limit: int) -> None:
        self._out = out
        self.limit = limit
        self.size = 0

    def __call__(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise TooLarge(self.limit)
        self._out.write(data)


def _discard(data: bytes) -> None:
    return None


def _headers(raw: bytes) -> Any:
    try:
        return HeaderParser().parsestr(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise HttpRefusal(400, "A multipart part has headers that are not UTF-8.") from None


def boundary_of(content_type: str | None) -> bytes:
    message = _headers(f"Content-Type: {content_type or ''}\r\n\r\n".encode())
    if message.get_content_type() != "multipart/form-data":
        raise HttpRefusal(400, "A POST upload must be multipart/form-data (or use PUT with the raw file).")
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not 0 < len(boundary) <= 70 or not boundary.isascii():
        raise HttpRefusal(400, "The multipart Content-Type has no valid boundary (RFC 2046: 1 to 70 characters).")
    return boundary.encode("ascii")


def read_multipart(body: Body, boundary: bytes, sink: Sink) -> str:
    """Stream the first part with a filename to ``sink``; the filename. RFC 7578 / RFC 2046 §5.1.1."""
    if not body.copy_until(b"--" + boundary, _discard):
        raise HttpRefusal(400, "The multipart body has no boundary line.")
    delimiter = b"\r\n--" + boundary
    while True:
        if body.take(2) != b"\r\n":
            raise HttpRefusal(400, "The multipart body has no part with a filename.")
        raw: list[bytes] = []
        size = [0]

        def collect(data: bytes, raw: list[bytes] = raw, size: list[int] = size) -> None:
            size[0] += len(data)
            if size[0] > MAX_PART_HEADERS:
                raise HttpRefusal(400, "A multipart part has headers longer than 16 KiB.")
            raw.append(data)

        if not body.copy_until(b"\r\n\r\n", collect):
            raise HttpRefusal(400, "A multipart part has no end of headers.")
        filename = _headers(b"".join(raw) + b"\r\n\r\n").get_filename()
        if filename is None:
            if not body.copy_until(delimiter, _discard):
                raise HttpRefusal(400, "A multipart part has no closing boundary.")
            continue
        if not body.copy_until(delimiter, sink):
            raise HttpRefusal(400, "The file part has no closing boundary.")
        return str(filename)
