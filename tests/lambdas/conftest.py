"""Fixtures: moto (DynamoDB + iot-data) in process, a fake clock, both StateStore implementations."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas import observability, runtime
from lambdas.adapters.dynamo import DynamoStore, create_table
from lambdas.runtime import Dependencies
from local_stack.moto_server import serialize_dynamodb
from ocpp_core.memory_store import InMemoryStore
from ocpp_core.ports import StateStore
from tests.fakes import FakeClock

from .support import REGION, TABLE, moto_dependencies

STORE_KINDS = ("memory", "dynamo")


@pytest.fixture
def moto(aws_env: None) -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def dynamodb(moto: None) -> Any:
    """A low-level DynamoDB client on moto, with the table created by the adapter's create_table."""
    client = boto3.client("dynamodb", region_name=REGION)
    create_table(client, TABLE)
    return client


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, clock: FakeClock) -> StateStore:
    """Each contract test runs once per StateStore implementation, both on the same fake clock."""
    if request.param == "memory":
        return InMemoryStore(now_s=clock.now_s)
    client = request.getfixturevalue("dynamodb")
    return DynamoStore(client, TABLE, clock_s=clock.now_s)


@pytest.fixture
def dynamo_store(dynamodb: Any, clock: FakeClock) -> DynamoStore:
    return DynamoStore(dynamodb, TABLE, clock_s=clock.now_s)


@pytest.fixture
def deps(dynamodb: Any, clock: FakeClock) -> Iterator[Dependencies]:
    """Dependencies on moto injected into the handlers (lambdas.runtime.configure), reset afterwards."""
    injected = moto_dependencies(clock)
    runtime.configure(injected)
    yield injected
    runtime.configure(None)


@pytest.fixture
def atomic_moto_requests(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make each moto DynamoDB request atomic, as every single-item request is on DynamoDB.

    moto's in-process backend does not serialize concurrent requests (its ``update_item`` reads,
    evaluates and writes without a lock, so two threads can both add 1 to the same value). With
    this, a concurrency test checks the adapter (one atomic request per allocation, not a read
    followed by a write), not moto's thread-safety.
    """
    serialize_dynamodb(monkeypatch.setattr)


class _CurrentStdout:
    """A stream that writes to whatever ``sys.stdout`` is at the time (pytest swaps it per phase)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def lambda_output(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """What the handlers write to stdout (CloudWatch Logs on AWS), parsed: one JSON object per line.

    EMF metrics are ``print`` ed, so capsys sees them. The Powertools logger's handler holds
    the stream it was created with at import, so for the test it writes to the current
    ``sys.stdout`` (capsys's) instead; the lines keep the order they were written in.
    """
    handler = observability.logger.registered_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(_CurrentStdout())  # type: ignore[arg-type]
    lines: list[dict[str, Any]] = []

    def read() -> list[dict[str, Any]]:
        # Every line must parse: the handlers write structured JSON only, never plain text.
        lines.extend(json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip())
        return list(lines)

    yield read
    if previous is not None:
        handler.setStream(previous)
