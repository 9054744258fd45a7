"""Sending what the outbox holds (DESIGN §10): the Lambdas' side of ``ocpp_core.outbox``.

``drain`` sends, for each charger named, its oldest queued call if the charger is connected and
has no call pending (``ocpp_core.calls.start_outbox_call``), and publishes it like an operator's
call: to ``<root>/{cp}/out`` with an MQTT5 expiry equal to the call timeout. The message
processor drains after its reply is out (a CALLRESULT freed the slot, or a handler queued calls),
the lifecycle Lambda when a site's charger connects (another charger's wait for the timer), the operator API after a site changes, and the timer
(``run_timer``) every minute for everything else: calls nobody answered, chargers that were busy.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from ocpp_core.calls import fail_call, start_outbox_call, view_call
from ocpp_core.certificates import expiring_certificates

from .publisher import outbound_topic
from .runtime import Dependencies

logger = logging.getLogger(__name__)

#: chargers one drain may visit (an expired call's origin can queue calls for others)
_MAX_VISITS = 1000


def drain(deps: Dependencies, charge_point_ids: Iterable[str]) -> int:
    """Send what can be sent now for these chargers; how many calls were published."""
    pending = sorted(set(charge_point_ids))
    seen: set[str] = set()
    sent = 0
    while pending and len(seen) < _MAX_VISITS:
        cp = pending.pop(0)
        if cp in seen:
            continue
        seen.add(cp)
        now = deps.clock.now_ms()
        try:
            start = start_outbox_call(deps.store, deps.ids, now, cp, timeout_s=deps.settings.call_timeout_s)
        except Exception:
            logger.exception("outbox of %s: could not start its next call (the timer tries again)", cp)
            continue
        pending.extend(sorted(start.drain - seen))
        if start.call is None:
            continue
        unique_id = str(start.call.record["uniqueId"])
        action = start.call.record["action"]
        topic = outbound_topic(cp, deps.settings.topics)
        try:
            deps.publisher.publish(topic, start.call.frame, expiry_s=start.call.expiry_s)
        except Exception as error:
            logger.exception("outbox of %s: could not publish %s %s", cp, action, unique_id)
            try:
                fail_call(deps.store, deps.clock.now_ms(), cp, unique_id, f"publish failed: {error}"[:300])
            except Exception:
                logger.exception("could not record the failed publish of %s for %s", unique_id, cp)
            continue
        sent += 1
        logger.info("outbox of %s: sent %s %s", cp, action, unique_id, extra={"chargePointId": cp})
    return sent


def run_timer(deps: Dependencies) -> dict[str, int]:
    """One pass of the timer: apply the timeouts of unanswered calls, then drain every charger that
    has something queued. Counts: ``timedOut``, ``sent``."""
    store = deps.store
    now = deps.clock.now_ms()
    timed_out = 0
    busy: list[str] = []
    for cp, unique_id in store.overdue_calls(now):
        try:
            record = view_call(store, now, cp, unique_id)  # applies the timeout, tells the call's origin
        except Exception:
            logger.exception("timer: could not apply the timeout of %s for %s", unique_id, cp)
            continue
        busy.append(cp)
        if record is not None and record.get("status") == "timeout" and record.get("completedAt") == now:
            timed_out += 1
        elif record is None:
            # The call's record is gone (expired): free the slot it still holds.
            store.release_outstanding(cp, unique_id)
    chargers = [*store.outbox_chargers(), *busy]
    counts = {"timedOut": timed_out, "sent": drain(deps, chargers)}
    if now // 60_000 % 60 == 0:
        # Once an hour: the valid certificates ending within 30 days (the CertificatesExpiring alarm).
        counts["certificatesExpiring"] = len(expiring_certificates(store, now))
    return counts
