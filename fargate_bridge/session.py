"""One charger connection: its WebSocket, its MQTT client, and the frames in between.

The session's life is the state machine of :mod:`fargate_bridge.lifecycle`: this class turns
what happens (socket closed, CONNACK, SUBACK, timers) into its events and carries out the actions
:func:`~fargate_bridge.lifecycle.step` returns. It decides nothing about phases itself.

Ordering: frames from the charger are encoded and handed to the MQTT client in the order
received, by this one coroutine; awscrt keeps QoS 1 publishes in order, also across a
reconnection (unacknowledged ones are re-sent first). Until the subscription to the replies is
confirmed on the current MQTT connection (phase OPEN) frames wait in ``pending`` instead, so a
reply cannot beat its subscription. ``pending`` plus the publishes awaiting their PUBACK is
bounded by ``BRIDGE_QUEUE_LIMIT``; beyond it the charger is closed with 1013 rather than frames
being dropped silently.

Replies are forwarded in the order MQTT delivers them, by one writer task at a time; at most
``BRIDGE_OUTBOX_LIMIT_BYTES`` wait for a charger that does not read its socket, then it is closed.
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

from ocpp_core.versions import OcppVersion

from . import metrics as m
from .frames import MAX_MQTT_PAYLOAD, oversize_reply
from .handshake import Admission
from .lifecycle import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_POLICY_VIOLATION,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNSUPPORTED_DATA,
    REASON_REPLACED,
    REASON_SHUTDOWN,
    REASON_WILL,
    Action,
    Announce,
    CloseSocket,
    CountReconnect,
    Event,
    Fail,
    Forward,
    MqttConnected,
    MqttLost,
    Phase,
    Replaced,
    ResubscribeDue,
    ScheduleResubscribe,
    SessionState,
    ShutDown,
    SlotGranted,
    SocketClosed,
    StartClient,
    StopClient,
    Subscribe,
    Subscribed,
    SubscribeFailed,
    SubscribeRetry,
    TakenOver,
    Teardown,
    TornDown,
    step,
)
from .mqtt import SESSION_TAKEN_OVER, AckCounter, MqttFactory, MqttLink, PublishOutcome
from .settings import Settings
from .throttle import FrameRate
from .topics import EnvelopeEncoder, Naming, encode_event

if TYPE_CHECKING:
    from .metrics import Metrics

logger = logging.getLogger(__name__)

REASON_QUEUE_FULL = "MQTT backlog full, try again later"
REASON_BINARY = "binary frames are not supported"
REASON_RATE = "too many frames: slow down"
REASON_SLOW_READER = "replies not read: closing"
REASON_BRIDGE_ERROR = "bridge error"

#: Seconds before a takeover gives up waiting for the older connection to finish.
PREDECESSOR_TIMEOUT = 15.0


class SessionHost(Protocol):
    """What a session needs from the bridge."""

    settings: Settings
    naming: Naming
    mqtt: MqttFactory
    metrics: Metrics
    subscribe_retry: SubscribeRetry

    @property
    def connected_count(self) -> int: ...

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
    """Public API (what the server uses): :meth:`run`, :meth:`replace`, :meth:`shut_down`,
    :meth:`abort`, and the read-only ``charge_point_id``, ``connection_id``, ``phase``,
    ``finished``. The ``on_mqtt_*`` methods are the MQTT client's listener."""

    __slots__ = (
        "__weakref__",
        "_acks",
        "_closer",
        "_encoder",
        "_host",
        "_link",
        "_link_up",
        "_outbox",
        "_outbox_bytes",
        "_pending",
        "_predecessor",
        "_rate",
        "_resubscribe",
        "_setup_task",
        "_state",
        "_submitted",
        "_teardown_task",
        "_topic_in",
        "_topic_out",
        "_version",
        "_writer",
        "_ws",
        "charge_point_id",
        "connection_id",
        "finished",
        "protocol",
    )

    def __init__(
        self,
        host: SessionHost,
        ws: ServerConnection,
        admission: Admission,
        predecessor: ChargerSession | None = None,
    ):
        self._host = host
        self._ws = ws
        self.charge_point_id = admission.charge_point_id
        self._version: OcppVersion = admission.protocol
        self.protocol = admission.protocol.value
        self.connection_id = uuid.uuid4().hex
        self._encoder = EnvelopeEncoder(self.charge_point_id, self.protocol, self.connection_id)
        self._state = SessionState()
        self._link: MqttLink | None = None
        self._link_up = False  # the MQTT connection is up, whatever the phase (teardown flush)
        self._predecessor = predecessor
        self._pending: deque[bytes] = deque()
        self._submitted = 0  # frames handed to the MQTT client; minus acks.completed = in flight
        self._acks = AckCounter(host.mqtt.poster, self._on_frame_failed)
        self._topic_in = host.naming.inbound(self.charge_point_id)
        self._topic_out = host.naming.outbound(self.charge_point_id)
        self._outbox: deque[str] = deque()
        self._outbox_bytes = 0  # characters, in fact: close enough to bytes for a bound
        settings = host.settings
        self._rate = FrameRate(settings.frame_rate, settings.frame_burst, time.monotonic())
        self._setup_task: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._closer: asyncio.Task[None] | None = None
        self._teardown_task: asyncio.Task[None] | None = None
        self._resubscribe: asyncio.TimerHandle | None = None
        self.finished: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # --- read-only views ------------------------------------------------------------------------
    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def phase(self) -> Phase:
        return self._state.phase

    @property
    def connected(self) -> bool:
        """The MQTT connection is up (CONNACK received, not lost since)."""
        return self._state.phase.mqtt_connected

    @property
    def queued(self) -> int:
        """Frames waiting for the subscription (not yet handed to the MQTT client)."""
        return len(self._pending)

    @property
    def inflight(self) -> int:
        return self._submitted - self._acks.completed

    # --- public API -----------------------------------------------------------------------------
    async def run(self) -> None:
        """The connection handler's body: returns when the socket is closed and MQTT is torn down."""
        self._setup_task = asyncio.create_task(self._setup())
        try:
            await self._receive()
        except ConnectionClosed:
            pass
        except Exception:
            logger.exception("connection of %s failed", self.charge_point_id, extra=self._extra())
        finally:
            self._dispatch(SocketClosed())
            await asyncio.shield(self.finished)

    def replace(self) -> asyncio.Future[None]:
        """A newer socket for the same id arrived: close this one and tear down its MQTT client."""
        self._dispatch(Replaced())
        return self.finished

    def shut_down(self, reason: str = REASON_SHUTDOWN) -> None:
        """Bridge stopping: the server closes the socket (1001); this records why, for the event."""
        self._dispatch(ShutDown(reason))

    def abort(self) -> None:
        """Drain timed out: drop the socket and the MQTT client without waiting for anything."""
        if self._link is not None:
            self._link.stop()
        transport = self._ws.transport
        if transport is not None:
            transport.abort()

    # --- the state machine ------------------------------------------------------------------------
    def _dispatch(self, event: Event) -> None:
        transition = step(self._state, event, self._host.subscribe_retry)
        self._state = transition.state
        for action in transition.actions:
            try:
                self._perform(action)
            except Exception:
                logger.exception("%s of %s failed", type(action).__name__, self.charge_point_id, extra=self._extra())

    def _perform(self, action: Action) -> None:
        match action:
            case StartClient():
                try:
                    self._start_client()
                except Exception:
                    logger.exception("could not start the MQTT client of %s", self.charge_point_id, extra=self._extra())
                    self._dispatch(Fail(CLOSE_INTERNAL_ERROR, REASON_BRIDGE_ERROR))
            case Subscribe(generation=generation):
                self._subscribe(generation)
            case ScheduleResubscribe(generation=generation, delay=delay):
                self._resubscribe = asyncio.get_running_loop().call_later(
                    delay, self._dispatch, ResubscribeDue(generation)
                )
            case Announce(reason=reason, first=first):
                self._announce(reason, first)
            case Forward():
                self._forward()
            case CountReconnect():
                self._host.metrics.incr(m.MQTT_RECONNECTS)
                logger.info(
                    "MQTT session of %s re-established",
                    self.charge_point_id,
                    extra=self._extra(event="mqtt_reconnected"),
                )
            case CloseSocket(code=code, reason=reason):
                self._close_ws(code, reason)
            case StopClient():
                if self._link is not None:
                    self._link.stop()
            case Teardown():
                if self._teardown_task is None:
                    self._teardown_task = asyncio.create_task(self._teardown(action))

    # --- setup ------------------------------------------------------------------------------------
    async def _setup(self) -> None:
        try:
            predecessor, self._predecessor = self._predecessor, None
            if predecessor is not None:
                # The older socket's MQTT client must be gone before ours connects with the same
                # client id, or the broker would bounce the session between them.
                try:
                    await asyncio.wait_for(asyncio.shield(predecessor.finished), PREDECESSOR_TIMEOUT)
                except TimeoutError:
                    logger.warning(
                        "older connection of %s did not finish in time", self.charge_point_id, extra=self._extra()
                    )
            # CONNECT pacing: the socket simply waits its turn (its frames queue meanwhile).
            await self._host.connect_slot(self.charge_point_id)
            self._dispatch(SlotGranted())
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("could not start the MQTT client of %s", self.charge_point_id, extra=self._extra())
            self._dispatch(Fail(CLOSE_INTERNAL_ERROR, REASON_BRIDGE_ERROR))

    def _start_client(self) -> None:
        cp = self.charge_point_id
        will = encode_event("disconnected", cp, self.protocol, self.connection_id, now_ms(), REASON_WILL)
        naming = self._host.naming
        self._link = self._host.mqtt.new_link(
            naming.client_id(cp), naming.events(cp), will, self, fleet_size=self._host.connected_count
        )
        self._link.start()

    # --- frames from the charger --------------------------------------------------------------------
    async def _receive(self) -> None:
        limit = self._host.settings.queue_limit
        metrics = self._host.metrics
        debug = logger.isEnabledFor(logging.DEBUG)
        async for message in self._ws:
            if not self._state.phase.live:
                # Replaced, taken over or failing: what the socket still sends is not forwarded,
                # but it is read, or the charger's close frame would wait behind it (websockets
                # stops reading while its queue of unread frames is full) until close_timeout.
                continue
            if not isinstance(message, str):
                self._dispatch(Fail(CLOSE_UNSUPPORTED_DATA, REASON_BINARY))
                continue
            metrics.incr(m.FRAMES_IN)
            if debug:
                logger.debug("frame in from %s: %s", self.charge_point_id, message[:500], extra=self._extra())
            if not self._rate.allow(time.monotonic()):
                # Every frame is a paid Lambda invocation on AWS; OCPP allows one outstanding CALL.
                metrics.incr(m.RATE_LIMITED)
                logger.warning(
                    "%s sends more than %s frames/s: closing with 1008",
                    self.charge_point_id,
                    self._host.settings.frame_rate,
                    extra=self._extra(event="rate_limited"),
                )
                self._dispatch(Fail(CLOSE_POLICY_VIOLATION, REASON_RATE))
                continue
            if len(self._pending) + self.inflight >= limit:
                metrics.incr(m.QUEUE_DROPS)
                logger.warning(
                    "backlog of %s reached %s frames: closing with 1013",
                    self.charge_point_id,
                    limit,
                    extra=self._extra(),
                )
                self._dispatch(Fail(CLOSE_TRY_AGAIN_LATER, REASON_QUEUE_FULL))
                continue
            payload = self._encoder.encode(now_ms(), message)
            if len(payload) > MAX_MQTT_PAYLOAD:
                self._refuse_oversized(message, len(payload))
            elif self._state.phase is Phase.OPEN:
                self._submit(payload)
            else:
                self._pending.append(payload)

    def _refuse_oversized(self, frame: str, size: int) -> None:
        self._host.metrics.incr(m.OVERSIZED_FRAMES)
        reply = oversize_reply(frame, self._version, size)
        logger.warning(
            "frame of %s is %s bytes once wrapped (IoT Core takes %s): %s",
            self.charge_point_id,
            size,
            MAX_MQTT_PAYLOAD,
            "answered with a CALLERROR" if reply else "dropped (no CALL id to answer)",
            extra=self._extra(event="frame_too_large"),
        )
        if reply is not None:
            self._deliver(reply)

    def _forward(self) -> None:
        while self._pending and self._link is not None:
            self._submit(self._pending.popleft())

    def _submit(self, payload: bytes) -> None:
        assert self._link is not None
        try:
            self._link.publish_counted(self._topic_in, payload, self._acks)
        except (RuntimeError, AwsCrtError) as exc:
            self._host.metrics.incr(m.QUEUE_DROPS)
            logger.error("MQTT client of %s refused a frame: %s", self.charge_point_id, exc, extra=self._extra())
        else:
            self._submitted += 1

    def _on_frame_failed(self, outcome: str) -> None:
        logger.warning(
            "frame from %s not accepted by the broker: %s", self.charge_point_id, outcome, extra=self._extra()
        )

    # --- replies to the charger ----------------------------------------------------------------------
    def _deliver(self, text: str) -> None:
        # websockets' send() waits while the socket's write buffer is above its high-water mark,
        # so what a charger that stopped reading leaves behind piles up here: bound it.
        if self._outbox_bytes + len(text) > self._host.settings.outbox_limit_bytes:
            self._outbox.clear()
            self._outbox_bytes = 0
            self._host.metrics.incr(m.SLOW_READERS)
            logger.warning(
                "%s does not read its replies (over %s bytes waiting): closing with 1008",
                self.charge_point_id,
                self._host.settings.outbox_limit_bytes,
                extra=self._extra(event="slow_reader"),
            )
            self._dispatch(Fail(CLOSE_POLICY_VIOLATION, REASON_SLOW_READER))
            return
        self._outbox.append(text)
        self._outbox_bytes += len(text)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    async def _write(self) -> None:
        metrics = self._host.metrics
        debug = logger.isEnabledFor(logging.DEBUG)
        try:
            while self._outbox:
                text = self._outbox.popleft()
                self._outbox_bytes -= len(text)
                await self._ws.send(text)
                metrics.incr(m.FRAMES_OUT)
                if debug:
                    logger.debug("frame out to %s: %s", self.charge_point_id, text[:500], extra=self._extra())
        except ConnectionClosed:
            if self._outbox:
                logger.info(
                    "%s replies for %s dropped: socket closed",
                    len(self._outbox),
                    self.charge_point_id,
                    extra=self._extra(),
                )
            self._outbox.clear()
            self._outbox_bytes = 0
        except Exception:
            logger.exception("sending to %s failed", self.charge_point_id, extra=self._extra())
            self._outbox.clear()
            self._outbox_bytes = 0
        finally:
            self._writer = None

    # --- MQTT actions --------------------------------------------------------------------------------
    def _subscribe(self, generation: int) -> None:
        assert self._link is not None

        def done(outcome: PublishOutcome) -> None:
            if outcome is None:
                self._dispatch(Subscribed(generation))
                return
            if self._state.phase is Phase.SUBSCRIBING and self._state.generation == generation:
                self._host.metrics.incr(m.SUBSCRIBE_FAILURES)
                logger.error(
                    "subscription of %s to its replies failed: %s",
                    self.charge_point_id,
                    outcome,
                    extra=self._extra(event="subscribe_failed"),
                )
            self._dispatch(SubscribeFailed(generation, outcome))

        try:
            self._link.subscribe(self._topic_out, done)
        except (RuntimeError, AwsCrtError) as exc:
            done(str(exc) or type(exc).__name__)

    def _announce(self, reason: str | None, first: bool) -> None:
        """The ``connected`` event, stamped when it is published (DESIGN §2)."""
        assert self._link is not None
        payload = encode_event("connected", self.charge_point_id, self.protocol, self.connection_id, now_ms(), reason)
        self._link.publish(self._host.naming.events(self.charge_point_id), payload, self._on_event_acked)
        if first:
            logger.info(
                "charger %s connected (%s, connection %s)",
                self.charge_point_id,
                self.protocol,
                self.connection_id,
                extra=self._extra(event="connected", protocol=self.protocol),
            )

    def _on_event_acked(self, outcome: PublishOutcome) -> None:
        if outcome is not None:
            logger.warning("connected event of %s not accepted: %s", self.charge_point_id, outcome, extra=self._extra())

    def _close_ws(self, code: int, reason: str) -> None:
        if self._closer is None and self._ws.state is not State.CLOSED:
            self._closer = asyncio.create_task(self._ws.close(code, reason))

    # --- teardown --------------------------------------------------------------------------------------
    async def _teardown(self, plan: Teardown) -> None:
        reason = plan.reason or _close_description(self._ws)
        grace = min(5.0, self._host.settings.drain_timeout / 3)
        try:
            if self._resubscribe is not None:
                self._resubscribe.cancel()
            setup = self._setup_task
            if setup is not None and not setup.done():
                setup.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await setup  # its own errors are logged inside
            link = self._link
            if link is not None:
                will = False
                if plan.flush:
                    await self._flush(grace)
                if plan.publish_disconnected:
                    will = not await self._publish_disconnected(link, reason, grace)
                dropped = len(self._pending) + self.inflight
                if dropped and plan.flush:
                    self._host.metrics.incr(m.QUEUE_DROPS, dropped)
                    logger.warning(
                        "%s frames of %s not confirmed by the broker at disconnect",
                        dropped,
                        self.charge_point_id,
                        extra=self._extra(),
                    )
                if not await link.shutdown(grace, with_will=will):
                    logger.warning("MQTT client of %s did not stop in time", self.charge_point_id, extra=self._extra())
            elif self._pending:
                self._host.metrics.incr(m.QUEUE_DROPS, len(self._pending))
        except Exception:
            logger.exception("teardown of %s failed", self.charge_point_id, extra=self._extra())
        finally:
            self._pending.clear()
            self._outbox.clear()
            self._outbox_bytes = 0
            self._host.session_ended(self)
            self._dispatch(TornDown())
            if not self.finished.done():
                self.finished.set_result(None)
            logger.info(
                "charger %s disconnected (%s)",
                self.charge_point_id,
                reason,
                extra=self._extra(event="disconnected", reason=reason, code=self._ws.close_code),
            )

    async def _flush(self, timeout: float) -> None:
        """Give frames already accepted from the charger a chance to reach the broker.

        Frames still waiting for a subscription go out as soon as the MQTT connection is up: the
        socket is closing, so no reply is expected any more.
        """
        deadline = time.monotonic() + timeout
        # Polled: completions are counted on the CRT thread (see AckCounter), and this runs
        # once per disconnection.
        while (self._pending or self.inflight) and time.monotonic() < deadline:
            if self._pending and self._link_up:
                self._forward()
            await asyncio.sleep(0.01)

    async def _publish_disconnected(self, link: MqttLink, reason: str, timeout: float) -> bool:
        """Publish the ``disconnected`` event, stamped now; True once the broker confirmed it."""
        done: asyncio.Future[PublishOutcome] = asyncio.get_running_loop().create_future()

        def acked(outcome: PublishOutcome) -> None:
            if not done.done():
                done.set_result(outcome)

        cp = self.charge_point_id
        payload = encode_event("disconnected", cp, self.protocol, self.connection_id, now_ms(), reason)
        try:
            link.publish(self._host.naming.events(cp), payload, acked)
            outcome = await asyncio.wait_for(done, timeout)
        except TimeoutError:
            outcome = "no PUBACK in time"
        except (RuntimeError, AwsCrtError) as exc:
            outcome = str(exc)
        if outcome is None:
            return True
        # Not confirmed: the client stops with "disconnect with will", so a broker that is still
        # there publishes the will (same event, reason REASON_WILL) in its place.
        logger.warning("disconnected event of %s not confirmed: %s", cp, outcome, extra=self._extra())
        return False

    # --- MQTT events (LinkListener; on the loop thread) ---------------------------------------------
    def on_mqtt_attempting(self) -> None:
        pass  # the link tracks it (see MqttLink.shutdown)

    def on_mqtt_connected(self, rejoined: bool) -> None:
        self._link_up = True
        self._dispatch(MqttConnected(rejoined))

    def on_mqtt_connect_failed(self, error: str) -> None:
        if self._state.phase.live:
            logger.warning("MQTT connection of %s failed: %s", self.charge_point_id, error, extra=self._extra())

    def on_mqtt_disconnected(self, reason_code: int | None, error: str | None) -> None:
        self._link_up = False
        if reason_code == SESSION_TAKEN_OVER and self._state.phase.live:
            # IoT Core's client-id takeover: a newer socket for this charger reached another
            # task. That one wins; reconnecting here would steal the session back.
            self._host.metrics.incr(m.TAKE_OVERS)
            logger.info("MQTT session of %s taken over elsewhere: closing", self.charge_point_id, extra=self._extra())
            self._dispatch(TakenOver())
            return
        if self._state.phase.mqtt_connected:
            logger.warning(
                "MQTT connection of %s lost (%s): frames wait for the reconnection",
                self.charge_point_id,
                error if reason_code is None else f"DISCONNECT {reason_code}",
                extra=self._extra(),
            )
        self._dispatch(MqttLost())

    def on_mqtt_message(self, topic: str, payload: bytes) -> None:
        if topic != self._topic_out:
            return
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            logger.warning("reply for %s is not UTF-8 text: dropped", self.charge_point_id, extra=self._extra())
            return
        if not self._state.phase.live or self._ws.state is not State.OPEN:
            logger.info("reply for %s dropped: socket closing", self.charge_point_id, extra=self._extra())
            return
        self._deliver(text)

    def on_mqtt_stopped(self) -> None:
        self._link_up = False

    # --- helpers -------------------------------------------------------------------------------------
    def _extra(self, **fields: object) -> dict[str, object]:
        return {"chargePointId": self.charge_point_id, "connectionId": self.connection_id, **fields}


__all__ = ["REASON_REPLACED", "REASON_SHUTDOWN", "ChargerSession", "SessionHost", "describe_close"]
