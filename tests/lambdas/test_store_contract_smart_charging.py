"""The smart-charging part of the StateStore contract (ocpp_core/ports.py), run against every implementation.

``OutboxStore``, ``BalanceStore``, ``ChargingProfileStore``, ``CallStore.get_outstanding`` /
``overdue_calls`` and the ``siteId`` copy ``put_site`` keeps on member chargers. As in
``test_store_contract.py``, each test runs on ``InMemoryStore`` and on ``DynamoStore`` over moto, both
reading the same fake clock; an expired item must read as absent while it is still stored.

Where the two adapters disagree, the test states the contract and its run on the adapter that breaks
it is a strict xfail (``_disagrees_on``): it turns into a failure once the adapter is fixed, so that
the mark is removed.
"""

from __future__ import annotations

import pytest

from ocpp_core.ports import ChargerInAnotherSite, ItemUpdate, StateStore
from tests.fakes import START_MS, FakeClock

NOW_S = START_MS // 1000


def _disagrees_on(request: pytest.FixtureRequest, kind: str, reason: str) -> None:
    """A strict xfail of this test's run on the ``kind`` store only (the other one keeps the contract)."""
    if request.node.callspec.params["store"] == kind:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


# --- outbox (OutboxStore) ------------------------------------------------------------------------


def _queued(action: str = "SetChargingProfile", queued_at: int = START_MS, **extra: object) -> dict[str, object]:
    return {
        "action": action,
        "payload": {"connectorId": 1, "csChargingProfiles": {"chargingProfileId": 7, "limit": 16.5}},
        "queuedAt": queued_at,
        "notAfter": queued_at + 600_000,
        "origin": {"kind": "balancing", "siteId": "S1"},
        "expiresAt": queued_at // 1000 + 4200,
        **extra,
    }


def _listed(cp: str, slot: str, seq: int, record: dict[str, object]) -> dict[str, object]:
    return {**record, "chargePointId": cp, "slot": slot, "seq": seq}


def test_a_call_is_queued_once_and_listed_with_its_slot_and_seq(store: StateStore) -> None:
    assert store.list_outbox("CP1") == []
    assert store.queue_outbox("CP1", "profile:1", _queued(), 1) is True
    assert store.list_outbox("CP1") == [_listed("CP1", "profile:1", 1, _queued())]


def test_a_redelivery_with_the_same_seq_changes_nothing(store: StateStore) -> None:
    assert store.queue_outbox("CP1", "profile:1", _queued(), 3)
    redelivered = _queued(queued_at=START_MS + 5_000, payload={"other": True})
    assert store.queue_outbox("CP1", "profile:1", redelivered, 3) is False
    assert store.list_outbox("CP1") == [_listed("CP1", "profile:1", 3, _queued())]


def test_a_higher_seq_replaces_the_call_but_keeps_its_place_in_the_queue(store: StateStore) -> None:
    assert store.queue_outbox("CP1", "profile:1", _queued(), 1)
    assert store.queue_outbox("CP1", "profile:2", _queued(queued_at=START_MS + 1_000), 1)
    newer = _queued(queued_at=START_MS + 2_000, payload={"connectorId": 1, "limit": 6.0})
    assert store.queue_outbox("CP1", "profile:1", newer, 2) is True
    # The replacement's content, the first queuedAt: still ahead of profile:2.
    assert store.list_outbox("CP1") == [
        _listed("CP1", "profile:1", 2, {**newer, "queuedAt": START_MS}),
        _listed("CP1", "profile:2", 1, _queued(queued_at=START_MS + 1_000)),
    ]


def test_a_replacement_drops_the_attributes_the_new_call_lacks(
    request: pytest.FixtureRequest, store: StateStore
) -> None:
    assert store.queue_outbox("CP1", "profile:1", _queued(evseId=2, note="first"), 1)
    assert store.queue_outbox("CP1", "profile:1", _queued(queued_at=START_MS + 1_000), 2)
    assert store.list_outbox("CP1") == [
        _listed("CP1", "profile:1", 2, {**_queued(queued_at=START_MS + 1_000), "queuedAt": START_MS})
    ]


