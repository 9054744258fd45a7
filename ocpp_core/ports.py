"""Ports: what the processor needs from the outside world, as ``typing.Protocol`` s.

Adapters are named by technology (``lambdas.adapters.dynamo.DynamoStore``,
``ocpp_core.memory_store.InMemoryStore``); the processor only sees these roles. Records are
plain JSON-like dicts with camelCase keys, as stored and as the operator API returns them.
Numbers are ``int`` or ``float`` (adapters convert to and from their own types).

**Delivery on AWS is not ordered** (DESIGN §7): two frames of one charger can be processed at the
same time, in any order, twice, or minutes late. So the writes here are shaped to be right under any
interleaving, without a read-modify-write anywhere:

* an :class:`ItemUpdate` sets attributes *only if newer* (``newer``: a conditional write on an
  ordering attribute, ties lose, so a duplicate changes nothing), fills attributes *only if absent*,
  and adds to sets (idempotent counters: a set of sequence numbers, not ``n + 1``);
* maps are written one key at a time (``set_charger_map_entries``), never read, merged and put back;
* records that a frame creates have keys derived from the frame itself (a digest of connection,
  unique id and bytes, see ``keys.message_digest``), so a redelivery overwrites them with the same
  content, whenever it comes, even after every idempotency record has expired.

Every method may raise :class:`StoreError` (or anything else); the processor turns that into
an ``InternalError`` CALLERROR, so the charger (or IoT's retry) sends the frame again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import CoreError

Record = dict[str, Any]


class StoreError(CoreError):
    """A state store operation failed (throttling, network, ...)."""


class ConditionFailed(StoreError):
    """A conditional write lost (the item already exists, or is not in the expected state)."""


class ChargerInAnotherSite(ConditionFailed):
    """``put_site`` refused: ``charge_point_id`` already belongs to site ``site_id`` (nothing changed)."""

    def __init__(self, charge_point_id: str, site_id: str | None) -> None:
        super().__init__(f"charger {charge_point_id} belongs to site {site_id}")
        self.charge_point_id = charge_point_id
        self.site_id = site_id


class SiteBusy(ConditionFailed):
    """``put_site`` refused: another change of the same site is in progress (nothing changed)."""

    def __init__(self, site_id: str) -> None:
        super().__init__(f"site {site_id} is being changed by another request")
        self.site_id = site_id


class Clock(Protocol):
    def now_ms(self) -> int:
        """Epoch milliseconds."""
        ...


class IdSource(Protocol):
    def new_id(self) -> str:
        """A fresh unique id of a CSMS call (at most 36 characters, as an OCPP message id). Ids
        made later sort after earlier ones, so a charger's calls list newest first by key."""
        ...


class TransactionStatus(enum.StrEnum):
    """``status`` of a transaction record."""

    ACTIVE = "Active"
    COMPLETED = "Completed"


class MessageStatus(enum.StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"


@dataclass(frozen=True, slots=True)
class ProcessedMessage:
    """The idempotency record of a CALL already seen."""

    status: MessageStatus
    reply: str | None


@dataclass(frozen=True, slots=True)
class Newer:
    """Apply the update only if ``attribute`` is absent or holds less than ``value``; set it to ``value``.

    Values of one attribute are all ints or all strings (compared as DynamoDB compares them).
    Equal values lose: a redelivered frame, carrying the same value, changes nothing.
    """

    attribute: str
    value: int | str
    #: the other way round: apply only if the stored value is greater (the earliest wins, e.g. the
    #: first meter reading of a transaction)
    earliest_wins: bool = False


@dataclass(frozen=True, slots=True)
class ItemUpdate:
    """One conditional, atomic write of an item's top-level attributes (created if absent, unless
    ``must_exist``). Nothing in it reads the item first."""

    set: Mapping[str, Any] = field(default_factory=dict)
    #: set only where the attribute is absent (``if_not_exists``): first writer wins, any order
    set_if_absent: Mapping[str, Any] = field(default_factory=dict)
    #: elements added to a set attribute (idempotent: adding twice is adding once)
    add_to_set: Mapping[str, frozenset[int]] = field(default_factory=dict)
    newer: Newer | None = None
    #: do nothing (and return False) if the item does not exist
    must_exist: bool = False
    #: do nothing (and return False) if any of these attributes exists (a transaction already
    #: stopped, a reservation already ended)
    require_absent: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.set or self.set_if_absent or any(self.add_to_set.values()) or self.newer)


