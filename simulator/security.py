"""The station's own key and certificate: security profile 3 from the station's side.

OCPP 2.0.1 part 2 A02 / A03 (2.1 likewise; the 1.6 security whitepaper's same use cases): the
station makes a key pair, sends a certificate signing request in ``SignCertificate``, and
installs the chain the CSMS sends in ``CertificateSigned`` (leaf first, then the CA) if the leaf
certifies that key; it then connects with it as a TLS client certificate (profile 3). Here:

* :class:`StationKeys` is that state without I/O: an EC P-256 key per request (a renewal makes a
  new pair), the CSR (PKCS#10, subject CN = the charger id, signed with ECDSA-SHA256), the chain
  checked and kept. It uses ``asn1crypto`` and ``ecdsa``, the CSMS's own pure-Python pair
  (``lambdas.certificates.x509``), not ``cryptography``, which is a test dependency only;
* :class:`Security` is the station's part: SignCertificate sent and the CertificateSigned that
  follows awaited (bounded), key and chain written to files for :mod:`simulator.transport`
  (the key 0600), and one ``ssl.SSLContext`` per station for the reconnection;
* :func:`certificate_signed` is the handler of the CSMS's ``CertificateSigned`` (routed by
  :mod:`simulator.handlers`); the TriggerMessage of a renewal is in
  :mod:`simulator.device_handlers`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
import ssl
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import ecdsa
from asn1crypto import csr, keys, pem, x509
from ecdsa.util import sigencode_der

from ocpp_core.versions import OcppVersion

from .errors import CertificateFailed
from .ports import FollowUp, Payload, Reply, StationPort, status_reply

if TYPE_CHECKING:
    from .transport import Transport

logger = logging.getLogger(__name__)

#: The only certificate a station requests here (no ISO 15118 / V2G PKI).
CHARGING_STATION = "ChargingStationCertificate"
#: Keys waiting for their certificate, at most: a renewal triggered while another is pending
#: keeps both, so whichever CertificateSigned comes first is still recognised.
MAX_PENDING_KEYS = 4
_KEY_MODE = 0o600
_CHAIN_MODE = 0o644


class CertificateRejected(ValueError):
    """A CertificateSigned chain the station does not install: ``str()`` says why, in a line."""


@dataclass(frozen=True, slots=True)
class CertificateFiles:
    """Where the installed certificate is: the chain (PEM, leaf first) and its key (PEM, 0600)."""

    cert: Path
    key: Path


def _new_key() -> ecdsa.SigningKey:
    return ecdsa.SigningKey.generate(curve=ecdsa.NIST256p, hashfunc=hashlib.sha256)


def _public_der(key: ecdsa.SigningKey) -> bytes:
    return bytes(key.get_verifying_key().to_der())


def build_csr(key: ecdsa.SigningKey, common_name: str, organization: str | None = None) -> str:
    """A PKCS#10 request (RFC 2986) for ``key``, subject CN = ``common_name``, as PEM."""
    subject: dict[str, str] = {"common_name": common_name}
    if organization:
        subject["organization_name"] = organization  # 2.0.1 A02: SecurityCtrlr.OrganizationName
    info = csr.CertificationRequestInfo(
        {
            "version": "v1",
            "subject": x509.Name.build(subject),
            "subject_pk_info": keys.PublicKeyInfo.load(_public_der(key)),
            "attributes": [],
        }
    )
    signature = key.sign_deterministic(info.dump(), hashfunc=hashlib.sha256, sigencode=sigencode_der)
    request = csr.CertificationRequest(
        {
            "certification_request_info": info,
            "signature_algorithm": {"algorithm": "sha256_ecdsa"},
            "signature": signature,
        }
    )
    return str(pem.armor("CERTIFICATE REQUEST", request.dump()).decode("ascii"))


def parse_chain(text: str) -> list[x509.Certificate]:
    """The certificates of a PEM chain, in order; :class:`CertificateRejected` if it is none."""
    data = text.encode("ascii", errors="replace")
    if not pem.detect(data):
        raise CertificateRejected("not a PEM certificate chain")
    try:
        chain = [
            x509.Certificate.load(der) for kind, _, der in pem.unarmor(data, multiple=True) if kind == "CERTIFICATE"
        ]
        for cert in chain:
            cert.native  # noqa: B018 - parse it all now: a malformed one fails here, not later
    except (ValueError, TypeError) as exc:
        raise CertificateRejected(f"malformed certificate ({type(exc).__name__})") from None
    if not chain:
        raise CertificateRejected("no CERTIFICATE in the chain")
    return chain


