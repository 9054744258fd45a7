"""Charger certificates (DESIGN §9): SignCertificate answered, CertificateSigned sent, records kept.

OCPP 2.0.1 A02 / A03 (and the 1.6 security extension, and 2.1): the station sends a CSR in
``SignCertificate``; the CSMS answers Accepted or Rejected, and when Accepted sends
``CertificateSigned`` with the PEM chain (leaf, then the CA). Here:

* the CSR is reviewed and signed by a :class:`CertificateSigner` (the CA lives outside the core:
  ``lambdas.certificates``); no CA configured, a ``V2GCertificate`` (there is no V2G PKI here) or a
  CSR that fails review: Rejected, nothing signed;
* the serial comes from the frame's digest, so a redelivered SignCertificate names the same
  certificate: its record is created once and CertificateSigned is queued once (same outbox slot
  and seq), whatever the delivery order;
* CertificateSigned goes through the charger's outbox (``ocpp_core.outbox``): it never collides
  with an operator's call, and the station's answer updates the record (``installed`` or not).

A certificate record (``CP#<id>`` / ``CERT#<serial, hex>``): ``{serial, chargePointId, subject,
notBefore, notAfter, status: valid | revoked, certificateType, pem, issuedAt, installStatus?,
revokedAt?}``. The bridge reads it at each TLS handshake (security profile 3): a revoked one is
refused without a restart.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Any

from . import outbox
from .context import CallContext
from .ports import CertificateSigner, IssuedCertificate, ItemUpdate, Record, StateStore

logger = logging.getLogger(__name__)

__all__ = ["CertificateSigner", "IssuedCertificate", "revoke", "sign_certificate"]

CHARGING_STATION = "ChargingStationCertificate"
V2G = "V2GCertificate"
ORIGIN_KIND = "certificate"
#: how long CertificateSigned waits in the outbox for its charger (it may reboot meanwhile)
CERTIFICATE_SIGNED_EXPIRY_S = 3600


class CertificateStatus(enum.StrEnum):
    VALID = "valid"
    REVOKED = "revoked"


def serial_hex(serial: int) -> str:
    return f"{serial:x}"


def serial_of(frame_digest: str) -> int:
    """A positive serial of at most 20 octets (RFC 5280 §4.1.2.2) from the frame's digest (96 bits)."""
    return int(frame_digest, 16) | 1 << 95


def sign_certificate(ctx: CallContext, payload: Mapping[str, Any]) -> dict[str, Any]:
    """SignCertificate: Accepted (and CertificateSigned queued) or Rejected with the reason."""
    certificate_type = str(payload.get("certificateType") or CHARGING_STATION)
    cp = ctx.charge_point_id
    if certificate_type == V2G:
        return _rejected(ctx, "no V2G certificate authority here (ISO 15118 PKI)")
    if ctx.ca is None:
        return _rejected(ctx, "no certificate authority is configured")
    csr = payload.get("csr")
    reason = ctx.ca.review(csr, cp)
    if reason is not None:
        return _rejected(ctx, reason)
    serial = serial_of(ctx.frame_digest)
    stored = ctx.store.get_certificate(cp, serial_hex(serial))
    if stored is None:
        # A charger that asks again and again (a loop, or someone with its password) must not
        # make the CA sign for ever: a cap on the certificates it holds that are still valid (a
        # renewal overlaps its predecessor's last weeks, so two is the usual number).
        limited = _rate_limited(ctx, serial_hex(serial))
        if limited is not None:
            return _rejected(ctx, limited)
    issued = ctx.ca.issue(str(csr), cp, serial, ctx.now_ms)
    record = {
        "serial": serial_hex(serial),
        "chargePointId": cp,
        "subject": issued.subject,
        "notBefore": issued.not_before_ms,
        "notAfter": issued.not_after_ms,
        "status": CertificateStatus.VALID.value,
        "certificateType": certificate_type,
        "pem": issued.pem,
        "chain": issued.chain_pem,
        "issuedAt": ctx.now_ms,
        "uniqueId": ctx.unique_id,
    }
    # A redelivery signs again (ECDSA signatures differ) but keeps the first record: one certificate.
    stored, created = ctx.store.create_certificate(cp, serial_hex(serial), record)
    if not created:
        return {"status": "Accepted"}  # the same frame again: its certificate is issued and queued
    chain = str(stored.get("chain") or issued.chain_pem)
    request: dict[str, Any] = {"certificateChain": chain}
    if ctx.version.is_2x:
        request["certificateType"] = certificate_type
    call = outbox.OutboxCall(
        slot=f"CERT#{serial_hex(serial)}",
        action="CertificateSigned",
        payload=request,
        origin={"kind": ORIGIN_KIND, "serial": serial_hex(serial)},
        seq=1,
        expiry_s=CERTIFICATE_SIGNED_EXPIRY_S,
    )
    if outbox.queue(ctx.store, ctx.now_ms, cp, call):
        ctx.drain.add(cp)
    ctx.notes["certificateSerial"] = serial_hex(serial)
    logger.info("certificate %s issued to %s (%s)", serial_hex(serial), cp, certificate_type)
    return {"status": "Accepted"}