@dataclass(frozen=True, slots=True)
class ConnectionRecorded:
    """What :meth:`ChargerStore.record_connection` did with one bridge event."""

    #: the event changed something (the connection's item, the charger's current connection)
    changed: bool
    #: a ``connected`` event made its connection the charger's current one
    current: bool = False
    #: the charger's site when ``current`` (None: in no site), known from the same write
    site_id: str | None = None


class MessageLog(Protocol):
    """Idempotency records of the frames whose handling is not naturally idempotent (an extension's
    handler or hook), keyed by ``keys.message_digest``, with a TTL."""

    def claim_message(self, charge_point_id: str, key: str, now_ms: int, expires_at_s: int) -> ProcessedMessage | None:
        """Claim the message for processing. None if we own it now; else the existing record.

        A record whose ``expires_at_s`` has passed counts as absent (TTL deletion is lazy). The
        processor claims with a short lease and gives the completed record the full TTL.
        """
        ...

    def complete_message(self, charge_point_id: str, key: str, reply: str | None, expires_at_s: int) -> None: ...

    def release_message(self, charge_point_id: str, key: str) -> None: ...


class ChargerStore(Protocol):
    def get_charger(self, charge_point_id: str) -> Record | None: ...

    def update_charger(self, charge_point_id: str, changes: Mapping[str, Any]) -> None:
        """Set top-level attributes of the charger item, creating it if needed (registry writes)."""
        ...

    def update_charger_fields(self, charge_point_id: str, update: ItemUpdate) -> bool:
        """Apply ``update`` to the charger item. False if its condition did not hold."""
        ...

    def touch_charger(self, charge_point_id: str, seen_at_ms: int, changes: Mapping[str, Any]) -> Record | None:
        """One write per frame: ``lastSeen`` moved forward to ``seen_at_ms`` (never back) and
        ``changes`` set, if the charger exists. The charger record, or None if there is none."""
        ...

    def list_chargers(self, *, after: str | None = None, limit: int | None = None) -> list[Record]:
        """Charger records in id order: those after ``after``, at most ``limit`` (None: all)."""
        ...

    def set_charger_map_entries(self, charge_point_id: str, name: str, entries: Mapping[str, Any]) -> None:
        """Set keys of the charger's map ``name`` (``variables``, ``configuration``), one by one."""
        ...

    def get_charger_map(self, charge_point_id: str, name: str) -> dict[str, Any]: ...

    def get_chargers(self, charge_point_ids: Sequence[str]) -> dict[str, Record]:
        """The charger records of those ids that exist, by id (batched reads, not one per id)."""
        ...

    # --- presence: one item per bridge connection (``presence.py`` says why) ---------------
    def record_connection(
        self,
        charge_point_id: str,
        connection_id: str,
        *,
        connected: bool,
        at_ms: int,
        charger_changes: Mapping[str, Any],
        connection_changes: Mapping[str, Any],
    ) -> ConnectionRecorded:
        """Keep a ``connected`` / ``disconnected`` event of one connection, in any order.

        The connection's item keeps the latest ``connectedAt`` and the latest ``disconnectedAt``
        (each moved forward only, with ``connection_changes``). A ``connected`` event also makes the
        connection the charger's current one if it is newer than the current one's latest
        ``connected`` (``connectionAt``), setting ``charger_changes`` on the charger item with it;
        the charger's site comes back with that (what a site's charger needs on a connect).
        """
        ...

    def get_connections(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Record]:
        """The connection items of ``(charger id, connection id)`` pairs that exist."""
        ...

    def update_status(self, charge_point_id: str, label: str, record: Mapping[str, Any], order: str) -> bool:
        """Replace the connector / EVSE status if ``order`` is greater than the stored one's."""
        ...

    def list_statuses(self, charge_point_id: str) -> list[Record]: ...