def test_a_lower_seq_is_refused(store: StateStore) -> None:
    assert store.queue_outbox("CP1", "profile:1", _queued(), 5)
    assert store.queue_outbox("CP1", "profile:1", _queued(action="ClearChargingProfile"), 4) is False
    assert store.list_outbox("CP1") == [_listed("CP1", "profile:1", 5, _queued())]


def test_the_outbox_lists_oldest_queued_first(store: StateStore) -> None:
    for slot, queued_at in (("c", START_MS + 20), ("a", START_MS + 30), ("b", START_MS + 10)):
        assert store.queue_outbox("CP1", slot, _queued(queued_at=queued_at), 1)
    listed = store.list_outbox("CP1")
    assert [(r["slot"], r["queuedAt"]) for r in listed] == [
        ("b", START_MS + 10),
        ("c", START_MS + 20),
        ("a", START_MS + 30),
    ]


def test_the_outbox_of_a_charger_never_shows_another_chargers_calls(store: StateStore) -> None:
    assert store.queue_outbox("CP1", "profile:1", _queued(), 1)
    assert store.queue_outbox("CP10", "profile:1", _queued(action="ClearChargingProfile"), 1)
    assert store.queue_outbox("CP2", "profile:9", _queued(), 1)
    assert store.list_outbox("CP1") == [_listed("CP1", "profile:1", 1, _queued())]
    assert [r["chargePointId"] for r in store.list_outbox("CP10")] == ["CP10"]
    assert store.list_outbox("CP3") == []


def test_an_expired_queued_call_reads_as_absent(store: StateStore, clock: FakeClock) -> None:
    assert store.queue_outbox("CP1", "short", _queued(expiresAt=NOW_S + 60), 1)
    assert store.queue_outbox("CP1", "long", _queued(queued_at=START_MS + 1, expiresAt=NOW_S + 3600), 1)
    clock.advance(59)
    assert [r["slot"] for r in store.list_outbox("CP1")] == ["short", "long"]
    clock.advance(1)  # at expiresAt: absent, although nothing deleted it
    assert [r["slot"] for r in store.list_outbox("CP1")] == ["long"]


def test_a_queued_call_is_removed_only_with_its_current_seq(store: StateStore) -> None:
    assert store.queue_outbox("CP1", "profile:1", _queued(), 1)
    assert store.queue_outbox("CP1", "profile:1", _queued(), 2)
    # The sender of seq 1 comes back late: the replacement stays queued.
    assert store.remove_outbox("CP1", "profile:1", 1) is False
    assert store.remove_outbox("CP1", "profile:1", 3) is False
    assert [r["seq"] for r in store.list_outbox("CP1")] == [2]
    assert store.remove_outbox("CP1", "profile:1", 2) is True
    assert store.list_outbox("CP1") == []


def test_removing_an_absent_queued_call_is_false(store: StateStore) -> None:
    assert store.remove_outbox("CP1", "never-queued", 1) is False
    assert store.queue_outbox("CP1", "profile:1", _queued(), 1)
    assert store.remove_outbox("CP1", "profile:1", 1) is True
    assert store.remove_outbox("CP1", "profile:1", 1) is False
    assert store.remove_outbox("CP2", "profile:1", 1) is False  # another charger's slot of that name


def test_outbox_chargers_lists_each_charger_with_something_queued_once(store: StateStore) -> None:
    assert store.outbox_chargers() == []
    for cp, slot in (("CP2", "a"), ("CP1", "a"), ("CP2", "b"), ("CP10", "a")):
        assert store.queue_outbox(cp, slot, _queued(), 1)
    store.update_charger("CP3", {"registered": True})  # a charger with nothing queued
    chargers = store.outbox_chargers()
    assert sorted(chargers) == ["CP1", "CP10", "CP2"] and len(chargers) == 3


