"""Security profile 3 (DESIGN §9): TLS with client certificates, with real handshakes.

The certificates are made here with ``cryptography``: a test CA, the bridge's server
certificate, and client certificates (valid, expired, revoked, from another CA, for another
charger, never recorded). The registry is in memory; its certificate records play the CSMS's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import ssl
from dataclasses import dataclass, replace
from ipaddress import ip_address
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidMessage, InvalidStatus

from fargate_bridge import ChargerCredentials, DynamoChargerRegistry, InMemoryChargerRegistry, Settings
from fargate_bridge.auth import AuthPolicy, Verdict, decide
from fargate_bridge.client_certs import CertificateProblem, PeerCertificate, check_certificate, check_record
from fargate_bridge.errors import SettingsError
from fargate_bridge.registry import CertificateRecord, credentials_from_item
from fargate_bridge.settings import Env
from ocpp_core.passwords import hash_password

from .support import basic, bridge_settings, eventually, processor, running_bridge
from .test_bridge import new_id, run

NOW = dt.datetime.now(dt.UTC)
DAY = dt.timedelta(days=1)
SALT = b"0123456789abcdef"


# --- certificates -------------------------------------------------------------------------------
@dataclass
class Issued:
    cert: Path
    key: Path
    serial: str


class TestPki:
    """A CA, and certificates it (or another CA) issues, as PEM files under ``directory``."""

    def __init__(self, directory: Path, name: str = "Test CSMS CA"):
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.ca = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY)
            .not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.ca_pem = self.ca.public_bytes(serialization.Encoding.PEM).decode()
        self.ca_file = directory / f"{id(self)}-ca.pem"
        self.ca_file.write_text(self.ca_pem)

    def issue(
        self,
        cn: str,
        *,
        not_before: dt.datetime = NOW - DAY,
        not_after: dt.datetime = NOW + DAY,
        server: bool = False,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self.ca.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ip_address("127.0.0.1"))]),
                critical=False,
            )
        cert = builder.sign(self.key, hashes.SHA256())
        stem = self.directory / f"{cn}-{serial:x}"
        cert_file, key_file = stem.with_suffix(".pem"), stem.with_suffix(".key")
        chain = cert.public_bytes(serialization.Encoding.PEM).decode() + (self.ca_pem if server else "")
        cert_file.write_text(chain)
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return Issued(cert_file, key_file, f"{serial:x}")


TestPki.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test class


@pytest.fixture
def pki(tmp_path: Path) -> TestPki:
    return TestPki(tmp_path)


def client_context(pki: TestPki, client: Issued | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_file))
    if client is not None:
        context.load_cert_chain(str(client.cert), str(client.key))
    return context


def profile3_settings(mosquitto, pki: TestPki, **overrides):
    server = pki.issue("bridge", server=True)
    return bridge_settings(
        mosquitto,
        tls_port=0,
        tls_port_cert=str(server.cert),
        tls_port_key=str(server.key),
        client_ca=str(pki.ca_file),
        **{"handshake_timeout": 2.0, **overrides},
    )


def record(cp: str, status: str = "valid", not_after: dt.datetime = NOW + DAY) -> CertificateRecord:
    return CertificateRecord(charge_point_id=cp, status=status, not_after_ms=int(not_after.timestamp() * 1000))


def tls_url(bridge, cp: str) -> str:
    return f"wss://127.0.0.1:{bridge.tls_port}/ocpp/{cp}"


async def refusal(url: str, context: ssl.SSLContext | None, **kwargs) -> tuple[int, str, bool]:
    """(101, "", False) when the socket opens, else (status, body, whether a Basic challenge came)."""
    try:
        async with connect(url, subprotocols=["ocpp1.6"], ssl=context, open_timeout=5, **kwargs):
            return 101, "", False
    except InvalidStatus as exc:
        response = exc.response
        return response.status_code, response.body.decode(), "WWW-Authenticate" in response.headers


async def status_of(url: str, context: ssl.SSLContext | None, **kwargs) -> int:
    """101 when the socket opens, else the HTTP status of the refusal."""
    return (await refusal(url, context, **kwargs))[0]


async def tls_refused(url: str, context: ssl.SSLContext) -> bool:
    """The TLS handshake (or, in TLS 1.3, the first read after it) fails: no HTTP answer at all."""
    try:
        async with connect(url, subprotocols=["ocpp1.6"], ssl=context, open_timeout=5):
            return False
    except (OSError, InvalidMessage):
        return True


# --- end to end -------------------------------------------------------------------------------
def test_a_valid_certificate_admits_without_basic_auth_and_frames_flow(mosquitto, pki):
    cp = new_id()
    client = pki.issue(cp)
    registry = InMemoryChargerRegistry(
        {cp: ChargerCredentials(password_hash=hash_password("unused-password", SALT), security_profile=3)}
    )
    registry.put_certificate(cp, client.serial, record(cp))

    async def scenario():
        with processor(mosquitto) as proc:
            async with running_bridge(profile3_settings(mosquitto, pki), registry) as bridge:
                assert bridge.tls_port not in (None, bridge.port)
                async with connect(
                    tls_url(bridge, cp), subprotocols=["ocpp1.6"], ssl=client_context(pki, client)
                ) as ws:
                    await ws.send(json.dumps([2, "m1", "Heartbeat", {}]))
                    await eventually(lambda: proc.frames(cp), what="the frame published")
                assert json.loads(proc.frames(cp)[0]) == [2, "m1", "Heartbeat", {}]

    run(scenario())


def test_certificates_that_do_not_admit_are_refused_and_nothing_is_published(mosquitto, pki, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="fargate_bridge")
    cp, other = new_id(), new_id()
    registry = InMemoryChargerRegistry(
        {
            cp: ChargerCredentials(password_hash=hash_password("the-password-123", SALT)),
            other: ChargerCredentials(),
        }
    )
    someone_elses = pki.issue(other)
    registry.put_certificate(other, someone_elses.serial, record(other))
    revoked = pki.issue(cp)
    registry.put_certificate(cp, revoked.serial, record(cp, status="revoked"))
    unrecorded = pki.issue(cp)  # chains to the CA, but the CSMS never issued it
    misfiled = pki.issue(cp)  # recorded under another charger's id
    registry.put_certificate(cp, misfiled.serial, record(other))
    expired = pki.issue(cp, not_before=NOW - 3 * DAY, not_after=NOW - DAY)
    registry.put_certificate(cp, expired.serial, record(cp, not_after=NOW - DAY))
    foreign_pki = TestPki(tmp_path, "Another CA")
    foreign = foreign_pki.issue(cp)
    registry.put_certificate(cp, foreign.serial, record(cp))

    async def scenario():
        with processor(mosquitto) as proc:
            async with running_bridge(profile3_settings(mosquitto, pki), registry) as bridge:
                url = tls_url(bridge, cp)
                # Refused at the HTTP upgrade: 401.
                for certificate in (someone_elses, revoked, unrecorded, misfiled):
                    assert await status_of(url, client_context(pki, certificate)) == 401, certificate
                # A valid certificate decides alone: a right password does not rescue a wrong one.
                assert (
                    await status_of(
                        url,
                        client_context(pki, revoked),
                        additional_headers={"Authorization": basic(cp, "the-password-123")},
                    )
                    == 401
                )
                # Refused by OpenSSL during the TLS handshake: no HTTP at all.
                assert await tls_refused(url, client_context(pki, expired))
                assert await tls_refused(url, client_context(pki, foreign))
                await eventually(lambda: bridge.metrics.totals["HandshakeTimeouts"] >= 2, what="TLS failures counted")
                assert bridge.metrics.totals["AuthFailures"] == 5
                await asyncio.sleep(0.3)
                assert not proc.events(cp) and not proc.frames(cp)
        failures = [r for r in caplog.records if getattr(r, "event", None) == "tls_handshake_failed"]
        assert len(failures) == 2  # one line each
        reasons = [getattr(r, "reason", "") for r in caplog.records if getattr(r, "event", None) == "auth_failed"]
        assert CertificateProblem.WRONG_SUBJECT.value in reasons and CertificateProblem.REVOKED.value in reasons
        assert CertificateProblem.UNRECORDED.value in reasons

    run(scenario())


def test_without_a_certificate_basic_auth_applies_unless_the_charger_is_profile_3(mosquitto, pki):
    password = "the-password-123"
    basic_cp, strict_cp = new_id(), new_id()
    registry = InMemoryChargerRegistry(
        {
            basic_cp: ChargerCredentials(password_hash=hash_password(password, SALT), security_profile=2),
            strict_cp: ChargerCredentials(password_hash=hash_password(password, SALT), security_profile=3),
        }
    )
    strict_cert = pki.issue(strict_cp)
    registry.put_certificate(strict_cp, strict_cert.serial, record(strict_cp))

    async def scenario():
        async with running_bridge(profile3_settings(mosquitto, pki), registry) as bridge:
            no_cert = client_context(pki)
            good = {"Authorization": basic(basic_cp, password)}
            # Profile 1/2 on the certificate port, without a certificate: Basic auth as today.
            assert await status_of(tls_url(bridge, basic_cp), no_cert, additional_headers=good) == 101
            assert await status_of(tls_url(bridge, basic_cp), no_cert) == 401
            plain = f"ws://127.0.0.1:{bridge.port}/ocpp/"
            assert await status_of(plain + basic_cp, None, additional_headers=good) == 101
            # Profile 3: refused without a certificate on every port, even with the right password.
            strict = {"Authorization": basic(strict_cp, password)}
            assert await refusal(plain + strict_cp, None, additional_headers=strict) == (
                401,
                "Client certificate required\n",
                False,  # no Basic challenge: no password would help
            )
            assert (await refusal(tls_url(bridge, basic_cp), no_cert))[2]  # a wrong password: challenged
            assert await status_of(tls_url(bridge, strict_cp), no_cert, additional_headers=strict) == 401
            assert await status_of(tls_url(bridge, strict_cp), client_context(pki, strict_cert)) == 101

    run(scenario())


def test_a_revocation_is_seen_without_a_restart(mosquitto, pki):
    cp = new_id()
    client = pki.issue(cp)
    registry = InMemoryChargerRegistry({cp: ChargerCredentials(security_profile=3)})
    registry.put_certificate(cp, client.serial, record(cp))

    async def scenario():
        # The registry cache at its production default: certificate records still expire in 2 s.
        async with running_bridge(profile3_settings(mosquitto, pki, registry_cache_ttl=10.0), registry) as bridge:
            context = client_context(pki, client)
            assert await status_of(tls_url(bridge, cp), context) == 101
            registry.put_certificate(cp, client.serial, record(cp, status="revoked"))
            started = asyncio.get_running_loop().time()
            while await status_of(tls_url(bridge, cp), context) == 101:
                assert asyncio.get_running_loop().time() - started < 3.0, "revocation not seen"
                await asyncio.sleep(0.2)

    run(scenario())


def test_garbage_and_stalled_tls_handshakes_do_not_disturb_a_good_connection(mosquitto, pki, caplog):
    caplog.set_level(logging.INFO, logger="fargate_bridge")
    cp = new_id()
    client = pki.issue(cp)
    registry = InMemoryChargerRegistry()
    registry.put_certificate(cp, client.serial, record(cp))

    async def scenario():
        settings = profile3_settings(mosquitto, pki, handshake_timeout=1.0)
        async with running_bridge(settings, registry) as bridge:
            port = bridge.tls_port
            stalled = [await asyncio.open_connection("127.0.0.1", port) for _ in range(5)]
            garbage = []
            for payload in (b"\x16\x03\x01\x00\x05hello", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256))):
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(payload)
                garbage.append((reader, writer))
            # A TLS client that sends its ClientHello's first bytes only, then nothing.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            stalled.append((reader, writer))
            async with connect(tls_url(bridge, cp), subprotocols=["ocpp1.6"], ssl=client_context(pki, client)) as ws:
                assert ws.subprotocol == "ocpp1.6"
                # Every bad socket is closed by the bridge, the stalled ones at the handshake timeout.
                for reader, _ in garbage + stalled:
                    assert await asyncio.wait_for(reader.read(4096), 5) is not None
                    while await asyncio.wait_for(reader.read(4096), 5):
                        pass
                await ws.ping()  # still served
            for _, writer in garbage + stalled:
                writer.close()
            total = len(garbage) + len(stalled)
            await eventually(lambda: bridge.metrics.totals["HandshakeTimeouts"] == total, what="each counted")
        failures = [r for r in caplog.records if getattr(r, "event", None) == "tls_handshake_failed"]
        assert len(failures) == 9
        assert sum("taking longer" in r.getMessage() for r in failures) == 6

    run(scenario())


def test_inline_pem_settings_start_the_listener(mosquitto, pki):
    """ECS injects secrets as values: the profile-3 pair and the CA may be the PEM itself."""
    cp = new_id()
    client = pki.issue(cp)
    registry = InMemoryChargerRegistry()
    registry.put_certificate(cp, client.serial, record(cp))
    server = pki.issue("bridge", server=True)

    async def scenario():
        settings = bridge_settings(
            mosquitto,
            tls_port=0,
            tls_port_cert=server.cert.read_text(),
            tls_port_key=server.key.read_text(),
            client_ca=pki.ca_pem,
        )
        settings.check()
        async with running_bridge(settings, registry) as bridge:
            assert await status_of(tls_url(bridge, cp), client_context(pki, client)) == 101

    run(scenario())


# --- pure pieces ------------------------------------------------------------------------------
def peer(cns=("CP1",), before=-10.0, after=10.0) -> PeerCertificate:
    return PeerCertificate(tuple(cns), "abc", 1000.0 + before, 1000.0 + after)


def test_certificate_checks():
    assert check_certificate(peer(), "CP1", 1000.0) is None
    assert check_certificate(peer(("CP2",)), "CP1", 1000.0) is CertificateProblem.WRONG_SUBJECT
    assert check_certificate(peer(("CP1", "CP1")), "CP1", 1000.0) is CertificateProblem.WRONG_SUBJECT
    assert check_certificate(peer(()), "CP1", 1000.0) is CertificateProblem.WRONG_SUBJECT
    assert check_certificate(peer(before=5), "CP1", 1000.0) is CertificateProblem.NOT_YET_VALID
    assert check_certificate(peer(after=-5), "CP1", 1000.0) is CertificateProblem.EXPIRED
    assert check_record(None, "CP1", 0) is CertificateProblem.UNRECORDED
    assert check_record(CertificateRecord("CP2", "valid"), "CP1", 0) is CertificateProblem.UNRECORDED
    assert check_record(CertificateRecord("CP1", "revoked"), "CP1", 0) is CertificateProblem.REVOKED
    assert check_record(CertificateRecord("CP1", "valid", 5), "CP1", 6) is CertificateProblem.EXPIRED
    assert check_record(CertificateRecord("CP1", "valid", 5), "CP1", 5) is None


def test_peer_certificate_from_getpeercert():
    info = {
        "subject": ((("countryName", "DE"),), (("commonName", "CP-1"),)),
        "serialNumber": "00ABCDEF",
        "notBefore": "Jan  1 00:00:00 2026 GMT",
        "notAfter": "Jan  2 00:00:00 2026 GMT",
    }
    parsed = PeerCertificate.from_peercert(info)
    assert parsed is not None
    assert parsed.common_names == ("CP-1",) and parsed.serial == "abcdef"
    assert parsed.not_after_s - parsed.not_before_s == 86_400
    assert PeerCertificate.from_peercert({"subject": ()}) is None


def test_security_profile_from_the_registry_item():
    assert credentials_from_item({"registered": True, "securityProfile": "3"}).requires_certificate  # type: ignore[union-attr]
    assert credentials_from_item({"registered": True, "securityProfile": 2}).security_profile == 2  # type: ignore[union-attr]
    assert credentials_from_item({"registered": True, "securityProfile": "7"}).security_profile is None  # type: ignore[union-attr]
    assert credentials_from_item({"securityProfile": 3}) is not None  # set by PUT /chargers: a known charger
    strict = ChargerCredentials(password_hash="x", security_profile=3)
    assert decide(strict, "right", AuthPolicy()) is Verdict.CERTIFICATE_REQUIRED


class _FakeDynamo:
    def __init__(self, item):
        self.item = item
        self.calls: list[dict] = []

    def get_item(self, **kwargs):
        self.calls.append(kwargs)
        return {"Item": self.item} if self.item is not None else {}


def test_dynamo_reads_the_certificate_record_consistently():
    client = _FakeDynamo(
        {"chargePointId": {"S": "CP1"}, "status": {"S": "revoked"}, "notAfter": {"N": "1767225600000"}}
    )
    found = DynamoChargerRegistry("t", client).certificate("CP1", "abc")
    assert found == CertificateRecord("CP1", "revoked", 1767225600000)
    call = client.calls[0]
    assert call["Key"] == {"pk": {"S": "CP#CP1"}, "sk": {"S": "CERT#abc"}}
    assert call["ConsistentRead"] is True
    assert DynamoChargerRegistry("t", _FakeDynamo(None)).certificate("CP1", "abc") is None
    charger = _FakeDynamo({"registered": {"BOOL": True}, "securityProfile": {"N": "3"}})
    assert DynamoChargerRegistry("t", charger).lookup("CP1") == ChargerCredentials(security_profile=3)
    assert "securityProfile" in charger.calls[0]["ExpressionAttributeNames"].values()


def test_settings(pki, tmp_path):
    server = pki.issue("bridge", server=True)
    env = {
        Env.TLS_PORT: "9443",
        Env.TLS_PORT_CERT: str(server.cert),
        Env.TLS_PORT_KEY: str(server.key),
        Env.CLIENT_CA: str(pki.ca_file),
    }
    settings = Settings.from_env(env)
    assert (settings.tls_port, settings.client_ca) == (9443, str(pki.ca_file))
    assert settings.tls_cert is None  # BRIDGE_PORT stays plain
    # Without a pair of its own, the listener serves BRIDGE_TLS_CERT's.
    shared = Settings.from_env(
        {Env.TLS_PORT: "9443", Env.TLS_CERT: str(server.cert), Env.TLS_KEY: str(server.key), Env.CLIENT_CA: pki.ca_pem}
    )
    assert shared.tls_port_cert == str(server.cert) and shared.client_ca.startswith("-----BEGIN")
    for missing in (Env.TLS_PORT_CERT, Env.TLS_PORT_KEY, Env.CLIENT_CA):
        with pytest.raises(SettingsError) as error:
            Settings.from_env({k: v for k, v in env.items() if k != missing})
        assert error.value.variable == missing
    with pytest.raises(SettingsError) as error:
        Settings.from_env({**env, Env.CLIENT_CA: str(tmp_path / "nope.pem")})
    assert error.value.variable == Env.CLIENT_CA
    with pytest.raises(SettingsError) as error:
        Settings.from_env({Env.CLIENT_CA: str(pki.ca_file)})
    assert error.value.variable == Env.CLIENT_CA
    with pytest.raises(SettingsError):
        Settings.from_env({**env, Env.PORT: "9443"})
    assert replace(settings, tls_port=None).tls_port is None


# --- the operator API side: PUT /chargers/{id} securityProfile --------------------------------
def test_put_charger_sets_the_security_profile():
    from lambdas import runtime
    from tests.api.support import make_deps, request

    deps = make_deps()
    runtime.configure(deps)
    try:
        answer = request("PUT", "/chargers/CP1", {"securityProfile": 3})
        assert answer.status == 201 and answer.body["securityProfile"] == 3
        assert deps.store.get_charger("CP1")["securityProfile"] == 3  # type: ignore[index]
        assert request("GET", "/chargers/CP1").body["securityProfile"] == 3
        assert request("PUT", "/chargers/CP1", {"description": "bay"}).body["securityProfile"] == 3  # kept
        assert request("PUT", "/chargers/CP1", {"securityProfile": 1}).body["securityProfile"] == 1
        for bad in (0, 4, "3", True, None, 2.5):
            refused = request("PUT", "/chargers/CP1", {"securityProfile": bad})
            assert refused.status == 400, bad
            assert "securityProfile must be 1" in json.dumps(refused.body)
    finally:
        runtime.configure(None)
