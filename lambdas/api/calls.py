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
from dataclasses import dataclass
from typing import Any

from ocpp_core.calls import (
    FINAL_STATES,
    TIMEOUT,
    CallRefused,
    RefusalKind,
    fail_call,
    is_overdue,
    start_call,
    view_call,
)
from ocpp_core.ports import Record, StoreError

from ..publisher import outbound_topic
from .bodies import json_object
from .context import ApiContext
from .errors import ApiError, BadRequest, NotFound
from .files import prepare_upload
from .http import Request, Response
from .routes import PARAMETER_CHECKS
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
    wait_s = parse_wait(request.query.get("wait"), ctx.deps.settings.max_wait_s)
    body = json_object(request, ("action", "payload"), required=True)
    if not isinstance(body.get("action"), str) or not body["action"]:
        raise BadRequest('The body needs "action": the OCPP action to send, e.g. "Reset".')
    payload = body.get("payload", {})
    # GetDiagnostics / GetLog without a location: the CSMS's upload URL, before the schema check
    upload = prepare_upload(ctx, cp, body["action"], payload, api_base=request.base_url)
    if upload is None:
        sent = send_call(ctx, cp, body["action"], payload, wait_s)
    else:
        try:
            sent = send_call(ctx, cp, body["action"], upload.payload, wait_s, unique_id=upload.unique_id)
        except ApiError:
            upload.discard(ctx, cp)
            raise
    return Response(sent.http_status, sent.view(), sent.location)


class _GivenId:
    """The id source of a call whose id was chosen first (its upload request names it)."""

    def __init__(self, unique_id: str) -> None:
        self._unique_id = unique_id

    def new_id(self) -> str:
        return self._unique_id


@dataclass(frozen=True, slots=True)
class SentCall:
    """A call published to the charger: its record (final if the wait saw the answer)."""

    record: Record
    location: dict[str, str]
    #: how long the API waited for the answer (None: it did not)
    waited_s: float | None = None

    @property
    def http_status(self) -> int:
        """202: sent, not waited for; 200: waited, the record is as the wait ended."""
        return 202 if self.waited_s is None else 200

    def view(self) -> dict[str, Any]:
        view = call_view(self.record)
        if self.waited_s is not None:
            view["waitedS"] = int(self.waited_s) if self.waited_s.is_integer() else self.waited_s
        return view


def send_call(
    ctx: ApiContext, cp: str, action: Any, payload: Any, wait_s: float | None, *, unique_id: str | None = None
) -> SentCall:
    """Validate, record and publish one CSMS call; wait for its answer if asked to.

    The one way the API sends anything to a charger (``/calls``, reservations): the refusals
    (unknown charger, invalid payload, not connected, busy) and a failed publish are the
    ``ApiError`` the operator sees. ``unique_id``: the call's id, chosen by the caller.
    """
    deps = ctx.deps
    ids = deps.ids if unique_id is None else _GivenId(unique_id)
    try:
        new = start_call(deps.store, ids, ctx.now_ms(), cp, action, payload, timeout_s=deps.settings.call_timeout_s)
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
        return SentCall(new.record, location)
    return SentCall(_wait_for_final(ctx, cp, unique_id, new.record, wait_s), location, wait_s)


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
    if record is None or not is_overdue(record, now):
        return record
    # Overdue: view_call applies the timeout (conditionally, so only one reader wins).
    record = view_call(store, now, cp, unique_id)
    if record is not None and record.get("status") == TIMEOUT and record.get("completedAt") == now:
        ctx.count("CallsTimedOut")
    return record


#: ``GET /chargers/{id}/calls``: calls per page by default, and at most
DEFAULT_PAGE, MAX_PAGE = 50, 500


def parse_limit(raw: str | None, default: int = DEFAULT_PAGE, maximum: int = MAX_PAGE) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise BadRequest(f"limit must be a whole number from 1 to {maximum}.", limit=raw[:32])
    return int(raw)


def list_calls(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    """The charger's calls, newest first, a page at a time (``next``: the ``after`` of the next page)."""
    cp = params["chargePointId"]
    limit = parse_limit(request.query.get("limit"))
    after = request.query.get("after")
    if after is not None:
        PARAMETER_CHECKS["uniqueId"](after)
    store = ctx.deps.store
    if store.get_charger(cp) is None:
        raise NotFound(f"Unknown charger {cp}.", chargePointId=cp)
    records = store.list_calls(cp, after=after, limit=limit + 1)
    page = records[:limit]
    now = ctx.now_ms()
    views = [call_view(_overdue_as_timeout(r, now)) for r in page]
    next_after = str(page[-1]["uniqueId"]) if len(records) > limit else None
    return Response(200, {"calls": views, "count": len(views), "next": next_after})


def _overdue_as_timeout(record: Record, now_ms: int) -> Record:
    """A pending call past its timeout reads as ``timeout`` (a listing does not write it)."""
    if is_overdue(record, now_ms):
        return {**record, "status": TIMEOUT.value}
    return record


def get_call(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp, unique_id = params["chargePointId"], params["uniqueId"]
    record = _view_and_count(ctx, cp, unique_id)
    if record is None:
        raise NotFound(f"No call {unique_id} for charger {cp}.", chargePointId=cp, uniqueId=unique_id)
    return Response(200, call_view(record))
