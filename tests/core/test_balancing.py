"""The balancing state machine (ocpp_core.smart_charging.balancing), property-tested against a
model of the chargers that says what limit is *physically* in force on each session.

The model: a site with limit L and minimum m, four chargers. Each charger first accepts the site's
default profile (TxDefaultProfile at 0: a session starts paused until its TxProfile arrives; the
site is set up before its first session). Then any sequence of: a session starts, a session ends,
a charger answers the oldest call in its outbox (accepts it; rejects it; never answers, having
applied it or not; or the call expires unsent), a charger reconnects, an EV reports what it draws.
Answers of different chargers come in any order; each charger answers its own calls in order (one
outstanding call per direction, OCPP-J 1.6 §4.1.1 / 2.0.1 part 4 §4.2.1).

Properties:
* **safety**: after every step, the limits in force on the active sessions sum to at most L, even
  when chargers reject, never answer (applying the profile or not) or go offline;
* **minimum**: every share is 0 or at least m;
* **liveness**: once the chargers answer everything, every active session has exactly its share
  in force, and the shares are what ``allocate`` gives.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from ocpp_core.smart_charging.allocation import Session, allocate
from ocpp_core.smart_charging.balancing import (
    ACTIVE,
    Send,
    SiteLimits,
    add_session,
    charger_reconnected,
    empty_state,
    end_session,
    known_charger,
    observe_draw,
    plan,
    record_result,
)

CHARGERS = ("CP1", "CP2", "CP3", "CP4")
EPSILON = 1e-6


@dataclass
class World:
    site: SiteLimits
    state: dict[str, Any] = field(default_factory=lambda: empty_state("S1"))
    #: per charger, the calls queued or out, oldest first; one per slot (a newer one replaces it)
    outbox: dict[str, dict[str, Mapping[str, Any]]] = field(default_factory=lambda: {cp: {} for cp in CHARGERS})
    #: the TxProfile limit in force per session, as the charger applies it
    in_force: dict[str, float] = field(default_factory=dict)
    default_in_force: dict[str, bool] = field(default_factory=lambda: dict.fromkeys(CHARGERS, False))
    now: int = 1_000_000
    ids: itertools.count = field(default_factory=itertools.count)

    def queue(self, sends: list[Send]) -> None:
        for send in sends:
            if send.probe:
                continue  # a read of the charger's rate units: no limit in it
            origin = {
                "key": send.key,
                "chargePointId": send.charge_point_id,
                "limit": send.limit,
                "default": send.default,
            }
            self.outbox[send.charge_point_id][send.key] = origin

    def step(self, change: Any = None) -> None:
        self.now += 1000
        if change is not None:
            change(self.state)
        self.queue(plan(self.state, self.site, self.now))

    def active(self) -> dict[str, dict[str, Any]]:
        return {k: s for k, s in self.state["sessions"].items() if s["state"] == ACTIVE}

    def limit_in_force(self, key: str, session: Mapping[str, Any]) -> float:
        if key in self.in_force:
            return self.in_force[key]
        assert self.default_in_force[session["chargePointId"]], "a session started before its charger's default"
        return 0.0

    def answer(self, cp: str, how: str) -> None:
        if not self.outbox[cp]:
            return
        key = next(iter(self.outbox[cp]))
        origin = self.outbox[cp].pop(key)
        applied = how in ("accept", "timeout-applied")
        if applied:
            if origin["default"]:
                self.default_in_force[cp] = True
            elif key in self.active():
                self.in_force[key] = float(origin["limit"])
        outcome = {"accept": "accepted", "reject": "rejected", "expire": "expired"}.get(how, "timeout")
        self.step(lambda state: record_result(state, origin, outcome, how, self.now))

    def check(self) -> None:
        active = self.active()
        total = sum(self.limit_in_force(key, s) for key, s in active.items())
        assert total <= self.site.limit + EPSILON, (total, self.site.limit, self.state)
        for session in active.values():
            share = float(session["share"])
            assert share == 0 or share >= self.site.minimum - EPSILON


def setup(limit: float, minimum: float) -> World:
    world = World(SiteLimits(limit, minimum, "A", 3, frozenset(CHARGERS)))
    for cp in CHARGERS:
        known_charger(world.state, cp, "ocpp1.6")
    world.step()
    for cp in CHARGERS:
        world.answer(cp, "accept")
    assert all(world.default_in_force.values())
    return world


events = st.lists(
    st.one_of(
        st.tuples(st.just("start"), st.sampled_from(CHARGERS)),
        st.tuples(st.just("end"), st.integers(0, 30)),
        st.tuples(
            st.just("answer"),
            st.sampled_from(CHARGERS),
            st.sampled_from(["accept", "accept", "accept", "reject", "timeout-applied", "timeout-lost", "expire"]),
        ),
        st.tuples(st.just("reconnect"), st.sampled_from(CHARGERS)),
        st.tuples(st.just("draw"), st.integers(0, 30), st.floats(0, 40, allow_nan=False)),
    ),
    max_size=60,
)


def run(world: World, script: list[tuple[Any, ...]]) -> None:
    started: list[str] = []
    for event in script:
        kind = event[0]
        if kind == "start":
            key = f"{event[1]}|tx{next(world.ids)}"
            started.append(key)
            info = {"chargePointId": event[1], "transactionId": key, "protocol": "ocpp1.6", "connectorId": 1}
            world.step(lambda state, key=key, info=info: add_session(state, key, info, world.now))
        elif kind == "end" and started:
            key = started[event[1] % len(started)]
            info = {"chargePointId": key.split("|")[0], "transactionId": key}
            world.step(lambda state, key=key, info=info: end_session(state, key, info, world.now))
            world.in_force.pop(key, None)  # a TxProfile ends with its transaction
        elif kind == "answer":
            world.answer(event[1], event[2])
        elif kind == "reconnect":
            world.step(lambda state, cp=event[1]: charger_reconnected(state, cp, "ocpp1.6"))
        elif kind == "draw" and started:
            key = started[event[1] % len(started)]
            world.step(lambda state, key=key, amps=event[2]: observe_draw(state, key, amps, world.now))
        world.check()


@settings(max_examples=300, deadline=None)
@given(limit=st.integers(6, 80), minimum=st.sampled_from([6.0, 8.0, 10.0]), script=events)
def test_the_limits_in_force_never_exceed_the_site_limit(limit: int, minimum: float, script: list[Any]) -> None:
    world = setup(float(limit), minimum)
    run(world, script)


@settings(max_examples=200, deadline=None)
@given(limit=st.integers(6, 80), minimum=st.sampled_from([6.0, 8.0, 10.0]), script=events)
# Found by this test: a reconnect forgot a profile still out, which the charger then applied.
@example(
    limit=18,
    minimum=6.0,
    script=[
        ("start", "CP1"),
        ("start", "CP2"),
        ("start", "CP2"),
        ("end", 0),
        ("start", "CP1"),
        ("answer", "CP2", "accept"),
    ],
)
def test_once_the_chargers_answer_every_session_has_its_share(limit: int, minimum: float, script: list[Any]) -> None:
    world = setup(float(limit), minimum)
    run(world, script)
    for cp in CHARGERS:  # failures and offline marks are forgotten when a charger reconnects
        world.step(lambda state, cp=cp: charger_reconnected(state, cp, "ocpp1.6"))
    for _ in range(200):
        pending = [cp for cp in CHARGERS if world.outbox[cp]]
        if not pending:
            break
        for cp in pending:
            world.answer(cp, "accept")
        world.check()
    assert not any(world.outbox.values()), "the outbox never emptied"
    active = world.active()
    expected = allocate(
        world.site.limit,
        world.site.minimum,
        [Session(k, int(s["waitingSince"]), s.get("cap")) for k, s in active.items()],
        step=world.site.step,
    )
    for key, session in active.items():
        assert session["share"] == expected[key]
        assert world.limit_in_force(key, session) == expected[key], (key, session)


def test_an_increase_waits_until_the_decrease_it_needs_is_accepted() -> None:
    world = setup(32.0, 6.0)
    run(world, [("start", "CP1")])
    world.answer("CP1", "accept")
    assert world.in_force["CP1|tx0"] == 32
    run(world, [("start", "CP2")])
    # CP1 is lowered to 16; CP2 (at 0 under its default) may not get 16 before CP1 accepts.
    assert [o["limit"] for o in world.outbox["CP1"].values()] == [16]
    assert world.outbox["CP2"] == {}
    world.answer("CP1", "reject")
    assert world.outbox["CP2"] == {}, "raised on the account of a decrease that was rejected"
    world.answer("CP1", "accept")  # the retry
    assert [o["limit"] for o in world.outbox["CP2"].values()] == [16]
    world.answer("CP2", "accept")
    assert world.in_force == {"CP1|tx0": 16, "CP2|tx1": 16}


def test_a_session_that_ended_is_not_revived_by_its_late_start() -> None:
    world = setup(32.0, 6.0)
    info = {"chargePointId": "CP1", "transactionId": "late", "protocol": "ocpp1.6", "connectorId": 1}
    world.step(lambda state: end_session(state, "CP1|late", info, world.now))
    world.step(lambda state: add_session(state, "CP1|late", info, world.now))
    assert world.active() == {}
    assert world.outbox["CP1"] == {}


def test_a_charger_that_never_answers_is_reported_after_three_attempts() -> None:
    world = setup(32.0, 6.0)
    run(
        world, [("start", "CP1"), ("answer", "CP1", "reject"), ("answer", "CP1", "reject"), ("answer", "CP1", "reject")]
    )
    session = world.active()["CP1|tx0"]
    assert session["failed"] and session["failures"] == 3 and "rejected" in session["lastError"]
    assert world.outbox["CP1"] == {}  # no more retries...
    run(world, [("reconnect", "CP1")])
    # ...until it reconnects: then its default profile and the session's are sent again.
    assert [(o["default"], o["limit"]) for o in world.outbox["CP1"].values()] == [(True, 0), (False, 32)]


def test_an_ev_drawing_less_than_its_share_leaves_the_rest_to_the_others() -> None:
    world = setup(32.0, 6.0)
    run(world, [("start", "CP1"), ("answer", "CP1", "accept"), ("start", "CP2")])
    for _ in range(4):
        for cp in CHARGERS:
            world.answer(cp, "accept")
    assert world.in_force == {"CP1|tx0": 16, "CP2|tx1": 16}
    for _ in range(70):  # CP1's EV draws 8 A for more than a minute
        world.step(lambda state: observe_draw(state, "CP1|tx0", 8.0, world.now))
    for _ in range(4):
        for cp in CHARGERS:
            world.answer(cp, "accept")
        world.check()
    assert world.in_force["CP1|tx0"] == 9.6  # 8 A and its headroom
    assert world.in_force["CP2|tx1"] == 22.4  # the rest