class StationKeys:
    """The station's key pairs and the chain installed for one of them (no I/O)."""

    def __init__(self, charge_point_id: str, *, organization: str | None = None):
        self.charge_point_id = charge_point_id
        self.organization = organization
        #: The key of the installed certificate, and the chain (PEM text as received).
        self.key: ecdsa.SigningKey | None = None
        self.chain_pem: str | None = None
        self.leaf: x509.Certificate | None = None
        self._pending: dict[bytes, ecdsa.SigningKey] = {}

    def new_csr(self) -> tuple[bytes, str]:
        """A new key pair and its CSR: (the public key's DER, which names the request; the PEM)."""
        key = _new_key()
        public = _public_der(key)
        self._pending[public] = key
        while len(self._pending) > MAX_PENDING_KEYS:
            del self._pending[next(iter(self._pending))]
        return public, build_csr(key, self.charge_point_id, self.organization)

    def install(self, chain_pem: str, now_s: float | None = None) -> bytes:
        """Keep ``chain_pem`` if its leaf certifies one of our keys and is in its validity;
        returns that key's public DER. :class:`CertificateRejected` otherwise."""
        leaf = parse_chain(chain_pem)[0]
        public = bytes(leaf.public_key.dump())
        key = self._pending.get(public)
        if key is None and self.key is not None and _public_der(self.key) == public:
            key = self.key  # the same certificate again (a redelivered CertificateSigned)
        if key is None:
            raise CertificateRejected("the certificate is not for a key of this station")
        validity = leaf["tbs_certificate"]["validity"]
        now = time.time() if now_s is None else now_s
        if validity["not_after"].native.timestamp() <= now:
            raise CertificateRejected("the certificate has expired")
        self._pending.pop(public, None)
        self.key, self.chain_pem, self.leaf = key, chain_pem, leaf
        return public

    @property
    def serial(self) -> str | None:
        """The installed certificate's serial (lower-case hex, as the CSMS names it)."""
        return None if self.leaf is None else f"{self.leaf.serial_number:x}"

    def key_pem(self) -> bytes:
        if self.key is None:
            raise ValueError("no certificate installed")
        # SEC 1 ("EC PRIVATE KEY"): what every TLS stack reads; ecdsa's PKCS#8 is the v2 form
        # (RFC 5958 with the public key) that some readers (cryptography) refuse.
        return bytes(self.key.to_pem(format="ssleay"))


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically with ``data``, the file at ``mode`` whatever the umask."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), mode)  # before the first byte: a key is never readable by others
        out.write(data)
    os.replace(temporary, path)


class _Station(Protocol):
    id: str
    version: OcppVersion
    call_timeout: float

    async def call(self, action: str, payload: Payload, timeout: float | None = None) -> Payload: ...


