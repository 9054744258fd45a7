"""Short garbage-collection pauses for the long-running processes (bridge, local stack, load generator).

CPython's cyclic collector traverses, in a full (generation 2) collection, every object it tracks,
and runs one each time the objects that survived since the last grow by a quarter of those that
survived then (https://docs.python.org/3/library/gc.html, and CPython's ``Python/gc.c``). A process
that keeps a growing heap therefore stops for longer and longer: in ``bench e2e`` the local moto
server stopped for up to 336 ms (its table's items), the stack's handler process for 171 ms, the
bridge for 121 ms with a thousand chargers connected, and the load generator for 174 ms, each
with every request it had in hand waiting.

:func:`install` makes each full collection move what survives it into the permanent generation
(``gc.freeze``), which later collections do not traverse: a full collection then costs the objects
that survived since the previous one, not the whole heap. The price: a reference cycle among
frozen objects that becomes garbage (a closed connection's objects, say) is not reclaimed until
they are traversed again. So every :data:`SWEEP_INTERVAL_S` (an hour) the next full collection
first thaws everything (``gc.unfreeze``) and traverses the whole heap once: the one long pause of the old
behaviour, once per interval instead of at every quarter of growth. Acyclic garbage is freed by
reference counting at once, frozen or not.
"""

from __future__ import annotations

import gc
import threading
import time
from typing import Any

#: Seconds between two collections of the whole heap (frozen objects included). Measured in
#: ``bench e2e`` with 60 s: a sweep of moto's server took 286 ms at the run's end (about 360,000
#: objects) and found 559 objects of garbage after a minute of that load.
#: An hour keeps what waits for a sweep small, and the long pause comes once an hour.
SWEEP_INTERVAL_S = 3600.0

_lock = threading.Lock()
_installed = False
_next_sweep = 0.0


def _after_collection(phase: str, info: dict[str, Any]) -> None:
    global _next_sweep
    if phase != "stop" or info.get("generation") != 2:
        return
    now = time.monotonic()
    if now >= _next_sweep:
        # this collection traversed only what had survived since the last freeze; the next full
        # one traverses everything
        _next_sweep = now + SWEEP_INTERVAL_S
        gc.unfreeze()
    else:
        gc.freeze()


def install() -> None:
    """Freeze the objects alive now (start-up: modules, settings, caches) and every full
    collection's survivors from now on; idempotent."""
    global _installed, _next_sweep
    with _lock:
        if _installed:
            return
        _installed = True
        _next_sweep = time.monotonic() + SWEEP_INTERVAL_S
        gc.collect()
        gc.freeze()
        gc.callbacks.append(_after_collection)
