"""The session state machine, without an event loop: events in, state and actions out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fargate_bridge.lifecycle import (
    CLOSE_INTERNAL_ERROR,
    CLOSE_REPLACED,
    REASON_MQTT_RECONNECTED,
    REASON_REPLACED,
    REASON_SUBSCRIBE_FAILED,
    REASON_TAKEN_OVER,
    Announce,
    CloseSocket,
    CountReconnect,
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


def run(events, state: SessionState | None = None, retry: SubscribeRetry = SubscribeRetry()):
    state = state or SessionState()
    actions = []
    for event in events:
        transition = step(state, event, retry)
        state = transition.state
        actions.extend(transition.actions)
    return state, actions


def open_state() -> SessionState:
    state, _ = run([SlotGranted(), MqttConnected(rejoined=False), Subscribed(1)])
    assert state.phase is Phase.OPEN
    return state


def test_frames_flow_only_after_the_suback():
    state, actions = run([SlotGranted()])
    assert (state.phase, actions) == (Phase.CONNECTING, [StartClient()])
    state, actions = run([MqttConnected(rejoined=False)], state)
    assert state.phase is Phase.SUBSCRIBING  # CONNACK alone does not open the session
    assert actions == [Subscribe(1)]
    assert Forward() not in actions
    state, actions = run([Subscribed(1)], state)
    assert state.phase is Phase.OPEN
    assert actions == [Announce(None, first=True), Forward()]  # announced, then the queued frames


def test_a_rejoined_session_still_resubscribes():
    state, actions = run([MqttLost(), MqttConnected(rejoined=True)], open_state())
    assert state.phase is Phase.SUBSCRIBING
    assert actions == [CountReconnect(), Subscribe(2)]
    state, actions = run([Subscribed(2)], state)
    assert state.phase is Phase.OPEN
    assert actions == [Announce(REASON_MQTT_RECONNECTED, first=False), Forward()]


def test_a_failed_suback_is_retried_with_backoff_then_closes_with_1011():
    retry = SubscribeRetry(attempts=3, base=0.5, cap=8.0)
    state, _ = run([SlotGranted(), MqttConnected(rejoined=False)], retry=retry)
    state, actions = run([SubscribeFailed(1, "SUBACK NOT_AUTHORIZED")], state, retry)
    assert (state.phase, actions) == (Phase.SUBSCRIBING, [ScheduleResubscribe(1, 0.5)])
    state, actions = run([ResubscribeDue(1)], state, retry)
    assert actions == [Subscribe(1)]
    state, actions = run([SubscribeFailed(1, "again")], state, retry)
    assert actions == [ScheduleResubscribe(1, 1.0)]
    state, actions = run([ResubscribeDue(1), SubscribeFailed(1, "and again")], state, retry)
    assert state.phase is Phase.CLOSING
    assert actions == [
        Subscribe(1),
        CloseSocket(CLOSE_INTERNAL_ERROR, REASON_SUBSCRIBE_FAILED),
        Teardown(flush=True, publish_disconnected=False, reason=REASON_SUBSCRIBE_FAILED),
    ]


def test_a_retry_succeeding_opens_the_session():
    state, _ = run([SlotGranted(), MqttConnected(rejoined=False), SubscribeFailed(1, "x"), ResubscribeDue(1)])
    state, actions = run([Subscribed(1)], state)
    assert state.phase is Phase.OPEN and Forward() in actions


def test_outcomes_of_an_earlier_connection_are_ignored():
    # SUBSCRIBE of connection 1 still pending when the connection drops and comes back.
    state, _ = run([SlotGranted(), MqttConnected(rejoined=False), MqttLost(), MqttConnected(rejoined=True)])
    assert (state.phase, state.generation) == (Phase.SUBSCRIBING, 2)
    state, actions = run([Subscribed(1), ResubscribeDue(1), SubscribeFailed(1, "late")], state)
    assert (state.phase, actions, state.subscribe_failures) == (Phase.SUBSCRIBING, [], 0)
    state, actions = run([Subscribed(2)], state)
    assert state.phase is Phase.OPEN


def test_losing_the_broker_keeps_the_socket_and_queues():
    state, actions = run([MqttLost()], open_state())
    assert (state.phase, actions) == (Phase.BROKER_LOST, [])  # nothing closes, frames wait


def test_taken_over_stops_the_client_and_publishes_nothing():
    state, actions = run([TakenOver()], open_state())
    assert state.phase is Phase.CLOSING and state.taken_over
    assert actions == [
        StopClient(),
        CloseSocket(CLOSE_REPLACED, REASON_TAKEN_OVER),
        Teardown(flush=False, publish_disconnected=False, reason=REASON_TAKEN_OVER),
    ]


def test_replaced_closes_with_4000_and_reports_the_disconnection():
    _state, actions = run([Replaced()], open_state())
    assert actions == [
        CloseSocket(CLOSE_REPLACED, REASON_REPLACED),
        Teardown(flush=True, publish_disconnected=True, reason=REASON_REPLACED),
    ]


def test_never_announced_never_reports_a_disconnection():
    _state, actions = run([SlotGranted(), SocketClosed()])
    assert actions[-1] == Teardown(flush=True, publish_disconnected=False, reason=None)


def test_shutdown_reason_is_kept_for_the_close():
    _state, actions = run([ShutDown("bridge shutting down"), SocketClosed()], open_state())
    assert actions == [Teardown(flush=True, publish_disconnected=True, reason="bridge shutting down")]


def test_one_close_path():
    state, actions = run([Fail(1008, "too many frames"), SocketClosed(), Replaced(), TakenOver()], open_state())
    assert [a for a in actions if isinstance(a, Teardown)] == [
        Teardown(flush=True, publish_disconnected=True, reason="too many frames")
    ]
    state, actions = run([TornDown(), MqttConnected(rejoined=False), SocketClosed()], state)
    assert (state.phase, actions) == (Phase.CLOSED, [])


EVENTS = st.sampled_from(
    [
        SlotGranted(),
        MqttConnected(rejoined=False),
        MqttConnected(rejoined=True),
        Subscribed(1),
        Subscribed(2),
        SubscribeFailed(1, "x"),
        SubscribeFailed(2, "x"),
        ResubscribeDue(1),
        ResubscribeDue(2),
        MqttLost(),
        TakenOver(),
        Replaced(),
        Fail(1011, "x"),
        ShutDown(),
        SocketClosed(),
        TornDown(),
    ]
)


@given(st.lists(EVENTS, max_size=40))
def test_invariants_under_any_event_order(events):
    state = SessionState()
    teardowns = 0
    for event in events:
        before = state
        transition = step(state, event)
        state = transition.state
        teardowns += sum(isinstance(a, Teardown) for a in transition.actions)
        # Frames are forwarded only by the SUBACK of the current connection.
        if Forward() in transition.actions:
            assert isinstance(event, Subscribed) and event.generation == before.generation
            assert state.phase is Phase.OPEN
        # The session never leaves CLOSING/CLOSED once there.
        if not before.phase.live:
            assert not state.phase.live
    assert teardowns <= 1
