"""The opening handshake decided as a pure function (DESIGN §3).

:func:`evaluate_request` looks at the request path and the relevant headers and returns
either an :class:`Admission` (charger id, negotiated subprotocol, presented password) or a
:class:`Rejection` (HTTP status and a short reason). The server only turns that into a
response; no request, however malformed, makes this code raise (a property test checks it).
"""

from __future__ import annotations

import http
from collections.abc import Iterable
from dataclasses import dataclass

from websockets.exceptions import InvalidHeader
from websockets.headers import parse_authorization_basic

from ocpp_core.ids import charge_point_id_from_path
from ocpp_core.versions import SUBPROTOCOL_PREFERENCE, OcppVersion

#: Readiness: 200 when the broker is reachable, 503 otherwise (DESIGN §3).
HEALTH_PATH = "/health"
#: Liveness: 200 whenever the process serves (its event loop answers), whatever the broker. The
#: NLB target group checks this one: ECS replaces a task whose target health check fails, so a
#: check that follows the broker would turn an IoT Core or NAT hiccup into every socket dropped
#: (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_services.html).
LIVE_PATH = "/health/live"


@dataclass(frozen=True, slots=True)
class Admission:
    charge_point_id: str
    protocol: OcppVersion
    password: str | None  # from HTTP Basic auth; None when the charger sent no credentials


@dataclass(frozen=True, slots=True)
class Rejection:
    status: int
    reason: str
    challenge: bool = False  # answer with ``WWW-Authenticate: Basic`` (401)


def offered_subprotocols(header_values: Iterable[str]) -> list[str]:
    """Subprotocols from every ``Sec-WebSocket-Protocol`` header (RFC 6455 §11.3.4: a comma list)."""
    offered: list[str] = []
    for value in header_values:
        for item in value.split(","):
            token = item.strip()
            if token:
                offered.append(token)
    return offered


def choose_subprotocol(offered: Iterable[str]) -> OcppVersion | None:
    """The server's preferred version among those offered: ``ocpp2.1`` > ``ocpp2.0.1`` > ``ocpp1.6``."""
    offered_set = set(offered)
    for version in SUBPROTOCOL_PREFERENCE:
        if version.value in offered_set:
            return version
    return None


def parse_basic_credentials(authorization: str | None) -> tuple[str, str] | None:
    """``(user, password)`` from an ``Authorization: Basic`` header, or None if absent or malformed."""
    if authorization is None:
        return None
    try:
        return parse_authorization_basic(authorization)
    except (InvalidHeader, ValueError):
        return None


def is_health_check(path: str) -> bool:
    return path.split("?", 1)[0] == HEALTH_PATH


def is_liveness_check(path: str) -> bool:
    return path.split("?", 1)[0] == LIVE_PATH


def evaluate_request(path: str, subprotocol_headers: Iterable[str], authorization: str | None) -> Admission | Rejection:
    """Decide a WebSocket opening handshake from its path and headers.

    Order: the id first (a bad one never reaches the registry), then the subprotocol (refused
    here with 400 rather than opening a socket and closing it), then the form of the
    credentials. Whether the credentials are right is for the authenticator, which needs I/O.
    """
    cp = charge_point_id_from_path(path)
    if cp is None:
        return Rejection(
            http.HTTPStatus.BAD_REQUEST,
            "The last path segment must be a charge point id: 1 to 48 of A-Z a-z 0-9 . _ - :",
        )
    offered = offered_subprotocols(subprotocol_headers)
    if not offered:
        return Rejection(http.HTTPStatus.BAD_REQUEST, "Missing subprotocol; expected one of " + _supported())
    protocol = choose_subprotocol(offered)
    if protocol is None:
        return Rejection(http.HTTPStatus.BAD_REQUEST, "Unsupported subprotocol; expected one of " + _supported())
    password: str | None = None
    if authorization is not None:
        credentials = parse_basic_credentials(authorization)
        if credentials is None:
            return Rejection(http.HTTPStatus.UNAUTHORIZED, "Unsupported credentials", challenge=True)
        user, password = credentials
        # OCPP security profile 1: the Basic auth user is the charge point id.
        if user != cp:
            return Rejection(http.HTTPStatus.UNAUTHORIZED, "Invalid credentials", challenge=True)
    return Admission(cp, protocol, password)


def _supported() -> str:
    return ", ".join(version.value for version in SUBPROTOCOL_PREFERENCE)