class IdTokenStore(Protocol):
    def get_id_token(self, id_token: str) -> Record | None: ...

    def put_id_token(self, id_token: str, record: Mapping[str, Any]) -> None: ...

    def delete_id_token(self, id_token: str) -> bool:
        """Remove the token; False if there was none."""
        ...


class TransactionStore(Protocol):
    def next_transaction_id(self) -> int:
        """The next OCPP 1.6 transaction id from an atomic counter; never reused (gaps allowed)."""
        ...

    def start_transaction(
        self, charge_point_id: str, start_key: str, transaction_id: str, record: Mapping[str, Any]
    ) -> str:
        """Create the transaction unless ``start_key`` (a digest of the start's content) already
        made one, atomically. Returns the id of the transaction that holds the key."""
        ...

    def get_transaction(self, charge_point_id: str, transaction_id: str) -> Record | None: ...

    def update_transaction(self, charge_point_id: str, transaction_id: str, update: ItemUpdate) -> bool:
        """Apply ``update`` to the transaction item. False if its condition did not hold."""
        ...

    def list_transactions(self, charge_point_id: str | None = None) -> list[Record]: ...

    def put_meter_values(self, charge_point_id: str, key: str, record: Mapping[str, Any]) -> None:
        """Keep one frame's meter values under ``key`` (the frame's digest: a redelivery overwrites)."""
        ...

    def list_meter_values(self, charge_point_id: str, transaction_id: str | None = None) -> list[Record]:
        """In ``receivedAt`` order."""
        ...


class EventStore(Protocol):
    def put_event(
        self, charge_point_id: str, kind: str, key: str, record: Mapping[str, Any], expires_at_s: int | None
    ) -> None:
        """Keep what a charger reported (NotifyReport, security events, firmware status...) under
        ``key`` (the frame's digest: a redelivery overwrites the same record)."""
        ...

    def list_events(self, charge_point_id: str, kind: str | None = None) -> list[Record]:
        """In ``receivedAt`` order."""
        ...


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

    def get_outstanding(self, charge_point_id: str) -> Record | None:
        """The slot's holder ``{"uniqueId", "untilMs"}``, even past ``untilMs``; None if free."""
        ...

    def put_call(self, charge_point_id: str, unique_id: str, record: Mapping[str, Any]) -> None: ...

    def get_call(self, charge_point_id: str, unique_id: str) -> Record | None: ...

    def list_calls(self, charge_point_id: str, *, after: str | None = None, limit: int = 50) -> list[Record]:
        """The charger's calls, greatest ``uniqueId`` first (the API's ids sort by creation time:
        newest first), those below ``after`` only, at most ``limit``. One query, no scan."""
        ...

    def complete_call(
        self, charge_point_id: str, unique_id: str, changes: Mapping[str, Any], expected_status: str = "pending"
    ) -> bool:
        """Apply ``changes`` if the call is still in ``expected_status``; False otherwise."""
        ...


class ReservationStore(Protocol):
    """Reservations (1.6 Reservation profile, 2.x block H): integer ids, unique across chargers."""

    def next_reservation_id(self) -> int:
        """The next reservation id from an atomic counter; never reused (gaps allowed)."""
        ...

    def create_reservation(self, charge_point_id: str, reservation_id: int, record: Mapping[str, Any]) -> None:
        """Keep a new reservation, findable by its id alone (``find_reservation``)."""
        ...

    def get_reservation(self, charge_point_id: str, reservation_id: int) -> Record | None: ...

    def find_reservation(self, reservation_id: int) -> Record | None:
        """The reservation with this id, whichever charger it is for."""
        ...

    def update_reservation(self, charge_point_id: str, reservation_id: int, update: ItemUpdate) -> bool:
        """Apply ``update`` to the reservation item. False if its condition did not hold."""
        ...

    def list_reservations(self, charge_point_id: str) -> list[Record]:
        """The charger's reservations, newest (greatest id) first."""
        ...