def test_outbox_chargers_forgets_a_charger_whose_calls_are_all_removed(store: StateStore) -> None:
    assert store.queue_outbox("CP1", "a", _queued(), 1)
    assert store.queue_outbox("CP1", "b", _queued(), 1)
    assert store.queue_outbox("CP2", "a", _queued(), 1)
    assert store.remove_outbox("CP1", "a", 1)
    assert sorted(store.outbox_chargers()) == ["CP1", "CP2"]
    assert store.remove_outbox("CP1", "b", 1)
    assert store.outbox_chargers() == ["CP2"]
    assert store.remove_outbox("CP2", "a", 1)
    assert store.outbox_chargers() == []


# --- the outstanding-call slot: get_outstanding, overdue_calls --------------------------------------


def _holder(record: dict[str, object] | None) -> dict[str, object] | None:
    return None if record is None else {"uniqueId": record["uniqueId"], "untilMs": record["untilMs"]}


def test_get_outstanding_returns_the_holder_even_past_its_timeout(store: StateStore, clock: FakeClock) -> None:
    assert store.get_outstanding("CP1") is None
    until = START_MS + 30_000
    assert store.acquire_outstanding("CP1", "c1", START_MS, until) is None
    assert _holder(store.get_outstanding("CP1")) == {"uniqueId": "c1", "untilMs": until}
    clock.advance(31)
    assert _holder(store.get_outstanding("CP1")) == {"uniqueId": "c1", "untilMs": until}
    assert store.get_outstanding("CP2") is None


def test_get_outstanding_returns_exactly_uniqueid_and_untilms(
    request: pytest.FixtureRequest, store: StateStore
) -> None:
    assert store.acquire_outstanding("CP1", "c1", START_MS, START_MS + 30_000) is None
    assert store.get_outstanding("CP1") == {"uniqueId": "c1", "untilMs": START_MS + 30_000}


def test_get_outstanding_is_none_after_release_and_names_a_new_holder(store: StateStore) -> None:
    until = START_MS + 30_000
    assert store.acquire_outstanding("CP1", "c1", START_MS, until) is None
    store.release_outstanding("CP1", "c1")
    assert store.get_outstanding("CP1") is None
    assert store.acquire_outstanding("CP1", "c2", START_MS + 1, until + 1) is None
    assert _holder(store.get_outstanding("CP1")) == {"uniqueId": "c2", "untilMs": until + 1}


def test_a_call_is_overdue_once_its_timeout_is_reached(store: StateStore) -> None:
    until = START_MS + 30_000
    assert store.acquire_outstanding("CP1", "c1", START_MS, until) is None
    assert store.overdue_calls(START_MS) == []
    assert store.overdue_calls(until - 1) == []
    assert store.overdue_calls(until) == [("CP1", "c1")]
    assert store.overdue_calls(until + 60_000) == [("CP1", "c1")]


def test_a_released_call_is_never_overdue(store: StateStore) -> None:
    until = START_MS + 30_000
    assert store.acquire_outstanding("CP1", "c1", START_MS, until) is None
    assert store.acquire_outstanding("CP2", "c2", START_MS, until) is None
    store.release_outstanding("CP1", "c1")
    assert store.overdue_calls(until) == [("CP2", "c2")]


def test_a_slot_taken_over_is_overdue_only_at_the_new_holders_timeout(store: StateStore) -> None:
    until = START_MS + 30_000
    assert store.acquire_outstanding("CP1", "c1", START_MS, until) is None
    assert store.acquire_outstanding("CP1", "c2", until, until + 30_000) is None
    assert store.overdue_calls(until) == []
    assert store.overdue_calls(until + 30_000) == [("CP1", "c2")]


