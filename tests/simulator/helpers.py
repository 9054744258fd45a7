"""Helpers shared by the simulator tests (no pytest-asyncio: each test runs its own loop)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from simulator import Station

from .fake_csms import FakeCsms

T = TypeVar("T")


def run(coro_factory: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    """Run one async test body with a hard time limit."""

    async def main() -> T:
        return await asyncio.wait_for(coro_factory(), timeout)

    return asyncio.run(main())


def station(csms: FakeCsms, cp: str, version: str, **kwargs: Any) -> Station:
    kwargs.setdefault("call_timeout", 5.0)
    kwargs.setdefault("reset_delay", 0.05)
    kwargs.setdefault("reconnect_delay", 0.05)
    return Station(cp, version, csms.url, **kwargs)


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` holds (polling), or fail after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
