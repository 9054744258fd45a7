"""The station's key and certificate (simulator.security): the CSR, CertificateSigned, the files,
and the reconnection with the certificate, against the fake CSMS. ``cryptography`` (a test
dependency) is the independent check and the test CA; the simulator itself does not use it."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from lambdas.certificates.x509 import review_csr
from ocpp_core.framing import CallResult
from ocpp_core.versions import OcppVersion
from simulator import cli
from simulator.errors import CertificateFailed, ConnectFailed
from simulator.scenario import ScenarioOptions, run_scenario
from simulator.security import Security, StationKeys, certificate_signed

from .fake_csms import FakeCsms
from .helpers import eventually, run, station

PEM = serialization.Encoding.PEM


class _Ca:
    """A test CA that signs CSRs, and its server certificate for 127.0.0.1."""

    def __init__(self, directory: Path):
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CSMS CA")])
        self.cert = self._build(self.name, self.key.public_key(), ca=True)
        self.file = directory / "ca.pem"
        self.file.write_bytes(self.cert.public_bytes(PEM))
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = self._build(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]),
            server_key.public_key(),
            ip=ipaddress.ip_address("127.0.0.1"),
        )
        self.server_cert, self.server_key = directory / "server.pem", directory / "server.key"
        self.server_cert.write_bytes(server.public_bytes(PEM))
        self.server_key.write_bytes(
            server_key.private_bytes(PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )

    def _build(self, subject: x509.Name, public_key: Any, *, ca: bool = False, **kind: Any) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(kind.get("not_after", now + datetime.timedelta(days=1)))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if "ip" in kind:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(kind["ip"])]), critical=False)
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        elif not ca:
            builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def sign(self, csr_pem: str, **kind: Any) -> str:
        """The chain CertificateSigned carries: leaf for the CSR's key and subject, then the CA."""
        request = x509.load_pem_x509_csr(csr_pem.encode())
        leaf = self._build(request.subject, request.public_key(), **kind)
        return (leaf.public_bytes(PEM) + self.cert.public_bytes(PEM)).decode()

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        context.load_verify_locations(self.file)
        context.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no connection
        return context


class _Stub:
    """What :class:`Security` and the handler use of a station."""

    def __init__(self, cp: str, version: OcppVersion = OcppVersion.V201):
        self.id = cp
        self.version = version
        self.call_timeout = 5.0
        self.security = Security(self)

    async def call(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        raise AssertionError("not expected to call")


# ---------------------------------------------------------------------- the CSR


def test_csr_verifies_and_names_the_station() -> None:
    keys = StationKeys("CP-SEC-1")
    _, first = keys.new_csr()
    request = x509.load_pem_x509_csr(first.encode())
    assert request.is_signature_valid
    assert request.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "CP-SEC-1"
    public_key = request.public_key()
    assert isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name == "secp256r1"
    assert isinstance(request.signature_hash_algorithm, hashes.SHA256)
    # What the CSMS checks (well-formed, key strength, proof of possession, CN) passes too.
    assert review_csr(first, "CP-SEC-1").common_name == "CP-SEC-1"
    # Each request is a new key pair.
    _, second = keys.new_csr()
    assert x509.load_pem_x509_csr(second.encode()).public_key() != public_key


def test_csr_may_carry_the_organization() -> None:
    _, text = StationKeys("CP-ORG", organization="Acme CPO").new_csr()
    request = x509.load_pem_x509_csr(text.encode())
    assert request.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Acme CPO"


# ---------------------------------------------------------------------- CertificateSigned


def test_a_chain_for_its_key_is_installed_and_written(tmp_path: Path) -> None:
    ca = _Ca(tmp_path)
    st = _Stub("CP-SEC-2")
    st.security.directory = tmp_path / "station"
    _, csr = st.security.keys.new_csr()
    chain = ca.sign(csr)
    answer = certificate_signed(st, {"certificateChain": chain, "certificateType": "ChargingStationCertificate"})
    assert answer.response == {"status": "Accepted"}
    files = st.security.files
    assert files is not None
    assert stat.S_IMODE(files.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.cert.stat().st_mode) & 0o022 == 0  # the chain: not writable by others
    assert files.cert.read_text() == chain
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    leaf = x509.load_pem_x509_certificate(files.cert.read_bytes())
    assert key.public_key() == leaf.public_key()
    assert st.security.keys.serial == f"{leaf.serial_number:x}"
    ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(files.cert, files.key)  # usable for TLS
    # The same CertificateSigned again (a redelivery) is still Accepted.
    assert certificate_signed(st, {"certificateChain": chain}).response == {"status": "Accepted"}


@pytest.mark.parametrize("version", [OcppVersion.V16, OcppVersion.V201], ids=lambda v: v.value)
def test_a_chain_for_another_key_is_rejected(tmp_path: Path, version: OcppVersion) -> None:
    ca = _Ca(tmp_path)
    st = _Stub("CP-SEC-3", version)
    st.security.directory = tmp_path / "station"
    st.security.keys.new_csr()
    _, foreign = StationKeys("CP-SEC-3").new_csr()  # same CN, another key
    answer = certificate_signed(st, {"certificateChain": ca.sign(foreign)})
    assert answer.response["status"] == "Rejected"
    if version.is_2x:
        assert answer.response["statusInfo"]["reasonCode"] == "InvalidCertificate"
        assert "not for a key of this station" in answer.response["statusInfo"]["additionalInfo"]
    else:
        assert answer.response == {"status": "Rejected"}  # 1.6: no statusInfo in the schema
    assert st.security.files is None and not (tmp_path / "station").exists()


@pytest.mark.parametrize(
    ("chain", "reason"),
    [
        ("not a certificate", "not a PEM certificate chain"),
        ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "malformed certificate"),
    ],
)
def test_a_chain_that_is_no_certificate_is_rejected(chain: str, reason: str) -> None:
    st = _Stub("CP-SEC-4")
    assert reason in (st.security.install(chain) or "")
    assert not st.security.installed


