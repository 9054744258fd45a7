"""The DynamoDB items of smart charging and the outbox (DESIGN §10): part of ``DynamoStore``.

* **Outbox** items (``CP#<id>`` / ``OUTBOX#<slot>``) are written only if their ``seq`` is newer (a
  redelivered decision changes nothing) and keep the first ``queuedAt``, so a replaced call keeps
  its place in the queue. They are listed under ``OUTBOX`` in the sparse ``list`` index, so the
  timer finds the chargers with queued calls without a scan.
* The outstanding-call lock (written in ``dynamo.py``) is listed under ``BUSY`` by its end, so the
  timer finds the calls past their timeout with one index query up to ``now``.
* The **balancing state** of a site is one item changed by optimistic concurrency (``version``).
* **Charging profiles** are one item each, written only by a later observation (``observedAt``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from botocore.exceptions import ClientError

from ocpp_core import keys
from ocpp_core.ports import Record, StoreError

from .dynamo_codec import serialize_item
from .dynamo_table import TableAccess

#: charging profiles removed by one BatchWriteItem (DynamoDB's limit)
_BATCH_WRITE_MAX = 25
_BATCH_WRITE_ATTEMPTS = 6
#: read-and-put rounds of one queue_outbox when writers race for the same slot
_QUEUE_ATTEMPTS = 5


class SmartChargingItems(TableAccess):
    # --- outbox --------------------------------------------------------------------------
    def queue_outbox(self, charge_point_id: str, slot: str, record: Mapping[str, Any], seq: int) -> bool:
        """A whole-item put (a newer call replaces the queued one entirely), only over an older seq;
        the first ``queuedAt`` is read and kept (queuing is rare: a read more costs little)."""
        pk, sk = keys.charger_pk(charge_point_id), keys.outbox_sk(slot)
        for _ in range(_QUEUE_ATTEMPTS):
            stored = self._get(pk, sk)
            if stored is not None and int(stored.get("seq") or 0) >= seq:
                return False
            item = {
                **record,
                "chargePointId": charge_point_id,
                "slot": slot,
                "seq": seq,
                "queuedAt": stored["queuedAt"] if stored is not None else record.get("queuedAt", 0),
                keys.LIST_PK: keys.OUTBOX_LIST,
                keys.LIST_SK: keys.outbox_list_sk(charge_point_id, slot),
            }
            if stored is None:
                condition: dict[str, Any] = {
                    "ConditionExpression": "attribute_not_exists(#pk)",
                    "ExpressionAttributeNames": {"#pk": keys.PK},
                }
            else:
                condition = {
                    "ConditionExpression": "#seq = :seq",
                    "ExpressionAttributeNames": {"#seq": "seq"},
                    "ExpressionAttributeValues": serialize_item({":seq": stored["seq"]}),
                }
            try:
                self._put(pk, sk, item, **condition)
            except ClientError:
                continue  # another writer came in between: read again
            return True
        return False

    def list_outbox(self, charge_point_id: str) -> list[Record]:
        found = self._query(keys.charger_pk(charge_point_id), keys.OUTBOX_PREFIX)
        return sorted(found, key=lambda r: (int(r.get("queuedAt") or 0), str(r.get("slot"))))

    def remove_outbox(self, charge_point_id: str, slot: str, seq: int) -> bool:
        try:
            self._call(
                "delete_item",
                Key=serialize_item({keys.PK: keys.charger_pk(charge_point_id), keys.SK: keys.outbox_sk(slot)}),
                ConditionExpression="#seq = :seq",
                ExpressionAttributeNames={"#seq": "seq"},
                ExpressionAttributeValues=serialize_item({":seq": seq}),
            )
        except ClientError:
            return False
        return True

    def outbox_chargers(self) -> list[str]:
        prefix = len(keys.charger_pk(""))
        chargers = (str(item[keys.PK])[prefix:] for item in self._index_keys(keys.OUTBOX_LIST))
        return list(dict.fromkeys(chargers))

    def overdue_calls(self, now_ms: int, *, limit: int = 100) -> list[tuple[str, str]]:
        """The ``BUSY`` index up to now, then each lock read (it names the call holding it)."""
        prefix = len(keys.charger_pk(""))
        found: list[tuple[str, str]] = []
        for item in self._index_keys(keys.BUSY_LIST, up_to=f"{now_ms:015d}#\uffff", limit=limit):
            cp = str(item[keys.PK])[prefix:]
            holder = self._get(keys.charger_pk(cp), keys.OUTSTANDING_SK)
            if holder is not None and int(holder.get("untilMs") or 0) <= now_ms and holder.get("uniqueId"):
                found.append((cp, str(holder["uniqueId"])))
        return found

    # --- balancing state -----------------------------------------------------------------
    def get_balance(self, site_id: str) -> Record | None:
        return self._get(keys.site_pk(site_id), keys.BALANCE_SK)

    def put_balance(self, site_id: str, record: Mapping[str, Any], expected_version: int | None) -> bool:
        if expected_version is None:
            condition: dict[str, Any] = {
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": keys.PK},
            }
        else:
            condition = {
                "ConditionExpression": "#version = :version",
                "ExpressionAttributeNames": {"#version": "version"},
                "ExpressionAttributeValues": serialize_item({":version": expected_version}),
            }
        try:
            self._put(keys.site_pk(site_id), keys.BALANCE_SK, record, **condition)
        except ClientError:
            return False
        return True

    # --- charging profiles ---------------------------------------------------------------
    def put_charging_profile(
        self, charge_point_id: str, profile_key: str, record: Mapping[str, Any], observed_at_ms: int
    ) -> bool:
        """A whole-item put (an observation replaces the record), only over an older observation."""
        item = {**record, "profileKey": profile_key, "chargePointId": charge_point_id, "observedAt": observed_at_ms}
        try:
            self._put(
                keys.charger_pk(charge_point_id),
                keys.profile_sk(profile_key),
                item,
                ConditionExpression="attribute_not_exists(#pk) OR #observed < :observed",
                ExpressionAttributeNames={"#pk": keys.PK, "#observed": "observedAt"},
                ExpressionAttributeValues=serialize_item({":observed": observed_at_ms}),
            )
        except ClientError:
            return False
        return True

    def delete_charging_profiles(self, charge_point_id: str, profile_keys: Sequence[str]) -> None:
        """BatchWriteItem, 25 keys a request, retrying what DynamoDB leaves unprocessed."""
        pk = keys.charger_pk(charge_point_id)
        unique = list(dict.fromkeys(profile_keys))
        for start in range(0, len(unique), _BATCH_WRITE_MAX):
            requests: list[Any] = [
                {"DeleteRequest": {"Key": serialize_item({keys.PK: pk, keys.SK: keys.profile_sk(key)})}}
                for key in unique[start : start + _BATCH_WRITE_MAX]
            ]
            for attempt in range(_BATCH_WRITE_ATTEMPTS):
                if not requests:
                    break
                if attempt:
                    time.sleep(min(0.05 * 2**attempt, 1.0))
                try:
                    response = self._client.batch_write_item(RequestItems={self.table_name: requests})
                except ClientError as error:
                    raise StoreError(f"DynamoDB batch_write_item failed: {error}") from error
                requests = response.get("UnprocessedItems", {}).get(self.table_name, [])
            if requests:
                raise StoreError(f"DynamoDB batch_write_item left {len(requests)} deletes unprocessed")

    def list_charging_profiles(self, charge_point_id: str) -> list[Record]:
        return list(self._query(keys.charger_pk(charge_point_id), keys.PROFILE_PREFIX))

    def put_composite_schedule(self, charge_point_id: str, label: str, record: Mapping[str, Any]) -> None:
        item = {**record, "label": label, "chargePointId": charge_point_id}
        self._put(keys.charger_pk(charge_point_id), keys.composite_sk(label), item)

    def list_composite_schedules(self, charge_point_id: str) -> list[Record]:
        return list(self._query(keys.charger_pk(charge_point_id), keys.COMPOSITE_PREFIX))
