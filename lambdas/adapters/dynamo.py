"""DynamoDB adapter of :class:`ocpp_core.ports.StateStore` (single table, see ``ocpp_core.keys``).

Takes an injected low-level boto3 client (``boto3.client("dynamodb")``), so it works on AWS,
on moto and in tests alike. Conditional writes implement the claims (idempotency, one
outstanding call per charger); a lost condition becomes a domain answer, never an exception
to the caller. TTL deletion is lazy (up to days late), so every read that depends on
``expiresAt`` checks it in code.
"""

from __future__ import annotations

import decimal
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from ocpp_core import keys
from ocpp_core.ports import ProcessedMessage, Record, StoreError

logger = logging.getLogger(__name__)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()
_MAX_DEPTH = 30  # DynamoDB nests at most 32 levels


#: A value DynamoDB cannot hold as it is (a number beyond its 38 digits or 1E-130..1E+125, a float
#: that is not finite) is stored as ``{_JSON: "<its JSON text>"}`` and read back unchanged. A map of
#: the caller's that has this one key is wrapped the same way, so reading never mistakes it.
_JSON = "$json"
_MIN_EXPONENT, _MAX_EXPONENT = -130, 125


def _wrapped(value: Any) -> dict[str, str]:
    return {_JSON: json.dumps(value)}


def _number(value: int | float) -> Any:
    """``value`` as DynamoDB stores it, or its JSON wrapping when DynamoDB cannot."""
    if isinstance(value, float) and not math.isfinite(value):
        return _wrapped(value)
    number = Decimal(value) if isinstance(value, int) else Decimal(repr(value))
    if number.is_zero():
        return number
    try:
        DYNAMODB_CONTEXT.create_decimal(number)  # raises beyond 38 significant digits or the exponents
    except decimal.DecimalException:
        return _wrapped(value)
    if not _MIN_EXPONENT <= number.adjusted() <= _MAX_EXPONENT:
        return _wrapped(value)
    return number


