"""``PUT /id-tags/{idTag}`` and ``GET /id-tags/{idTag}``: the authorization list.

One record per token string, used for 1.6 ``idTag`` and 2.x ``idToken.idToken`` alike:
``{"status", "expiryDate", "parentIdTag"}``. The processor answers Authorize, StartTransaction
and TransactionEvent from it (``ocpp_core.handlers.common.token_status``).
"""

from __future__ import annotations

from typing import Any

from ocpp_core.handlers.authorization import V2_AUTHORIZATION_STATES
from ocpp_core.timefmt import format_ms, parse_ms

from .bodies import choice, json_object, optional_string
from .context import ApiContext
from .errors import BadRequest, NotFound
from .http import Request, Response
from .routes import MAX_ID_TAG_LENGTH
from .views import id_tag_view

#: 1.6 AuthorizationStatus and 2.x AuthorizationStatusEnumType together (the 2.x set holds the
#: 1.6 one); a 1.6 charger is told ``Blocked`` for the 2.x-only ones (``id_tag_info``).
AUTHORIZATION_STATES = tuple(sorted(V2_AUTHORIZATION_STATES))


def _expiry(body: dict[str, Any]) -> str | None:
    raw = body.get("expiryDate")
    if raw is None:
        return None
    at = parse_ms(raw)
    if at is None:
        raise BadRequest("expiryDate must be an RFC 3339 date-time, e.g. 2030-12-31T23:59:59Z.")
    try:
        # Stored normalised to UTC with a Z, as chargers are sent it.
        return format_ms(at)
    except (OverflowError, OSError, ValueError):
        raise BadRequest("expiryDate is out of range.") from None


def put_id_tag(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    """Create or replace the authorization of one id tag (PUT: the body is the whole record)."""
    tag = params["idTag"]
    body = json_object(request, ("status", "expiryDate", "parentIdTag"))
    record: dict[str, Any] = {"status": choice(body, "status", AUTHORIZATION_STATES, default="Accepted")}
    expiry = _expiry(body)
    if expiry is not None:
        record["expiryDate"] = expiry
    parent = optional_string(body, "parentIdTag", max_length=MAX_ID_TAG_LENGTH, nullable=True)
    if parent is not None:
        record["parentIdTag"] = parent
    store, now = ctx.deps.store, ctx.now_ms()
    existed = store.get_id_token(tag) is not None
    record["updatedAt"] = now
    store.put_id_token(tag, record)
    return Response(200 if existed else 201, id_tag_view(tag, record, now))


def get_id_tag(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    tag = params["idTag"]
    record = ctx.deps.store.get_id_token(tag)
    if record is None:
        raise NotFound(f"Unknown id tag {tag[:60]!r}.", idTag=tag)
    return Response(200, id_tag_view(tag, record, ctx.now_ms()))


def delete_id_tag(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    """Remove the tag from the authorization list: chargers asking for it are told ``Invalid``."""
    tag = params["idTag"]
    if not ctx.deps.store.delete_id_token(tag):
        raise NotFound(f"Unknown id tag {tag[:60]!r}.", idTag=tag)
    return Response(204, None)
