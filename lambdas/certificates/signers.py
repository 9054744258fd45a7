"""Where the CA's signatures come from: a port and its two adapters.

* :class:`LocalKeySigner`: the development CA of the local stack, an ECDSA P-256 key in a file
  (``ecdsa``; it is not hardened against timing side channels, so it is for the local stack only).
* :class:`KmsSigner`: on AWS, an asymmetric KMS key (``ECC_NIST_P256``, ``SIGN_VERIFY``): the
  private key never leaves KMS. We send the to-be-signed certificate itself (``MessageType=RAW``,
  KMS hashes it with SHA-256; a TBS certificate is well under the 4,096 bytes RAW allows) and KMS
  returns the DER-encoded ECDSA signature that X.509 carries as it is
  (https://docs.aws.amazon.com/kms/latest/APIReference/API_Sign.html). RAW rather than DIGEST also
  because moto, on which the tests run, hashes a DIGEST message again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Protocol

import ecdsa
from asn1crypto import keys
from ecdsa.util import sigencode_der

#: the signature algorithm of every certificate the CA issues (asn1crypto's name)
SIGNATURE_ALGORITHM = "sha256_ecdsa"
#: the largest RAW message KMS Sign takes
KMS_RAW_LIMIT = 4096


class Signer(Protocol):
    def public_key(self) -> keys.PublicKeyInfo: ...

    def sign(self, data: bytes) -> bytes:
        """The DER ECDSA-with-SHA-256 signature of ``data``."""
        ...


class LocalKeySigner:
    def __init__(self, key: ecdsa.SigningKey):
        self._key = key

    @classmethod
    def generate(cls) -> LocalKeySigner:
        return cls(ecdsa.SigningKey.generate(curve=ecdsa.NIST256p, hashfunc=hashlib.sha256))

    @classmethod
    def load(cls, path: Path) -> LocalKeySigner:
        return cls(ecdsa.SigningKey.from_pem(path.read_bytes(), hashfunc=hashlib.sha256))

    def save(self, path: Path) -> None:
        """Written readable by its owner only (0600), created so, never world-readable meanwhile."""
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_bytes(self._key.to_pem())  # SEC1 "EC PRIVATE KEY": OpenSSL and cryptography both read it

    def public_key(self) -> keys.PublicKeyInfo:
        return keys.PublicKeyInfo.load(self._key.get_verifying_key().to_der())

    def sign(self, data: bytes) -> bytes:
        return bytes(self._key.sign_deterministic(data, hashfunc=hashlib.sha256, sigencode=sigencode_der))


class KmsSigner:
    def __init__(self, client: Any, key_id: str):
        self._client = client
        self._key_id = key_id
        self._public: keys.PublicKeyInfo | None = None

    def public_key(self) -> keys.PublicKeyInfo:
        if self._public is None:
            der = self._client.get_public_key(KeyId=self._key_id)["PublicKey"]
            self._public = keys.PublicKeyInfo.load(der)
        return self._public

    def sign(self, data: bytes) -> bytes:
        if len(data) > KMS_RAW_LIMIT:
            raise ValueError(f"{len(data)} bytes to sign: KMS signs at most {KMS_RAW_LIMIT} as RAW")
        response = self._client.sign(
            KeyId=self._key_id, Message=data, MessageType="RAW", SigningAlgorithm="ECDSA_SHA_256"
        )
        return bytes(response["Signature"])
