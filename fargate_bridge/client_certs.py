"""Security profile 3: is the client certificate a charger presented good for its id? (DESIGN §9)

OpenSSL has already checked, during the TLS handshake, that the certificate chains to
``BRIDGE_CLIENT_CA`` and is within its validity (a certificate that fails either never reaches
HTTP: the handshake ends with a TLS alert). At the HTTP upgrade the bridge then checks, in order:

* the subject has exactly one CN and it equals the id in the URL;
* it is within its validity (again, against the clock of this check);
* the CSMS recorded it (``CP#<id>`` / ``CERT#<serial>``), for this charger, with status
  ``valid``: a revoked certificate, or one the CSMS never issued, is refused.

:func:`check_certificate` and :func:`check_record` are pure; :func:`verify` adds the one
registry read (cached for at most ``registry.CERTIFICATE_CACHE_TTL`` seconds).
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ocpp_core.certificates import serial_hex

from .errors import RegistryUnavailable
from .registry import CertificateRecord, RegistryReader


class CertificateProblem(enum.Enum):
    """Why a presented certificate does not admit the charger (its value is what the log says)."""

    UNREADABLE = "client certificate unreadable"
    WRONG_SUBJECT = "client certificate CN is not the charger id"
    NOT_YET_VALID = "client certificate not yet valid"
    EXPIRED = "client certificate expired"
    UNRECORDED = "client certificate not issued to this charger by the CSMS"
    REVOKED = "client certificate revoked"
    UNAVAILABLE = "registry unavailable"


@dataclass(frozen=True, slots=True)
class PeerCertificate:
    """The parts of a verified client certificate that the checks need."""

    common_names: tuple[str, ...]
    serial: str  # lower-case hex, no leading zeros: the record's sort key (ocpp_core.keys.certificate_sk)
    not_before_s: float | None
    not_after_s: float | None

    @classmethod
    def from_peercert(cls, info: Mapping[str, Any]) -> PeerCertificate | None:
        """From ``SSLObject.getpeercert()`` (the decoded form of a verified certificate); None if unusable."""
        try:
            serial = serial_hex(int(str(info["serialNumber"]), 16))
        except (KeyError, TypeError, ValueError):
            return None
        names = tuple(str(value) for rdn in info.get("subject", ()) for (key, value) in rdn if key == "commonName")
        return cls(names, serial, _cert_time(info.get("notBefore")), _cert_time(info.get("notAfter")))


def _cert_time(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return float(ssl.cert_time_to_seconds(value))
    except ValueError:
        return None


def check_certificate(peer: PeerCertificate, charge_point_id: str, now_s: float) -> CertificateProblem | None:
    """What the certificate alone says: its subject and its validity period."""
    if peer.common_names != (charge_point_id,):
        return CertificateProblem.WRONG_SUBJECT
    if peer.not_before_s is None or peer.not_after_s is None:
        return CertificateProblem.UNREADABLE
    if now_s < peer.not_before_s:
        return CertificateProblem.NOT_YET_VALID
    if now_s > peer.not_after_s:
        return CertificateProblem.EXPIRED
    return None


def check_record(record: CertificateRecord | None, charge_point_id: str, now_ms: int) -> CertificateProblem | None:
    """What the CSMS's record says: issued to this charger, and neither revoked nor expired."""
    if record is None or record.charge_point_id not in (None, charge_point_id):
        return CertificateProblem.UNRECORDED
    if not record.valid:
        return CertificateProblem.REVOKED
    if record.not_after_ms is not None and now_ms > record.not_after_ms:
        return CertificateProblem.EXPIRED
    return None


async def verify(
    reader: RegistryReader, charge_point_id: str, peer: PeerCertificate, now_s: float
) -> CertificateProblem | None:
    """None when ``peer`` admits ``charge_point_id``; else why not (UNAVAILABLE: answer 503)."""
    problem = check_certificate(peer, charge_point_id, now_s)
    if problem is not None:
        return problem  # no registry read for a certificate that cannot be right
    try:
        record = await reader.certificate(charge_point_id, peer.serial)
    except RegistryUnavailable:
        return CertificateProblem.UNAVAILABLE
    return check_record(record, charge_point_id, int(now_s * 1000))
