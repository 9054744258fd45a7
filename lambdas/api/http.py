"""API Gateway HTTP API (payload format 2.0) events in, proxy responses out.

Only the fields the local server can produce are read (``rawPath``, ``rawQueryString`` /
``queryStringParameters``, ``requestContext.http.method``, ``headers``, ``body``,
``isBase64Encoded``; ``requestContext.domainName`` when there is one), so the same code serves AWS
and ``local_stack.api_server``.
Everything here treats the event as untrusted: a malformed one is a 400, never an exception.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from .errors import BadRequest, PayloadTooLarge

#: Larger bodies are refused with 413. OCPP payloads are small; 256 KiB also keeps a stored
#: call record well under DynamoDB's 400 KB item limit.
MAX_BODY_BYTES = 256 * 1024
#: DynamoDB nests at most 32 levels and a call record wraps the payload in two more.
MAX_JSON_DEPTH = 24
#: DynamoDB numbers: 38 significant digits, magnitude 1E-130 to 1E+125.
_MAX_INT = 10**38 - 1
_MAX_FLOAT = 1e125
_MIN_FLOAT = 1e-129
#: a DNS name (``<api-id>.execute-api.<region>.amazonaws.com`` or a custom domain)
_HOST = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: ``https://<requestContext.domainName>[/<stage>]``: where this API was reached (None if the
    #: event does not say), for URLs that point back at it (``lambdas.api.files``' upload URLs)
    base_url: str | None = None

    def json(self, *, default: Any = None) -> Any:
        """The body as JSON (``default`` when empty); 400 with the reason when it is not JSON."""
        if not self.body.strip():
            return default
        return parse_json(self.body)


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def to_proxy(self) -> dict[str, Any]:
        """The Lambda proxy answer API Gateway expects (204: no body, no content type)."""
        if self.status == 204:
            return {"statusCode": 204, "headers": dict(self.headers), "body": "", "isBase64Encoded": False}
        return {
            "statusCode": self.status,
            "headers": {"content-type": "application/json", **self.headers},
            "body": json.dumps(self.body, separators=(",", ":"), default=str),
            "isBase64Encoded": False,
        }


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes) -> Any:
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise BadRequest("The request body is not UTF-8 text.") from None
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise BadRequest("The request body is nested too deeply.") from None
    except ValueError as error:  # JSONDecodeError, NaN/Infinity, integers with too many digits
        raise BadRequest(f"The request body is not valid JSON: {error}.") from None
    _check_storable(value)
    return value


def _check_text(text: str) -> None:
    # JSON allows "\ud800" escapes that decode to lone surrogates, which are not Unicode
    # text: they could be neither hashed, stored nor published as UTF-8.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest("The request body has a string with a lone surrogate escape (not valid Unicode).") from None


def _check_storable(value: Any) -> None:
    """Refuse what the state store could not keep, so it is a 400 here and not a 503 later."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise BadRequest(f"The request body is nested more than {MAX_JSON_DEPTH} levels deep.")
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, str):
            _check_text(item)
            continue
        if isinstance(item, int):
            if abs(item) > _MAX_INT:
                raise BadRequest("The request body has an integer with more than 38 digits.")
        elif isinstance(item, float):
            if not math.isfinite(item) or abs(item) > _MAX_FLOAT or 0 < abs(item) < _MIN_FLOAT:
                raise BadRequest("The request body has a number out of the supported range (1e-129 to 1e125).")
        elif isinstance(item, dict):
            for key, sub in item.items():
                if key == "":
                    raise BadRequest("The request body has an object with an empty key.")
                _check_text(key)
                stack.append((sub, depth + 1))
        elif isinstance(item, list):
            stack.extend((sub, depth + 1) for sub in item)


def _size(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"


def _headers(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k).lower(): v for k, v in value.items() if isinstance(v, str)}


def parse_event(event: Any, *, body_limits: Mapping[tuple[str, str], int] | None = None) -> Request:
    """A :class:`Request` from an HTTP API v2 event; 400 / 413 when it cannot be one.

    ``body_limits``: the routes (method, path) whose body is a file, with their own limit.
    """
    if not isinstance(event, dict):
        raise BadRequest("Malformed request event.")
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) else None
    method = http.get("method") if isinstance(http, dict) else None
    path = event.get("rawPath")
    if not isinstance(method, str) or not method or not isinstance(path, str) or not path.startswith("/"):
        raise BadRequest("Malformed request event: no method or path.")
    stage = context.get("stage") if isinstance(context, dict) else None
    stage_prefix = ""
    if isinstance(stage, str) and stage and stage != "$default" and path.startswith(f"/{stage}/"):
        # A named stage shows up as the first path segment of rawPath.
        path = path[len(stage) + 1 :]
        stage_prefix = f"/{stage}"

    params = event.get("queryStringParameters")
    raw_query = event.get("rawQueryString")
    query: dict[str, str] = {}
    if isinstance(params, dict):
        query = {str(k): v for k, v in params.items() if isinstance(v, str)}
    elif isinstance(raw_query, str) and raw_query:
        # As API Gateway does: repeated parameters are joined with commas.
        for key, value in parse_qsl(raw_query, keep_blank_values=True):
            query[key] = f"{query[key]},{value}" if key in query else value

    limit = (body_limits or {}).get((method.upper(), path.rstrip("/") or "/"), MAX_BODY_BYTES)
    body_field = event.get("body")
    body = b""
    if isinstance(body_field, str) and body_field:
        # A base64 body is 4/3 of the bytes: check the size of what it decodes to.
        if event.get("isBase64Encoded") is True:
            if len(body_field) > (limit * 4) // 3 + 4:
                raise PayloadTooLarge(f"The request body is larger than {_size(limit)}.")
            try:
                body = base64.b64decode(body_field, validate=True)
            except (binascii.Error, ValueError):
                raise BadRequest("The request body is not valid base64.") from None
        else:
            body = body_field.encode("utf-8", errors="surrogatepass")
    if len(body) > limit:
        raise PayloadTooLarge(f"The request body is larger than {_size(limit)}.")
    return Request(
        method=method.upper(),
        path=path,
        query=query,
        headers=_headers(event.get("headers")),
        body=body,
        base_url=_base_url(context, stage_prefix),
    )


def _base_url(context: Any, stage_prefix: str) -> str | None:
    """``https://<domainName><stage prefix>``, if ``requestContext.domainName`` is a host name."""
    domain = context.get("domainName") if isinstance(context, dict) else None
    if not isinstance(domain, str) or not _HOST.fullmatch(domain):
        return None
    return f"https://{domain.lower()}{quote(stage_prefix)}"
