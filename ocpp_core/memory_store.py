"""An in-memory :class:`~ocpp_core.ports.StateStore` for unit tests and benchmarks.

Same semantics as the DynamoDB adapter (conditional claims, expiry checked in code, upserts),
so tests written against it hold for both. Records are deep-copied in and out so callers can
never share mutable state with the store, as with a real database.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any

from .ports import ProcessedMessage, Record


def _copy(value: Any) -> Any:
    """Deep copy of JSON-shaped data (dicts, lists, scalars): several times faster than deepcopy."""
    kind = type(value)
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_copy(v) for v in value]
    return value


class InMemoryStore:
    def __init__(self, *, now_s: Callable[[], float] | None = None) -> None:
        """``now_s``: epoch seconds, to check ``expiresAt`` on reads as the DynamoDB adapter does.

        Without it (the library has no wall clock of its own) records with a TTL never expire.
        """
        self._now_s = now_s
        self.messages: dict[tuple[str, str], Record] = {}
        self.chargers: dict[str, Record] = {}
        self.statuses: dict[tuple[str, str], Record] = {}
        self.id_tokens: dict[str, Record] = {}
        self.transactions: dict[tuple[str, str], Record] = {}
        #: keyed like the table's sort keys, so a repeated write replaces and listings are in key order
        self.meter_values: dict[tuple[str, int, str], Record] = {}
        self.events: dict[tuple[str, str, int, str], Record] = {}
        self.calls: dict[tuple[str, str], Record] = {}
        self.outstanding: dict[str, Record] = {}
        self._counter = itertools.count(1)
        self.counter_value = 0

    def _live(self, record: Record) -> bool:
        """False for a record whose ``expiresAt`` has passed (it reads as absent)."""
        expires = record.get("expiresAt")
        return self._now_s is None or not isinstance(expires, int) or expires > self._now_s()

    # --- idempotency ---------------------------------------------------------------------
    def claim_message(
        self, charge_point_id: str, unique_id: str, now_ms: int, expires_at_s: int
    ) -> ProcessedMessage | None:
        key = (charge_point_id, unique_id)
        existing = self.messages.get(key)
        if existing is not None and existing["expiresAt"] > now_ms // 1000:
            return ProcessedMessage(existing["status"], existing.get("reply"))
        self.messages[key] = {"status": "in_progress", "expiresAt": expires_at_s}
        return None

    def complete_message(self, charge_point_id: str, unique_id: str, reply: str | None, expires_at_s: int) -> None:
        self.messages[(charge_point_id, unique_id)] = {"status": "completed", "reply": reply, "expiresAt": expires_at_s}

    def release_message(self, charge_point_id: str, unique_id: str) -> None:
        self.messages.pop((charge_point_id, unique_id), None)

    # --- chargers ------------------------------------------------------------------------
    def get_charger(self, charge_point_id: str) -> Record | None:
        found = self.chargers.get(charge_point_id)
        return _copy(found) if found is not None else None

    def update_charger(self, charge_point_id: str, changes: Mapping[str, Any]) -> None:
        record = self.chargers.setdefault(charge_point_id, {"chargePointId": charge_point_id})
        record.update(_copy(dict(changes)))

    def touch_charger(self, charge_point_id: str, changes: Mapping[str, Any]) -> Record | None:
        record = self.chargers.get(charge_point_id)
        if record is None:
            return None
        record.update(_copy(dict(changes)))
        # Read on every message only for a status flag: a top-level copy is enough isolation.
        return dict(record)

    def list_chargers(self, *, after: str | None = None, limit: int | None = None) -> list[Record]:
        found = [_copy(r) for cp, r in sorted(self.chargers.items()) if after is None or cp > after]
        return found if limit is None else found[:limit]

    def set_presence(
        self, charge_point_id: str, connected: bool, connection_id: str, at_ms: int, changes: Mapping[str, Any]
    ) -> bool:
        record = self.chargers.get(charge_point_id)
        if connected:
            if record is not None and int(record.get("presenceAt", -1)) > at_ms:
                return False
        elif record is None or record.get("connectionId") != connection_id:
            return False
        record = self.chargers.setdefault(charge_point_id, {"chargePointId": charge_point_id})
        record.update(_copy(dict(changes)))
        record.update(connected=connected, connectionId=connection_id, presenceAt=at_ms)
        return True

    def put_status(self, charge_point_id: str, label: str, record: Mapping[str, Any]) -> None:
        self.statuses[(charge_point_id, label)] = _copy(dict(record))

    def list_statuses(self, charge_point_id: str) -> list[Record]:
        return [_copy(r) for (cp, _), r in sorted(self.statuses.items()) if cp == charge_point_id]

    # --- id tokens -----------------------------------------------------------------------
    def get_id_token(self, id_token: str) -> Record | None:
        found = self.id_tokens.get(id_token)
        return _copy(found) if found is not None else None

    def put_id_token(self, id_token: str, record: Mapping[str, Any]) -> None:
        self.id_tokens[id_token] = _copy(dict(record))

    # --- transactions --------------------------------------------------------------------
    def next_transaction_id(self) -> int:
        value = next(self._counter)  # atomic; reading self.counter_value back would race
        self.counter_value = value
        return value

    def get_transaction(self, charge_point_id: str, transaction_id: str) -> Record | None:
        found = self.transactions.get((charge_point_id, transaction_id))
        return _copy(found) if found is not None else None

    def update_transaction(self, charge_point_id: str, transaction_id: str, changes: Mapping[str, Any]) -> None:
        record = self.transactions.setdefault((charge_point_id, transaction_id), {})
        record.update(_copy(dict(changes)))

    def list_transactions(self, charge_point_id: str | None = None) -> list[Record]:
        return [
            _copy(r)
            for (cp, _), r in sorted(self.transactions.items())
            if charge_point_id is None or cp == charge_point_id
        ]

    def put_meter_values(
        self, charge_point_id: str, unique_id: str, received_at_ms: int, record: Mapping[str, Any]
    ) -> None:
        self.meter_values[(charge_point_id, received_at_ms, unique_id)] = _copy(dict(record))

    def list_meter_values(self, charge_point_id: str, transaction_id: str | None = None) -> list[Record]:
        return [
            _copy(r)
            for (cp, _, _), r in sorted(self.meter_values.items())
            if cp == charge_point_id and (transaction_id is None or r.get("transactionId") == transaction_id)
        ]

    # --- events --------------------------------------------------------------------------
    def put_event(
        self,
        charge_point_id: str,
        kind: str,
        unique_id: str,
        received_at_ms: int,
        record: Mapping[str, Any],
        expires_at_s: int | None,
    ) -> None:
        item = _copy(dict(record))
        if expires_at_s is not None:
            item["expiresAt"] = expires_at_s
        self.events[(charge_point_id, kind, received_at_ms, unique_id)] = item

    def list_events(self, charge_point_id: str, kind: str | None = None) -> list[Record]:
        return [
            _copy(e)
            for (cp, k, _, _), e in sorted(self.events.items())
            if cp == charge_point_id and (kind is None or k == kind) and self._live(e)
        ]

    # --- CSMS calls ----------------------------------------------------------------------
    def acquire_outstanding(self, charge_point_id: str, unique_id: str, now_ms: int, until_ms: int) -> Record | None:
        holder = self.outstanding.get(charge_point_id)
        if holder is not None and holder["untilMs"] > now_ms:
            return _copy(holder)
        self.outstanding[charge_point_id] = {"uniqueId": unique_id, "untilMs": until_ms}
        return None

    def release_outstanding(self, charge_point_id: str, unique_id: str) -> None:
        holder = self.outstanding.get(charge_point_id)
        if holder is not None and holder["uniqueId"] == unique_id:
            del self.outstanding[charge_point_id]

    def put_call(self, charge_point_id: str, unique_id: str, record: Mapping[str, Any]) -> None:
        self.calls[(charge_point_id, unique_id)] = _copy(dict(record))

    def get_call(self, charge_point_id: str, unique_id: str) -> Record | None:
        found = self.calls.get((charge_point_id, unique_id))
        return _copy(found) if found is not None and self._live(found) else None

    def complete_call(
        self, charge_point_id: str, unique_id: str, changes: Mapping[str, Any], expected_status: str = "pending"
    ) -> bool:
        record = self.calls.get((charge_point_id, unique_id))
        if record is None or record.get("status") != expected_status:
            return False
        record.update(_copy(dict(changes)))
        return True
