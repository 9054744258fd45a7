"""An in-memory :class:`~ocpp_core.ports.StateStore` for unit tests and benchmarks.

The same semantics as the DynamoDB adapter (conditional writes, expiry checked in code, upserts;
a caller that uses it from several threads passes a lock, ``threading.RLock()``, standing for
DynamoDB's per-item atomicity), so tests written against it hold for both:
one store-contract suite runs against both. Records are deep-copied in and out so callers can
never share mutable state with the store, as with a real database.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from .ports import (
    ChargerInAnotherSite,
    ConnectionRecorded,
    ItemUpdate,
    MessageStatus,
    Newer,
    ProcessedMessage,
    Record,
)


def _copy(value: Any) -> Any:
    """Deep copy of JSON-shaped data (dicts, lists, sets, scalars): several times faster than deepcopy."""
    kind = type(value)
    if kind is dict:
        return {k: _copy(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [_copy(v) for v in value]
    if kind is set or kind is frozenset:
        return sorted(value)  # as the DynamoDB adapter reads a set back: a sorted list
    return value


class Lock(Protocol):
    def __enter__(self) -> Any: ...

    def __exit__(self, *exc: object) -> Any: ...


class _NoLock:
    """The default: one thread, nothing to exclude."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _holds(order: Newer, stored: Any) -> bool:
    if stored is None:
        return True
    value: Any = order.value
    if type(stored) is not type(value):
        return False  # DynamoDB: a comparison of a number with a string is false
    return bool(stored > value) if order.earliest_wins else bool(stored < value)


def apply_update(item: dict[str, Any] | None, update: ItemUpdate) -> dict[str, Any] | None:
    """``item`` after ``update`` (a new dict), or None if the update's condition does not hold."""
    if item is None and update.must_exist:
        return None
    if update.is_empty():
        return item  # nothing to write: no item is created (as on DynamoDB)
    if update.newer is not None and not _holds(update.newer, (item or {}).get(update.newer.attribute)):
        return None
    if item is not None and any(name in item for name in update.require_absent):
        return None
    result = dict(item or {})
    result.update(_copy(dict(update.set)))
    for name, value in update.set_if_absent.items():
        result.setdefault(name, _copy(value))
    for name, elements in update.add_to_set.items():
        result[name] = set(result.get(name) or ()) | set(elements)
    if update.newer is not None:
        result[update.newer.attribute] = update.newer.value
    return result


