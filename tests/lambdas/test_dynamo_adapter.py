"""What only the DynamoDB adapter has: the table layout, the TTL attribute, errors, pagination.

The behaviour both stores share is in test_store_contract.py; these tests look at the items
the adapter writes (the layout of ocpp_core/keys.py, which infra/ and the bridge also read).
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import boto3
import pytest
from hypothesis import given, settings

from lambdas.adapters.dynamo import LOCK_TTL_S, DynamoStore, deserialize_item, serialize_item
from ocpp_core import keys
from ocpp_core.ports import ItemUpdate, Newer, StoreError
from tests.fakes import START_MS, FakeClock
from tests.strategies import json_values

from .support import REGION, TABLE, raw_item, table_items

NOW_S = START_MS // 1000


def test_create_table_makes_the_shared_key_layout_with_ttl_on_expires_at(dynamodb: Any) -> None:
    table = dynamodb.describe_table(TableName=TABLE)["Table"]
    assert table["KeySchema"] == [
        {"AttributeName": keys.PK, "KeyType": "HASH"},
        {"AttributeName": keys.SK, "KeyType": "RANGE"},
    ]
    assert {(a["AttributeName"], a["AttributeType"]) for a in table["AttributeDefinitions"]} == {
        (keys.PK, "S"),
        (keys.SK, "S"),
        (keys.LIST_PK, "S"),
        (keys.LIST_SK, "S"),
    }
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = dynamodb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": keys.TTL_ATTRIBUTE}


def test_items_sit_under_the_documented_keys_and_carry_expires_at_where_they_expire(
    dynamo_store: DynamoStore, dynamodb: Any
) -> None:
    s = dynamo_store
    s.update_charger("CP1", {"registered": True})
    s.set_charger_map_entries("CP1", "variables", {"A/B": "1"})
    s.record_connection(
        "CP1",
        "conn-1",
        connected=True,
        at_ms=START_MS,
        charger_changes={},
        connection_changes={"expiresAt": NOW_S + 30},
    )
    s.update_status("CP1", "C1", {"status": "Available"}, "1")
    s.update_transaction("CP1", "7", ItemUpdate(set={"status": "Active"}))
    assert s.start_transaction("CP1", "start-8", "8", {"status": "Active"}) == "8"
    s.put_meter_values("CP1", "mv-1", {"transactionId": "7", "receivedAt": START_MS})
    s.put_event("CP1", "SecurityEvent", "e1", {"kind": "SecurityEvent"}, NOW_S + 90 * 86400)
    s.put_event("CP1", "StatusNotification", "e2", {"kind": "StatusNotification"}, None)
    assert s.claim_message("CP1", "m1", START_MS, NOW_S + 86400) is None
    assert s.claim_message("CP1", "m2", START_MS, NOW_S + 86400) is None
    s.complete_message("CP1", "m2", "reply", NOW_S + 86400)
    assert s.acquire_outstanding("CP1", "c1", START_MS, START_MS + 30_000) is None
    s.put_call("CP1", "c1", {"status": "pending", "expiresAt": NOW_S + 7 * 86400})
    s.put_id_token("TAG", {"idTag": "TAG"})
    s.next_transaction_id()

    expiry = {(item[keys.PK]["S"], item[keys.SK]["S"]): item.get(keys.TTL_ATTRIBUTE) for item in table_items(dynamodb)}
    assert expiry == {
        ("CP#CP1", "CHARGER"): None,
        ("CP#CP1", "MAP#variables"): None,
        ("CP#CP1", "CONN#conn-1"): {"N": str(NOW_S + 30)},
        ("CP#CP1", "STATUS#C1"): None,
        ("CP#CP1", "TX#7"): None,
        ("CP#CP1", "TX#8"): None,
        ("CP#CP1", "TXSTART#start-8"): None,
        ("CP#CP1", "MV#mv-1"): None,
        ("CP#CP1", "EVT#SecurityEvent#e1"): {"N": str(NOW_S + 90 * 86400)},
        ("CP#CP1", "EVT#StatusNotification#e2"): None,
        ("CP#CP1", "MSG#m1"): {"N": str(NOW_S + 86400)},
        ("CP#CP1", "MSG#m2"): {"N": str(NOW_S + 86400)},
        # The lock's own deadline is untilMs; the TTL only sweeps it up an hour later.
        ("CP#CP1", "OUTSTANDING"): {"N": str((START_MS + 30_000) // 1000 + LOCK_TTL_S)},
        ("CP#CP1", "CALL#c1"): {"N": str(NOW_S + 7 * 86400)},
        ("IDTAG#TAG", "IDTAG"): None,
        ("COUNTER", "TRANSACTION"): None,
    }
    # DynamoDB TTL only acts on a Number of epoch seconds (not milliseconds).
    for value in expiry.values():
        assert value is None or (set(value) == {"N"} and len(value["N"]) == 10)


def test_expired_items_linger_in_the_table_but_read_as_absent(
    dynamo_store: DynamoStore, dynamodb: Any, clock: FakeClock
) -> None:
    dynamo_store.put_call("CP1", "c1", {"status": "pending", "expiresAt": NOW_S + 60})
    dynamo_store.put_event("CP1", "SecurityEvent", "e1", {"kind": "SecurityEvent"}, NOW_S + 60)
    dynamo_store.record_connection(
        "CP1",
        "conn-1",
        connected=True,
        at_ms=START_MS,
        charger_changes={},
        connection_changes={"expiresAt": NOW_S + 60},
    )
    clock.advance(60)
    assert raw_item(dynamodb, "CP#CP1", "CALL#c1") is not None, "moto, like DynamoDB at first, keeps it"
    assert raw_item(dynamodb, "CP#CP1", "CONN#conn-1") is not None
    assert dynamo_store.get_call("CP1", "c1") is None
    assert dynamo_store.list_events("CP1") == []
    assert dynamo_store.get_connections([("CP1", "conn-1")]) == {}
    # ... and a conditional claim over a lingering expired idempotency record succeeds.
    assert dynamo_store.claim_message("CP1", "m1", START_MS, NOW_S + 10) is None
    assert dynamo_store.claim_message("CP1", "m1", START_MS + 10_000, NOW_S + 100) is None
    assert raw_item(dynamodb, "CP#CP1", "MSG#m1")[keys.TTL_ATTRIBUTE] == {"N": str(NOW_S + 100)}  # type: ignore[index]


def test_the_transaction_counter_carries_on_across_adapter_instances(dynamodb: Any) -> None:
    """A new execution environment (cold start) continues the sequence: ids are never reused."""
    first = DynamoStore(dynamodb, TABLE)
    assert [first.next_transaction_id() for _ in range(5)] == [1, 2, 3, 4, 5]
    second = DynamoStore(boto3.client("dynamodb", region_name=REGION), TABLE)
    assert second.next_transaction_id() == 6
    assert first.next_transaction_id() == 7


def test_failures_other_than_a_lost_condition_raise_store_error(dynamo_store: DynamoStore, dynamodb: Any) -> None:
    """Only ConditionalCheckFailed is a domain answer; anything else must not look like one."""
    missing = DynamoStore(dynamodb, "no-such-table")
    with pytest.raises(StoreError):
        missing.claim_message("CP1", "m1", START_MS, NOW_S + 60)  # not "already claimed"
    with pytest.raises(StoreError):
        missing.record_connection(  # not "stale"
            "CP1", "conn", connected=False, at_ms=START_MS, charger_changes={}, connection_changes={}
        )
    with pytest.raises(StoreError):
        missing.touch_charger("CP1", 1, {})  # not "unknown charger" nor "older frame"
    with pytest.raises(StoreError):
        missing.update_charger_fields("CP1", ItemUpdate(set={"a": 1}, newer=Newer("o", 1)))  # not "older"
    with pytest.raises(StoreError):
        missing.update_status("CP1", "C1", {"status": "Available"}, "1")  # not "older"
    with pytest.raises(StoreError):
        missing.update_transaction("CP1", "7", ItemUpdate(set={"a": 1}, must_exist=True))  # not "absent"
    with pytest.raises(StoreError):
        missing.start_transaction("CP1", "k", "7", {})  # not "already started"
    with pytest.raises(StoreError):
        missing.get_connections([("CP1", "conn")])
    with pytest.raises(StoreError):
        missing.complete_call("CP1", "c1", {"status": "accepted"})  # not "already completed"
    with pytest.raises(StoreError):
        missing.acquire_outstanding("CP1", "c1", START_MS, START_MS + 1)  # not "held"
    with pytest.raises(StoreError):
        missing.next_transaction_id()
    with pytest.raises(StoreError):
        missing.list_chargers()


class _SmallPages:
    """A DynamoDB client whose queries and scans return two items a page (as with 1 MB pages)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.pages = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def query(self, **kwargs: Any) -> Any:
        self.pages += 1
        return self._client.query(Limit=2, **kwargs)

    def scan(self, **kwargs: Any) -> Any:
        self.pages += 1
        return self._client.scan(Limit=2, **kwargs)


