"""The StateStore contract (ocpp_core/ports.py), run against every implementation.

Each test runs twice through the parametrized ``store`` fixture: on ``InMemoryStore`` and on
``DynamoStore`` over moto, both reading the same fake clock. TTL deletion in DynamoDB is lazy
(DESIGN §6), so an expired item must read as absent even while it is still stored: the tests
advance the clock past ``expiresAt`` without anything deleting the item.
"""

from __future__ import annotations

import itertools
import threading

import pytest

from lambdas.adapters.dynamo import DynamoStore
from ocpp_core import calls, keys
from ocpp_core.memory_store import InMemoryStore
from ocpp_core.ports import ChargerInAnotherSite, ItemUpdate, Newer, ProcessedMessage, SiteBusy, StateStore
from tests.fakes import START_MS, FakeClock, SeqIds, charger_connected, mark_connected, mark_disconnected

NOW_S = START_MS // 1000


# --- idempotency records (MessageLog) ------------------------------------------------------


def test_first_claim_owns_the_message_and_a_second_claim_sees_it_in_progress(store: StateStore) -> None:
    assert store.claim_message("CP1", "m1", START_MS, NOW_S + 60) is None
    assert store.claim_message("CP1", "m1", START_MS, NOW_S + 60) == ProcessedMessage("in_progress", None)
    assert store.claim_message("CP1", "m1", START_MS + 5_000, NOW_S + 60) == ProcessedMessage("in_progress", None)


def test_a_completed_message_gives_back_its_stored_reply(store: StateStore) -> None:
    assert store.claim_message("CP1", "m1", START_MS, NOW_S + 60) is None
    store.complete_message("CP1", "m1", '[3,"m1",{}]', NOW_S + 60)
    assert store.claim_message("CP1", "m1", START_MS, NOW_S + 60) == ProcessedMessage("completed", '[3,"m1",{}]')
    # Still the same on every later redelivery: a claim does not overwrite a completed record.
    assert store.claim_message("CP1", "m1", START_MS + 1000, NOW_S + 60) == ProcessedMessage("completed", '[3,"m1",{}]')


def test_a_message_completed_without_a_reply_is_remembered_as_such(store: StateStore) -> None:
    assert store.claim_message("CP1", "send-1", START_MS, NOW_S + 60) is None
    store.complete_message("CP1", "send-1", None, NOW_S + 60)
    assert store.claim_message("CP1", "send-1", START_MS, NOW_S + 60) == ProcessedMessage("completed", None)


def test_a_released_claim_can_be_taken_again(store: StateStore) -> None:
    assert store.claim_message("CP1", "m1", START_MS, NOW_S + 60) is None
    store.release_message("CP1", "m1")
    assert store.claim_message("CP1", "m1", START_MS, NOW_S + 60) is None
    assert store.claim_message("CP1", "m1", START_MS, NOW_S + 60) == ProcessedMessage("in_progress", None)


def test_releasing_an_unknown_message_is_a_no_op(store: StateStore) -> None:
    store.release_message("CP1", "never-claimed")
    assert store.claim_message("CP1", "never-claimed", START_MS, NOW_S + 60) is None


def test_claims_are_per_charger_and_unique_id(store: StateStore) -> None:
    assert store.claim_message("CP1", "m1", START_MS, NOW_S + 60) is None
    assert store.claim_message("CP2", "m1", START_MS, NOW_S + 60) is None
    assert store.claim_message("CP1", "m2", START_MS, NOW_S + 60) is None
    store.complete_message("CP2", "m1", "reply-of-cp2", NOW_S + 60)
    assert store.claim_message("CP1", "m1", START_MS, NOW_S + 60) == ProcessedMessage("in_progress", None)
    assert store.claim_message("CP2", "m1", START_MS, NOW_S + 60) == ProcessedMessage("completed", "reply-of-cp2")


def test_an_expired_idempotency_record_counts_as_absent(store: StateStore) -> None:
    expires = NOW_S + 60
    assert store.claim_message("CP1", "m1", START_MS, expires) is None
    store.complete_message("CP1", "m1", "old reply", expires)
    # One second before expiry the record still holds ...
    just_before = (expires - 1) * 1000 + 999
    assert store.claim_message("CP1", "m1", just_before, expires) == ProcessedMessage("completed", "old reply")
    # ... at expiry it counts as absent although nothing deleted it: the new claim wins.
    assert store.claim_message("CP1", "m1", expires * 1000, expires + 60) is None
    assert store.claim_message("CP1", "m1", expires * 1000, expires + 60) == ProcessedMessage("in_progress", None)


def test_an_expired_in_progress_claim_can_be_taken_over(store: StateStore) -> None:
    # A processor that crashed between claim and complete leaves an in_progress record behind.
    assert store.claim_message("CP1", "m1", START_MS, NOW_S + 10) is None
    assert store.claim_message("CP1", "m1", START_MS + 9_000, NOW_S + 70) == ProcessedMessage("in_progress", None)
    assert store.claim_message("CP1", "m1", START_MS + 10_000, NOW_S + 70) is None


# --- charger registry and presence ------------------------------------------------------------


def test_an_unknown_charger_reads_as_none(store: StateStore) -> None:
    assert store.get_charger("CP-unknown") is None
    assert store.list_chargers() == []


def test_update_charger_creates_then_merges_top_level_attributes(store: StateStore) -> None:
    store.update_charger("CP1", {"registered": True, "boot": {"chargePointVendor": "V", "chargePointModel": "M"}})
    assert store.get_charger("CP1") == {
        "chargePointId": "CP1",
        "registered": True,
        "boot": {"chargePointVendor": "V", "chargePointModel": "M"},
    }
    store.update_charger("CP1", {"boot": {"chargePointVendor": "W"}, "lastSeen": START_MS})
    # Top-level attributes are set whole (a nested map is replaced, not merged); others are kept.
    assert store.get_charger("CP1") == {
        "chargePointId": "CP1",
        "registered": True,
        "boot": {"chargePointVendor": "W"},
        "lastSeen": START_MS,
    }


def test_records_round_trip_json_values_with_their_types(store: StateStore) -> None:
    value = {
        "int": 42,
        "negative": -7,
        "big": 2**53 + 1,
        "float": 12.5,
        "tiny": 0.001,
        "bool": False,
        "none": None,
        "text": "Ladesäule ⚡ 東京",
        "empty": "",
        "list": [1, 2.5, "x", None, True, {"nested": [0]}],
        "emptyList": [],
        "map": {"a": {"b": {"c": 1}}},
    }
    store.update_charger("CP1", {"variables": value})
    got = store.get_charger("CP1")
    assert got is not None
    assert got["variables"] == value
    # Types survive too (1 == 1.0 == True in Python, so compare them explicitly).
    assert type(got["variables"]["int"]) is int and type(got["variables"]["big"]) is int
    assert type(got["variables"]["float"]) is float and type(got["variables"]["bool"]) is bool
    assert [type(v) for v in got["variables"]["list"][:5]] == [int, float, str, type(None), bool]


def test_returned_records_are_copies(store: StateStore) -> None:
    store.update_charger("CP1", {"boot": {"chargePointVendor": "V"}, "tags": ["a"]})
    got = store.get_charger("CP1")
    assert got is not None
    got["boot"]["chargePointVendor"] = "changed by the caller"
    got["tags"].append("b")
    got["extra"] = 1
    assert store.get_charger("CP1") == {"chargePointId": "CP1", "boot": {"chargePointVendor": "V"}, "tags": ["a"]}


