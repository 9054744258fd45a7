"""Expired items are removed from the local table (moto applies no TTL), renewed ones kept, errors survived."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.adapters.dynamo import create_table
from local_stack.sweeper import SWEEP_INTERVAL_VARIABLE, ExpiredItemSweeper
from ocpp_core import keys

from .support import StackRun

pytestmark = pytest.mark.timeout(60)

TABLE = "ocpp-sweeper-test"
NOW = 1_800_000_000


@pytest.fixture
def client(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(dynamodb, TABLE)
        yield dynamodb


def put(client: Any, pk: str, sk: str, expires: Any = None, **extra: str) -> None:
    item: dict[str, Any] = {keys.PK: {"S": pk}, keys.SK: {"S": sk}, **{k: {"S": v} for k, v in extra.items()}}
    if isinstance(expires, int):
        item[keys.TTL_ATTRIBUTE] = {"N": str(expires)}
    elif isinstance(expires, str):
        item[keys.TTL_ATTRIBUTE] = {"S": expires}  # not a Number: DynamoDB's TTL ignores it
    client.put_item(TableName=TABLE, Item=item)


def remaining(client: Any) -> set[tuple[str, str]]:
    items = client.scan(TableName=TABLE)["Items"]
    return {(item[keys.PK]["S"], item[keys.SK]["S"]) for item in items}


def test_a_sweep_deletes_expired_items_only_across_pages(client: Any) -> None:
    for n in range(25):
        put(client, f"CP#{n}", "MSG#1", NOW - 1 - n)  # expired
        put(client, f"CP#{n}", "MSG#2", NOW + 3600)  # live
    put(client, "CP#edge", "MSG#now", NOW)  # expires this very second: gone
    put(client, "CP#x", "CHARGER")  # no TTL
    put(client, "CP#x", "EVT#text", "1")  # a TTL that is not a number
    sweeper = ExpiredItemSweeper(client, TABLE, clock=lambda: NOW + 0.9, page_size=7)
    assert sweeper.sweep() == 26
    left = remaining(client)
    assert left == {(f"CP#{n}", "MSG#2") for n in range(25)} | {("CP#x", "CHARGER"), ("CP#x", "EVT#text")}
    assert sweeper.sweep() == 0 and sweeper.sweeps == 2


class RenewingClient:
    """The client, with the item renewed (a fresh TTL written) between the scan and the sweeper's delete."""

    def __init__(self, client: Any, renew: dict[str, Any]):
        self._client = client
        self._renew = renew
        self.exceptions = client.exceptions

    def scan(self, **kwargs: Any) -> Any:
        return self._client.scan(**kwargs)

    def delete_item(self, **kwargs: Any) -> Any:
        if kwargs["Key"] == self._renew:
            self._client.update_item(
                TableName=TABLE,
                Key=self._renew,
                UpdateExpression="SET #ttl = :later",
                ExpressionAttributeNames={"#ttl": keys.TTL_ATTRIBUTE},
                ExpressionAttributeValues={":later": {"N": str(NOW + 86400)}},
            )
        return self._client.delete_item(**kwargs)


def test_an_item_renewed_meanwhile_survives(client: Any) -> None:
    put(client, "CP#a", "MSG#renewed", NOW - 10, status="in_progress")
    put(client, "CP#a", "MSG#old", NOW - 10)
    renewed_key = {keys.PK: {"S": "CP#a"}, keys.SK: {"S": "MSG#renewed"}}
    sweeper = ExpiredItemSweeper(RenewingClient(client, renewed_key), TABLE, clock=lambda: NOW)
    assert sweeper.sweep() == 1
    assert sweeper.renewed == 1
    assert remaining(client) == {("CP#a", "MSG#renewed")}


class FlakyClient:
    """Fails the first ``failures`` scans, as a moto that is busy or restarting would."""

    def __init__(self, client: Any, failures: int):
        self._client = client
        self.failures = failures
        self.exceptions = client.exceptions
        self.scans = 0

    def scan(self, **kwargs: Any) -> Any:
        self.scans += 1
        if self.scans <= self.failures:
            raise ConnectionError("moto is not answering")
        return self._client.scan(**kwargs)

    def delete_item(self, **kwargs: Any) -> Any:
        return self._client.delete_item(**kwargs)


def test_the_thread_survives_errors_and_stops_promptly(client: Any, caplog: pytest.LogCaptureFixture) -> None:
    put(client, "CP#a", "MSG#1", int(time.time()) - 5)
    flaky = FlakyClient(client, failures=2)
    sweeper = ExpiredItemSweeper(flaky, TABLE, interval_s=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while remaining(client) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert remaining(client) == set(), "the sweeper stopped after the errors"
        assert sweeper.failures == 2
        assert "sweep of ocpp-sweeper-test: run failed" in caplog.text
    finally:
        started = time.monotonic()
        sweeper.stop(2)
    assert time.monotonic() - started < 2
    assert not any(thread.name == "ttl-sweeper" for thread in threading.enumerate())


def test_the_local_stack_sweeps_its_table(stack_run: StackRun) -> None:
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
    assert "expired items: 1 deleted" in stack_run.stderr
    stack_run.interrupt()
    assert stack_run.wait(15) == 0, stack_run.output_tail()
