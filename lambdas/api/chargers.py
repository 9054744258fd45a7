"""``GET /chargers``, ``GET /chargers/{chargePointId}``, ``PUT /chargers/{chargePointId}``."""

from __future__ import annotations

import logging
import os
from typing import Any

from ocpp_core.calls import CHARGER_MAPS
from ocpp_core.handlers.common import REGISTRATION_STATES
from ocpp_core.ids import MAX_ID_LENGTH
from ocpp_core.passwords import MAX_PASSWORD_LENGTH, hash_password
from ocpp_core.presence import current_connection_key, with_presence

from .bodies import choice, json_object, optional_string
from .context import ApiContext
from .errors import BadRequest, NotFound
from .http import Request, Response
from .views import charger_view

logger = logging.getLogger(__name__)

MAX_DESCRIPTION_LENGTH = 500
#: OCPP security profiles (DESIGN §9): 1 Basic auth, 2 Basic auth over TLS, 3 client certificate.
SECURITY_PROFILES = (1, 2, 3)


#: ``GET /chargers`` pages: ``?limit=`` (default and bound) and ``?after=<chargePointId>``.
DEFAULT_PAGE = 100
MAX_PAGE = 1000


def list_chargers(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    """One page of chargers in id order; ``next`` is the ``after`` of the following page (or null)."""
    limit = _page_size(request.query.get("limit"))
    after = request.query.get("after") or None
    if after is not None and len(after) > MAX_ID_LENGTH:
        raise BadRequest(f"after must be a charger id (at most {MAX_ID_LENGTH} characters).", after=after[:64])
    store = ctx.deps.store
    records = store.list_chargers(after=after, limit=limit)
    connections = store.get_connections([key for r in records if (key := current_connection_key(r)) is not None])
    chargers = [
        charger_view(
            with_presence(record, connections), store.list_statuses(str(record.get("chargePointId"))), detail=False
        )
        for record in records
    ]
    following = chargers[-1]["chargePointId"] if len(chargers) == limit else None
    return Response(200, {"chargers": chargers, "count": len(chargers), "next": following})


def _page_size(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE:
        raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE}.", limit=raw[:32])
    return int(raw)


def get_charger(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp = params["chargePointId"]
    store = ctx.deps.store
    record = store.get_charger(cp)
    if record is None:
        raise NotFound(f"Unknown charger {cp}.", chargePointId=cp)
    key = current_connection_key(record)
    with_presence(record, store.get_connections([key]) if key is not None else {})
    for name in CHARGER_MAPS:
        record[name] = store.get_charger_map(cp, name)
    return Response(200, charger_view(record, store.list_statuses(cp), detail=True))


def put_charger(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    """Register or update: ``registered: true`` plus whatever the body sets.

    The password is stored salted and hashed (``ocpp_core.passwords``) and never returned;
    the bridge checks HTTP Basic auth against it (security profiles 1 and 2). ``securityProfile``
    3 makes the bridge refuse the charger unless it presents a valid client certificate.
    """
    cp = params["chargePointId"]
    body = json_object(request, ("password", "registrationStatus", "description", "securityProfile"))
    password = optional_string(body, "password", max_length=MAX_PASSWORD_LENGTH)
    status = choice(body, "registrationStatus", REGISTRATION_STATES)
    profile = _security_profile(body)
    description = optional_string(body, "description", max_length=MAX_DESCRIPTION_LENGTH, nullable=True)

    store, now = ctx.deps.store, ctx.now_ms()
    existing = store.get_charger(cp)
    changes: dict[str, Any] = {"registered": True, "autoRegistered": False, "updatedAt": now}
    if existing is None or not existing.get("registered"):
        changes["registeredAt"] = now
    if existing is None:
        changes["createdAt"] = now
    if status is not None:
        changes["registrationStatus"] = status
    elif existing is None or not existing.get("registrationStatus"):
        changes["registrationStatus"] = "Accepted"  # what the processor assumes for a registered charger
    if "description" in body:
        changes["description"] = description
    if profile is not None:
        changes["securityProfile"] = profile
    if password is not None:
        changes["passwordHash"] = hash_password(password, os.urandom(16))
        changes["passwordSetAt"] = now
    store.update_charger(cp, changes)
    logger.info(
        "charger %s %s (status %s%s%s)",
        cp,
        "registered" if existing is None else "updated",
        changes.get("registrationStatus", existing.get("registrationStatus") if existing else None),
        ", password set" if password is not None else "",
        f", security profile {profile}" if profile is not None else "",
    )
    record = store.get_charger(cp) or {"chargePointId": cp, **changes}
    return Response(201 if existing is None else 200, charger_view(record, store.list_statuses(cp), detail=True))


def _security_profile(body: dict[str, Any]) -> int | None:
    if "securityProfile" not in body:
        return None
    value = body["securityProfile"]
    # bool is an int in Python; JSON true is not a profile.
    if isinstance(value, bool) or not isinstance(value, int) or value not in SECURITY_PROFILES:
        raise BadRequest(
            "securityProfile must be 1 (Basic auth), 2 (Basic auth over TLS) or 3 (TLS client certificate).",
            allowedValues=list(SECURITY_PROFILES),
        )
    return value
