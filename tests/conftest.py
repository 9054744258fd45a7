"""Shared fixtures: a private mosquitto per test session (never the machine's one on 1883)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from local_stack.broker import MosquittoProcess


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
