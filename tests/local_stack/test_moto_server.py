"""The local stack's moto server: what its speed-ups change is nothing a client can see.

* The plain-JSON responses are compared with moto's own serializer on every response of a
  session that covers each item operation and attribute type the adapter uses.
* Transactions backed up per item roll back exactly as moto's whole-table backup does: a
  property test runs generated transactions (some failing half-way) on two backends, one
  with each backup, and compares errors and tables after each.
* The server itself answers concurrent clients, every write applied. (A smoke test: under the
  GIL moto's unlocked races are too rare for it to tell the request lock's absence, and it
  passes with keep-alive too; the single thread's gain is measured in ``bench e2e``.)
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from lambdas.adapters.dynamo import DynamoStore, create_table
from local_stack.moto_server import (
    CONTENT_TYPE,
    PLAIN_JSON_OPERATIONS,
    fast_dynamodb_responses,
    item_backup_transactions,
    serialize_dynamodb,
)
from local_stack.ports import free_port
from ocpp_core import keys
from ocpp_core.ports import ItemUpdate, Newer

pytestmark = pytest.mark.timeout(120)

TABLE = "ocpp-moto-server-test"
REGION = "us-east-1"


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


class Comparisons:
    """Both serializers on each response: the fast one answers, moto's own checks it."""

    def __init__(self) -> None:
        self.compared: list[str] = []
        self.mismatches: list[tuple[str, Any, Any]] = []


@pytest.fixture
def comparisons(aws: None, monkeypatch: pytest.MonkeyPatch) -> Comparisons:
    from moto.dynamodb.responses import DynamoHandler

    original = DynamoHandler.serialized
    fast_dynamodb_responses(monkeypatch.setattr)
    fast = DynamoHandler.serialized
    seen = Comparisons()

    def checked(self: Any, action_result: Any) -> Any:
        answer = fast(self, action_result)
        if fast is not original and answer[2] is not None:
            reference = original(self, action_result)
            action = self._get_action()
            seen.compared.append(action)
            if (answer[0], json.loads(answer[2])) != (reference[0], json.loads(reference[2])):
                seen.mismatches.append((action, answer[2], reference[2]))
            if answer[1].get("Content-Type") != reference[1].get("Content-Type"):
                seen.mismatches.append((action, answer[1], reference[1]))
        return answer

    monkeypatch.setattr(DynamoHandler, "serialized", checked)
    return seen


EVERY_TYPE = {
    "pk": {"S": "CP#1"},
    "sk": {"S": "CHARGER"},
    "text": {"S": 'é ünïcode "quoted"'},
    "number": {"N": "12.50"},
    "big": {"N": "123456789012345678901234567890"},
    "blob": {"B": b"\x00\xffbinary"},
    "texts": {"SS": ["a", "b"]},
    "numbers": {"NS": ["1", "2.5"]},
    "blobs": {"BS": [b"\x01", b"\x02"]},
    "flag": {"BOOL": True},
    "nothing": {"NULL": True},
    "map": {"M": {"nested": {"M": {"deep": {"L": [{"S": "x"}, {"N": "1"}, {"B": b"\x03"}]}}}}},
    "empty": {"M": {}},
    "list": {"L": []},
}