def test_listings_follow_every_page(dynamodb: Any, clock: FakeClock) -> None:
    paged = _SmallPages(dynamodb)
    store = DynamoStore(paged, TABLE, clock_s=clock.now_s)
    for i in range(7):
        store.update_charger(f"CP{i}", {"registered": True})
        store.update_status("CP0", f"C{i}", {"connectorId": i}, "1")
        store.update_transaction(
            "CP0", str(i), ItemUpdate(set={"chargePointId": "CP0", "transactionId": str(i), "startedAt": i})
        )
        store.put_event("CP0", "SecurityEvent", f"e{i}", {"n": i, "receivedAt": START_MS + i}, None)
        store.put_meter_values("CP0", f"m{i}", {"n": i, "receivedAt": START_MS + i})
    assert [c["chargePointId"] for c in store.list_chargers()] == [f"CP{i}" for i in range(7)]
    assert [s["connectorId"] for s in store.list_statuses("CP0")] == list(range(7))
    assert [t["transactionId"] for t in store.list_transactions("CP0")] == [str(i) for i in range(7)]
    assert [t["transactionId"] for t in store.list_transactions()] == [str(i) for i in range(7)]
    assert [e["n"] for e in store.list_events("CP0")] == list(range(7))
    assert [m["n"] for m in store.list_meter_values("CP0")] == list(range(7))
    assert paged.pages > 10


