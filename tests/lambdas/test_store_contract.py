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

from ocpp_core import calls
from ocpp_core.ports import ProcessedMessage, StateStore
from tests.fakes import START_MS, FakeClock, SeqIds

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
    assert store.touch_charger("CP1", {"lastSeen": START_MS}) is None
    assert store.get_charger("CP1") is None, "touch must not create the charger"
    store.update_charger("CP1", {"registered": True})
    touched = store.touch_charger("CP1", {"lastSeen": START_MS, "protocol": "ocpp1.6"})
    assert touched == {"chargePointId": "CP1", "registered": True, "lastSeen": START_MS, "protocol": "ocpp1.6"}
    assert store.get_charger("CP1") == touched


def test_list_chargers_is_sorted_and_holds_only_charger_records(store: StateStore) -> None:
    for cp in ("CP-b", "CP-a", "CP-c"):
        store.update_charger(cp, {"registered": True})
    # Items of other kinds in the same partitions must not show up as chargers.
    store.put_status("CP-a", "C1", {"status": "Available"})
    store.update_transaction("CP-a", "1", {"status": "Active"})
    assert store.claim_message("CP-a", "m1", START_MS, NOW_S + 60) is None
    store.put_id_token("TAG1", {"idTag": "TAG1", "status": "Accepted"})
    store.set_presence("CP-d", True, "conn-d", START_MS, {})
    assert [c["chargePointId"] for c in store.list_chargers()] == ["CP-a", "CP-b", "CP-c", "CP-d"]


def test_list_chargers_pages_in_id_order(store: StateStore) -> None:
    ids = [f"CP-{n:03d}" for n in range(7)]
    for cp in reversed(ids):
        store.update_charger(cp, {"registered": True})
    store.set_presence("CP-000", True, "conn", START_MS, {})  # presence and updates keep it listed once
    store.touch_charger("CP-001", {"lastSeen": START_MS})
    assert [c["chargePointId"] for c in store.list_chargers(limit=3)] == ids[:3]
    assert [c["chargePointId"] for c in store.list_chargers(after="CP-002", limit=3)] == ids[3:6]
    assert [c["chargePointId"] for c in store.list_chargers(after="CP-005")] == ids[6:]
    assert store.list_chargers(after="CP-006") == []
    assert store.list_chargers(after="CP-0025", limit=1)[0]["chargePointId"] == "CP-003"  # any string
    assert all(
        set(c) <= {"chargePointId", "registered", "connected", "connectionId", "presenceAt", "lastSeen"}
        for c in store.list_chargers()
    )  # no index attributes leak into records


def test_connected_creates_presence_with_the_connection_info(store: StateStore) -> None:
    assert store.set_presence("CP1", True, "conn-1", START_MS, {"protocol": "ocpp2.0.1", "connectedAt": START_MS})
    assert store.get_charger("CP1") == {
        "chargePointId": "CP1",
        "connected": True,
        "connectionId": "conn-1",
        "presenceAt": START_MS,
        "protocol": "ocpp2.0.1",
        "connectedAt": START_MS,
    }


def test_presence_keeps_the_registry_attributes(store: StateStore) -> None:
    store.update_charger("CP1", {"registered": True, "passwordHash": "h"})
    assert store.set_presence("CP1", True, "conn-1", START_MS, {"lastSeen": START_MS})
    assert store.set_presence("CP1", False, "conn-1", START_MS + 10, {"disconnectReason": None})
    got = store.get_charger("CP1")
    assert got is not None
    assert got["registered"] is True and got["passwordHash"] == "h" and got["lastSeen"] == START_MS
    assert got["connected"] is False and got["presenceAt"] == START_MS + 10 and got["disconnectReason"] is None


def test_disconnected_applies_only_to_the_current_connection(store: StateStore) -> None:
    assert not store.set_presence("CP1", False, "conn-1", START_MS, {}), "no charger: nothing to disconnect"
    assert store.get_charger("CP1") is None
    assert store.set_presence("CP1", True, "conn-1", START_MS, {})
    assert not store.set_presence("CP1", False, "conn-other", START_MS + 5, {"disconnectReason": "x"})
    got = store.get_charger("CP1")
    assert got is not None and got["connected"] is True and "disconnectReason" not in got
    assert store.set_presence("CP1", False, "conn-1", START_MS + 10, {"disconnectReason": "closed"})
    got = store.get_charger("CP1")
    assert got is not None and got["connected"] is False and got["disconnectReason"] == "closed"


