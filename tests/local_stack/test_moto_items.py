"""The moto server's short path for item requests (``local_stack.moto_items``) answers as moto does.

Each request goes to two of moto's server apps over the same backends, one account each: moto's
own dispatch, and the same with the short path in front. Their answers (status, headers but the
request id, body), their tables and their stream records must be the same. The short path's
CRC32 header must match its body, as botocore checks it.

* generated sessions of GetItem / UpdateItem / PutItem requests, many inside the shapes the short
  path serves and many just outside them (other value types, placeholders unused or missing, key
  attributes set, comparisons of mixed types, other return values, unknown tables, bad keys);
* the requests the DynamoDB adapter and the bridge's registry really send over a charger's day
  (boot, heartbeats, statuses, sessions, presence), captured at the boto3 client and replayed:
  the short path must answer nine in ten of the item requests, and answer them as moto would.
"""

from __future__ import annotations

import binascii
import itertools
import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from local_stack.moto_dispatch import direct_dynamodb
from local_stack.moto_items import answer

pytestmark = pytest.mark.timeout(180)

REGION = "us-east-1"
MOTO, SHORT = "111111111111", "222222222222"
TABLE = "items"
TABLE_DEFINITION = {
    "TableName": TABLE,
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [
        {"AttributeName": "pk", "AttributeType": "S"},
        {"AttributeName": "sk", "AttributeType": "S"},
        {"AttributeName": "listPk", "AttributeType": "S"},
        {"AttributeName": "listSk", "AttributeType": "S"},
    ],
    "GlobalSecondaryIndexes": [
        {
            "IndexName": "list",
            "KeySchema": [
                {"AttributeName": "listPk", "KeyType": "HASH"},
                {"AttributeName": "listSk", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
        }
    ],
    "BillingMode": "PAY_PER_REQUEST",
    "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
}


class Pair:
    """moto's server app and the same with the short path, on separate accounts of one process."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from werkzeug.test import Client

        self.monkeypatch = monkeypatch
        self.answered: Counter[tuple[str, int | None]] = Counter()

        def items(target: str, headers: Any, raw: bytes) -> Any:
            found = answer(target, headers, raw)
            self.answered[(target.rsplit(".", 1)[1], found[0] if found else None)] += 1
            return found

        self.moto = Client(direct_dynamodb(DomainDispatcherApplication(create_backend_app)))
        self.short = Client(direct_dynamodb(DomainDispatcherApplication(create_backend_app), items))

    def create_table(self, name: str = TABLE) -> None:
        """The table in both accounts (its description has times and ids of its own)."""
        for client, account in ((self.moto, MOTO), (self.short, SHORT)):
            status, _, _ = self._exchange(client, account, "CreateTable", {**TABLE_DEFINITION, "TableName": name})
            assert status == 200

    def send(self, operation: str, body: dict[str, Any], table: str = TABLE) -> None:
        """Send to both (to ``table`` where the request names :data:`TABLE`); assert the same answer."""
        if body.get("TableName") == TABLE:
            body = {**body, "TableName": table}
        want = self._exchange(self.moto, MOTO, operation, body)
        got = self._exchange(self.short, SHORT, operation, body)
        assert got == want, (operation, body)

    def _exchange(self, client: Any, account: str, operation: str, body: dict[str, Any]) -> Any:
        self.monkeypatch.setenv("MOTO_ACCOUNT_ID", account)
        try:
            response = self._open(client, operation, body)
        except Exception as error:  # moto failing on a request (its server answers 500)
            return "raised", type(error).__name__
        text = response.get_data(as_text=True)
        headers = {name.lower(): value for name, value in response.headers.items()}
        assert headers.pop("x-amz-crc32") == str(binascii.crc32(text.encode("utf-8")))
        assert len(headers.pop("x-amzn-requestid")) == 52
        headers.pop("content-length")
        text = text.replace(account, "ACCOUNT")
        return response.status_code, headers, json.loads(text) if text else None

    @staticmethod
    def _open(client: Any, operation: str, body: dict[str, Any]) -> Any:
        return client.open(
            method="POST",
            path="/",
            data=json.dumps(body),
            headers={
                "Host": "127.0.0.1:5000",
                "X-Amz-Target": f"DynamoDB_20120810.{operation}",
                "Content-Type": "application/x-amz-json-1.0",
                "Authorization": (
                    f"AWS4-HMAC-SHA256 Credential=local/20261202/{REGION}/dynamodb/aws4_request, "
                    "SignedHeaders=host;x-amz-target, Signature=0"
                ),
            },
        )

    def state(self, account: str, name: str = TABLE) -> tuple[list[str], list[str]]:
        """The table's items and its stream records (what does not vary by run)."""
        from moto.dynamodb.models import dynamodb_backends

        table = dynamodb_backends[account][REGION].tables[name]
        items = sorted(json.dumps(item.to_json(), sort_keys=True, default=repr) for item in table.all_items())
        records = [
            json.dumps(
                {
                    "event": record.record["eventName"],
                    **{
                        part: record.record["dynamodb"].get(part)
                        for part in ("Keys", "NewImage", "OldImage", "StreamViewType")
                    },
                },
                sort_keys=True,
                default=repr,
            )
            for record in table.stream_shard.items
        ]
        return items, records

    def assert_same_state(self, name: str = TABLE) -> None:
        assert self.state(SHORT, name) == self.state(MOTO, name)


@pytest.fixture
def pair(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pair]:
    with mock_aws():  # a clean set of backends for each test, removed after it
        pair = Pair(monkeypatch)
        pair.create_table()
        yield pair


# -- generated sessions ---------------------------------------------------------------------------

ATTRIBUTES = ["lastSeen", "protocol", "boot", "flag", "listPk", "listSk", "pk", "sk", "a.b"]
VALUES: list[dict[str, Any]] = [
    {"S": "x"},
    {"S": "y"},
    {"S": ""},
    {"N": "5"},
    {"N": "17"},
    {"N": "-3"},
    {"N": "1.5"},
    {"N": "007"},
    {"N": "12345678901234567890123456789012345678901"},
    {"BOOL": True},
    {"NULL": True},
    {"M": {"vendor": {"S": "V"}, "n": {"N": "1"}, "inner": {"L": [{"S": "q"}]}}},
    {"L": [{"S": "q"}, {"N": "2"}]},
    {"SS": ["a", "b"]},
    {"B": "YQ=="},
]
KEYS: list[dict[str, Any]] = [
    {"pk": {"S": "CP#A"}, "sk": {"S": "CHARGER"}},
    {"pk": {"S": "CP#A"}, "sk": {"S": "STATUS#1"}},
    {"pk": {"S": "CP#B"}, "sk": {"S": "CHARGER"}},
]
BAD_KEYS: list[dict[str, Any]] = [
    {"pk": {"S": "CP#A"}},
    {"pk": {"N": "1"}, "sk": {"S": "CHARGER"}},
    {"pk": {"S": ""}, "sk": {"S": "CHARGER"}},
    {"pk": {"S": "CP#A"}, "sk": {"S": "CHARGER"}, "extra": {"S": "x"}},
]
key = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS), st.sampled_from(BAD_KEYS))
table_name = st.sampled_from([TABLE] * 9 + ["missing"])
clause = st.tuples(st.sampled_from(ATTRIBUTES), st.sampled_from(VALUES), st.booleans(), st.booleans())
term = st.tuples(
    st.sampled_from(["exists", "not_exists", "ordered", "ordered"]),
    st.sampled_from(ATTRIBUTES),
    st.sampled_from(["<", ">"]),
    st.sampled_from(VALUES),
)
extra = st.sampled_from([None] * 6 + ["unused name", "unused value", "capacity", "empty values", "spaces"])


