"""The moto server's cached parsing and direct DynamoDB path answer exactly as moto's own code.

* Update expressions parsed once, trees copied by pickling, and validated with processing maps
  built once: generated sequences of updates
  (expressions drawn from a small pool, so most are parsed before; some malformed, some refused
  by the validator, some on items that do not exist yet) give the same outcomes and the same
  table with and without the change.
* The direct path for DynamoDB requests: the same requests (successes, refusals, unknown tables,
  a streams request that is not DynamoDB's) through it and through moto's own dispatcher give
  the same status, body and content type.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from lambdas.adapters.dynamo import create_table
from local_stack.moto_dispatch import (
    cached_dispatch,
    cached_processing_maps,
    cached_update_expressions,
    direct_dynamodb,
)

pytestmark = pytest.mark.timeout(120)

ACCOUNT = "123456789012"


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


EXPRESSIONS = [
    "SET a = :v",
    "SET #n = :v, m.x = :v",
    "SET a = if_not_exists(a, :v), c = :one",
    "SET c = c + :one",  # refused where c is not a number
    "ADD c :one SET a = :v",
    "REMOVE m.x, d",
    "SET l[0] = :v",
    "SET m.q.r = :v",  # refused: the path does not exist
    "SET pk = :v",  # refused: a key attribute
    "SET a = :v, a = :one",  # refused: overlapping paths
    "SET a = ",  # does not parse
    "SET a = :v,",  # does not parse
    "DELETE s :set",
]

update = st.tuples(st.sampled_from(EXPRESSIONS), st.sampled_from(["old", "new"]), st.sampled_from(["S", "N"]))


def _run(region: str, updates: list[tuple[str, str, str]]) -> tuple[list[str], list[str]]:
    from moto.dynamodb.models import dynamodb_backends

    client = boto3.client("dynamodb", region_name=region)
    table = f"e-{time.monotonic_ns()}"
    create_table(client, table)
    client.put_item(
        TableName=table,
        Item={
            "pk": {"S": "old"},
            "sk": {"S": "1"},
            "a": {"N": "1"},
            "c": {"N": "5"},
            "m": {"M": {"x": {"S": "y"}}},
            "l": {"L": [{"S": "first"}]},
            "s": {"SS": ["p", "q"]},
        },
    )
    outcomes = []
    for expression, key, kind in updates:
        names = {"#n": "named"} if "#n" in expression else None
        values = {":v": {kind: "7" if kind == "N" else "text"}, ":one": {"N": "1"}, ":set": {"SS": ["p"]}}
        used = {name: value for name, value in values.items() if name in expression}
        request: dict[str, Any] = {
            "TableName": table,
            "Key": {"pk": {"S": key}, "sk": {"S": "1"}},
            "UpdateExpression": expression,
            "ReturnValues": "ALL_NEW",
        }
        if used:
            request["ExpressionAttributeValues"] = used
        if names:
            request["ExpressionAttributeNames"] = names
        try:
            answer = client.update_item(**request)
            outcomes.append(json.dumps(answer.get("Attributes"), sort_keys=True, default=str))
        except ClientError as error:
            outcomes.append(f"{error.response['Error']['Code']}: {error.response['Error']['Message']}")
    items = dynamodb_backends[ACCOUNT][region].get_table(table).all_items()
    return outcomes, sorted(json.dumps(item.to_json(), sort_keys=True) for item in items)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(update, min_size=1, max_size=8))
def test_cached_parsing_gives_the_outcomes_and_table_of_motos_own(aws: None, updates: list[Any]) -> None:
    reference = _run("eu-west-1", updates)
    with pytest.MonkeyPatch.context() as patch:
        cached_update_expressions(patch.setattr)
        cached_processing_maps(patch.setattr)
        cached = _run("eu-west-2", updates)
        again = _run("eu-west-3", updates)  # every expression parsed before now
    assert cached == reference
    assert again == reference


# -- the direct path ------------------------------------------------------------------------------


def _request(region: str, target: str, body: dict[str, Any]) -> dict[str, Any]:
    """A request as botocore sends it (the region is read from the credential scope)."""
    return {
        "method": "POST",
        "path": "/",
        "data": json.dumps(body),
        "headers": {
            "Host": f"dynamodb.{region}.amazonaws.com" if not target.startswith("DynamoDBStreams") else "localhost",
            "X-Amz-Target": target,
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": (
                f"AWS4-HMAC-SHA256 Credential=testing/20261202/{region}/dynamodb/aws4_request, "
                "SignedHeaders=host;x-amz-target, Signature=0"
            ),
        },
    }


SESSION: list[tuple[str, dict[str, Any]]] = [
    (
        "CreateTable",
        {
            "TableName": "t",
            "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            "AttributeDefinitions": [
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
        },
    ),
    ("PutItem", {"TableName": "t", "Item": {"pk": {"S": "A"}, "sk": {"S": "1"}, "n": {"N": "1"}}}),
    ("GetItem", {"TableName": "t", "Key": {"pk": {"S": "A"}, "sk": {"S": "1"}}}),
    (
        "UpdateItem",
        {
            "TableName": "t",
            "Key": {"pk": {"S": "A"}, "sk": {"S": "1"}},
            "UpdateExpression": "ADD n :one",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
            "ReturnValues": "ALL_NEW",
        },
    ),
    (
        "UpdateItem",  # a refused condition: a 400 with moto's error body
        {
            "TableName": "t",
            "Key": {"pk": {"S": "A"}, "sk": {"S": "1"}},
            "UpdateExpression": "SET n = :one",
            "ConditionExpression": "attribute_not_exists(pk)",
            "ExpressionAttributeValues": {":one": {"N": "1"}},
        },
    ),
    ("UpdateItem", {"TableName": "t", "Key": {"pk": {"S": "A"}, "sk": {"S": "1"}}, "UpdateExpression": "SET = "}),
    (
        "Query",
        {
            "TableName": "t",
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": "A"}},
        },
    ),
    ("GetItem", {"TableName": "missing", "Key": {"pk": {"S": "A"}, "sk": {"S": "1"}}}),
    ("DeleteItem", {"TableName": "t", "Key": {"pk": {"S": "A"}, "sk": {"S": "1"}}, "ReturnValues": "ALL_OLD"}),
    ("ListTables", {}),
]


def _answers(app: Any, region: str, session: list[tuple[str, str, dict[str, Any]]]) -> list[Any]:
    from werkzeug.test import Client

    client = Client(app)
    answers = []
    for target, _, body in session:
        response = client.open(**_request(region, target, body))
        text = response.get_data(as_text=True)
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        if isinstance(parsed, dict):
            parsed.pop("LatestStreamArn", None)
            for volatile in ("CreationDateTime", "TableArn", "TableId", "LatestStreamLabel"):
                parsed.get("TableDescription", {}).pop(volatile, None)
        answers.append((response.status_code, response.headers.get("Content-Type"), parsed))
    return answers


def test_the_direct_path_answers_as_motos_dispatcher(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    cached_dispatch(monkeypatch.setattr)
    session = [(f"DynamoDB_20120810.{operation}", operation, body) for operation, body in SESSION]
    session.append(("DynamoDBStreams_20120810.ListStreams", "ListStreams", {}))  # not DynamoDB's: passed on
    reference = _answers(DomainDispatcherApplication(create_backend_app), "ap-south-1", session)
    direct = _answers(direct_dynamodb(DomainDispatcherApplication(create_backend_app)), "ap-southeast-2", session)
    for (_, operation, _), want, got in zip(session, reference, direct, strict=True):
        assert got == want, operation
    assert [status for status, _, _ in direct].count(200) >= 7
    assert {status for status, _, _ in direct} >= {200, 400}
