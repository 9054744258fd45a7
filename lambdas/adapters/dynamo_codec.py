"""How records become DynamoDB items and back, and the UpdateExpression builder.

Shared by the adapter's modules (``dynamo_table``, ``dynamo_smart_charging``, ``dynamo``): numbers
DynamoDB cannot hold are kept as JSON text, sets of ints become number sets (``ADD`` is
idempotent), and the table's own key attributes never reach a caller.
"""

from __future__ import annotations

import decimal
import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import DYNAMODB_CONTEXT, TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from ocpp_core import keys
from ocpp_core.ports import Record, StoreError

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
    if isinstance(value, (set, frozenset)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return {Decimal(v) for v in value}  # a number set (NS): ADD to it is idempotent
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


def public_record(item: Record) -> Record:
    """A record as the ports return it: without the table's own key attributes, nor the write kind
    that only the stream's filter reads (``keys.WRITE_KIND``), nor ``keys.SITE_PENDING``."""
    for attribute in KEY_ATTRIBUTES:
        item.pop(attribute, None)
    item.pop(keys.WRITE_KIND, None)
    item.pop(keys.SITE_PENDING, None)
    return item


KEY_ATTRIBUTES = (keys.PK, keys.SK, keys.LIST_PK, keys.LIST_SK)
BATCH_GET_MAX = 100
BATCH_GET_ATTEMPTS = 6
#: keys of a charger map written by one UpdateItem: an expression string is at most 4 KB
#: (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html)
MAP_KEYS_PER_UPDATE = 100
#: a map key's attribute name is the key behind this prefix: any key (even ``pk``) is kept as given
MAP_KEY = "k:"


def is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class UpdateExpression:
    """Builds an UpdateExpression with every name and value as a placeholder."""

    def __init__(self) -> None:
        self._names: dict[str, str] = {}
        self._values: dict[str, Any] = {}
        self._sets: list[str] = []
        self._adds: list[str] = []

    def name(self, attribute: str) -> str:
        for placeholder, known in self._names.items():
            if known == attribute:
                return placeholder
        placeholder = f"#n{len(self._names)}"
        self._names[placeholder] = attribute
        return placeholder

    def value(self, value: Any) -> str:
        placeholder = f":v{len(self._values)}"
        self._values[placeholder] = value
        return placeholder

    def set(self, attribute: str, value: Any) -> None:
        self._sets.append(f"{self.name(attribute)} = {self.value(value)}")

    def set_if_absent(self, attribute: str, value: Any) -> None:
        name = self.name(attribute)
        self._sets.append(f"{name} = if_not_exists({name}, {self.value(value)})")

    def add(self, attribute: str, elements: set[int]) -> None:
        self._adds.append(f"{self.name(attribute)} {self.value(elements)}")

    def build(self, condition: str | None) -> dict[str, Any]:
        clauses = []
        if self._sets:
            clauses.append("SET " + ", ".join(self._sets))
        if self._adds:
            clauses.append("ADD " + ", ".join(self._adds))
        kwargs: dict[str, Any] = {"UpdateExpression": " ".join(clauses), "ExpressionAttributeNames": self._names}
        if self._values:
            kwargs["ExpressionAttributeValues"] = serialize_item(self._values)
        if condition:
            kwargs["ConditionExpression"] = condition
        return kwargs
