"""One awscrt MQTT5 client per charger, with its callbacks moved onto the asyncio loop.

* :class:`MqttFactory` owns what every client shares: one event loop group and client
  bootstrap, one TLS context and one credentials provider. Sharing them is what keeps a
  client at a few tens of KB: ``awsiot.mqtt5_client_builder`` would build a TLS context (and
  load the trust store) per client.
* :class:`MqttLink` wraps one client. CRT callbacks arrive on CRT threads; they do the least
  possible there and hand the rest to the loop through :class:`LoopPoster`
  (``loop.call_soon_threadsafe``), so all session state is touched by the loop thread only.
* The CRT holds the client's callbacks natively, out of sight of Python's garbage collector;
  they reach the listener through a weak reference so that a dropped session is freed.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol

from awscrt import auth, io, mqtt5
from awscrt.exceptions import AwsCrtError

from .settings import MqttAuth, Settings

logger = logging.getLogger(__name__)

QOS1 = mqtt5.QoS.AT_LEAST_ONCE
SESSION_TAKEN_OVER = int(mqtt5.DisconnectReasonCode.SESSION_TAKEN_OVER)
#: What an MQTT publish ended with: None for a PUBACK with a success code, else why not.
PublishOutcome = str | None


class LoopPoster:
    """Hands callables from CRT threads to the event loop, in order, batching wake-ups.

    ``call_soon_threadsafe`` writes to the loop's self-pipe; under load, many completions
    arrive between two loop iterations, so one wake-up drains all of them.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._queue: deque[tuple[Callable[..., None], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def post(self, fn: Callable[..., None], *args: Any) -> None:
        with self._lock:
            self._queue.append((fn, args))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            pass  # loop closed during shutdown: nothing left to deliver to

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
            batch = list(self._queue)
            self._queue.clear()
        for fn, args in batch:
            try:
                fn(*args)
            except Exception:
                logger.exception("MQTT callback failed")


class AckCounter:
    """Counts the completions of one session's frame publishes where they happen (CRT thread).

    Posting every PUBACK to the loop would cost a thread hop per frame for nothing: the loop
    only needs the number still in flight (queue bound, flush at disconnect). Failures, which
    are rare, are posted. The lock is shared: completions may also run on the loop thread
    when a future is done before its callback is attached.
    """

    __slots__ = ("_on_failure", "_poster", "completed")
    _lock = threading.Lock()

    def __init__(self, poster: LoopPoster, on_failure: Callable[[str], None]):
        self._poster = poster
        self._on_failure = _weakly(on_failure)
        self.completed = 0

    def __call__(self, future: Future[Any]) -> None:
        outcome = _outcome(future)
        with self._lock:
            self.completed += 1
        if outcome is not None:
            self._poster.post(self._on_failure, outcome)


def _weakly(fn: Callable[..., None]) -> Callable[..., None]:
    """``fn`` without keeping its object alive.

    Operations still queued in a stopped client hold their callbacks natively; a strong
    reference from there to the session (and so to the client) would keep both forever.
    """
    if not inspect.ismethod(fn):
        return fn
    ref = weakref.WeakMethod(fn)

    def call(*args: Any) -> None:
        method = ref()
        if method is not None:
            method(*args)

    return call


class LinkListener(Protocol):
    """What a session learns from its MQTT client (always called on the loop thread)."""

    def on_mqtt_attempting(self) -> None: ...
    def on_mqtt_connected(self, rejoined: bool) -> None: ...
    def on_mqtt_connect_failed(self, error: str) -> None: ...
    def on_mqtt_disconnected(self, reason_code: int | None, error: str | None) -> None: ...
    def on_mqtt_message(self, topic: str, payload: bytes) -> None: ...
    def on_mqtt_stopped(self) -> None: ...


class _Relay:
    """The CRT-side callbacks of one client. Holds the listener weakly (see module docstring)."""

    __slots__ = ("__weakref__", "_link", "_listener", "_poster")

    def __init__(self, listener: LinkListener, poster: LoopPoster):
        self._listener: weakref.ref[LinkListener] = weakref.ref(listener)
        self._link: weakref.ref[MqttLink] | None = None
        self._poster = poster

    def _post(self, name: str, *args: Any) -> None:
        listener = self._listener()
        if listener is not None:
            self._poster.post(getattr(listener, name), *args)

    def _post_link(self, name: str) -> None:
        link = self._link() if self._link is not None else None
        if link is not None:
            self._poster.post(getattr(link, name))

    def on_publish(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        if packet is not None:
            self._post("on_mqtt_message", packet.topic, bytes(packet.payload or b""))

    def on_attempting(self, data: mqtt5.LifecycleAttemptingConnectData) -> None:
        self._post_link("_on_attempting")
        self._post("on_mqtt_attempting")

    def on_success(self, data: mqtt5.LifecycleConnectSuccessData) -> None:
        settings = data.negotiated_settings
        self._post("on_mqtt_connected", bool(settings is not None and settings.rejoined_session))

    def on_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        reason = data.connack_packet.reason_code if data.connack_packet is not None else None
        self._post("on_mqtt_connect_failed", f"{data.exception}" + (f" (CONNACK {reason!r})" if reason else ""))

    def on_disconnect(self, data: mqtt5.LifecycleDisconnectData) -> None:
        packet = data.disconnect_packet
        code = int(packet.reason_code) if packet is not None and packet.reason_code is not None else None
        self._post("on_mqtt_disconnected", code, str(data.exception) if data.exception is not None else None)

    def on_stopped(self, data: mqtt5.LifecycleStoppedData) -> None:
        self._post_link("_on_stopped")
        self._post("on_mqtt_stopped")


def _outcome(future: Future[Any]) -> PublishOutcome:
    """Runs on a CRT thread: reduce a publish/subscribe future to None (ok) or an error text."""
    exc = future.exception()
    if exc is not None:
        return str(exc) or type(exc).__name__
    result = future.result()
    puback = getattr(result, "puback", None)
    if puback is not None and puback.reason_code is not None and int(puback.reason_code) >= 0x80:
        return f"PUBACK {puback.reason_code!r}"
    codes = getattr(result, "reason_codes", None)
    if codes is not None and (not codes or any(int(code) >= 0x80 for code in codes)):
        return f"SUBACK {list(codes)!r}"
    return None


class MqttFactory:
    """Builds the per-charger clients from the settings, sharing the heavy CRT objects."""

    def __init__(self, settings: Settings, poster: LoopPoster):
        self.settings = settings
        self.poster = poster
        self._event_loop_group = io.EventLoopGroup(settings.mqtt_threads)
        self._resolver = io.DefaultHostResolver(self._event_loop_group)
        self.bootstrap = io.ClientBootstrap(self._event_loop_group, self._resolver)
        self._tls: io.ClientTlsContext | None = None
        self._credentials: auth.AwsCredentialsProvider | None = None
        self._socket_options = io.SocketOptions()
        self._socket_options.connect_timeout_ms = 5_000
        if settings.mqtt_auth is MqttAuth.SIGV4:
            options = io.TlsContextOptions()
            if settings.mqtt_port == 443 and io.is_alpn_available():
                options.alpn_list = ["http/1.1"]
            self._tls = io.ClientTlsContext(_with_ca(options, settings))
            # The default chain finds the Fargate task role (container credentials endpoint).
            self._credentials = auth.AwsCredentialsProvider.new_default_chain(self.bootstrap)
        elif settings.mqtt_auth is MqttAuth.X509:
            assert settings.x509_cert is not None and settings.x509_key is not None
            options = io.TlsContextOptions.create_client_with_mtls_from_path(settings.x509_cert, settings.x509_key)
            if settings.mqtt_port == 443 and io.is_alpn_available():
                options.alpn_list = ["x-amzn-mqtt-ca"]  # IoT Core's MQTT-over-443 ALPN
            self._tls = io.ClientTlsContext(_with_ca(options, settings))

    def _sign_handshake(self, transform_args: mqtt5.WebsocketHandshakeTransformArgs, **_: Any) -> None:
        """SigV4-sign the MQTT-over-WebSocket upgrade request (query-string signature, as IoT wants)."""
        try:
            config = auth.AwsSigningConfig(
                algorithm=auth.AwsSigningAlgorithm.V4,
                signature_type=auth.AwsSignatureType.HTTP_REQUEST_QUERY_PARAMS,
                credentials_provider=self._credentials,
                region=self.settings.region,
                service="iotdevicegateway",
                omit_session_token=True,  # IoT Core wants the token appended unsigned
            )
            signing = auth.aws_sign_request(transform_args.http_request, config)
            signing.add_done_callback(lambda done: transform_args.set_done(done.exception()))
        except Exception as exc:  # noqa: BLE001 - handed to the CRT, which fails the attempt with it
            transform_args.set_done(exc)

    def reconnect_max_ms(self, fleet_size: int) -> int:
        """Longest reconnection delay for a client of a task holding ``fleet_size`` chargers.

        Delays are drawn with full jitter, so after an outage the fleet's CONNECTs spread over
        this window: it is at least ``fleet_size / BRIDGE_MQTT_CONNECT_RATE`` seconds, so that a
        task reconnects everyone at about its CONNECT budget (IoT Core: 500/s per account by
        default, https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits),
        and no more than ``BRIDGE_MQTT_RECONNECT_MAX_MS`` when that is longer. A small task is
        thus back within seconds of the broker's return instead of up to half a minute.
        """
        s = self.settings
        paced = int(1000 * fleet_size / s.mqtt_connect_rate)
        return max(s.mqtt_reconnect_max_ms, s.mqtt_reconnect_min_ms, paced)

    def client_options(
        self, client_id: str, will: mqtt5.PublishPacket, relay: _Relay, fleet_size: int = 0
    ) -> mqtt5.ClientOptions:
        s = self.settings
        return mqtt5.ClientOptions(
            host_name=s.broker_host,
            port=s.mqtt_port,
            bootstrap=self.bootstrap,
            socket_options=self._socket_options,
            tls_ctx=self._tls,
            websocket_handshake_transform=self._sign_handshake if s.mqtt_auth is MqttAuth.SIGV4 else None,
            connect_options=mqtt5.ConnectPacket(
                client_id=client_id,
                keep_alive_interval_sec=s.mqtt_keepalive,
                # A short-lived session rides out a network blip with its subscription and
                # unacknowledged publishes intact; a clean stop ends it (DISCONNECT, expiry 0).
                session_expiry_interval_sec=s.mqtt_session_expiry,
                will=will,
                will_delay_interval_sec=0,
            ),
            session_behavior=(
                mqtt5.ClientSessionBehaviorType.REJOIN_POST_SUCCESS
                if s.mqtt_session_expiry > 0
                else mqtt5.ClientSessionBehaviorType.CLEAN
            ),
            extended_validation_and_flow_control_options=(
                mqtt5.ExtendedValidationAndFlowControlOptions.AWS_IOT_CORE_DEFAULTS
                if s.mqtt_auth is not MqttAuth.NONE
                else mqtt5.ExtendedValidationAndFlowControlOptions.NONE
            ),
            # QoS 1 publishes wait out a disconnection in order (unacked ones first): no frame lost.
            offline_queue_behavior=mqtt5.ClientOperationQueueBehaviorType.FAIL_NON_QOS1_PUBLISH_ON_DISCONNECT,
            retry_jitter_mode=mqtt5.ExponentialBackoffJitterMode.FULL,
            min_reconnect_delay_ms=s.mqtt_reconnect_min_ms,
            max_reconnect_delay_ms=self.reconnect_max_ms(fleet_size),
            ping_timeout_ms=10_000,
            connack_timeout_ms=10_000,
            on_publish_callback_fn=relay.on_publish,
            on_lifecycle_event_stopped_fn=relay.on_stopped,
            on_lifecycle_event_attempting_connect_fn=relay.on_attempting,
            on_lifecycle_event_connection_success_fn=relay.on_success,
            on_lifecycle_event_connection_failure_fn=relay.on_failure,
            on_lifecycle_event_disconnection_fn=relay.on_disconnect,
            disable_metrics=True,  # no SDK metrics in the CONNECT username
        )

    def new_link(
        self, client_id: str, will_topic: str, will_payload: bytes, listener: LinkListener, fleet_size: int = 0
    ) -> MqttLink:
        will = mqtt5.PublishPacket(topic=will_topic, payload=will_payload, qos=QOS1)
        relay = _Relay(listener, self.poster)
        options = self.client_options(client_id, will, relay, fleet_size)
        link = MqttLink(client_id, mqtt5.Client(options), self.poster, relay)
        relay._link = weakref.ref(link)
        return link


def _with_ca(options: io.TlsContextOptions, settings: Settings) -> io.TlsContextOptions:
    if settings.x509_ca:
        options.override_default_trust_store_from_path(None, settings.x509_ca)
    return options


class MqttLink:
    """One charger's MQTT5 client. Methods are called on the loop thread; completions come back there."""

    __slots__ = (
        "__weakref__",
        "_attempted",
        "_client",
        "_poster",
        "_relay",
        "_started",
        "_stopped",
        "_stopping",
        "_waiters",
        "client_id",
    )

    def __init__(self, client_id: str, client: mqtt5.Client, poster: LoopPoster, relay: _Relay):
        self.client_id = client_id
        self._client = client
        self._poster = poster
        self._relay = relay  # kept alive with the client
        self._started = False
        self._stopping = False
        self._attempted = False  # the client reported its first connection attempt
        self._stopped = False  # the client reported "stopped"
        self._waiters: list[asyncio.Future[None]] = []

    # Lifecycle notes from the relay (loop thread).
    def _on_attempting(self) -> None:
        self._attempted = True
        self._wake()

    def _on_stopped(self) -> None:
        self._stopped = True
        self._wake()

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def _until(self, condition: Callable[[], bool], timeout: float) -> bool:
        deadline = asyncio.get_running_loop().time() + timeout
        while not condition():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                return condition()
        return True

    async def shutdown(self, timeout: float, *, with_will: bool = False) -> bool:
        """Stop the client and wait (at most ``timeout`` s each step) until it reports stopped.

        A stop that reaches the CRT before the start has taken effect leaves the client stopped
        without a "stopped" event; once it reports an attempt, a stop always ends with one.
        That takes milliseconds. True once stopped.
        """
        if not self._started or self._stopped:
            return True
        await self._until(lambda: self._attempted, timeout)
        self.stop(with_will=with_will)
        return await self._until(lambda: self._stopped, timeout)

    @property
    def started(self) -> bool:
        return self._started

    def start(self) -> None:
        self._started = True
        self._client.start()

    def publish(self, topic: str, payload: bytes, done: Callable[[PublishOutcome], None] | None = None) -> None:
        """QoS 1 publish; ``done`` gets the outcome on the loop thread. Raises if the client refuses it."""
        future = self._client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=QOS1))
        if done is not None:
            poster, callback = self._poster, _weakly(done)
            future.add_done_callback(lambda f: poster.post(callback, _outcome(f)))

    def publish_counted(self, topic: str, payload: bytes, counter: AckCounter) -> None:
        """QoS 1 publish whose completion is only counted (see :class:`AckCounter`)."""
        self._client.publish(mqtt5.PublishPacket(topic=topic, payload=payload, qos=QOS1)).add_done_callback(counter)

    def subscribe(self, topic_filter: str, done: Callable[[PublishOutcome], None] | None = None) -> None:
        future = self._client.subscribe(
            mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(topic_filter=topic_filter, qos=QOS1)])
        )
        if done is not None:
            poster, callback = self._poster, _weakly(done)
            future.add_done_callback(lambda f: poster.post(callback, _outcome(f)))

    def stop(self, *, with_will: bool = False) -> None:
        """Send DISCONNECT and stop reconnecting; the broker ends the session.

        A normal DISCONNECT makes the broker drop the will; ``with_will`` asks it to publish the
        will instead (MQTT 5 reason 0x04), for when our own ``disconnected`` event was not confirmed.
        """
        if not self._started or self._stopping:
            return
        self._stopping = True
        reason = (
            mqtt5.DisconnectReasonCode.DISCONNECT_WITH_WILL_MESSAGE
            if with_will
            else mqtt5.DisconnectReasonCode.NORMAL_DISCONNECTION
        )
        try:
            self._client.stop(mqtt5.DisconnectPacket(reason_code=reason, session_expiry_interval_sec=0))
        except (RuntimeError, AwsCrtError) as exc:
            logger.debug("stopping MQTT client %s: %s", self.client_id, exc)
