"""Files a station sends and fetches over HTTP(S): diagnostics and log uploads, firmware downloads.

* GetDiagnostics (1.6 §5.9) and GetLog (1.6 security extension, 2.0.1 N01): the station answers
  with the file name, then uploads a small text file to the location given and reports
  Uploading, then Uploaded or the failure (DiagnosticsStatusNotification / LogStatusNotification,
  the latter with the request's ``requestId``). The upload is a POST multipart/form-data (field
  ``file``) by default, or a PUT of the raw body (``upload_method="put"``, what an S3 presigned
  PUT URL needs). Locations other than http(s) are not supported: 1.6 GetDiagnostics answers
  ``{}`` (no file) and sends nothing, GetLog answers ``Rejected``.
* UpdateFirmware (1.6 §5.16, 2.0.1 L01) and SignedUpdateFirmware (1.6 security extension): at
  the retrieve date the station downloads the image (streamed, at most ``max_firmware_bytes``),
  keeps its size and checksums (:attr:`StationFiles.firmware`) and reports Downloading,
  Downloaded, Installing, Installed (2.x and signed: with ``requestId``), or DownloadFailed.
  Nothing is installed and the station does not reboot; the signature is not checked.

HTTP runs in a worker thread (``asyncio.to_thread``), never on the event loop, with a timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import ssl
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ocpp_core.timefmt import parse_ms
from ocpp_core.versions import OcppVersion

from . import messages
from .connectors import Connector
from .ports import FollowUp, Handler, Payload, Reply, StationPort

logger = logging.getLogger(__name__)

UPLOAD_METHODS = ("post", "put")
#: Seconds an upload or a download may take (connect and each read).
HTTP_TIMEOUT_S = 10.0
#: The largest firmware image a station downloads.
MAX_FIRMWARE_BYTES = 64 * 1024 * 1024
#: A retrieve date at most this far ahead is "now".
SOON_S = 3.0
#: Longest wait before the (single) retry the station makes when the request asks for retries.
MAX_RETRY_WAIT_S = 10.0
_CHUNK = 64 * 1024

DIAGNOSTICS, LOG, FIRMWARE, SIGNED_FIRMWARE = (
    "DiagnosticsStatusNotification",
    "LogStatusNotification",
    "FirmwareStatusNotification",
    "SignedFirmwareStatusNotification",
)


class FilesHost(Protocol):
    """What the files need of the station (:class:`simulator.station.Station` is one)."""

    id: str
    version: OcppVersion
    vendor: str
    model_name: str
    firmware_version: str | None
    connectors: dict[int, Connector]

    @property
    def ssl_context(self) -> ssl.SSLContext | None: ...

    async def call(self, action: str, payload: Payload, timeout: float | None = None) -> Payload: ...


@dataclass(slots=True)
class Upload:
    """One upload the station made: where, how, and how it went (``status`` as notified)."""

    url: str
    name: str
    method: str
    size: int
    status: str
    error: str | None = None


@dataclass(slots=True)
class FirmwareImage:
    """The last firmware image downloaded: where from, its size and checksums (hex)."""

    location: str
    size: int
    sha256: str
    md5: str


class TransferFailed(Exception):
    """An upload or download that did not succeed (HTTP error status, network, timeout, size)."""


@dataclass
class StationFiles:
    """A station's uploads and firmware: what it did (``uploads``, ``firmware``) and is doing (``busy``)."""

    host: FilesHost
    upload_method: str = "post"
    timeout: float = HTTP_TIMEOUT_S
    max_firmware_bytes: int = MAX_FIRMWARE_BYTES
    uploads: list[Upload] = field(default_factory=list)
    firmware: FirmwareImage | None = None
    #: The status of what is in progress, per notification action (absent: Idle), for TriggerMessage.
    busy: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    _firmware_run: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.upload_method not in UPLOAD_METHODS:
            raise ValueError(f"upload_method must be one of {', '.join(UPLOAD_METHODS)}, not {self.upload_method!r}")

    # ------------------------------------------------------------------ notifications

    async def notify(self, action: str, status: str, request_id: int | None, *, final: bool = False) -> None:
        if final:
            self.busy.pop(action, None)
        else:
            self.busy[action] = (status, request_id)
        payload: Payload = {"status": status}
        if request_id is not None:
            payload["requestId"] = request_id
        await self.host.call(action, payload)

    def current(self, action: str) -> Payload:
        """The payload a triggered status notification carries: what is in progress, else Idle."""
        status, request_id = self.busy.get(action, ("Idle", None))
        return {"status": status} if request_id is None else {"status": status, "requestId": request_id}

    # ------------------------------------------------------------------ uploads

    def file_name(self, kind: str) -> str:
        stamp = messages.timestamp().replace("-", "").replace(":", "").split(".")[0]
        return f"{kind}-{re.sub(r'[^A-Za-z0-9_-]', '_', self.host.id)}-{stamp}Z.txt"

    def report(self, title: str, window: tuple[Any, Any]) -> bytes:
        h = self.host
        lines = [
            f"OCPP simulator {title}",
            f"station: {h.id} ({h.version.value}) {h.vendor} {h.model_name} firmware {h.firmware_version}",
            f"generated: {messages.timestamp()}",
            f"requested: from {window[0] or '-'} to {window[1] or '-'}",
        ]
        for conn in h.connectors.values():
            tx = conn.transaction
            running = f", transaction {tx.transaction_id}" if tx is not None else ""
            lines.append(f"connector {conn.id}: {conn.status}{running}, {conn.meter_wh} Wh")
        return ("\n".join(lines) + "\n").encode()

    async def upload(
        self, action: str, url: str, name: str, body: bytes, request_id: int | None, retries: Any, interval: Any
    ) -> None:
        """Uploading, the upload (and at most one retry), then Uploaded or the failure status."""
        await self.notify(action, "Uploading", request_id)
        method = self.upload_method
        context = self.host.ssl_context

        def send() -> Awaitable[None]:
            return asyncio.to_thread(_upload, method, url, name, body, self.timeout, context)

        error = await _attempts(send, retries, interval)
        failed = "UploadFailed" if action == DIAGNOSTICS else "UploadFailure"  # the schemas' words
        status = "Uploaded" if error is None else failed
        self.uploads.append(Upload(url, name, method, len(body), status, error))
        if error is not None:
            logger.warning("%s: upload to %s failed: %s", self.host.id, url, error)
        await self.notify(action, status, request_id, final=True)

    # ------------------------------------------------------------------ firmware

    def start_firmware(self) -> int:
        """A new update supersedes one in progress (which stops at its next step)."""
        self._firmware_run += 1
        return self._firmware_run

    async def update_firmware(
        self, action: str, run: int, location: str, retrieve: Any, request_id: int | None, retries: Any, interval: Any
    ) -> None:
        retrieve_ms = parse_ms(retrieve)
        delay = 0.0 if retrieve_ms is None else (retrieve_ms - messages.now_ms()) / 1000
        if delay > SOON_S:
            if request_id is not None:  # 2.x / signed (L01): DownloadScheduled until the retrieve date
                await self.notify(action, "DownloadScheduled", request_id)
            await asyncio.sleep(delay)
        if run != self._firmware_run:
            return
        await self.notify(action, "Downloading", request_id)
        limit, timeout, context = self.max_firmware_bytes, self.timeout, self.host.ssl_context
        image: list[FirmwareImage] = []

        async def fetch() -> None:
            image.append(await asyncio.to_thread(_download, location, limit, timeout, context))

        error = await _attempts(fetch, retries, interval)
        if run != self._firmware_run:
            return
        if error is not None or not image:
            logger.warning("%s: firmware download from %s failed: %s", self.host.id, location, error)
            await self.notify(action, "DownloadFailed", request_id, final=True)
            return
        self.firmware = image[0]
        await self.notify(action, "Downloaded", request_id)
        await self.notify(action, "Installing", request_id)
        await self.notify(action, "Installed", request_id, final=True)


