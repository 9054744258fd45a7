"""TLS in the bridge: the server contexts, and one gate per socket that does the TLS handshake.

* :func:`server_context` (security profile 2 in the bridge, ``BRIDGE_TLS_CERT``) and
  :func:`client_certificate_context` (profile 3, ``BRIDGE_TLS_PORT``): TLS 1.2+; the latter asks
  for a client certificate (``CERT_OPTIONAL``: a profile 1/2 charger may still come without one
  and use Basic auth) and verifies any certificate sent against ``BRIDGE_CLIENT_CA``.
* :class:`TlsGate`: asyncio would do the handshake inside ``create_server(ssl=...)`` and drop a
  failed or stalled one silently (it logs them only in debug mode). The gate runs it with
  ``loop.start_tls`` instead: bounded by the handshake timeout, logged once with the remote
  address and OpenSSL's reason, and only a completed handshake reaches the WebSocket connection.
  Garbage, a wrong CA, plain HTTP on the TLS port or a client that stalls costs that socket
  only: nothing blocks, every socket has its own task.

Certificates and keys are files or, for ECS (which injects a secret as an environment
variable's value), the PEM itself: OpenSSL loads a key pair from files only, so an inline pair is
written to a private temporary directory for the load and removed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

from .client_certs import PeerCertificate
from .settings import is_pem

logger = logging.getLogger(__name__)

#: Seconds a TLS close_notify exchange may take (websockets' close timeout).
SHUTDOWN_TIMEOUT = 5.0


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with _as_files(cert, key) as (cert_file, key_file):
        context.load_cert_chain(cert_file, key_file)
    return context


def client_certificate_context(cert: str, key: str, client_ca: str) -> ssl.SSLContext:
    """Profile 3: asks for a client certificate and verifies it (chain, validity) against ``client_ca``."""
    context = server_context(cert, key)
    context.verify_mode = ssl.CERT_OPTIONAL
    if is_pem(client_ca):
        context.load_verify_locations(cadata=client_ca)
    else:
        context.load_verify_locations(cafile=client_ca)
    return context


@contextlib.contextmanager
def _as_files(cert: str, key: str) -> Iterator[tuple[str, str]]:
    if not is_pem(cert) and not is_pem(key):
        yield cert, key
        return
    with tempfile.TemporaryDirectory(prefix="bridge-tls-") as directory:  # 0700
        paths = []
        for name, value in (("cert.pem", cert), ("key.pem", key)):
            if not is_pem(value):
                paths.append(value)
                continue
            path = os.path.join(directory, name)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as file:
                file.write(value if value.endswith("\n") else value + "\n")
            paths.append(path)
        yield paths[0], paths[1]


def peer_certificate(transport: Any) -> PeerCertificate | None:
    """The verified client certificate of a TLS connection; None without TLS or without one."""
    if transport is None:
        return None
    ssl_object = transport.get_extra_info("ssl_object")
    if ssl_object is None:
        return None
    info = ssl_object.getpeercert()  # {} or None without a certificate; decoded only once verified
    if not info:
        return None
    return PeerCertificate.from_peercert(info)


FailureHandler = Callable[[str, BaseException], None]


class TlsListener:
    """The TLS handshakes under way on one listener: so that stopping the bridge can abort them."""

    def __init__(self, context: ssl.SSLContext, timeout: float, on_failure: FailureHandler):
        self.context = context
        self.timeout = timeout
        self.on_failure = on_failure
        self.pending: set[asyncio.Task[None]] = set()

    def gate(self, connection: asyncio.Protocol) -> TlsGate:
        return TlsGate(self, connection)

    def abort_pending(self) -> None:
        for task in list(self.pending):
            task.cancel()


class TlsGate(asyncio.Protocol):
    """The asyncio protocol of a socket until its TLS handshake completes; then ``connection``'s.

    Reading is paused from the first moment, so no byte reaches anything before ``start_tls``
    owns the socket.
    """

    def __init__(self, listener: TlsListener, connection: asyncio.Protocol):
        self._listener = listener
        self._connection = connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._handshake(transport))
        self._listener.pending.add(task)
        task.add_done_callback(self._listener.pending.discard)

    async def _handshake(self, transport: asyncio.Transport) -> None:
        listener = self._listener
        remote = _peer(transport)
        try:
            tls = await asyncio.get_running_loop().start_tls(
                transport,
                self._connection,
                listener.context,
                server_side=True,
                ssl_handshake_timeout=listener.timeout,
                ssl_shutdown_timeout=SHUTDOWN_TIMEOUT,
            )
        except asyncio.CancelledError:
            transport.abort()
            raise
        except (OSError, RuntimeError, ValueError) as exc:  # SSLError, TimeoutError, resets: this socket only
            transport.abort()
            listener.on_failure(remote, exc)
            return
        if tls is None:  # the socket closed meanwhile
            transport.abort()
            listener.on_failure(remote, ConnectionResetError("closed during the TLS handshake"))
            return
        self._connection.connection_made(tls)

    def connection_lost(self, exc: Exception | None) -> None:
        """Before ``start_tls`` takes the socket over; the handshake task notices it."""


def _peer(transport: asyncio.BaseTransport) -> str:
    address = transport.get_extra_info("peername")
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return "?"


def describe(exc: BaseException) -> str:
    """OpenSSL's reason (``TLSV1_ALERT_UNKNOWN_CA``, ``WRONG_VERSION_NUMBER``) or the error's text."""
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason)
    return str(exc) or type(exc).__name__
