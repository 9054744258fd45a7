"""``GET /transactions`` (sessions with meter readings, energy and times) and
``POST /transactions/{transactionId}/close`` (the operator ends a session its charger never did)."""

from __future__ import annotations

import re

from ocpp_core.handlers.transactions import TransactionStatus, close_transaction, last_activity_ms
from ocpp_core.ports import Record
from ocpp_core.timefmt import parse_ms

from .bodies import json_object, optional_string
from .context import ApiContext
from .errors import BadRequest, Conflict, NotFound
from .http import Request, Response
from .routes import PARAMETER_CHECKS
from .views import transaction_view

TRANSACTION_STATES = tuple(status.value for status in TransactionStatus)
_DURATION = re.compile(r"^([0-9]{1,9})([smhd])$")
_UNIT_MS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
MAX_REASON_LENGTH = 255


def parse_older_than(raw: str, now_ms: int) -> int:
    """``olderThan``: an RFC 3339 date-time, or a duration back from now (``90s``, ``30m``, ``48h``, ``7d``)."""
    match = _DURATION.match(raw.strip())
    if match:
        return now_ms - int(match.group(1)) * _UNIT_MS[match.group(2)]
    at = parse_ms(raw)
    if at is None:
        raise BadRequest(
            "olderThan must be an RFC 3339 date-time (2030-01-31T00:00:00Z) or a duration like 90s, 30m, 48h, 7d.",
            olderThan=raw[:40],
        )
    return at


def list_transactions(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp = request.query.get("chargePointId")
    if cp is not None:
        PARAMETER_CHECKS["chargePointId"](cp)
    status = request.query.get("status")
    if status is not None and status not in TRANSACTION_STATES:
        raise BadRequest(f"status must be one of {', '.join(TRANSACTION_STATES)}.", allowedValues=TRANSACTION_STATES)
    raw_cutoff = request.query.get("olderThan")
    cutoff = parse_older_than(raw_cutoff, ctx.now_ms()) if raw_cutoff is not None else None
    found = [
        transaction_view(r)
        for r in ctx.deps.store.list_transactions(cp or None)
        if (status is None or r.get("status") == status) and (cutoff is None or _inactive_since(r, cutoff))
    ]
    return Response(200, {"transactions": found, "count": len(found)})


def _inactive_since(record: Record, cutoff_ms: int) -> bool:
    activity = last_activity_ms(record)
    return activity is not None and activity < cutoff_ms


def close(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    tx = params["transactionId"]
    body = json_object(request, ("reason", "chargePointId"), required=True)
    reason = optional_string(body, "reason", max_length=MAX_REASON_LENGTH)
    if reason is None or not reason.strip():
        raise BadRequest(f'The body needs "reason": why the operator closes it (1 to {MAX_REASON_LENGTH} characters).')
    cp = optional_string(body, "chargePointId", max_length=200)
    store = ctx.deps.store
    if cp is not None:
        PARAMETER_CHECKS["chargePointId"](cp)
    else:
        cp = _charger_of(ctx, tx)
    now = ctx.now_ms()
    if not close_transaction(store, cp, tx, reason, now):
        record = store.get_transaction(cp, tx)
        if record is None:
            raise NotFound(f"No transaction {tx} for charger {cp}.", chargePointId=cp, transactionId=tx)
        raise Conflict(
            f"Transaction {tx} of {cp} is already {record.get('status', 'Completed')}: only an open one can be closed.",
            chargePointId=cp,
            transactionId=tx,
            transactionStatus=record.get("status"),
        )
    record = store.get_transaction(cp, tx) or {}
    ctx.count("TransactionsClosedByOperator")
    return Response(200, transaction_view(record))


def _charger_of(ctx: ApiContext, tx: str) -> str:
    """The one charger with transaction ``tx`` (1.6 ids are unique; 2.x ids only per station)."""
    holders = sorted(
        {str(r["chargePointId"]) for r in ctx.deps.store.list_transactions() if r.get("transactionId") == tx}
    )
    if not holders:
        raise NotFound(f"No transaction {tx}.", transactionId=tx)
    if len(holders) > 1:
        raise Conflict(
            f"Transaction id {tx} is used by {len(holders)} chargers: say which in chargePointId.",
            transactionId=tx,
            chargePointIds=holders,
        )
    return holders[0]
