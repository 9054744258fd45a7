"""A small explicit route table: method + raw path to an endpoint, with path parameters.

Matching is on ``rawPath`` rather than API Gateway's ``pathParameters`` so the local server
(which has no API Gateway in front of it) routes exactly the same way. Path parameters are
percent-decoded here and checked by name (``chargePointId``, ``idTag``, ``uniqueId``, ``transactionId``; the
reservation id is checked by its endpoints) before
an endpoint sees them, so every endpoint gets valid strings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote

from ocpp_core.ids import MAX_ID_LENGTH, is_valid_charge_point_id

from .errors import BadRequest, MethodNotAllowed, NotFound
from .http import Request, Response

if TYPE_CHECKING:
    from .context import ApiContext

Endpoint = Callable[["ApiContext", Request, dict[str, str]], Response]

#: OCPP 2.1 ``IdTokenType.idToken`` is at most 255 characters (1.6 idTag: 20, 2.0.1: 36).
MAX_ID_TAG_LENGTH = 255
#: OCPP-J message ids are at most 36 characters.
MAX_UNIQUE_ID_LENGTH = 36


def _printable(value: str) -> bool:
    return value.isprintable() and value == value.strip()


def _check_charge_point_id(value: str) -> None:
    if not is_valid_charge_point_id(value):
        raise BadRequest(
            f"Invalid charger id {value[:60]!r}: use 1 to {MAX_ID_LENGTH} characters from [A-Za-z0-9._:-].",
            chargePointId=value[:60],
        )


def _check_id_tag(value: str) -> None:
    if not 0 < len(value) <= MAX_ID_TAG_LENGTH or not _printable(value):
        raise BadRequest(
            f"Invalid id tag: use 1 to {MAX_ID_TAG_LENGTH} printable characters without surrounding spaces."
        )


def _check_unique_id(value: str) -> None:
    if not 0 < len(value) <= MAX_UNIQUE_ID_LENGTH or not _printable(value):
        raise BadRequest(f"Invalid call id: OCPP message ids are 1 to {MAX_UNIQUE_ID_LENGTH} printable characters.")


#: 1.6 transaction ids are integers; 2.x ``transactionId`` is at most 36 characters.
MAX_TRANSACTION_ID_LENGTH = 36


def _check_transaction_id(value: str) -> None:
    if not 0 < len(value) <= MAX_TRANSACTION_ID_LENGTH or not _printable(value):
        raise BadRequest(f"Invalid transaction id: 1 to {MAX_TRANSACTION_ID_LENGTH} printable characters.")


def _check_site_id(value: str) -> None:
    """Site ids follow the charger id rule (DESIGN §2)."""
    if not is_valid_charge_point_id(value):
        raise BadRequest(
            f"Invalid site id {value[:60]!r}: use 1 to {MAX_ID_LENGTH} characters from [A-Za-z0-9._:-].",
            siteId=value[:60],
        )


def _check_serial(value: str) -> None:
    """Certificate serials as the CA writes them: lower-case hex, at most 40 digits (20 octets)."""
    if not 0 < len(value) <= 40 or any(c not in "0123456789abcdef" for c in value):
        raise BadRequest("Invalid certificate serial: 1 to 40 lower-case hex digits.", serial=value[:60])


def _check_file_id(value: str) -> None:
    """Upload, file and firmware ids (``lambdas.files.host.new_file_id``): letters and digits."""
    if not (0 < len(value) <= 64 and value.isascii() and value.isalnum()):
        raise BadRequest("Invalid file or firmware id: 1 to 64 letters and digits.", id=value[:64])


PARAMETER_CHECKS: dict[str, Callable[[str], None]] = {
    "chargePointId": _check_charge_point_id,
    "idTag": _check_id_tag,
    "uniqueId": _check_unique_id,
    "transactionId": _check_transaction_id,
    "siteId": _check_site_id,
    "serial": _check_serial,
    "fileId": _check_file_id,
    "firmwareId": _check_file_id,
}


@dataclass(frozen=True, slots=True)
class Route:
    """``/chargers/{chargePointId}/calls`` and the endpoint of each method it accepts."""

    template: str
    methods: Mapping[str, Endpoint]

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(self.template.strip("/").split("/"))

    def match(self, segments: list[str]) -> dict[str, str] | None:
        """Raw (still percent-encoded) parameters if the path has this shape, else None."""
        pattern = self.segments
        if len(pattern) != len(segments):
            return None
        params: dict[str, str] = {}
        for expected, actual in zip(pattern, segments, strict=True):
            if expected.startswith("{") and expected.endswith("}"):
                if not actual:
                    return None
                params[expected[1:-1]] = actual
            elif expected != actual:
                return None
        return params


def _decode(raw: str) -> str:
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise BadRequest("The request path has a percent-encoded segment that is not UTF-8.") from None


def resolve(routes: list[Route], method: str, path: str) -> tuple[Endpoint, dict[str, str]]:
    """The endpoint and decoded, checked parameters; 404 / 405 / 400 otherwise."""
    trimmed = path[:-1] if len(path) > 1 and path.endswith("/") else path
    segments = trimmed[1:].split("/")
    for route in routes:
        raw = route.match(segments)
        if raw is None:
            continue
        endpoint = route.methods.get(method)
        if endpoint is None:
            allowed = sorted(route.methods)
            raise MethodNotAllowed(f"{method} is not allowed on {route.template}; use {', '.join(allowed)}.", allowed)
        params = {name: _decode(value) for name, value in raw.items()}
        for name, value in params.items():
            check = PARAMETER_CHECKS.get(name)
            if check is not None:
                check(value)
        return endpoint, params
    raise NotFound(f"No route {path[:200]}: see docs/operator_api.md for the routes.", path=path[:200])
