"""The moto server applies DynamoDB's TTL (moto has none): expired items go, others stay, requests go on."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.adapters.dynamo import create_table
from local_stack.moto_ttl import SWEEP_INTERVAL_VARIABLE, TimeToLive
from ocpp_core import keys

from .support import StackRun

pytestmark = pytest.mark.timeout(60)

TABLE = "ocpp-ttl-test"
NOW = 1_800_000_000


@pytest.fixture
def client(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, TABLE)
        yield dynamodb


def put(client: Any, pk: str, sk: str, expires: Any = None, table: str = TABLE) -> None:
    item: dict[str, Any] = {keys.PK: {"S": pk}, keys.SK: {"S": sk}}
    if isinstance(expires, int | float):
        item[keys.TTL_ATTRIBUTE] = {"N": str(expires)}
    elif isinstance(expires, str):
        item[keys.TTL_ATTRIBUTE] = {"S": expires}  # not a Number: DynamoDB's TTL ignores it
    client.put_item(TableName=table, Item=item)


def remaining(client: Any, table: str = TABLE) -> set[tuple[str, str]]:
    items = client.scan(TableName=table)["Items"]
    return {(item[keys.PK]["S"], item[keys.SK]["S"]) for item in items}


def test_a_pass_deletes_expired_items_only_in_every_step(client: Any) -> None:
    for n in range(25):
        put(client, f"CP#{n}", "MSG#1", NOW - 1 - n)  # expired
        put(client, f"CP#{n}", "MSG#2", NOW + 3600)  # live
    put(client, "CP#edge", "MSG#now", NOW)  # expires this very second: gone
    put(client, "CP#edge", "MSG#fraction", NOW + 0.5)  # a fraction of a second before the clock: gone
    put(client, "CP#x", "CHARGER")  # no TTL
    put(client, "CP#x", "EVT#text", "1")  # a TTL that is not a number
    ttl = TimeToLive(threading.RLock(), clock=lambda: NOW + 0.9, partitions_per_step=4)  # 7 steps
    assert ttl.sweep() == 27
    left = remaining(client)
    assert left == {(f"CP#{n}", "MSG#2") for n in range(25)} | {("CP#x", "CHARGER"), ("CP#x", "EVT#text")}
    assert ttl.sweep() == 0 and ttl.sweeps == 2 and ttl.deleted == 27


def test_only_tables_with_ttl_enabled_and_hash_only_tables(client: Any) -> None:
    client.create_table(
        TableName="plain",
        KeySchema=[{"AttributeName": keys.PK, "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": keys.PK, "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    client.put_item(TableName="plain", Item={keys.PK: {"S": "a"}, keys.TTL_ATTRIBUTE: {"N": str(NOW - 10)}})
    ttl = TimeToLive(threading.RLock(), clock=lambda: NOW)
    assert ttl.sweep() == 0  # TTL not enabled on it: kept
    client.update_time_to_live(
        TableName="plain", TimeToLiveSpecification={"Enabled": True, "AttributeName": keys.TTL_ATTRIBUTE}
    )
    client.put_item(TableName="plain", Item={keys.PK: {"S": "b"}, keys.TTL_ATTRIBUTE: {"N": str(NOW + 10)}})
    assert ttl.sweep() == 1
    assert [item[keys.PK]["S"] for item in client.scan(TableName="plain")["Items"]] == ["b"]


def test_a_deletion_is_a_remove_record_on_the_stream(client: Any) -> None:
    """As DynamoDB's TTL deletions are (the events mapping filters REMOVE records out)."""
    from moto.dynamodb.models import dynamodb_backends

    put(client, "CP#1", "MSG#1", NOW - 1)
    table = dynamodb_backends["123456789012"]["us-east-1"].tables[TABLE]
    before = len(table.stream_shard.items)
    TimeToLive(threading.RLock(), clock=lambda: NOW).sweep()
    records = [record.to_json() for record in table.stream_shard.items[before:]]
    assert [(r["eventName"], r["dynamodb"]["Keys"][keys.SK]["S"]) for r in records] == [("REMOVE", "MSG#1")]


def test_each_step_holds_the_request_lock(client: Any) -> None:
    """Between two steps another request can run: the lock is released, and held during each step."""
    for n in range(6):
        put(client, f"CP#{n}", "MSG#1", NOW - 1)
    lock = threading.RLock()
    seen: list[bool] = []
    ttl = TimeToLive(lock, clock=lambda: NOW, partitions_per_step=2)
    original = ttl._sweep_table

    def watched(table: Any, attribute: str, now: float) -> int:
        from moto.dynamodb.models.table import Table

        delete = Table.delete_item

        def delete_item(self: Any, *args: Any) -> Any:
            seen.append(lock._is_owned())  # type: ignore[attr-defined]
            return delete(self, *args)

        Table.delete_item = delete_item  # type: ignore[method-assign]
        try:
            return original(table, attribute, now)
        finally:
            Table.delete_item = delete  # type: ignore[method-assign]

    ttl._sweep_table = watched  # type: ignore[method-assign]
    assert ttl.sweep() == 6
    assert seen == [True] * 6
    assert not lock._is_owned()  # type: ignore[attr-defined]


def test_the_thread_survives_errors_and_stops_promptly(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    put(client, "CP#1", "MSG#1", NOW - 1)
    calls = {"n": 0}

    def clock() -> float:
        calls["n"] += 1
        if calls["n"] <= 2:
            raise RuntimeError("clock failed")
        return NOW

    ttl = TimeToLive(threading.RLock(), interval_s=0.05, clock=clock).start()
    try:
        deadline = time.monotonic() + 10
        while ttl.deleted == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ttl.deleted == 1
        assert "expired items: run failed" in caplog.text
    finally:
        started = time.monotonic()
        ttl.stop(2)
    assert time.monotonic() - started < 2
    assert not any(thread.name == "ttl" for thread in threading.enumerate())


def test_the_local_stack_removes_expired_items(stack_run: StackRun) -> None:
    stack_run.overrides[SWEEP_INTERVAL_VARIABLE] = "0.2"
    assert stack_run.start().wait(90, until=stack_run.ready) is None, stack_run.output_tail()
    moto = boto3.client(
        "dynamodb",
        endpoint_url=f"http://127.0.0.1:{stack_run.ports['moto']}",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    table = stack_run.env()["OCPP_TABLE_NAME"]
    now = int(time.time())
    for sk, expires in (("MSG#expired", now - 60), ("MSG#live", now + 3600)):
        moto.put_item(
            TableName=table,
            Item={keys.PK: {"S": "CP#sweep"}, keys.SK: {"S": sk}, keys.TTL_ATTRIBUTE: {"N": str(expires)}},
        )

    def left() -> set[str]:
        items = moto.query(
            TableName=table,
            KeyConditionExpression="#pk = :pk",
            ExpressionAttributeNames={"#pk": keys.PK},
            ExpressionAttributeValues={":pk": {"S": "CP#sweep"}},
        )["Items"]
        return {item[keys.SK]["S"] for item in items}

    deadline = time.monotonic() + 10
    while "MSG#expired" in left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert left() == {"MSG#live"}, stack_run.output_tail()
    assert "removed by the moto server every 0.2 s" in stack_run.stderr
    stack_run.interrupt()
    assert stack_run.wait(15) == 0, stack_run.output_tail()
    assert "expired items: 1 deleted" in (stack_run.state_dir / "moto.log").read_text()
