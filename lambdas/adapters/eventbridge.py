"""Domain events to an EventBridge bus (DESIGN §11): ``source`` ``ocpp.csms``, ``detail-type`` the
event's type, ``detail`` the whole event.

PutEvents takes at most 10 entries and 256 KB per call, and reports each entry's failure on its
own ("FailedEntryCount ... Entries ... ErrorCode", https://docs.aws.amazon.com/eventbridge/latest/
APIReference/API_PutEvents.html): a call can succeed while some entries failed, so the failed
entries' indexes are returned for the caller to retry (the events Lambda, from the stream).
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Sequence
from typing import Any

from ocpp_core.events import EVENT_SOURCE, Event
from ocpp_core.timefmt import parse_ms

logger = logging.getLogger(__name__)

MAX_ENTRIES = 10
MAX_REQUEST_BYTES = 256 * 1024


class EventBridgeSink:
    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def _entry(self, event: Event) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "Source": EVENT_SOURCE,
            "DetailType": event["type"],
            "Detail": json.dumps(event, separators=(",", ":"), default=str),
            "EventBusName": self._bus,
        }
        at = parse_ms(event.get("at"))
        if at is not None:
            entry["Time"] = datetime.datetime.fromtimestamp(at / 1000, tz=datetime.UTC)
        return entry

    def publish(self, events: Sequence[Event]) -> list[int]:
        """Send the events in order; the indexes of those not accepted (to retry)."""
        failed: list[int] = []
        batch: list[tuple[int, dict[str, Any]]] = []
        size = 0
        for index, event in enumerate(events):
            entry = self._entry(event)
            entry_size = len(entry["Detail"]) + len(entry["DetailType"]) + len(EVENT_SOURCE) + 64
            if batch and (len(batch) == MAX_ENTRIES or size + entry_size > MAX_REQUEST_BYTES):
                failed += self._put(batch)
                batch, size = [], 0
            batch.append((index, entry))
            size += entry_size
        if batch:
            failed += self._put(batch)
        return failed

    def _put(self, batch: list[tuple[int, dict[str, Any]]]) -> list[int]:
        try:
            answer = self._client.put_events(Entries=[entry for _, entry in batch])
        except Exception:
            logger.exception("PutEvents failed for %d events", len(batch))
            return [index for index, _ in batch]
        failed = []
        for (index, _), result in zip(batch, answer.get("Entries", []), strict=False):
            if result.get("ErrorCode"):
                logger.warning("event not accepted: %s %s", result.get("ErrorCode"), result.get("ErrorMessage"))
                failed.append(index)
        if len(answer.get("Entries", [])) < len(batch):
            failed += [index for index, _ in batch[len(answer.get("Entries", [])) :]]
        return failed
