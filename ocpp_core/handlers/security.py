"""Security (1.6 security extension; 2.0.1 / 2.1 blocks A and M): events, certificates."""

from __future__ import annotations

from typing import Any

from .. import certificates
from ..context import CallContext
from .common import record_event, recorder, routes


def sign_certificate(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """A02 / A03: kept as an event (with the CSR), then reviewed and signed by the CSMS's CA."""
    record_event(ctx, "SignCertificate", payload)
    return certificates.sign_certificate(ctx, payload)


def get_certificate_chain_status(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """2.1 M06: no OCSP/CRL client here, so each certificate's status is reported Failed."""
    record_event(ctx, "GetCertificateChainStatus", payload)
    return {
        "certificateStatus": [
            {
                "certificateHashData": request["certificateHashData"],
                "source": request["source"],
                "status": "Failed",
                "nextUpdate": ctx.received_iso,
            }
            for request in payload["certificateStatusRequests"]
        ]
    }


ROUTES = routes(
    every={
        "SecurityEventNotification": recorder("SecurityEventNotification"),
        "SignCertificate": sign_certificate,
    },
    v2={
        # No ISO 15118 PKI is wired in: the EXI request is kept and answered Failed (M02/M03).
        "Get15118EVCertificate": recorder("Get15118EVCertificate", {"status": "Failed", "exiResponse": ""}),
        # No OCSP responder is wired in (M06).
        "GetCertificateStatus": recorder("GetCertificateStatus", {"status": "Failed"}),
    },
    v21={"GetCertificateChainStatus": get_certificate_chain_status},
)