def test_takeover_the_old_sockets_late_disconnect_does_not_mark_the_charger_offline(store: StateStore) -> None:
    assert store.set_presence("CP1", True, "old", START_MS, {})
    assert store.set_presence("CP1", True, "new", START_MS + 100, {})
    assert not store.set_presence("CP1", False, "old", START_MS + 200, {})
    got = store.get_charger("CP1")
    assert got is not None and got["connected"] is True and got["connectionId"] == "new"


def test_a_connected_event_older_than_the_last_applied_one_is_stale(store: StateStore) -> None:
    assert store.set_presence("CP1", True, "new", START_MS + 100, {"connectedAt": START_MS + 100})
    assert not store.set_presence("CP1", True, "old", START_MS, {"connectedAt": START_MS})
    got = store.get_charger("CP1")
    assert got is not None and got["connectionId"] == "new" and got["connectedAt"] == START_MS + 100
    # The same instant is not older: a redelivered connected event applies again (idempotent).
    assert store.set_presence("CP1", True, "new", START_MS + 100, {"connectedAt": START_MS + 100})


def test_statuses_are_kept_per_charger_and_label(store: StateStore) -> None:
    store.put_status("CP1", "C2", {"connectorId": 2, "status": "Available"})
    store.put_status("CP1", "C1", {"connectorId": 1, "status": "Available"})
    store.put_status("CP1", "C1", {"connectorId": 1, "status": "Charging"})
    store.put_status("CP2", "C1", {"connectorId": 1, "status": "Faulted"})
    assert store.list_statuses("CP1") == [
        {"connectorId": 1, "status": "Charging"},
        {"connectorId": 2, "status": "Available"},
    ]
    assert store.list_statuses("CP2") == [{"connectorId": 1, "status": "Faulted"}]
    assert store.list_statuses("CP3") == []


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
    store.update_transaction(
        "CP1",
        "7",
        {"chargePointId": "CP1", "transactionId": "7", "status": "Active", "meterStart": 1000, "startedAt": START_MS},
    )
    store.update_transaction("CP1", "7", {"meterLast": 1500, "energyWh": 500})
    store.update_transaction(
        "CP1", "7", {"status": "Completed", "meterStop": 2500, "energyWh": 1500, "stoppedAt": START_MS + 60_000}
    )
    assert store.get_transaction("CP1", "7") == {
        "chargePointId": "CP1",
        "transactionId": "7",
        "status": "Completed",
        "meterStart": 1000,
        "meterLast": 1500,
        "meterStop": 2500,
        "energyWh": 1500,
        "startedAt": START_MS,
        "stoppedAt": START_MS + 60_000,
    }
    assert store.get_transaction("CP2", "7") is None, "transactions are per charger"


def test_a_transaction_update_before_its_start_creates_it(store: StateStore) -> None:
    # 2.x events may arrive out of order: an Updated before the Started must not be lost.
    store.update_transaction("CP1", "tx-b", {"chargePointId": "CP1", "transactionId": "tx-b", "meterLast": 20})
    store.update_transaction("CP1", "tx-b", {"status": "Active", "startedAt": START_MS, "meterStart": 10})
    assert store.get_transaction("CP1", "tx-b") == {
        "chargePointId": "CP1",
        "transactionId": "tx-b",
        "meterLast": 20,
        "status": "Active",
        "startedAt": START_MS,
        "meterStart": 10,
    }


def test_list_transactions_all_or_of_one_charger(store: StateStore) -> None:
    for cp, tx, started in (("CP2", "1", START_MS), ("CP1", "2", START_MS + 1), ("CP1", "3", START_MS + 2)):
        store.update_transaction(cp, tx, {"chargePointId": cp, "transactionId": tx, "startedAt": started})
    store.update_charger("CP1", {"registered": True})
    store.put_status("CP1", "C1", {"status": "Charging"})

    def ids(records: list[dict[str, object]]) -> list[tuple[object, object]]:
        return sorted((r["chargePointId"], r["transactionId"]) for r in records)

    assert ids(store.list_transactions("CP1")) == [("CP1", "2"), ("CP1", "3")]
    assert ids(store.list_transactions("CP2")) == [("CP2", "1")]
    assert ids(store.list_transactions()) == [("CP1", "2"), ("CP1", "3"), ("CP2", "1")]
    assert store.list_transactions("CP3") == []


