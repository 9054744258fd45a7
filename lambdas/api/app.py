"""The operator API as one function: an API Gateway v2 event in, a proxy response out.

``ROUTES`` is the contract of DESIGN §5. ``handle_event`` is the one place that turns an
exception into a response: :class:`~lambdas.api.errors.ApiError` carries its own status,
a state-store failure is a 503, anything else a logged 500. It never raises.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError

from ocpp_core.ports import StoreError

from . import calls, certificates, chargers, charging_profiles, files, id_tags, reservations, sites, transactions
from .context import ApiContext
from .errors import ApiError
from .http import Request, Response, parse_event
from .routes import Route, resolve

logger = logging.getLogger(__name__)

ROUTES: list[Route] = [
    Route("/chargers", {"GET": chargers.list_chargers}),
    Route("/chargers/{chargePointId}", {"GET": chargers.get_charger, "PUT": chargers.put_charger}),
    Route("/chargers/{chargePointId}/calls", {"GET": calls.list_calls, "POST": calls.post_call}),
    Route("/chargers/{chargePointId}/calls/{uniqueId}", {"GET": calls.get_call}),
    Route("/chargers/{chargePointId}/charging-profiles", {"GET": charging_profiles.get_charging_profiles}),
    Route(
        "/chargers/{chargePointId}/reservations",
        {"GET": reservations.list_for_charger, "POST": reservations.create},
    ),
    Route(
        "/chargers/{chargePointId}/reservations/{reservationId}",
        {"GET": reservations.get, "DELETE": reservations.cancel},
    ),
    Route("/reservations/{reservationId}", {"GET": reservations.get, "DELETE": reservations.cancel}),
    Route(
        "/id-tags/{idTag}",
        {"GET": id_tags.get_id_tag, "PUT": id_tags.put_id_tag, "DELETE": id_tags.delete_id_tag},
    ),
    Route("/transactions", {"GET": transactions.list_transactions}),
    Route("/transactions/{transactionId}/close", {"POST": transactions.close}),
    Route("/sites", {"GET": sites.list_sites}),
    Route("/sites/{siteId}", {"GET": sites.get_site, "PUT": sites.put_site}),
    Route("/ca", {"GET": certificates.get_ca}),
    Route("/certificates", {"GET": certificates.expiring}),
    Route("/chargers/{chargePointId}/certificates", {"GET": certificates.list_for_charger}),
    Route("/chargers/{chargePointId}/certificates/{serial}/revoke", {"POST": certificates.revoke_certificate}),
    Route("/chargers/{chargePointId}/files", {"GET": files.list_files}),
    Route("/chargers/{chargePointId}/files/{fileId}", {"GET": files.get_file}),
    Route("/chargers/{chargePointId}/uploads", {"GET": files.list_uploads}),
    Route("/chargers/{chargePointId}/firmware", {"GET": files.charger_firmware}),
    Route("/firmware", {"GET": files.list_firmware, "POST": files.post_firmware}),
    Route("/firmware/{firmwareId}", {"GET": files.get_firmware}),
]


def _error(error: ApiError) -> Response:
    return Response(error.status, error.body(), error.headers)


def dispatch(ctx: ApiContext, request: Request) -> Response:
    endpoint, params = resolve(ROUTES, request.method, request.path)
    return endpoint(ctx, request, params)


def handle_event(event: Any, ctx: ApiContext) -> dict[str, Any]:
    """Route and run one request; every outcome, including failures, is a proxy response."""
    request: Request | None = None
    try:
        request = parse_event(event, body_limits=files.body_limits(ctx.deps.settings))
        response = dispatch(ctx, request)
    except ApiError as error:
        response = _error(error)
    except (StoreError, BotoCoreError) as error:
        logger.exception("state store failure on %s", _describe(request))
        response = Response(503, {"error": f"The state store is unavailable, try again: {error}"[:500]})
    except Exception:
        logger.exception("internal error on %s", _describe(request))
        response = Response(500, {"error": "Internal error: the operator API failed; the failure is logged."})
    return response.to_proxy()


def _describe(request: Request | None) -> str:
    return "an unreadable request" if request is None else f"{request.method[:16]} {request.path[:200]}"
