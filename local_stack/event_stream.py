"""The table's change stream to the events Lambda, as the event source mapping does on AWS.

On AWS, Lambda polls the DynamoDB stream (about four times a second), drops the records the
mapping's filter does not match, and invokes ``lambdas.events_publisher.handler`` with a batch,
retrying from the first failed record it reports (infra). Locally :class:`StreamPoller` does the
same against moto's DynamoDB Streams API, on a :class:`~local_stack.timer.PeriodicTimer`, and hands
the events to the local sink (``event_sinks``: ``events.jsonl`` in the state directory, and the
webhook if set). moto keeps one shard per table; its records are read from the oldest kept (the
table is new with each start of the stack), and moto forgets what was read
(``moto_server.consumed_streams``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lambdas import events_publisher
from ocpp_core import keys
from ocpp_core.events import passes_stream_filter

logger = logging.getLogger(__name__)

#: where the local stack POSTs its events too (a JSON array per batch; README)
WEBHOOK_VARIABLE = "OCPP_EVENTS_WEBHOOK"

#: seconds between two polls (AWS: "Lambda polls shards in your DynamoDB stream for records at a
#: base rate of 4 times per second", https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html)
POLL_INTERVAL_S = 0.25
BATCH_SIZE = 100


def matches_filter(record: Mapping[str, Any]) -> bool:
    """The event source mapping's filter (infra): inserts and changes of the items that make events,
    a charger's ``lastSeen`` touches left out (``ocpp_core.events.passes_stream_filter``)."""
    change = record.get("dynamodb") or {}
    sk = (change.get("Keys") or {}).get(keys.SK, {}).get("S", "")
    kind = (change.get("NewImage") or {}).get(keys.WRITE_KIND, {}).get("S")
    return passes_stream_filter(str(record.get("eventName")), sk, kind)


class StreamPoller:
    """``poll()`` reads what the stream has and hands it to ``events_publisher.handle``."""

    def __init__(
        self,
        streams_client: Any,
        stream_arn: str,
        sink: events_publisher.EventSink,
        current_connection: Callable[[str], str | None] | None = None,
    ) -> None:
        self._client = streams_client
        self._arn = stream_arn
        self._sink = sink
        self._current = current_connection
        self._iterator: str | None = None
        #: records read but not yet delivered (a failed batch is retried from its failed record)
        self._pending: list[Mapping[str, Any]] = []

    def _open(self) -> str:
        shards = self._client.describe_stream(StreamArn=self._arn)["StreamDescription"]["Shards"]
        shard_id = shards[0]["ShardId"]
        return str(
            self._client.get_shard_iterator(StreamArn=self._arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")[
                "ShardIterator"
            ]
        )

    def poll(self) -> int:
        """One poll: how many records were delivered. Raises on a stream error (the timer logs it)."""
        if not self._pending:
            if self._iterator is None:
                self._iterator = self._open()
            answer = self._client.get_records(ShardIterator=self._iterator, Limit=1000)
            self._iterator = answer.get("NextShardIterator") or self._iterator
            self._pending = [r for r in answer.get("Records", []) if matches_filter(r)]
        delivered = 0
        while self._pending:
            batch = self._pending[:BATCH_SIZE]
            failed = self._deliver(batch)
            if failed is None:
                delivered += len(batch)
                del self._pending[: len(batch)]
                continue
            delivered += failed
            del self._pending[:failed]
            logger.warning("events: %d records left to retry at the next poll", len(self._pending))
            break
        return delivered

    def _deliver(self, batch: Sequence[Mapping[str, Any]]) -> int | None:
        """None if every record's events went out, else how many records before the failed one did."""
        answer = events_publisher.handle(batch, self._sink, self._current)
        failures = answer.get("batchItemFailures") or []
        if not failures:
            return None
        first = failures[0]["itemIdentifier"]
        for index, record in enumerate(batch):
            if str(record["dynamodb"].get("SequenceNumber")) == first:
                return index
        return 0


def stream_arn(dynamodb_client: Any, table_name: str) -> str:
    return str(dynamodb_client.describe_table(TableName=table_name)["Table"]["LatestStreamArn"])


def local_client(service: str, endpoint_url: str) -> Any:
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


class _Local:
    """The local sink as the events Lambda sees a sink: a batch that could not be written (the
    file) is failed whole and retried from the stream; the webhook never fails a batch (it queues)."""

    def __init__(self, sink: Any) -> None:
        self._sink = sink

    def publish(self, events: Sequence[Mapping[str, Any]]) -> list[int]:
        try:
            self._sink.publish(events)
        except Exception:
            logger.exception("events: could not write %d events; retried at the next poll", len(events))
            return list(range(len(events)))
        return []


def local_sink(sink: Any) -> events_publisher.EventSink:
    return _Local(sink)
