"""Lambda: the IoT rule on ``ocpp/+/events`` invokes this to keep presence.

``connected`` / ``disconnected`` events from the bridge (the ``disconnected`` one is also
the MQTT will, so a crashed bridge task still reports it). Events arrive in any order, twice or
late (DESIGN §7), so they are ordered by the broker's clock, the ``ruleTimestamp`` the rule adds
(``lambdas.rules``): a will carries the time its MQTT client was built, which after a daily
reconnect on the same socket is older than the ``connected`` that follows it. The bridge's ``at``
stands in when the event has no rule timestamp (a direct invocation). ``ocpp_core.presence`` has
the model: per connection, the latest connect and disconnect; a takeover's late ``disconnected``
for the old socket does not mark the charger offline.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from ocpp_core.ids import is_valid_charge_point_id
from ocpp_core.keys import TTL_ATTRIBUTE
from ocpp_core.ports import ConnectionRecorded, StateStore
from ocpp_core.presence import CONNECTION_TTL_S
from ocpp_core.smart_charging.balancer import charger_connected
from ocpp_core.versions import OcppVersion

from .observability import logger, metrics
from .outbox_sender import drain
from .runtime import dependencies


def handle(event: Any) -> str:
    deps = dependencies()
    result, recorded = apply_event(deps.store, event)
    if recorded is not None and recorded.current and recorded.site_id is not None:
        cp = str(event["chargePointId"])
        # A site's charger gets its profiles again at once, and whatever was queued for it goes out.
        # A store failure fails the invocation, and its retry applies the (idempotent) event again.
        # Another charger's queued calls (rare: queued while it was away) wait for the timer (a
        # minute on AWS). The site comes back with the connect's own write: a charger in no site
        # costs the connect no read (bench e2e: connects come in storms after a bridge restart).
        queued = charger_connected(deps.store, deps.clock.now_ms(), cp, site_id=recorded.site_id)
        drain(deps, {cp, *queued})
    return result


def apply_event(store: StateStore, event: Any) -> tuple[str, ConnectionRecorded | None]:
    """Apply one bridge event (the rule's event shape) to ``store``: the outcome's name, and what
    the store did (None for an event dropped unread)."""
    if not isinstance(event, dict):
        logger.warning("dropped lifecycle event: not an object")
        return "dropped", None
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
        return "dropped", None
    if event.get("topicChargePointId", cp) != cp:
        logger.warning("dropped lifecycle event whose body names another charger than its topic")
        return "dropped", None
    rule_at = event.get("ruleTimestamp")
    order_at = rule_at if isinstance(rule_at, int) and not isinstance(rule_at, bool) else at
    connection_changes: dict[str, Any] = {TTL_ATTRIBUTE: order_at // 1000 + CONNECTION_TTL_S}
    charger_changes: dict[str, Any] = {}
    reason = event.get("reason")
    if kind == "connected":
        protocol = OcppVersion.parse(event.get("protocol"))
        charger_changes = {"lastConnectedAt": order_at}
        if protocol is not None:
            charger_changes["protocol"] = protocol.value
    else:
        connection_changes["disconnectReason"] = reason if isinstance(reason, str) else None
    recorded = store.record_connection(
        cp,
        connection_id,
        connected=kind == "connected",
        at_ms=order_at,
        charger_changes=charger_changes,
        connection_changes=connection_changes,
    )
    logger.info(
        "charger %s %s (connection %s)%s",
        cp,
        kind,
        connection_id,
        "" if recorded.changed else ": stale event ignored",
        extra={"chargePointId": cp},
    )
    return (kind if recorded.changed else "stale"), recorded


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    result = handle(event)
    metrics.add_metric(name="ConnectionEvents", unit=MetricUnit.Count, value=1)
    return {"result": result}
