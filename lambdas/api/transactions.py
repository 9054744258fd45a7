"""``GET /transactions?chargePointId=&status=``: sessions with meter readings, energy and times."""

from __future__ import annotations

from .context import ApiContext
from .errors import BadRequest
from .http import Request, Response
from .routes import PARAMETER_CHECKS
from .views import transaction_view

TRANSACTION_STATES = ("Active", "Completed")


def list_transactions(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp = request.query.get("chargePointId")
    if cp is not None:
        PARAMETER_CHECKS["chargePointId"](cp)
    status = request.query.get("status")
    if status is not None and status not in TRANSACTION_STATES:
        raise BadRequest(f"status must be one of {', '.join(TRANSACTION_STATES)}.", allowedValues=TRANSACTION_STATES)
    records = ctx.deps.store.list_transactions(cp or None)
    found = [transaction_view(r) for r in records if status is None or r.get("status") == status]
    return Response(200, {"transactions": found, "count": len(found)})
