"""A long-running process's full collections traverse what survived since the last one, not its
whole heap, and cyclic garbage among frozen objects is still reclaimed at the next sweep.

Each case runs in a fresh interpreter: the policy changes the process's collector for good."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)


def _run(body: str, *, install: bool) -> dict[str, int]:
    script = textwrap.dedent(
        """
        import gc, json, weakref
        import process_gc
        if INSTALL:
            process_gc.install()
        """
    ).replace("INSTALL", str(install)) + textwrap.dedent(body)
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=50)
    assert out.returncode == 0, out.stderr
    result: dict[str, int] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# A heap that grows (as moto's table or the bridge's connections do), then full collections: how
# many objects the next full collection would traverse.
GROWING_HEAP = """
    kept = []
    for batch in range(5):
        kept.extend([[i] for i in range(40_000)])
        gc.collect()
    print(json.dumps({"traversed_next": len(gc.get_objects(generation=2)), "kept": len(kept)}))
"""


@pytest.mark.parametrize("install", [False, True], ids=["cpython-default", "installed"])
def test_a_full_collection_traverses_only_what_survived_since_the_last(install: bool) -> None:
    counts = _run(GROWING_HEAP, install=install)
    if install:
        assert counts["traversed_next"] < 1_000
    else:  # the defect: every long-lived object, on every full collection
        assert counts["traversed_next"] > counts["kept"]


FROZEN_CYCLE = """
    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # a cycle: only the cyclic collector frees it
    alive = weakref.ref(a)
    gc.collect()  # survived a full collection: frozen
    del a, b
    gc.collect()
    before_sweep = alive() is not None
    process_gc._next_sweep = 0.0  # the sweep interval has passed
    gc.collect()  # thaws everything
    gc.collect()  # traverses the whole heap
    after_sweep = alive() is not None
    frozen_again = gc.get_freeze_count() > 0
    print(json.dumps({"before_sweep": before_sweep, "after_sweep": after_sweep, "frozen_again": frozen_again}))
"""


def test_a_frozen_cycle_that_became_garbage_is_reclaimed_at_the_next_sweep() -> None:
    state = _run(FROZEN_CYCLE, install=True)
    assert state == {"before_sweep": True, "after_sweep": False, "frozen_again": True}


def test_install_is_idempotent_and_acyclic_garbage_is_freed_at_once() -> None:
    state = _run(
        """
        process_gc.install()

        class Leaf:
            pass

        holder = [Leaf()]
        alive = weakref.ref(holder[0])
        gc.collect()  # frozen
        holder.clear()  # no cycle: reference counting frees it, frozen or not
        print(json.dumps({"callbacks": gc.callbacks.count(process_gc._after_collection), "alive": alive() is not None}))
        """,
        install=True,
    )
    assert state == {"callbacks": 1, "alive": False}
