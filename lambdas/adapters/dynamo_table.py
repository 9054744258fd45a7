"""The table's low-level access, under every part of the DynamoDB adapter.

:class:`TableAccess` holds the client and turns a failed request into :class:`StoreError` (a lost
condition stays a ``ClientError`` for the caller to map to a domain answer); reads are consistent
and drop items whose TTL has passed (DynamoDB deletes them lazily, up to days late).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from ocpp_core import keys
from ocpp_core.ports import ItemUpdate, Record, StoreError

from .dynamo_codec import (
    BATCH_GET_ATTEMPTS,
    BATCH_GET_MAX,
    KEY_ATTRIBUTES,
    UpdateExpression,
    deserialize_item,
    is_condition_failure,
    public_record,
    serialize_item,
)


class TableAccess:
    def __init__(self, client: Any, table_name: str, *, clock_s: Callable[[], float] = time.time):
        self._client = client
        self.table_name = table_name
        self._now_s = clock_s

    # --- low-level helpers -------------------------------------------------------------------
    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(TableName=self.table_name, **kwargs)
        except ClientError as error:
            if is_condition_failure(error):
                raise
            raise StoreError(f"DynamoDB {operation} failed: {error}") from error

    def _live_record(self, item: Mapping[str, Any] | None) -> Record | None:
        if not item:
            return None
        record = deserialize_item(item)
        expires = record.get(keys.TTL_ATTRIBUTE)
        if isinstance(expires, int) and expires <= self._now_s():
            return None  # expired, waiting for TTL deletion
        return public_record(record)

    def _get(self, pk: str, sk: str) -> Record | None:
        response = self._call("get_item", Key=serialize_item({keys.PK: pk, keys.SK: sk}), ConsistentRead=True)
        return self._live_record(response.get("Item"))

    def _put(self, pk: str, sk: str, record: Mapping[str, Any], **kwargs: Any) -> Any:
        item = {**record, keys.PK: pk, keys.SK: sk}
        return self._call("put_item", Item=serialize_item(item), **kwargs)

    def _update(self, pk: str, sk: str, update: ItemUpdate, **kwargs: Any) -> Any:
        """One UpdateItem for ``update``; raises ClientError (condition) for the caller to map.
        A charger item's write says what kind it is (``keys.WRITE_KIND``; a state write unless the
        update says otherwise), for the stream's filter."""
        expression = UpdateExpression()
        if sk == keys.CHARGER_SK and keys.WRITE_KIND not in update.set:
            expression.set(keys.WRITE_KIND, keys.STATE_WRITE)
        for name, value in update.set.items():
            if name not in KEY_ATTRIBUTES[:2]:
                expression.set(name, value)
        for name, value in update.set_if_absent.items():
            if name not in update.set and name not in KEY_ATTRIBUTES[:2]:
                expression.set_if_absent(name, value)
        for name, elements in update.add_to_set.items():
            if elements:
                expression.add(name, set(elements))
        conditions = []
        if update.must_exist:
            conditions.append(f"attribute_exists({expression.name(keys.PK)})")
        for name in update.require_absent:
            conditions.append(f"attribute_not_exists({expression.name(name)})")
        if update.newer is not None:
            order = update.newer
            attribute, value = expression.name(order.attribute), expression.value(order.value)
            comparison = ">" if order.earliest_wins else "<"
            conditions.append(f"(attribute_not_exists({attribute}) OR {attribute} {comparison} {value})")
            expression.set(order.attribute, order.value)
        return self._call(
            "update_item",
            Key=serialize_item({keys.PK: pk, keys.SK: sk}),
            **expression.build(" AND ".join(conditions) or None),
            **kwargs,
        )

    def _apply(self, pk: str, sk: str, update: ItemUpdate) -> bool:
        if update.is_empty():  # nothing to write (DynamoDB refuses an empty update expression)
            return not update.must_exist or self._get(pk, sk) is not None
        try:
            self._update(pk, sk, update)
        except ClientError:
            return False
        return True

    def _query(self, pk: str, sk_prefix: str) -> Iterator[Record]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": keys.PK, "#sk": keys.SK},
            "ExpressionAttributeValues": serialize_item({":pk": pk, ":prefix": sk_prefix}),
            "ConsistentRead": True,
        }
        yield from self._paginate("query", kwargs)

    def _scan_prefix(self, sk_prefix: str) -> Iterator[Record]:
        kwargs: dict[str, Any] = {
            "FilterExpression": "begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#sk": keys.SK},
            "ExpressionAttributeValues": serialize_item({":prefix": sk_prefix}),
            "ConsistentRead": True,
        }
        yield from self._paginate("scan", kwargs)

    def _paginate(self, operation: str, kwargs: dict[str, Any]) -> Iterator[Record]:
        while True:
            response = self._call(operation, **kwargs)
            for item in response.get("Items", []):
                record = self._live_record(item)
                if record is not None:
                    yield record
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def _batch_get(self, item_keys: list[dict[str, str]], *, with_keys: bool = False) -> list[Record]:
        """The items at ``item_keys`` that exist (BatchGetItem, 100 keys a request, retrying leftovers)."""
        found: list[Record] = []
        for start in range(0, len(item_keys), BATCH_GET_MAX):
            pending: list[Any] = [serialize_item(key) for key in item_keys[start : start + BATCH_GET_MAX]]
            for attempt in range(BATCH_GET_ATTEMPTS):
                if not pending:
                    break
                if attempt:
                    time.sleep(min(0.05 * 2**attempt, 1.0))
                try:
                    response = self._client.batch_get_item(
                        RequestItems={self.table_name: {"Keys": pending, "ConsistentRead": True}}
                    )
                except ClientError as error:
                    raise StoreError(f"DynamoDB batch_get_item failed: {error}") from error
                for item in response["Responses"].get(self.table_name, []):
                    record = deserialize_item(item)
                    found.append(record if with_keys else public_record(record))
                pending = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
            if pending:
                raise StoreError(f"DynamoDB batch_get_item left {len(pending)} keys unprocessed")
        return found

    def _index_keys(
        self, list_pk: str, *, after: str | None = None, up_to: str | None = None, limit: int | None = None
    ) -> list[Record]:
        """The keys (``pk``, ``sk``, ``listSk``) under ``list_pk`` in the sparse ``list`` index, in
        ``listSk`` order: those ``> after`` or those ``<= up_to`` only, at most ``limit`` (each page
        asks for no more than is still wanted)."""
        condition = "#lpk = :lpk"
        names = {"#lpk": keys.LIST_PK}
        values: dict[str, Any] = {":lpk": list_pk}
        if after is not None and up_to is not None:
            raise ValueError("after or up_to, not both")
        if after is not None or up_to is not None:
            condition += " AND #lsk > :bound" if after is not None else " AND #lsk <= :bound"
            names["#lsk"] = keys.LIST_SK
            values[":bound"] = after if after is not None else up_to
        kwargs: dict[str, Any] = {
            "IndexName": keys.LIST_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize_item(values),
        }
        found: list[Record] = []
        while limit is None or len(found) < limit:
            if limit is not None:
                kwargs["Limit"] = limit - len(found)
            response = self._call("query", **kwargs)
            found.extend(deserialize_item(item) for item in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found