#: at most this many valid (unexpired, unrevoked) certificates per charger
MAX_VALID = 5


def _rate_limited(ctx: CallContext, serial: str) -> str | None:
    """Why no certificate may be issued now; this frame's own one (a duplicate meeting the first
    delivery) does not count against it."""
    issued = [c for c in ctx.store.list_certificates(ctx.charge_point_id) if c.get("serial") != serial]
    valid = [
        c for c in issued if c.get("status") == CertificateStatus.VALID and int(c.get("notAfter") or 0) > ctx.now_ms
    ]
    if len(valid) >= MAX_VALID:
        return f"the charger already holds {len(valid)} valid certificates: revoke some first"
    return None


def _rejected(ctx: CallContext, reason: str) -> dict[str, Any]:
    logger.warning("SignCertificate from %s rejected: %s", ctx.charge_point_id, reason)
    ctx.notes["rejected"] = reason
    if ctx.version.is_2x:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidCSR", "additionalInfo": reason[:512]}}
    return {"status": "Rejected"}


def certificate_signed_finished(
    store: StateStore, now_ms: int, cp: str, origin: Mapping[str, Any], status: str, detail: str, response: Any
) -> set[str]:
    """``calls.ORIGINS``: the station's answer to CertificateSigned, kept on the record."""
    answer = response.get("status") if isinstance(response, Mapping) else None
    install = str(answer) if status == "accepted" and isinstance(answer, str) else status
    store.update_certificate(
        cp,
        str(origin.get("serial")),
        ItemUpdate(set={"installStatus": install, "installAnsweredAt": now_ms}, must_exist=True),
    )
    if install != "Accepted":
        logger.warning("charger %s did not install certificate %s: %s (%s)", cp, origin.get("serial"), install, detail)
    return set()


#: how far ahead certificates to renew are looked for (the timer's count, the API's default)
EXPIRY_WARNING_DAYS = 30


def expiring_certificates(store: StateStore, now_ms: int, days: int = EXPIRY_WARNING_DAYS) -> list[Record]:
    """The valid certificates of every charger that end within ``days`` (at most 1,000)."""
    before = now_ms + days * 86_400_000
    return [
        r
        for r in store.expiring_certificates(before)
        if r.get("status") == CertificateStatus.VALID and int(r.get("notAfter") or 0) > now_ms
    ]


def revoke(store: StateStore, cp: str, serial: str, reason: str, now_ms: int) -> bool:
    """Mark the certificate revoked (the bridge refuses it from its next handshake). False if unknown
    or already revoked."""
    return store.update_certificate(
        cp,
        serial,
        ItemUpdate(
            set={"status": CertificateStatus.REVOKED.value, "revokedAt": now_ms, "revocationReason": reason},
            must_exist=True,
            require_absent=("revokedAt",),
        ),
    )
