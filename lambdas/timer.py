"""Lambda: the outbox timer (DESIGN §10), invoked on a schedule (infra: every minute; the local
stack: every few seconds).

A CSMS call that is never answered holds its charger's slot until its timeout; nothing arrives
to say so. The timer applies those timeouts (``overdue_calls``: the locks past their end, one index
query), which lets the balancing retry what was lost, and drains the outbox of every charger that
has something queued, so no long-running process is needed. Everything it does is idempotent:
two runs that meet, or a run that meets the message processor, send each queued call once
(the slot is one conditional write).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from .observability import logger, metrics
from .outbox_sender import run_timer
from .runtime import dependencies


def handle(event: Any = None) -> dict[str, int]:
    """One pass (also what the local stack's timer thread calls): the counts of what it did."""
    counts = run_timer(dependencies())
    for name, value in counts.items():
        if value or name == "certificatesExpiring":  # 0 too: the alarm sees the count come back down
            metrics.add_metric(name=f"Timer{name[:1].upper()}{name[1:]}", unit=MetricUnit.Count, value=value)
    if any(counts.values()):
        logger.info("outbox timer: %s", counts, extra={"counts": counts})
    return counts


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    return handle(event)