def test_numbers_convert_to_and_from_dynamodb_numbers() -> None:
    item = serialize_item({"i": 3, "f": 0.1, "whole": 2.0, "nested": {"l": [1.5, -2]}, "b": True, "n": None})
    assert item["i"] == {"N": "3"} and item["f"] == {"N": "0.1"} and item["b"] == {"BOOL": True}
    assert item["n"] == {"NULL": True}
    back = deserialize_item(item)
    assert back == {"i": 3, "f": 0.1, "whole": 2, "nested": {"l": [1.5, -2]}, "b": True, "n": None}
    assert type(back["i"]) is int and type(back["f"]) is float
    # DynamoDB has one Number type: an integral float comes back as an int (same JSON value).
    assert type(back["whole"]) is int


# Numbers a JSON payload may carry that DynamoDB's Number cannot (38 significant digits,
# 1E-130 to 9.99E+125): a charger's valid frame must not fail on them half way.
UNREPRESENTABLE = [10**38, -(10**40), 2**200, 12345678901234567890123456789012345678901, 1e-200, 1.5e300, 1e126]


@pytest.mark.parametrize("number", UNREPRESENTABLE)
def test_numbers_dynamodb_cannot_hold_are_kept_exactly_as_json_text(number: Any) -> None:
    item = serialize_item({"x": number, "in": {"list": [1, number]}})
    assert "N" not in item["x"]
    assert deserialize_item(item) == {"x": number, "in": {"list": [1, number]}}


def test_a_map_that_looks_like_the_json_wrapping_reads_back_as_it_was() -> None:
    value = {"a": {"$json": "[1, 2]"}, "b": {"$json": 7, "other": 1}}
    assert deserialize_item(serialize_item(value)) == value


