"""Helpers for the Lambda and store tests: a fake clock, sequential ids, a Lambda context, fixtures."""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Any

import boto3
from moto.core import DEFAULT_ACCOUNT_ID
from moto.iotdata.models import iotdata_backends

from lambdas.adapters.dynamo import DynamoStore
from lambdas.publisher import IotDataPublisher
from lambdas.runtime import Dependencies
from lambdas.settings import Settings
from ocpp_core.config import UnknownChargerPolicy
from ocpp_core.extensions import Extensions
from tests.fakes import FakeClock, SeqIds

EVENTS = pathlib.Path(__file__).parent.parent / "events"
REGION = "us-east-1"
TABLE = "ocpp-lambdas-test"
#: The fixture events in tests/events are stamped a few seconds after this instant.


def load_event(name: str) -> dict[str, Any]:
    """An IoT rule event fixture from ``tests/events`` (what the rule hands the Lambda)."""
    event: dict[str, Any] = json.loads((EVENTS / f"{name}.json").read_text())
    return event


@dataclass
class FakeLambdaContext:
    """The attributes of the Lambda context object that Powertools reads."""

    function_name: str = "ocpp-test-function"
    aws_request_id: str = "11111111-2222-3333-4444-555555555555"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:function:ocpp-test-function"
    log_group_name: str = "/aws/lambda/ocpp-test-function"
    log_stream_name: str = "2025/06/15/[$LATEST]0123456789abcdef"

    def get_remaining_time_in_millis(self) -> int:
        return 15_000


def published() -> list[tuple[str, str]]:
    """What was published with ``iot-data`` Publish on moto: (topic, payload text), in order."""
    backend = iotdata_backends[DEFAULT_ACCOUNT_ID][REGION]
    return [
        (topic, payload.decode() if isinstance(payload, bytes) else payload)
        for topic, payload in backend.published_payloads
    ]


def table_items(client: Any, table: str = TABLE) -> list[dict[str, Any]]:
    """Every raw item of the table (low-level attribute-value form), for asserting what was written."""
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        response = client.scan(**kwargs)
        items.extend(response.get("Items", []))
        if "LastEvaluatedKey" not in response:
            return items
        kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def raw_item(client: Any, pk: str, sk: str, table: str = TABLE) -> dict[str, Any] | None:
    response = client.get_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True)
    item: dict[str, Any] | None = response.get("Item")
    return item


def moto_dependencies(clock: FakeClock, settings: Settings | None = None) -> Dependencies:
    """The handlers' dependencies on moto: the DynamoDB adapter and the real iot-data publisher."""
    settings = settings or Settings(table_name=TABLE, unknown_chargers=UnknownChargerPolicy.ACCEPT)
    return Dependencies(
        settings=settings,
        store=DynamoStore(boto3.client("dynamodb", region_name=REGION), settings.table_name, clock_s=clock.now_s),
        publisher=IotDataPublisher(boto3.client("iot-data", region_name=REGION)),
        clock=clock,
        ids=SeqIds(),
        config=settings.processor_config(),
        extensions=Extensions(),
    )
