"""The station's WebSocket connection: open, read, send, close, reconnect with backoff.

:class:`Transport` moves text frames and knows nothing of OCPP actions: it offers the
subprotocol it is given (the OCPP version), authenticates with HTTP Basic when it has a
password (security profiles 1 and 2) and with a client certificate when it has one (security
profile 3), and hands each text frame it reads to ``receive``. It holds one connection at a
time. What a lost connection means (reconnect, or stop) is its owner's call: ``lost`` says it
happened, ``dropped`` says every time the current connection is forgotten (the owner fails
the call waiting on it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import random
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from functools import partial
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from .errors import ConnectFailed, HandshakeRejected, SubprotocolRefused

logger = logging.getLogger(__name__)

#: Sends one text frame on the connection a frame was read from.
Reply = Callable[[str], Awaitable[None]]
#: ``receive(text, reply)``: a text frame read, and how to answer on that same connection.
Receive = Callable[[str, Reply], Awaitable[None]]
#: ``on_frame(direction, text)``: direction is ``"->"`` (sent) or ``"<-"`` (received).
FrameCallback = Callable[[str, str], None]
#: ``on_event(kind, detail)``: see :data:`simulator.station.EVENT_KINDS`.
EventCallback = Callable[[str, str], None]
#: ``spawn(coroutine, name)``: run in a background task the owner cancels when it closes.
Spawn = Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]]

#: The longest wait between two reconnect attempts, in seconds.
MAX_RECONNECT_DELAY = 30.0


def client_ssl_context(
    ssl_context: ssl.SSLContext | None, client_cert: str | None, client_key: str | None
) -> ssl.SSLContext | None:
    """The context to connect with: ``ssl_context`` holding the client certificate, if any.

    Security profile 3 (1.6 security whitepaper §2.3, 2.0.1 part 2 A00.FR.400): TLS with a
    client-side certificate. The certificate (PEM, with its chain; ``client_key``: its private
    key, if not in the same file) is loaded into ``ssl_context``, or into a default context
    that verifies the server with the system CAs. Without a certificate the context is left
    as it is (None: the library's default for wss:// URLs).
    """
    if client_cert is None:
        return ssl_context
    context = ssl_context if ssl_context is not None else ssl.create_default_context()
    context.load_cert_chain(client_cert, client_key)
    return context


class Transport:
    """One WebSocket connection at a time to ``url``/``name`` (see :attr:`endpoint`)."""

    def __init__(
        self,
        name: str,
        subprotocol: str,
        url: str,
        *,
        receive: Receive,
        dropped: Callable[[str], None],
        lost: Callable[[str], None],
        spawn: Spawn,
        password: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        open_timeout: float = 10.0,
        ping_interval: float | None = 30.0,
        reconnect_attempts: int = 10,
        reconnect_delay: float = 1.0,
        on_frame: FrameCallback | None = None,
        on_event: EventCallback | None = None,
    ):
        #: The charger id: the last path segment, the Basic auth user, the name in the logs.
        self.name = name
        self.subprotocol = subprotocol
        self.url = url
        self.password = password
        if client_key is not None and client_cert is None:
            raise ValueError("a client key needs a client certificate")
        #: TLS settings for wss:// (None: verify the server with the system CAs).
        self.ssl_context = ssl_context
        #: A client certificate (PEM file) and its key, loaded at each :meth:`open` (so a new
        #: one installed meanwhile is used on the next connection).
        self.client_cert = client_cert
        self.client_key = client_key
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_delay = reconnect_delay
        self.on_frame = on_frame
        self.on_event = on_event
        self._receive = receive
        self._dropped = dropped
        self._lost = lost
        self._spawn = spawn
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()

    @property
    def endpoint(self) -> str:
        """The WebSocket URL: the prefix, then the percent-encoded charger id (DESIGN §3)."""
        return f"{self.url.rstrip('/')}/{quote(self.name, safe='')}"

    @property
    def connected(self) -> bool:
        return self._ws is not None

    # ------------------------------------------------------------------ open

    async def open(self) -> None:
        """Open the WebSocket. Raises :class:`ConnectFailed` (or a subclass) with a clear reason."""
        headers: dict[str, str] = {}
        if self.password is not None:
            # Security profile 1/2: HTTP Basic, user = charger id (1.6 security whitepaper §2.1.1,
            # 2.0.1 part 2 A00.FR.203).
            token = base64.b64encode(f"{self.name}:{self.password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        url = self.endpoint
        # wss:// (security profile 2): websockets verifies the server with the system CAs
        # unless given a context (say, one that trusts a local self-signed certificate).
        context = client_ssl_context(self.ssl_context, self.client_cert, self.client_key)
        # Only for wss://: a context given for a later TLS endpoint (--ca-file with a ws:// --url)
        # is no error on a plain one (websockets refuses ssl= with ws://).
        secure = url.lower().startswith("wss://")
        extra: dict[str, Any] = {"ssl": context} if context is not None and secure else {}
        try:
            ws = await connect(
                url,
                subprotocols=[Subprotocol(self.subprotocol)],
                additional_headers=headers,
                # OCPP chargers do not negotiate permessage-deflate, and a zlib context per
                # connection would cost a thousand-station load run hundreds of MB.
                compression=None,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_interval,
                close_timeout=5,
                # A station talks to the CSMS it was given, not through an environment proxy.
                proxy=None,
                user_agent_header="ocpp-simulator",
                **extra,
            )
        except InvalidStatus as exc:
            raise HandshakeRejected(url, exc.response.status_code, exc.response.reason_phrase) from None
        except InvalidURI as exc:
            raise ConnectFailed(url, f"invalid URL ({exc})") from None
        except InvalidHandshake as exc:
            raise ConnectFailed(url, f"WebSocket handshake failed ({exc})") from None
        except TimeoutError:
            raise ConnectFailed(url, f"timed out after {self.open_timeout:g} s") from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            if isinstance(exc, ConnectionRefusedError):
                reason = "connection refused (is the CSMS running?)"
            raise ConnectFailed(url, reason) from None
        if ws.subprotocol != self.subprotocol:
            # RFC 6455 §4.1: a server that selects none of our subprotocols did not agree to
            # speak OCPP with us; go no further.
            await ws.close(1002, "subprotocol not negotiated")
            raise SubprotocolRefused(url, self.subprotocol, ws.subprotocol)
        self._ws = ws
        self._connected.set()
        self._spawn(self._read(ws), "reader")
        logger.info("%s connected to %s (%s)", self.name, url, self.subprotocol)

    async def reconnect(self, keep_trying: Callable[[], bool]) -> bool:
        """Reopen with exponential backoff and jitter (many stations must not reconnect in
        step), while ``keep_trying()``; False once the attempts are spent or it says stop."""
        delay = self.reconnect_delay
        for attempt in range(1, self.reconnect_attempts + 1):
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            if not keep_trying():
                return False
            try:
                await self.open()
                return True
            except ConnectFailed as exc:
                logger.warning("%s: reconnect attempt %d failed: %s", self.name, attempt, exc.reason)
                self._event("reconnect_failed", exc.reason)
            delay = min(delay * 2, MAX_RECONNECT_DELAY)
        logger.error("%s: giving up after %d reconnect attempts", self.name, self.reconnect_attempts)
        return False

    async def wait_connected(self, timeout: float, unless: asyncio.Event) -> None:
        """Until connected, ``unless`` is set, or ``timeout``."""
        waiters = [asyncio.ensure_future(self._connected.wait()), asyncio.ensure_future(unless.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    # ------------------------------------------------------------------ close

    async def close(self, code: int = 1000, reason: str = "", detail: str | None = None) -> None:
        """Close the current connection (if any) and forget it (``detail``: why, for
        :attr:`dropped`; the close reason by default)."""
        ws = self._ws
        # Forgotten first: the reader, ending with the closing handshake, must not take our own
        # close for a lost connection (its owner would reconnect, or stop).
        self._drop(ws, reason if detail is None else detail)
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close(code, reason)

    def _drop(self, ws: ClientConnection | None, detail: str) -> None:
        """Forget ``ws`` (if current), and say so."""
        if ws is None or self._ws is not ws:
            return
        self._ws = None
        self._connected.clear()
        self._dropped(detail)

    # ------------------------------------------------------------------ frames

    async def send(self, text: str) -> None:
        """Send on the current connection; a connection found closed is dropped (no error)."""
        ws = self._ws
        if ws is None:
            return  # the caller checked; nothing to send on
        self._emit("->", text)
        try:
            await ws.send(text)
        except ConnectionClosed:
            self._drop(ws, "connection closed")

    async def _send_on(self, ws: ClientConnection, text: str) -> None:
        self._emit("->", text)
        with contextlib.suppress(ConnectionClosed):
            await ws.send(text)

    async def _read(self, ws: ClientConnection) -> None:
        detail = "connection closed"
        reply = partial(self._send_on, ws)
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    # OCPP-J is text only (1.6 §3, 2.0.1 part 4 §3.3).
                    self._event("bad_frame", f"binary frame of {len(message)} bytes ignored")
                    continue
                try:
                    self._emit("<-", message)
                    await self._receive(message, reply)
                except ConnectionClosed:
                    raise
                except Exception:  # a bug of ours: log it, keep reading (the CSMS is not at fault)
                    logger.exception("%s: could not process %.200s", self.name, message)
        except ConnectionClosed:
            pass
        finally:
            if ws.close_code is not None:
                detail = f"code {ws.close_code}" + (f" {ws.close_reason}" if ws.close_reason else "")
            lost = self._ws is ws
            self._drop(ws, detail)
            if lost:
                self._lost(detail)

    def _emit(self, direction: str, text: str) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s %s", self.name, direction, text)
        if self.on_frame is not None:
            self.on_frame(direction, text)

    def _event(self, kind: str, detail: str) -> None:
        if self.on_event is not None:
            self.on_event(kind, detail)