def test_values_dynamodb_cannot_hold_fail_as_store_errors_or_are_kept_as_text() -> None:
    nan = deserialize_item(serialize_item({"x": float("nan")}))["x"]
    assert isinstance(nan, float) and math.isnan(nan)  # kept as JSON text, read back as NaN
    assert deserialize_item(serialize_item({"x": float("-inf")}))["x"] == float("-inf")
    deep: dict[str, Any] = {}
    cursor = deep
    for _ in range(40):
        cursor["d"] = {}
        cursor = cursor["d"]
    with pytest.raises(StoreError):
        serialize_item({"deep": deep})


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_any_json_value_comes_back_as_the_same_json(value: Any) -> None:
    """Whatever a free-form payload field (customData, 2.x DataTransfer data) holds."""
    back = deserialize_item(serialize_item({"v": value}))["v"]
    assert _normal(back) == _normal(value)


def _normal(value: Any) -> Any:
    """JSON equality: numbers compare as the decimal a JSON reader sees (DynamoDB has one Number
    type, so 2.0 reads back as 2, and 4.842919792615421e+16 as 48429197926154210)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, float):
        return Decimal(repr(value)) if math.isfinite(value) else repr(value)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


def test_a_payload_with_such_numbers_is_stored_on_moto_and_listed_back(dynamo_store: DynamoStore) -> None:
    payload = {"vendorId": "v", "data": {"big": 10**40, "tiny": 1e-200, "huge": 1.5e300, "ok": [0.5, 7]}}
    dynamo_store.put_event("CP1", "DataTransfer", "dt-1", {"payload": payload}, None)
    [event] = dynamo_store.list_events("CP1", "DataTransfer")
    assert event["payload"] == payload


class _NoScans:
    """A DynamoDB client that refuses table scans: listing chargers must not need one."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def scan(self, **kwargs: Any) -> Any:
        raise AssertionError("a table scan")