class Security:
    """The station's certificate: requested, installed, written, and used to connect."""

    def __init__(self, station: _Station, *, directory: str | Path | None = None, organization: str | None = None):
        self._station = station
        self.keys = StationKeys(station.id, organization=organization)
        #: Where key and chain are written (None: a private temporary directory, made on first use).
        self.directory = Path(directory) if directory is not None else None
        #: The files of the installed certificate (None before the first install).
        self.files: CertificateFiles | None = None
        self._waiters: dict[bytes, asyncio.Future[None]] = {}
        self._context: ssl.SSLContext | None = None

    @property
    def installed(self) -> bool:
        return self.files is not None

    # ------------------------------------------------------------------ SignCertificate

    async def sign_certificate(self, timeout: float | None = None) -> Payload:
        """SignCertificate with a new key's CSR; if Accepted, wait (``timeout``, default the
        call timeout) until the CertificateSigned that follows is installed.

        Returns the SignCertificate answer (Rejected: nothing follows; ``statusInfo`` in 2.x
        says why). Raises :class:`CertificateFailed` if no certificate for the key came in time,
        or the one that came was refused; the errors of :meth:`Station.call`.
        """
        st = self._station
        public, request = self.keys.new_csr()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[public] = waiter  # before sending: CertificateSigned may overtake the answer
        payload: Payload = {"csr": request}
        if st.version.is_2x:
            payload["certificateType"] = CHARGING_STATION
        try:
            response = await st.call("SignCertificate", payload)
            if response.get("status") != "Accepted":
                return response
            wait = st.call_timeout if timeout is None else timeout
            try:
                async with asyncio.timeout(wait):
                    await waiter
            except TimeoutError:
                raise CertificateFailed(st.id, f"no CertificateSigned within {wait:g} s of SignCertificate") from None
            return response
        finally:
            self._waiters.pop(public, None)
            if waiter.done() and not waiter.cancelled():
                waiter.exception()  # retrieved: a refusal nobody waited for is not an asyncio warning
            waiter.cancel()

    def install(self, chain_pem: str) -> str | None:
        """Install a CertificateSigned chain: None if done (files written), else why not."""
        st = self._station
        try:
            public = self.keys.install(chain_pem)
        except CertificateRejected as exc:
            logger.warning("%s: CertificateSigned refused: %s", st.id, exc)
            for waiter in self._waiters.values():
                if not waiter.done():
                    waiter.set_exception(CertificateFailed(st.id, f"CertificateSigned refused: {exc}"))
            return str(exc)
        self.files = self._write_files()
        logger.info("%s: certificate %s installed (%s)", st.id, self.keys.serial, self.files.cert)
        done = self._waiters.get(public)
        if done is not None and not done.done():
            done.set_result(None)
        return None

    def _write_files(self) -> CertificateFiles:
        # The key first, then the chain; both synchronous, so no connection of ours opens between.
        directory = self._ensure_directory()
        stem = quote(self._station.id, safe="")
        files = CertificateFiles(cert=directory / f"{stem}.pem", key=directory / f"{stem}.key")
        _write(files.key, self.keys.key_pem(), _KEY_MODE)
        _write(files.cert, (self.keys.chain_pem or "").encode("ascii"), _CHAIN_MODE)
        return files

    def _ensure_directory(self) -> Path:
        if self.directory is None:
            self.directory = Path(tempfile.mkdtemp(prefix="ocpp-sim-cert-"))  # 0700
            weakref.finalize(self, shutil.rmtree, self.directory, True)
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory

    # ------------------------------------------------------------------ profile 3

    def ssl_context(self, ca_file: str | None = None, current: ssl.SSLContext | None = None) -> ssl.SSLContext:
        """The station's one TLS client context: trusts ``ca_file`` (else ``current``'s CAs,
        else the system's); the transport loads the certificate into it at each connection."""
        if self._context is None and current is not None:
            self._context = current  # the station's context so far (say, --ca-file for wss:// --url)
        if self._context is None:
            self._context = ssl.create_default_context(cafile=ca_file)
        elif ca_file is not None:
            self._context.load_verify_locations(ca_file)
        return self._context

    async def reconnect(self, transport: Transport, url: str, *, ca_file: str | None = None) -> None:
        """Close the connection and open one to ``url`` (wss://) with the installed certificate.

        Security profile 3 (2.0.1 part 2 A00.FR.4xx; 1.6 security whitepaper §2.3): TLS with a
        client certificate, which is the credential; no HTTP Basic auth. Later reconnections
        (backoff, Reset) go there too, with the certificate installed at that time.
        """
        if self.files is None:
            raise CertificateFailed(self._station.id, "no certificate installed (sign_certificate() first)")
        if not url.startswith("wss://"):
            raise ValueError(f"security profile 3 needs a wss:// URL, not {url!r}")
        context = self.ssl_context(ca_file, transport.ssl_context)
        await transport.close(1000, "security profile 3", "switching to security profile 3")
        transport.url = url
        transport.password = None
        transport.ssl_context = context
        transport.client_cert, transport.client_key = str(self.files.cert), str(self.files.key)
        await transport.open()


# ---------------------------------------------------------------------- the CSMS's call


def certificate_signed(st: StationPort, p: Payload) -> Reply:
    """CertificateSigned (2.0.1 A02/A03, 1.6 security extension): Accepted once installed."""
    kind = p.get("certificateType")
    reason = (
        f"{kind} is not a certificate this station requests"
        if kind not in (None, CHARGING_STATION)
        else st.security.install(p["certificateChain"])
    )
    if reason is None:
        return status_reply("Accepted")
    response: dict[str, Any] = {"status": "Rejected"}
    if st.version.is_2x:
        response["statusInfo"] = {"reasonCode": "InvalidCertificate", "additionalInfo": reason[:512]}
    return Reply(response)


def sign_certificate_follow_up(st: StationPort) -> FollowUp:
    """What follows an accepted TriggerMessage SignChargingStationCertificate (2.x) /
    ExtendedTriggerMessage SignChargePointCertificate (1.6): SignCertificate with a new key,
    and the CertificateSigned awaited (a failure is the follow-up's, logged by the station)."""

    async def run() -> None:
        await st.sign_certificate()

    return run
