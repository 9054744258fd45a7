"""CSRs read and checked, certificates built: DER with ``asn1crypto``, signatures with ``ecdsa``.

Pure Python on purpose: the Lambda bundle carries no compiled wheel (it is assembled offline for
arm64, ``infra/bundling.py``), and signing is a port (``signers``): a local key for the development
CA, KMS on AWS, where the key never leaves the service.

What a charger's CSR must be to be signed (OCPP 2.0.1 part 2 A02/A03 and the OCPP security
whitepaper's key requirements, the 1.6 security extension's likewise): a well-formed PKCS#10
request whose signature verifies with its own key (proof of possession), an RSA key of at least
2048 bits or an EC key on P-256 or P-384, the subject's commonName equal to the charger id, and no
extension asking for more than an end entity (a CA basic constraint, certificate or CRL signing).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC

import ecdsa
from asn1crypto import algos, csr, keys, pem, x509
from ecdsa.util import sigdecode_der

#: the schema's limit of a CSR (SignCertificate.req csr, maxLength 5500)
MAX_CSR_CHARS = 5500
MIN_RSA_BITS = 2048
CURVES = {"secp256r1": ecdsa.NIST256p, "secp384r1": ecdsa.NIST384p}
_HASHES = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


class CsrRejected(ValueError):
    """The CSR cannot be signed: ``reason`` says why, in a line."""


@dataclass(frozen=True, slots=True)
class CheckedCsr:
    request: csr.CertificationRequest
    public_key: keys.PublicKeyInfo
    common_name: str


def review_csr(text: object, charge_point_id: str) -> CheckedCsr:
    """The CSR, checked as the module docstring says; :class:`CsrRejected` otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise CsrRejected("no CSR")
    if len(text) > MAX_CSR_CHARS:
        raise CsrRejected(f"CSR longer than {MAX_CSR_CHARS} characters")
    try:
        data = text.encode("ascii")
        if pem.detect(data):
            kind, _, data = pem.unarmor(data)
            if kind not in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
                raise CsrRejected(f"PEM block is a {kind}, not a CERTIFICATE REQUEST")
        request = csr.CertificationRequest.load(data, strict=True)
        info = request["certification_request_info"]
        public_key = info["subject_pk_info"]
        _check_key(public_key)
        _verify(public_key, request["signature_algorithm"], info.dump(), request["signature"].native)
        common_name = _common_name(info["subject"])
        _check_extensions(info)
    except CsrRejected:
        raise
    except (ValueError, TypeError, KeyError, IndexError, UnicodeError, ecdsa.BadSignatureError) as error:
        raise CsrRejected(f"malformed CSR ({type(error).__name__})") from None
    if common_name != charge_point_id:
        raise CsrRejected(f"subject CN {common_name!r} is not the charger id {charge_point_id!r}")
    return CheckedCsr(request, public_key, common_name)


def _check_key(public_key: keys.PublicKeyInfo) -> None:
    algorithm = public_key.algorithm
    if algorithm == "rsa":
        bits = public_key.bit_size
        if bits < MIN_RSA_BITS:
            raise CsrRejected(f"RSA key of {bits} bits (at least {MIN_RSA_BITS})")
    elif algorithm == "ec":
        curve = public_key.curve[1] if public_key.curve[0] == "named" else None
        if curve not in CURVES:
            raise CsrRejected(f"EC key on {curve or 'an unnamed curve'} (P-256 or P-384 only)")
    else:
        raise CsrRejected(f"{algorithm} key (RSA or EC only)")


def _verify(public_key: keys.PublicKeyInfo, algorithm: algos.SignedDigestAlgorithm, signed: bytes, sig: bytes) -> None:
    """The CSR's own signature: ECDSA with ``ecdsa``; RSA PKCS#1 v1.5 by construct-and-compare."""
    digest_name = algorithm.hash_algo
    signature_kind = algorithm.signature_algo
    if digest_name not in _HASHES:
        raise CsrRejected(f"signature hash {digest_name} (SHA-256 or stronger)")
    digest = _HASHES[digest_name](signed).digest()
    if public_key.algorithm == "ec" and signature_kind == "ecdsa":
        curve = CURVES[public_key.curve[1]]
        point = bytes(public_key["public_key"])
        verifier = ecdsa.VerifyingKey.from_string(point, curve=curve)
        try:
            valid = verifier.verify_digest(sig, digest, sigdecode=sigdecode_der, allow_truncate=True)
        except (ecdsa.BadSignatureError, ecdsa.der.UnexpectedDER):
            valid = False
        if not valid:
            raise CsrRejected("CSR signature does not verify")
        return
    if public_key.algorithm == "rsa" and signature_kind == "rsassa_pkcs1v15":
        _verify_rsa_pkcs1(public_key, digest_name, digest, sig)
        return
    raise CsrRejected(f"{signature_kind} signature with a {public_key.algorithm} key")


