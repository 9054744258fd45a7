"""The chargers' certificates (DESIGN §9): the CA, what it issued, revocation, what expires soon.

* ``GET /ca``: the CA certificate (PEM in ``certificate``), for chargers to trust and for TLS
  clients of the bridge's profile-3 port;
* ``GET /chargers/{id}/certificates``: what the CA issued to the charger, newest first (status,
  serial, subject, validity, whether the charger installed it), without the PEM bodies unless
  ``?pem=true``;
* ``POST /chargers/{id}/certificates/{serial}/revoke`` ``{"reason"?}``: revoked at once; the bridge
  refuses it from its next TLS handshake (it reads the record each time);
* ``GET /certificates?expiringWithinDays=30``: the valid certificates of every charger that end
  within that many days (default 30), soonest first: renew them with ``TriggerMessage``
  ``SignChargingStationCertificate`` (2.x) or ``ExtendedTriggerMessage`` ``SignChargePointCertificate``
  (1.6).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ocpp_core.certificates import EXPIRY_WARNING_DAYS, expiring_certificates, revoke

from .bodies import json_object
from .context import ApiContext
from .errors import ApiError, BadRequest, Conflict, NotFound
from .http import Request, Response
from .views import present

MAX_REASON = 255
_BODIES = frozenset({"pem", "chain"})


def get_ca(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    ca = ctx.deps.ca
    if ca is None:
        raise ApiError("No certificate authority is configured for this stage.", status=503)
    return Response(200, {"certificate": ca.ca_pem})


def _view(record: Mapping[str, Any], with_pem: bool) -> dict[str, Any]:
    return present(record, drop=frozenset() if with_pem else _BODIES)


def _charger_known(ctx: ApiContext, cp: str) -> None:
    if ctx.deps.store.get_charger(cp) is None:
        raise NotFound(f"Unknown charger {cp}.", chargePointId=cp)


def list_for_charger(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp = params["chargePointId"]
    _charger_known(ctx, cp)
    with_pem = request.query.get("pem") == "true"
    records = [_view(r, with_pem) for r in ctx.deps.store.list_certificates(cp)]
    return Response(200, {"chargePointId": cp, "certificates": records, "count": len(records)})


def revoke_certificate(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp, serial = params["chargePointId"], params["serial"]
    body = json_object(request, ("reason",), required=False) or {}
    reason = body.get("reason", "unspecified")
    if not isinstance(reason, str) or not 0 < len(reason) <= MAX_REASON:
        raise BadRequest(f"reason must be a text of 1 to {MAX_REASON} characters.")
    store = ctx.deps.store
    record = store.get_certificate(cp, serial)
    if record is None:
        raise NotFound(f"No certificate {serial} of charger {cp}.", chargePointId=cp, serial=serial)
    if not revoke(store, cp, serial, reason, ctx.now_ms()):
        raise Conflict(f"Certificate {serial} of charger {cp} is already revoked.", chargePointId=cp, serial=serial)
    ctx.count("CertificatesRevoked")
    return Response(200, _view(store.get_certificate(cp, serial) or record, False))


def expiring(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    raw = request.query.get("expiringWithinDays", str(EXPIRY_WARNING_DAYS))
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) <= 3650:
        raise BadRequest(
            "expiringWithinDays must be a whole number of days from 1 to 3650.", expiringWithinDays=raw[:32]
        )
    found = [_view(r, False) for r in expiring_certificates(ctx.deps.store, ctx.now_ms(), int(raw))]
    return Response(200, {"certificates": found, "count": len(found), "expiringWithinDays": int(raw)})
