"""A charger session's life as an explicit state machine: pure, no I/O, no event loop.

:func:`step` takes the current :class:`SessionState` and one event and returns the next state and
the actions the session must carry out, in order. :class:`~fargate_bridge.session.ChargerSession`
feeds it the events (socket, MQTT lifecycle, timers) and performs the actions; every decision
about *when* frames flow, when to (re)subscribe and how a session ends is made here, once.

Phases::

    WAITING ──slot──▶ CONNECTING ──CONNACK──▶ SUBSCRIBING ──SUBACK ok──▶ OPEN
                          ▲                     │  ▲ SUBACK failed:         │
                          │                     │  └ retry with backoff     │
                          └──── BROKER_LOST ◀───┴──── connection lost ──────┘
    any live phase ──socket closed / replaced / taken over / failure──▶ CLOSING ──▶ CLOSED

* Frames from the charger go to the broker only in OPEN, i.e. after a successful SUBACK on the
  current MQTT connection, so the reply to a frame can never arrive before the subscription that
  carries it (issue 12). Elsewhere they wait in the session's bounded queue.
* Every CONNACK is followed by a SUBSCRIBE, also when the broker says the session was rejoined
  (session present): a re-sent SUBSCRIBE is idempotent (MQTT 5 §3.8.4: it replaces the existing
  subscription), and it is the only proof the subscription exists on that broker. IoT Core cuts
  MQTT-over-WebSocket connections every 24 h, so this path runs daily.
* A failed SUBACK (an error code, or the SUBSCRIBE failed by the client) is retried with
  exponential backoff; after :attr:`SubscribeRetry.attempts` failures the socket is closed with
  1011 so that the charger reconnects (and gets a fresh MQTT session).
* SUBACK outcomes and retry timers carry the MQTT connection's ``generation``; one from an earlier
  connection is ignored, so a late outcome cannot open a session whose subscription is not proven.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

# Close codes (RFC 6455 §7.4.1; 4000-4999 are for applications).
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED_DATA = 1003
CLOSE_POLICY_VIOLATION = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
CLOSE_REPLACED = 4000

REASON_REPLACED = "replaced by a newer connection"
REASON_TAKEN_OVER = "replaced by a newer connection on another bridge task"
REASON_SUBSCRIBE_FAILED = "bridge could not subscribe to the charger's replies"
REASON_SHUTDOWN = "bridge shutting down"
REASON_WILL = "bridge lost its MQTT connection"
REASON_MQTT_RECONNECTED = "mqtt reconnected"


class Phase(enum.Enum):
    WAITING = "waiting"  # socket open; waiting for the older connection and a CONNECT slot
    CONNECTING = "connecting"  # MQTT client started, no CONNACK yet
    SUBSCRIBING = "subscribing"  # CONNACK; SUBSCRIBE sent, frames wait for its SUBACK
    OPEN = "open"  # subscribed on this connection: frames go straight to the broker
    BROKER_LOST = "broker_lost"  # MQTT connection lost; the client reconnects, frames wait
    CLOSING = "closing"  # teardown under way: nothing new is forwarded
    CLOSED = "closed"

    @property
    def live(self) -> bool:
        return self not in (Phase.CLOSING, Phase.CLOSED)

    @property
    def mqtt_connected(self) -> bool:
        return self in (Phase.SUBSCRIBING, Phase.OPEN)


@dataclass(frozen=True, slots=True)
class SubscribeRetry:
    """Backoff of SUBSCRIBE retries: ``base * 2**(n-1)`` seconds, at most ``cap``, ``attempts`` in all."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 8.0

    def delay(self, failures: int) -> float:
        return float(min(self.cap, self.base * 2.0 ** max(0, failures - 1)))


DEFAULT_RETRY = SubscribeRetry()


@dataclass(frozen=True, slots=True)
class SessionState:
    phase: Phase = Phase.WAITING
    #: CONNACKs so far; the current MQTT connection's number (SUBACKs and timers carry it).
    generation: int = 0
    #: SUBSCRIBE failures on the current connection.
    subscribe_failures: int = 0
    #: A ``connected`` event went out, so a ``disconnected`` one is due at the end.
    announced: bool = False
    #: IoT Core handed this client id to another task: no flush, no event, no reconnect.
    taken_over: bool = False
    close_reason: str | None = None


# --- events ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SlotGranted:
    """The older connection is gone and CONNECT pacing gave us a turn."""


@dataclass(frozen=True, slots=True)
class MqttConnected:
    rejoined: bool


@dataclass(frozen=True, slots=True)
class Subscribed:
    generation: int


@dataclass(frozen=True, slots=True)
class SubscribeFailed:
    generation: int
    error: str


@dataclass(frozen=True, slots=True)
class ResubscribeDue:
    generation: int


@dataclass(frozen=True, slots=True)
class MqttLost:
    """The MQTT connection dropped (the client reconnects by itself)."""


@dataclass(frozen=True, slots=True)
class TakenOver:
    """DISCONNECT with SESSION_TAKEN_OVER: a newer socket for this charger reached another task."""


@dataclass(frozen=True, slots=True)
class Replaced:
    """A newer socket for this charger reached this task."""


