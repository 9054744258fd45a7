"""One charger connection: its WebSocket, its MQTT client, and the frames in between.

Ordering: frames from the charger are encoded and handed to the MQTT client in the order
received, by this one coroutine; awscrt keeps QoS 1 publishes in order, also across a
reconnection (unacknowledged ones are re-sent first). While the client is not connected
(before the first CONNACK, or after losing the broker) frames wait in ``pending`` instead,
and go out after the subscription is renewed, so a reply cannot beat the subscription.
``pending`` plus the publishes awaiting their PUBACK is bounded by ``BRIDGE_QUEUE_LIMIT``;
beyond it the charger is closed with 1013 rather than frames being dropped silently.

Replies are forwarded in the order MQTT delivers them, by one writer task at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Protocol

from awscrt.exceptions import AwsCrtError
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from . import metrics as m
from .handshake import Admission
from .mqtt import SESSION_TAKEN_OVER, AckCounter, MqttFactory, MqttLink, PublishOutcome
from .settings import Settings
from .topics import EnvelopeEncoder, encode_event, events_topic, inbound_topic, outbound_topic

if TYPE_CHECKING:
    from .metrics import Metrics

logger = logging.getLogger(__name__)

# Close codes (RFC 6455 §7.4; 4000-4999 are for applications).
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_REPLACED = 4000

REASON_REPLACED = "replaced by a newer connection"
REASON_TAKEN_OVER = "replaced by a newer connection on another bridge task"
REASON_QUEUE_FULL = "MQTT backlog full, try again later"
REASON_BINARY = "binary frames are not supported"
REASON_SHUTDOWN = "bridge shutting down"
REASON_WILL = "bridge lost its MQTT connection"

#: Seconds before a takeover gives up waiting for the older connection to finish.
PREDECESSOR_TIMEOUT = 15.0


class SessionHost(Protocol):
    """What a session needs from the bridge."""

    settings: Settings
    mqtt: MqttFactory
    metrics: Metrics

    def connect_slot(self, charge_point_id: str) -> Awaitable[None]: ...
    def session_ended(self, session: ChargerSession) -> None: ...


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def describe_close(sent: tuple[int, str] | None, rcvd: tuple[int, str] | None, rcvd_first: bool) -> str:
    """A short text for the ``disconnected`` event from the close frames sent and received."""
    if rcvd is not None and (sent is None or rcvd_first):
        code, reason = rcvd
        return f"closed by the charger with {code}" + (f": {reason}" if reason else "")
    if sent is not None:
        code, reason = sent
        return f"closed by the bridge with {code}" + (f": {reason}" if reason else "")
    return "connection lost"


def _close_description(ws: ServerConnection) -> str:
    protocol = ws.protocol
    sent = (protocol.close_sent.code, protocol.close_sent.reason) if protocol.close_sent is not None else None
    rcvd = (protocol.close_rcvd.code, protocol.close_rcvd.reason) if protocol.close_rcvd is not None else None
    return describe_close(sent, rcvd, bool(protocol.close_rcvd_then_sent))


class ChargerSession:
    __slots__ = (
        "__weakref__",
        "_attempted",
        "_closer",
        "_stopped",
        "_teardown_task",
        "_writer",
        "acks",
        "announced",
        "attempted",
        "close_reason",
        "closing",
        "connected",
        "connection_id",
        "cp",
        "encoder",
        "ever_connected",
        "finished",
        "host",
        "link",
        "mqtt_stopped",
        "outbox",
        "pending",
        "predecessor",
        "protocol",
        "setup_task",
        "submitted",
        "taken_over",
        "topic_in",
        "topic_out",
        "ws",
    )

    def __init__(self, host: SessionHost, ws: ServerConnection, admission: Admission):
        self.host = host
        self.ws = ws
        self.cp = admission.charge_point_id
        self.protocol = admission.protocol.value
        self.connection_id = uuid.uuid4().hex
        self.encoder = EnvelopeEncoder(self.cp, self.protocol, self.connection_id)
        self.link: MqttLink | None = None
        self.predecessor: ChargerSession | None = None
        self.pending: deque[bytes] = deque()
        self.submitted = 0  # frames handed to the MQTT client; minus acks.completed = in flight
        self.acks = AckCounter(host.mqtt.poster, self._on_frame_failed)
        self.topic_in = inbound_topic(self.cp)
        self.topic_out = outbound_topic(self.cp)
        self.outbox: deque[str] = deque()
        self.connected = False  # MQTT, as last reported to the loop
        self.ever_connected = False
        self.announced = False  # a ``connected`` event went out, so a ``disconnected`` one is due
        self.attempted = False  # the client reported its first connection attempt
        self.mqtt_stopped = False
        self.closing = False
        self.taken_over = False
        self.close_reason: str | None = None
        self.setup_task: asyncio.Task[None] | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._teardown_task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Future[None] | None = None
        self._attempted: asyncio.Future[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------
    async def run(self) -> None:
        """The connection handler's body: returns when the socket is closed and MQTT is torn down."""
        self.setup_task = asyncio.create_task(self._setup())
        try:
            await self._receive()
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("connection of %s failed", self.cp, extra=self._extra())
        finally:
            await asyncio.shield(self._start_teardown())

    async def _setup(self) -> None:
        try:
            if self.predecessor is not None:
                # The older socket's MQTT client must be gone before ours connects with the same
                # client id, or the broker would bounce the session between them.
                try:
                    await asyncio.wait_for(asyncio.shield(self.predecessor.finished), PREDECESSOR_TIMEOUT)
                except TimeoutError:
                    logger.warning("older connection of %s did not finish in time", self.cp, extra=self._extra())
                self.predecessor = None
            await self.host.connect_slot(self.cp)
            if self.closing:
                return
            will = encode_event("disconnected", self.cp, self.protocol, self.connection_id, now_ms(), REASON_WILL)
            self.link = self.host.mqtt.new_link(self.cp, events_topic(self.cp), will, self)
            self.link.start()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("could not start the MQTT client of %s", self.cp, extra=self._extra())
            self._close_ws(CLOSE_INTERNAL_ERROR, "bridge error")

    async def _receive(self) -> None:
        limit = self.host.settings.queue_limit
        metrics = self.host.metrics
        debug = logger.isEnabledFor(logging.DEBUG)
        async for message in self.ws:
            if self.closing:
                return  # replaced or taken over: what the old socket still sends is not forwarded
            if not isinstance(message, str):
                self.close_reason = REASON_BINARY
                await self.ws.close(CLOSE_UNSUPPORTED_DATA, REASON_BINARY)
                return
            metrics.incr(m.FRAMES_IN)
            if debug:
                logger.debug("frame in from %s: %s", self.cp, message[:500], extra=self._extra())
            if len(self.pending) + self.submitted - self.acks.completed >= limit:
                metrics.incr(m.QUEUE_DROPS)
                logger.warning(
                    "backlog of %s reached %s frames: closing with 1013", self.cp, limit, extra=self._extra()
                )
                self.close_reason = REASON_QUEUE_FULL
                await self.ws.close(CLOSE_TRY_AGAIN_LATER, REASON_QUEUE_FULL)
                return
            payload = self.encoder.encode(now_ms(), message)
            if self.connected:
                self._submit(payload)
            else:
                self.pending.append(payload)

    def replace(self, reason: str = REASON_REPLACED) -> asyncio.Future[None]:
        """A newer socket for the same id arrived: close this one and tear down its MQTT client."""
        if not self.closing:
            self.close_reason = reason
            self._close_ws(CLOSE_REPLACED, reason)
            self._start_teardown()
        return self.finished

    def shut_down(self, reason: str = REASON_SHUTDOWN) -> None:
        """Bridge stopping: the server closes the socket (1001); this records why, for the event."""
        if self.close_reason is None:
            self.close_reason = reason

    def _close_ws(self, code: int, reason: str) -> None:
        if self._closer is None and self.ws.state is not State.CLOSED:
            self._closer = asyncio.create_task(self.ws.close(code, reason))

    def _start_teardown(self) -> asyncio.Task[None]:
        if self._teardown_task is None:
            self.closing = True
            self._teardown_task = asyncio.create_task(self._teardown())
        return self._teardown_task

    async def _teardown(self) -> None:
        reason = self.close_reason or _close_description(self.ws)
        grace = min(5.0, self.host.settings.drain_timeout / 3)
        try:
            if self.setup_task is not None and not self.setup_task.done():
                self.setup_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.setup_task  # its own errors are logged inside
            link = self.link
            if link is not None:
                will = False
                if not self.taken_over:
                    await self._flush(grace)
                    if self.announced:
                        will = not await self._publish_disconnected(reason, grace)
                dropped = len(self.pending) + self.inflight
                if dropped and not self.taken_over:
                    self.host.metrics.incr(m.QUEUE_DROPS, dropped)
                    logger.warning(
                        "%s frames of %s not confirmed by the broker at disconnect",
                        dropped,
                        self.cp,
                        extra=self._extra(),
                    )
                await self._stop_link(link, grace, with_will=will)
            elif self.pending:
                self.host.metrics.incr(m.QUEUE_DROPS, len(self.pending))
        except Exception:
            logger.exception("teardown of %s failed", self.cp, extra=self._extra())
        finally:
            self.pending.clear()
            self.outbox.clear()
            self.host.session_ended(self)
            if not self.finished.done():
                self.finished.set_result(None)
            logger.info(
                "charger %s disconnected (%s)",
                self.cp,
                reason,
                extra=self._extra(event="disconnected", reason=reason, code=self.ws.close_code),
            )

    @property
    def inflight(self) -> int:
        return self.submitted - self.acks.completed

    async def _flush(self, timeout: float) -> None:
        """Give frames already accepted from the charger a chance to reach the broker."""
        deadline = time.monotonic() + timeout
        # Polled: completions are counted on the CRT thread (see AckCounter), and this runs
        # once per disconnection.
        while (self.pending or self.inflight) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)

    async def _publish_disconnected(self, reason: str, timeout: float) -> bool:
        """Publish the ``disconnected`` event; True once the broker confirmed it."""
        assert self.link is not None
        done: asyncio.Future[PublishOutcome] = asyncio.get_running_loop().create_future()

        def acked(outcome: PublishOutcome) -> None:
            if not done.done():
                done.set_result(outcome)

        payload = encode_event("disconnected", self.cp, self.protocol, self.connection_id, now_ms(), reason)
        try:
            self.link.publish(events_topic(self.cp), payload, acked)
            outcome = await asyncio.wait_for(done, timeout)
        except TimeoutError:
            outcome = "no PUBACK in time"
        except (RuntimeError, AwsCrtError) as exc:
            outcome = str(exc)
        if outcome is None:
            return True
        # Not confirmed: the client stops with "disconnect with will", so a broker that is still
        # there publishes the will (same event, reason REASON_WILL) in its place.
        logger.warning("disconnected event of %s not confirmed: %s", self.cp, outcome, extra=self._extra())
        return False

    async def _stop_link(self, link: MqttLink, timeout: float, *, with_will: bool = False) -> None:
        if not link.started or self.mqtt_stopped:
            return
        loop = asyncio.get_running_loop()
        if not self.attempted:
            # A stop that reaches the CRT before the start has taken effect leaves the client
            # stopped without a "stopped" event; once it reports an attempt, a stop always
            # ends with one. That takes milliseconds.
            self._attempted = loop.create_future()
            try:
                await asyncio.wait_for(self._attempted, timeout)
            except TimeoutError:
                pass
            finally:
                self._attempted = None
        self._stopped = loop.create_future()
        link.stop(with_will=with_will)
        try:
            await asyncio.wait_for(self._stopped, timeout)
        except TimeoutError:
            logger.warning("MQTT client of %s did not stop in time", self.cp, extra=self._extra())
        finally:
            self._stopped = None
            self.connected = False

    # --- frames ------------------------------------------------------------------------------
    def _submit(self, payload: bytes) -> None:
        assert self.link is not None
        try:
            self.link.publish_counted(self.topic_in, payload, self.acks)
        except (RuntimeError, AwsCrtError) as exc:
            self.host.metrics.incr(m.QUEUE_DROPS)
            logger.error("MQTT client of %s refused a frame: %s", self.cp, exc, extra=self._extra())
        else:
            self.submitted += 1

    def _on_frame_failed(self, outcome: str) -> None:
        logger.warning("frame from %s not accepted by the broker: %s", self.cp, outcome, extra=self._extra())

    def _deliver(self, text: str) -> None:
        self.outbox.append(text)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        metrics = self.host.metrics
        debug = logger.isEnabledFor(logging.DEBUG)
        try:
            while self.outbox:
                text = self.outbox.popleft()
                await self.ws.send(text)
                metrics.incr(m.FRAMES_OUT)
                if debug:
                    logger.debug("frame out to %s: %s", self.cp, text[:500], extra=self._extra())
        except ConnectionClosed:
            if self.outbox:
                logger.info("%s replies for %s dropped: socket closed", len(self.outbox), self.cp, extra=self._extra())
            self.outbox.clear()
        except Exception:
            logger.exception("sending to %s failed", self.cp, extra=self._extra())
            self.outbox.clear()
        finally:
            self._writer = None

    # --- MQTT events (LinkListener; on the loop thread) ---------------------------------------
    def on_mqtt_attempting(self) -> None:
        self.attempted = True
        if self._attempted is not None and not self._attempted.done():
            self._attempted.set_result(None)

    def on_mqtt_connected(self, rejoined: bool) -> None:
        link = self.link
        if link is None or self.taken_over or self.finished.done():
            return
        if self.ever_connected:
            self.host.metrics.incr(m.MQTT_RECONNECTS)
            logger.info("MQTT session of %s re-established", self.cp, extra=self._extra(event="mqtt_reconnected"))
        self.connected = True
        if not rejoined:
            # Clean session: renew the subscription before anything else goes out, so the
            # replies to the frames below cannot arrive before it.
            link.subscribe(self.topic_out, self._on_subscribed)
        if not self.closing:
            reason = "mqtt reconnected" if self.ever_connected else None
            link.publish(
                events_topic(self.cp),
                encode_event("connected", self.cp, self.protocol, self.connection_id, now_ms(), reason),
                self._on_event_acked,
            )
            if not self.announced:
                self.announced = True
                logger.info(
                    "charger %s connected (%s, connection %s)",
                    self.cp,
                    self.protocol,
                    self.connection_id,
                    extra=self._extra(event="connected", protocol=self.protocol),
                )
        self.ever_connected = True
        while self.pending and self.connected:
            self._submit(self.pending.popleft())

    def _on_subscribed(self, outcome: PublishOutcome) -> None:
        if outcome is not None and not self.closing:
            logger.error("subscription of %s to its replies failed: %s", self.cp, outcome, extra=self._extra())

    def _on_event_acked(self, outcome: PublishOutcome) -> None:
        if outcome is not None:
            logger.warning("connected event of %s not accepted: %s", self.cp, outcome, extra=self._extra())

    def on_mqtt_connect_failed(self, error: str) -> None:
        if self.closing:
            return
        logger.warning("MQTT connection of %s failed: %s", self.cp, error, extra=self._extra())

    def on_mqtt_disconnected(self, reason_code: int | None, error: str | None) -> None:
        was_connected, self.connected = self.connected, False
        if reason_code == SESSION_TAKEN_OVER and not self.closing:
            # IoT Core's client-id takeover: a newer socket for this charger reached another
            # task. That one wins; reconnecting here would steal the session back.
            self.taken_over = True
            self.host.metrics.incr(m.TAKE_OVERS)
            logger.info("MQTT session of %s taken over elsewhere: closing", self.cp, extra=self._extra())
            if self.link is not None:
                self.link.stop()
            self.close_reason = REASON_TAKEN_OVER
            self._close_ws(CLOSE_REPLACED, REASON_TAKEN_OVER)
            self._start_teardown()
        elif was_connected and not self.closing:
            logger.warning(
                "MQTT connection of %s lost (%s): frames wait for the reconnection",
                self.cp,
                error if reason_code is None else f"DISCONNECT {reason_code}",
                extra=self._extra(),
            )

    def on_mqtt_message(self, topic: str, payload: bytes) -> None:
        if topic != self.topic_out:
            return
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            logger.warning("reply for %s is not UTF-8 text: dropped", self.cp, extra=self._extra())
            return
        if self.closing or self.ws.state is not State.OPEN:
            logger.info("reply for %s dropped: socket closing", self.cp, extra=self._extra())
            return
        self._deliver(text)

    def on_mqtt_stopped(self) -> None:
        self.connected = False
        self.mqtt_stopped = True
        if self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(None)

    # --- helpers -------------------------------------------------------------------------------
    def _extra(self, **fields: object) -> dict[str, object]:
        return {"chargePointId": self.cp, "connectionId": self.connection_id, **fields}