# ---------------------------------------------------------------------- HTTP (worker threads)


def is_http(location: object) -> bool:
    return isinstance(location, str) and location.lower().startswith(("http://", "https://"))


def multipart(field_name: str, filename: str, data: bytes, content_type: str = "text/plain") -> tuple[bytes, str]:
    """A multipart/form-data body (RFC 7578) with one file part, and its Content-Type.

    The standard library parses multipart (``email``) but has no encoder for a request body,
    hence this one.
    """
    boundary = "ocpp-sim-" + secrets.token_hex(16)
    while boundary.encode() in data:  # practically never; a boundary must not occur in the data
        boundary = "ocpp-sim-" + secrets.token_hex(16)
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "").replace("\n", "")
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field_name}"; filename="{quoted}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    return head.encode() + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _upload(method: str, url: str, name: str, body: bytes, timeout: float, context: ssl.SSLContext | None) -> None:
    if method == "put":
        data, content_type = body, "text/plain"
    else:
        data, content_type = multipart("file", name, body)
    request = urllib.request.Request(url, data=data, method=method.upper(), headers={"Content-Type": content_type})
    with _open(request, timeout, context) as response:
        response.read(_CHUNK)


def _download(url: str, limit: int, timeout: float, context: ssl.SSLContext | None) -> FirmwareImage:
    sha256, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    with _open(urllib.request.Request(url), timeout, context) as response:
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise TransferFailed(f"the image is {length} bytes, more than {limit}")
        while chunk := response.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise TransferFailed(f"the image is more than {limit} bytes")
            sha256.update(chunk)
            md5.update(chunk)
    return FirmwareImage(url, size, sha256.hexdigest(), md5.hexdigest())


