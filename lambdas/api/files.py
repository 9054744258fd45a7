"""Files chargers uploaded, upload requests, firmware images (DESIGN §11, ``ocpp_core.files``).

* ``GET /chargers/{id}/files``, ``GET /chargers/{id}/files/{fileId}``: received files, each with the
  status of its request and a fresh ``downloadUrl``;
* ``GET /chargers/{id}/uploads``: upload requests (GetDiagnostics / GetLog sent without a location);
* ``GET /chargers/{id}/firmware``: the firmware status and its FirmwareStatusNotification history;
* ``POST /firmware?name=<file name>`` (the raw image as the body), ``GET /firmware``,
  ``GET /firmware/{firmwareId}``.

``prepare_upload`` is what ``POST /chargers/{id}/calls`` does first for GetDiagnostics / GetLog
without a location: an upload request and its URL, filled into the payload before it is validated.
The URL is the file host's (locally the file server's ``/upload/<token>``), except on S3 with
``OCPP_UPLOAD_MODE=api`` (the default): then it is this API's own ``https://<domain>/upload/<token>``
(served by ``lambdas.uploads``), built from the request's address (``Request.base_url``), since the
API's function cannot be told its API's URL in CloudFormation without a circular dependency.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from ocpp_core import files
from ocpp_core.ports import Record

from ..files.host import FileHost, new_file_id
from ..files.receive import UPLOAD_SEGMENT
from ..settings import UPLOAD_MODE_API, Settings
from .context import ApiContext
from .errors import ApiError, BackendFailure, BadRequest, NotFound
from .http import Request, Response
from .views import present

logger = logging.getLogger(__name__)

FIRMWARE_PATH = "/firmware"
_BINARY_TYPES = ("application/octet-stream", "application/x-binary", "binary/octet-stream")


def body_limits(settings: Settings) -> dict[tuple[str, str], int]:
    """Routes whose body is a file, and their limit (the others keep ``http.MAX_BODY_BYTES``)."""
    return {("POST", FIRMWARE_PATH): settings.firmware_max_bytes}


def _host(ctx: ApiContext) -> FileHost:
    host = ctx.deps.files
    if host is None:
        raise BackendFailure("File hosting is not configured (set OCPP_FILES_BUCKET on AWS).")
    return host


def _charger(ctx: ApiContext, cp: str) -> Record:
    charger = ctx.deps.store.get_charger(cp)
    if charger is None:
        raise NotFound(f"Unknown charger {cp}.", chargePointId=cp)
    return charger


# --- uploads: filled into GetDiagnostics / GetLog --------------------------------------------
@dataclass(frozen=True, slots=True)
class PreparedUpload:
    unique_id: str
    upload_id: str
    payload: dict[str, Any]

    def discard(self, ctx: ApiContext, cp: str) -> None:
        """The call was refused: nothing was sent, so no file will come."""
        try:
            ctx.deps.store.delete_upload(cp, self.upload_id)
        except Exception:  # the request lingers until its URL expires; the refusal still goes out
            logger.exception("could not delete upload request %s of %s", self.upload_id, cp)


def api_upload_url(api_base: str, upload_id: str) -> str:
    """``<api base>/upload/<token>``: the route ``lambdas.uploads`` serves."""
    return f"{api_base.rstrip('/')}/{UPLOAD_SEGMENT}/{upload_id}"


def _upload_url(ctx: ApiContext, host: FileHost, cp: str, upload_id: str, kind: str, api_base: str | None) -> str:
    ttl = ctx.deps.settings.upload_url_ttl_s
    if host.presigned_uploads and ctx.deps.settings.upload_mode == UPLOAD_MODE_API:
        if api_base is not None:
            return api_upload_url(api_base, upload_id)
        logger.warning("no requestContext.domainName in the request: upload %s gets a presigned PUT URL", upload_id)
    return host.upload_url(cp, upload_id, files.DEFAULT_NAMES[kind], ttl)


def prepare_upload(
    ctx: ApiContext, cp: str, action: Any, payload: Any, *, api_base: str | None = None
) -> PreparedUpload | None:
    """An upload request for a GetDiagnostics / GetLog without a location (None: nothing to fill).

    ``api_base``: where the request reached this API (``Request.base_url``), for the upload URL."""
    kind = files.upload_kind(action, payload)
    host = ctx.deps.files
    if kind is None or host is None or ctx.deps.store.get_charger(cp) is None:
        return None
    unique_id = ctx.deps.ids.new_id()
    now = ctx.now_ms()
    upload_id = new_file_id(now)
    ttl = ctx.deps.settings.upload_url_ttl_s
    url = _upload_url(ctx, host, cp, upload_id, kind, api_base)
    filled = files.with_location(kind, payload, url, files.derived_request_id(unique_id))
    record = files.upload_record(
        cp,
        upload_id,
        kind=kind,
        unique_id=unique_id,
        request_id=files.request_id_of(kind, filled),
        created_at_ms=now,
        ttl_s=ttl,
        url=url,
    )
    ctx.deps.store.create_upload(cp, upload_id, record)
    return PreparedUpload(unique_id, upload_id, filled)


def _upload_view(record: Record) -> dict[str, Any]:
    return present(record, drop=frozenset({"chargePointId"}))


def list_uploads(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp = params["chargePointId"]
    _charger(ctx, cp)
    uploads = [_upload_view(u) for u in ctx.deps.store.list_uploads(cp)]
    return Response(200, {"uploads": uploads, "count": len(uploads)})


# --- received files -------------------------------------------------------------------------
def _file_view(ctx: ApiContext, record: Record, statuses: dict[str, Any]) -> dict[str, Any]:
    host = ctx.deps.files
    url = None
    if host is not None and isinstance(record.get("storageKey"), str):
        url = host.download_url(record["storageKey"], str(record.get("name")), ctx.deps.settings.upload_url_ttl_s)
    view = {
        key: record.get(key)
        for key in ("fileId", "name", "size", "receivedAt", "uploadId", "requestId", "uniqueId", "kind")
    }
    view["status"] = statuses.get(str(record.get("uploadId")))
    view["downloadUrl"] = url
    return present(view)


def _statuses(ctx: ApiContext, cp: str) -> dict[str, Any]:
    return {str(u.get("uploadId")): u.get("status") for u in ctx.deps.store.list_uploads(cp)}


def list_files(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp = params["chargePointId"]
    _charger(ctx, cp)
    statuses = _statuses(ctx, cp)
    found = [_file_view(ctx, r, statuses) for r in ctx.deps.store.list_files(cp)]
    return Response(200, {"files": found, "count": len(found)})


def get_file(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp, file_id = params["chargePointId"], params["fileId"]
    record = ctx.deps.store.get_file(cp, file_id)
    if record is None:
        raise NotFound(f"No file {file_id} for charger {cp}.", chargePointId=cp, fileId=file_id)
    return Response(200, _file_view(ctx, record, _statuses(ctx, cp)))


def charger_firmware(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp = params["chargePointId"]
    charger = _charger(ctx, cp)
    events = [e for kind in files.FIRMWARE_KINDS for e in ctx.deps.store.list_events(cp, kind)]
    return Response(200, files.firmware_history(charger, events))


# --- firmware images ------------------------------------------------------------------------
def _firmware_view(ctx: ApiContext, record: Record) -> dict[str, Any]:
    host = _host(ctx)
    view = present(record, drop=frozenset({"storageKey"}))
    view["downloadUrl"] = host.download_url(
        str(record["storageKey"]), str(record["name"]), ctx.deps.settings.upload_url_ttl_s
    )
    return view


def post_firmware(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    name = request.query.get("name")
    if name is None:
        raise BadRequest("POST /firmware needs ?name=<file name> (the image is the body).")
    problem = files.name_problem(name)
    if problem is not None:
        raise BadRequest(f"Invalid firmware name: {problem}.", name=name[:60])
    content_type = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
    if content_type not in _BINARY_TYPES:
        raise BadRequest("Send the firmware image as the raw body with Content-Type application/octet-stream.")
    if not request.body:
        raise BadRequest("The firmware image (the request body) is empty.")
    limit = ctx.deps.settings.firmware_max_bytes
    if len(request.body) > limit:
        raise ApiError(f"The firmware image is larger than {limit} bytes.", status=413)
    host = _host(ctx)
    now = ctx.now_ms()
    firmware_id = new_file_id(now)
    key = host.store_firmware(firmware_id, name, request.body)
    record = files.firmware_record(
        firmware_id,
        name,
        size=len(request.body),
        sha256=hashlib.sha256(request.body).hexdigest(),
        md5=hashlib.md5(request.body, usedforsecurity=False).hexdigest(),
        created_at_ms=now,
        storage_key=key,
    )
    ctx.deps.store.put_firmware(firmware_id, record)
    return Response(201, _firmware_view(ctx, record), {"location": f"/firmware/{firmware_id}"})


def list_firmware(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    found = [_firmware_view(ctx, r) for r in ctx.deps.store.list_firmware()]
    return Response(200, {"firmware": found, "count": len(found)})


def get_firmware(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    firmware_id = params["firmwareId"]
    record = ctx.deps.store.get_firmware(firmware_id)
    if record is None:
        raise NotFound(f"No firmware {firmware_id}.", firmwareId=firmware_id)
    return Response(200, _firmware_view(ctx, record))
