"""Charge point ids (DESIGN §2): 1 to 48 of ``A-Z a-z 0-9 . _ - :``.

The same string is the MQTT client id and a topic level, so it must be valid as both; this
is stricter than OCPP's own ``identityString`` (48 printable characters).
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MAX_ID_LENGTH = 48
_VALID = re.compile(r"[A-Za-z0-9._:\-]{1,48}")


def is_valid_charge_point_id(value: object) -> bool:
    return isinstance(value, str) and _VALID.fullmatch(value) is not None


def charge_point_id_from_path(path: str) -> str | None:
    """The charger id from a WebSocket request path, or None if it is not acceptable.

    The id is the last path segment, percent-decoded; the query string is ignored.
    ``/ocpp/CP%2D1`` gives ``CP-1``; ``/``, ``/ocpp/`` and ``/ocpp/a%2Fb`` give None.
    """
    path = path.split("?", 1)[0].split("#", 1)[0]
    segment = path.rsplit("/", 1)[-1]
    if not segment or len(segment) > MAX_ID_LENGTH * 3:
        return None
    try:
        decoded = unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None
    return decoded if is_valid_charge_point_id(decoded) else None
