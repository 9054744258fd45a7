"""Removes expired items from the local table, since moto never applies DynamoDB's TTL.

On AWS, DynamoDB deletes an item some time (typically within days) after the epoch seconds in
its TTL attribute have passed; only Number values count
(https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TTL.html,
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/time-to-live-ttl-before-you-start.html).
moto stores the TTL setting but never deletes anything, so a local stack that runs for days
piles up idempotency records and events, and moto's Query (a scan underneath) slows down with
them: 1.5 s for ``GET /chargers/{id}`` with 73,000 items.

:class:`ExpiredItemSweeper` is a daemon thread that every ``interval_s`` scans the table page
by page (only the key and TTL attributes projected, expired ones filtered server side) and
deletes each expired item with the condition that it is still expired, so an item renewed
between the scan and the delete (an idempotency claim completed with a fresh TTL) survives.
Readers never depended on it: every read checks the TTL itself (DESIGN §6), as on AWS. A
failure is logged and the next sweep tries again; it never stops the stack.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from ocpp_core import keys

from .timer import PeriodicTimer

logger = logging.getLogger(__name__)

#: Seconds between two sweeps of the local stack (0: no sweeper); documented in the README.
SWEEP_INTERVAL_VARIABLE = "OCPP_LOCAL_TTL_SWEEP_S"
DEFAULT_SWEEP_INTERVAL_S = 60.0
#: Items read per Scan page (a page stays well under DynamoDB's 1 MB with three attributes).
PAGE_SIZE = 500
#: Expired: a Number TTL at or before now (epoch seconds). Scan filter and delete condition both.
_EXPIRED = "attribute_type(#ttl, :number) AND #ttl <= :now"


class ExpiredItemSweeper:
    """``start()`` sweeps every ``interval_s`` in a daemon thread; ``sweep()`` runs one pass in the caller's."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        interval_s: float = DEFAULT_SWEEP_INTERVAL_S,
        clock: Callable[[], float] = time.time,
        page_size: int = PAGE_SIZE,
    ):
        self._client = client
        self.table_name = table_name
        self.interval_s = interval_s
        self._clock = clock
        self._page_size = page_size
        self._stopping = threading.Event()
        self._timer: PeriodicTimer | None = None
        #: totals since start, for logs and tests
        self.deleted = 0
        self.renewed = 0
        self.sweeps = 0

    @classmethod
    def for_endpoint(cls, endpoint_url: str, table_name: str, **kwargs: Any) -> ExpiredItemSweeper:
        """A sweeper with its own client on the local moto server (short timeouts: a stop never waits long)."""
        import boto3
        from botocore.config import Config

        client = boto3.client(
            "dynamodb",
            endpoint_url=endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 2, "mode": "standard"}),
        )
        return cls(client, table_name, **kwargs)

    # --- one pass --------------------------------------------------------------------------
    def _expired_keys(self, now: int) -> Iterator[dict[str, Any]]:
        request: dict[str, Any] = {
            "TableName": self.table_name,
            "ProjectionExpression": "#pk, #sk, #ttl",
            # DynamoDB's TTL ignores values that are not Numbers; the type test comes first also
            # because moto fails the whole Scan on comparing a String with a Number.
            "FilterExpression": _EXPIRED,
            "ExpressionAttributeNames": {"#pk": keys.PK, "#sk": keys.SK, "#ttl": keys.TTL_ATTRIBUTE},
            "ExpressionAttributeValues": {":now": {"N": str(now)}, ":number": {"S": "N"}},
            "Limit": self._page_size,
        }
        while not self._stopping.is_set():
            page = self._client.scan(**request)
            for item in page.get("Items", []):
                yield {keys.PK: item[keys.PK], keys.SK: item[keys.SK]}
            last = page.get("LastEvaluatedKey")
            if not last:
                return
            request["ExclusiveStartKey"] = last

    def sweep(self) -> int:
        """Delete every item expired now; returns how many were deleted."""
        now = int(self._clock())
        deleted = renewed = 0
        for key in self._expired_keys(now):
            if self._stopping.is_set():
                break
            try:
                self._client.delete_item(
                    TableName=self.table_name,
                    Key=key,
                    ConditionExpression=_EXPIRED,
                    ExpressionAttributeNames={"#ttl": keys.TTL_ATTRIBUTE},
                    ExpressionAttributeValues={":now": {"N": str(now)}, ":number": {"S": "N"}},
                )
                deleted += 1
            except self._client.exceptions.ConditionalCheckFailedException:
                renewed += 1  # written again since the scan (or gone): not ours to delete
        self.deleted += deleted
        self.renewed += renewed
        self.sweeps += 1
        if deleted or renewed:
            logger.info("expired items: %d deleted, %d renewed meanwhile and kept", deleted, renewed)
        return deleted

    # --- the thread ------------------------------------------------------------------------
    @property
    def failures(self) -> int:
        """Sweeps that failed since start (each logged; the next one comes all the same)."""
        return self._timer.failures if self._timer is not None else 0

    def start(self) -> ExpiredItemSweeper:
        """Sweep every ``interval_s`` on the stack's one periodic runner (``local_stack.timer``)."""
        name = f"expired items: sweep of {self.table_name}"
        self._timer = PeriodicTimer(self.sweep, interval_s=self.interval_s, name=name, thread_name="ttl-sweeper")
        self._timer.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop within ``timeout`` (a sweep in flight stops at its next item; a daemon thread after that)."""
        self._stopping.set()
        if self._timer is not None:
            self._timer.stop(timeout)