def test_an_expired_or_v2g_certificate_is_rejected(tmp_path: Path) -> None:
    ca = _Ca(tmp_path)
    st = _Stub("CP-SEC-5")
    _, csr = st.security.keys.new_csr()
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    assert st.security.install(ca.sign(csr, not_after=past)) == "the certificate has expired"
    v2g = certificate_signed(st, {"certificateChain": ca.sign(csr), "certificateType": "V2GCertificate"})
    assert v2g.response["status"] == "Rejected"
    assert not st.security.installed


# ---------------------------------------------------------------------- with a CSMS


def _signing_csms(ca: _Ca, tasks: set[asyncio.Task[Any]], *, sign: bool = True, **kwargs: Any) -> FakeCsms:
    """A fake CSMS that accepts SignCertificate and then sends CertificateSigned (``sign``)."""
    csms: FakeCsms

    def sign_certificate(cp: str, version: OcppVersion, unique_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        if sign:
            chain: dict[str, Any] = {"certificateChain": ca.sign(payload["csr"])}
            if version.is_2x:
                chain["certificateType"] = "ChargingStationCertificate"
            task = asyncio.get_running_loop().create_task(csms.call(cp, "CertificateSigned", chain))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return {"status": "Accepted"}

    csms = FakeCsms(responders={"SignCertificate": sign_certificate}, **kwargs)
    return csms


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_station_gets_a_certificate_and_reconnects_with_it(tmp_path: Path, version: str) -> None:
    ca = _Ca(tmp_path)
    tasks: set[asyncio.Task[Any]] = set()
    events: list[tuple[str, str]] = []

    async def body() -> None:
        async with (
            _signing_csms(ca, tasks) as plain,
            FakeCsms(ssl_context=ca.server_context()) as tls,
        ):
            st = station(plain, "CP-SEC-6", version, password="secret", on_event=lambda k, d: events.append((k, d)))
            await st.connect()
            try:
                await st.boot()
                response = await st.sign_certificate()
                assert response == {"status": "Accepted"}
                assert st.security.installed
                sent = plain.calls_of("CP-SEC-6", "SignCertificate")[0]
                assert ("certificateType" in sent) is (version != "1.6")
                await st.use_certificate(tls.url, ca_file=str(ca.file))
                assert st.endpoint == f"{tls.url}/CP-SEC-6"
                assert st.password is None  # profile 3: the certificate is the credential
                await tls.wait_connected("CP-SEC-6")
                assert (await st.boot())["status"] == "Accepted"
                assert not st.stopped and ("disconnect", "code 1000 security profile 3") not in events
                if version != "1.6":
                    assert (
                        st.model.get_variable(
                            {"component": {"name": "SecurityCtrlr"}, "variable": {"name": "SecurityProfile"}}
                        )["attributeValue"]
                        == "3"
                    )
            finally:
                await st.close()
            assert not plain.violations and not tls.violations

    run(body)


def test_a_refused_tls_reconnection_is_a_connect_error(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    ca, other = _Ca(tmp_path), _Ca(tmp_path / "other")
    tasks: set[asyncio.Task[Any]] = set()

    async def body() -> None:
        # The TLS endpoint trusts another CA: the station's certificate does not admit it.
        async with _signing_csms(ca, tasks) as plain, FakeCsms(ssl_context=other.server_context()) as tls:
            st = station(plain, "CP-SEC-7", "2.0.1")
            await st.connect()
            try:
                await st.sign_certificate()
                with pytest.raises(CertificateFailed, match="no certificate installed"):
                    await Security(st).reconnect(st.transport, tls.url)
                with pytest.raises(ConnectFailed):
                    await st.use_certificate(tls.url, ca_file=str(other.file))
                    await st.boot()  # TLS 1.3: the refusal may show only once the server reads
            finally:
                await st.close()

    run(body)


def test_sign_certificate_without_certificate_signed_times_out(tmp_path: Path) -> None:
    ca = _Ca(tmp_path)
    tasks: set[asyncio.Task[Any]] = set()

    async def body() -> None:
        async with _signing_csms(ca, tasks, sign=False) as csms:
            st = station(csms, "CP-SEC-8", "2.0.1")
            await st.connect()
            try:
                with pytest.raises(CertificateFailed, match=r"no CertificateSigned within 0\.2 s"):
                    await st.sign_certificate(timeout=0.2)
                assert not st.security.installed
            finally:
                await st.close()

    run(body)


def test_sign_certificate_fails_when_the_certificate_is_not_ours(tmp_path: Path) -> None:
    ca = _Ca(tmp_path)
    tasks: set[asyncio.Task[Any]] = set()

    async def body() -> None:
        csms: FakeCsms

        def sign_certificate(cp: str, version: OcppVersion, unique_id: str, payload: dict[str, Any]) -> dict[str, Any]:
            _, foreign = StationKeys(cp).new_csr()
            chain = {"certificateChain": ca.sign(foreign)}
            tasks.add(asyncio.get_running_loop().create_task(csms.call(cp, "CertificateSigned", chain)))
            return {"status": "Accepted"}

        csms = FakeCsms(responders={"SignCertificate": sign_certificate})
        async with csms:
            st = station(csms, "CP-SEC-9", "2.0.1")
            await st.connect()
            try:
                with pytest.raises(CertificateFailed, match="not for a key of this station"):
                    await st.sign_certificate(timeout=5)
            finally:
                await st.close()

    run(body)


@pytest.mark.parametrize(
    ("version", "action", "message"),
    [
        ("1.6", "ExtendedTriggerMessage", "SignChargePointCertificate"),
        ("2.0.1", "TriggerMessage", "SignChargingStationCertificate"),
    ],
)
def test_a_triggered_renewal_sends_sign_certificate(tmp_path: Path, version: str, action: str, message: str) -> None:
    ca = _Ca(tmp_path)
    tasks: set[asyncio.Task[Any]] = set()

    async def body() -> None:
        async with _signing_csms(ca, tasks) as csms:
            st = station(csms, "CP-SEC-10", version)
            await st.connect()
            try:
                answer = await csms.call("CP-SEC-10", action, {"requestedMessage": message})
                assert isinstance(answer, CallResult) and answer.payload == {"status": "Accepted"}
                await csms.wait_for_call("CP-SEC-10", "SignCertificate")
                await eventually(lambda: st.security.installed)
                first = st.security.keys.serial
                await csms.call("CP-SEC-10", action, {"requestedMessage": message})
                await eventually(lambda: st.security.keys.serial != first)  # renewed: a new certificate
                assert not csms.violations
            finally:
                await st.close()

    run(body)


# ---------------------------------------------------------------------- scenario and command line


def test_scenario_with_security_profile_3(tmp_path: Path) -> None:
    ca = _Ca(tmp_path)
    tasks: set[asyncio.Task[Any]] = set()

    async def body() -> None:
        async with _signing_csms(ca, tasks) as plain, FakeCsms(ssl_context=ca.server_context()) as tls:
            options = ScenarioOptions(
                charge_point_id="CP-SEC-11",
                version=OcppVersion.V201,
                url=plain.url,
                samples=1,
                sample_interval=0,
                call_timeout=5,
                security_profile=3,
                tls_url=tls.url,
                ca_file=str(ca.file),
            )
            station = await run_scenario(options)
            assert station.security.installed
            assert plain.actions("CP-SEC-11") == ["BootNotification", "SignCertificate"]
            # On the TLS endpoint: boot again, then the usual session.
            assert tls.actions("CP-SEC-11")[:2] == ["BootNotification", "StatusNotification"]
            assert "TransactionEvent" in tls.actions("CP-SEC-11")

    run(body)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--security-profile", "3"], "needs --tls-url"),
        (["--tls-url", "wss://127.0.0.1:9443/ocpp"], "is for --security-profile 3"),
        (["--security-profile", "3", "--tls-url", "ws://127.0.0.1:9000/ocpp"], "must be a wss:// URL"),
    ],
)
def test_cli_checks_the_profile_3_options(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["scenario", "--id", "CP1", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
