"""The chargers' certificate authority (DESIGN §9): reviews CSRs, issues certificates.

Implements ``ocpp_core.certificates.CertificateSigner`` on a CA certificate and a :class:`Signer`
(a local key for the development CA, KMS on AWS). Charger certificates are end-entity client
certificates (``clientAuth``): subject CN the charger id, the CA as issuer, valid
``validity_days`` from issue; the bridge's server certificate is one too (``serverAuth``, the
host names and addresses it answers on).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from asn1crypto import keys, x509

from ocpp_core.certificates import IssuedCertificate

from . import x509 as der
from .signers import SIGNATURE_ALGORITHM, Signer

DEFAULT_VALIDITY_DAYS = 365
CA_VALIDITY_DAYS = 10 * 365
#: issued certificates start this much before the signing time (chargers' clocks drift)
_BACKDATE_S = 300
_DAY_S = 86_400


class CertificateAuthority:
    def __init__(self, ca: x509.Certificate, signer: Signer, *, validity_days: int = DEFAULT_VALIDITY_DAYS):
        self.ca = ca
        self._signer = signer
        self.validity_days = validity_days
        self.ca_pem = der.to_pem(ca)

    @classmethod
    def create_root(cls, signer: Signer, common_name: str, now_s: int, serial: int) -> CertificateAuthority:
        """A self-signed root for ``signer``'s key (the development CA, or the KMS key's on AWS)."""
        public = signer.public_key()
        ski = der.key_identifier(public)
        tbs = der.tbs_certificate(
            serial=serial,
            issuer=der.name(common_name),
            subject=der.name(common_name),
            public_key=public,
            not_before_s=now_s - _BACKDATE_S,
            not_after_s=now_s + CA_VALIDITY_DAYS * _DAY_S,
            signature_algorithm=SIGNATURE_ALGORITHM,
            extensions=[
                der.extension("basic_constraints", {"ca": True, "path_len_constraint": 0}, critical=True),
                der.extension("key_usage", {"key_cert_sign", "crl_sign", "digital_signature"}, critical=True),
                der.extension("key_identifier", ski),
            ],
        )
        return cls(der.certificate(tbs, signer.sign(tbs.dump())), signer)

    def review(self, csr_pem: object, charge_point_id: str) -> str | None:
        """Why the CSR cannot be signed, or None if it can."""
        try:
            der.review_csr(csr_pem, charge_point_id)
        except der.CsrRejected as rejected:
            return str(rejected)
        return None

    def issue(self, csr_pem: str, charge_point_id: str, serial: int, now_ms: int) -> IssuedCertificate:
        """A client certificate for the CSR's key (reviewed again: :class:`CsrRejected` if bad)."""
        checked = der.review_csr(csr_pem, charge_point_id)
        usage = (
            {"digital_signature", "key_agreement"}
            if checked.public_key.algorithm == "ec"
            else {
                "digital_signature",
                "key_encipherment",
            }
        )
        extensions = [
            der.extension("basic_constraints", {"ca": False}, critical=True),
            der.extension("key_usage", usage, critical=True),
            der.extension("extended_key_usage", ["client_auth"]),
        ]
        return self._issue(checked.public_key, der.name(charge_point_id), serial, now_ms, extensions)

    def server_certificate(
        self, public_key: keys.PublicKeyInfo, hosts: Sequence[str], serial: int, now_ms: int
    ) -> IssuedCertificate:
        """The bridge's TLS certificate (security profile 3 locally): ``hosts`` names and IPs."""
        general: list[x509.GeneralName] = []
        for host in hosts:
            try:
                general.append(x509.GeneralName({"ip_address": str(ipaddress.ip_address(host))}))
            except ValueError:
                general.append(x509.GeneralName({"dns_name": host}))
        extensions = [
            der.extension("basic_constraints", {"ca": False}, critical=True),
            der.extension("key_usage", {"digital_signature", "key_agreement"}, critical=True),
            der.extension("extended_key_usage", ["server_auth"]),
            der.extension("subject_alt_name", general),
        ]
        return self._issue(public_key, der.name(hosts[0]), serial, now_ms, extensions)

    def _issue(
        self,
        public_key: keys.PublicKeyInfo,
        subject: x509.Name,
        serial: int,
        now_ms: int,
        extensions: list[x509.Extension],
    ) -> IssuedCertificate:
        now_s = now_ms // 1000
        not_before, not_after = now_s - _BACKDATE_S, now_s + self.validity_days * _DAY_S
        issuer_ski = self.ca.key_identifier or der.key_identifier(self.ca.public_key)
        tbs = der.tbs_certificate(
            serial=serial,
            issuer=self.ca.subject,
            subject=subject,
            public_key=public_key,
            not_before_s=not_before,
            not_after_s=not_after,
            signature_algorithm=SIGNATURE_ALGORITHM,
            extensions=[
                *extensions,
                der.extension("key_identifier", der.key_identifier(public_key)),
                der.extension("authority_key_identifier", {"key_identifier": issuer_ski}),
            ],
        )
        leaf = der.certificate(tbs, self._signer.sign(tbs.dump()))
        leaf_pem = der.to_pem(leaf)
        return IssuedCertificate(
            serial=serial,
            subject=subject.human_friendly,
            not_before_ms=not_before * 1000,
            not_after_ms=not_after * 1000,
            pem=leaf_pem,
            chain_pem=leaf_pem + self.ca_pem,
        )
