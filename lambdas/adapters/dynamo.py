"""DynamoDB adapter of :class:`ocpp_core.ports.StateStore` (single table, see ``ocpp_core.keys``).

Takes an injected low-level boto3 client (``boto3.client("dynamodb")``), so it works on AWS,
on moto and in tests alike. Conditional writes implement the claims (idempotency, one
outstanding call per charger); a lost condition becomes a domain answer, never an exception
to the caller. TTL deletion is lazy (up to days late), so every read that depends on
``expiresAt`` checks it in code.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from ocpp_core import keys
from ocpp_core.ports import (
    ChargerInAnotherSite,
    ConnectionRecorded,
    ItemUpdate,
    MessageStatus,
    Newer,
    ProcessedMessage,
    Record,
    SiteBusy,
    StoreError,
)

from .dynamo_certificates import CertificateItems
from .dynamo_codec import (
    MAP_KEY,
    MAP_KEYS_PER_UPDATE,
    UpdateExpression,
    deserialize_item,
    public_record,
    serialize_item,
)
from .dynamo_files import FileItems
from .dynamo_smart_charging import SmartChargingItems

__all__ = ["DynamoStore", "create_table", "deserialize_item", "serialize_item"]

logger = logging.getLogger(__name__)


def _listed(charge_point_id: str) -> dict[str, str]:
    """The ``list`` index keys every charger item carries (set where a charger item may be created)."""
    return {keys.LIST_PK: keys.CHARGERS_LIST, keys.LIST_SK: charge_point_id}


#: how long an outstanding-call lock outlives its timeout before the table's TTL removes it
LOCK_TTL_S = 7 * 24 * 3600
#: how long one ``put_site`` may hold its site's lease (it claims up to 500 chargers one by one)
SITE_LEASE_S = 60
_LEASE_TOKEN, _LEASE_UNTIL = "leaseToken", "leaseUntil"


class DynamoStore(SmartChargingItems, CertificateItems, FileItems):
    # --- idempotency (extensions only) ---------------------------------------------------
    def claim_message(self, charge_point_id: str, key: str, now_ms: int, expires_at_s: int) -> ProcessedMessage | None:
        pk, sk = keys.charger_pk(charge_point_id), keys.message_sk(key)
        try:
            self._put(
                pk,
                sk,
                {"status": MessageStatus.IN_PROGRESS.value, keys.TTL_ATTRIBUTE: expires_at_s},
                ConditionExpression="attribute_not_exists(#pk) OR #ttl <= :now",
                ExpressionAttributeNames={"#pk": keys.PK, "#ttl": keys.TTL_ATTRIBUTE},
                ExpressionAttributeValues=serialize_item({":now": now_ms // 1000}),
            )
            return None
        except ClientError:
            existing = self._get(pk, sk)
            if existing is None:
                # Expired between the two calls: treat as in progress rather than process twice.
                return ProcessedMessage(MessageStatus.IN_PROGRESS, None)
            return ProcessedMessage(MessageStatus(str(existing.get("status"))), existing.get("reply"))

    def complete_message(self, charge_point_id: str, key: str, reply: str | None, expires_at_s: int) -> None:
        record: dict[str, Any] = {"status": MessageStatus.COMPLETED.value, keys.TTL_ATTRIBUTE: expires_at_s}
        if reply is not None:
            record["reply"] = reply
        self._put(keys.charger_pk(charge_point_id), keys.message_sk(key), record)

    def release_message(self, charge_point_id: str, key: str) -> None:
        self._call(
            "delete_item",
            Key=serialize_item({keys.PK: keys.charger_pk(charge_point_id), keys.SK: keys.message_sk(key)}),
        )

    # --- chargers ------------------------------------------------------------------------
    def get_charger(self, charge_point_id: str) -> Record | None:
        return self._get(keys.charger_pk(charge_point_id), keys.CHARGER_SK)

    def update_charger(self, charge_point_id: str, changes: Mapping[str, Any]) -> None:
        self._write_charger(
            charge_point_id, ItemUpdate(set={"chargePointId": charge_point_id, **changes, **_listed(charge_point_id)})
        )

    def update_charger_fields(self, charge_point_id: str, update: ItemUpdate) -> bool:
        listed = ItemUpdate(
            set=update.set,
            set_if_absent={"chargePointId": charge_point_id, **_listed(charge_point_id), **update.set_if_absent},
            add_to_set=update.add_to_set,
            newer=update.newer,
            must_exist=update.must_exist,
        )
        try:
            self._write_charger(charge_point_id, listed)
        except ClientError:
            return False
        return True

    def _write_charger(self, charge_point_id: str, update: ItemUpdate) -> str | None:
        """One UpdateItem of the charger item; its site after it (raises ClientError on a lost condition).

        The site comes from the item as it was (``ALL_OLD``: its ``siteId`` copy, which this write
        does not touch). An item this write created has no copy yet: a charger that joined a site
        before its first connect (or registration) gets it here, from its membership item, which
        costs a read and a write once per charger. A site claiming it meanwhile finds the item and
        marks it itself (``put_site`` marks after its claims).

        If that read fails, the item says so (``keys.SITE_PENDING``, best effort) before the error
        goes up: the next write of the item (the boot, say; a retry of the same presence event is
        refused by its order) finds the mark and reads the membership again."""
        response = self._update(keys.charger_pk(charge_point_id), keys.CHARGER_SK, update, ReturnValues="ALL_OLD")
        old = response.get("Attributes")
        if old and ("siteId" in old or keys.SITE_PENDING not in old):
            site = old.get("siteId", {}).get("S")
            return site if isinstance(site, str) else None
        pending = bool(old)
        try:
            site = self.site_of(charge_point_id)
        except StoreError:
            if not pending:
                self._mark_site_pending(charge_point_id)
            raise
        if site is not None:
            self._mark_charger(charge_point_id, site)  # a mark left behind is read no more
        elif pending:
            self._mark_site_pending(charge_point_id, pending=False)
        return site

    def _mark_site_pending(self, charge_point_id: str, *, pending: bool = True) -> None:
        """Set (best effort: the read's error goes up all the same) or remove ``keys.SITE_PENDING``;
        written as a touch, which makes no event (``keys.WRITE_KIND``)."""
        values: dict[str, Any] = {":kind": keys.TOUCH_WRITE}
        expression = "SET #kind = :kind REMOVE #pending"
        if pending:
            expression, values[":true"] = "SET #kind = :kind, #pending = :true", True
        try:
            self._call(
                "update_item",
                Key=serialize_item(keys.charger_key(charge_point_id)),
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#pk": keys.PK, "#pending": keys.SITE_PENDING, "#kind": keys.WRITE_KIND},
                ExpressionAttributeValues=serialize_item(values),
            )
        except (ClientError, StoreError):
            pass

    def touch_charger(self, charge_point_id: str, seen_at_ms: int, changes: Mapping[str, Any]) -> Record | None:
        """One UpdateItem: the record comes back whether ``lastSeen`` moved (ALL_NEW) or an older
        frame left it alone (``ReturnValuesOnConditionCheckFailure``: the item as it is)."""
        try:
            response = self._update(
                keys.charger_pk(charge_point_id),
                keys.CHARGER_SK,
                ItemUpdate(
                    set={**changes, keys.WRITE_KIND: keys.TOUCH_WRITE},
                    newer=Newer("lastSeen", seen_at_ms),
                    must_exist=True,
                ),
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            item = error.response.get("Item")
            return public_record(deserialize_item(item)) if item else None
        return public_record(deserialize_item(response.get("Attributes", {})))

    def list_chargers(self, *, after: str | None = None, limit: int | None = None) -> list[Record]:
        """A query of the sparse ``list`` index (ids in order), then the records in batches."""
        found_keys = self._index_keys(keys.CHARGERS_LIST, after=after, limit=limit)
        ids = [str(key[keys.LIST_SK]) for key in found_keys]
        found = self._batch_get([keys.charger_key(cp) for cp in ids])
        return sorted(found, key=lambda r: str(r.get("chargePointId")))

    def get_chargers(self, charge_point_ids: Sequence[str]) -> dict[str, Record]:
        found = self._batch_get([keys.charger_key(cp) for cp in dict.fromkeys(charge_point_ids)])
        return {str(r.get("chargePointId")): r for r in found}

    def set_charger_map_entries(self, charge_point_id: str, name: str, entries: Mapping[str, Any]) -> None:
        """One attribute per key of the map's own item (``MAP#<name>``), so that no write reads
        the map and the charger item stays small (an update costs the size of its item)."""
        items = [(MAP_KEY + key, value) for key, value in entries.items()]
        pk, sk = keys.charger_pk(charge_point_id), keys.map_sk(name)
        for start in range(0, len(items), MAP_KEYS_PER_UPDATE):
            self._update(pk, sk, ItemUpdate(set=dict(items[start : start + MAP_KEYS_PER_UPDATE])))

    def get_charger_map(self, charge_point_id: str, name: str) -> dict[str, Any]:
        item = self._get(keys.charger_pk(charge_point_id), keys.map_sk(name)) or {}
        return {key.removeprefix(MAP_KEY): value for key, value in item.items() if key.startswith(MAP_KEY)}

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
        changed = self._apply(
            keys.charger_pk(charge_point_id),
            keys.connection_sk(connection_id),
            ItemUpdate(
                set=connection_changes,
                set_if_absent={"chargePointId": charge_point_id, "connectionId": connection_id},
                newer=Newer("connectedAt" if connected else "disconnectedAt", at_ms),
            ),
        )
        if not connected:
            return ConnectionRecorded(changed=changed)
        current = ItemUpdate(
            set={**charger_changes, "connectionId": connection_id},
            set_if_absent={"chargePointId": charge_point_id, **_listed(charge_point_id)},
            newer=Newer("connectionAt", at_ms),
        )
        try:
            site = self._write_charger(charge_point_id, current)
        except ClientError:
            return ConnectionRecorded(changed=changed)  # an older connection's late event
        return ConnectionRecorded(changed=True, current=True, site_id=site)

    def get_connections(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Record]:
        wanted = list(dict.fromkeys(pairs))
        found = self._batch_get(
            [{keys.PK: keys.charger_pk(cp), keys.SK: keys.connection_sk(cid)} for cp, cid in wanted], with_keys=True
        )
        now = self._now_s()
        result: dict[tuple[str, str], Record] = {}
        for record in found:
            expires = record.get(keys.TTL_ATTRIBUTE)
            if isinstance(expires, int) and expires <= now:
                continue
            pk, sk = str(record.get(keys.PK)), str(record.get(keys.SK))
            pair = (pk.removeprefix("CP#"), sk.removeprefix(keys.CONNECTION_PREFIX))
            result[pair] = public_record(record)
        return result

    def update_status(self, charge_point_id: str, label: str, record: Mapping[str, Any], order: str) -> bool:
        return self._apply(
            keys.charger_pk(charge_point_id), keys.status_sk(label), ItemUpdate(set=record, newer=Newer("order", order))
        )

    def list_statuses(self, charge_point_id: str) -> list[Record]:
        return list(self._query(keys.charger_pk(charge_point_id), keys.STATUS_PREFIX))

    # --- id tokens -----------------------------------------------------------------------
    def get_id_token(self, id_token: str) -> Record | None:
        return self._get(keys.id_tag_pk(id_token), keys.ID_TAG_SK)

    def put_id_token(self, id_token: str, record: Mapping[str, Any]) -> None:
        self._put(keys.id_tag_pk(id_token), keys.ID_TAG_SK, record)

    def delete_id_token(self, id_token: str) -> bool:
        response = self._call(
            "delete_item",
            Key=serialize_item({keys.PK: keys.id_tag_pk(id_token), keys.SK: keys.ID_TAG_SK}),
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))

    # --- transactions --------------------------------------------------------------------
    def next_transaction_id(self) -> int:
        return self._next_counter(keys.TRANSACTION_COUNTER_SK)

    def _next_counter(self, name: str) -> int:
        """One atomic ADD on the ``COUNTER`` item ``name``: the new value."""
        response = self._call(
            "update_item",
            Key=serialize_item({keys.PK: keys.COUNTER_PK, keys.SK: name}),
            UpdateExpression="ADD #value :one",
            ExpressionAttributeNames={"#value": "value"},
            ExpressionAttributeValues=serialize_item({":one": 1}),
            ReturnValues="UPDATED_NEW",
        )
        return int(deserialize_item(response["Attributes"])["value"])

    def start_transaction(
        self, charge_point_id: str, start_key: str, transaction_id: str, record: Mapping[str, Any]
    ) -> str:
        """TransactWriteItems: the start key (if absent) and the transaction, both or neither."""
        pk = keys.charger_pk(charge_point_id)
        start_sk = keys.transaction_start_sk(start_key)
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": serialize_item({keys.PK: pk, keys.SK: start_sk, "transactionId": transaction_id}),
                            "ConditionExpression": "attribute_not_exists(#pk)",
                            "ExpressionAttributeNames": {"#pk": keys.PK},
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table_name,
                            "Item": serialize_item(
                                {**record, keys.PK: pk, keys.SK: keys.transaction_sk(transaction_id)}
                            ),
                        }
                    },
                ]
            )
        except ClientError as error:
            reasons = error.response.get("CancellationReasons") or []
            if not reasons or reasons[0].get("Code") != "ConditionalCheckFailed":
                raise StoreError(f"DynamoDB transact_write_items failed: {error}") from error
            holder = self._get(pk, start_sk)
            if holder is None:
                raise StoreError("transaction start key vanished") from error
            return str(holder["transactionId"])
        return transaction_id

    def get_transaction(self, charge_point_id: str, transaction_id: str) -> Record | None:
        return self._get(keys.charger_pk(charge_point_id), keys.transaction_sk(transaction_id))

    def update_transaction(self, charge_point_id: str, transaction_id: str, update: ItemUpdate) -> bool:
        return self._apply(keys.charger_pk(charge_point_id), keys.transaction_sk(transaction_id), update)

    def list_transactions(self, charge_point_id: str | None = None) -> list[Record]:
        if charge_point_id is None:
            found = list(self._scan_prefix(keys.TRANSACTION_PREFIX))
        else:
            found = list(self._query(keys.charger_pk(charge_point_id), keys.TRANSACTION_PREFIX))
        return sorted(found, key=lambda r: (str(r.get("chargePointId")), int(r.get("startedAt") or 0)))

    def put_meter_values(self, charge_point_id: str, key: str, record: Mapping[str, Any]) -> None:
        self._put(keys.charger_pk(charge_point_id), keys.meter_values_sk(key), record)

    def list_meter_values(self, charge_point_id: str, transaction_id: str | None = None) -> list[Record]:
        found = [
            r
            for r in self._query(keys.charger_pk(charge_point_id), keys.METER_VALUES_PREFIX)
            if transaction_id is None or r.get("transactionId") == transaction_id
        ]
        return sorted(found, key=_received_order)

    # --- events --------------------------------------------------------------------------
    def put_event(
        self, charge_point_id: str, kind: str, key: str, record: Mapping[str, Any], expires_at_s: int | None
    ) -> None:
        item = dict(record)
        if expires_at_s is not None:
            item[keys.TTL_ATTRIBUTE] = expires_at_s
        self._put(keys.charger_pk(charge_point_id), keys.event_sk(kind, key), item)

    def list_events(self, charge_point_id: str, kind: str | None = None) -> list[Record]:
        found = list(self._query(keys.charger_pk(charge_point_id), keys.event_prefix(kind)))
        return sorted(found, key=_received_order)

    # --- CSMS calls ----------------------------------------------------------------------
    def acquire_outstanding(self, charge_point_id: str, unique_id: str, now_ms: int, until_ms: int) -> Record | None:
        pk = keys.charger_pk(charge_point_id)
        try:
            self._put(
                pk,
                keys.OUTSTANDING_SK,
                {
                    "uniqueId": unique_id,
                    "untilMs": until_ms,
                    # kept well past its timeout: a timer that did not run for a while (an outage)
                    # still finds the call to time out (``overdue_calls``); a new call takes it over
                    keys.TTL_ATTRIBUTE: until_ms // 1000 + LOCK_TTL_S,
                    # listed by its end, so the timer finds the overdue calls (``overdue_calls``)
                    keys.LIST_PK: keys.BUSY_LIST,
                    keys.LIST_SK: keys.busy_list_sk(charge_point_id, until_ms),
                },
                ConditionExpression="attribute_not_exists(#pk) OR #until <= :now",
                ExpressionAttributeNames={"#pk": keys.PK, "#until": "untilMs"},
                ExpressionAttributeValues=serialize_item({":now": now_ms}),
            )
            return None
        except ClientError:
            holder = self._get(pk, keys.OUTSTANDING_SK)
            return holder if holder is not None else {"uniqueId": None}

    def get_outstanding(self, charge_point_id: str) -> Record | None:
        holder = self._get(keys.charger_pk(charge_point_id), keys.OUTSTANDING_SK)
        if holder is None:
            return None
        return {"uniqueId": holder.get("uniqueId"), "untilMs": holder.get("untilMs")}

    def release_outstanding(self, charge_point_id: str, unique_id: str) -> None:
        try:
            self._call(
                "delete_item",
                Key=serialize_item({keys.PK: keys.charger_pk(charge_point_id), keys.SK: keys.OUTSTANDING_SK}),
                ConditionExpression="#uid = :uid",
                ExpressionAttributeNames={"#uid": "uniqueId"},
                ExpressionAttributeValues=serialize_item({":uid": unique_id}),
            )
        except ClientError:
            pass  # held by another call (or already free): nothing to release

    def put_call(self, charge_point_id: str, unique_id: str, record: Mapping[str, Any]) -> None:
        self._put(keys.charger_pk(charge_point_id), keys.call_sk(unique_id), record)

    def get_call(self, charge_point_id: str, unique_id: str) -> Record | None:
        return self._get(keys.charger_pk(charge_point_id), keys.call_sk(unique_id))

    def list_calls(self, charge_point_id: str, *, after: str | None = None, limit: int = 50) -> list[Record]:
        """One query of the charger's ``CALL#`` items, backwards from ``after``."""
        names = {"#pk": keys.PK, "#sk": keys.SK}
        values: dict[str, Any] = {":pk": keys.charger_pk(charge_point_id), ":prefix": keys.CALL_PREFIX}
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": names,
            "ConsistentRead": True,
            "ScanIndexForward": False,
        }
        if after is not None:
            kwargs["KeyConditionExpression"] = "#pk = :pk AND #sk BETWEEN :prefix AND :before"
            # BETWEEN bounds the range (begins_with cannot); it is inclusive, so ``after`` itself
            # comes back first and is skipped below
            values[":before"] = keys.call_sk(after)
        kwargs["ExpressionAttributeValues"] = serialize_item(values)
        found: list[Record] = []
        while len(found) < limit:
            kwargs["Limit"] = limit - len(found) + (1 if after is not None else 0)
            response = self._call("query", **kwargs)
            for item in response.get("Items", []):
                record = self._live_record(item)
                if record is not None and record.get("uniqueId") != after and len(found) < limit:
                    found.append(record)
            if not response.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found

    # --- reservations --------------------------------------------------------------------
    def next_reservation_id(self) -> int:
        return self._next_counter(keys.RESERVATION_COUNTER_SK)

    def create_reservation(self, charge_point_id: str, reservation_id: int, record: Mapping[str, Any]) -> None:
        """The pointer first: if the second put fails, a pointer to nothing reads as no reservation."""
        self._put(
            keys.reservation_pointer_pk(reservation_id),
            keys.RESERVATION_POINTER_SK,
            {"chargePointId": charge_point_id, "reservationId": reservation_id},
        )
        self._put(keys.charger_pk(charge_point_id), keys.reservation_sk(reservation_id), record)

    def get_reservation(self, charge_point_id: str, reservation_id: int) -> Record | None:
        return self._get(keys.charger_pk(charge_point_id), keys.reservation_sk(reservation_id))

    def find_reservation(self, reservation_id: int) -> Record | None:
        pointer = self._get(keys.reservation_pointer_pk(reservation_id), keys.RESERVATION_POINTER_SK)
        if pointer is None or not isinstance(pointer.get("chargePointId"), str):
            return None
        return self.get_reservation(pointer["chargePointId"], reservation_id)

    def update_reservation(self, charge_point_id: str, reservation_id: int, update: ItemUpdate) -> bool:
        return self._apply(keys.charger_pk(charge_point_id), keys.reservation_sk(reservation_id), update)

    def list_reservations(self, charge_point_id: str) -> list[Record]:
        found = self._query(keys.charger_pk(charge_point_id), keys.RESERVATION_PREFIX)
        return sorted(found, key=lambda r: int(r.get("reservationId") or 0), reverse=True)

    # --- sites ---------------------------------------------------------------------------
    def put_site(self, site_id: str, record: Mapping[str, Any], previous_chargers: Sequence[str]) -> None:
        """Lease the site, claim each charger, write the site (ending the lease), release the rest.

        * The lease (``leaseToken`` / ``leaseUntil`` on the site item, taken only if no live one is
          there) makes two changes of one site take turns: the second gets :class:`SiteBusy`. It
          also reads the stored chargers, so a release never depends on the caller's read alone.
        * A claim is a PutItem of the charger's membership item, only if absent or already this
          site's: a charger can never be claimed by two sites, whatever the interleaving. On a lost
          claim the claims this call made are deleted (each only if still this site's) and
          :class:`ChargerInAnotherSite` names the holder.
        * The site item is written after every claim held, only while the lease is ours.
        * The chargers the site dropped are released after that write, not before: a failure in
          between leaves a charger claimed but in no site's record (a retry frees it), never a
          charger in a site's record that another site could claim.
        """
        wanted = list(dict.fromkeys(str(cp) for cp in record.get("chargers") or []))
        token = uuid.uuid4().hex
        site_key = serialize_item(keys.site_key(site_id))
        try:
            response = self._call(
                "update_item",
                Key=site_key,
                UpdateExpression="SET #token = :token, #until = :until",
                ConditionExpression="attribute_not_exists(#until) OR #until <= :now",
                ExpressionAttributeNames={"#token": _LEASE_TOKEN, "#until": _LEASE_UNTIL},
                ExpressionAttributeValues=serialize_item(
                    {":token": token, ":until": int(self._now_s()) + SITE_LEASE_S, ":now": int(self._now_s())}
                ),
                ReturnValues="ALL_OLD",
            )
        except ClientError:
            raise SiteBusy(site_id) from None
        stored = deserialize_item(response.get("Attributes") or {})
        claimed: list[str] = []
        try:
            for cp in wanted:
                if self._claim(site_id, cp):
                    claimed.append(cp)
            item = {**record, "siteId": site_id, keys.LIST_PK: keys.SITES_LIST, keys.LIST_SK: site_id}
            try:
                self._put(
                    keys.site_pk(site_id),
                    keys.SITE_SK,
                    item,
                    ConditionExpression="#token = :token",
                    ExpressionAttributeNames={"#token": _LEASE_TOKEN},
                    ExpressionAttributeValues=serialize_item({":token": token}),
                )
            except ClientError:
                raise SiteBusy(site_id) from None  # the lease ran out and another change took it
        except BaseException:
            for cp in claimed:
                self._release(site_id, cp)
            self._end_lease(site_id, token, existed="siteId" in stored)
            raise
        kept = set(wanted)
        for cp in dict.fromkeys([*previous_chargers, *(stored.get("chargers") or [])]):
            if cp not in kept:
                self._release(site_id, str(cp))
        # Once the site holds them: a failure here is the caller's to retry (PUT again), and leaves
        # no claim outside a site's record.
        for cp in wanted:
            self._mark_charger(cp, site_id)

    def _claim(self, site_id: str, charge_point_id: str) -> bool:
        """Make the charger this site's; True if this call did (False: it was already)."""
        try:
            response = self._put(
                keys.charger_pk(charge_point_id),
                keys.MEMBERSHIP_SK,
                {"siteId": site_id, "chargePointId": charge_point_id},
                ConditionExpression="attribute_not_exists(#pk) OR #site = :site",
                ExpressionAttributeNames={"#pk": keys.PK, "#site": "siteId"},
                ExpressionAttributeValues=serialize_item({":site": site_id}),
                ReturnValues="ALL_OLD",
            )
        except ClientError:
            raise ChargerInAnotherSite(charge_point_id, self.site_of(charge_point_id)) from None
        return not response.get("Attributes")

    def _mark_charger(self, charge_point_id: str, site_id: str | None, *, only_if: str | None = None) -> None:
        """The charger item's copy of its site (``siteId``): the processor reads the charger with
        every frame anyway, so knowing the site costs it no request. The membership item stays the
        authority; the balancing checks the site's own list of chargers."""
        names = {"#pk": keys.PK, "#site": "siteId", "#kind": keys.WRITE_KIND}
        values: dict[str, Any] = {":kind": keys.STATE_WRITE}
        if site_id is not None:
            expression, condition = "SET #site = :site, #kind = :kind", "attribute_exists(#pk)"
            values[":site"] = site_id
        else:
            expression, condition = "SET #kind = :kind REMOVE #site", "attribute_exists(#pk) AND #site = :was"
            values[":was"] = only_if
        try:
            self._call(
                "update_item",
                Key=serialize_item(keys.charger_key(charge_point_id)),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=serialize_item(values),
            )
        except ClientError:
            pass  # no charger item, or another site's mark already

    def _release(self, site_id: str, charge_point_id: str) -> None:
        """Delete the charger's membership if it is still this site's (best effort on an undo)."""
        try:
            self._call(
                "delete_item",
                Key=serialize_item(keys.membership_key(charge_point_id)),
                ConditionExpression="#site = :site",
                ExpressionAttributeNames={"#site": "siteId"},
                ExpressionAttributeValues=serialize_item({":site": site_id}),
            )
            self._mark_charger(charge_point_id, None, only_if=site_id)
        except ClientError:
            pass  # another site's (or free) already
        except StoreError:
            logger.warning("could not release charger %s from site %s", charge_point_id, site_id, exc_info=True)

    def _end_lease(self, site_id: str, token: str, *, existed: bool) -> None:
        """Give the lease back: remove it from the site, or delete the lease-only item of a new site."""
        common: dict[str, Any] = {
            "Key": serialize_item(keys.site_key(site_id)),
            "ConditionExpression": "#token = :token",
            "ExpressionAttributeValues": serialize_item({":token": token}),
        }
        try:
            if existed:
                self._call(
                    "update_item",
                    UpdateExpression="REMOVE #token, #until",
                    ExpressionAttributeNames={"#token": _LEASE_TOKEN, "#until": _LEASE_UNTIL},
                    **common,
                )
            else:
                self._call("delete_item", ExpressionAttributeNames={"#token": _LEASE_TOKEN}, **common)
        except (ClientError, StoreError):
            logger.warning("could not end the lease of site %s (it expires by itself)", site_id, exc_info=True)

    @staticmethod
    def _site_record(record: Record | None) -> Record | None:
        """A site as the port returns it; None for the lease-only item of a site being created."""
        if record is None or "siteId" not in record:
            return None
        record.pop(_LEASE_TOKEN, None)
        record.pop(_LEASE_UNTIL, None)
        return record

    def get_site(self, site_id: str) -> Record | None:
        return self._site_record(self._get(keys.site_pk(site_id), keys.SITE_SK))

    def list_sites(self) -> list[Record]:
        """A query of the sparse ``list`` index (``SITES``), then the records in batches."""
        ids = [str(key[keys.LIST_SK]) for key in self._index_keys(keys.SITES_LIST)]
        found = [self._site_record(r) for r in self._batch_get([keys.site_key(site) for site in ids])]
        return sorted((r for r in found if r is not None), key=lambda r: str(r.get("siteId")))

    def site_of(self, charge_point_id: str) -> str | None:
        membership = self._get(keys.charger_pk(charge_point_id), keys.MEMBERSHIP_SK)
        site = (membership or {}).get("siteId")
        return site if isinstance(site, str) else None

    def complete_call(
        self, charge_point_id: str, unique_id: str, changes: Mapping[str, Any], expected_status: str = "pending"
    ) -> bool:
        expression = UpdateExpression()
        for name, value in changes.items():
            expression.set(name, value)
        condition = f"{expression.name('status')} = {expression.value(expected_status)}"
        try:
            self._call(
                "update_item",
                Key=serialize_item({keys.PK: keys.charger_pk(charge_point_id), keys.SK: keys.call_sk(unique_id)}),
                **expression.build(condition),
            )
        except ClientError:
            return False
        return True


def _received_order(record: Record) -> tuple[int, str]:
    received = record.get("receivedAt")
    return (received if isinstance(received, int) else 0, str(record.get("uniqueId", "")))


def create_table(client: Any, table_name: str) -> None:
    """Create the table as infra/ defines it (local stack and tests; CDK owns it on AWS)."""
    client.create_table(
        TableName=table_name,
        KeySchema=[{"AttributeName": keys.PK, "KeyType": "HASH"}, {"AttributeName": keys.SK, "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": keys.PK, "AttributeType": "S"},
            {"AttributeName": keys.SK, "AttributeType": "S"},
            {"AttributeName": keys.LIST_PK, "AttributeType": "S"},
            {"AttributeName": keys.LIST_SK, "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": keys.LIST_INDEX,
                "KeySchema": [
                    {"AttributeName": keys.LIST_PK, "KeyType": "HASH"},
                    {"AttributeName": keys.LIST_SK, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "KEYS_ONLY"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
        # the change stream domain events are read from (ocpp_core.events; infra/state.py on AWS)
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    client.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": keys.TTL_ATTRIBUTE}
    )