def test_overdue_calls_lists_at_most_limit(store: StateStore) -> None:
    for n in range(5):
        assert store.acquire_outstanding(f"CP{n}", f"c{n}", START_MS, START_MS + 1_000 + n) is None
    everything = store.overdue_calls(START_MS + 10_000)
    assert sorted(everything) == [(f"CP{n}", f"c{n}") for n in range(5)]
    some = store.overdue_calls(START_MS + 10_000, limit=2)
    assert len(some) == 2 and set(some) <= set(everything)


def test_a_call_overdue_for_hours_is_still_listed_and_held(
    request: pytest.FixtureRequest, store: StateStore, clock: FakeClock
) -> None:
    """A timer that did not run for a while (an outage) must still find the call and time it out."""
    until = START_MS + 30_000
    assert store.acquire_outstanding("CP1", "c1", START_MS, until) is None
    clock.advance(2 * 3600)
    assert store.overdue_calls(clock.now_ms()) == [("CP1", "c1")]
    assert _holder(store.get_outstanding("CP1")) == {"uniqueId": "c1", "untilMs": until}


# --- balancing state (BalanceStore) ----------------------------------------------------------------


def _balance(version: int, **extra: object) -> dict[str, object]:
    return {
        "siteId": "S1",
        "version": version,
        "sessions": {
            "CP1/1": {"share": 0.5, "grantedAmps": 16, "transactionId": None, "since": START_MS},
            "CP2/1": {"share": 1.25, "grantedAmps": 6.5, "transactionId": "tx-9", "since": START_MS + 1},
        },
        "granted": {"CP1": {"amps": 16.5, "phases": 3}, "CP2": {}},
        **extra,
    }


def test_a_balance_is_created_only_when_absent(store: StateStore) -> None:
    assert store.get_balance("S1") is None
    assert store.put_balance("S1", _balance(1), 1) is False  # no record yet: a version is stale
    assert store.get_balance("S1") is None
    assert store.put_balance("S1", _balance(1), None) is True
    assert store.put_balance("S1", _balance(1, note="second creator"), None) is False
    assert store.get_balance("S1") == _balance(1)


def test_a_balance_is_replaced_only_over_the_version_read(store: StateStore) -> None:
    assert store.put_balance("S1", _balance(1), None)
    assert store.put_balance("S1", _balance(2, note="by A"), 1) is True
    assert store.get_balance("S1") == _balance(2, note="by A")
    # B read version 1 too and comes second: refused, and A's record stays whole.
    assert store.put_balance("S1", _balance(2, note="by B"), 1) is False
    assert store.put_balance("S1", _balance(4), 3) is False
    assert store.get_balance("S1") == _balance(2, note="by A")
    assert store.put_balance("S1", _balance(3), 2) is True
    assert store.get_balance("S1") == _balance(3)  # a whole-record write: "note" is gone


def test_a_balance_round_trips_nested_maps_with_their_types(store: StateStore) -> None:
    assert store.put_balance("S1", _balance(1), None)
    got = store.get_balance("S1")
    assert got == _balance(1)
    assert got is not None
    sessions = got["sessions"]
    assert type(sessions["CP1/1"]["share"]) is float and type(sessions["CP1/1"]["grantedAmps"]) is int
    assert type(sessions["CP2/1"]["grantedAmps"]) is float and sessions["CP1/1"]["transactionId"] is None
    assert type(got["granted"]["CP1"]["amps"]) is float and got["granted"]["CP2"] == {}
    assert type(got["version"]) is int


def test_balances_are_per_site(store: StateStore) -> None:
    assert store.put_balance("S1", _balance(1), None)
    assert store.get_balance("S2") is None
    assert store.put_balance("S2", {**_balance(7), "siteId": "S2"}, None)
    assert store.get_balance("S1") == _balance(1)


# --- charging profiles and composite schedules (ChargingProfileStore) ------------------------------


def _profile(profile_id: int, **extra: object) -> dict[str, object]:
    return {
        "chargingProfileId": profile_id,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]},
        **extra,
    }


