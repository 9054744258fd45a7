from __future__ import annotations

from collections.abc import Iterator

import pytest

from lambdas import runtime
from lambdas.runtime import Dependencies

from .support import make_deps


@pytest.fixture
def deps() -> Iterator[Dependencies]:
    """In-memory store, recording publisher and fake clock, injected into the handlers."""
    injected = make_deps()
    runtime.configure(injected)
    yield injected
    runtime.configure(None)
