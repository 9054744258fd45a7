"""The site allocation (ocpp_core.smart_charging.allocation), property-tested.

Properties, for any limit, minimum, caps and any sequence of arrivals and departures:
* the shares never sum above the limit, and neither does any state on the way from the old
  shares to the new ones when the changes are applied in ``transition``'s order;
* every share is 0 (paused) or at least the minimum, and at most the session's cap (or the
  minimum, when the cap is below it);
* the sessions that charge are the ones that have waited longest: a paused session resumes
  before any that arrived after it (no starvation);
* nothing is wasted beyond rounding: unless every charging session is at its cap, the unused
  part of the limit is less than one rounding step per session.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_core.smart_charging.allocation import Session, allocate, transition

STEP = 0.1
EPSILON = 1e-6  # float sums of one-decimal values

limits = st.floats(0, 500, allow_nan=False)
minimums = st.floats(1, 32, allow_nan=False)
caps = st.one_of(st.none(), st.floats(0, 80, allow_nan=False))


def sessions(max_size: int = 12) -> st.SearchStrategy[list[Session]]:
    return st.lists(
        st.builds(
            Session, key=st.text("abcdef", min_size=1, max_size=4), waiting_since=st.integers(0, 10**6), cap=caps
        ),
        max_size=max_size,
        unique_by=lambda s: s.key,
    )


def check(limit: float, minimum: float, active: list[Session], shares: dict[str, float]) -> None:
    assert set(shares) == {s.key for s in active}
    assert sum(shares.values()) <= limit + EPSILON
    by_key = {s.key: s for s in active}
    for key, share in shares.items():
        cap = by_key[key].cap
        assert share == 0 or share >= minimum - EPSILON, (key, share)
        if share and cap is not None:
            assert share <= max(cap, minimum) + EPSILON, (key, share, cap)
    running = [s for s in active if shares[s.key] > 0]
    paused = [s for s in active if shares[s.key] == 0]
    assert len(running) == min(len(active), math.floor(limit / minimum + 1e-9))
    if running and paused:
        order = lambda s: (s.waiting_since, s.key)  # noqa: E731
        assert max(map(order, running)) < min(map(order, paused)), "a later arrival runs while an earlier one waits"
    uncapped = [s for s in running if s.cap is None or shares[s.key] < max(s.cap, minimum) - STEP]
    if uncapped:
        assert limit - sum(shares.values()) < STEP * len(running) + EPSILON


@given(limits, minimums, sessions())
def test_one_allocation_keeps_every_rule(limit: float, minimum: float, active: list[Session]) -> None:
    check(limit, minimum, active, allocate(limit, minimum, active))


@given(
    st.floats(1, 500, allow_nan=False),
    st.dictionaries(st.text("abc", max_size=2), st.floats(0, 50, allow_nan=False), max_size=6),
    st.dictionaries(st.text("abc", max_size=2), st.floats(0, 50, allow_nan=False), max_size=6),
)
def test_no_state_on_the_way_exceeds_the_larger_of_the_two_sums(
    limit: float, current: dict[str, float], target: dict[str, float]
) -> None:
    state = dict(current)
    bound = max(sum(current.values()), sum(target.values()))
    for key, value in transition(current, target):
        state[key] = value
        assert sum(state.values()) <= bound + EPSILON
    assert {k: v for k, v in state.items() if v} == {k: v for k, v in target.items() if v}


@settings(max_examples=200)
@given(limits, minimums, st.lists(st.tuples(st.booleans(), st.integers(0, 20), caps), max_size=40))
def test_any_sequence_of_arrivals_and_departures(
    limit: float, minimum: float, events: list[tuple[bool, int, float | None]]
) -> None:
    """Sessions come and go; the shares chargers hold follow ``transition`` step by step."""
    active: dict[str, Session] = {}
    held: dict[str, float] = {}
    clock = 0
    for arrive, pick, cap in events:
        clock += 1
        if arrive or not active:
            key = f"s{clock}"
            active[key] = Session(key, clock, cap)
        else:
            del active[sorted(active)[pick % len(active)]]
        shares = allocate(limit, minimum, list(active.values()))
        check(limit, minimum, list(active.values()), shares)
        for key, value in transition(held, shares):
            held[key] = value
            assert sum(held.values()) <= limit + EPSILON
        held = {k: v for k, v in held.items() if k in active}
    # No starvation: once everyone who arrived before a paused session has left, it charges.
    for key, session in active.items():
        earlier = [s for s in active.values() if (s.waiting_since, s.key) < (session.waiting_since, session.key)]
        if not earlier and limit >= minimum:
            assert allocate(limit, minimum, list(active.values()))[key] > 0


def test_examples_a_site_of_32_a_with_a_6_a_minimum() -> None:
    three = [Session("a", 1), Session("b", 2), Session("c", 3)]
    # what rounding down leaves of one share goes to the next: all 32 A are used
    assert allocate(32, 6, three) == {"a": 10.6, "b": 10.7, "c": 10.7}
    # an EV drawing 4 A gets the minimum; the others share what it leaves
    assert allocate(32, 6, [Session("a", 1, cap=4), *three[1:]]) == {"a": 6.0, "b": 13.0, "c": 13.0}
    six = [Session(k, n) for n, k in enumerate("abcdef")]
    assert allocate(32, 6, six) == {"a": 6.4, "b": 6.4, "c": 6.4, "d": 6.4, "e": 6.4, "f": 0.0}
    # lower first, then raise: b drops before the newcomer gets its share
    assert transition({"a": 16.0, "b": 16.0}, {"a": 10.6, "b": 10.7, "c": 10.7}) == [
        ("a", 10.6),
        ("b", 10.7),
        ("c", 10.7),
    ]


@pytest.mark.parametrize("limit, minimum", [(-1, 6), (32, 0), (math.nan, 6), (32, math.inf)])
def test_an_impossible_site_is_refused(limit: float, minimum: float) -> None:
    with pytest.raises(ValueError):
        allocate(limit, minimum, [Session("a", 1)])