def _stored_profile(cp: str, key: str, observed: int, record: dict[str, object]) -> dict[str, object]:
    return {**record, "profileKey": key, "chargePointId": cp, "observedAt": observed}


def test_a_charging_profile_is_written_with_its_key_and_observation(store: StateStore) -> None:
    assert store.list_charging_profiles("CP1") == []
    assert store.put_charging_profile("CP1", "C1#7", _profile(7), START_MS) is True
    assert store.list_charging_profiles("CP1") == [_stored_profile("CP1", "C1#7", START_MS, _profile(7))]
    assert store.list_charging_profiles("CP2") == []


def test_an_older_or_equal_observation_of_a_profile_is_refused(store: StateStore) -> None:
    assert store.put_charging_profile("CP1", "C1#7", _profile(7), START_MS)
    assert store.put_charging_profile("CP1", "C1#7", _profile(7, stackLevel=3), START_MS) is False
    assert store.put_charging_profile("CP1", "C1#7", _profile(7, stackLevel=4), START_MS - 1) is False
    assert store.list_charging_profiles("CP1") == [_stored_profile("CP1", "C1#7", START_MS, _profile(7))]


def test_a_newer_observation_replaces_the_whole_profile_record(store: StateStore) -> None:
    assert store.put_charging_profile("CP1", "C1#7", _profile(7, validTo="2025-07-01T00:00:00Z", note="x"), START_MS)
    newer = {"chargingProfileId": 7, "stackLevel": 2, "chargingSchedule": {"chargingRateUnit": "W"}}
    assert store.put_charging_profile("CP1", "C1#7", newer, START_MS + 1) is True
    # Attributes the new record lacks (validTo, note, chargingProfilePurpose) are gone.
    assert store.list_charging_profiles("CP1") == [_stored_profile("CP1", "C1#7", START_MS + 1, newer)]


def test_charging_profiles_list_in_key_order(store: StateStore) -> None:
    for key in ("E2#1", "C1#10", "E0#3", "C1#2"):
        assert store.put_charging_profile("CP1", key, _profile(1), START_MS)
    assert store.put_charging_profile("CP10", "A#1", _profile(1), START_MS)  # another charger's
    assert [r["profileKey"] for r in store.list_charging_profiles("CP1")] == ["C1#10", "C1#2", "E0#3", "E2#1"]


def test_charging_profiles_are_deleted_by_key_ignoring_unknown_ones(store: StateStore) -> None:
    for key in ("a", "b", "c"):
        assert store.put_charging_profile("CP1", key, _profile(1), START_MS)
    assert store.put_charging_profile("CP2", "a", _profile(1), START_MS)
    store.delete_charging_profiles("CP1", ["a", "unknown", "c", "a"])
    assert [r["profileKey"] for r in store.list_charging_profiles("CP1")] == ["b"]
    assert [r["profileKey"] for r in store.list_charging_profiles("CP2")] == ["a"]  # not this charger's
    store.delete_charging_profiles("CP1", [])
    store.delete_charging_profiles("CP9", ["a"])
    assert [r["profileKey"] for r in store.list_charging_profiles("CP1")] == ["b"]


def test_more_than_25_charging_profiles_are_deleted_at_once(store: StateStore) -> None:
    profile_keys = [f"E1#{n:03d}" for n in range(60)]
    for key in profile_keys:
        assert store.put_charging_profile("CP1", key, _profile(1), START_MS)
    doomed = [key for key in profile_keys if key != "E1#030"] + [f"gone#{n}" for n in range(10)]
    store.delete_charging_profiles("CP1", doomed)
    assert [r["profileKey"] for r in store.list_charging_profiles("CP1")] == ["E1#030"]


def test_a_deleted_profile_can_be_written_again_by_any_observation(store: StateStore) -> None:
    assert store.put_charging_profile("CP1", "C1#7", _profile(7), START_MS + 10)
    store.delete_charging_profiles("CP1", ["C1#7"])
    assert store.put_charging_profile("CP1", "C1#7", _profile(7), START_MS) is True
    assert store.list_charging_profiles("CP1") == [_stored_profile("CP1", "C1#7", START_MS, _profile(7))]


