"""Security (1.6 security extension; 2.0.1 / 2.1 blocks A and M): events, certificates."""

from __future__ import annotations

from typing import Any

from ..context import CallContext
from .common import record_event, recorder, routes


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
        # The CSR is kept for the operator's CA; the signed chain goes back with CertificateSigned (A02).
        "SignCertificate": recorder("SignCertificate", {"status": "Accepted"}),
    },
    v2={
        # No ISO 15118 PKI is wired in: the EXI request is kept and answered Failed (M02/M03).
        "Get15118EVCertificate": recorder("Get15118EVCertificate", {"status": "Failed", "exiResponse": ""}),
        # No OCSP responder is wired in (M06).
        "GetCertificateStatus": recorder("GetCertificateStatus", {"status": "Failed"}),
    },
    v21={"GetCertificateChainStatus": get_certificate_chain_status},
)
