"""Files chargers upload (diagnostics, logs) and firmware images they download: records and rules.

Pure: no I/O. The operator API asks for an upload URL when it sends ``GetDiagnostics`` (1.6
``location``) or ``GetLog`` (1.6 security extension and 2.x ``log.remoteLocation``) without a
location; the upload request remembers the call (``uniqueId``), its ``requestId`` and its URL's
expiry. A file server (local) or an S3 notification (AWS) records what arrives, once per URL. The
charger's status notifications are matched to the request they are about:

* ``LogStatusNotification`` carries the ``requestId`` of its ``GetLog`` (2.x: optional): that request;
* 1.6 ``DiagnosticsStatusNotification`` has none: the charger's latest diagnostics request
  (OCPP 1.6 §4.4: a charger uploads one diagnostics file at a time).

The status is written with an ordered condition (the frame's ``order_key``), so notifications
delivered in any order, or twice, leave the newest. ``Idle`` says no upload is going on (an answer
to TriggerMessage), not how a request went: it changes no request.

Storage keys are the same on S3 and on disk: ``uploads/<cp>/<uploadId>/<name>`` and
``firmware/<firmwareId>/<name>``; names are checked (:func:`name_problem`) before any is built.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from .context import CallContext
from .ids import is_valid_charge_point_id
from .ports import ItemUpdate, Newer, Record
from .timefmt import format_ms

KIND_DIAGNOSTICS = "diagnostics"
KIND_LOG = "log"
#: the CSMS calls that carry an upload location, and what they upload
UPLOAD_ACTIONS = {"GetDiagnostics": KIND_DIAGNOSTICS, "GetLog": KIND_LOG}
#: the notifications that report an upload's progress, and of which kind
STATUS_ACTIONS = {"DiagnosticsStatusNotification": KIND_DIAGNOSTICS, "LogStatusNotification": KIND_LOG}
#: the name of a file uploaded by PUT to a URL without one (and of the S3 object: a presigned
#: URL names its key)
DEFAULT_NAMES = {KIND_DIAGNOSTICS: "diagnostics.log", KIND_LOG: "log.log"}
#: ``Idle`` is the charger's state, not a request's (OCPP 1.6 §7.24, 2.0.1 UploadLogStatusEnumType)
IDLE = "Idle"
MAX_NAME_LENGTH = 255
UPLOADS_PREFIX = "uploads/"
FIRMWARE_PREFIX = "firmware/"
FIRMWARE_KINDS = ("FirmwareStatusNotification", "SignedFirmwareStatusNotification")


class UploadRefused(Exception):
    """An upload that cannot be accepted: ``reason`` is one of the ``REFUSAL_*`` values."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


REFUSAL_UNKNOWN, REFUSAL_EXPIRED, REFUSAL_USED = "unknown", "expired", "used"


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a stored file (path traversal, control characters...), or None."""
    if not isinstance(name, str) or not name:
        return "the file name is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"the file name is longer than {MAX_NAME_LENGTH} characters"
    if "/" in name or "\\" in name:
        return "the file name has a path separator"
    if ".." in name:
        return "the file name has '..'"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "the file name has a control character"
    if name.strip() != name or name.strip(".") == "":
        return "the file name starts or ends with a space, or is only dots"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the file name is not valid Unicode"
    return None


# --- upload requests ------------------------------------------------------------------------
def upload_kind(action: object, payload: object) -> str | None:
    """The kind of file this call asks for if it needs the CSMS's upload URL (no location given)."""
    kind = UPLOAD_ACTIONS.get(action) if isinstance(action, str) else None
    if kind is None or not isinstance(payload, Mapping):
        return None
    if kind == KIND_DIAGNOSTICS:
        return kind if payload.get("location") is None else None
    log = payload.get("log")
    if log is not None and not isinstance(log, Mapping):
        return None  # the schema will say what is wrong
    return kind if (log or {}).get("remoteLocation") is None else None


def derived_request_id(unique_id: str) -> int:
    """A positive 31-bit ``requestId`` from the call's unique id (OCPP integers are 32-bit signed)."""
    return int(hashlib.sha256(unique_id.encode("utf-8", "surrogatepass")).hexdigest()[:8], 16) % (2**31 - 1) + 1


def with_location(kind: str, payload: Mapping[str, Any], url: str, request_id: int | None) -> dict[str, Any]:
    """``payload`` with the CSMS's upload URL (and for GetLog a ``requestId`` if it had none)."""
    filled = dict(payload)
    if kind == KIND_DIAGNOSTICS:
        filled["location"] = url
        return filled
    filled["log"] = {**dict(payload.get("log") or {}), "remoteLocation": url}
    if "requestId" not in filled and request_id is not None:
        filled["requestId"] = request_id
    return filled


def request_id_of(kind: str, payload: Mapping[str, Any]) -> int | None:
    value = payload.get("requestId") if kind == KIND_LOG else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def upload_record(
    charge_point_id: str,
    upload_id: str,
    *,
    kind: str,
    unique_id: str,
    request_id: int | None,
    created_at_ms: int,
    ttl_s: int,
    url: str,
) -> Record:
    record: Record = {
        "chargePointId": charge_point_id,
        "uploadId": upload_id,
        "kind": kind,
        "uniqueId": unique_id,
        "createdAt": created_at_ms,
        "urlExpiresAt": created_at_ms + ttl_s * 1000,
        "url": url,
        "status": "Requested",
    }
    if request_id is not None:
        record["requestId"] = request_id
    return record


