"""Ports: what the processor needs from the outside world, as ``typing.Protocol`` s.

Adapters are named by technology (``lambdas.adapters.dynamo.DynamoStore``,
``ocpp_core.memory_store.InMemoryStore``); the processor only sees these roles. Records are
plain JSON-like dicts with camelCase keys, as stored and as the operator API returns them.
Numbers are ``int`` or ``float`` (adapters convert to and from their own types).

Every method may raise :class:`StoreError` (or anything else); the processor turns that into
an ``InternalError`` CALLERROR and releases the idempotency claim so a redelivery can succeed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

Record = dict[str, Any]


class StoreError(Exception):
    """A state store operation failed (throttling, network, ...)."""


class ConditionFailed(StoreError):
    """A conditional write lost (the item already exists, or is not in the expected state)."""


class Clock(Protocol):
    def now_ms(self) -> int:
        """Epoch milliseconds."""
        ...


class IdSource(Protocol):
    def new_id(self) -> str:
        """A fresh unique id (at most 36 characters, as an OCPP message id)."""
        ...


@dataclass(frozen=True, slots=True)
class ProcessedMessage:
    """The idempotency record of a CALL already seen."""

    status: str  # "in_progress" | "completed"
    reply: str | None


class MessageLog(Protocol):
    """Idempotency records: one per (charger, unique id) CALL, with a TTL."""

    def claim_message(
        self, charge_point_id: str, unique_id: str, now_ms: int, expires_at_s: int
    ) -> ProcessedMessage | None:
        """Claim the message for processing. None if we own it now; else the existing record.

        A record whose ``expires_at_s`` has passed counts as absent (TTL deletion is lazy). The
        processor claims with a short lease and gives the completed record the full TTL.
        """
        ...

    def complete_message(self, charge_point_id: str, unique_id: str, reply: str | None, expires_at_s: int) -> None: ...

    def release_message(self, charge_point_id: str, unique_id: str) -> None: ...


class ChargerStore(Protocol):
    def get_charger(self, charge_point_id: str) -> Record | None: ...

    def update_charger(self, charge_point_id: str, changes: Mapping[str, Any]) -> None:
        """Set top-level attributes of the charger item, creating it if needed."""
        ...

    def touch_charger(self, charge_point_id: str, changes: Mapping[str, Any]) -> Record | None:
        """Set attributes only if the charger exists; the updated record, or None if it does not."""
        ...

    def list_chargers(self, *, after: str | None = None, limit: int | None = None) -> list[Record]:
        """Charger records in id order: those after ``after``, at most ``limit`` (None: all)."""
        ...

    def set_presence(
        self, charge_point_id: str, connected: bool, connection_id: str, at_ms: int, changes: Mapping[str, Any]
    ) -> bool:
        """Record a bridge connection event, in order.

        ``connected``: applied unless a newer presence event was already applied (events
        can arrive out of order). Disconnected: applied only if ``connection_id`` is still
        the charger's current connection, so the old socket of a takeover cannot mark the
        charger offline. Returns whether it was applied.
        """
        ...

    def put_status(self, charge_point_id: str, label: str, record: Mapping[str, Any]) -> None: ...

    def list_statuses(self, charge_point_id: str) -> list[Record]: ...


class IdTokenStore(Protocol):
    def get_id_token(self, id_token: str) -> Record | None: ...

    def put_id_token(self, id_token: str, record: Mapping[str, Any]) -> None: ...


class TransactionStore(Protocol):
    def next_transaction_id(self) -> int:
        """The next OCPP 1.6 transaction id from an atomic counter; never reused."""
        ...

    def get_transaction(self, charge_point_id: str, transaction_id: str) -> Record | None: ...

    def update_transaction(self, charge_point_id: str, transaction_id: str, changes: Mapping[str, Any]) -> None:
        """Set attributes of the transaction, creating it if needed (events may arrive out of order)."""
        ...

    def list_transactions(self, charge_point_id: str | None = None) -> list[Record]: ...

    def put_meter_values(
        self, charge_point_id: str, unique_id: str, received_at_ms: int, record: Mapping[str, Any]
    ) -> None: ...

    def list_meter_values(self, charge_point_id: str, transaction_id: str | None = None) -> list[Record]: ...


class EventStore(Protocol):
    def put_event(
        self,
        charge_point_id: str,
        kind: str,
        unique_id: str,
        received_at_ms: int,
        record: Mapping[str, Any],
        expires_at_s: int | None,
    ) -> None:
        """Keep what a charger reported (NotifyReport, security events, firmware status...)."""
        ...

    def list_events(self, charge_point_id: str, kind: str | None = None) -> list[Record]: ...


class CallStore(Protocol):
    """CSMS-initiated calls and the one-outstanding-call lock per charger."""

    def acquire_outstanding(self, charge_point_id: str, unique_id: str, now_ms: int, until_ms: int) -> Record | None:
        """Take the charger's outbound slot. None on success; else the record holding it.

        A holder whose ``until_ms`` has passed no longer holds it.
        """
        ...

    def release_outstanding(self, charge_point_id: str, unique_id: str) -> None:
        """Free the slot if ``unique_id`` holds it."""
        ...

    def put_call(self, charge_point_id: str, unique_id: str, record: Mapping[str, Any]) -> None: ...

    def get_call(self, charge_point_id: str, unique_id: str) -> Record | None: ...

    def complete_call(
        self, charge_point_id: str, unique_id: str, changes: Mapping[str, Any], expected_status: str = "pending"
    ) -> bool:
        """Apply ``changes`` if the call is still in ``expected_status``; False otherwise."""
        ...


class StateStore(MessageLog, ChargerStore, IdTokenStore, TransactionStore, EventStore, CallStore, Protocol):
    """Everything the processor and the operator API keep."""
