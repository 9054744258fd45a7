"""The bridge: a websockets server whose connections are :class:`ChargerSession`s.

:class:`Bridge` composes the pure pieces (``handshake``, ``auth`` policy, ``throttle``) with
the I/O (websockets, awscrt, the registry). ``process_request`` is the one place where a
handshake is answered with an HTTP response: health check, 400, 401, 503.

Listeners: ``BRIDGE_PORT`` (plain, or TLS with ``BRIDGE_TLS_CERT``: profile 2), optionally
``BRIDGE_PLAIN_PORT`` next to TLS, and ``BRIDGE_TLS_PORT`` (profile 3: TLS asking for client
certificates). Every TLS handshake goes through a :class:`~fargate_bridge.tls.TlsGate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import http
import json
import logging
import signal
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from websockets.asyncio.server import Server, ServerConnection
from websockets.asyncio.server import serve as websockets_serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from ocpp_core.ids import charge_point_id_from_path
from ocpp_core.versions import SUBPROTOCOL_PREFERENCE

from . import client_certs, tls
from . import metrics as m
from .auth import Authenticator, AuthPolicy, Verdict
from .handshake import Admission, Rejection, evaluate_request, is_health_check, is_liveness_check
from .lifecycle import CLOSE_GOING_AWAY, DEFAULT_RETRY, REASON_SHUTDOWN, SubscribeRetry
from .metrics import Metrics
from .mqtt import LoopPoster, MqttFactory
from .registry import ChargerRegistry, DynamoChargerRegistry, InMemoryChargerRegistry, RegistryReader
from .session import ChargerSession
from .settings import Settings
from .throttle import FailureBackoff, MinInterval, TokenBucket
from .topics import naming

logger = logging.getLogger(__name__)

#: IoT Core accepts one CONNECT per second per client id (DESIGN §7).
CLIENT_ID_CONNECT_INTERVAL = 1.0
#: How long a broker reachability probe result is reused by /health.
HEALTH_CACHE_SECONDS = 1.0


def registry_from_settings(settings: Settings) -> ChargerRegistry:
    if settings.registry_table:
        return DynamoChargerRegistry(settings.registry_table)
    return InMemoryChargerRegistry()


class BridgeConnection(ServerConnection):
    """A server connection that carries its admission and counts itself while it lives.

    It also notices an opening handshake that never completed (no request, or one still being
    authenticated, at ``BRIDGE_HANDSHAKE_TIMEOUT``): websockets aborts those silently, so the
    bridge logs and counts each one here.
    """

    def __init__(self, protocol: ServerProtocol, server: Server, *, bridge: Bridge, **kwargs: Any):
        super().__init__(protocol, server, **kwargs)
        self.bridge = bridge
        self.admission: Admission | None = None
        self.answered = False  # process_request ran to an answer (a response or an admission)

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        if self.admission is not None:
            self.bridge._admitted -= 1
        elif not self.answered:
            self.bridge.handshake_abandoned(self)


class Bridge:
    """Start with :meth:`start`, stop with :meth:`stop` (drains), or run :meth:`serve_forever`."""

    def __init__(
        self,
        settings: Settings,
        registry: ChargerRegistry | None = None,
        *,
        metrics_stream: TextIO | None = None,
        subscribe_retry: SubscribeRetry = DEFAULT_RETRY,
    ):
        self.settings = settings
        self.naming = naming(settings)
        self.subscribe_retry = subscribe_retry
        self.registry = registry if registry is not None else registry_from_settings(settings)
        self.metrics = Metrics(
            settings.metrics_namespace, stream=metrics_stream, gauge=lambda: len(self.sessions), stage=settings.stage
        )
        self.metrics.set_gauge(lambda: 1 if self._health[1] else 0, m.BROKER_REACHABLE)
        # Registry reads and password hashes block: they get threads of their own, sized for a
        # storm, instead of Python's default pool (min(32, cores + 4) threads, shared with
        # everything else that calls to_thread).
        self._executor = ThreadPoolExecutor(settings.registry_threads, thread_name_prefix="bridge-registry")
        self.reader = RegistryReader(self.registry, ttl=settings.registry_cache_ttl, executor=self._executor)
        self.authenticator = Authenticator(
            self.reader,
            AuthPolicy(settings.unknown_chargers, settings.require_password),
            # The delay must stay well inside the handshake timeout.
            backoff=FailureBackoff(cap=min(4.0, settings.handshake_timeout / 3)),
            executor=self._executor,
        )
        self.sessions: dict[str, ChargerSession] = {}
        self._admitted = 0
        self._bucket = TokenBucket(settings.mqtt_connect_rate, settings.mqtt_connect_burst)
        self._per_id: MinInterval[str] = MinInterval(CLIENT_ID_CONNECT_INTERVAL)
        self._server: Server | None = None
        self._plain_server: Server | None = None
        self._tls_server: Server | None = None
        self._tls_listeners: list[tls.TlsListener] = []
        self._metrics_task: asyncio.Task[None] | None = None
        self._health: tuple[float, bool] = (0.0, False)
        self._health_probe: asyncio.Task[bool] | None = None
        self._stopping = False
        self._stopped: asyncio.Event | None = None
        self.mqtt: MqttFactory
        self.port: int = settings.port
        self.plain_port: int | None = None
        self.tls_port: int | None = None

    # --- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self.mqtt = MqttFactory(self.settings, LoopPoster(loop))
        s = self.settings
        main_tls: tls.TlsListener | None = None
        if s.tls_cert is not None and s.tls_key is not None:
            # Security profile 2 without a load balancer in front: terminate TLS here.
            main_tls = self._tls_listener(tls.server_context(s.tls_cert, s.tls_key))
        client_tls: tls.TlsListener | None = None
        if s.tls_port is not None:
            assert s.tls_port_cert is not None and s.tls_port_key is not None and s.client_ca is not None
            client_tls = self._tls_listener(
                tls.client_certificate_context(s.tls_port_cert, s.tls_port_key, s.client_ca)
            )

        def listen(port: int, gate: tls.TlsListener | None) -> Any:
            def create_connection(protocol: ServerProtocol, server: Server, **kwargs: Any) -> Any:
                connection = BridgeConnection(protocol, server, bridge=self, **kwargs)
                # With TLS, the gate is the socket's protocol until the handshake completes.
                return connection if gate is None else gate.gate(connection)

            return websockets_serve(
                self._handle,
                s.host,
                port,
                subprotocols=[Subprotocol(v.value) for v in SUBPROTOCOL_PREFERENCE],
                process_request=self._process_request,
                # OCPP chargers rarely negotiate permessage-deflate, and its buffers would cost
                # far more memory per connection than everything else here.
                compression=None,
                open_timeout=s.handshake_timeout,
                ping_interval=s.ping_interval,
                ping_timeout=s.ping_timeout,
                close_timeout=5.0,
                max_size=s.max_frame_bytes,
                max_queue=16,
                create_connection=create_connection,  # type: ignore[arg-type]  # a TlsGate is no ServerConnection
                server_header=None,
                # A storm of chargers opens sockets faster than the loop accepts them: with
                # websockets' default backlog (100) the kernel drops the overflow's handshakes.
                backlog=s.listen_backlog,
            )

        self._server = await listen(s.port, main_tls)
        self.port = _bound_port(self._server, s.port)
        if main_tls is not None and s.plain_port is not None:
            # Secure by default: a plain listener next to TLS only when asked (BRIDGE_PLAIN_PORT).
            self._plain_server = await listen(s.plain_port, None)
            self.plain_port = _bound_port(self._plain_server, s.plain_port)
        if client_tls is not None and s.tls_port is not None:
            self._tls_server = await listen(s.tls_port, client_tls)
            self.tls_port = _bound_port(self._tls_server, s.tls_port)
        self._metrics_task = asyncio.create_task(self._publish_metrics())
        logger.info(
            "bridge listening on %s://%s:%s%s%s, broker %s:%s (auth %s)",
            "wss" if main_tls else "ws",
            s.host,
            self.port,
            f" and ws://{s.host}:{self.plain_port}" if self.plain_port is not None else "",
            f" and wss://{s.host}:{self.tls_port} (client certificates)" if self.tls_port is not None else "",
            s.broker_host,
            s.mqtt_port,
            s.mqtt_auth.value,
        )

    async def stop(self, reason: str = REASON_SHUTDOWN) -> None:
        """Stop accepting, close every socket with 1001, publish the disconnections, stop MQTT."""
        if self._stopping:
            if self._stopped is not None:
                await self._stopped.wait()
            return
        self._stopping = True
        started = time.monotonic()
        server = self._server
        count = len(self.sessions)
        logger.info("bridge stopping: closing %s connections", count)
        servers = [srv for srv in (server, self._plain_server, self._tls_server) if srv is not None]
        for listener in self._tls_listeners:
            listener.abort_pending()
        try:
            if servers:
                for session in list(self.sessions.values()):
                    session.shut_down(reason)
                for srv in servers:
                    srv.close(close_connections=True, code=CLOSE_GOING_AWAY, reason=reason)
                try:
                    await asyncio.wait_for(
                        asyncio.gather(*(srv.wait_closed() for srv in servers)), self.settings.drain_timeout
                    )
                except TimeoutError:
                    logger.warning("drain timed out after %.1f s: aborting what is left", self.settings.drain_timeout)
                    self._abort_all()
        finally:
            self._executor.shutdown(wait=False, cancel_futures=True)
            if self._metrics_task is not None:
                self._metrics_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._metrics_task
            self.metrics.flush()
            logger.info("bridge stopped in %.1f s", time.monotonic() - started)
            if self._stopped is not None:
                self._stopped.set()

    def _abort_all(self) -> None:
        for session in list(self.sessions.values()):
            session.abort()

    async def wait_stopped(self) -> None:
        assert self._stopped is not None, "start() first"
        await self._stopped.wait()

    async def serve_forever(self, stop_signals: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGINT)) -> None:
        """Start, run until one of ``stop_signals``, then drain. For ``python -m fargate_bridge``."""
        loop = asyncio.get_running_loop()
        stop_requested = asyncio.Event()
        for sig in stop_signals:
            loop.add_signal_handler(sig, stop_requested.set)
        await self.start()
        try:
            await stop_requested.wait()
            logger.info("stop signal received")
        finally:
            for sig in stop_signals:
                loop.remove_signal_handler(sig)
            await self.stop()

    # --- sessions ------------------------------------------------------------------------------
    async def connect_slot(self, charge_point_id: str) -> None:
        """Wait for a turn to CONNECT: per client id first, then the task's rate (token bucket).

        In that order, a charger reconnecting in a tight loop only waits on its own id: each of
        its sockets is replaced (and its wait cancelled) before it takes one of the tokens the
        other chargers' boots need, and the waits it gave up never push its next turn back.
        """
        while (wait := self._per_id.wait(charge_point_id)) > 0:
            await asyncio.sleep(wait)
        self._per_id.mark(charge_point_id)
        delay = self._bucket.reserve()
        if delay > 0:
            await asyncio.sleep(delay)

    def session_ended(self, session: ChargerSession) -> None:
        if self.sessions.get(session.charge_point_id) is session:
            del self.sessions[session.charge_point_id]

    def handshake_abandoned(self, connection: BridgeConnection) -> None:
        """A socket closed before its opening handshake was answered: timed out or abandoned."""
        self.metrics.incr(m.HANDSHAKE_TIMEOUTS)
        request = connection.request
        logger.info(
            "handshake not completed from %s (%s)",
            _remote(connection),
            f"request for {request.path[:200]} not answered in time" if request is not None else "no request",
            extra={"event": "handshake_timeout", "remote": _remote(connection)},
        )

    def _tls_listener(self, context: ssl.SSLContext) -> tls.TlsListener:
        listener = tls.TlsListener(context, self.settings.handshake_timeout, self.tls_handshake_failed)
        self._tls_listeners.append(listener)
        return listener

    def tls_handshake_failed(self, remote: str, exc: BaseException) -> None:
        """A TLS handshake failed (garbage, wrong CA, expired certificate...) or stalled: one line each."""
        self.metrics.incr(m.HANDSHAKE_TIMEOUTS)  # a socket gone before its handshake was answered
        logger.info(
            "TLS handshake failed from %s: %s",
            remote,
            tls.describe(exc),
            extra={"event": "tls_handshake_failed", "remote": remote, "reason": tls.describe(exc)},
        )

    @property
    def connected_count(self) -> int:
        return len(self.sessions)

    async def _handle(self, ws: ServerConnection) -> None:
        admission = getattr(ws, "admission", None)
        if admission is None:  # cannot happen: process_request admits every socket that opens
            await ws.close(1011, "not admitted")
            return
        try:
            cp = admission.charge_point_id
            previous = self.sessions.get(cp)
            session = ChargerSession(self, ws, admission, predecessor=previous)
            self.sessions[cp] = session
            if previous is not None:
                self.metrics.incr(m.TAKE_OVERS)
                logger.info(
                    "charger %s reconnected: replacing connection %s",
                    cp,
                    previous.connection_id,
                    extra={"chargePointId": cp, "event": "takeover"},
                )
                previous.replace()
            await session.run()
        except Exception:
            logger.exception("connection of %s failed", admission.charge_point_id)

    # --- handshake -----------------------------------------------------------------------------
    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        response = await self._decide_request(connection, request)
        if isinstance(connection, BridgeConnection):
            connection.answered = True
        return response

    async def _decide_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if is_liveness_check(request.path):
            return self._liveness_response()
        if is_health_check(request.path):
            return await self._health_response()
        decision = evaluate_request(
            request.path, request.headers.get_all("Sec-WebSocket-Protocol"), request.headers.get("Authorization")
        )
        remote = _remote(connection)
        if isinstance(decision, Rejection):
            return self._reject(connection, decision, remote, request.path, charge_point_id_from_path(request.path))
        cp = decision.charge_point_id
        if self._stopping:
            return self._reject(connection, Rejection(503, "Bridge shutting down"), remote, request.path, cp)
        if self._admitted >= self.settings.max_connections:
            return self._reject(
                connection, Rejection(503, "Too many connections on this bridge task"), remote, request.path, cp
            )
        peer = tls.peer_certificate(connection.transport)
        if peer is not None:
            # Security profile 3: a certificate presented decides alone; Basic auth is not looked at.
            problem = await client_certs.verify(self.reader, cp, peer, time.time())
            if problem is client_certs.CertificateProblem.UNAVAILABLE:
                return self._reject(
                    connection, Rejection(503, "Charger registry unavailable"), remote, request.path, cp
                )
            if problem is not None:
                logger.warning(
                    "charger %s refused: %s (serial %s)",
                    cp,
                    problem.value,
                    peer.serial,
                    extra={"chargePointId": cp, "event": "auth_failed", "remote": remote, "reason": problem.value},
                )
                return self._reject(connection, Rejection(401, "Invalid client certificate"), remote, request.path, cp)
            logger.info(
                "charger %s authenticated by client certificate %s",
                cp,
                peer.serial,
                extra={"chargePointId": cp, "event": "certificate_accepted", "remote": remote},
            )
            self._admit(connection, decision)
            return None
        verdict = await self.authenticator.authenticate(cp, decision.password)
        if verdict is Verdict.UNAVAILABLE:
            return self._reject(connection, Rejection(503, "Charger registry unavailable"), remote, request.path, cp)
        if not verdict.ok:
            logger.warning(
                "charger %s refused: %s",
                cp,
                verdict.value,
                extra={"chargePointId": cp, "event": "auth_failed", "remote": remote},
            )
            if verdict is Verdict.CERTIFICATE_REQUIRED:  # no password helps: no Basic challenge
                refusal = Rejection(401, "Client certificate required")
            else:
                refusal = Rejection(401, "Invalid credentials", challenge=True)
            return self._reject(connection, refusal, remote, request.path, cp)
        self._admit(connection, decision)
        return None

    def _admit(self, connection: ServerConnection, decision: Admission) -> None:
        if isinstance(connection, BridgeConnection):
            connection.admission = decision
            self._admitted += 1

    def _reject(
        self, connection: ServerConnection, rejection: Rejection, remote: str, path: str, cp: str | None
    ) -> Response:
        self.metrics.incr(m.HANDSHAKE_REJECTIONS)
        if rejection.status == 401:
            self.metrics.incr(m.AUTH_FAILURES)
        logger.info(
            "handshake refused (%s %s) for %s",
            rejection.status,
            rejection.reason,
            path[:200],
            extra={"event": "handshake_rejected", "status": rejection.status, "remote": remote, "chargePointId": cp},
        )
        return self._respond(connection, rejection)

    @staticmethod
    def _respond(connection: ServerConnection, rejection: Rejection) -> Response:
        response = connection.respond(rejection.status, rejection.reason + "\n")
        if rejection.challenge:
            response.headers["WWW-Authenticate"] = 'Basic realm="OCPP", charset="UTF-8"'
        return response

    # --- health --------------------------------------------------------------------------------
    def _liveness_response(self) -> Response:
        """200 whenever this loop answers: what the load balancer checks (see handshake.LIVE_PATH)."""
        body = json.dumps({"status": "stopping" if self._stopping else "ok", "connections": len(self.sessions)})
        return _json_response(http.HTTPStatus.OK, body.encode())

    async def _health_response(self) -> Response:
        ok = await self.broker_reachable()
        body = json.dumps(
            {"status": "ok" if ok else "unavailable", "broker": ok, "connections": len(self.sessions)}
        ).encode()
        status = http.HTTPStatus.OK if ok and not self._stopping else http.HTTPStatus.SERVICE_UNAVAILABLE
        return _json_response(status, body)

    async def broker_reachable(self) -> bool:
        """A TCP connection to the broker opens (cached for a second; probes are shared)."""
        checked_at, ok = self._health
        if time.monotonic() - checked_at < HEALTH_CACHE_SECONDS:
            return ok
        if self._health_probe is None:
            self._health_probe = asyncio.create_task(self._probe_broker())
        probe = self._health_probe
        try:
            return await asyncio.shield(probe)
        finally:
            if probe.done():
                self._health_probe = None

    async def _probe_broker(self) -> bool:
        s = self.settings
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(s.broker_host, s.mqtt_port), 2.0)
        except (OSError, TimeoutError):
            ok = False
        else:
            ok = True
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        self._health = (time.monotonic(), ok)
        return ok

    # --- metrics -------------------------------------------------------------------------------
    async def _publish_metrics(self) -> None:
        while True:
            await asyncio.sleep(self.settings.metrics_interval)
            with contextlib.suppress(Exception):
                await self.broker_reachable()  # fresh BrokerReachable for this flush
            self.metrics.flush()


def _json_response(status: http.HTTPStatus, body: bytes) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(body))),
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
        ]
    )
    return Response(status.value, status.phrase, headers, body)


def _bound_port(server: Server, requested: int) -> int:
    sockets = server.sockets
    return int(sockets[0].getsockname()[1]) if sockets else requested


def _remote(connection: ServerConnection) -> str:
    try:
        address = connection.remote_address
    except (AttributeError, OSError):
        return "?"
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


async def serve(settings: Settings, registry: ChargerRegistry | None = None) -> None:
    """Run a bridge until SIGTERM/SIGINT, then drain (what ``python -m fargate_bridge`` does)."""
    await Bridge(settings, registry).serve_forever()
