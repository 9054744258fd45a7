from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from ocpp_core.config import ProcessorConfig
from ocpp_core.memory_store import InMemoryStore
from ocpp_core.versions import OcppVersion
from tests.fakes import FakeClock, SeqIds

from .support import Charger


@pytest.fixture
def store() -> InMemoryStore:
    return InMemoryStore()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ids() -> SeqIds:
    return SeqIds()


@pytest.fixture
def make_charger(store: InMemoryStore, clock: FakeClock, ids: SeqIds) -> Callable[..., Charger]:
    """``make_charger(version, cp="CP1", config=..., extensions=...)``: chargers sharing one store and clock."""

    def make(version: OcppVersion | str, cp: str = "CP1", **options: Any) -> Charger:
        options.setdefault("config", ProcessorConfig())
        return Charger(OcppVersion(version), store, clock, ids, cp=cp, **options)

    return make
