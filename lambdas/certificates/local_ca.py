"""The local stack's development CA (DESIGN §9), kept in its state directory.

Created on the first ``make run`` and reused afterwards: ``ca.pem`` (the CA certificate, readable:
chargers and tests trust it) and ``ca.key`` (its ECDSA P-256 key, 0600). Also the bridge's TLS
server certificate for security profile 3 (``bridge.pem`` / ``bridge.key``, for 127.0.0.1 and
localhost), issued by that CA, renewed when it is within a month of its end.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from .authority import CertificateAuthority
from .signers import LocalKeySigner
from .x509 import load_certificate

CA_NAME = "OCPP CSMS development CA"
BRIDGE_HOSTS = ("localhost", "127.0.0.1")
_RENEW_BEFORE_S = 30 * 86_400


@dataclass(frozen=True, slots=True)
class LocalCaFiles:
    ca_cert: Path
    ca_key: Path
    bridge_cert: Path
    bridge_key: Path


def files(state_dir: Path) -> LocalCaFiles:
    return LocalCaFiles(state_dir / "ca.pem", state_dir / "ca.key", state_dir / "bridge.pem", state_dir / "bridge.key")


def _serial() -> int:
    return secrets.randbits(95) | 1 << 95


def load_or_create(state_dir: Path, *, now_s: int | None = None) -> CertificateAuthority:
    """The CA of ``state_dir``, created (with the bridge's certificate) if it has none."""
    now = int(time.time()) if now_s is None else now_s
    paths = files(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    if paths.ca_cert.exists() and paths.ca_key.exists():
        ca = CertificateAuthority(load_certificate(paths.ca_cert.read_bytes()), LocalKeySigner.load(paths.ca_key))
    else:
        signer = LocalKeySigner.generate()
        ca = CertificateAuthority.create_root(signer, CA_NAME, now, _serial())
        signer.save(paths.ca_key)
        paths.ca_cert.write_text(ca.ca_pem)
    _ensure_bridge_certificate(ca, paths, now)
    return ca


def _ensure_bridge_certificate(ca: CertificateAuthority, paths: LocalCaFiles, now_s: int) -> None:
    if paths.bridge_cert.exists() and paths.bridge_key.exists():
        current = load_certificate(paths.bridge_cert.read_bytes())
        if (
            current.issuer == ca.ca.subject
            and current["tbs_certificate"]["validity"]["not_after"].native.timestamp() - now_s > _RENEW_BEFORE_S
        ):
            return
    key = LocalKeySigner.generate()
    issued = ca.server_certificate(key.public_key(), BRIDGE_HOSTS, _serial(), now_s * 1000)
    key.save(paths.bridge_key)
    paths.bridge_cert.write_text(issued.chain_pem)
