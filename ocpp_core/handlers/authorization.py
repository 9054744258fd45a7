"""Authorization (OCPP 1.6 Core; 2.0.1 / 2.1 block C): id tags and id tokens, read-only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..context import CallContext
from .common import routes, token_status

V16_AUTHORIZATION_STATES = frozenset({"Accepted", "Blocked", "Expired", "Invalid", "ConcurrentTx"})
V2_AUTHORIZATION_STATES = frozenset(
    {
        "Accepted",
        "Blocked",
        "ConcurrentTx",
        "Expired",
        "Invalid",
        "NoCredit",
        "NotAllowedTypeEVSE",
        "NotAtThisLocation",
        "NotAtThisTime",
        "Unknown",
    }
)


def id_tag_info(ctx: CallContext, id_tag: str) -> dict[str, Any]:
    """1.6 IdTagInfo."""
    status, record = token_status(ctx, id_tag)
    info: dict[str, Any] = {"status": status if status in V16_AUTHORIZATION_STATES else "Blocked"}
    if record is not None:
        expiry = record.get("expiryDate")
        if isinstance(expiry, str):
            info["expiryDate"] = expiry
        parent = record.get("parentIdTag")
        if isinstance(parent, str) and 0 < len(parent) <= 20:
            info["parentIdTag"] = parent
    return info


def id_token_info(ctx: CallContext, id_token: Mapping[str, Any]) -> dict[str, Any]:
    """2.x IdTokenInfo."""
    token = id_token.get("idToken", "")
    if id_token.get("type") == "NoAuthorization":
        return {"status": "Accepted"}  # free vending / no authorization needed (C01)
    status, record = token_status(ctx, token)
    info: dict[str, Any] = {"status": status if status in V2_AUTHORIZATION_STATES else "Invalid"}
    if record is not None:
        expiry = record.get("expiryDate")
        if isinstance(expiry, str):
            info["cacheExpiryDateTime"] = expiry
        parent = record.get("parentIdTag")
        if isinstance(parent, str) and 0 < len(parent) <= 36:
            info["groupIdToken"] = {"idToken": parent, "type": "Central"}
    return info


def authorize(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    if ctx.version.is_2x:
        return {"idTokenInfo": id_token_info(ctx, payload["idToken"])}
    return {"idTagInfo": id_tag_info(ctx, payload["idTag"])}


ROUTES = routes(every={"Authorize": authorize})