def test_touch_charger_updates_only_an_existing_charger(store: StateStore) -> None:
    assert store.touch_charger("CP1", START_MS, {"protocol": "ocpp1.6"}) is None
    assert store.get_charger("CP1") is None, "touch must not create the charger"
    store.update_charger("CP1", {"registered": True})
    touched = store.touch_charger("CP1", START_MS, {"protocol": "ocpp1.6"})
    assert touched == {"chargePointId": "CP1", "registered": True, "lastSeen": START_MS, "protocol": "ocpp1.6"}
    assert store.get_charger("CP1") == touched


def test_touch_charger_never_moves_last_seen_back_and_returns_the_record_either_way(store: StateStore) -> None:
    store.update_charger("CP1", {"registered": True})
    later = store.touch_charger("CP1", START_MS + 1000, {"protocol": "ocpp2.0.1"})
    assert later == {"chargePointId": "CP1", "registered": True, "lastSeen": START_MS + 1000, "protocol": "ocpp2.0.1"}
    # An older frame processed late: nothing moves back (its changes neither), the record still comes back.
    assert store.touch_charger("CP1", START_MS, {"protocol": "ocpp1.6"}) == later
    # The same instant again (a redelivery): ties lose, the record comes back unchanged.
    assert store.touch_charger("CP1", START_MS + 1000, {"protocol": "ocpp1.6"}) == later
    assert store.get_charger("CP1") == later
    newer = store.touch_charger("CP1", START_MS + 2000, {})
    assert newer == {**later, "lastSeen": START_MS + 2000}


# --- ItemUpdate: the conditional write every "newer only" state goes through ---------------------


def test_item_update_sets_creates_and_must_exist_refuses_to_create(store: StateStore) -> None:
    assert not store.update_charger_fields("CP1", ItemUpdate(set={"a": 1}, must_exist=True))
    assert store.get_charger("CP1") is None, "must_exist does not create the item"
    assert store.update_charger_fields("CP1", ItemUpdate(set={"a": 1, "m": {"x": [1]}}))
    assert store.get_charger("CP1") == {"chargePointId": "CP1", "a": 1, "m": {"x": [1]}}
    assert store.update_charger_fields("CP1", ItemUpdate(set={"b": 2}, must_exist=True))
    assert store.get_charger("CP1") == {"chargePointId": "CP1", "a": 1, "b": 2, "m": {"x": [1]}}


def test_item_update_newer_applies_only_to_a_greater_value_and_ties_lose(store: StateStore) -> None:
    assert store.update_charger_fields("CP1", ItemUpdate(set={"v": "second"}, newer=Newer("bootAt", 200)))
    # Older and equal values lose, with everything else in the update.
    assert not store.update_charger_fields("CP1", ItemUpdate(set={"v": "first"}, newer=Newer("bootAt", 100)))
    assert not store.update_charger_fields("CP1", ItemUpdate(set={"v": "again"}, newer=Newer("bootAt", 200)))
    assert store.get_charger("CP1") == {"chargePointId": "CP1", "v": "second", "bootAt": 200}
    assert store.update_charger_fields("CP1", ItemUpdate(set={"v": "third"}, newer=Newer("bootAt", 201)))
    assert store.get_charger("CP1") == {"chargePointId": "CP1", "v": "third", "bootAt": 201}


def test_item_update_newer_compares_strings_as_strings(store: StateStore) -> None:
    # Order keys are strings built to sort (a zero-padded time then a digest): "10" < "9" as strings.
    assert store.update_charger_fields("CP1", ItemUpdate(set={"v": 1}, newer=Newer("o", "9")))
    assert store.update_charger_fields("CP1", ItemUpdate(set={"v": 2}, newer=Newer("o", "9a")))
    assert not store.update_charger_fields("CP1", ItemUpdate(set={"v": 3}, newer=Newer("o", "10")))
    got = store.get_charger("CP1")
    assert got is not None and got["v"] == 2 and got["o"] == "9a"


def test_item_update_earliest_wins_applies_only_to_a_smaller_value(store: StateStore) -> None:
    first = Newer("firstAt", 500, earliest_wins=True)
    assert store.update_transaction("CP1", "7", ItemUpdate(set={"meterFirst": 50}, newer=first))
    assert not store.update_transaction(
        "CP1", "7", ItemUpdate(set={"meterFirst": 60}, newer=Newer("firstAt", 600, earliest_wins=True))
    )
    assert not store.update_transaction("CP1", "7", ItemUpdate(set={"meterFirst": 50}, newer=first)), "tie"
    assert store.update_transaction(
        "CP1", "7", ItemUpdate(set={"meterFirst": 40}, newer=Newer("firstAt", 400, earliest_wins=True))
    )
    assert store.get_transaction("CP1", "7") == {"meterFirst": 40, "firstAt": 400}


def test_item_update_set_if_absent_keeps_the_first_value_written(store: StateStore) -> None:
    assert store.update_transaction("CP1", "7", ItemUpdate(set_if_absent={"startedAt": 200, "idTag": "A"}))
    assert store.update_transaction("CP1", "7", ItemUpdate(set={"x": 1}, set_if_absent={"startedAt": 100}))
    assert store.get_transaction("CP1", "7") == {"startedAt": 200, "idTag": "A", "x": 1}
    # In one update, a name both set and set only-if-absent is set.
    assert store.update_transaction("CP1", "7", ItemUpdate(set={"idTag": "B"}, set_if_absent={"idTag": "C"}))
    assert store.get_transaction("CP1", "7") == {"startedAt": 200, "idTag": "B", "x": 1}


def test_item_update_add_to_set_is_idempotent_and_reads_back_sorted(store: StateStore) -> None:
    assert store.update_transaction("CP1", "7", ItemUpdate(add_to_set={"offlineSeqNos": frozenset({3, 1})}))
    assert store.update_transaction("CP1", "7", ItemUpdate(add_to_set={"offlineSeqNos": frozenset({1})}))
    assert store.update_transaction("CP1", "7", ItemUpdate(add_to_set={"offlineSeqNos": frozenset({2, 3})}))
    assert store.get_transaction("CP1", "7") == {"offlineSeqNos": [1, 2, 3]}
    # An empty set adds nothing (DynamoDB has no empty sets).
    assert store.update_transaction("CP1", "7", ItemUpdate(set={"y": 1}, add_to_set={"offlineSeqNos": frozenset()}))
    assert store.get_transaction("CP1", "7") == {"offlineSeqNos": [1, 2, 3], "y": 1}


def test_item_update_conditions_combine(store: StateStore) -> None:
    """newer, must_exist, set_if_absent and add_to_set in one write: all or nothing."""
    update = ItemUpdate(
        set={"status": "Active"},
        set_if_absent={"startedAt": START_MS},
        add_to_set={"seen": frozenset({1})},
        newer=Newer("lastSeqNo", 1),
        must_exist=True,
    )
    assert not store.update_transaction("CP1", "7", update), "must_exist: no item yet"
    assert store.get_transaction("CP1", "7") is None
    assert store.update_transaction("CP1", "7", ItemUpdate(set={"transactionId": "7"}))
    assert store.update_transaction("CP1", "7", update)
    assert not store.update_transaction("CP1", "7", update), "the same update again: the tie loses"
    stale = ItemUpdate(set={"status": "Old"}, add_to_set={"seen": frozenset({0})}, newer=Newer("lastSeqNo", 0))
    assert not store.update_transaction("CP1", "7", stale)
    assert store.get_transaction("CP1", "7") == {
        "transactionId": "7",
        "status": "Active",
        "startedAt": START_MS,
        "seen": [1],
        "lastSeqNo": 1,
    }