def _verify_rsa_pkcs1(public_key: keys.PublicKeyInfo, digest_name: str, digest: bytes, sig: bytes) -> None:
    """RFC 8017 §8.2.2: build the expected EMSA-PKCS1-v1_5 encoding and compare it whole (no
    parsing of the decrypted block, the mistake behind the known forgeries). Hand-written because
    it is these few lines; the only other pure-Python choice pulls two distributions in."""
    key = public_key["public_key"].parsed
    modulus, exponent = key["modulus"].native, key["public_exponent"].native
    length = (modulus.bit_length() + 7) // 8
    if len(sig) != length:
        raise CsrRejected("CSR signature does not verify")
    decoded = pow(int.from_bytes(sig, "big"), exponent, modulus).to_bytes(length, "big")
    info = algos.DigestInfo(
        {"digest_algorithm": algos.DigestAlgorithm({"algorithm": digest_name}), "digest": digest}
    ).dump()
    expected = b"\x00\x01" + b"\xff" * (length - len(info) - 3) + b"\x00" + info
    if length < len(info) + 11 or not hmac.compare_digest(decoded, expected):
        raise CsrRejected("CSR signature does not verify")


def _common_name(subject: x509.Name) -> str:
    names = [value for attribute, value in subject.native.items() if attribute == "common_name"]
    if len(names) != 1 or not isinstance(names[0], str):
        raise CsrRejected("subject has no single commonName")
    return names[0]


def _check_extensions(info: csr.CertificationRequestInfo) -> None:
    for attribute in info["attributes"]:
        if attribute["type"].native != "extension_request":
            continue
        for extensions in attribute["values"]:
            for extension in extensions:
                name, value = extension["extn_id"].native, extension["extn_value"].parsed
                if name == "basic_constraints" and value["ca"].native:
                    raise CsrRejected("CSR asks for a CA certificate")
                if name == "key_usage" and {"key_cert_sign", "crl_sign"} & set(value.native):
                    raise CsrRejected("CSR asks to sign certificates or CRLs")


# --- certificates ---------------------------------------------------------------------------


def tbs_certificate(
    *,
    serial: int,
    issuer: x509.Name,
    subject: x509.Name,
    public_key: keys.PublicKeyInfo,
    not_before_s: int,
    not_after_s: int,
    signature_algorithm: str,
    extensions: list[x509.Extension],
) -> x509.TbsCertificate:
    """The to-be-signed part of a v3 certificate."""
    return x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": serial,
            "signature": algos.SignedDigestAlgorithm({"algorithm": signature_algorithm}),
            "issuer": issuer,
            "validity": x509.Validity({"not_before": _time(not_before_s), "not_after": _time(not_after_s)}),
            "subject": subject,
            "subject_public_key_info": public_key,
            "extensions": x509.Extensions(extensions),
        }
    )


def certificate(tbs: x509.TbsCertificate, signature: bytes) -> x509.Certificate:
    return x509.Certificate(
        {"tbs_certificate": tbs, "signature_algorithm": tbs["signature"], "signature_value": signature}
    )


def extension(name: str, value: object, *, critical: bool = False) -> x509.Extension:
    return x509.Extension({"extn_id": name, "critical": critical, "extn_value": value})


def key_identifier(public_key: keys.PublicKeyInfo) -> bytes:
    """RFC 5280 §4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits."""
    return hashlib.sha1(bytes(public_key["public_key"])).digest()


def to_pem(cert: x509.Certificate) -> str:
    return pem.armor("CERTIFICATE", cert.dump()).decode("ascii")


def load_certificate(text: str | bytes) -> x509.Certificate:
    data = text.encode("ascii") if isinstance(text, str) else text
    if pem.detect(data):
        _, _, data = pem.unarmor(data)
    return x509.Certificate.load(data)


def _time(epoch_s: int) -> x509.Time:
    from datetime import datetime

    moment = datetime.fromtimestamp(epoch_s, tz=UTC)
    # RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050
    return x509.Time({"utc_time" if moment.year < 2050 else "general_time": moment})


def name(common_name: str, organization: str | None = None) -> x509.Name:
    values = {"common_name": common_name}
    if organization:
        values["organization_name"] = organization
    return x509.Name.build(values)


__all__ = [
    "CheckedCsr",
    "CsrRejected",
    "certificate",
    "extension",
    "key_identifier",
    "load_certificate",
    "name",
    "review_csr",
    "tbs_certificate",
    "to_pem",
]
