"""Built-in handlers, one module per OCPP functional block, each serving every version that has
its actions; the route table per version is the union of the blocks' tables."""

from __future__ import annotations

from ..extensions import Handler
from ..versions import OcppVersion
from . import (
    authorization,
    availability,
    data_transfer,
    diagnostics,
    firmware,
    provisioning,
    reservations,
    security,
    smart_charging,
    transactions,
)
from .common import Routes

BLOCKS = (
    provisioning,
    authorization,
    availability,
    transactions,
    firmware,
    security,
    smart_charging,
    reservations,
    diagnostics,
    data_transfer,
)


def _merge(blocks: tuple[object, ...]) -> Routes:
    table: Routes = {version: {} for version in OcppVersion}
    for block in blocks:
        block_routes: Routes = getattr(block, "ROUTES")  # noqa: B009 - every block module defines it
        for version, handlers in block_routes.items():
            overlap = table[version].keys() & handlers.keys()
            if overlap:
                raise RuntimeError(f"{sorted(overlap)} routed twice for {version.value}")
            table[version].update(handlers)
    return table


ROUTES: Routes = _merge(BLOCKS)


def builtin_handler(version: OcppVersion, action: str) -> Handler | None:
    return ROUTES[version].get(action)