class SiteStore(Protocol):
    """Sites for smart charging (DESIGN §10): a limit shared by a group of chargers.

    A charger belongs to at most one site, even when two changes race: membership is one item per
    charger (``keys.membership_key``), claimed by a conditional write (only if absent or already this
    site), and the site item is written after every claim held. A site record is
    ``{"siteId", "limitAmps" | "limitWatts", "phases", "minAmps", "chargers", "updatedAt"}``.
    """

    def put_site(self, site_id: str, record: Mapping[str, Any], previous_chargers: Sequence[str]) -> None:
        """Create or replace the site, its ``record["chargers"]`` becoming its members.

        Claims every charger of the record, then writes the site item, then releases the chargers it
        no longer has (``previous_chargers``, what the caller read, and what the store holds). Raises
        :class:`ChargerInAnotherSite` (a charger is another site's) or :class:`SiteBusy` (another
        change of this site is in progress) having undone its own claims: then nothing changed.
        """
        ...

    def get_site(self, site_id: str) -> Record | None: ...

    def list_sites(self) -> list[Record]:
        """Every site record, in id order (no table scan)."""
        ...

    def site_of(self, charge_point_id: str) -> str | None:
        """The id of the site the charger belongs to, or None: one read."""
        ...


class OutboxStore(Protocol):
    """CSMS calls the system decides itself (charging profiles, later CertificateSigned), queued per
    charger until it has no call pending (DESIGN §10): one item per ``slot`` (what the call is for:
    a newer call for the same purpose replaces a queued one), oldest first."""

    def queue_outbox(self, charge_point_id: str, slot: str, record: Mapping[str, Any], seq: int) -> bool:
        """Queue ``record`` (``action``, ``payload``, ``queuedAt``, ``notAfter``, ``origin``) in ``slot``
        unless a call with a ``seq`` at least as high is queued there (a redelivery changes nothing).
        A replaced call keeps its place: the first ``queuedAt`` stays. Whether it was queued."""
        ...

    def list_outbox(self, charge_point_id: str) -> list[Record]:
        """The charger's queued calls (each with ``slot`` and ``seq``), oldest ``queuedAt`` first."""
        ...

    def remove_outbox(self, charge_point_id: str, slot: str, seq: int) -> bool:
        """Remove the queued call if it is still the one with ``seq``; whether it was removed."""
        ...

    def outbox_chargers(self) -> list[str]:
        """The chargers that have something queued (an index query, no scan)."""
        ...

    def overdue_calls(self, now_ms: int, *, limit: int = 100) -> list[tuple[str, str]]:
        """``(charger id, unique id)`` of the calls holding a charger's slot past their timeout."""
        ...


class BalanceStore(Protocol):
    """The balancing state of a site: its sessions, their shares and what each charger was granted.

    One item per site, changed by optimistic concurrency: read it, compute, write it back only if
    its ``version`` is still the one read (else read again). Unlike a blind read-modify-write, no
    update is ever lost, whatever the interleaving of the frames that change it."""

    def get_balance(self, site_id: str) -> Record | None: ...

    def put_balance(self, site_id: str, record: Mapping[str, Any], expected_version: int | None) -> bool:
        """Write ``record`` (which carries the next ``version``) if the stored version is
        ``expected_version`` (None: no record yet). False if another writer came first."""
        ...


class ChargingProfileStore(Protocol):
    """What the CSMS believes each charger has installed, and the composite schedules it reported."""

    def put_charging_profile(
        self, charge_point_id: str, profile_key: str, record: Mapping[str, Any], observed_at_ms: int
    ) -> bool:
        """Keep the profile under ``profile_key`` unless a later observation of it is stored
        (``observedAt``, set to ``observed_at_ms``). Whether it was written."""
        ...

    def delete_charging_profiles(self, charge_point_id: str, profile_keys: Sequence[str]) -> None: ...

    def list_charging_profiles(self, charge_point_id: str) -> list[Record]:
        """Every profile record of the charger (with ``profileKey``), in key order."""
        ...

    def put_composite_schedule(self, charge_point_id: str, label: str, record: Mapping[str, Any]) -> None: ...

    def list_composite_schedules(self, charge_point_id: str) -> list[Record]:
        """Every composite schedule record (with ``label``), in label order."""
        ...


@dataclass(frozen=True, slots=True)
class IssuedCertificate:
    serial: int
    subject: str
    not_before_ms: int
    not_after_ms: int
    #: the leaf alone, and the chain CertificateSigned carries (leaf, then the CA)
    pem: str
    chain_pem: str


