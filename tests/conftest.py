"""Shared fixtures: a private mosquitto per test session (never the machine's one on 1883), and
fake AWS credentials for moto."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from local_stack.broker import MosquittoProcess

#: the region of every moto test
REGION = "us-east-1"


@pytest.fixture(scope="session")
def mosquitto() -> Iterator[MosquittoProcess]:
    """A mosquitto on a free loopback port, shared by the session. Do not kill it in a test."""
    with MosquittoProcess() as broker:
        yield broker


@pytest.fixture
def private_mosquitto() -> Iterator[MosquittoProcess]:
    """A mosquitto of the test's own, which the test may kill and restart."""
    with MosquittoProcess() as broker:
        yield broker


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Fake credentials and region; no profile or config file of the machine is read."""
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_ENDPOINT_URL_IOT_DATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
    }.items():
        monkeypatch.setenv(name, value)