@st.composite
def update_request(draw: Any) -> tuple[str, dict[str, Any]]:
    """An UpdateItem as the adapter builds them (``#n<i>`` names, ``:v<i>`` values), with variations."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}

    def name(attribute: str) -> str:
        for placeholder, known in names.items():
            if known == attribute:
                return placeholder
        placeholder = f"#n{len(names)}"
        names[placeholder] = attribute
        return placeholder

    def value(given: Any) -> str:
        placeholder = f":v{len(values)}"
        values[placeholder] = given
        return placeholder

    sets = []
    for attribute, chosen, only_if_absent, other_name in draw(st.lists(clause, min_size=1, max_size=4)):
        target = name(attribute)
        if only_if_absent:
            checked = name("flag") if other_name else target
            sets.append(f"{target} = if_not_exists({checked}, {value(chosen)})")
        else:
            sets.append(f"{target} = {value(chosen)}")
    conditions = []
    for kind, attribute, operator, compared in draw(st.lists(term, max_size=3)):
        placeholder = name(attribute)
        if kind == "ordered":
            conditions.append(f"(attribute_not_exists({placeholder}) OR {placeholder} {operator} {value(compared)})")
        else:
            conditions.append(f"attribute_{kind}({placeholder})")
    body: dict[str, Any] = {
        "TableName": draw(table_name),
        "Key": draw(key),
        "UpdateExpression": "SET " + ", ".join(sets),
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    if conditions:
        body["ConditionExpression"] = " AND ".join(conditions)
    returns = draw(st.sampled_from([None, "NONE", "ALL_NEW", "ALL_OLD", "UPDATED_NEW"]))
    if returns is not None:
        body["ReturnValues"] = returns
    on_failure = draw(st.sampled_from([None, "ALL_OLD", "NONE"]))
    if on_failure is not None:
        body["ReturnValuesOnConditionCheckFailure"] = on_failure
    variation = draw(extra)
    if variation == "unused name":
        names["#unused"] = "nothing"
    elif variation == "unused value":
        values[":unused"] = {"S": "nothing"}
    elif variation == "capacity":
        body["ReturnConsumedCapacity"] = "TOTAL"
    elif variation == "empty values" and not values:
        body["ExpressionAttributeValues"] = {}
    elif variation == "spaces":
        body["UpdateExpression"] = body["UpdateExpression"].replace(" = ", "=")
    if not values and variation != "empty values":
        del body["ExpressionAttributeValues"]
    return "UpdateItem", body


@st.composite
def get_request(draw: Any) -> tuple[str, dict[str, Any]]:
    body: dict[str, Any] = {"TableName": draw(table_name), "Key": draw(key)}
    if draw(st.booleans()):
        body["ConsistentRead"] = True
    wanted = draw(st.lists(st.sampled_from(ATTRIBUTES), max_size=4))
    if wanted:
        names = {f"#p{i}": attribute for i, attribute in enumerate(wanted)}
        body["ProjectionExpression"] = ", ".join(names)
        body["ExpressionAttributeNames"] = names
        if draw(st.integers(0, 5)) == 0:
            body["ExpressionAttributeNames"] = {**names, "#unused": "x"}
    return "GetItem", body


@st.composite
def put_request(draw: Any) -> tuple[str, dict[str, Any]]:
    item = dict(draw(st.sampled_from(KEYS)))
    for attribute, chosen in draw(st.lists(st.tuples(st.sampled_from(ATTRIBUTES[:4]), st.sampled_from(VALUES)))):
        item[attribute] = chosen
    return "PutItem", {"TableName": TABLE, "Item": item}


_examples = itertools.count()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.one_of(update_request(), update_request(), get_request(), put_request()), max_size=12))
def test_generated_requests_are_answered_as_moto_answers_them(
    pair: Pair, session: list[tuple[str, dict[str, Any]]]
) -> None:
    table = f"{TABLE}-{next(_examples)}"  # a new table for each example (in the same backends)
    pair.create_table(table)
    for operation, body in session:
        pair.send(operation, body, table)
    pair.assert_same_state(table)


def test_the_short_path_answers_successes_refusals_and_projections(pair: Pair) -> None:
    """Hand-picked requests of each kind the short path serves, answered by it (not passed on)."""
    charger = KEYS[0]
    touch = {
        "TableName": TABLE,
        "Key": charger,
        "UpdateExpression": "SET #n0 = :v0, #n2 = :v2",
        "ConditionExpression": "attribute_exists(#n1) AND (attribute_not_exists(#n2) OR #n2 < :v1)",
        "ExpressionAttributeNames": {"#n0": "protocol", "#n1": "pk", "#n2": "lastSeen"},
        "ExpressionAttributeValues": {":v0": {"S": "ocpp1.6"}, ":v1": {"N": "1000"}, ":v2": {"N": "1000"}},
        "ReturnValues": "ALL_NEW",
        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
    }
    pair.send("UpdateItem", touch)  # refused: no such charger yet (answered without an item)
    upsert = {
        "TableName": TABLE,
        "Key": charger,
        "UpdateExpression": "SET #n0 = :v0, #n1 = if_not_exists(#n1, :v1), #n2 = if_not_exists(#n2, :v2)",
        "ExpressionAttributeNames": {"#n0": "boot", "#n1": "listPk", "#n2": "passwordHash"},
        "ExpressionAttributeValues": {
            ":v0": {"M": {"vendor": {"S": "V"}}},
            ":v1": {"S": "CHARGERS"},
            ":v2": {"S": "hash"},
        },
    }
    pair.send("UpdateItem", upsert)  # creates the item (an index key set, of its type)
    pair.send("UpdateItem", touch)  # accepted: ALL_NEW
    pair.send("UpdateItem", touch)  # refused: not newer, the item returned
    pair.send(
        "UpdateItem",
        {
            **touch,
            "ReturnValues": "ALL_OLD",
            "ExpressionAttributeValues": {":v0": {"S": "ocpp2.0.1"}, ":v1": {"N": "2000"}, ":v2": {"N": "2000"}},
        },
    )
    pair.send("GetItem", {"TableName": TABLE, "Key": charger, "ConsistentRead": True})
    pair.send("GetItem", {"TableName": TABLE, "Key": KEYS[2]})  # no such item
    pair.send(
        "GetItem",
        {
            "TableName": TABLE,
            "Key": charger,
            "ProjectionExpression": "#h, #s, #r, #p",
            "ExpressionAttributeNames": {
                "#h": "passwordHash",
                "#s": "registrationStatus",
                "#r": "registered",
                "#p": "securityProfile",
            },
        },
    )
    pair.assert_same_state()
    assert pair.answered == {
        ("UpdateItem", 400): 2,
        ("UpdateItem", 200): 3,
        ("GetItem", 200): 3,
    }


# -- the adapter's own requests -------------------------------------------------------------------


def _captured_day() -> list[tuple[str, dict[str, Any]]]:
    """The item requests of a charger's day (both protocol families), presence and registry reads."""
    from benchmarks.bench_store_ops import CP, Charger, day
    from fargate_bridge.registry import DynamoChargerRegistry
    from ocpp_core.versions import OcppVersion

    requests: list[tuple[str, dict[str, Any]]] = []

    def capture(request: Any, **_: Any) -> None:
        operation = request.headers["X-Amz-Target"].decode().rsplit(".", 1)[1]
        requests.append((operation, json.loads(request.body)))

    for number, version in enumerate((OcppVersion.V16, OcppVersion.V201)):
        charger = Charger(version, f"day-{number}")
        client = charger.client._client
        client.meta.events.register("before-send.dynamodb", capture)
        registry = DynamoChargerRegistry(f"day-{number}", client=client)
        for connection in ("c-1", "c-2"):
            charger.store.record_connection(
                CP, connection, connected=True, at_ms=charger.clock.ms, charger_changes={}, connection_changes={}
            )
            registry.lookup(CP)
            charger.store.site_of(CP)
            for _, _ in zip(day(charger), range(80), strict=False):
                pass
            charger.store.record_connection(
                CP, connection, connected=False, at_ms=charger.clock.ms, charger_changes={}, connection_changes={}
            )
    return requests


def test_the_adapters_requests_of_a_day_are_answered_as_moto_answers_them(
    aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    with mock_aws():
        captured = _captured_day()
    tables = sorted({body["TableName"] for _, body in captured if "TableName" in body})
    with mock_aws():
        pair = Pair(monkeypatch)
        for table in tables:
            pair.create_table(table)
        for operation, body in captured:
            pair.send(operation, body)
        for table in tables:
            pair.assert_same_state(table)
    item_requests = sum(1 for operation, _ in captured if operation in ("GetItem", "UpdateItem"))
    served = sum(count for (_, status), count in pair.answered.items() if status is not None)
    assert item_requests > 300
    assert served >= 0.9 * item_requests, pair.answered
