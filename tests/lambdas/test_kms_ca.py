"""The CA on AWS: a KMS key signs (moto's KMS), the root is made once and kept in the table, and
what it issues verifies with ``cryptography`` (an implementation independent of the signer's)."""

from __future__ import annotations

import boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lambdas.adapters.dynamo import DynamoStore
from lambdas.certificates import kms_ca

from .support import REGION, TABLE


def _csr(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def test_a_kms_key_signs_the_root_and_the_chargers_certificates(dynamodb) -> None:
    kms = boto3.client("kms", region_name=REGION)
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["Arn"]
    store = DynamoStore(dynamodb, TABLE)
    ca = kms_ca.from_kms(store, kms, key_id)
    root = x509.load_pem_x509_certificate(ca.ca_pem.encode())
    root.verify_directly_issued_by(root)  # self-signed by the KMS key
    kms_public = serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])
    assert root.public_key().public_numbers() == kms_public.public_numbers()
    issued = ca.issue(_csr("CP1"), "CP1", 4242, 1_750_000_000_000)
    leaf = x509.load_pem_x509_certificate(issued.pem.encode())
    leaf.verify_directly_issued_by(root)
    assert leaf.serial_number == 4242
    # Another function (a new lazy CA on the same table) trusts the same root: made once.
    again = kms_ca.from_kms(DynamoStore(dynamodb, TABLE), kms, key_id)
    assert again.ca_pem == ca.ca_pem


def test_concurrent_duplicates_of_a_sign_certificate_issue_one_certificate(
    dynamodb, atomic_moto_requests, tmp_path
) -> None:
    """AWS may deliver a frame twice at once (DESIGN §7): one certificate, one CertificateSigned queued."""
    import json
    from concurrent.futures import ThreadPoolExecutor

    from lambdas.certificates import local_ca
    from ocpp_core import ProcessorConfig, process
    from tests.fakes import FakeClock, SeqIds

    clock, ids = FakeClock(), SeqIds()
    store = DynamoStore(dynamodb, TABLE, clock_s=lambda: clock.now_ms() / 1000)
    store.update_charger("CP1", {"registered": True, "protocol": "ocpp2.0.1"})
    ca = local_ca.load_or_create(tmp_path)
    envelope = {
        "chargePointId": "CP1",
        "protocol": "ocpp2.0.1",
        "connectionId": "c1",
        "receivedAt": 1_750_000_000_000,
        "frame": json.dumps(
            [2, "s1", "SignCertificate", {"csr": _csr("CP1"), "certificateType": "ChargingStationCertificate"}]
        ),
    }

    def deliver(_: int) -> str | None:
        return process(dict(envelope), store=store, clock=clock, ids=ids, config=ProcessorConfig(), ca=ca).reply

    with ThreadPoolExecutor(max_workers=4) as workers:
        replies = set(workers.map(deliver, range(8)))
    assert len(replies) == 1  # every delivery, the same answer
    assert json.loads(replies.pop()) == [3, "s1", {"status": "Accepted"}]
    assert len(store.list_certificates("CP1")) == 1
    assert [item["action"] for item in store.list_outbox("CP1")] == ["CertificateSigned"]
