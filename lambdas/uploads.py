"""Lambda: chargers upload diagnostics and logs to the operator API's ``/upload/<token>`` (DESIGN §11).

API Gateway HTTP API (payload format 2.0) invokes it for ``POST`` and ``PUT`` on
``/upload/{token}`` and ``/upload/{token}/{name}``, without IAM authorization: the token (an upload
id, 128 random bits after the time) is the credential, good for one file and until it expires. The
answers are the local file server's (``local_stack.file_server``), because both run the same steps
(``lambdas.files.receive``) and the same multipart parser (``lambdas.files.multipart``): 201
``{"fileId", "name", "size"}``; 400 bad multipart or name, 404 unknown token, 410 expired, 409 already
used, 413 too large, 405 another method, each ``{"error": "<sentence>"}``. Nothing is stored on a
refusal. The file goes to S3 at ``uploads/<chargePointId>/<uploadId>/<name>``.

The whole request is one Lambda payload, at most 6 MB, and API Gateway sends a binary body base64
(4/3 of its size), so a file is at most ``OCPP_UPLOAD_MAX_BYTES`` (4 MiB by default):
https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html. Larger files need
``OCPP_UPLOAD_MODE=presigned`` (an S3 presigned PUT).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ocpp_core.ports import StoreError

from .files import receive
from .files.multipart import MULTIPART_OVERHEAD, Body, HttpRefusal, Sink, TooLarge, boundary_of, read_multipart
from .files.s3 import S3FileHost
from .observability import logger as lambda_logger
from .runtime import Dependencies, dependencies

logger = logging.getLogger(__name__)


def _response(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


def _method_and_path(event: Any) -> tuple[str, str]:
    context = event.get("requestContext") if isinstance(event, dict) else None
    http = context.get("http") if isinstance(context, dict) else None
    method = http.get("method") if isinstance(http, dict) else None
    path = event.get("rawPath") if isinstance(event, dict) else None
    if not isinstance(method, str) or not isinstance(path, str) or not path.startswith("/"):
        raise HttpRefusal(400, "Malformed request event: no method or path.")
    stage = context.get("stage") if isinstance(context, dict) else None
    if isinstance(stage, str) and stage and stage != "$default" and path.startswith(f"/{stage}/"):
        path = path[len(stage) + 1 :]  # a named stage is the first segment of rawPath
    return method.upper(), path


def _headers(event: dict[str, Any]) -> dict[str, str]:
    raw = event.get("headers")
    return {str(k).lower(): v for k, v in raw.items() if isinstance(v, str)} if isinstance(raw, dict) else {}


def _body(event: dict[str, Any], limit: int) -> bytes:
    """The request body's bytes; 413 above ``limit`` (checked on the base64 text before decoding)."""
    raw = event.get("body")
    if not isinstance(raw, str) or not raw:
        return b""
    if event.get("isBase64Encoded") is True:
        if len(raw) > (limit * 4) // 3 + 4:
            raise TooLarge(limit)
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise HttpRefusal(400, "The request body is not valid base64.") from None
    data = raw.encode("utf-8", errors="surrogatepass")
    if len(data) > limit:
        raise TooLarge(limit)
    return data


def _host(deps: Dependencies) -> S3FileHost:
    host = deps.files
    if not isinstance(host, S3FileHost):
        raise HttpRefusal(503, "File hosting is not configured (set OCPP_FILES_BUCKET).")
    return host


def receive_upload(event: Any, deps: Dependencies) -> dict[str, Any]:
    """One upload request: the body of a 201 (the file is stored and recorded), or an HttpRefusal."""
    method, path = _method_and_path(event)
    found = receive.upload_path(path)
    if found is None:
        raise HttpRefusal(404, "No such file URL.")
    receive.check_method(method)
    token, raw_name = found
    url_name = receive.url_name(raw_name)
    upload = receive.find_upload(deps.store, token, deps.clock.now_ms())
    host = _host(deps)
    limit = deps.settings.upload_max_bytes
    multipart = method == "POST"
    data = _body(event, limit + (MULTIPART_OVERHEAD if multipart else 0))
    out = io.BytesIO()
    sink, body = Sink(out, limit), Body(io.BytesIO(data), len(data))
    if multipart:
        part_name: str | None = read_multipart(body, boundary_of(_headers(event).get("content-type")), sink)
    else:
        part_name = None
        body.copy_all(sink)
    name = receive.file_name(upload, part_name=part_name, url_name=url_name)
    stored = out.getvalue()
    record = receive.keep(
        deps.store, upload, name, sink.size, deps.clock.now_ms(), lambda key: host.store_upload(key, stored)
    )
    return receive.created(record)


def handle(event: Any) -> dict[str, Any]:
    """The proxy response to one upload; never raises (a failure is a logged 500 or 503)."""
    try:
        return _response(201, receive_upload(event, dependencies()))
    except HttpRefusal as refusal:
        return _response(refusal.status, receive.refusal_body(refusal))
    except (StoreError, BotoCoreError, ClientError):
        logger.exception("uploads: the state store or S3 failed")
        return _response(503, {"error": "The file could not be stored (storage unavailable); the failure is logged."})
    except Exception:
        logger.exception("uploads: internal error")
        return _response(500, {"error": "Internal error: the upload failed; the failure is logged."})


@lambda_logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event)