def test_the_fast_responses_equal_motos_own_on_every_item_operation(comparisons: Comparisons) -> None:
    client = boto3.client("dynamodb", region_name=REGION)
    create_table(client, TABLE)
    t = {"TableName": TABLE}
    key = {"pk": {"S": "CP#1"}, "sk": {"S": "CHARGER"}}
    client.put_item(**t, Item=EVERY_TYPE, ReturnConsumedCapacity="TOTAL")
    client.put_item(**t, Item={**EVERY_TYPE, "flag": {"BOOL": False}}, ReturnValues="ALL_OLD")
    assert client.get_item(**t, Key=key)["Item"]["blob"] == {"B": b"\x00\xffbinary"}
    client.get_item(**t, Key={"pk": {"S": "none"}, "sk": {"S": "none"}})
    client.get_item(**t, Key=key, ProjectionExpression="#m.nested, texts", ExpressionAttributeNames={"#m": "map"})
    for returns in ("NONE", "ALL_NEW", "ALL_OLD", "UPDATED_NEW", "UPDATED_OLD"):
        client.update_item(
            **t,
            Key=key,
            UpdateExpression="SET #m.nested.added = :v, #n = #n + :one ADD hits :one",
            ExpressionAttributeNames={"#m": "map", "#n": "number"},
            ExpressionAttributeValues={":v": {"S": returns}, ":one": {"N": "1"}},
            ReturnValues=returns,
            ReturnConsumedCapacity="INDEXES",
        )
    with pytest.raises(ClientError):  # an error: moto's serializer answers it
        client.update_item(
            **t,
            Key=key,
            UpdateExpression="SET flag = :f",
            ConditionExpression="attribute_not_exists(pk)",
            ExpressionAttributeValues={":f": {"BOOL": False}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    for n in range(5):
        client.put_item(**t, Item={"pk": {"S": "CP#1"}, "sk": {"S": f"MV#{n}"}, "n": {"N": str(n)}})
    page = client.query(
        **t,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :mv)",
        ExpressionAttributeValues={":pk": {"S": "CP#1"}, ":mv": {"S": "MV#"}},
        Limit=2,
        ScanIndexForward=False,
    )
    assert page["LastEvaluatedKey"]
    client.query(
        **t,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": "CP#1"}},
        Select="COUNT",
        ExclusiveStartKey=page["LastEvaluatedKey"],
    )
    client.scan(**t, Limit=3, FilterExpression="attribute_exists(n)")
    client.batch_get_item(
        RequestItems={
            TABLE: {"Keys": [key, {"pk": {"S": "CP#1"}, "sk": {"S": "MV#1"}}, {"pk": {"S": "x"}, "sk": {"S": "y"}}]}
        }
    )
    client.batch_write_item(
        RequestItems={
            TABLE: [
                {"PutRequest": {"Item": {"pk": {"S": "CP#2"}, "sk": {"S": "A"}}}},
                {"DeleteRequest": {"Key": {"pk": {"S": "CP#1"}, "sk": {"S": "MV#0"}}}},
            ]
        }
    )
    client.transact_write_items(
        TransactItems=[
            {"Put": {**t, "Item": {"pk": {"S": "CP#3"}, "sk": {"S": "TX#1"}}}},
            {
                "Update": {
                    **t,
                    "Key": key,
                    "UpdateExpression": "SET tx = :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ]
    )
    client.delete_item(**t, Key={"pk": {"S": "CP#2"}, "sk": {"S": "A"}}, ReturnValues="ALL_OLD")

    # And the adapter's own requests, as the processor and the API send them.
    store = DynamoStore(client, TABLE)
    store.update_charger("CP-A", {"registered": True, "configuration": {"HeartbeatInterval": "300"}})
    assert store.touch_charger("CP-A", 1_000, {"protocol": "ocpp1.6"})["lastSeen"] == 1_000
    assert store.touch_charger("CP-A", 500, {"protocol": "ocpp1.6"})["lastSeen"] == 1_000  # the older loses
    store.update_charger_fields("CP-A", ItemUpdate(set={"boot": {"vendor": "V"}}, newer=Newer("bootOrder", "1#a")))
    store.record_connection("CP-A", "c1", connected=True, at_ms=1_000, charger_changes={}, connection_changes={})
    assert store.get_connections([("CP-A", "c1"), ("CP-A", "none")])
    assert [r["chargePointId"] for r in store.list_chargers()] == ["CP-A"]

    assert comparisons.mismatches == []
    assert PLAIN_JSON_OPERATIONS <= set(comparisons.compared)


# -- transactions: per-item backup vs moto's whole-table backup -------------------------------------

KEYS = [("A", "1"), ("A", "2"), ("B", "1")]

operation = st.one_of(
    st.builds(lambda k, v: ("Put", k, v, None), st.sampled_from(KEYS), st.integers(0, 3)),
    st.builds(
        lambda k, v, c: ("Update", k, v, c),
        st.sampled_from(KEYS),
        st.integers(0, 3),
        st.sampled_from([None, "exists", "absent", "below"]),
    ),
    st.builds(lambda k, c: ("Delete", k, None, c), st.sampled_from(KEYS), st.sampled_from([None, "exists", "absent"])),
    st.builds(
        lambda k, c: ("ConditionCheck", k, None, c),
        st.sampled_from(KEYS),
        st.sampled_from(["exists", "absent", "below"]),
    ),
)

CONDITIONS = {
    "exists": ("attribute_exists(pk)", {}),
    "absent": ("attribute_not_exists(pk)", {}),
    "below": ("attribute_not_exists(v) OR v < :limit", {":limit": {"N": "2"}}),
}


def wire(op: tuple[str, tuple[str, str], int | None, str | None], table: str) -> dict[str, Any]:
    kind, (pk, sk), value, condition = op
    key = {"pk": {"S": pk}, "sk": {"S": sk}}
    body: dict[str, Any] = {"TableName": table}
    values: dict[str, Any] = {}
    if kind == "Put":
        body["Item"] = {**key, "v": {"N": str(value)}}
    else:
        body["Key"] = key
    if kind == "Update":
        body["UpdateExpression"] = "SET v = :v"
        values[":v"] = {"N": str(value)}
    if condition:
        body["ConditionExpression"], extra = CONDITIONS[condition]
        values.update(extra)
    if values:
        body["ExpressionAttributeValues"] = values
    return {kind: body}


def table_state(backend: Any, table: str) -> list[Any]:
    return sorted(json.dumps(item.to_json(), sort_keys=True) for item in backend.get_table(table).all_items())


def outcome(call: Any, *args: Any) -> str:
    try:
        call(*args)
    except Exception as error:
        return f"{type(error).__name__}: {getattr(error, 'message', error)}"
    return "ok"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(operation, min_size=1, max_size=4), min_size=1, max_size=6))
def test_per_item_backup_rolls_back_as_the_whole_table_backup_does(aws: None, transactions: list[Any]) -> None:
    from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends

    whole = DynamoDBBackend.transact_write_items
    patched: dict[str, Any] = {}
    item_backup_transactions(lambda owner, name, value: patched.__setitem__(name, value))
    per_item = patched["transact_write_items"]

    reference, subject = dynamodb_backends["123456789012"]["eu-west-1"], dynamodb_backends["123456789012"]["eu-west-2"]
    names = {}
    for region in ("eu-west-1", "eu-west-2"):
        client = boto3.client("dynamodb", region_name=region)
        names[region] = f"t-{time.monotonic_ns()}"
        create_table(client, names[region])
        for pk, sk in KEYS[:2]:
            client.put_item(TableName=names[region], Item={"pk": {"S": pk}, "sk": {"S": sk}, "v": {"N": "1"}})
    for ops in transactions:
        expected = outcome(whole, reference, [wire(op, names["eu-west-1"]) for op in ops])
        got = outcome(per_item, subject, [wire(op, names["eu-west-2"]) for op in ops])
        assert got.replace(names["eu-west-2"], "T") == expected.replace(names["eu-west-1"], "T"), ops
        assert table_state(subject, names["eu-west-2"]) == table_state(reference, names["eu-west-1"]), ops


# -- the server process ----------------------------------------------------------------------------


@pytest.fixture
def server(aws_env: None) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "local_stack.moto_server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client(
            "dynamodb", region_name=REGION, endpoint_url=url, config=Config(retries={"max_attempts": 1})
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                client.list_tables()
                break
            except Exception:
                assert process.poll() is None and time.monotonic() < deadline, "moto server did not start"
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            assert process.wait(timeout=10) == 0  # a stop signal is a clean exit
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            assert process.stderr is not None
            process.stderr.close()


def test_concurrent_clients_are_all_served_and_lose_no_write(server: str) -> None:
    client = boto3.client("dynamodb", region_name=REGION, endpoint_url=server)
    create_table(client, TABLE)
    store = DynamoStore(client, TABLE)
    store.update_charger("CP-1", {"registered": True})
    errors: list[BaseException] = []

    def writer(worker: int) -> None:
        own = boto3.client("dynamodb", region_name=REGION, endpoint_url=server)
        try:
            for n in range(25):
                # Each worker bumps the shared counter and moves lastSeen; the latest time wins.
                own.update_item(
                    TableName=TABLE,
                    Key={"pk": {"S": "CP#CP-1"}, "sk": {"S": "CHARGER"}},
                    UpdateExpression="ADD hits :one",
                    ExpressionAttributeValues={":one": {"N": "1"}},
                )
                DynamoStore(own, TABLE).touch_charger("CP-1", worker * 1000 + n, {})
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    record = store.get_charger("CP-1")
    assert record is not None
    assert record["hits"] == 150
    assert record["lastSeen"] == 5 * 1000 + 24
    response = client.get_item(TableName=TABLE, Key={"pk": {"S": "CP#CP-1"}, "sk": {"S": "CHARGER"}})
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-type"] == CONTENT_TYPE


# -- update expressions: checks on the root only vs on every nested node -----------------------------

ACTIONS = {
    "SET": ["a = :v", "#n = :v", "m.x = :v", "m.x.y = :v", "l[0] = :v", "a = a + :one", "b = if_not_exists(b, :v)"],
    "ADD": ["c :one", "a :one"],
    "REMOVE": ["d", "m.x", "a"],
    "DELETE": ["s :set"],
}

clause = st.sampled_from(sorted(ACTIONS)).flatmap(
    lambda keyword: st.lists(st.sampled_from(ACTIONS[keyword]), min_size=1, max_size=4).map(
        lambda actions: f"{keyword} {', '.join(actions)}"
    )
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(clause, min_size=1, max_size=4))
def test_root_only_checks_accept_and_refuse_what_motos_own_do(aws: None, clauses: list[str]) -> None:
    from moto.dynamodb.models import dynamodb_backends
    from moto.dynamodb.parsing import validators

    from local_stack.moto_dispatch import root_only_update_checks

    expression = " ".join(clauses)
    item = {
        "pk": {"S": "A"},
        "sk": {"S": "1"},
        "a": {"N": "1"},
        "m": {"M": {"x": {"M": {"y": {"S": "z"}}}}},
        "l": {"L": [{"S": "first"}]},
        "s": {"SS": ["p", "q"]},
    }
    values = {":v": {"S": "new"}, ":one": {"N": "1"}, ":set": {"SS": ["p"]}}
    names = {"#n": "named"} if "#n" in expression else None
    outcomes = []
    for region, patch in (("eu-west-1", False), ("eu-west-2", True)):
        client = boto3.client("dynamodb", region_name=region)
        table = f"u-{time.monotonic_ns()}"
        create_table(client, table)
        client.put_item(TableName=table, Item=item)
        backend = dynamodb_backends["123456789012"][region]
        saved = {
            name: getattr(cls, name)
            for cls, name in (
                (validators.ActionCountValidator, "verify_action_counts"),
                (validators.OverlappingPathsValidator, "check_for_overlapping_paths"),
            )
        }
        if patch:
            root_only_update_checks()
        try:
            result = outcome(
                backend.update_item,
                table,
                {"pk": {"S": "A"}, "sk": {"S": "1"}},
                expression,
                names,
                values,
            )
        finally:
            validators.ActionCountValidator.verify_action_counts = saved["verify_action_counts"]
            validators.OverlappingPathsValidator.check_for_overlapping_paths = saved["check_for_overlapping_paths"]
        outcomes.append((result.split(":")[0], table_state(backend, table)))
    assert outcomes[1] == outcomes[0], expression


# --- the table's stream (domain events, local_stack.event_stream) -----------------------------


def _stream(client: Any) -> tuple[Any, str]:
    streams = boto3.client(
        "dynamodbstreams", region_name=REGION, endpoint_url=f"https://streams.dynamodb.{REGION}.amazonaws.com"
    )
    arn = client.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    return streams, iterator["ShardIterator"]


def _keys(records: list[dict[str, Any]]) -> list[str]:
    return [r["dynamodb"]["Keys"]["sk"]["S"] for r in records]


def test_a_failed_transaction_leaves_no_stream_record(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from local_stack.moto_server import consumed_streams

    item_backup_transactions(monkeypatch.setattr)
    consumed_streams(monkeypatch.setattr)
    client = boto3.client("dynamodb", region_name=REGION)
    create_table(client, TABLE)
    streams, iterator = _stream(client)
    put = {"Put": {"TableName": TABLE, "Item": {"pk": {"S": "A"}, "sk": {"S": "STATUS#written-then-undone"}}}}
    refused = {
        "ConditionCheck": {
            "TableName": TABLE,
            "Key": {"pk": {"S": "A"}, "sk": {"S": "absent"}},
            "ConditionExpression": "attribute_exists(pk)",
        }
    }
    with pytest.raises(ClientError):
        client.transact_write_items(TransactItems=[put, refused])
    client.put_item(TableName=TABLE, Item={"pk": {"S": "A"}, "sk": {"S": "STATUS#kept"}})
    answer = streams.get_records(ShardIterator=iterator)
    assert _keys(answer["Records"]) == ["STATUS#kept"]


def test_the_stream_forgets_what_was_read_and_keeps_numbering(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.dynamodb.models import dynamodb_backends

    from local_stack.moto_server import consumed_streams

    consumed_streams(monkeypatch.setattr)
    monkeypatch.setattr("local_stack.moto_server.MAX_STREAM_RECORDS", 5)
    client = boto3.client("dynamodb", region_name=REGION)
    create_table(client, TABLE)
    shard = dynamodb_backends["123456789012"][REGION].get_table(TABLE).stream_shard
    streams, iterator = _stream(client)
    for n in range(3):
        client.put_item(TableName=TABLE, Item={"pk": {"S": "A"}, "sk": {"S": f"TX#a{n}"}})
    first = streams.get_records(ShardIterator=iterator)
    assert _keys(first["Records"]) == ["TX#a0", "TX#a1", "TX#a2"]
    for n in range(2):
        client.put_item(TableName=TABLE, Item={"pk": {"S": "A"}, "sk": {"S": f"TX#b{n}"}})
    second = streams.get_records(ShardIterator=first["NextShardIterator"])
    assert _keys(second["Records"]) == ["TX#b0", "TX#b1"]
    assert len(shard.items) == 2  # the first three were read: forgotten
    numbers = [int(r["dynamodb"]["SequenceNumber"]) for r in first["Records"] + second["Records"]]
    assert numbers == sorted(set(numbers))
    for n in range(8):  # nobody reads: at most MAX_STREAM_RECORDS are kept
        client.put_item(TableName=TABLE, Item={"pk": {"S": "A"}, "sk": {"S": f"TX#c{n}"}})
    assert len(shard.items) == 5
    third = streams.get_records(ShardIterator=second["NextShardIterator"])
    assert _keys(third["Records"]) == [f"TX#c{n}" for n in range(3, 8)]


def test_the_stream_keeps_what_the_filter_passes_and_answers_as_motos_serializer(
    aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only the records the event source mapping's filter passes are kept (inserts and changes of
    the items that make events, a charger's touches left out), and GetRecords in plain JSON parses
    to what moto's own gives."""
    from local_stack.moto_server import consumed_streams, fast_stream_responses

    consumed_streams(monkeypatch.setattr)
    client = boto3.client("dynamodb", region_name=REGION)
    create_table(client, TABLE)
    streams, iterator = _stream(client)
    for sk in ("CHARGER", "MV#x", "STATUS#C1", "MSG#y", "TX#1", "OUTBOX#z"):
        client.put_item(
            TableName=TABLE,
            Item={
                "pk": {"S": "CP#A"},
                "sk": {"S": sk},
                "n": {"N": "1"},
                "b": {"B": b"\x00"},
                keys.WRITE_KIND: {"S": keys.STATE_WRITE},
            },
        )
    for cp, kind in (("CP#touched", {"S": keys.TOUCH_WRITE}), ("CP#unmarked", None)):
        item = {"pk": {"S": cp}, "sk": {"S": "CHARGER"}, **({keys.WRITE_KIND: kind} if kind else {})}
        client.put_item(TableName=TABLE, Item=item)  # dropped: a touch, and a write of no kind
    client.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "CP#A"}, "sk": {"S": "TX#1"}},
        UpdateExpression="SET m = :m",
        ExpressionAttributeValues={":m": {"M": {"l": {"L": [{"S": "x"}, {"BOOL": True}, {"NULL": True}]}}}},
    )
    client.delete_item(TableName=TABLE, Key={"pk": {"S": "CP#A"}, "sk": {"S": "STATUS#C1"}})
    own = streams.get_records(ShardIterator=iterator)
    assert _keys(own["Records"]) == ["CHARGER", "STATUS#C1", "TX#1", "TX#1"]
    fast_stream_responses(monkeypatch.setattr)
    streams, again = _stream(client)
    fast = streams.get_records(ShardIterator=again)
    for record in own["Records"] + fast["Records"]:
        record.pop("eventID")  # random per record
    assert fast["Records"] == own["Records"]


def _delete_during_the_old_items_read(monkeypatch: pytest.MonkeyPatch, client: Any, table: str) -> threading.Thread:
    """When moto's PutItem handler has read the old item (for ``ALL_OLD``), another client deletes
    it; the put waits up to 0.5 s for that delete (it cannot finish while the request is atomic)."""
    from moto.dynamodb.models.dynamo_type import Item

    original = Item.to_json
    deleter = threading.Thread(
        target=lambda: client.delete_item(TableName=table, Key={keys.PK: {"S": "CP#1"}, keys.SK: {"S": "SITE"}})
    )

    def to_json(self: Any) -> Any:
        if not deleter.is_alive() and deleter.ident is None:
            deleter.start()
            deleter.join(timeout=0.5)
        return original(self)

    monkeypatch.setattr(Item, "to_json", to_json)
    return deleter


def test_all_old_is_the_item_the_write_replaced(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A conditional PutItem's ``ALL_OLD`` and its condition see the same item (DynamoDB's write is
    one atomic step). moto read the old item before its backend's write: a delete in between, and
    a claim "only if free or already mine" succeeded and came back with the other site's item."""
    serialize_dynamodb(monkeypatch.setattr)
    client = boto3.client("dynamodb", region_name=REGION)
    create_table(client, TABLE)
    client.put_item(TableName=TABLE, Item={keys.PK: {"S": "CP#1"}, keys.SK: {"S": "SITE"}, "siteId": {"S": "A"}})
    deleter = _delete_during_the_old_items_read(monkeypatch, client, TABLE)
    try:
        response = client.put_item(
            TableName=TABLE,
            Item={keys.PK: {"S": "CP#1"}, keys.SK: {"S": "SITE"}, "siteId": {"S": "B"}},
            ConditionExpression="attribute_not_exists(#pk) OR siteId = :site",
            ExpressionAttributeNames={"#pk": keys.PK},
            ExpressionAttributeValues={":site": {"S": "B"}},
            ReturnValues="ALL_OLD",
        )
    except ClientError as error:
        assert error.response["Error"]["Code"] == "ConditionalCheckFailedException"  # A's, still there
    else:
        assert response.get("Attributes", {}).get("siteId") in (None, {"S": "B"}), response.get("Attributes")
    deleter.join(timeout=10)
    assert not deleter.is_alive()


def test_the_server_loop_polls_about_once_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Requests served by the I/O thread itself: with waitress's worker thread the loop polled its
    sockets 168 times per request from four clients (a channel stays writable while its task runs)."""
    from waitress import wasyncore

    from local_stack.moto_server import serve_inline

    polls = itertools.count()
    original = wasyncore.poll
    monkeypatch.setattr(wasyncore, "poll", lambda timeout, map: (next(polls), original(timeout, map))[1])
    served = itertools.count()

    def app(environ: Any, start_response: Any) -> list[bytes]:
        next(served)
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
        return [b"{}"]

    port, stop = free_port(), threading.Event()
    loop = threading.Thread(target=serve_inline, args=(app, "127.0.0.1", port, stop), daemon=True)
    loop.start()

    def client() -> None:
        import http.client

        deadline = time.monotonic() + 10
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                connection.connect()
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.05)
        for _ in range(200):  # one keep-alive connection, as boto3's pool keeps them
            connection.request("POST", "/", body=b'{"TableName": "t"}')
            assert connection.getresponse().read() == b"{}"
        connection.close()

    clients = [threading.Thread(target=client) for _ in range(4)]
    try:
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(timeout=60)
    finally:
        stop.set()
        loop.join(timeout=5)
    requests = next(served)
    assert requests == 800 and not loop.is_alive()
    assert next(polls) / requests < 5


def test_a_stop_signal_while_serving_ends_the_server_and_a_failed_request_does_not() -> None:
    """The stop signal's handler raises SystemExit in the thread serving requests (the I/O thread,
    now): it must end the loop, while a request's own failure is logged and the next one served."""
    from local_stack.moto_server import InlineTasks

    served: list[str] = []

    class Task:
        def __init__(self, name: str, raises: BaseException | None = None) -> None:
            self.name, self.raises = name, raises

        def service(self) -> None:
            served.append(self.name)
            if self.raises is not None:
                raise self.raises

    tasks = InlineTasks()
    for task in (Task("a", RuntimeError("bad request")), Task("b"), Task("stop", SystemExit(0)), Task("c")):
        tasks.add_task(task)
    with pytest.raises(SystemExit):
        tasks.run_pending()
    assert served == ["a", "b", "stop"]