def test_list_chargers_is_sorted_and_holds_only_charger_records(store: StateStore) -> None:
    for cp in ("CP-b", "CP-a", "CP-c"):
        store.update_charger(cp, {"registered": True})
    # Items of other kinds in the same partitions must not show up as chargers.
    store.update_status("CP-a", "C1", {"status": "Available"}, "1")
    store.update_transaction("CP-a", "1", ItemUpdate(set={"status": "Active"}))
    store.start_transaction("CP-a", "start-1", "2", {"status": "Active"})
    store.put_meter_values("CP-a", "d1", {"receivedAt": START_MS})
    store.put_event("CP-a", "SecurityEvent", "d2", {"receivedAt": START_MS}, None)
    store.set_charger_map_entries("CP-a", "variables", {"k": "v"})
    mark_disconnected(store, "CP-a", "conn-a", START_MS)
    assert store.claim_message("CP-a", "m1", START_MS, NOW_S + 60) is None
    store.put_id_token("TAG1", {"idTag": "TAG1", "status": "Accepted"})
    mark_connected(store, "CP-d", "conn-d", START_MS)
    assert [c["chargePointId"] for c in store.list_chargers()] == ["CP-a", "CP-b", "CP-c", "CP-d"]


def test_list_chargers_pages_in_id_order(store: StateStore) -> None:
    ids = [f"CP-{n:03d}" for n in range(7)]
    for cp in reversed(ids):
        store.update_charger(cp, {"registered": True})
    mark_connected(store, "CP-000", "conn", START_MS)  # presence and updates keep it listed once
    store.touch_charger("CP-001", START_MS, {})
    store.update_charger_fields("CP-002", ItemUpdate(set={"bootAt": 1}, newer=Newer("bootOrder", 1)))
    assert [c["chargePointId"] for c in store.list_chargers(limit=3)] == ids[:3]
    assert [c["chargePointId"] for c in store.list_chargers(after="CP-002", limit=3)] == ids[3:6]
    assert [c["chargePointId"] for c in store.list_chargers(after="CP-005")] == ids[6:]
    assert store.list_chargers(after="CP-006") == []
    assert store.list_chargers(after="CP-0025", limit=1)[0]["chargePointId"] == "CP-003"  # any string
    assert all(
        set(c) <= {"chargePointId", "registered", "connectionId", "connectionAt", "lastSeen", "bootAt", "bootOrder"}
        for c in store.list_chargers()
    )  # no index attributes leak into records


# --- charger maps ------------------------------------------------------------------------------


def test_charger_maps_are_written_key_by_key_and_read_whole(store: StateStore) -> None:
    assert store.get_charger_map("CP1", "variables") == {}
    store.set_charger_map_entries("CP1", "variables", {"OCPPCommCtrlr/HeartbeatInterval": "60", "A/B": "1"})
    store.set_charger_map_entries("CP1", "variables", {"A/B": "2", "C/D": {"nested": [1, 2.5]}})
    store.set_charger_map_entries("CP1", "configuration", {"HeartbeatInterval": "300"})
    store.set_charger_map_entries("CP1", "configuration", {})
    assert store.get_charger_map("CP1", "variables") == {
        "OCPPCommCtrlr/HeartbeatInterval": "60",
        "A/B": "2",
        "C/D": {"nested": [1, 2.5]},
    }
    assert store.get_charger_map("CP1", "configuration") == {"HeartbeatInterval": "300"}
    assert store.get_charger_map("CP2", "variables") == {}
    # A map lives beside the charger item: it neither creates the charger nor shows in it.
    assert store.get_charger("CP1") is None
    store.update_charger("CP1", {"registered": True})
    assert store.get_charger("CP1") == {"chargePointId": "CP1", "registered": True}


def test_a_charger_map_with_many_keys_is_kept_whole(store: StateStore) -> None:
    """More keys than one DynamoDB UpdateItem takes (the adapter writes them in chunks)."""
    entries = {f"Component{n}/Variable{n}": str(n) for n in range(250)}
    store.set_charger_map_entries("CP1", "variables", entries)
    assert store.get_charger_map("CP1", "variables") == entries


def test_a_returned_charger_map_is_a_copy(store: StateStore) -> None:
    store.set_charger_map_entries("CP1", "variables", {"A/B": {"x": [1]}})
    got = store.get_charger_map("CP1", "variables")
    got["A/B"]["x"].append(2)
    got["new"] = 1
    assert store.get_charger_map("CP1", "variables") == {"A/B": {"x": [1]}}


# --- presence: record_connection, in every order ---------------------------------------------------


def test_connected_creates_the_connection_and_makes_it_current(store: StateStore) -> None:
    recorded = store.record_connection(
        "CP1",
        "conn-1",
        connected=True,
        at_ms=START_MS,
        charger_changes={"protocol": "ocpp2.0.1", "lastConnectedAt": START_MS},
        connection_changes={"expiresAt": NOW_S + 3600},
    )
    assert (recorded.changed, recorded.current, recorded.site_id) == (True, True, None)
    assert store.get_charger("CP1") == {
        "chargePointId": "CP1",
        "connectionId": "conn-1",
        "connectionAt": START_MS,
        "protocol": "ocpp2.0.1",
        "lastConnectedAt": START_MS,
    }
    assert store.get_connections([("CP1", "conn-1"), ("CP1", "other"), ("CP2", "conn-1")]) == {
        ("CP1", "conn-1"): {
            "chargePointId": "CP1",
            "connectionId": "conn-1",
            "connectedAt": START_MS,
            "expiresAt": NOW_S + 3600,
        }
    }
    assert charger_connected(store, "CP1")
    assert store.get_connections([]) == {}


def test_presence_keeps_the_registry_attributes(store: StateStore) -> None:
    store.update_charger("CP1", {"registered": True, "passwordHash": "h", "lastSeen": START_MS})
    assert mark_connected(store, "CP1", "conn-1", START_MS, protocol="ocpp1.6")
    assert mark_disconnected(store, "CP1", "conn-1", START_MS + 10, reason="closed")
    got = store.get_charger("CP1")
    assert got is not None
    assert got["registered"] is True and got["passwordHash"] == "h" and got["lastSeen"] == START_MS
    assert got["connectionId"] == "conn-1" and got["protocol"] == "ocpp1.6"
    connection = store.get_connections([("CP1", "conn-1")])[("CP1", "conn-1")]
    assert connection["disconnectedAt"] == START_MS + 10 and connection["disconnectReason"] == "closed"
    assert not charger_connected(store, "CP1")


def test_a_disconnect_of_a_charger_never_seen_keeps_the_connection_only(store: StateStore) -> None:
    assert mark_disconnected(store, "CP1", "conn-1", START_MS + 10, reason="closed")
    assert store.get_charger("CP1") is None, "a disconnected event does not create the charger"
    assert store.list_chargers() == []
    assert not charger_connected(store, "CP1")
    # Its connected event, delivered late, finds the disconnect already there.
    assert mark_connected(store, "CP1", "conn-1", START_MS)
    assert store.get_charger("CP1") == {"chargePointId": "CP1", "connectionId": "conn-1", "connectionAt": START_MS}
    assert not charger_connected(store, "CP1")


