"""Lambda: API Gateway HTTP API (payload format 2.0) invokes this for the operator routes.

A thin shell: the routes and their logic are in ``lambdas.api``. ``handle`` is the handler
without the Lambda decorations, which the local server (``local_stack.api_server``) calls
for each HTTP request, so both behave the same.
"""

from __future__ import annotations

import time
from typing import Any

from .api import ApiContext, handle_event
from .api.http import Response
from .observability import logger, metrics
from .runtime import dependencies


def handle(event: Any) -> dict[str, Any]:
    started = time.monotonic()
    try:
        deps = dependencies()
    except Exception:  # noqa: BLE001 - logged below (Powertools logger)
        # Bad settings or no AWS clients: every request fails the same way, loudly in the logs.
        logger.exception("operator API dependencies could not be built")
        response = Response(503, {"error": "The operator API is not configured correctly; see its logs."}).to_proxy()
    else:
        response = handle_event(event, ApiContext(deps))
    http = (event.get("requestContext") or {}).get("http") if isinstance(event, dict) else None
    method = http.get("method") if isinstance(http, dict) else None
    path = event.get("rawPath") if isinstance(event, dict) else None
    status = response["statusCode"]
    logger.info(
        "%s %s -> %s",
        str(method)[:16],
        str(path)[:200],
        status,
        extra={
            "method": str(method)[:16],
            "path": str(path)[:200],
            "status": status,
            "durationMs": round((time.monotonic() - started) * 1000, 1),
        },
    )
    return response


@metrics.log_metrics
@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return handle(event)
