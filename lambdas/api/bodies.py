"""Checks for request bodies: one clear 400 sentence per mistake."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .errors import BadRequest
from .http import Request


def json_object(request: Request, allowed: Iterable[str], *, required: bool = False) -> dict[str, Any]:
    """The body as a JSON object with only ``allowed`` keys (``{}`` if empty and not required).

    Unknown keys are refused rather than ignored: a misspelt ``paylaod`` should not silently
    send a call without its payload.
    """
    body = request.json(default=None)
    if body is None:
        if required:
            raise BadRequest("The request needs a JSON object body.")
        return {}
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    allowed_keys = list(allowed)
    unknown = sorted(set(body) - set(allowed_keys))
    if unknown:
        raise BadRequest(
            f"Unknown field {unknown[0][:60]!r} in the request body; allowed: {', '.join(allowed_keys)}.",
            allowedFields=allowed_keys,
        )
    return body


def optional_string(body: dict[str, Any], key: str, *, max_length: int, nullable: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        if key in body and not nullable:
            raise BadRequest(f"{key} must be a string, not null.")
        return None
    if not isinstance(value, str) or not 0 < len(value) <= max_length:
        raise BadRequest(f"{key} must be a string of 1 to {max_length} characters.")
    return value


def choice(body: dict[str, Any], key: str, choices: Iterable[str], default: str | None = None) -> str | None:
    value = body.get(key, default)
    options = list(choices)
    if value is None:
        return None
    if not isinstance(value, str) or value not in options:
        raise BadRequest(f"{key} must be one of {', '.join(options)}.", allowedValues=options)
    return value