def test_each_time_of_a_connection_moves_forward_only(store: StateStore) -> None:
    assert mark_connected(store, "CP1", "c", START_MS + 100)
    assert not mark_connected(store, "CP1", "c", START_MS + 100), "a duplicate changes nothing"
    assert not mark_connected(store, "CP1", "c", START_MS + 50), "an older connected changes nothing"
    assert mark_disconnected(store, "CP1", "c", START_MS + 200, reason="late")
    assert not mark_disconnected(store, "CP1", "c", START_MS + 150, reason="older")
    assert not mark_disconnected(store, "CP1", "c", START_MS + 200, reason="duplicate")
    connection = store.get_connections([("CP1", "c")])[("CP1", "c")]
    assert connection["connectedAt"] == START_MS + 100
    assert connection["disconnectedAt"] == START_MS + 200 and connection["disconnectReason"] == "late"
    charger = store.get_charger("CP1")
    assert charger is not None and charger["connectionAt"] == START_MS + 100


#: Scenarios of bridge events (connected?, connection id, time offset) and what in-order delivery
#: leaves: the charger's current connection and whether it is connected.
PRESENCE_SCENARIOS = {
    "connect then disconnect": ([(True, "a", 1), (False, "a", 2)], "a", False),
    # IoT Core cuts MQTT-over-WebSocket sessions after 24 h: the bridge reconnects on the same
    # socket, so one connection id has a will (disconnected) and then a new connected.
    "reconnect on the same connection": ([(True, "a", 1), (False, "a", 2), (True, "a", 3)], "a", True),
    "reconnect then close": ([(True, "a", 1), (False, "a", 2), (True, "a", 3), (False, "a", 4)], "a", False),
    # A takeover: the new socket connects before the old one's disconnect is applied.
    "takeover": ([(True, "old", 1), (True, "new", 2), (False, "old", 3)], "new", True),
    "takeover then close": ([(True, "old", 1), (True, "new", 2), (False, "old", 3), (False, "new", 4)], "new", False),
    "close then a new connection": ([(True, "a", 1), (False, "a", 2), (True, "b", 3)], "b", True),
    "a new connection then its close": ([(True, "a", 1), (True, "b", 2), (False, "b", 3)], "b", False),
}


def _apply(store: StateStore, cp: str, events: list[tuple[bool, str, int]]) -> list[bool]:
    applied = []
    for connected, connection_id, offset in events:
        if connected:
            applied.append(mark_connected(store, cp, connection_id, START_MS + offset))
        else:
            applied.append(mark_disconnected(store, cp, connection_id, START_MS + offset))
    return applied


@pytest.mark.parametrize("name", sorted(PRESENCE_SCENARIOS))
def test_presence_is_the_same_in_every_order_of_the_events(store: StateStore, name: str) -> None:
    events, current, connected = PRESENCE_SCENARIOS[name]
    for n, order in enumerate(itertools.permutations(events)):
        cp = f"CP{n}"
        applied = _apply(store, cp, list(order))
        # The event that ends up deciding the state changed something when it came first.
        assert applied[list(order).index(max(events, key=lambda e: e[2]))], order
        # Every event delivered again, in any order: nothing changes.
        assert not any(_apply(store, cp, list(reversed(order)))), f"{order}: a redelivery changed something"
        charger = store.get_charger(cp)
        assert charger is not None and charger["connectionId"] == current, order
        assert charger_connected(store, cp) is connected, order
        latest = max(offset for up, cid, offset in events if up and cid == current)
        assert charger["connectionAt"] == START_MS + latest, order


def test_an_old_connections_late_disconnect_does_not_end_the_current_one(store: StateStore) -> None:
    assert mark_connected(store, "CP1", "old", START_MS)
    assert mark_connected(store, "CP1", "new", START_MS + 100)
    # The old socket's disconnect is kept on the old connection's item only.
    assert mark_disconnected(store, "CP1", "old", START_MS + 200, reason="takeover")
    assert charger_connected(store, "CP1")
    found = store.get_connections([("CP1", "old"), ("CP1", "new")])
    assert found[("CP1", "old")]["disconnectReason"] == "takeover"
    assert "disconnectedAt" not in found[("CP1", "new")]


def test_an_older_connected_event_delivered_late_does_not_become_current(store: StateStore) -> None:
    assert mark_connected(store, "CP1", "new", START_MS + 100, protocol="ocpp2.0.1")
    assert mark_connected(store, "CP1", "old", START_MS, protocol="ocpp1.6"), "the old connection's item is kept"
    got = store.get_charger("CP1")
    assert got is not None and got["connectionId"] == "new" and got["connectionAt"] == START_MS + 100
    assert got["protocol"] == "ocpp2.0.1", "charger_changes come only with a newer connected"
    assert charger_connected(store, "CP1")


# --- connector / EVSE statuses -------------------------------------------------------------------


def test_statuses_are_kept_per_charger_and_label(store: StateStore) -> None:
    assert store.update_status("CP1", "C2", {"connectorId": 2, "status": "Available"}, "1")
    assert store.update_status("CP1", "C1", {"connectorId": 1, "status": "Available"}, "1")
    assert store.update_status("CP1", "C1", {"connectorId": 1, "status": "Charging"}, "2")
    assert store.update_status("CP2", "C1", {"connectorId": 1, "status": "Faulted"}, "1")
    assert store.list_statuses("CP1") == [
        {"connectorId": 1, "status": "Charging", "order": "2"},
        {"connectorId": 2, "status": "Available", "order": "1"},
    ]
    assert store.list_statuses("CP2") == [{"connectorId": 1, "status": "Faulted", "order": "1"}]
    assert store.list_statuses("CP3") == []


def test_a_status_older_or_equal_to_the_stored_one_loses(store: StateStore) -> None:
    assert store.update_status("CP1", "C1", {"status": "Charging"}, "0002")
    assert not store.update_status("CP1", "C1", {"status": "Available"}, "0001"), "an older status loses"
    assert not store.update_status("CP1", "C1", {"status": "Faulted"}, "0002"), "an equal order loses"
    assert store.list_statuses("CP1") == [{"status": "Charging", "order": "0002"}]
    # A newer one replaces the record whole.
    assert store.update_status("CP1", "C1", {"status": "Available", "errorCode": "NoError"}, "0003")
    assert store.list_statuses("CP1") == [{"status": "Available", "errorCode": "NoError", "order": "0003"}]


def test_status_orders_compare_as_strings(store: StateStore) -> None:
    assert store.update_status("CP1", "E1", {"status": "Occupied"}, "9")
    assert not store.update_status("CP1", "E1", {"status": "Available"}, "10"), '"10" sorts before "9"'
    assert store.list_statuses("CP1") == [{"status": "Occupied", "order": "9"}]


# --- id tokens ---------------------------------------------------------------------------------


def test_id_tokens_are_put_whole_and_read_back(store: StateStore) -> None:
    assert store.get_id_token("TAG1") is None
    store.put_id_token("TAG1", {"idTag": "TAG1", "status": "Accepted", "parentIdTag": "PARENT"})
    assert store.get_id_token("TAG1") == {"idTag": "TAG1", "status": "Accepted", "parentIdTag": "PARENT"}
    store.put_id_token("TAG1", {"idTag": "TAG1", "status": "Blocked"})
    assert store.get_id_token("TAG1") == {"idTag": "TAG1", "status": "Blocked"}, "a put replaces the record"
    assert store.get_id_token("TAG2") is None