def test_meter_values_are_listed_per_charger_and_transaction(store: StateStore) -> None:
    def sample(cp: str, tx: str | None, wh: int) -> dict[str, object]:
        return {"chargePointId": cp, "transactionId": tx, "meterValue": [{"sampledValue": [{"value": str(wh)}]}]}

    store.put_meter_values("CP1", "mv-1", START_MS, sample("CP1", "7", 100))
    store.put_meter_values("CP1", "mv-2", START_MS + 1000, sample("CP1", "8", 200))
    store.put_meter_values("CP1", "mv-3", START_MS + 2000, sample("CP1", "7", 300))
    store.put_meter_values("CP1", "mv-4", START_MS + 3000, sample("CP1", None, 0))
    store.put_meter_values("CP2", "mv-1", START_MS, sample("CP2", "7", 999))
    assert store.list_meter_values("CP1", "7") == [sample("CP1", "7", 100), sample("CP1", "7", 300)]
    assert store.list_meter_values("CP1") == [
        sample("CP1", "7", 100),
        sample("CP1", "8", 200),
        sample("CP1", "7", 300),
        sample("CP1", None, 0),
    ]
    assert store.list_meter_values("CP2", "7") == [sample("CP2", "7", 999)]
    assert store.list_meter_values("CP3") == []


def test_meter_values_are_stored_once_per_message(store: StateStore) -> None:
    # The key is (charger, receivedAt, uniqueId): writing the same sample again replaces it.
    record = {"chargePointId": "CP1", "transactionId": "7", "meterValue": []}
    store.put_meter_values("CP1", "mv-1", START_MS, record)
    store.put_meter_values("CP1", "mv-1", START_MS, record)
    assert store.list_meter_values("CP1") == [record]


# --- events ------------------------------------------------------------------------------------


def _event(cp: str, kind: str, uid: str, at: int) -> dict[str, object]:
    return {"chargePointId": cp, "kind": kind, "uniqueId": uid, "receivedAt": at, "payload": {"n": uid}}


def test_events_are_listed_per_charger_and_kind_in_time_order(store: StateStore) -> None:
    store.put_event(
        "CP1", "SecurityEvent", "e2", START_MS + 2, _event("CP1", "SecurityEvent", "e2", START_MS + 2), None
    )
    store.put_event(
        "CP1", "SecurityEvent", "e1", START_MS + 1, _event("CP1", "SecurityEvent", "e1", START_MS + 1), None
    )
    store.put_event("CP1", "NotifyReport", "r1", START_MS, _event("CP1", "NotifyReport", "r1", START_MS), None)
    store.put_event("CP2", "SecurityEvent", "x1", START_MS, _event("CP2", "SecurityEvent", "x1", START_MS), None)
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
    store.put_event("CP1", "SecurityEvent", "e1", START_MS, record, None)
    store.put_event("CP1", "SecurityEvent", "e1", START_MS, record, None)
    assert store.list_events("CP1") == [record]


def test_events_carry_their_expiry_and_expired_events_read_as_absent(store: StateStore, clock: FakeClock) -> None:
    short = _event("CP1", "SecurityEvent", "short", START_MS)
    kept = _event("CP1", "SecurityEvent", "kept", START_MS + 1)
    forever = _event("CP1", "SecurityEvent", "forever", START_MS + 2)
    store.put_event("CP1", "SecurityEvent", "short", START_MS, short, NOW_S + 60)
    store.put_event("CP1", "SecurityEvent", "kept", START_MS + 1, kept, NOW_S + 3600)
    store.put_event("CP1", "SecurityEvent", "forever", START_MS + 2, forever, None)
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
    store.update_charger("CP1", {"protocol": "ocpp1.6", "connected": True})
    ids = SeqIds()
    first = calls.start_call(store, ids, clock.now_ms(), "CP1", "Reset", {"type": "Soft"}, timeout_s=30)
    assert first.record["status"] == "pending"
    assert store.get_call("CP1", first.record["uniqueId"]) == first.record
    with pytest.raises(calls.CallRefused) as busy:
        calls.start_call(store, ids, clock.now_ms(), "CP1", "ClearCache", {}, timeout_s=30)
    assert busy.value.status == 409 and busy.value.extra["pendingUniqueId"] == first.record["uniqueId"]

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
