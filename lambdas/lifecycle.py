"""Lambda: the IoT rule on ``ocpp/+/events`` invokes this to keep presence.

``connected`` / ``disconnected`` events from the bridge (the ``disconnected`` one is also
the MQTT will, so a crashed bridge task still reports it). Applied in order and per
connection: a takeover's late ``disconnected`` for the old socket does not mark the charger
offline.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from ocpp_core.ids import is_valid_charge_point_id
from ocpp_core.versions import OcppVersion

from .observability import logger, metrics
from .runtime import dependencies


def handle(event: Any) -> str:
    if not isinstance(event, dict):
        logger.warning("dropped lifecycle event: not an object")
        return "dropped"
    cp = event.get("chargePointId")
    kind = event.get("event")
    connection_id = event.get("connectionId")
    at = event.get("at")
    if (
        not is_valid_charge_point_id(cp)
        or kind not in ("connected", "disconnected")
        or not isinstance(connection_id, str)
        or isinstance(at, bool)
        or not isinstance(at, int)
    ):
        logger.warning("dropped malformed lifecycle event", extra={"event": str(event)[:500]})
        return "dropped"
    if event.get("topicChargePointId", cp) != cp:
        logger.warning("dropped lifecycle event whose body names another charger than its topic")
        return "dropped"
    deps = dependencies()
    changes: dict[str, Any] = {}
    reason = event.get("reason")
    if kind == "connected":
        protocol = OcppVersion.parse(event.get("protocol"))
        changes = {"connectedAt": at, "lastSeen": at}
        if protocol is not None:
            changes["protocol"] = protocol.value
    else:
        changes = {"disconnectedAt": at, "disconnectReason": reason if isinstance(reason, str) else None}
    applied = deps.store.set_presence(cp, kind == "connected", connection_id, at, changes)
    logger.info(
        "charger %s %s (connection %s)%s",
        cp,
        kind,
        connection_id,
        "" if applied else ": stale event ignored",
        extra={"chargePointId": cp},
    )
    return kind if applied else "stale"


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = handle(event)
    metrics.add_metric(name="ConnectionEvents", unit=MetricUnit.Count, value=1)
    return {"result": result}