def _composite(limit: float) -> dict[str, object]:
    return {
        "scheduleStart": "2025-06-15T15:06:40Z",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}]},
        "receivedAt": START_MS,
    }


def test_composite_schedules_are_put_replaced_and_listed_in_label_order(store: StateStore) -> None:
    assert store.list_composite_schedules("CP1") == []
    store.put_composite_schedule("CP1", "E2", _composite(16.0))
    store.put_composite_schedule("CP1", "E0", _composite(32.0))
    store.put_composite_schedule("CP1", "E2", _composite(10.5))
    store.put_composite_schedule("CP2", "E0", _composite(6.0))
    assert store.list_composite_schedules("CP1") == [
        {**_composite(32.0), "label": "E0", "chargePointId": "CP1"},
        {**_composite(10.5), "label": "E2", "chargePointId": "CP1"},
    ]
    assert [r["label"] for r in store.list_composite_schedules("CP2")] == ["E0"]


def test_composite_schedules_and_profiles_do_not_mix(store: StateStore) -> None:
    store.put_composite_schedule("CP1", "E0", _composite(32.0))
    assert store.put_charging_profile("CP1", "E0", _profile(1), START_MS)
    assert [r["label"] for r in store.list_composite_schedules("CP1")] == ["E0"]
    assert [r["profileKey"] for r in store.list_charging_profiles("CP1")] == ["E0"]
    assert store.list_outbox("CP1") == []


# --- the site's copy on its member chargers (put_site's ``siteId``) ----------------------------------


def _site(site_id: str, chargers: list[str]) -> dict[str, object]:
    return {"siteId": site_id, "limitAmps": 63, "phases": 3, "minAmps": 6, "chargers": chargers}


def _site_marks(store: StateStore, *chargers: str) -> dict[str, object]:
    found: dict[str, object] = {}
    for cp in chargers:
        charger = store.get_charger(cp)
        found[cp] = None if charger is None else charger.get("siteId")
    return found


def test_a_member_charger_keeps_a_copy_of_its_site_id(store: StateStore) -> None:
    for cp in ("CP1", "CP2", "CP3"):
        store.update_charger(cp, {"registered": True})
    store.put_site("S1", _site("S1", ["CP1", "CP2"]), [])
    assert store.get_charger("CP1") == {"chargePointId": "CP1", "registered": True, "siteId": "S1"}
    assert _site_marks(store, "CP1", "CP2", "CP3") == {"CP1": "S1", "CP2": "S1", "CP3": None}


def test_a_member_without_a_charger_item_gets_none_created(store: StateStore) -> None:
    store.put_site("S1", _site("S1", ["CP-not-yet-booted"]), [])
    assert store.get_charger("CP-not-yet-booted") is None
    assert store.site_of("CP-not-yet-booted") == "S1"


def test_a_member_whose_item_is_created_later_gets_the_copy_then(store: StateStore) -> None:
    """Sites are set up before their chargers first come online: whichever write creates the
    charger's item (its first connect, its registration, a boot processed before the connect)
    copies its site onto it, or its transactions would never be balanced."""
    store.put_site("S1", _site("S1", ["CP-CONNECTS", "CP-REGISTERED", "CP-BOOTS"]), [])
    recorded = store.record_connection(
        "CP-CONNECTS", "c1", connected=True, at_ms=START_MS, charger_changes={}, connection_changes={}
    )
    assert (recorded.current, recorded.site_id) == (True, "S1")
    store.update_charger("CP-REGISTERED", {"registered": True})
    assert store.update_charger_fields("CP-BOOTS", ItemUpdate(set={"bootStatus": "Accepted"}))
    assert store.update_charger_fields("CP-FREE", ItemUpdate(set={"bootStatus": "Accepted"}))
    marks = _site_marks(store, "CP-CONNECTS", "CP-REGISTERED", "CP-BOOTS", "CP-FREE")
    assert marks == {"CP-CONNECTS": "S1", "CP-REGISTERED": "S1", "CP-BOOTS": "S1", "CP-FREE": None}


