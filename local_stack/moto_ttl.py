"""DynamoDB's Time to Live for the local moto server, which never applies it.

On AWS, DynamoDB deletes an item some time (typically within days) after the epoch seconds in
its TTL attribute have passed; only Number values count
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html,
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/time-to-live-ttl-before-you-start.html),
and the deletion is a REMOVE record on the table's stream. moto stores the TTL setting but deletes
nothing, so a local stack that runs for days piles up idempotency records and events, and moto's
Query (a scan underneath) slows down with them: 1.5 s for ``GET /chargers/{id}`` with 73,000 items.

:class:`TimeToLive` runs inside the moto server: every ``interval_s`` it walks the items of each
table whose TTL is enabled and deletes the expired ones through moto's own ``Table.delete_item``
(which adds the REMOVE stream record), a few hundred partitions at a time under the server's
request lock, so requests wait at most for one such step. The stack's first sweeper did it from
outside with Scan and DeleteItem; moto sorts and copies the whole table on every Scan page, which
held every other request for up to a second once a minute under ``bench e2e``.

Readers never depended on it: every read checks the TTL itself (DESIGN §6), as on AWS.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .timer import PeriodicTimer

logger = logging.getLogger(__name__)

#: Seconds between two passes in the local stack (0: none); documented in the README.
SWEEP_INTERVAL_VARIABLE = "OCPP_LOCAL_TTL_SWEEP_S"
DEFAULT_SWEEP_INTERVAL_S = 60.0
#: partitions (hash keys) looked at per hold of the request lock
PARTITIONS_PER_STEP = 200


def expired(item: Any, attribute: str, now: float) -> bool:
    """A Number TTL attribute at or before ``now`` (epoch seconds); any other value never expires."""
    value = item.attrs.get(attribute)
    if value is None or value.type != "N":
        return False
    try:
        return float(value.value) <= now
    except ValueError:
        return False


def _ttl_tables() -> Iterator[tuple[Any, str]]:
    """(table, TTL attribute) for every table of every account and region with TTL enabled."""
    from moto.dynamodb.models import dynamodb_backends

    for regions in list(dynamodb_backends.values()):
        for backend in list(regions.values()):
            for table in list(backend.tables.values()):
                ttl = getattr(table, "ttl", {})
                if ttl.get("TimeToLiveStatus") == "ENABLED" and ttl.get("AttributeName"):
                    yield table, ttl["AttributeName"]


class TimeToLive:
    """``start()`` deletes expired items every ``interval_s``; ``sweep()`` runs one pass in the caller's thread."""

    def __init__(
        self,
        lock: threading.RLock,
        *,
        interval_s: float = DEFAULT_SWEEP_INTERVAL_S,
        clock: Callable[[], float] = time.time,
        partitions_per_step: int = PARTITIONS_PER_STEP,
    ):
        self._lock = lock
        self.interval_s = interval_s
        self._clock = clock
        self._step = partitions_per_step
        self._timer: PeriodicTimer | None = None
        #: totals since start, for logs and tests
        self.deleted = 0
        self.sweeps = 0

    def _sweep_table(self, table: Any, attribute: str, now: float) -> int:
        with self._lock:
            partitions = list(table.items)
        deleted = 0
        for start in range(0, len(partitions), self._step):
            with self._lock:
                for hash_key in partitions[start : start + self._step]:
                    if hash_key not in table.items:
                        continue  # deleted meanwhile
                    if table.range_key_attr is None:
                        candidates = [(None, table.items[hash_key])]
                    else:
                        candidates = list(table.items[hash_key].items())
                    for range_key, item in candidates:
                        if expired(item, attribute, now):
                            table.delete_item(hash_key, range_key)
                            deleted += 1
        return deleted

    def sweep(self) -> int:
        """Delete every item expired now, in every table with TTL enabled; returns how many."""
        now = self._clock()
        deleted = sum(self._sweep_table(table, attribute, now) for table, attribute in list(_ttl_tables()))
        self.deleted += deleted
        self.sweeps += 1
        if deleted:
            logger.info("expired items: %d deleted", deleted)
        return deleted

    def start(self) -> TimeToLive:
        """Sweep every ``interval_s`` (``0``: never) in a daemon thread (``local_stack.timer``)."""
        self._timer = PeriodicTimer(self.sweep, interval_s=self.interval_s, name="expired items", thread_name="ttl")
        self._timer.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._timer is not None:
            self._timer.stop(timeout)