def _open(request: urllib.request.Request, timeout: float, context: ssl.SSLContext | None) -> Any:
    try:
        return urllib.request.urlopen(request, timeout=timeout, context=context)
    except urllib.error.HTTPError as exc:
        exc.close()
        raise TransferFailed(f"HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TransferFailed(str(getattr(exc, "reason", exc))) from None


async def _attempts(work: Callable[[], Awaitable[Any]], retries: Any, interval: Any) -> str | None:
    """Await ``work()``, once more if ``retries`` > 0 (OCPP leaves the count to the station): the
    last error, or None."""
    tries = 2 if isinstance(retries, int) and retries > 0 else 1
    error: str | None = None
    for attempt in range(tries):
        if attempt:
            wait = interval if isinstance(interval, int) and interval >= 0 else 1
            await asyncio.sleep(min(wait, MAX_RETRY_WAIT_S))
        try:
            await work()
            return None
        except TransferFailed as exc:
            error = str(exc)
        except (OSError, ValueError) as exc:  # e.g. a read timeout in the middle of the body
            error = f"{type(exc).__name__}: {exc}"
    return error


# ---------------------------------------------------------------------- handlers


def files_of(st: StationPort) -> StationFiles | None:
    """The station's files part (a test's minimal station may have none)."""
    files = getattr(st, "files", None)
    return files if isinstance(files, StationFiles) else None


def get_diagnostics_v16(st: StationPort, p: Payload) -> Reply:
    files = files_of(st)
    if files is None or not is_http(p["location"]):
        return Reply({})  # no fileName: no diagnostics available (1.6); ftp is not supported
    name = files.file_name("diagnostics")
    body = files.report("diagnostics", (p.get("startTime"), p.get("stopTime")))
    args = (DIAGNOSTICS, p["location"], name, body, None, p.get("retries"), p.get("retryInterval"))
    return Reply({"fileName": name}, lambda: files.upload(*args))


def get_log(st: StationPort, p: Payload) -> Reply:
    files = files_of(st)
    log = p["log"]
    if files is None or not is_http(log["remoteLocation"]):
        return Reply({"status": "Rejected"})
    kind = "securitylog" if p["logType"] == "SecurityLog" else "log"
    name = files.file_name(kind)
    body = files.report(p["logType"], (log.get("oldestTimestamp"), log.get("latestTimestamp")))
    args = (LOG, log["remoteLocation"], name, body, p["requestId"], p.get("retries"), p.get("retryInterval"))
    return Reply({"status": "Accepted", "filename": name}, lambda: files.upload(*args))


def _firmware_reply(files: StationFiles, answer: Payload, action: str, p: Payload, firmware: Payload) -> Reply:
    run = files.start_firmware()
    location, retrieve = firmware["location"], firmware.get("retrieveDateTime", firmware.get("retrieveDate"))
    request_id = p.get("requestId")  # 2.x and signed; 1.6 UpdateFirmware has none
    args = (action, run, location, retrieve, request_id, p.get("retries"), p.get("retryInterval"))

    async def then() -> None:
        if is_http(location):
            await files.update_firmware(*args)
        else:  # ftp and the like are not supported
            await files.notify(action, "DownloadFailed", request_id, final=True)

    return Reply(answer, then)


def update_firmware_v16(st: StationPort, p: Payload) -> Reply:
    files = files_of(st)
    if files is None:
        return Reply({})
    return _firmware_reply(files, {}, FIRMWARE, p, p)  # 1.6 cannot refuse: DownloadFailed for ftp


def update_firmware_v2(st: StationPort, p: Payload) -> Reply:
    return _update_with_status(st, p, FIRMWARE)


def signed_update_firmware_v16(st: StationPort, p: Payload) -> Reply:
    return _update_with_status(st, p, SIGNED_FIRMWARE)


def _update_with_status(st: StationPort, p: Payload, action: str) -> Reply:
    files = files_of(st)
    if files is None or not is_http(p["firmware"]["location"]):
        return Reply({"status": "Rejected"})
    # 2.0.1 L01: a new request while one is in progress cancels that one (AcceptedCanceled).
    status = "AcceptedCanceled" if FIRMWARE in files.busy or SIGNED_FIRMWARE in files.busy else "Accepted"
    return _firmware_reply(files, {"status": status}, action, p, p["firmware"])


def status_follow_up(st: StationPort, action: str) -> FollowUp:
    """A triggered Firmware/Diagnostics/Log status notification: what is in progress, else Idle."""
    files = files_of(st)

    async def run() -> None:
        payload = files.current(action) if files is not None else {"status": "Idle"}
        await st.call(action, payload)

    return run


FILE_HANDLERS: dict[OcppVersion, dict[str, Handler]] = {
    OcppVersion.V16: {
        "GetDiagnostics": get_diagnostics_v16,
        "GetLog": get_log,
        "SignedUpdateFirmware": signed_update_firmware_v16,
        "UpdateFirmware": update_firmware_v16,
    },
    OcppVersion.V201: {"GetLog": get_log, "UpdateFirmware": update_firmware_v2},
    OcppVersion.V21: {"GetLog": get_log, "UpdateFirmware": update_firmware_v2},
}
