"""The CA on AWS: its key is a KMS key; its certificate is made once and kept in the table.

The first function that needs the CA (the message processor on a SignCertificate, the operator
API on ``GET /ca``) self-signs a root for the KMS key and keeps it with a conditional write; a
second one racing it keeps the first one's (``put_root_certificate``: first writer wins), so every
function and the bridge trust one CA certificate. Built lazily: functions that never sign make no
KMS call at all.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from ocpp_core.ports import CertificateStore, IssuedCertificate

from .authority import CertificateAuthority
from .signers import KmsSigner
from .x509 import load_certificate

CA_NAME = "OCPP CSMS charger CA"


def load_or_create(store: CertificateStore, signer: KmsSigner, *, now_s: int | None = None) -> CertificateAuthority:
    stored = store.get_root_certificate()
    if stored is None:
        made = CertificateAuthority.create_root(
            signer, CA_NAME, int(time.time()) if now_s is None else now_s, secrets.randbits(95) | 1 << 95
        )
        stored = store.put_root_certificate(made.ca_pem)
    return CertificateAuthority(load_certificate(stored), signer)


class LazyCertificateAuthority:
    """A ``CertificateSigner`` that builds the CA on its first use."""

    def __init__(self, build: Callable[[], CertificateAuthority]):
        self._build = build
        self._ca: CertificateAuthority | None = None

    def _get(self) -> CertificateAuthority:
        if self._ca is None:
            self._ca = self._build()
        return self._ca

    @property
    def ca_pem(self) -> str:
        return self._get().ca_pem

    def review(self, csr_pem: object, charge_point_id: str) -> str | None:
        return self._get().review(csr_pem, charge_point_id)

    def issue(self, csr_pem: str, charge_point_id: str, serial: int, now_ms: int) -> IssuedCertificate:
        return self._get().issue(csr_pem, charge_point_id, serial, now_ms)


def from_kms(store: CertificateStore, kms_client: Any, key_id: str) -> LazyCertificateAuthority:
    signer = KmsSigner(kms_client, key_id)
    return LazyCertificateAuthority(lambda: load_or_create(store, signer))
