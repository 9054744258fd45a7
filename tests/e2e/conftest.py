"""End-to-end fixtures: the whole local stack, started as ``python -m local_stack`` would be.

It runs in a subprocess on free ports with its own mosquitto (never the machine's broker on
1883), its own moto server and its own state directory, so nothing is shared with other
tests or with a previous run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from local_stack.process import RunningStack, start_stack, stop_stack

__all__ = ["RunningStack", "wait_for"]


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = start_stack(tmp_path_factory.mktemp("local-stack"))
    try:
        yield running
    finally:
        stop_stack(running)


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` until it returns something truthy (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(interval)