def test_a_connect_returns_the_site_of_the_charger_it_makes_current(store: StateStore) -> None:
    store.update_charger("CP1", {"registered": True})
    store.update_charger("CP2", {"registered": True})
    store.put_site("S1", _site("S1", ["CP1"]), [])

    def connect(cp: str, connection: str, at_ms: int) -> tuple[bool, bool, str | None]:
        got = store.record_connection(
            cp, connection, connected=True, at_ms=at_ms, charger_changes={}, connection_changes={}
        )
        return got.changed, got.current, got.site_id

    assert connect("CP1", "new", START_MS + 10) == (True, True, "S1")
    assert connect("CP2", "c", START_MS) == (True, True, None)
    # an older socket's late connected event: its connection is kept, the charger's current is not it
    assert connect("CP1", "old", START_MS) == (True, False, None)
    assert connect("CP1", "new", START_MS + 10) == (False, False, None), "a duplicate changes nothing"
    disconnected = store.record_connection(
        "CP1", "new", connected=False, at_ms=START_MS + 20, charger_changes={}, connection_changes={}
    )
    assert (disconnected.changed, disconnected.current, disconnected.site_id) == (True, False, None)


def test_the_copy_is_removed_when_the_site_drops_the_charger(store: StateStore) -> None:
    for cp in ("CP1", "CP2", "CP3"):
        store.update_charger(cp, {"registered": True})
    store.put_site("S1", _site("S1", ["CP1", "CP2"]), [])
    store.put_site("S1", _site("S1", ["CP2", "CP3"]), ["CP1", "CP2"])
    assert _site_marks(store, "CP1", "CP2", "CP3") == {"CP1": None, "CP2": "S1", "CP3": "S1"}
    assert store.get_charger("CP1") == {"chargePointId": "CP1", "registered": True}
    store.put_site("S1", _site("S1", []), ["CP2", "CP3"])
    assert _site_marks(store, "CP2", "CP3") == {"CP2": None, "CP3": None}


def test_the_copy_is_removed_even_when_the_caller_read_a_stale_charger_list(store: StateStore) -> None:
    store.update_charger("CP1", {"registered": True})
    store.put_site("S1", _site("S1", ["CP1"]), [])
    store.put_site("S1", _site("S1", []), [])  # the caller did not know CP1: the store did
    assert _site_marks(store, "CP1") == {"CP1": None}


def test_another_sites_chargers_keep_their_copy(store: StateStore) -> None:
    for cp in ("CP1", "CP2", "CP3", "CP4"):
        store.update_charger(cp, {"registered": True})
    store.put_site("S1", _site("S1", ["CP1"]), [])
    store.put_site("S2", _site("S2", ["CP2", "CP3"]), [])
    # S1 changes, with a stale previous list naming S2's charger: S2's copies stay.
    store.put_site("S1", _site("S1", ["CP4"]), ["CP1", "CP2"])
    assert _site_marks(store, "CP1", "CP2", "CP3", "CP4") == {"CP1": None, "CP2": "S2", "CP3": "S2", "CP4": "S1"}


def test_a_refused_put_site_leaves_every_copy_as_it_was(store: StateStore) -> None:
    for cp in ("CP1", "CP2", "CP3"):
        store.update_charger(cp, {"registered": True})
    store.put_site("S1", _site("S1", ["CP1"]), [])
    with pytest.raises(ChargerInAnotherSite):
        store.put_site("S2", _site("S2", ["CP2", "CP1", "CP3"]), [])
    assert _site_marks(store, "CP1", "CP2", "CP3") == {"CP1": "S1", "CP2": None, "CP3": None}