def check_upload(upload: Mapping[str, Any] | None, now_ms: int) -> Record:
    """The upload request a file may be stored for; :class:`UploadRefused` otherwise."""
    if upload is None:
        raise UploadRefused(REFUSAL_UNKNOWN, "No upload was requested at this URL.")
    if upload.get("fileId") is not None:
        raise UploadRefused(REFUSAL_USED, "A file was already uploaded to this URL (one file per URL).")
    expires = upload.get("urlExpiresAt")
    if not isinstance(expires, int) or expires <= now_ms:
        raise UploadRefused(REFUSAL_EXPIRED, "This upload URL has expired.")
    return dict(upload)


def file_id_of(upload_id: str) -> str:
    """A received file's id: its upload's (one file per URL), so a redelivered notification rewrites it."""
    return upload_id


def file_record(upload: Mapping[str, Any], *, name: str, size: int, received_at_ms: int, storage_key: str) -> Record:
    """The ``FILE#`` item: exactly these attributes (the FileReceived event is derived from them)."""
    upload_id = str(upload["uploadId"])
    record: Record = {
        "chargePointId": upload["chargePointId"],
        "fileId": file_id_of(upload_id),
        "name": name,
        "size": size,
        "receivedAt": received_at_ms,
        "uploadId": upload_id,
        "uniqueId": upload.get("uniqueId"),
        "kind": upload.get("kind"),
        "storageKey": storage_key,
    }
    if isinstance(upload.get("requestId"), int):
        record["requestId"] = upload["requestId"]
    return record


def claim_changes(file_id: str, name: str, size: int, received_at_ms: int) -> dict[str, Any]:
    return {"fileId": file_id, "fileName": name, "size": size, "receivedAt": received_at_ms}


def upload_key(charge_point_id: str, upload_id: str, name: str) -> str:
    return f"{UPLOADS_PREFIX}{charge_point_id}/{upload_id}/{name}"


@dataclass(frozen=True, slots=True)
class UploadKey:
    charge_point_id: str
    upload_id: str
    name: str


def parse_upload_key(key: str) -> UploadKey | None:
    """``uploads/<cp>/<uploadId>/<name>`` (percent-decoded, as S3 notifications encode keys), or None."""
    decoded = unquote(key.replace("+", " "))
    if not decoded.startswith(UPLOADS_PREFIX):
        return None
    parts = decoded[len(UPLOADS_PREFIX) :].split("/")
    if len(parts) != 3:
        return None
    cp, upload_id, name = parts
    if not is_valid_charge_point_id(cp) or not upload_id.isalnum() or name_problem(name) is not None:
        return None
    return UploadKey(cp, upload_id, name)


# --- status notifications -------------------------------------------------------------------
def match_upload(uploads: Iterable[Mapping[str, Any]], kind: str, request_id: int | None) -> Record | None:
    """The request a notification is about: by ``requestId`` when given, else the latest of its kind."""
    candidates = [u for u in uploads if u.get("kind") == kind]
    if request_id is not None:
        candidates = [u for u in candidates if u.get("requestId") == request_id]
    if not candidates:
        return None
    latest = max(candidates, key=lambda u: (int(u.get("createdAt") or 0), str(u.get("uploadId"))))
    return {str(k): v for k, v in latest.items()}


def record_upload_status(ctx: CallContext, action: str, payload: Mapping[str, Any]) -> str | None:
    """Set the status on the matching upload request, ordered by the frame: its upload id, or None."""
    kind = STATUS_ACTIONS.get(action)
    status = payload.get("status")
    if kind is None or not isinstance(status, str) or status == IDLE:
        return None
    found = match_upload(ctx.store.list_uploads(ctx.charge_point_id), kind, request_id_of(kind, payload))
    if found is None:
        return None
    upload_id = str(found["uploadId"])
    update = ItemUpdate(
        set={"status": status, "statusAt": ctx.received_at_ms},
        newer=Newer("statusOrder", ctx.order_key),
        must_exist=True,
    )
    ctx.store.update_upload(ctx.charge_point_id, upload_id, update)
    ctx.notes["uploadId"] = upload_id
    return upload_id


# --- firmware -------------------------------------------------------------------------------
def firmware_key(firmware_id: str, name: str) -> str:
    return f"{FIRMWARE_PREFIX}{firmware_id}/{name}"


def firmware_record(
    firmware_id: str, name: str, *, size: int, sha256: str, md5: str, created_at_ms: int, storage_key: str
) -> Record:
    return {
        "firmwareId": firmware_id,
        "name": name,
        "size": size,
        "sha256": sha256,
        "md5": md5,
        "createdAt": created_at_ms,
        "storageKey": storage_key,
    }


def firmware_history(charger: Mapping[str, Any] | None, events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """``GET /chargers/{id}/firmware``: the latest status and every FirmwareStatusNotification, oldest first."""
    history = []
    for event in sorted(events, key=lambda e: (int(e.get("receivedAt") or 0), str(e.get("uniqueId")))):
        payload = event.get("payload")
        if not isinstance(payload, Mapping):
            continue
        request_id = payload.get("requestId")
        history.append(
            {
                "status": payload.get("status"),
                "at": format_ms(int(event.get("receivedAt") or 0)),
                "requestId": request_id if isinstance(request_id, int) else None,
            }
        )
    charger = charger or {}
    at = charger.get("firmwareStatusAt")
    return {
        "status": charger.get("firmwareStatus"),
        "statusAt": format_ms(at) if isinstance(at, int) else None,
        "history": history,
    }
