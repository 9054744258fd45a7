"""The transport alone: TLS with a client certificate (security profile 3), against a local
server that requires one. Loopback only, a free port, certificates made for the test."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from websockets.asyncio.server import ServerConnection, serve

from simulator.errors import ConnectFailed
from simulator.station import Station
from simulator.transport import Transport, client_ssl_context

from .helpers import run

SUBPROTOCOL = "ocpp2.0.1"


def _issue(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
    **kind: Any,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer if issuer is not None else (name, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=kind.get("ca", False), path_length=None), critical=True)
    )
    if "ip" in kind:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(kind["ip"])]), critical=False)
    if "usage" in kind:
        builder = builder.add_extension(x509.ExtendedKeyUsage([kind["usage"]]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_file, key_file = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def _pki(directory: Path, client_cn: str) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    ca_key, server_key, client_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca = _issue("Test CSMS CA", ca_key, None, ca=True)
    issuer = (ca.subject, ca_key)
    server = _issue(
        "127.0.0.1", server_key, issuer, ip=ipaddress.ip_address("127.0.0.1"), usage=ExtendedKeyUsageOID.SERVER_AUTH
    )
    client = _issue(client_cn, client_key, issuer, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    ca_file, _ = _write(directory, "ca", ca, ca_key)
    server_cert, server_key_file = _write(directory, "server", server, server_key)
    client_cert, client_key_file = _write(directory, "client", client, client_key)
    return {
        "ca": ca_file,
        "server_cert": server_cert,
        "server_key": server_key_file,
        "client_cert": client_cert,
        "client_key": client_key_file,
    }


def _server_context(pki: dict[str, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki["server_cert"], pki["server_key"])
    context.load_verify_locations(pki["ca"])
    context.verify_mode = ssl.CERT_REQUIRED  # no client certificate, no connection
    return context


async def _answer_with_peer(ws: ServerConnection) -> None:
    """Say, in answer to each frame, whose client certificate the TLS handshake carried."""
    peer = ws.transport.get_extra_info("peercert") or {}
    subject = dict(item for rdn in peer.get("subject", ()) for item in rdn)
    async for _ in ws:
        await ws.send(f"peer {subject.get('commonName')}")


def _hooks(inbox: asyncio.Queue[str]) -> dict[str, Any]:
    """What the transport's owner gives it: frames go to ``inbox``; tasks run on the loop."""

    async def receive(text: str, reply: Any) -> None:
        inbox.put_nowait(text)

    def spawn(coro: Coroutine[Any, Any, Any], what: str) -> asyncio.Task[Any]:
        return asyncio.get_running_loop().create_task(coro, name=what)

    return {"receive": receive, "dropped": lambda _: None, "lost": lambda _: None, "spawn": spawn}


def test_transport_sends_its_client_certificate(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "CP-MTLS")

    async def body() -> None:
        async with serve(
            _answer_with_peer, "127.0.0.1", 0, ssl=_server_context(pki), subprotocols=[SUBPROTOCOL]
        ) as server:
            port = server.sockets[0].getsockname()[1]
            url = f"wss://127.0.0.1:{port}/ocpp"
            trust = ssl.create_default_context(cafile=str(pki["ca"]))

            # Without a client certificate, the server refuses the connection.
            inbox: asyncio.Queue[str] = asyncio.Queue()
            refused = Transport("CP-MTLS", SUBPROTOCOL, url, ssl_context=trust, **_hooks(inbox))
            with pytest.raises(ConnectFailed, match=r"certificate|handshake"):
                await _open_and_exchange(refused)

            transport = Transport(
                "CP-MTLS",
                SUBPROTOCOL,
                url,
                **_hooks(inbox),
                ssl_context=ssl.create_default_context(cafile=str(pki["ca"])),
                client_cert=str(pki["client_cert"]),
                client_key=str(pki["client_key"]),
            )
            await transport.open()
            assert transport.connected
            await transport.send("hello")
            assert await asyncio.wait_for(inbox.get(), 5) == "peer CP-MTLS"
            await transport.close()
            assert not transport.connected

    run(body)


async def _open_and_exchange(transport: Transport) -> None:
    # TLS 1.3: the server checks the client certificate after the client's handshake is
    # done, so the refusal may only show on the WebSocket handshake that follows.
    await transport.open()
    await transport.close()


def test_station_passes_its_client_certificate_to_the_transport(tmp_path: Path) -> None:
    pki = _pki(tmp_path, "CP-ST")

    async def body() -> None:
        async with serve(
            _answer_with_peer, "127.0.0.1", 0, ssl=_server_context(pki), subprotocols=[SUBPROTOCOL]
        ) as server:
            port = server.sockets[0].getsockname()[1]
            st = Station(
                "CP-ST",
                "2.0.1",
                f"wss://127.0.0.1:{port}/ocpp",
                ssl_context=ssl.create_default_context(cafile=str(pki["ca"])),
                client_cert=str(pki["client_cert"]),
                client_key=str(pki["client_key"]),
            )
            await st.connect()
            try:
                assert st.connected
                assert st.client_cert == str(pki["client_cert"])
            finally:
                await st.close()

    run(body)


def test_client_ssl_context() -> None:
    context = ssl.create_default_context()
    assert client_ssl_context(context, None, None) is context
    assert client_ssl_context(None, None, None) is None
    with pytest.raises(ValueError, match="client key needs a client certificate"):
        Transport("CP", SUBPROTOCOL, "wss://127.0.0.1:1", client_key="key.pem", **_hooks(asyncio.Queue()))