# --- transactions and meter values ------------------------------------------------------------


def test_transaction_ids_are_strictly_increasing_and_never_reused(store: StateStore) -> None:
    ids = [store.next_transaction_id() for _ in range(300)]
    assert all(type(i) is int for i in ids)
    assert ids[0] >= 1
    assert all(later > earlier for earlier, later in itertools.pairwise(ids))


@pytest.mark.usefixtures("atomic_moto_requests")
def test_concurrent_transaction_ids_are_unique(store: StateStore) -> None:
    results: list[list[int]] = [[] for _ in range(8)]
    barrier = threading.Barrier(len(results))

    def allocate(out: list[int]) -> None:
        barrier.wait()
        out.extend(store.next_transaction_id() for _ in range(25))

    threads = [threading.Thread(target=allocate, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    allocated = [i for out in results for i in out]
    assert len(allocated) == 200
    assert len(set(allocated)) == 200, "an id was handed out twice"
    # Each thread sees its own ids increase, and the counter carries on after all of them.
    assert all(out == sorted(out) for out in results)
    assert store.next_transaction_id() > max(allocated)


def test_transactions_start_update_and_stop(store: StateStore) -> None:
    assert store.get_transaction("CP1", "7") is None
    started = {
        "chargePointId": "CP1",
        "transactionId": "7",
        "status": "Active",
        "meterStart": 1000,
        "startedAt": START_MS,
    }
    assert store.start_transaction("CP1", "start-7", "7", started) == "7"
    assert store.update_transaction("CP1", "7", ItemUpdate(set={"meterLast": 1500}, newer=Newer("meterAt", 10)))
    assert store.update_transaction(
        "CP1",
        "7",
        ItemUpdate(set={"status": "Completed", "meterStop": 2500, "stoppedAt": START_MS + 60_000}, must_exist=True),
    )
    assert store.get_transaction("CP1", "7") == {
        **started,
        "status": "Completed",
        "meterLast": 1500,
        "meterAt": 10,
        "meterStop": 2500,
        "stoppedAt": START_MS + 60_000,
    }
    assert store.get_transaction("CP2", "7") is None, "transactions are per charger"


def test_start_transaction_creates_once_per_start_key_and_returns_the_holder(store: StateStore) -> None:
    record = {"chargePointId": "CP1", "transactionId": "7", "status": "Active", "meterStart": 1000}
    assert store.start_transaction("CP1", "key-a", "7", record) == "7"
    # The same start again (a redelivered StartTransaction got a fresh id): the first id holds it,
    # and the second id's transaction is not created.
    again = {**record, "transactionId": "8"}
    assert store.start_transaction("CP1", "key-a", "8", again) == "7"
    assert store.get_transaction("CP1", "8") is None
    assert store.get_transaction("CP1", "7") == record
    assert [t["transactionId"] for t in store.list_transactions("CP1")] == ["7"]
    # Another start key, or the same key on another charger, is another transaction.
    assert store.start_transaction("CP1", "key-b", "9", {**record, "transactionId": "9"}) == "9"
    assert store.start_transaction("CP2", "key-a", "10", {**record, "chargePointId": "CP2"}) == "10"
    assert store.get_transaction("CP2", "10") == {**record, "chargePointId": "CP2"}


def test_a_stop_before_its_start_is_kept_and_the_start_fills_only_what_is_missing(store: StateStore) -> None:
    # A StopTransaction can be processed before its StartTransaction: it must not be lost, and the
    # start, applied later with set_if_absent, must not undo it.
    stop = ItemUpdate(set={"status": "Completed", "meterStop": 2500}, newer=Newer("stopOrder", 1))
    assert store.update_transaction("CP1", "7", stop)
    start = ItemUpdate(set_if_absent={"status": "Active", "meterStart": 1000, "startedAt": START_MS})
    assert store.update_transaction("CP1", "7", start)
    assert store.get_transaction("CP1", "7") == {
        "status": "Completed",
        "meterStop": 2500,
        "stopOrder": 1,
        "meterStart": 1000,
        "startedAt": START_MS,
    }


def test_a_transaction_update_before_its_start_creates_it(store: StateStore) -> None:
    # 2.x events may arrive out of order: an Updated before the Started must not be lost.
    store.update_transaction(
        "CP1",
        "tx-b",
        ItemUpdate(set={"meterLast": 20}, set_if_absent={"chargePointId": "CP1", "transactionId": "tx-b"}),
    )
    store.update_transaction("CP1", "tx-b", ItemUpdate(set_if_absent={"status": "Active", "startedAt": START_MS}))
    assert store.get_transaction("CP1", "tx-b") == {
        "chargePointId": "CP1",
        "transactionId": "tx-b",
        "meterLast": 20,
        "status": "Active",
        "startedAt": START_MS,
    }


def test_list_transactions_all_or_of_one_charger(store: StateStore) -> None:
    for cp, tx, started in (("CP2", "1", START_MS), ("CP1", "2", START_MS + 1), ("CP1", "3", START_MS + 2)):
        store.update_transaction(
            cp, tx, ItemUpdate(set_if_absent={"chargePointId": cp, "transactionId": tx, "startedAt": started})
        )
    store.start_transaction("CP2", "start-4", "4", {"chargePointId": "CP2", "transactionId": "4", "startedAt": 0})
    store.update_charger("CP1", {"registered": True})
    store.update_status("CP1", "C1", {"status": "Charging"}, "1")

    def ids(records: list[dict[str, object]]) -> list[tuple[object, object]]:
        return sorted((r["chargePointId"], r["transactionId"]) for r in records)

    assert ids(store.list_transactions("CP1")) == [("CP1", "2"), ("CP1", "3")]
    assert ids(store.list_transactions("CP2")) == [("CP2", "1"), ("CP2", "4")]
    assert ids(store.list_transactions()) == [("CP1", "2"), ("CP1", "3"), ("CP2", "1"), ("CP2", "4")]
    assert store.list_transactions("CP3") == []


def test_meter_values_are_listed_per_charger_and_transaction_in_received_order(store: StateStore) -> None:
    def sample(cp: str, tx: str | None, wh: int, at: int) -> dict[str, object]:
        return {
            "chargePointId": cp,
            "transactionId": tx,
            "receivedAt": at,
            "meterValue": [{"sampledValue": [{"value": str(wh)}]}],
        }

    # Keys are frame digests (no order in them): the listing orders by receivedAt.
    store.put_meter_values("CP1", "ffff", sample("CP1", "7", 100, START_MS))
    store.put_meter_values("CP1", "0000", sample("CP1", "8", 200, START_MS + 1000))
    store.put_meter_values("CP1", "aaaa", sample("CP1", "7", 300, START_MS + 2000))
    store.put_meter_values("CP1", "1111", sample("CP1", None, 0, START_MS + 3000))
    store.put_meter_values("CP2", "ffff", sample("CP2", "7", 999, START_MS))
    assert store.list_meter_values("CP1", "7") == [
        sample("CP1", "7", 100, START_MS),
        sample("CP1", "7", 300, START_MS + 2000),
    ]
    assert store.list_meter_values("CP1") == [
        sample("CP1", "7", 100, START_MS),
        sample("CP1", "8", 200, START_MS + 1000),
        sample("CP1", "7", 300, START_MS + 2000),
        sample("CP1", None, 0, START_MS + 3000),
    ]
    assert store.list_meter_values("CP2", "7") == [sample("CP2", "7", 999, START_MS)]
    assert store.list_meter_values("CP3") == []


def test_meter_values_are_stored_once_per_frame(store: StateStore) -> None:
    # The key is the frame's digest: the same frame delivered again overwrites its own record,
    # even when the redelivery was received later.
    digest = keys.message_digest("conn-1", "42", '[2,"42","MeterValues",{}]')
    record = {"chargePointId": "CP1", "transactionId": "7", "receivedAt": START_MS, "meterValue": []}
    store.put_meter_values("CP1", digest, record)
    store.put_meter_values("CP1", digest, record)
    assert store.list_meter_values("CP1") == [record]
    # The same unique id in another frame (a charger counting from 1 again after a reboot) is kept too.
    other = keys.message_digest("conn-2", "42", '[2,"42","MeterValues",{}]')
    store.put_meter_values("CP1", other, {**record, "receivedAt": START_MS + 1})
    assert len(store.list_meter_values("CP1")) == 2


# --- events ------------------------------------------------------------------------------------


def _event(cp: str, kind: str, uid: str, at: int) -> dict[str, object]:
    return {"chargePointId": cp, "kind": kind, "uniqueId": uid, "receivedAt": at, "payload": {"n": uid}}


def test_events_are_listed_per_charger_and_kind_in_time_order(store: StateStore) -> None:
    store.put_event("CP1", "SecurityEvent", "d-e2", _event("CP1", "SecurityEvent", "e2", START_MS + 2), None)
    store.put_event("CP1", "SecurityEvent", "d-e1", _event("CP1", "SecurityEvent", "e1", START_MS + 1), None)
    store.put_event("CP1", "NotifyReport", "d-r1", _event("CP1", "NotifyReport", "r1", START_MS), None)
    store.put_event("CP2", "SecurityEvent", "d-x1", _event("CP2", "SecurityEvent", "x1", START_MS), None)
    assert store.list_events("CP1", "SecurityEvent") == [
        _event("CP1", "SecurityEvent", "e1", START_MS + 1),
        _event("CP1", "SecurityEvent", "e2", START_MS + 2),
    ]
    assert store.list_events("CP1", "NotifyReport") == [_event("CP1", "NotifyReport", "r1", START_MS)]
    assert sorted(e["uniqueId"] for e in store.list_events("CP1")) == ["e1", "e2", "r1"]  # type: ignore[type-var]
    assert store.list_events("CP2") == [_event("CP2", "SecurityEvent", "x1", START_MS)]
    assert store.list_events("CP1", "FirmwareStatusNotification") == []


def test_an_event_written_twice_is_stored_once(store: StateStore) -> None:
    record = _event("CP1", "SecurityEvent", "e1", START_MS)
    store.put_event("CP1", "SecurityEvent", "digest-1", record, None)
    store.put_event("CP1", "SecurityEvent", "digest-1", record, None)
    assert store.list_events("CP1") == [record]
    # One key per kind: the same digest under another kind is another record.
    store.put_event("CP1", "NotifyEvent", "digest-1", {**record, "kind": "NotifyEvent"}, None)
    assert len(store.list_events("CP1")) == 2


def test_events_carry_their_expiry_and_expired_events_read_as_absent(store: StateStore, clock: FakeClock) -> None:
    short = _event("CP1", "SecurityEvent", "short", START_MS)
    kept = _event("CP1", "SecurityEvent", "kept", START_MS + 1)
    forever = _event("CP1", "SecurityEvent", "forever", START_MS + 2)
    store.put_event("CP1", "SecurityEvent", "short", short, NOW_S + 60)
    store.put_event("CP1", "SecurityEvent", "kept", kept, NOW_S + 3600)
    store.put_event("CP1", "SecurityEvent", "forever", forever, None)
    assert store.list_events("CP1") == [
        {**short, "expiresAt": NOW_S + 60},
        {**kept, "expiresAt": NOW_S + 3600},
        forever,
    ]
    clock.advance(60)
    assert store.list_events("CP1") == [{**kept, "expiresAt": NOW_S + 3600}, forever]
    clock.advance(3600 * 24 * 365)
    assert store.list_events("CP1", "SecurityEvent") == [forever]


# --- CSMS calls ---------------------------------------------------------------------------------


def _call(uid: str, status: str = "pending", expires_at: int = NOW_S + 7 * 86400) -> dict[str, object]:
    return {
        "chargePointId": "CP1",
        "uniqueId": uid,
        "action": "Reset",
        "payload": {"type": "Soft"},
        "status": status,
        "createdAt": START_MS,
        "timeoutAt": START_MS + 30_000,
        "expiresAt": expires_at,
    }


def test_one_outstanding_call_per_charger(store: StateStore) -> None:
    assert store.acquire_outstanding("CP1", "c1", START_MS, START_MS + 30_000) is None
    holder = store.acquire_outstanding("CP1", "c2", START_MS + 1, START_MS + 30_001)
    assert holder is not None and holder["uniqueId"] == "c1"
    # Another charger has its own slot.
    assert store.acquire_outstanding("CP2", "c2", START_MS + 1, START_MS + 30_001) is None


def test_only_the_holder_releases_the_outstanding_slot(store: StateStore) -> None:
    assert store.acquire_outstanding("CP1", "c1", START_MS, START_MS + 30_000) is None
    store.release_outstanding("CP1", "not-the-holder")
    holder = store.acquire_outstanding("CP1", "c2", START_MS, START_MS + 30_000)
    assert holder is not None and holder["uniqueId"] == "c1"
    store.release_outstanding("CP1", "c1")
    assert store.acquire_outstanding("CP1", "c2", START_MS, START_MS + 30_000) is None
    store.release_outstanding("CP9", "nobody")  # releasing a free slot is a no-op


def test_an_overdue_holder_no_longer_holds_the_slot(store: StateStore) -> None:
    until = START_MS + 30_000
    assert store.acquire_outstanding("CP1", "c1", START_MS, until) is None
    holder = store.acquire_outstanding("CP1", "c2", until - 1, until + 30_000)
    assert holder is not None and holder["uniqueId"] == "c1"
    assert store.acquire_outstanding("CP1", "c2", until, until + 30_000) is None
    holder = store.acquire_outstanding("CP1", "c3", until + 1, until + 60_000)
    assert holder is not None and holder["uniqueId"] == "c2"
    # The old holder's late release must not free the new holder's slot.
    store.release_outstanding("CP1", "c1")
    holder = store.acquire_outstanding("CP1", "c3", until + 2, until + 60_000)
    assert holder is not None and holder["uniqueId"] == "c2"


def test_call_records_complete_once(store: StateStore) -> None:
    assert store.get_call("CP1", "c1") is None
    store.put_call("CP1", "c1", _call("c1"))
    assert store.get_call("CP1", "c1") == _call("c1")
    done = {"status": "accepted", "completedAt": START_MS + 1000, "response": {"status": "Accepted"}}
    assert store.complete_call("CP1", "c1", done)
    assert store.get_call("CP1", "c1") == {**_call("c1"), **done}
    # Conditional on "pending": a second answer (or a late timeout) changes nothing.
    assert not store.complete_call("CP1", "c1", {"status": "timeout", "completedAt": START_MS + 60_000})
    assert store.get_call("CP1", "c1") == {**_call("c1"), **done}


def test_complete_call_checks_the_expected_status_and_existence(store: StateStore) -> None:
    assert not store.complete_call("CP1", "missing", {"status": "accepted"})
    assert store.get_call("CP1", "missing") is None, "completing an unknown call must not create it"
    store.put_call("CP1", "c1", _call("c1", status="accepted"))
    assert not store.complete_call("CP1", "c1", {"note": 1})
    assert store.complete_call("CP1", "c1", {"note": 1}, expected_status="accepted")
    assert store.get_call("CP1", "c1") == {**_call("c1", status="accepted"), "note": 1}
    assert store.get_call("CP2", "c1") is None


def test_an_expired_call_record_reads_as_absent(store: StateStore, clock: FakeClock) -> None:
    store.put_call("CP1", "c1", _call("c1", expires_at=NOW_S + 600))
    store.put_call("CP1", "c2", _call("c2", expires_at=NOW_S + 6000))
    clock.advance(599)
    assert store.get_call("CP1", "c1") is not None
    clock.advance(1)
    assert store.get_call("CP1", "c1") is None
    assert store.get_call("CP1", "c2") == _call("c2", expires_at=NOW_S + 6000)


def test_the_call_flow_over_the_store_start_answer_timeout(store: StateStore, clock: FakeClock) -> None:
    """ocpp_core.calls on top of each store: start, one outstanding, completion, timeout."""
    store.update_charger("CP1", {"protocol": "ocpp1.6"})
    mark_connected(store, "CP1", "conn-1", START_MS)
    ids = SeqIds()
    first = calls.start_call(store, ids, clock.now_ms(), "CP1", "Reset", {"type": "Soft"}, timeout_s=30)
    assert first.record["status"] == "pending"
    assert store.get_call("CP1", first.record["uniqueId"]) == first.record
    with pytest.raises(calls.CallRefused) as busy:
        calls.start_call(store, ids, clock.now_ms(), "CP1", "ClearCache", {}, timeout_s=30)
    assert busy.value.kind is calls.RefusalKind.BUSY and busy.value.extra["pendingUniqueId"] == first.record["uniqueId"]

    clock.advance(30)
    timed_out = calls.view_call(store, clock.now_ms(), "CP1", first.record["uniqueId"])
    assert timed_out is not None and timed_out["status"] == "timeout"
    assert store.get_call("CP1", first.record["uniqueId"])["status"] == "timeout"  # type: ignore[index]

    # The slot is free again; the next call is answered in time.
    second = calls.start_call(store, ids, clock.now_ms(), "CP1", "ClearCache", {}, timeout_s=30)
    uid = second.record["uniqueId"]
    assert store.complete_call("CP1", uid, {"status": "accepted", "response": {"status": "Accepted"}})
    store.release_outstanding("CP1", uid)
    assert store.acquire_outstanding("CP1", "next", clock.now_ms(), clock.now_ms() + 1000) is None


# --- call history, id token removal, reservations, require_absent ----------------------------


def _listed_call(uid: str, created: int, **extra: object) -> dict[str, object]:
    return {"chargePointId": "CP1", "uniqueId": uid, "status": "pending", "createdAt": created, **extra}


def test_calls_list_greatest_id_first_a_page_at_a_time(store: StateStore, clock: FakeClock) -> None:
    ids = [f"0190-{n:04d}" for n in range(1, 8)]  # sort as created, as the API's UUIDv7 ids do
    for n, uid in enumerate(ids):
        store.put_call("CP1", uid, _listed_call(uid, START_MS + n))
    store.put_call("CP2", "0190-9999", _listed_call("0190-9999", START_MS))  # another charger's
    store.put_call("CP1", "0190-0000", _listed_call("0190-0000", START_MS, expiresAt=NOW_S - 1))  # expired
    first = store.list_calls("CP1", limit=3)
    assert [c["uniqueId"] for c in first] == ids[::-1][:3]
    second = store.list_calls("CP1", after=first[-1]["uniqueId"], limit=3)
    assert [c["uniqueId"] for c in second] == ids[::-1][3:6]
    rest = store.list_calls("CP1", after=second[-1]["uniqueId"], limit=3)
    assert [c["uniqueId"] for c in rest] == ids[:1]
    assert store.list_calls("CP1", after=ids[0]) == []
    assert store.list_calls("nobody") == []


def test_an_id_token_is_deleted_once(store: StateStore) -> None:
    store.put_id_token("T1", {"status": "Accepted"})
    assert store.delete_id_token("T1") is True
    assert store.get_id_token("T1") is None
    assert store.delete_id_token("T1") is False


def test_reservation_ids_are_unique_and_records_found_with_or_without_the_charger(store: StateStore) -> None:
    first, second = store.next_reservation_id(), store.next_reservation_id()
    assert second > first
    store.create_reservation("CP1", first, {"chargePointId": "CP1", "reservationId": first, "idTag": "A"})
    store.create_reservation("CP2", second, {"chargePointId": "CP2", "reservationId": second, "idTag": "B"})
    assert store.get_reservation("CP1", first) == {"chargePointId": "CP1", "reservationId": first, "idTag": "A"}
    assert store.get_reservation("CP2", first) is None  # not that charger's
    assert store.find_reservation(second) == {"chargePointId": "CP2", "reservationId": second, "idTag": "B"}
    assert store.find_reservation(second + 100) is None
    third = store.next_reservation_id()
    store.create_reservation("CP1", third, {"chargePointId": "CP1", "reservationId": third})
    assert [r["reservationId"] for r in store.list_reservations("CP1")] == [third, first]


def test_reservation_updates_and_the_earliest_end_wins(store: StateStore) -> None:
    rid = store.next_reservation_id()
    assert not store.update_reservation("CP1", rid, ItemUpdate(set={"end": "Used"}, must_exist=True))
    store.create_reservation("CP1", rid, {"chargePointId": "CP1", "reservationId": rid})
    late = ItemUpdate(set={"end": "Cancelled"}, newer=Newer("endedAt", 2_000, earliest_wins=True), must_exist=True)
    early = ItemUpdate(set={"end": "Used"}, newer=Newer("endedAt", 1_000, earliest_wins=True), must_exist=True)
    assert store.update_reservation("CP1", rid, late)
    assert store.update_reservation("CP1", rid, early)
    assert not store.update_reservation("CP1", rid, late)  # a later end never replaces an earlier one
    assert store.get_reservation("CP1", rid) == {
        "chargePointId": "CP1",
        "reservationId": rid,
        "end": "Used",
        "endedAt": 1_000,
    }


def test_require_absent_refuses_an_update_when_the_attribute_exists(store: StateStore) -> None:
    store.update_transaction("CP1", "7", ItemUpdate(set={"status": "Active"}))
    close = ItemUpdate(set={"status": "Completed", "stoppedAt": 5}, must_exist=True, require_absent=("stoppedAt",))
    assert store.update_transaction("CP1", "7", close)
    assert not store.update_transaction("CP1", "7", close)
    assert not store.update_transaction("CP1", "8", close)  # must_exist still holds
    assert store.get_transaction("CP1", "7") == {"status": "Completed", "stoppedAt": 5}


# --- sites (SiteStore): a charger belongs to at most one site ---------------------------------


def _site(site_id: str, chargers: list[str], **extra: object) -> dict[str, object]:
    return {"siteId": site_id, "limitAmps": 63, "phases": 3, "minAmps": 6, "chargers": chargers, **extra}


def test_sites_are_put_read_listed_in_id_order_and_their_chargers_found(store: StateStore) -> None:
    assert store.get_site("S1") is None and store.list_sites() == [] and store.site_of("CP1") is None
    store.put_site("S2", _site("S2", ["CP3"], limitWatts=11000.5), [])
    store.put_site("S1", _site("S1", ["CP1", "CP2"]), [])
    assert store.get_site("S1") == _site("S1", ["CP1", "CP2"])
    assert store.get_site("S2") == _site("S2", ["CP3"], limitWatts=11000.5)
    assert [s["siteId"] for s in store.list_sites()] == ["S1", "S2"]
    assert [store.site_of(cp) for cp in ("CP1", "CP2", "CP3", "CP4")] == ["S1", "S1", "S2", None]
    # Neither the sites nor the memberships are chargers.
    assert store.list_chargers() == [] and store.get_charger("CP1") is None


def test_a_charger_of_another_site_is_refused_and_the_refused_put_changes_nothing(store: StateStore) -> None:
    store.put_site("S1", _site("S1", ["CP1", "CP2"]), [])
    with pytest.raises(ChargerInAnotherSite) as refused:
        store.put_site("S2", _site("S2", ["CP9", "CP8", "CP2", "CP7"]), [])
    assert (refused.value.charge_point_id, refused.value.site_id) == ("CP2", "S1")
    # The claims the refused put made before the conflict are undone; no site item was written.
    assert [store.site_of(cp) for cp in ("CP9", "CP8", "CP7")] == [None, None, None]
    assert store.get_site("S2") is None and [s["siteId"] for s in store.list_sites()] == ["S1"]
    assert store.site_of("CP2") == "S1"
    # The same for a replacement of an existing site: it keeps its record and its chargers.
    store.put_site("S3", _site("S3", ["CP5"]), [])
    with pytest.raises(ChargerInAnotherSite):
        store.put_site("S3", _site("S3", ["CP5", "CP6", "CP1"]), ["CP5"])
    assert store.get_site("S3") == _site("S3", ["CP5"])
    assert (store.site_of("CP5"), store.site_of("CP6")) == ("S3", None)


def test_replacing_a_site_releases_the_chargers_it_drops(store: StateStore) -> None:
    store.put_site("S1", _site("S1", ["CP1", "CP2", "CP3"]), [])
    store.put_site("S1", _site("S1", ["CP3", "CP4"], minAmps=8), ["CP1", "CP2", "CP3"])
    assert store.get_site("S1") == _site("S1", ["CP3", "CP4"], minAmps=8)
    assert [store.site_of(cp) for cp in ("CP1", "CP2", "CP3", "CP4")] == [None, None, "S1", "S1"]
    # The caller's view of the previous chargers may be stale: what the store holds is released too.
    store.put_site("S1", _site("S1", []), [])
    assert [store.site_of(cp) for cp in ("CP3", "CP4")] == [None, None]
    store.put_site("S2", _site("S2", ["CP1", "CP3"]), [])
    assert (store.site_of("CP1"), store.site_of("CP3")) == ("S2", "S2")
    # A stale previous list never releases another site's charger.
    store.put_site("S1", _site("S1", []), ["CP1"])
    assert store.site_of("CP1") == "S2"


def test_a_put_repeated_is_the_same_put(store: StateStore) -> None:
    store.put_site("S1", _site("S1", ["CP1"]), [])
    store.put_site("S1", _site("S1", ["CP1"]), ["CP1"])
    assert store.get_site("S1") == _site("S1", ["CP1"]) and store.site_of("CP1") == "S1"


@pytest.mark.usefixtures("atomic_moto_requests")
def test_racing_puts_of_different_sites_never_share_a_charger(store: StateStore) -> None:
    if isinstance(store, InMemoryStore):
        store = InMemoryStore(lock=threading.RLock())  # as a multi-threaded caller uses it
    chargers = [f"CP{i}" for i in range(6)]
    sites = [f"S{i}" for i in range(6)]
    barrier = threading.Barrier(len(sites))
    outcome: dict[str, str] = {}

    def put(index: int, site_id: str) -> None:
        wanted = chargers[index:] + chargers[:index]  # each site claims in another order
        barrier.wait()
        try:
            store.put_site(site_id, _site(site_id, wanted[:4]), [])
            outcome[site_id] = "stored"
        except ChargerInAnotherSite:
            outcome[site_id] = "refused"

    threads = [threading.Thread(target=put, args=(i, s)) for i, s in enumerate(sites)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(outcome) == len(sites)
    records = {s["siteId"]: s for s in store.list_sites()}
    assert set(records) == {s for s, result in outcome.items() if result == "stored"}
    holders: dict[str, str] = {}
    for site_id, record in records.items():
        for cp in record["chargers"]:
            assert cp not in holders, f"{cp} is in {holders.get(cp)} and {site_id}"
            holders[cp] = site_id
    # Memberships say exactly what the records say: a refused put left no claim behind.
    assert {cp: store.site_of(cp) for cp in chargers} == {cp: holders.get(cp) for cp in chargers}


def test_the_chargers_of_a_batch_read_are_those_that_exist(store: StateStore) -> None:
    store.update_charger("CP1", {"registered": True})
    store.update_charger("CP2", {"registered": False})
    found = store.get_chargers(["CP1", "CP2", "CP3", "CP1"])
    assert sorted(found) == ["CP1", "CP2"]
    assert found["CP1"] == {"chargePointId": "CP1", "registered": True}
    assert store.get_chargers([]) == {}


def test_dynamo_a_change_of_a_site_in_progress_makes_another_wait(dynamo_store: DynamoStore, clock: FakeClock) -> None:
    """DynamoDB only: the site lease (the in-memory store runs a put under its lock)."""
    dynamo_store.put_site("S1", _site("S1", ["CP1"]), [])
    lease = {
        "leaseToken": {"S": "another-request"},
        "leaseUntil": {"N": str(int(clock.now_s()) + 30)},
    }
    dynamo_store._client.update_item(
        TableName=dynamo_store.table_name,
        Key={keys.PK: {"S": keys.site_pk("S1")}, keys.SK: {"S": keys.SITE_SK}},
        UpdateExpression="SET leaseToken = :t, leaseUntil = :u",
        ExpressionAttributeValues={":t": lease["leaseToken"], ":u": lease["leaseUntil"]},
    )
    assert dynamo_store.get_site("S1") == _site("S1", ["CP1"])  # the lease is not part of the record
    with pytest.raises(SiteBusy):
        dynamo_store.put_site("S1", _site("S1", ["CP2"]), ["CP1"])
    assert (dynamo_store.site_of("CP1"), dynamo_store.site_of("CP2")) == ("S1", None)
    clock.advance(31)  # a request that died holding the lease holds it no longer
    dynamo_store.put_site("S1", _site("S1", ["CP2"]), ["CP1"])
    assert dynamo_store.get_site("S1") == _site("S1", ["CP2"])
    assert (dynamo_store.site_of("CP1"), dynamo_store.site_of("CP2")) == (None, "S1")


def test_dynamo_a_refused_new_site_leaves_no_item(dynamo_store: DynamoStore) -> None:
    dynamo_store.put_site("S1", _site("S1", ["CP1"]), [])
    with pytest.raises(ChargerInAnotherSite):
        dynamo_store.put_site("S2", _site("S2", ["CP1"]), [])
    item = dynamo_store._client.get_item(
        TableName=dynamo_store.table_name, Key={keys.PK: {"S": keys.site_pk("S2")}, keys.SK: {"S": keys.SITE_SK}}
    )
    assert "Item" not in item and dynamo_store.get_site("S2") is None
