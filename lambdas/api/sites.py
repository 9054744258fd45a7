"""``PUT /sites/{siteId}``, ``GET /sites/{siteId}``, ``GET /sites``: sites for smart charging (DESIGN §10).

A site is a limit shared by a group of chargers: ``{"siteId", "limitAmps" | "limitWatts", "phases",
"minAmps", "chargers", "updatedAt"}``. A charger belongs to at most one site; the store enforces it
with a conditional write per charger (``ocpp_core.ports.SiteStore``), so two PUTs that race cannot
both take the same charger. Every change rebalances the site (``ocpp_core.smart_charging.balancer``):
the shares are recomputed and the profiles queued and sent; ``GET`` shows where each one stands.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ocpp_core.ids import MAX_ID_LENGTH, is_valid_charge_point_id
from ocpp_core.ports import ChargerInAnotherSite, SiteBusy
from ocpp_core.smart_charging.balancer import site_changed
from ocpp_core.smart_charging.balancing import ACTIVE

from ..outbox_sender import drain
from .bodies import json_object
from .context import ApiContext
from .errors import BadRequest, Conflict, NotFound
from .http import Request, Response
from .views import present

logger = logging.getLogger(__name__)

#: the most chargers one site may have (each is one conditional write when the site is changed)
MAX_SITE_CHARGERS = 500
#: the nominal phase voltage used to compare ``minAmps`` with a limit in watts
NOMINAL_VOLTAGE = 230
PHASES = (1, 3)
SITE_FIELDS = ("limitAmps", "limitWatts", "phases", "minAmps", "chargers")


def _positive_number(body: Mapping[str, Any], key: str) -> int | float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise BadRequest(f"{key} must be a number above 0.", field=key)
    return value


def _site_record(body: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """The record a valid body describes; a 400 naming the first mistake otherwise."""
    limits = [key for key in ("limitAmps", "limitWatts") if key in body]
    if len(limits) != 1:
        raise BadRequest(
            "The site needs exactly one limit: limitAmps (amperes per phase) or limitWatts.",
            allowedFields=["limitAmps", "limitWatts"],
        )
    limit_key = limits[0]
    limit = _positive_number(body, limit_key)
    phases = body.get("phases")
    if isinstance(phases, bool) or phases not in PHASES:
        raise BadRequest("phases must be 1 or 3.", allowedValues=list(PHASES))
    min_amps = _positive_number(body, "minAmps")
    if limit_key == "limitAmps" and min_amps > limit:
        raise BadRequest(f"minAmps ({min_amps:g}) is above the site limit of {limit:g} A.")
    if limit_key == "limitWatts" and min_amps * NOMINAL_VOLTAGE * phases > limit:
        raise BadRequest(
            f"minAmps ({min_amps:g} A on {phases} phase(s) at {NOMINAL_VOLTAGE} V,"
            f" {min_amps * NOMINAL_VOLTAGE * phases:g} W) is above the site limit of {limit:g} W."
        )
    chargers = _charger_ids(body.get("chargers"))
    return {limit_key: limit, "phases": phases, "minAmps": min_amps, "chargers": chargers, "updatedAt": now_ms}


def _charger_ids(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise BadRequest('chargers must be a list of charger ids such as ["CP1", "CP2"], or [] for none.')
    if len(value) > MAX_SITE_CHARGERS:
        raise BadRequest(f"A site has at most {MAX_SITE_CHARGERS} chargers, not {len(value)}.")
    for item in value:
        if not is_valid_charge_point_id(item):
            shown = item[:60] if isinstance(item, str) else item
            raise BadRequest(
                f"chargers holds {shown!r}, which is not a charger id"
                f" (1 to {MAX_ID_LENGTH} characters from [A-Za-z0-9._:-]).",
                field="chargers",
            )
    seen: set[str] = set()
    for item in value:
        if item in seen:
            raise BadRequest(f"chargers names {item} more than once.", chargePointId=item)
        seen.add(item)
    return list(value)


def _check_registered(ctx: ApiContext, chargers: Sequence[str]) -> None:
    found = ctx.deps.store.get_chargers(chargers)
    unknown = [cp for cp in chargers if not (found.get(cp) or {}).get("registered")]
    if unknown:
        raise BadRequest(
            f"Unknown charger {unknown[0]}: register it first (PUT /chargers/{unknown[0]}).",
            unknownChargers=unknown[:50],
        )


def site_view(record: Mapping[str, Any], balance: Mapping[str, Any] | None) -> dict[str, Any]:
    """``GET /sites/{siteId}``: the site as stored, and each active transaction of its chargers with
    its ``share`` of the limit (in ``shareUnit``) and where its profile stands:

    * ``limit``: what the charger accepted (the profile in force; absent before the first one);
    * ``pending``: a profile sent or queued and not answered yet;
    * ``profileStatus``: ``applied`` (the share is in force), ``pending``, ``waiting`` (an increase
      held back until others' decreases are accepted), ``failed`` (rejected or unanswered
      ``MAX_FAILURES`` times: reported, not retried until the share changes or it reconnects),
      ``offline`` (its charger is not connected: sent when it is).
    """
    view = present(record)
    sessions = [s for s in ((balance or {}).get("sessions") or {}).values() if s.get("state") == ACTIVE]
    sessions.sort(
        key=lambda s: (int(s.get("startedAt") or 0), str(s.get("chargePointId")), str(s.get("transactionId")))
    )
    view["activeTransactions"] = [present(_session_view(s)) for s in sessions]
    view["shareUnit"] = "A" if "limitAmps" in record else "W"
    view["allocated"] = round(sum(float(s.get("share") or 0) for s in sessions), 6)
    return view


def _session_view(session: Mapping[str, Any]) -> dict[str, Any]:
    view = {key: session.get(key) for key in ("chargePointId", "transactionId", "startedAt", "share")}
    for source, target in (("granted", "limit"), ("queued", "pending"), ("lastError", "lastError"), ("cap", "cap")):
        if session.get(source) is not None:
            view[target] = session[source]
    if session.get("drawn") is not None:
        view["drawn"] = round(float(session["drawn"]), 3)
    view["profileStatus"] = _profile_status(session)
    return view


def _profile_status(session: Mapping[str, Any]) -> str:
    if session.get("failed"):
        return "failed"
    if session.get("offline"):
        return "offline"
    if session.get("queued") is not None:
        return "pending"
    granted = session.get("granted")
    if granted is not None and math.isclose(float(granted), float(session.get("share") or 0)):
        return "applied"
    return "waiting"


def put_site(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    """Create (201) or replace (200) the whole site: PUT, so every field is given each time."""
    site_id = params["siteId"]
    body = json_object(request, SITE_FIELDS, required=True)
    record = _site_record(body, ctx.now_ms())
    _check_registered(ctx, record["chargers"])
    store = ctx.deps.store
    existing = store.get_site(site_id)
    record = {"siteId": site_id, **record}
    try:
        store.put_site(site_id, record, (existing or {}).get("chargers") or [])
    except ChargerInAnotherSite as conflict:
        holder = conflict.site_id
        # 400, as the other impossible configurations of a site: the body asks for what cannot be.
        raise BadRequest(
            f"Charger {conflict.charge_point_id} already belongs to site {holder or '(another site)'}:"
            " remove it there first.",
            chargePointId=conflict.charge_point_id,
            siteId=holder,
        ) from None
    except SiteBusy:
        raise Conflict(f"Site {site_id} is being changed by another request: try again.", siteId=site_id) from None
    stored = store.get_site(site_id) or record
    try:
        # New limit or members: shares recomputed and profiles queued; sent now where possible.
        drain(ctx.deps, site_changed(store, ctx.now_ms(), site_id))
    except Exception:
        logger.exception("site %s: could not rebalance after the change (the next trigger does)", site_id)
    return Response(201 if existing is None else 200, site_view(stored, store.get_balance(site_id)))


def get_site(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    site_id = params["siteId"]
    record = ctx.deps.store.get_site(site_id)
    if record is None:
        raise NotFound(f"Unknown site {site_id}.", siteId=site_id)
    return Response(200, site_view(record, ctx.deps.store.get_balance(site_id)))


def list_sites(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    """Every site in id order (the records; ``GET /sites/{siteId}`` adds the transactions)."""
    sites = [present(record) for record in ctx.deps.store.list_sites()]
    return Response(200, {"sites": sites, "count": len(sites)})
