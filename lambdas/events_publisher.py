"""Lambda: domain events from the table's change stream (DESIGN §11, ``ocpp_core.events``).

Invoked by the DynamoDB Streams event source mapping with a batch of stream records, in order
per item (infra: filtered to the sort keys that can make an event, bisected on error, failed
batches to a DLQ). Each record's images go through :func:`ocpp_core.events.derive`; the events
go to the sink (EventBridge on AWS, the local stack's JSON-lines file and webhook locally).

Partial failures are reported the way the event source mapping understands them
(``batchItemFailures`` with the first failed record's sequence number: "Lambda retries only the
records from the failed one onward", https://docs.aws.amazon.com/lambda/latest/dg/
services-ddb-batchfailurereporting.html): the events of the records before it are checkpointed;
those after it are sent again with the same ids, which consumers deduplicate.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from aws_lambda_powertools.metrics import MetricUnit

from ocpp_core.events import Event, derive
from ocpp_core.ports import ChargerStore

from .adapters.dynamo_codec import deserialize_item
from .observability import logger as powertools_logger
from .observability import metrics

logger = logging.getLogger(__name__)

EVENT_BUS_NAME = "OCPP_EVENT_BUS_NAME"


class EventSink(Protocol):
    def publish(self, events: Sequence[Event]) -> list[int]:
        """Deliver the events in order; the indexes of those that were not (to be retried)."""
        ...


def _image(change: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    image = change.get(name)
    return deserialize_item(image) if isinstance(image, Mapping) and image else None


def events_of(record: Mapping[str, Any], current_connection: Callable[[str], str | None] | None) -> list[Event]:
    """The events one stream record makes (none for a record it cannot read: logged)."""
    change = record.get("dynamodb")
    if not isinstance(change, Mapping) or record.get("eventName") not in ("INSERT", "MODIFY"):
        return []
    try:
        return derive(_image(change, "OldImage"), _image(change, "NewImage"), current_connection=current_connection)
    except Exception:
        logger.exception("could not derive events from stream record %s", change.get("SequenceNumber"))
        return []


def handle(
    records: Sequence[Mapping[str, Any]],
    sink: EventSink,
    current_connection: Callable[[str], str | None] | None = None,
) -> dict[str, Any]:
    """Events of ``records`` to ``sink``; the ``batchItemFailures`` answer of the event source mapping."""
    events: list[Event] = []
    origins: list[str] = []  # the sequence number of the record each event comes from
    for record in records:
        made = events_of(record, current_connection)
        events += made
        change = record.get("dynamodb")
        origins += [str(change.get("SequenceNumber", "") if isinstance(change, Mapping) else "")] * len(made)
    failed = sink.publish(events) if events else []
    metrics.add_metric(name="EventsPublished", unit=MetricUnit.Count, value=len(events) - len(set(failed)))
    if not failed:
        return {"batchItemFailures": []}
    first = origins[min(failed)]
    metrics.add_metric(name="EventsFailed", unit=MetricUnit.Count, value=len(set(failed)))
    logger.warning("%d of %d events not delivered; the stream retries from %s", len(set(failed)), len(events), first)
    return {"batchItemFailures": [{"itemIdentifier": first}]}


def current_connection_reader(store: ChargerStore) -> Callable[[str], str | None]:
    """The charger's current connection id, read when a connection ends (one GetItem, rare)."""

    def read(charge_point_id: str) -> str | None:
        try:
            charger = store.get_charger(charge_point_id)
        except Exception:
            logger.warning("could not read charger %s: its disconnect is reported", charge_point_id, exc_info=True)
            return None
        connection = (charger or {}).get("connectionId")
        return connection if isinstance(connection, str) else None

    return read


_deps: tuple[EventSink, Callable[[str], str | None]] | None = None


def _dependencies() -> tuple[EventSink, Callable[[str], str | None]]:
    global _deps
    if _deps is None:
        import boto3

        from .adapters.dynamo import DynamoStore
        from .adapters.eventbridge import EventBridgeSink
        from .settings import Settings

        settings = Settings.from_env()
        sink = EventBridgeSink(boto3.client("events"), os.environ[EVENT_BUS_NAME])
        _deps = (sink, current_connection_reader(DynamoStore(boto3.client("dynamodb"), settings.table_name)))
    return _deps


@metrics.log_metrics
@powertools_logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    sink, current = _dependencies()
    return handle(event.get("Records") or [], sink, current)
