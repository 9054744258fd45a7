"""Lambda: the IoT rule on ``<root>/+/in`` (``lambdas.rules.rules_for``) invokes this.

The event is the rule's output: the bridge's envelope plus ``topicChargePointId`` and
``ruleTimestamp``. One frame per invocation: process it, publish the reply to
``<root>/{cp}/out`` (the stage's topics), then run the ``after`` hooks. A failed publish raises,
so the invocation fails visibly (Lambda ``Errors``; on AWS the event goes to the failure queue:
infra/processing.py). The state change is kept; a redelivery of the same frame runs the
idempotent handlers again, changing nothing, and gets the same reply byte for byte (or, for a
frame an extension claimed, the stored reply).
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from ocpp_core.processor import Outcome, OutcomeKind, process

from .observability import logger, metrics
from .outbox_sender import drain
from .publisher import outbound_topic
from .runtime import dependencies

_COUNTED = {
    OutcomeKind.CALL_ERROR: "CallErrors",
    OutcomeKind.DUPLICATE: "DuplicateMessages",
    OutcomeKind.IN_PROGRESS: "DuplicateMessages",
    OutcomeKind.DROPPED: "DroppedFrames",
    OutcomeKind.RESULT_UNMATCHED: "UnmatchedResults",
    OutcomeKind.RESULT: "CallsCompleted",
}


def handle(event: Any) -> Outcome:
    """The handler without the Lambda decorations (used by the local rule emulator too)."""
    deps = dependencies()
    outcome = process(
        event if isinstance(event, dict) else {},
        store=deps.store,
        clock=deps.clock,
        ids=deps.ids,
        config=deps.config,
        extensions=deps.extensions,
        ca=deps.ca,
    )
    logger.info(
        "frame from %s: %s %s -> %s%s",
        outcome.charge_point_id,
        outcome.action or "-",
        outcome.unique_id or "-",
        outcome.kind,
        f" ({outcome.error_code})" if outcome.error_code else "",
        extra={"chargePointId": outcome.charge_point_id, "uniqueId": outcome.unique_id, "outcome": outcome.kind},
    )
    if outcome.reply is not None and outcome.charge_point_id is not None:
        deps.publisher.publish(outbound_topic(outcome.charge_point_id, deps.settings.topics), outcome.reply)
    failures = outcome.run_after_hooks()
    if outcome.drain:
        # After the reply: a 1.6 charger learns its transaction id before a profile names it.
        sent = drain(deps, outcome.drain)
        if sent:
            metrics.add_metric(name="OutboxCallsSent", unit=MetricUnit.Count, value=sent)
    metrics.add_metric(name="MessagesProcessed", unit=MetricUnit.Count, value=1)
    counted = _COUNTED.get(outcome.kind)
    if counted:
        metrics.add_metric(name=counted, unit=MetricUnit.Count, value=1)
    if outcome.kind == OutcomeKind.CALL_ERROR and outcome.error_code == "InternalError":
        # A valid request the CSMS failed on (a handler raised or returned an invalid response,
        # or the state store failed): the dashboard's "HandlerFailures" (infra/monitoring.py).
        metrics.add_metric(name="HandlerFailures", unit=MetricUnit.Count, value=1)
    if failures:
        metrics.add_metric(name="HookFailures", unit=MetricUnit.Count, value=len(failures))
    return outcome


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    outcome = handle(event)
    return {"outcome": outcome.kind, "uniqueId": outcome.unique_id, "replied": outcome.reply is not None}