class InMemoryStore:
    def __init__(self, *, now_s: Callable[[], float] | None = None, lock: Lock | None = None) -> None:
        """``now_s``: epoch seconds, to check ``expiresAt`` on reads as the DynamoDB adapter does.
        Without it (the library has no wall clock of its own) records with a TTL never expire.
        ``lock``: a re-entrant lock for use from several threads (the library starts none itself).
        """
        self._now_s = now_s
        self._lock: Lock = lock if lock is not None else _NoLock()
        self.messages: dict[tuple[str, str], Record] = {}
        self.chargers: dict[str, Record] = {}
        self.maps: dict[tuple[str, str], Record] = {}
        self.connections: dict[tuple[str, str], Record] = {}
        self.statuses: dict[tuple[str, str], Record] = {}
        self.id_tokens: dict[str, Record] = {}
        self.transactions: dict[tuple[str, str], Record] = {}
        self.transaction_starts: dict[tuple[str, str], str] = {}
        self.meter_values: dict[tuple[str, str], Record] = {}
        self.events: dict[tuple[str, str, str], Record] = {}
        self.calls: dict[tuple[str, str], Record] = {}
        self.outstanding: dict[str, Record] = {}
        self.reservations: dict[tuple[str, int], Record] = {}
        self.sites: dict[str, Record] = {}
        #: charger id -> the id of the site it belongs to
        self.memberships: dict[str, str] = {}
        #: (charger id, slot) -> the queued call, as the outbox items
        self.outbox: dict[tuple[str, str], Record] = {}
        self.balances: dict[str, Record] = {}
        self.charging_profiles: dict[tuple[str, str], Record] = {}
        self.composite_schedules: dict[tuple[str, str], Record] = {}
        self.certificates: dict[tuple[str, str], Record] = {}
        self.root_certificate: str | None = None
        #: (charger id, upload id) -> upload request; upload id -> the same request (the pointer)
        self.uploads: dict[tuple[str, str], Record] = {}
        self.upload_pointers: dict[str, Record] = {}
        self.files: dict[tuple[str, str], Record] = {}
        self.firmware: dict[str, Record] = {}
        self._counter = itertools.count(1)
        self.counter_value = 0
        self._reservation_counter = itertools.count(1)

    def _live(self, record: Record) -> bool:
        """False for a record whose ``expiresAt`` has passed (it reads as absent)."""
        expires = record.get("expiresAt")
        return self._now_s is None or not isinstance(expires, int) or expires > self._now_s()

    # --- idempotency ---------------------------------------------------------------------
    def claim_message(self, charge_point_id: str, key: str, now_ms: int, expires_at_s: int) -> ProcessedMessage | None:
        with self._lock:
            existing = self.messages.get((charge_point_id, key))
            if existing is not None and existing["expiresAt"] > now_ms // 1000:
                return ProcessedMessage(MessageStatus(existing["status"]), existing.get("reply"))
            self.messages[(charge_point_id, key)] = {"status": MessageStatus.IN_PROGRESS, "expiresAt": expires_at_s}
            return None

    def complete_message(self, charge_point_id: str, key: str, reply: str | None, expires_at_s: int) -> None:
        with self._lock:
            self.messages[(charge_point_id, key)] = {
                "status": MessageStatus.COMPLETED,
                "reply": reply,
                "expiresAt": expires_at_s,
            }

    def release_message(self, charge_point_id: str, key: str) -> None:
        with self._lock:
            self.messages.pop((charge_point_id, key), None)

    # --- chargers ------------------------------------------------------------------------
    def get_charger(self, charge_point_id: str) -> Record | None:
        with self._lock:
            found = self.chargers.get(charge_point_id)
            return _copy(found) if found is not None else None

    def update_charger(self, charge_point_id: str, changes: Mapping[str, Any]) -> None:
        with self._lock:
            record = self.chargers.setdefault(charge_point_id, self._new_charger(charge_point_id))
            record.update(_copy(dict(changes)))

    def update_charger_fields(self, charge_point_id: str, update: ItemUpdate) -> bool:
        return _apply_to(self._lock, self.chargers, charge_point_id, update, self._new_charger(charge_point_id))

    def _new_charger(self, charge_point_id: str) -> Record:
        """What a charger item starts with: its id, and its site's id if it is already a member
        (as the DynamoDB adapter copies it when a write creates the item)."""
        site = self.memberships.get(charge_point_id)
        return (
            {"chargePointId": charge_point_id} if site is None else {"chargePointId": charge_point_id, "siteId": site}
        )

    def touch_charger(self, charge_point_id: str, seen_at_ms: int, changes: Mapping[str, Any]) -> Record | None:
        with self._lock:
            record = self.chargers.get(charge_point_id)
            if record is None:
                return None
            last = record.get("lastSeen")
            if not isinstance(last, int) or last < seen_at_ms:
                record.update(_copy(dict(changes)))
                record["lastSeen"] = seen_at_ms
            # Read on every message only for a status flag: a top-level copy is enough isolation.
            return dict(record)

    def list_chargers(self, *, after: str | None = None, limit: int | None = None) -> list[Record]:
        with self._lock:
            found = [_copy(r) for cp, r in sorted(self.chargers.items()) if after is None or cp > after]
        return found if limit is None else found[:limit]

    def set_charger_map_entries(self, charge_point_id: str, name: str, entries: Mapping[str, Any]) -> None:
        with self._lock:
            self.maps.setdefault((charge_point_id, name), {}).update(_copy(dict(entries)))

    def get_charger_map(self, charge_point_id: str, name: str) -> dict[str, Any]:
        with self._lock:
            return dict(_copy(self.maps.get((charge_point_id, name), {})))

    def get_chargers(self, charge_point_ids: Sequence[str]) -> dict[str, Record]:
        with self._lock:
            return {cp: _copy(self.chargers[cp]) for cp in dict.fromkeys(charge_point_ids) if cp in self.chargers}

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
        field = "connectedAt" if connected else "disconnectedAt"
        with self._lock:
            key = (charge_point_id, connection_id)
            item = apply_update(
                self.connections.get(key),
                ItemUpdate(
                    set=connection_changes,
                    set_if_absent={"chargePointId": charge_point_id, "connectionId": connection_id},
                    newer=Newer(field, at_ms),
                ),
            )
            if item is not None:
                self.connections[key] = item
            if not connected:
                return ConnectionRecorded(changed=item is not None)
            current = apply_update(
                self.chargers.get(charge_point_id),
                ItemUpdate(
                    set={**charger_changes, "connectionId": connection_id},
                    set_if_absent=self._new_charger(charge_point_id),
                    newer=Newer("connectionAt", at_ms),
                ),
            )
            if current is None:
                return ConnectionRecorded(changed=item is not None)
            self.chargers[charge_point_id] = current
            site = current.get("siteId")
            return ConnectionRecorded(changed=True, current=True, site_id=site if isinstance(site, str) else None)

    def get_connections(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Record]:
        with self._lock:
            return {pair: _copy(self.connections[pair]) for pair in pairs if pair in self.connections}

    def update_status(self, charge_point_id: str, label: str, record: Mapping[str, Any], order: str) -> bool:
        with self._lock:
            key = (charge_point_id, label)
            stored = self.statuses.get(key)
            if stored is not None and not str(stored.get("order", "")) < order:
                return False
            self.statuses[key] = {**_copy(dict(record)), "order": order}
            return True

    def list_statuses(self, charge_point_id: str) -> list[Record]:
        with self._lock:
            return [_copy(r) for (cp, _), r in sorted(self.statuses.items()) if cp == charge_point_id]

    # --- id tokens -----------------------------------------------------------------------
    def get_id_token(self, id_token: str) -> Record | None:
        with self._lock:
            found = self.id_tokens.get(id_token)
            return _copy(found) if found is not None else None

    def put_id_token(self, id_token: str, record: Mapping[str, Any]) -> None:
        with self._lock:
            self.id_tokens[id_token] = _copy(dict(record))

    def delete_id_token(self, id_token: str) -> bool:
        with self._lock:
            return self.id_tokens.pop(id_token, None) is not None

    # --- transactions --------------------------------------------------------------------
    def next_transaction_id(self) -> int:
        with self._lock:
            value = next(self._counter)
            self.counter_value = value
            return value

    def start_transaction(
        self, charge_point_id: str, start_key: str, transaction_id: str, record: Mapping[str, Any]
    ) -> str:
        with self._lock:
            holder = self.transaction_starts.get((charge_point_id, start_key))
            if holder is not None:
                return holder
            self.transaction_starts[(charge_point_id, start_key)] = transaction_id
            self.transactions[(charge_point_id, transaction_id)] = _copy(dict(record))
            return transaction_id

    def get_transaction(self, charge_point_id: str, transaction_id: str) -> Record | None:
        with self._lock:
            found = self.transactions.get((charge_point_id, transaction_id))
            return _copy(found) if found is not None else None

    def update_transaction(self, charge_point_id: str, transaction_id: str, update: ItemUpdate) -> bool:
        return _apply_to(self._lock, self.transactions, (charge_point_id, transaction_id), update, {})

    def list_transactions(self, charge_point_id: str | None = None) -> list[Record]:
        with self._lock:
            found = [
                _copy(r)
                for (cp, _), r in sorted(self.transactions.items())
                if charge_point_id is None or cp == charge_point_id
            ]
        return sorted(found, key=lambda r: (str(r.get("chargePointId")), int(r.get("startedAt") or 0)))

    def put_meter_values(self, charge_point_id: str, key: str, record: Mapping[str, Any]) -> None:
        with self._lock:
            self.meter_values[(charge_point_id, key)] = _copy(dict(record))

    def list_meter_values(self, charge_point_id: str, transaction_id: str | None = None) -> list[Record]:
        with self._lock:
            found = [
                _copy(r)
                for (cp, _), r in self.meter_values.items()
                if cp == charge_point_id and (transaction_id is None or r.get("transactionId") == transaction_id)
            ]
        return sorted(found, key=_received_order)

    # --- events --------------------------------------------------------------------------
    def put_event(
        self, charge_point_id: str, kind: str, key: str, record: Mapping[str, Any], expires_at_s: int | None
    ) -> None:
        item = _copy(dict(record))
        if expires_at_s is not None:
            item["expiresAt"] = expires_at_s
        with self._lock:
            self.events[(charge_point_id, kind, key)] = item

    def list_events(self, charge_point_id: str, kind: str | None = None) -> list[Record]:
        with self._lock:
            found = [
                _copy(e)
                for (cp, k, _), e in self.events.items()
                if cp == charge_point_id and (kind is None or k == kind) and self._live(e)
            ]
        return sorted(found, key=_received_order)

    # --- CSMS calls ----------------------------------------------------------------------
    def acquire_outstanding(self, charge_point_id: str, unique_id: str, now_ms: int, until_ms: int) -> Record | None:
        with self._lock:
            holder = self.outstanding.get(charge_point_id)
            if holder is not None and holder["untilMs"] > now_ms:
                return dict(holder)
            self.outstanding[charge_point_id] = {"uniqueId": unique_id, "untilMs": until_ms}
            return None

    def get_outstanding(self, charge_point_id: str) -> Record | None:
        with self._lock:
            holder = self.outstanding.get(charge_point_id)
            return dict(holder) if holder is not None else None

    def release_outstanding(self, charge_point_id: str, unique_id: str) -> None:
        with self._lock:
            holder = self.outstanding.get(charge_point_id)
            if holder is not None and holder["uniqueId"] == unique_id:
                del self.outstanding[charge_point_id]

    def put_call(self, charge_point_id: str, unique_id: str, record: Mapping[str, Any]) -> None:
        with self._lock:
            self.calls[(charge_point_id, unique_id)] = _copy(dict(record))

    def get_call(self, charge_point_id: str, unique_id: str) -> Record | None:
        with self._lock:
            found = self.calls.get((charge_point_id, unique_id))
            if found is None or not self._live(found):
                return None
            return dict(_copy(found))

    def list_calls(self, charge_point_id: str, *, after: str | None = None, limit: int = 50) -> list[Record]:
        with self._lock:
            found = [
                (uid, r)
                for (cp, uid), r in self.calls.items()
                if cp == charge_point_id and (after is None or uid < after) and self._live(r)
            ]
            # As DynamoDB orders sort keys: by the UTF-8 bytes of CALL#<uniqueId>, greatest first.
            found.sort(key=lambda pair: pair[0].encode("utf-8", "surrogatepass"), reverse=True)
            return [_copy(r) for _, r in found[:limit]]

    # --- reservations --------------------------------------------------------------------
    def next_reservation_id(self) -> int:
        with self._lock:
            return next(self._reservation_counter)

    def create_reservation(self, charge_point_id: str, reservation_id: int, record: Mapping[str, Any]) -> None:
        with self._lock:
            self.reservations[(charge_point_id, reservation_id)] = _copy(dict(record))

    def get_reservation(self, charge_point_id: str, reservation_id: int) -> Record | None:
        with self._lock:
            found = self.reservations.get((charge_point_id, reservation_id))
            return _copy(found) if found is not None else None

    def find_reservation(self, reservation_id: int) -> Record | None:
        with self._lock:
            for (_, rid), record in self.reservations.items():
                if rid == reservation_id:
                    return dict(_copy(record))
            return None

    def update_reservation(self, charge_point_id: str, reservation_id: int, update: ItemUpdate) -> bool:
        return _apply_to(self._lock, self.reservations, (charge_point_id, reservation_id), update, {})

    def list_reservations(self, charge_point_id: str) -> list[Record]:
        with self._lock:
            found = [(rid, r) for (cp, rid), r in self.reservations.items() if cp == charge_point_id]
            return [_copy(r) for _, r in sorted(found, key=lambda pair: pair[0], reverse=True)]

    # --- sites ---------------------------------------------------------------------------
    def put_site(self, site_id: str, record: Mapping[str, Any], previous_chargers: Sequence[str]) -> None:
        """The DynamoDB adapter's steps (claim each charger, the site, release the dropped ones),
        here under the lock, so that a conflict changes nothing."""
        wanted = [str(cp) for cp in record.get("chargers") or []]
        with self._lock:
            claimed: list[str] = []
            for cp in wanted:
                holder = self.memberships.get(cp)
                if holder is not None and holder != site_id:
                    for undo in claimed:
                        del self.memberships[undo]
                    raise ChargerInAnotherSite(cp, holder)
                if holder is None:
                    self.memberships[cp] = site_id
                    claimed.append(cp)
            for cp in wanted:
                if cp in self.chargers:
                    self.chargers[cp]["siteId"] = site_id  # the charger's copy (see the DynamoDB adapter)
            stored = self.sites.get(site_id) or {}
            self.sites[site_id] = {**_copy(dict(record)), "siteId": site_id}
            kept = set(wanted)
            for cp in [*previous_chargers, *(stored.get("chargers") or [])]:
                if cp not in kept and self.memberships.get(cp) == site_id:
                    del self.memberships[cp]
                    if self.chargers.get(cp, {}).get("siteId") == site_id:
                        del self.chargers[cp]["siteId"]

    def get_site(self, site_id: str) -> Record | None:
        with self._lock:
            found = self.sites.get(site_id)
            return _copy(found) if found is not None else None

    def list_sites(self) -> list[Record]:
        with self._lock:
            return [_copy(r) for _, r in sorted(self.sites.items())]

    def site_of(self, charge_point_id: str) -> str | None:
        with self._lock:
            return self.memberships.get(charge_point_id)

    # --- outbox ------------------------------------------------------------------------
    def queue_outbox(self, charge_point_id: str, slot: str, record: Mapping[str, Any], seq: int) -> bool:
        with self._lock:
            stored = self.outbox.get((charge_point_id, slot))
            if stored is not None and int(stored["seq"]) >= seq:
                return False
            queued_at = stored["queuedAt"] if stored is not None else record.get("queuedAt", 0)
            self.outbox[(charge_point_id, slot)] = {
                **_copy(dict(record)),
                "chargePointId": charge_point_id,
                "slot": slot,
                "seq": seq,
                "queuedAt": queued_at,
            }
            return True

    def list_outbox(self, charge_point_id: str) -> list[Record]:
        with self._lock:
            found = [_copy(r) for (cp, _), r in self.outbox.items() if cp == charge_point_id and self._live(r)]
        return sorted(found, key=lambda r: (int(r.get("queuedAt") or 0), str(r.get("slot"))))

    def remove_outbox(self, charge_point_id: str, slot: str, seq: int) -> bool:
        with self._lock:
            stored = self.outbox.get((charge_point_id, slot))
            if stored is None or stored["seq"] != seq:
                return False
            del self.outbox[(charge_point_id, slot)]
            return True

    def outbox_chargers(self) -> list[str]:
        with self._lock:
            return sorted({cp for cp, _ in self.outbox})

    def overdue_calls(self, now_ms: int, *, limit: int = 100) -> list[tuple[str, str]]:
        with self._lock:
            found = sorted(
                (int(holder["untilMs"]), cp, str(holder["uniqueId"]))
                for cp, holder in self.outstanding.items()
                if int(holder["untilMs"]) <= now_ms
            )
        return [(cp, uid) for _, cp, uid in found[:limit]]

    # --- balancing state ---------------------------------------------------------------
    def get_balance(self, site_id: str) -> Record | None:
        with self._lock:
            found = self.balances.get(site_id)
            return _copy(found) if found is not None else None

    def put_balance(self, site_id: str, record: Mapping[str, Any], expected_version: int | None) -> bool:
        with self._lock:
            stored = self.balances.get(site_id)
            if (stored is None) != (expected_version is None):
                return False
            if stored is not None and stored.get("version") != expected_version:
                return False
            self.balances[site_id] = _copy(dict(record))
            return True

    # --- charging profiles -------------------------------------------------------------
    def put_charging_profile(
        self, charge_point_id: str, profile_key: str, record: Mapping[str, Any], observed_at_ms: int
    ) -> bool:
        with self._lock:
            stored = self.charging_profiles.get((charge_point_id, profile_key))
            if stored is not None and int(stored.get("observedAt") or 0) >= observed_at_ms:
                return False
            self.charging_profiles[(charge_point_id, profile_key)] = {
                **_copy(dict(record)),
                "profileKey": profile_key,
                "chargePointId": charge_point_id,
                "observedAt": observed_at_ms,
            }
            return True

    def delete_charging_profiles(self, charge_point_id: str, profile_keys: Sequence[str]) -> None:
        with self._lock:
            for key in profile_keys:
                self.charging_profiles.pop((charge_point_id, key), None)

    def list_charging_profiles(self, charge_point_id: str) -> list[Record]:
        with self._lock:
            found = sorted(
                ((k, r) for (cp, k), r in self.charging_profiles.items() if cp == charge_point_id), key=_first
            )
            return [_copy(r) for _, r in found]

    def put_composite_schedule(self, charge_point_id: str, label: str, record: Mapping[str, Any]) -> None:
        with self._lock:
            self.composite_schedules[(charge_point_id, label)] = {
                **_copy(dict(record)),
                "label": label,
                "chargePointId": charge_point_id,
            }

    def list_composite_schedules(self, charge_point_id: str) -> list[Record]:
        with self._lock:
            found = sorted(
                ((k, r) for (cp, k), r in self.composite_schedules.items() if cp == charge_point_id), key=_first
            )
            return [_copy(r) for _, r in found]

    # --- certificates ------------------------------------------------------------------
    def create_certificate(self, charge_point_id: str, serial: str, record: Mapping[str, Any]) -> tuple[Record, bool]:
        with self._lock:
            stored = self.certificates.get((charge_point_id, serial))
            if stored is not None:
                return _copy(stored), False
            self.certificates[(charge_point_id, serial)] = _copy(dict(record))
            return _copy(dict(record)), True

    def get_certificate(self, charge_point_id: str, serial: str) -> Record | None:
        with self._lock:
            found = self.certificates.get((charge_point_id, serial))
            return _copy(found) if found is not None else None

    def list_certificates(self, charge_point_id: str) -> list[Record]:
        with self._lock:
            found = [_copy(r) for (cp, _), r in self.certificates.items() if cp == charge_point_id]
        return sorted(found, key=lambda r: (int(r.get("issuedAt") or 0), str(r.get("serial"))), reverse=True)

    def update_certificate(self, charge_point_id: str, serial: str, update: ItemUpdate) -> bool:
        return _apply_to(self._lock, self.certificates, (charge_point_id, serial), update, {})

    def get_root_certificate(self) -> str | None:
        with self._lock:
            return self.root_certificate

    def put_root_certificate(self, pem: str) -> str:
        with self._lock:
            if self.root_certificate is None:
                self.root_certificate = pem
            return self.root_certificate

    def expiring_certificates(self, before_ms: int, *, limit: int = 1000) -> list[Record]:
        with self._lock:
            found = [_copy(r) for r in self.certificates.values() if int(r.get("notAfter") or 0) < before_ms]
        found.sort(key=lambda r: (int(r.get("notAfter") or 0), str(r.get("chargePointId")), str(r.get("serial"))))
        return found[:limit]

    # --- files and firmware (ocpp_core.files) --------------------------------------------
    def create_upload(self, charge_point_id: str, upload_id: str, record: Mapping[str, Any]) -> None:
        with self._lock:
            self.uploads[(charge_point_id, upload_id)] = _copy(dict(record))
            self.upload_pointers[upload_id] = _copy(dict(record))

    def find_upload(self, upload_id: str) -> Record | None:
        with self._lock:
            found = self.upload_pointers.get(upload_id)
            return _copy(found) if found is not None and self._live(found) else None

    def delete_upload(self, charge_point_id: str, upload_id: str) -> None:
        with self._lock:
            self.uploads.pop((charge_point_id, upload_id), None)
            if (self.upload_pointers.get(upload_id) or {}).get("chargePointId") == charge_point_id:
                del self.upload_pointers[upload_id]

    def claim_upload(self, charge_point_id: str, upload_id: str, changes: Mapping[str, Any]) -> bool:
        claim = ItemUpdate(set=changes, must_exist=True, require_absent=("fileId",))
        if not _apply_to(self._lock, self.upload_pointers, upload_id, claim, {}):
            return False
        _apply_to(self._lock, self.uploads, (charge_point_id, upload_id), ItemUpdate(set=changes, must_exist=True), {})
        return True

    def update_upload(self, charge_point_id: str, upload_id: str, update: ItemUpdate) -> bool:
        return _apply_to(self._lock, self.uploads, (charge_point_id, upload_id), update, {})

    def list_uploads(self, charge_point_id: str) -> list[Record]:
        with self._lock:
            found = [_copy(r) for (cp, _), r in self.uploads.items() if cp == charge_point_id and self._live(r)]
        return sorted(found, key=lambda r: (int(r.get("createdAt") or 0), str(r.get("uploadId"))), reverse=True)

    def put_file(self, charge_point_id: str, file_id: str, record: Mapping[str, Any]) -> None:
        with self._lock:
            self.files[(charge_point_id, file_id)] = _copy(dict(record))

    def get_file(self, charge_point_id: str, file_id: str) -> Record | None:
        with self._lock:
            found = self.files.get((charge_point_id, file_id))
            return _copy(found) if found is not None else None

    def list_files(self, charge_point_id: str) -> list[Record]:
        with self._lock:
            found = [_copy(r) for (cp, _), r in self.files.items() if cp == charge_point_id]
        return sorted(found, key=lambda r: (int(r.get("receivedAt") or 0), str(r.get("fileId"))), reverse=True)

    def put_firmware(self, firmware_id: str, record: Mapping[str, Any]) -> None:
        with self._lock:
            self.firmware[firmware_id] = _copy(dict(record))

    def get_firmware(self, firmware_id: str) -> Record | None:
        with self._lock:
            found = self.firmware.get(firmware_id)
            return _copy(found) if found is not None else None

    def list_firmware(self) -> list[Record]:
        with self._lock:
            return [_copy(r) for _, r in sorted(self.firmware.items(), reverse=True)]

    def complete_call(
        self, charge_point_id: str, unique_id: str, changes: Mapping[str, Any], expected_status: str = "pending"
    ) -> bool:
        with self._lock:
            record = self.calls.get((charge_point_id, unique_id))
            if record is None or record.get("status") != expected_status:
                return False
            record.update(_copy(dict(changes)))
            return True


def _apply_to(lock: Lock, table: dict[Any, Record], key: Any, update: ItemUpdate, identity: Record) -> bool:
    """``update`` on ``table[key]`` (``identity`` filled in on a new item): whether it applied."""
    with lock:
        stored = table.get(key)
        if update.is_empty():
            return stored is not None or not update.must_exist
        result = apply_update(stored, update)
        if result is None:
            return False
        for name, value in identity.items():
            result.setdefault(name, value)
        table[key] = result
        return True


def _first(pair: tuple[str, Record]) -> str:
    return pair[0]


def _received_order(record: Record) -> tuple[int, str]:
    received = record.get("receivedAt")
    return (received if isinstance(received, int) else 0, str(record.get("uniqueId", "")))
