"""SignCertificate -> CertificateSigned through the Lambda handlers, with the local development CA
(``lambdas.certificates``), and the certificate routes of the operator API (DESIGN §9).

CSRs and keys are made with ``cryptography``, which also checks what the CA issued: an
implementation independent of the one under test (asn1crypto + ecdsa)."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from lambdas import runtime
from lambdas.certificates import local_ca
from lambdas.runtime import Dependencies

from .support import connect, from_charger, make_deps, request

V16, V201 = "ocpp1.6", "ocpp2.0.1"


@pytest.fixture
def deps(tmp_path: Path) -> Iterator[Dependencies]:
    injected = make_deps()
    injected.ca = local_ca.load_or_create(tmp_path)
    runtime.configure(injected)
    yield injected
    runtime.configure(None)


def make_csr(cn: str, key: Any = None, *, ca: bool = False, sign_with: Any = None) -> str:
    key = key or ec.generate_private_key(ec.SECP256R1())
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    return builder.sign(sign_with or key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def _tampered_signature(csr_pem: str) -> str:
    """The CSR with one bit of its signature flipped (the last bytes of the DER are the signature)."""
    der = bytearray(x509.load_pem_x509_csr(csr_pem.encode()).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode()
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{body}-----END CERTIFICATE REQUEST-----\n"


def _self_signed(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(7)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _no_cn() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "CPO")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def calls(deps: Dependencies, cp: str) -> list[list[Any]]:
    return [json.loads(p) for t, p, _ in deps.publisher.messages if t == f"ocpp/{cp}/out" and json.loads(p)[0] == 2]


def sign(deps: Dependencies, cp: str, protocol: str, csr: str, uid: str = "sc1") -> dict[str, Any]:
    payload: dict[str, Any] = {"csr": csr}
    if protocol != V16:
        payload["certificateType"] = "ChargingStationCertificate"
    outcome = from_charger(deps, cp, protocol, [2, uid, "SignCertificate", payload])
    return dict(json.loads(outcome.reply)[2])


def ca_certificate(deps: Dependencies) -> x509.Certificate:
    body = request("GET", "/ca").body
    return x509.load_pem_x509_certificate(body["certificate"].encode())


@pytest.mark.parametrize("protocol", [V16, V201])
def test_an_accepted_csr_gets_its_certificate_chain(deps: Dependencies, protocol: str) -> None:
    assert request("PUT", "/chargers/CP1", {}).status in (200, 201)
    connect(deps, "CP1", protocol)
    key = ec.generate_private_key(ec.SECP256R1())
    assert sign(deps, "CP1", protocol, make_csr("CP1", key)) == {"status": "Accepted"}
    [call] = calls(deps, "CP1")
    assert call[2] == "CertificateSigned"
    chain = x509.load_pem_x509_certificates(call[3]["certificateChain"].encode())
    assert len(chain) == 2
    leaf, ca = chain
    assert ca == ca_certificate(deps)
    leaf.verify_directly_issued_by(ca)
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP1"
    assert leaf.public_key().public_numbers() == key.public_key().public_numbers()
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert (
        x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    if protocol != V16:
        assert call[3]["certificateType"] == "ChargingStationCertificate"
    # The charger installs it: the record says so.
    from_charger(deps, "CP1", protocol, [3, call[1], {"status": "Accepted"}])
    [record] = request("GET", "/chargers/CP1/certificates").body["certificates"]
    assert record["serial"] == f"{leaf.serial_number:x}"
    assert (record["status"], record["installStatus"], record["subject"]) == ("valid", "Accepted", "Common Name: CP1")
    assert "pem" not in record
    with_pem = request("GET", "/chargers/CP1/certificates", query={"pem": "true"}).body["certificates"][0]
    assert x509.load_pem_x509_certificate(with_pem["pem"].encode()) == leaf


def test_a_redelivered_sign_certificate_issues_one_certificate(deps: Dependencies) -> None:
    assert request("PUT", "/chargers/CP1", {}).status in (200, 201)
    connect(deps, "CP1", V16)
    csr = make_csr("CP1")
    assert sign(deps, "CP1", V16, csr) == {"status": "Accepted"}
    assert sign(deps, "CP1", V16, csr) == {"status": "Accepted"}  # the same frame again
    assert len(request("GET", "/chargers/CP1/certificates").body["certificates"]) == 1
    assert [c[2] for c in calls(deps, "CP1")] == ["CertificateSigned"]


BAD = {
    "another charger's CN": (lambda: make_csr("CP2"), "not the charger id"),
    "a weak RSA key": (lambda: make_csr("CP1", rsa.generate_private_key(65537, 1024)), "at least 2048"),
    "a P-192 key": (lambda: make_csr("CP1", ec.generate_private_key(ec.SECP192R1())), "P-256 or P-384"),
    "a CA request": (lambda: make_csr("CP1", ca=True), "CA certificate"),
    "a bad signature": (lambda: _tampered_signature(make_csr("CP1")), "signature does not verify"),
    "garbage": (
        lambda: "-----BEGIN CERTIFICATE REQUEST-----\nnot base64\n-----END CERTIFICATE REQUEST-----",
        "malformed",
    ),
    "a certificate instead": (lambda: _self_signed("CP1"), "not a CERTIFICATE REQUEST"),
    "no CN": (lambda: _no_cn(), "no single commonName"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
@pytest.mark.parametrize("protocol", [V16, V201])
def test_a_hostile_or_malformed_csr_is_rejected_and_nothing_signed(
    deps: Dependencies, protocol: str, case: str
) -> None:
    make, reason = BAD[case]
    assert request("PUT", "/chargers/CP1", {}).status in (200, 201)
    connect(deps, "CP1", protocol)
    answer = sign(deps, "CP1", protocol, make())
    assert answer["status"] == "Rejected"
    if protocol != V16:
        assert answer["statusInfo"]["reasonCode"] == "InvalidCSR" and reason in answer["statusInfo"]["additionalInfo"]
    assert calls(deps, "CP1") == []
    assert request("GET", "/chargers/CP1/certificates").body["certificates"] == []


def test_an_oversized_csr_is_refused_by_the_schema(deps: Dependencies) -> None:
    connect(deps, "CP1", V201)
    outcome = from_charger(
        deps,
        "CP1",
        V201,
        [2, "big", "SignCertificate", {"csr": "A" * 5501, "certificateType": "ChargingStationCertificate"}],
    )
    assert json.loads(outcome.reply)[0] == 4  # a CALLERROR: the schema allows 5,500 characters
    assert calls(deps, "CP1") == []


def test_a_v2g_csr_is_rejected_without_a_v2g_pki(deps: Dependencies) -> None:
    connect(deps, "CP1", V201)
    payload = {"csr": make_csr("CP1"), "certificateType": "V2GCertificate"}
    answer = json.loads(from_charger(deps, "CP1", V201, [2, "v2g", "SignCertificate", payload]).reply)[2]
    assert answer["status"] == "Rejected" and "V2G" in answer["statusInfo"]["additionalInfo"]


def test_revocation_and_the_expiring_report(deps: Dependencies) -> None:
    assert request("PUT", "/chargers/CP1", {}).status in (200, 201)
    connect(deps, "CP1", V16)
    sign(deps, "CP1", V16, make_csr("CP1"))
    [record] = request("GET", "/chargers/CP1/certificates").body["certificates"]
    serial = record["serial"]
    assert request("GET", "/certificates").body["certificates"] == []  # a year left
    soon = request("GET", "/certificates", query={"expiringWithinDays": "400"}).body["certificates"]
    assert [c["serial"] for c in soon] == [serial]
    revoked = request("POST", f"/chargers/CP1/certificates/{serial}/revoke", {"reason": "key compromised"})
    assert revoked.status == 200 and revoked.body["status"] == "revoked"
    assert revoked.body["revocationReason"] == "key compromised"
    assert request("POST", f"/chargers/CP1/certificates/{serial}/revoke").status == 409
    assert request("GET", "/certificates", query={"expiringWithinDays": "400"}).body["certificates"] == []
    assert request("POST", "/chargers/CP1/certificates/abc/revoke").status == 404
    assert request("POST", "/chargers/CP1/certificates/NOT-HEX/revoke").status == 400
    assert request("GET", "/certificates", query={"expiringWithinDays": "0"}).status == 400


def test_the_local_ca_is_created_once_and_its_key_is_private(tmp_path: Path) -> None:
    first = local_ca.load_or_create(tmp_path)
    again = local_ca.load_or_create(tmp_path)
    assert first.ca_pem == again.ca_pem
    paths = local_ca.files(tmp_path)
    assert paths.ca_key.stat().st_mode & 0o777 == 0o600
    assert paths.bridge_key.stat().st_mode & 0o777 == 0o600
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    bridge = x509.load_pem_x509_certificates(paths.bridge_cert.read_bytes())[0]
    bridge.verify_directly_issued_by(ca)
    names = bridge.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)


def test_the_timer_counts_the_certificates_to_renew_once_an_hour(deps: Dependencies) -> None:
    from lambdas import timer

    deps.ca.validity_days = 20  # type: ignore[union-attr]
    assert request("PUT", "/chargers/CP1", {}).status in (200, 201)
    connect(deps, "CP1", V16)
    sign(deps, "CP1", V16, make_csr("CP1"))
    assert "certificatesExpiring" not in timer.handle({})  # 15:06: not the top of the hour
    deps.clock.advance(3200)  # 16:00:00
    assert timer.handle({})["certificatesExpiring"] == 1
    [record] = request("GET", "/chargers/CP1/certificates").body["certificates"]
    request("POST", f"/chargers/CP1/certificates/{record['serial']}/revoke")
    deps.clock.advance(3600)
    assert timer.handle({})["certificatesExpiring"] == 0  # a revoked one needs no renewal


def test_a_charger_cannot_make_the_ca_sign_without_end(deps: Dependencies) -> None:
    from ocpp_core.certificates import MAX_VALID

    assert request("PUT", "/chargers/CP1", {}).status in (200, 201)
    connect(deps, "CP1", V201)
    for n in range(MAX_VALID):
        assert sign(deps, "CP1", V201, make_csr("CP1"), f"c{n}") == {"status": "Accepted"}
    capped = sign(deps, "CP1", V201, make_csr("CP1"), "over")
    assert capped["status"] == "Rejected" and "revoke some first" in capped["statusInfo"]["additionalInfo"]
    assert len(request("GET", "/chargers/CP1/certificates").body["certificates"]) == MAX_VALID
    # Revoking one makes room again.
    serial = request("GET", "/chargers/CP1/certificates").body["certificates"][0]["serial"]
    assert request("POST", f"/chargers/CP1/certificates/{serial}/revoke").status == 200
    assert sign(deps, "CP1", V201, make_csr("CP1"), "after") == {"status": "Accepted"}
