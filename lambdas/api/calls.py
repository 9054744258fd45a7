"""``POST /chargers/{chargePointId}/calls`` and ``GET /chargers/{chargePointId}/calls/{uniqueId}``.

Sending a call: ``ocpp_core.calls.start_call`` validates it against the official request schema
of the charger's protocol and takes the charger's one outstanding-call slot; then the frame is
published to ``ocpp/{cp}/out`` with an MQTT5 message expiry equal to the call timeout, so a
command that could not be delivered in time is dropped by the broker instead of reaching the
charger late. The charger's answer completes the record in the message processor.

``?wait=SECONDS`` keeps the request open, polling the record until it is final or the wait
ends. Waits above ``settings.max_wait_s`` are clamped to it (API Gateway gives up after 29 s);
the answer says how long the API waited (``waitedS``).
"""

from __future__ import annotations

import logging
import math

from ocpp_core.calls import (
    FINAL_STATES,
    PENDING,
    TIMEOUT,
    CallRefused,
    RefusalKind,
    fail_call,
    start_call,
    view_call,
)
from ocpp_core.ports import Record, StoreError

from ..publisher import outbound_topic
from .bodies import json_object
from .context import ApiContext
from .errors import ApiError, BadRequest, NotFound
from .http import Request, Response
from .views import call_view

logger = logging.getLogger(__name__)

#: How often a waiting request re-reads the call record (one consistent GetItem each).
POLL_INTERVAL_S = 0.1


def parse_wait(raw: str | None, max_wait_s: float) -> float | None:
    """Seconds to wait (clamped to ``max_wait_s``), None for no wait; 400 when not a positive number."""
    if raw is None:
        return None
    try:
        seconds = float(raw.strip()) if len(raw) <= 32 else math.nan
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise BadRequest(f"wait must be a number of seconds above 0 (at most {max_wait_s:g} is used).", wait=raw[:32])
    return min(seconds, float(max_wait_s))


#: the HTTP status of each refusal (DESIGN §5): the core names the reason, the API the status
REFUSAL_STATUS = {
    RefusalKind.UNKNOWN_CHARGER: 404,
    RefusalKind.INVALID: 400,
    RefusalKind.NEVER_CONNECTED: 409,
    RefusalKind.NOT_CONNECTED: 409,
    RefusalKind.BUSY: 409,
}


def _refused(cp: str, refusal: CallRefused) -> ApiError:
    message = refusal.reason if refusal.reason.endswith(".") else refusal.reason + "."
    return ApiError(message, status=REFUSAL_STATUS[refusal.kind], chargePointId=cp, **refusal.extra)


def post_call(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp = params["chargePointId"]
    deps = ctx.deps
    wait_s = parse_wait(request.query.get("wait"), deps.settings.max_wait_s)
    body = json_object(request, ("action", "payload"), required=True)
    if not isinstance(body.get("action"), str) or not body["action"]:
        raise BadRequest('The body needs "action": the OCPP action to send, e.g. "Reset".')
    action, payload = body["action"], body.get("payload", {})

    try:
        new = start_call(
            deps.store, deps.ids, ctx.now_ms(), cp, action, payload, timeout_s=deps.settings.call_timeout_s
        )
    except CallRefused as refusal:
        ctx.count("CallsRefused")
        raise _refused(cp, refusal) from None
    unique_id = str(new.record["uniqueId"])

    topic = outbound_topic(cp, deps.settings.topics)
    try:
        deps.publisher.publish(topic, new.frame, expiry_s=new.expiry_s)
    except Exception as error:
        logger.exception("could not publish %s %s to %s", action, unique_id, topic)
        reason = f"Could not publish the call to {topic}: {type(error).__name__}: {error}"[:500]
        try:
            fail_call(deps.store, ctx.now_ms(), cp, unique_id, reason)
        except Exception:
            # The slot expires at timeoutAt anyway; the operator still gets the publish failure.
            logger.exception("could not record the failed publish of %s for %s", unique_id, cp)
        ctx.count("CallPublishFailures")
        raise ApiError(reason, status=502, chargePointId=cp, uniqueId=unique_id) from None

    ctx.count("CallsCreated")
    logger.info("call %s %s sent to %s (timeout %ss)", action, unique_id, cp, new.expiry_s)
    location = {"location": f"/chargers/{cp}/calls/{unique_id}"}
    if wait_s is None:
        return Response(202, call_view(new.record), location)
    record = _wait_for_final(ctx, cp, unique_id, new.record, wait_s)
    view = call_view(record)
    view["waitedS"] = int(wait_s) if wait_s.is_integer() else wait_s
    return Response(200, view, location)


def _wait_for_final(ctx: ApiContext, cp: str, unique_id: str, record: Record, wait_s: float) -> Record:
    """Poll until the call is final or ``wait_s`` (real time) has passed."""
    deadline = ctx.monotonic() + wait_s
    while True:
        remaining = deadline - ctx.monotonic()
        try:
            record = _view_and_count(ctx, cp, unique_id) or record
        except StoreError:
            # The call is out: answering 5xx would invite a retry, i.e. a second command.
            logger.warning("stopped waiting for %s of %s: state store error", unique_id, cp, exc_info=True)
            return record
        status = record.get("status")
        if status in FINAL_STATES:
            # CallsCompleted is counted by the message processor, which sees every completion.
            return record
        if remaining <= 0:
            return record
        ctx.sleep(min(POLL_INTERVAL_S, remaining))


def _view_and_count(ctx: ApiContext, cp: str, unique_id: str) -> Record | None:
    """``view_call``, counting ``CallsTimedOut`` when this read is the one that applied the timeout."""
    now = ctx.now_ms()
    store = ctx.deps.store
    record = store.get_call(cp, unique_id)
    if record is None or record.get("status") != PENDING or now < int(record.get("timeoutAt", 0)):
        return record
    # Overdue: view_call applies the timeout (conditionally, so only one reader wins).
    record = view_call(store, now, cp, unique_id)
    if record is not None and record.get("status") == TIMEOUT and record.get("completedAt") == now:
        ctx.count("CallsTimedOut")
    return record


def get_call(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp, unique_id = params["chargePointId"], params["uniqueId"]
    record = _view_and_count(ctx, cp, unique_id)
    if record is None:
        raise NotFound(f"No call {unique_id} for charger {cp}.", chargePointId=cp, uniqueId=unique_id)
    return Response(200, call_view(record))
