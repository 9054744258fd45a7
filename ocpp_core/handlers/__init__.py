"""Built-in handlers: an explicit route table per version."""

from __future__ import annotations

from ..extensions import Handler
from ..versions import OcppVersion
from . import v2, v16

ROUTES: dict[OcppVersion, dict[str, Handler]] = {
    OcppVersion.V16: v16.HANDLERS,
    OcppVersion.V201: v2.HANDLERS_V201,
    OcppVersion.V21: v2.HANDLERS_V21,
}


def builtin_handler(version: OcppVersion, action: str) -> Handler | None:
    return ROUTES[version].get(action)
