"""The local stack's moto server: a Query reads its partition, not the whole table sorted.

moto's ``Table.query`` sorts every item of the table and then keeps the partition's (or the
index key values'): the timer's two index queries every 2 s cost 0.2 s of the server's one
thread at 10,000 items. :func:`local_stack.moto_server.keyed_queries` hands the same query the
items it can match. What must hold: every answer is moto's own (property test, both ways on
one table), and a query's cost no longer grows with the rest of the table (counted as moto's
``DynamoType`` comparisons, which the sort is made of).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from lambdas.adapters.dynamo import create_table
from local_stack.moto_server import keyed_queries
from ocpp_core import keys

pytestmark = pytest.mark.timeout(120)

REGION = "us-east-1"
_tables = itertools.count()


@pytest.fixture
def client(aws_env: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb", region_name=REGION)


def _table(client: Any, items: list[dict[str, Any]]) -> str:
    name = f"ocpp-query-test-{next(_tables)}"
    create_table(client, name)
    for item in items:
        client.put_item(TableName=name, Item=item)
    return name


def _item(pk: str, sk: str, listed: tuple[str, str] | None) -> dict[str, Any]:
    item: dict[str, Any] = {keys.PK: {"S": pk}, keys.SK: {"S": sk}, "value": {"N": str(len(sk))}}
    if listed is not None:
        item[keys.LIST_PK], item[keys.LIST_SK] = {"S": listed[0]}, {"S": listed[1]}
    return item


def _base_query(pk: str, prefix: str, limit: int | None, forward: bool) -> dict[str, Any]:
    query: dict[str, Any] = {
        "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
        "ExpressionAttributeNames": {"#pk": keys.PK, "#sk": keys.SK},
        "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": prefix}},
        "ConsistentRead": True,
        "ScanIndexForward": forward,
    }
    return query if limit is None else {**query, "Limit": limit}


def _index_query(list_pk: str, up_to: str | None, limit: int | None, forward: bool) -> dict[str, Any]:
    condition, values = "#lpk = :lpk", {":lpk": {"S": list_pk}}
    names = {"#lpk": keys.LIST_PK}
    if up_to is not None:
        condition += " AND #lsk <= :up"
        names["#lsk"], values[":up"] = keys.LIST_SK, {"S": up_to}
    query: dict[str, Any] = {
        "IndexName": keys.LIST_INDEX,
        "KeyConditionExpression": condition,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
        "ScanIndexForward": forward,
    }
    return query if limit is None else {**query, "Limit": limit}


def _pages(client: Any, table: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    """Every page of a query (following LastEvaluatedKey), without the request metadata."""
    pages, start = [], None
    while True:
        response = client.query(TableName=table, **query, **({"ExclusiveStartKey": start} if start else {}))
        response.pop("ResponseMetadata", None)
        pages.append(response)
        start = response.get("LastEvaluatedKey")
        if not start or len(pages) > 50:
            return pages


short = st.text(alphabet="ABab#1", min_size=1, max_size=4)
items = st.lists(
    st.builds(
        _item,
        st.sampled_from(["CP#1", "CP#2", "CP#10", "SITE#1"]),
        short,
        st.none() | st.tuples(st.sampled_from(["CHARGERS", "OUTBOX", "BUSY"]), short),
    ),
    max_size=40,
)
base_queries = st.builds(
    _base_query,
    st.sampled_from(["CP#1", "CP#2", "CP#3", "SITE#1"]),
    st.sampled_from(["A", "a#", "B1", "#"]),
    st.none() | st.integers(1, 5),
    st.booleans(),
)
index_queries = st.builds(
    _index_query,
    st.sampled_from(["CHARGERS", "OUTBOX", "BUSY", "NONE"]),
    st.none() | short,
    st.none() | st.integers(1, 5),
    st.booleans(),
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items, st.lists(base_queries | index_queries, min_size=1, max_size=4))
def test_keyed_queries_answer_as_motos_own(
    client: Any, monkeypatch: pytest.MonkeyPatch, stored: list[dict[str, Any]], queries: list[dict[str, Any]]
) -> None:
    from moto.dynamodb.models.table import Table

    original = Table.query
    table = _table(client, stored)
    with monkeypatch.context() as patched:
        keyed_queries(patched.setattr)
        assert Table.query is not original
        keyed = [_pages(client, table, query) for query in queries]
    assert Table.query is original
    assert keyed == [_pages(client, table, query) for query in queries]


def _comparisons_of(client: Any, table: str, query: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> int:
    from moto.dynamodb.models.dynamo_type import DynamoType

    count = itertools.count()
    original = DynamoType.__lt__

    def counted(self: Any, other: Any) -> Any:
        next(count)
        return original(self, other)

    with monkeypatch.context() as spy:
        spy.setattr(DynamoType, "__lt__", counted)
        client.query(TableName=table, **query)
    return next(count)


def test_a_query_costs_its_own_items_not_the_tables(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    others = [_item(f"CP#{i}", "STATUS#C1", None) for i in range(2_000)]
    mine = [_item("CP#ME", f"STATUS#C{c}", None) for c in range(3)] + [_item("CP#ME", "CHARGER", ("OUTBOX", "CP#ME"))]
    table = _table(client, others + mine)
    base, index = _base_query("CP#ME", "STATUS#", None, True), _index_query("OUTBOX", None, None, True)
    unkeyed = (_comparisons_of(client, table, base, monkeypatch), _comparisons_of(client, table, index, monkeypatch))
    assert min(unkeyed) > 2_000, unkeyed  # moto's own: the whole table sorted, for each query
    keyed_queries(monkeypatch.setattr)
    keyed = (_comparisons_of(client, table, base, monkeypatch), _comparisons_of(client, table, index, monkeypatch))
    assert max(keyed) < 50, keyed
    assert len(client.query(TableName=table, **base)["Items"]) == 3
    assert [i[keys.PK]["S"] for i in client.query(TableName=table, **index)["Items"]] == ["CP#ME"]