def _to_dynamo(value: Any, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH:
        raise StoreError("value is nested too deeply for DynamoDB")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, Mapping):
        if len(value) == 1 and _JSON in value:
            return _wrapped(value)
        return {str(k): _to_dynamo(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_dynamo(v, depth + 1) for v in value]
    return str(value)


def _from_dynamo(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(_JSON), str):
            return json.loads(value[_JSON])
        return {k: _from_dynamo(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo(v) for v in value]
    if isinstance(value, set):
        return sorted(_from_dynamo(v) for v in value)
    return value


def serialize_item(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(_to_dynamo(v)) for k, v in item.items()}


def deserialize_item(item: Mapping[str, Any]) -> Record:
    return {k: _from_dynamo(_deserializer.deserialize(v)) for k, v in item.items()}


def _public(item: Record) -> Record:
    """A record as the ports return it: without the table's own key attributes."""
    for attribute in _KEY_ATTRIBUTES:
        item.pop(attribute, None)
    return item


_KEY_ATTRIBUTES = (keys.PK, keys.SK, keys.LIST_PK, keys.LIST_SK)
_BATCH_GET_MAX = 100
_BATCH_GET_ATTEMPTS = 6


def _listed(charge_point_id: str) -> dict[str, str]:
    """The ``list`` index keys every charger item carries (set where a charger item may be created)."""
    return {keys.LIST_PK: keys.CHARGERS_LIST, keys.LIST_SK: charge_point_id}


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class DynamoStore:
    def __init__(self, client: Any, table_name: str, *, clock_s: Callable[[], float] = time.time):
        self._client = client
        self.table_name = table_name
        self._now_s = clock_s

    # --- low-level helpers -------------------------------------------------------------------
    def _call(self, operation: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, operation)(TableName=self.table_name, **kwargs)
        except ClientError as error:
            if _is_condition_failure(error):
                raise
            raise StoreError(f"DynamoDB {operation} failed: {error}") from error

    def _get(self, pk: str, sk: str) -> Record | None:
        response = self._call("get_item", Key=serialize_item({keys.PK: pk, keys.SK: sk}), ConsistentRead=True)
        item = response.get("Item")
        if item is None:
            return None
        record = deserialize_item(item)
        expires = record.get(keys.TTL_ATTRIBUTE)
        if isinstance(expires, int) and expires <= self._now_s():
            return None  # expired, waiting for TTL deletion
        return _public(record)

    def _put(self, pk: str, sk: str, record: Mapping[str, Any], **kwargs: Any) -> Any:
        item = {**record, keys.PK: pk, keys.SK: sk}
        return self._call("put_item", Item=serialize_item(item), **kwargs)

    def _update(
        self,
        pk: str,
        sk: str,
        changes: Mapping[str, Any],
        *,
        condition: str | None = None,
        values: Mapping[str, Any] | None = None,
        names: Mapping[str, str] | None = None,
        return_values: str = "NONE",
    ) -> Any:
        attr_names: dict[str, str] = dict(names or {})
        attr_values: dict[str, Any] = {}
        sets = []
        for i, (name, value) in enumerate(changes.items()):
            if name in (keys.PK, keys.SK):
                continue
            attr_names[f"#a{i}"] = name
            attr_values[f":v{i}"] = value
            sets.append(f"#a{i} = :v{i}")
        if values:
            attr_values.update(values)
        kwargs: dict[str, Any] = {
            "Key": serialize_item({keys.PK: pk, keys.SK: sk}),
            "UpdateExpression": "SET " + ", ".join(sets),
            "ExpressionAttributeNames": attr_names,
            "ExpressionAttributeValues": serialize_item(attr_values),
            "ReturnValues": return_values,
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        return self._call("update_item", **kwargs)

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
        now = self._now_s()
        while True:
            response = self._call(operation, **kwargs)
            for item in response.get("Items", []):
                record = deserialize_item(item)
                expires = record.get(keys.TTL_ATTRIBUTE)
                if isinstance(expires, int) and expires <= now:
                    continue
                yield _public(record)
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    # --- idempotency ---------------------------------------------------------------------
    def claim_message(
        self, charge_point_id: str, unique_id: str, now_ms: int, expires_at_s: int
    ) -> ProcessedMessage | None:
        pk, sk = keys.charger_pk(charge_point_id), keys.message_sk(unique_id)
        try:
            self._put(
                pk,
                sk,
                {"status": "in_progress", keys.TTL_ATTRIBUTE: expires_at_s},
                ConditionExpression="attribute_not_exists(#pk) OR #ttl <= :now",
                ExpressionAttributeNames={"#pk": keys.PK, "#ttl": keys.TTL_ATTRIBUTE},
                ExpressionAttributeValues=serialize_item({":now": now_ms // 1000}),
            )
            return None
        except ClientError:
            existing = self._get(pk, sk)
            if existing is None:
                # Expired between the two calls: treat as in progress rather than process twice.
                return ProcessedMessage("in_progress", None)
            return ProcessedMessage(str(existing.get("status")), existing.get("reply"))

    def complete_message(self, charge_point_id: str, unique_id: str, reply: str | None, expires_at_s: int) -> None:
        record: dict[str, Any] = {"status": "completed", keys.TTL_ATTRIBUTE: expires_at_s}
        if reply is not None:
            record["reply"] = reply
        self._put(keys.charger_pk(charge_point_id), keys.message_sk(unique_id), record)

    def release_message(self, charge_point_id: str, unique_id: str) -> None:
        self._call(
            "delete_item",
            Key=serialize_item({keys.PK: keys.charger_pk(charge_point_id), keys.SK: keys.message_sk(unique_id)}),
        )

    # --- chargers ------------------------------------------------------------------------
    def get_charger(self, charge_point_id: str) -> Record | None:
        return self._get(keys.charger_pk(charge_point_id), keys.CHARGER_SK)

    def update_charger(self, charge_point_id: str, changes: Mapping[str, Any]) -> None:
        self._update(
            keys.charger_pk(charge_point_id),
            keys.CHARGER_SK,
            {"chargePointId": charge_point_id, **changes, **_listed(charge_point_id)},
        )

    def touch_charger(self, charge_point_id: str, changes: Mapping[str, Any]) -> Record | None:
        try:
            response = self._update(
                keys.charger_pk(charge_point_id),
                keys.CHARGER_SK,
                changes,
                condition="attribute_exists(#pk)",
                names={"#pk": keys.PK},
                return_values="ALL_NEW",
            )
        except ClientError:
            return None
        return _public(deserialize_item(response.get("Attributes", {})))

    def list_chargers(self, *, after: str | None = None, limit: int | None = None) -> list[Record]:
        """A query of the sparse ``list`` index (ids in order), then the records in batches."""
        condition = "#lpk = :chargers"
        names = {"#lpk": keys.LIST_PK}
        values: dict[str, Any] = {":chargers": keys.CHARGERS_LIST}
        if after is not None:
            condition += " AND #lsk > :after"
            names["#lsk"] = keys.LIST_SK
            values[":after"] = after
        kwargs: dict[str, Any] = {
            "IndexName": keys.LIST_INDEX,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": serialize_item(values),
        }
        ids: list[str] = []
        while limit is None or len(ids) < limit:
            if limit is not None:
                kwargs["Limit"] = limit - len(ids)
            response = self._call("query", **kwargs)
            ids.extend(str(deserialize_item(item)[keys.LIST_SK]) for item in response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        found = self._batch_get([keys.charger_key(cp) for cp in ids])
        return sorted(found, key=lambda r: str(r.get("chargePointId")))

    def _batch_get(self, item_keys: list[dict[str, str]]) -> list[Record]:
        """The items at ``item_keys`` that exist (BatchGetItem, 100 keys a request, retrying leftovers)."""
        found: list[Record] = []
        for start in range(0, len(item_keys), _BATCH_GET_MAX):
            pending: list[Any] = [serialize_item(key) for key in item_keys[start : start + _BATCH_GET_MAX]]
            for attempt in range(_BATCH_GET_ATTEMPTS):
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
                found.extend(_public(deserialize_item(item)) for item in response["Responses"].get(self.table_name, []))
                pending = response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
            if pending:
                raise StoreError(f"DynamoDB batch_get_item left {len(pending)} keys unprocessed")
        return found

    def set_presence(
        self, charge_point_id: str, connected: bool, connection_id: str, at_ms: int, changes: Mapping[str, Any]
    ) -> bool:
        all_changes = {
            "chargePointId": charge_point_id,
            **_listed(charge_point_id),
            **changes,
            "connected": connected,
            "connectionId": connection_id,
            "presenceAt": at_ms,
        }
        if connected:
            condition = "attribute_not_exists(#presenceAt) OR #presenceAt <= :at"
            values = {":at": at_ms}
            names = {"#presenceAt": "presenceAt"}
        else:
            condition = "#connectionId = :cid"
            values = {":cid": connection_id}
            names = {"#connectionId": "connectionId"}
        try:
            self._update(
                keys.charger_pk(charge_point_id),
                keys.CHARGER_SK,
                all_changes,
                condition=condition,
                values=values,
                names=names,
            )
        except ClientError:
            return False
        return True

    def put_status(self, charge_point_id: str, label: str, record: Mapping[str, Any]) -> None:
        self._put(keys.charger_pk(charge_point_id), keys.status_sk(label), record)

    def list_statuses(self, charge_point_id: str) -> list[Record]:
        return list(self._query(keys.charger_pk(charge_point_id), "STATUS#"))

    # --- id tokens -----------------------------------------------------------------------
    def get_id_token(self, id_token: str) -> Record | None:
        return self._get(keys.id_tag_pk(id_token), keys.ID_TAG_SK)

    def put_id_token(self, id_token: str, record: Mapping[str, Any]) -> None:
        self._put(keys.id_tag_pk(id_token), keys.ID_TAG_SK, record)

    # --- transactions --------------------------------------------------------------------
    def next_transaction_id(self) -> int:
        response = self._call(
            "update_item",
            Key=serialize_item({keys.PK: keys.COUNTER_PK, keys.SK: keys.TRANSACTION_COUNTER_SK}),
            UpdateExpression="ADD #value :one",
            ExpressionAttributeNames={"#value": "value"},
            ExpressionAttributeValues=serialize_item({":one": 1}),
            ReturnValues="UPDATED_NEW",
        )
        return int(deserialize_item(response["Attributes"])["value"])

    def get_transaction(self, charge_point_id: str, transaction_id: str) -> Record | None:
        return self._get(keys.charger_pk(charge_point_id), keys.transaction_sk(transaction_id))

    def update_transaction(self, charge_point_id: str, transaction_id: str, changes: Mapping[str, Any]) -> None:
        self._update(keys.charger_pk(charge_point_id), keys.transaction_sk(transaction_id), changes)

    def list_transactions(self, charge_point_id: str | None = None) -> list[Record]:
        if charge_point_id is None:
            found = list(self._scan_prefix("TX#"))
        else:
            found = list(self._query(keys.charger_pk(charge_point_id), "TX#"))
        return sorted(found, key=lambda r: (str(r.get("chargePointId")), int(r.get("startedAt") or 0)))

    def put_meter_values(
        self, charge_point_id: str, unique_id: str, received_at_ms: int, record: Mapping[str, Any]
    ) -> None:
        self._put(keys.charger_pk(charge_point_id), keys.meter_values_sk(received_at_ms, unique_id), record)

    def list_meter_values(self, charge_point_id: str, transaction_id: str | None = None) -> list[Record]:
        return [
            r
            for r in self._query(keys.charger_pk(charge_point_id), "MV#")
            if transaction_id is None or r.get("transactionId") == transaction_id
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
        item = dict(record)
        if expires_at_s is not None:
            item[keys.TTL_ATTRIBUTE] = expires_at_s
        self._put(keys.charger_pk(charge_point_id), keys.event_sk(kind, received_at_ms, unique_id), item)

    def list_events(self, charge_point_id: str, kind: str | None = None) -> list[Record]:
        prefix = "EVT#" if kind is None else f"EVT#{kind}#"
        return list(self._query(keys.charger_pk(charge_point_id), prefix))

    # --- CSMS calls ----------------------------------------------------------------------
    def acquire_outstanding(self, charge_point_id: str, unique_id: str, now_ms: int, until_ms: int) -> Record | None:
        pk = keys.charger_pk(charge_point_id)
        try:
            self._put(
                pk,
                keys.OUTSTANDING_SK,
                {"uniqueId": unique_id, "untilMs": until_ms, keys.TTL_ATTRIBUTE: until_ms // 1000 + 3600},
                ConditionExpression="attribute_not_exists(#pk) OR #until <= :now",
                ExpressionAttributeNames={"#pk": keys.PK, "#until": "untilMs"},
                ExpressionAttributeValues=serialize_item({":now": now_ms}),
            )
            return None
        except ClientError:
            holder = self._get(pk, keys.OUTSTANDING_SK)
            return holder if holder is not None else {"uniqueId": None}

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

    def complete_call(
        self, charge_point_id: str, unique_id: str, changes: Mapping[str, Any], expected_status: str = "pending"
    ) -> bool:
        try:
            self._update(
                keys.charger_pk(charge_point_id),
                keys.call_sk(unique_id),
                changes,
                condition="#status = :expected",
                names={"#status": "status"},
                values={":expected": expected_status},
            )
        except ClientError:
            return False
        return True


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
    )
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 100})
    client.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": keys.TTL_ATTRIBUTE}
    )