class CertificateSigner(Protocol):
    """The chargers' certificate authority (``lambdas.certificates``): CSRs reviewed and signed."""

    #: the CA certificate, PEM (what chargers and TLS clients trust)
    ca_pem: str

    def review(self, csr_pem: object, charge_point_id: str) -> str | None:
        """Why the CSR cannot be signed for this charger, or None."""
        ...

    def issue(self, csr_pem: str, charge_point_id: str, serial: int, now_ms: int) -> IssuedCertificate: ...


class CertificateStore(Protocol):
    """The certificates the CA issued to chargers (``ocpp_core.certificates``)."""

    def create_certificate(self, charge_point_id: str, serial: str, record: Mapping[str, Any]) -> tuple[Record, bool]:
        """Keep ``record`` unless a certificate with this serial is already kept: (the stored
        record, whether this call created it)."""
        ...

    def get_certificate(self, charge_point_id: str, serial: str) -> Record | None: ...

    def list_certificates(self, charge_point_id: str) -> list[Record]:
        """The charger's certificates, newest ``issuedAt`` first."""
        ...

    def update_certificate(self, charge_point_id: str, serial: str, update: ItemUpdate) -> bool: ...

    def get_root_certificate(self) -> str | None:
        """The CA certificate (PEM) of a CA whose key lives elsewhere (KMS), once made."""
        ...

    def put_root_certificate(self, pem: str) -> str:
        """Keep the CA certificate unless one is kept already (first writer wins): the kept one."""
        ...

    def expiring_certificates(self, before_ms: int, *, limit: int = 1000) -> list[Record]:
        """Every charger's certificates whose ``notAfter`` is before ``before_ms``, soonest first
        (an index query, no scan); revoked ones too (the caller filters)."""
        ...


class FileStore(Protocol):
    """Files chargers upload and firmware images chargers download (``ocpp_core.files``).

    An upload request is two items written together: the charger's (listed with its status) and a
    pointer found by the upload id alone (the token of its URL), which also holds the one-file claim.
    """

    def create_upload(self, charge_point_id: str, upload_id: str, record: Mapping[str, Any]) -> None:
        """Keep a new upload request (``record`` carries ``urlExpiresAt``, epoch ms)."""
        ...

    def find_upload(self, upload_id: str) -> Record | None:
        """The upload request with this id, whichever charger it is for: one read."""
        ...

    def delete_upload(self, charge_point_id: str, upload_id: str) -> None:
        """Forget an upload request whose call was refused (nothing was sent to the charger)."""
        ...

    def claim_upload(self, charge_point_id: str, upload_id: str, changes: Mapping[str, Any]) -> bool:
        """Mark the request used (``changes``: ``fileId``, ``receivedAt``...) unless it already is, or
        does not exist: False then, and nothing changed. One file per upload URL."""
        ...

    def update_upload(self, charge_point_id: str, upload_id: str, update: ItemUpdate) -> bool:
        """Apply ``update`` to the charger's upload item (its ``status``). False if its condition did not hold."""
        ...

    def list_uploads(self, charge_point_id: str) -> list[Record]:
        """The charger's upload requests, newest ``createdAt`` first."""
        ...

    def put_file(self, charge_point_id: str, file_id: str, record: Mapping[str, Any]) -> None:
        """Keep a received file's record (overwritten by a redelivery: the id is derived)."""
        ...

    def get_file(self, charge_point_id: str, file_id: str) -> Record | None: ...

    def list_files(self, charge_point_id: str) -> list[Record]:
        """The charger's received files, newest ``receivedAt`` first."""
        ...

    def put_firmware(self, firmware_id: str, record: Mapping[str, Any]) -> None: ...

    def get_firmware(self, firmware_id: str) -> Record | None: ...

    def list_firmware(self) -> list[Record]:
        """Every firmware record, newest first (an index query, no scan)."""
        ...


class StateStore(
    MessageLog,
    ChargerStore,
    IdTokenStore,
    TransactionStore,
    EventStore,
    CallStore,
    ReservationStore,
    SiteStore,
    OutboxStore,
    BalanceStore,
    ChargingProfileStore,
    CertificateStore,
    FileStore,
    Protocol,
):
    """Everything the processor and the operator API keep."""