@dataclass(frozen=True, slots=True)
class Fail:
    """The session must end: close the socket with ``code`` and ``reason``."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class ShutDown:
    """The bridge is stopping (the server closes the socket with 1001)."""

    reason: str = REASON_SHUTDOWN


@dataclass(frozen=True, slots=True)
class SocketClosed:
    """The WebSocket is closed (by either side) or lost."""


@dataclass(frozen=True, slots=True)
class TornDown:
    pass


Event = (
    SlotGranted
    | MqttConnected
    | Subscribed
    | SubscribeFailed
    | ResubscribeDue
    | MqttLost
    | TakenOver
    | Replaced
    | Fail
    | ShutDown
    | SocketClosed
    | TornDown
)


# --- actions -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StartClient:
    pass


@dataclass(frozen=True, slots=True)
class Subscribe:
    generation: int


@dataclass(frozen=True, slots=True)
class ScheduleResubscribe:
    generation: int
    delay: float


@dataclass(frozen=True, slots=True)
class Announce:
    """Publish a ``connected`` event (stamped at publish time); ``reason`` is None the first time."""

    reason: str | None
    first: bool


@dataclass(frozen=True, slots=True)
class Forward:
    """Hand the queued frames to the MQTT client, in order."""


@dataclass(frozen=True, slots=True)
class CountReconnect:
    pass


@dataclass(frozen=True, slots=True)
class CloseSocket:
    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class StopClient:
    """Stop the MQTT client now (takeover: reconnecting would steal the session back)."""


@dataclass(frozen=True, slots=True)
class Teardown:
    """End the session: flush accepted frames and publish ``disconnected`` unless taken over."""

    flush: bool
    publish_disconnected: bool
    reason: str | None


Action = (
    StartClient
    | Subscribe
    | ScheduleResubscribe
    | Announce
    | Forward
    | CountReconnect
    | CloseSocket
    | StopClient
    | Teardown
)


@dataclass(frozen=True, slots=True)
class Transition:
    state: SessionState
    actions: tuple[Action, ...] = ()


def _closing(state: SessionState, reason: str | None, *first: Action, taken_over: bool = False) -> Transition:
    reason = state.close_reason or reason
    new = replace(state, phase=Phase.CLOSING, close_reason=reason, taken_over=state.taken_over or taken_over)
    teardown = Teardown(
        flush=not new.taken_over, publish_disconnected=new.announced and not new.taken_over, reason=reason
    )
    return Transition(new, (*first, teardown))


def step(state: SessionState, event: Event, retry: SubscribeRetry = DEFAULT_RETRY) -> Transition:
    """The next state and the actions to perform, for one event. Pure and total: never raises."""
    phase = state.phase
    if phase is Phase.CLOSED:
        return Transition(state)
    if isinstance(event, TornDown):
        return Transition(replace(state, phase=Phase.CLOSED)) if phase is Phase.CLOSING else Transition(state)
    if phase is Phase.CLOSING:
        return Transition(state)  # one close path: whatever comes now changes nothing

    match event:
        case SlotGranted() if phase is Phase.WAITING:
            return Transition(replace(state, phase=Phase.CONNECTING), (StartClient(),))
        case MqttConnected() if phase in (Phase.CONNECTING, Phase.BROKER_LOST):
            generation = state.generation + 1
            new = replace(state, phase=Phase.SUBSCRIBING, generation=generation, subscribe_failures=0)
            actions: tuple[Action, ...] = (Subscribe(generation),)
            if state.generation > 0:
                actions = (CountReconnect(), *actions)
            return Transition(new, actions)
        case Subscribed(generation=g) if phase is Phase.SUBSCRIBING and g == state.generation:
            reconnected = state.generation > 1
            announce = Announce(REASON_MQTT_RECONNECTED if reconnected else None, first=not state.announced)
            return Transition(replace(state, phase=Phase.OPEN, announced=True), (announce, Forward()))
        case SubscribeFailed(generation=g) if phase is Phase.SUBSCRIBING and g == state.generation:
            failures = state.subscribe_failures + 1
            if failures >= retry.attempts:
                return _closing(
                    replace(state, subscribe_failures=failures),
                    REASON_SUBSCRIBE_FAILED,
                    CloseSocket(CLOSE_INTERNAL_ERROR, REASON_SUBSCRIBE_FAILED),
                )
            return Transition(
                replace(state, subscribe_failures=failures),
                (ScheduleResubscribe(g, retry.delay(failures)),),
            )
        case ResubscribeDue(generation=g) if phase is Phase.SUBSCRIBING and g == state.generation:
            return Transition(state, (Subscribe(g),))
        case MqttLost() if phase.mqtt_connected:
            return Transition(replace(state, phase=Phase.BROKER_LOST))
        case TakenOver():
            return _closing(
                state,
                REASON_TAKEN_OVER,
                StopClient(),
                CloseSocket(CLOSE_REPLACED, REASON_TAKEN_OVER),
                taken_over=True,
            )
        case Replaced():
            return _closing(state, REASON_REPLACED, CloseSocket(CLOSE_REPLACED, REASON_REPLACED))
        case Fail(code=code, reason=reason):
            return _closing(state, reason, CloseSocket(code, reason))
        case ShutDown(reason=reason):
            return Transition(replace(state, close_reason=state.close_reason or reason))
        case SocketClosed():
            return _closing(state, None)
    return Transition(state)  # an event that does not apply in this phase (late, stale or repeated)