def test_chargers_are_listed_from_the_keys_only_index_in_batches(dynamodb: Any, clock: FakeClock) -> None:
    store = DynamoStore(_NoScans(dynamodb), TABLE, clock_s=clock.now_s)
    ids = [f"CP{n:04d}" for n in range(230)]  # more than one BatchGetItem (100 keys)
    for cp in ids:
        store.update_charger(cp, {"registered": True})
        store.update_status(cp, "C1", {"status": "Available"}, "1")
    assert [c["chargePointId"] for c in store.list_chargers()] == ids
    page = store.list_chargers(after="CP0099", limit=150)
    assert [c["chargePointId"] for c in page] == ids[100:230][:150]
    index = dynamodb.describe_table(TableName=TABLE)["Table"]["GlobalSecondaryIndexes"][0]
    assert index["IndexName"] == keys.LIST_INDEX and index["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    # Only charger items carry the index keys.
    listed = [i for i in table_items(dynamodb) if keys.LIST_PK in i]
    assert len(listed) == 230 and all(i[keys.SK] == {"S": keys.CHARGER_SK} for i in listed)


def test_connections_are_read_in_batches_and_each_pair_once(dynamodb: Any, clock: FakeClock) -> None:
    store = DynamoStore(_NoScans(dynamodb), TABLE, clock_s=clock.now_s)
    pairs = [(f"CP{n:04d}", f"conn-{n}") for n in range(230)]  # more than one BatchGetItem (100 keys)
    for cp, connection_id in pairs:
        store.record_connection(
            cp, connection_id, connected=True, at_ms=START_MS, charger_changes={}, connection_changes={}
        )
    found = store.get_connections([*pairs, *pairs[:5], ("CP-none", "conn-x")])  # duplicates are asked once
    assert set(found) == set(pairs)
    assert found[("CP0042", "conn-42")] == {
        "chargePointId": "CP0042",
        "connectionId": "conn-42",
        "connectedAt": START_MS,
    }


class _CountingClient:
    """A DynamoDB client that counts the requests made through it."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.requests: list[str] = []

    def __getattr__(self, name: str) -> Any:
        operation = getattr(self._client, name)

        def counted(**kwargs: Any) -> Any:
            self.requests.append(name)
            return operation(**kwargs)

        return counted


def test_touch_charger_is_one_request_whether_or_not_last_seen_moves(dynamodb: Any, clock: FakeClock) -> None:
    """Every frame touches its charger: an older frame gets the record from the failed condition
    (ReturnValuesOnConditionCheckFailure), not from a second read."""
    counting = _CountingClient(dynamodb)
    store = DynamoStore(counting, TABLE, clock_s=clock.now_s)
    store.update_charger("CP1", {"registered": True})
    counting.requests.clear()
    newer = store.touch_charger("CP1", START_MS + 10, {"protocol": "ocpp1.6"})
    older = store.touch_charger("CP1", START_MS, {"protocol": "ocpp2.0.1"})
    assert store.touch_charger("CP-unknown", START_MS, {}) is None
    assert (
        newer == older == {"chargePointId": "CP1", "registered": True, "lastSeen": START_MS + 10, "protocol": "ocpp1.6"}
    )
    assert counting.requests == ["update_item", "update_item", "update_item"]


def test_a_connect_reads_the_site_only_for_a_charger_item_it_creates(dynamo_store: DynamoStore, dynamodb: Any) -> None:
    """A presence ``connected`` is two writes; the charger's site comes back with the second
    (``ALL_OLD``). Only the write that creates the item reads the membership (once per charger)."""
    sent: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: sent.append(model.name))

    def connect(cp: str, connection: str, at_ms: int) -> tuple[list[str], str | None]:
        sent.clear()
        recorded = dynamo_store.record_connection(
            cp, connection, connected=True, at_ms=at_ms, charger_changes={}, connection_changes={}
        )
        return list(sent), recorded.site_id

    assert connect("CP-NEW", "c1", START_MS) == (["UpdateItem", "UpdateItem", "GetItem"], None)
    assert connect("CP-NEW", "c2", START_MS + 1) == (["UpdateItem", "UpdateItem"], None)
    dynamo_store.put_site("S1", {"siteId": "S1", "limitAmps": 32, "phases": 3, "chargers": ["CP-NEW"]}, [])
    assert connect("CP-NEW", "c3", START_MS + 2) == (["UpdateItem", "UpdateItem"], "S1")
    dynamo_store.put_site("S2", {"siteId": "S2", "limitAmps": 32, "phases": 3, "chargers": ["CP-LATER"]}, [])
    assert connect("CP-LATER", "c1", START_MS) == (["UpdateItem", "UpdateItem", "GetItem", "UpdateItem"], "S2")


@pytest.mark.parametrize("site", ["S1", None], ids=["member", "no-site"])
def test_a_membership_read_that_fails_after_the_item_was_created_is_made_again_by_the_retry(
    dynamo_store: DynamoStore, dynamodb: Any, site: str | None
) -> None:
    """The write that creates the charger item reads its membership; if that read fails, the
    invocation fails and Lambda retries it. Before the fix every later write found the item and took
    it for one whose site had been copied: a charger of a site was never balanced."""
    if site:
        dynamo_store.put_site(site, {"siteId": site, "limitAmps": 32, "phases": 3, "chargers": ["CP-1"]}, [])
    failures = iter([True])

    def fail_the_first_membership_read(model: Any, params: Any, **_: Any) -> Any:
        key = json.loads(params["body"])["Key"]
        if key[keys.SK]["S"] == keys.MEMBERSHIP_SK and next(failures, False):
            error = {"Error": {"Code": "InternalServerError", "Message": "injected"}}
            return SimpleNamespace(status_code=500, headers={}), error
        return None

    dynamodb.meta.events.register("before-call.dynamodb.GetItem", fail_the_first_membership_read)

    def connect() -> str | None:
        recorded = dynamo_store.record_connection(
            "CP-1", "c1", connected=True, at_ms=START_MS, charger_changes={}, connection_changes={}
        )
        return recorded.site_id

    def stored() -> dict[str, Any]:
        item = raw_item(dynamodb, keys.charger_pk("CP-1"), keys.CHARGER_SK)
        assert item is not None
        return item

    with pytest.raises(StoreError):
        connect()
    assert connect() is None  # the retry: the same event, which the charger item has already seen
    assert dynamo_store.update_charger_fields("CP-1", ItemUpdate(set={"model": "X"}))  # its boot
    assert stored().get("siteId", {}).get("S") == site
    assert keys.SITE_PENDING not in (dynamo_store.get_charger("CP-1") or {})  # never shown
    if site is None:
        assert keys.SITE_PENDING not in stored()  # the next writes read no membership
