"""The moto server's short path for the item requests the processor sends most.

Under ``bench e2e`` nine requests in ten that reach the moto server are a GetItem or an UpdateItem
of one of the few shapes the DynamoDB adapter builds (``lambdas.adapters.dynamo_table``), and moto
spends most of its time around them, not in them: a generic request parser driven by botocore's
model, an expression parser, ten validating walks of the syntax tree, an executor, a deep copy of
the item and its JSON form built twice to work out which attributes changed. Measured over HTTP
on this machine (server CPU per request, four clients): a GetItem 1.5 ms, a Heartbeat's
UpdateItem 3.8 ms; with one core for moto that is about 250 Heartbeats a second in all. With
this path, 0.6 and 0.9 ms.

:func:`answer` serves those requests itself, on moto's own tables and items, when it can tell for
certain that moto would succeed, and says what moto would say. A request it does not recognise
in every detail (another operation or member, another expression shape, a value of a type it does
not handle, another account or region rule, an item near the size limit) goes to moto unchanged,
and so does every request that fails (an unknown table, a key of the wrong type, a condition
that does not hold): the condition is checked before anything is written, and a failed one is
answered by moto itself, which checks it again and sends its own refusal. What is written is what
moto writes: the item as moto's executor leaves it (attributes in expression order), a new item
created through moto's ``Table.put_item``, and the stream records moto's update adds.
``tests/local_stack/test_moto_items.py`` sends generated requests, inside and outside these shapes,
through this path and through moto's, and compares the answers, the tables and the streams.

The shapes:

* ``GetItem``: ``TableName``, ``Key`` (the table's key attributes, of their defined types),
  ``ConsistentRead``.
* ``UpdateItem``: ``SET #a = :v`` and ``SET #a = if_not_exists(#a, :v)`` clauses (top-level
  attributes named by placeholders, none of them a key of the table or of an index), with values of
  type S, N, BOOL, NULL, M and L; a condition that is a conjunction of ``attribute_exists(#a)``,
  ``attribute_not_exists(#a)`` and ``(attribute_not_exists(#a) OR #a < :v)`` (or ``>``), comparing
  values of one type, S or N; ``ReturnValues`` NONE, ALL_NEW or ALL_OLD.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Mapping
from typing import Any

#: What DynamoDB's JSON protocol (1.0) answers with
CONTENT_TYPE = "application/x-amz-json-1.0"
#: the ``X-Amz-Target`` of the two operations served here
GET_ITEM, UPDATE_ITEM = "DynamoDB_20120810.GetItem", "DynamoDB_20120810.UpdateItem"
ITEM_TARGETS = frozenset({GET_ITEM, UPDATE_ITEM})

_GET_MEMBERS = frozenset({"TableName", "Key", "ConsistentRead", "ProjectionExpression", "ExpressionAttributeNames"})
_UPDATE_MEMBERS = frozenset(
    {
        "TableName",
        "Key",
        "UpdateExpression",
        "ConditionExpression",
        "ExpressionAttributeNames",
        "ExpressionAttributeValues",
        "ReturnValues",
        "ReturnValuesOnConditionCheckFailure",
    }
)
_NAME = r"#[A-Za-z0-9_]+"
_VALUE = r":[A-Za-z0-9_]+"
_CLAUSE = rf"({_NAME}) = (?:({_VALUE})|if_not_exists\(({_NAME}), ({_VALUE})\))"
_SET_CLAUSE = re.compile(_CLAUSE)
_SET_LIST = re.compile(rf"SET {_CLAUSE}(?:, {_CLAUSE})*")
_EXISTS = re.compile(rf"attribute_(exists|not_exists)\(({_NAME})\)")
_ORDERED = re.compile(rf"\(attribute_not_exists\(({_NAME})\) OR ({_NAME}) ([<>]) ({_VALUE})\)")
_PROJECTION = re.compile(rf"{_NAME}(, {_NAME})*")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_]+")
#: a number that stays the same string through Decimal and back (moto's projection does that)
_INTEGER = re.compile(r"0|-?[1-9][0-9]*")
#: a DynamoDB number as moto keeps it (moto does not check N strings; others go to moto)
_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?")
#: stay clear of moto's item size check (405,000 bytes), which it makes on each attribute set
_SIZE_MARGIN = 300_000
#: parsed expressions kept (the adapter builds a few dozen distinct ones)
_CACHE_LIMIT = 4096

#: (target, value placeholder, only if absent) per SET clause
SetClauses = tuple[tuple[str, str, bool], ...]
#: (kind, name placeholder, operator, value placeholder) per condition term
ConditionTerms = tuple[tuple[str, str, str, str], ...]

_updates: dict[str, SetClauses | None] = {}
_conditions: dict[str, ConditionTerms | None] = {}


def wire_default(value: Any) -> Any:
    # moto keeps B / BS values as raw bytes for its serializer, which base64-encodes them.
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not part of a DynamoDB item response")


def plain_json_body(result: Any) -> str:
    """The response body of a plain-JSON operation (compact, as DynamoDB sends it)."""
    return json.dumps(result, separators=(",", ":"), default=wire_default)


def parse_update(expression: str) -> SetClauses | None:
    """The SET clauses of ``expression``, or None if it is not of the shapes served here."""
    if expression in _updates:
        return _updates[expression]
    clauses: SetClauses | None = None
    if _SET_LIST.fullmatch(expression):
        # the whole expression is a list of clauses: finding them one after the other splits it
        matches = list(_SET_CLAUSE.finditer(expression, 4))
        if all(match[3] is None or match[3] == match[1] for match in matches):
            clauses = tuple((match[1], match[2] or match[4], match[2] is None) for match in matches)
    if len(_updates) < _CACHE_LIMIT:
        _updates[expression] = clauses
    return clauses


def parse_condition(expression: str) -> ConditionTerms | None:
    """The terms of a conjunction of the shapes served here, or None."""
    if expression in _conditions:
        return _conditions[expression]
    terms: list[tuple[str, str, str, str]] | None = []
    for text in expression.split(" AND "):
        exists, ordered = _EXISTS.fullmatch(text), _ORDERED.fullmatch(text)
        if exists is not None:
            terms.append((exists[1], exists[2], "", ""))  # type: ignore[union-attr]
        elif ordered is not None and ordered[1] == ordered[2]:
            terms.append(("ordered", ordered[1], ordered[3], ordered[4]))  # type: ignore[union-attr]
        else:
            terms = None
            break
    result = tuple(terms) if terms else None
    if len(_conditions) < _CACHE_LIMIT:
        _conditions[expression] = result
    return result


def _plain_value(value: Any) -> bool:
    """An attribute value of the types served here (no sets, no binary), well formed."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    if kind == "S":
        return isinstance(inner, str)
    if kind == "N":
        return isinstance(inner, str) and _NUMBER.fullmatch(inner) is not None
    if kind == "BOOL":
        return isinstance(inner, bool)
    if kind == "NULL":
        return inner is True
    if kind == "M":
        return isinstance(inner, dict) and all(isinstance(k, str) and _plain_value(v) for k, v in inner.items())
    if kind == "L":
        return isinstance(inner, list) and all(_plain_value(v) for v in inner)
    return False


def _key_values(table: Any, key: Any) -> tuple[Any, Any] | None:
    """moto's (hash, range) DynamoTypes for a key of exactly the table's attributes and types."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    names = [table.hash_key_attr] + ([table.range_key_attr] if table.range_key_attr else [])
    if not isinstance(key, dict) or sorted(key) != sorted(names):
        return None
    types = {definition["AttributeName"]: definition["AttributeType"] for definition in table.attr}
    for name in names:
        value = key[name]
        if not isinstance(value, dict) or len(value) != 1:
            return None
        ((kind, inner),) = value.items()
        if kind != types.get(name) or kind not in ("S", "N") or not isinstance(inner, str) or not inner:
            return None
        if kind == "N" and _NUMBER.fullmatch(inner) is None:
            return None
    hash_value = DynamoType(key[table.hash_key_attr])
    range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
    return hash_value, range_value


def _backend(headers: Mapping[str, str]) -> Any:
    """moto's DynamoDB backend for the request's account and region, or None to let moto decide.

    As moto's ``BaseResponse`` finds them for a POST to ``/`` (``get_region_from_url``,
    ``get_current_account``), except that a request naming an account, or signed with an access
    key moto's IAM could know, is left to moto.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.core.responses import BaseResponse
    from moto.dynamodb.models import dynamodb_backends

    authorization = headers.get("authorization", "")
    if "x-moto-account-id" in headers or BaseResponse.access_key_regex.search(authorization):
        return None
    account = os.environ.get("MOTO_ACCOUNT_ID", DEFAULT_ACCOUNT_ID)
    host_match = BaseResponse.region_regex.search(headers.get("host", ""))
    agent_match = BaseResponse.region_from_useragent_regex.search(headers.get("user-agent", ""))
    if host_match:
        region = host_match.group(1)
    elif agent_match:
        region = agent_match.group(1)
    elif "AWS4" in authorization:
        parts = authorization.split(",")[0].split("/")
        if len(parts) < 3:
            return None
        region = parts[2]
    else:
        return None
    try:
        return dynamodb_backends[account][region]
    except Exception:  # noqa: BLE001 - an account or region moto refuses: its own answer
        return None


def _projection(body: dict[str, Any]) -> list[str] | None:
    """The attributes a ``ProjectionExpression`` of top-level placeholders names ([] for none)."""
    expression, names = body.get("ProjectionExpression"), body.get("ExpressionAttributeNames")
    if expression is None and names is None:
        return []
    if not isinstance(expression, str) or not isinstance(names, dict) or not _PROJECTION.fullmatch(expression):
        return None
    placeholders = expression.split(", ")
    if set(placeholders) != names.keys() or len(placeholders) != len(names):
        return None
    wanted = [names[placeholder] for placeholder in placeholders]
    if not all(isinstance(name, str) and _PLAIN_NAME.fullmatch(name) for name in wanted):
        return None
    return wanted


def _projected(item: Any, wanted: list[str]) -> dict[str, Any] | None:
    """The projected attributes as moto's ``Item.project`` leaves them (None: values it might
    rewrite on its way through plain Python values, which moto is left to do)."""
    if not all(_readable(value) for value in item.attrs.values()):
        return None
    found: dict[str, Any] = {}
    for name in wanted:
        value = item.attrs.get(name)
        if value is None:
            continue
        if value.type not in ("S", "BOOL", "NULL") and not (value.type == "N" and _INTEGER.fullmatch(value.value)):
            return None
        found[name] = {value.type: value.value}
    return found


def _decimal_safe(number: str) -> bool:
    return _NUMBER.fullmatch(number) is not None and sum(c.isdigit() for c in number) <= 38


def _readable(value: Any) -> bool:
    """A value moto's projection can turn into plain Python values (boto3's deserializer): its
    numbers well formed and within DynamoDB's 38 digits."""
    if value.type == "N":
        return _decimal_safe(value.value)
    if value.type == "NS":
        return all(_decimal_safe(number) for number in value.value)
    if value.type in ("M", "L"):
        inner = value.value.values() if value.type == "M" else value.value
        return all(_readable(element) for element in inner)
    return True


def _get_item(backend: Any, body: dict[str, Any]) -> dict[str, Any] | None:
    if not body.keys() <= _GET_MEMBERS or not isinstance(body.get("ConsistentRead", False), bool):
        return None
    wanted = _projection(body)
    table = backend.tables.get(body.get("TableName"))
    if wanted is None or table is None:
        return None
    key = _key_values(table, body.get("Key"))
    if key is None:
        return None
    item = table.get_item(*key)
    if item is None:
        return {}
    if not wanted:
        return {"Item": item.to_json()["Attributes"]}
    projected = _projected(item, wanted)
    return {"Item": projected} if projected is not None else None


def _placeholders(body: dict[str, Any], clauses: SetClauses, terms: ConditionTerms) -> bool:
    """Every name and value given is used and every one used is given, as moto requires."""
    for member in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
        if member in body and not (isinstance(body[member], dict) and body[member]):
            return False  # given but empty (moto refuses it) or not a map
    names, values = body.get("ExpressionAttributeNames", {}), body.get("ExpressionAttributeValues", {})
    used_names = {name for name, _, _ in clauses} | {name for _, name, _, _ in terms}
    used_values = {value for _, value, _ in clauses} | {value for kind, _, _, value in terms if kind == "ordered"}
    if names.keys() != used_names or values.keys() != used_values:
        return False
    return all(isinstance(name, str) and name for name in names.values()) and all(
        _plain_value(value) for value in values.values()
    )


def _holds(item: Any, terms: ConditionTerms, names: dict[str, str], values: dict[str, Any]) -> bool | None:
    """Whether the condition holds on ``item`` (None: a comparison moto is left to make)."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    attrs = item.attrs if item is not None else {}
    for kind, placeholder, operator, value in terms:
        present = names[placeholder] in attrs
        if kind == "exists":
            if not present:
                return False
        elif kind == "not_exists":
            if present:
                return False
        elif present:
            current, given = attrs[names[placeholder]], DynamoType(values[value])
            if current.type != given.type or current.type not in ("S", "N"):
                return None
            if not (current < given if operator == "<" else current > given):
                return False
    return True


def _settable(table: Any, targets: list[str], values: list[Any]) -> bool:
    """No target is a key of the table, and one that is a key of an index is given a value of its
    defined type, not empty."""
    if table.hash_key_attr in targets or table.range_key_attr in targets:
        return False
    types = {definition["AttributeName"]: definition["AttributeType"] for definition in table.attr}
    for target, value in zip(targets, values, strict=True):
        if target in types:
            ((kind, inner),) = value.items()
            if kind != types[target] or not inner:
                return False
    return True


def _snapshot(item: Any) -> Any:
    """The item before the update, for its stream record. moto deep-copies it; each SET here
    replaces a value and never changes one in place, so a copy of the attribute map keeps the
    old values as they were (and skips the size check moto's map makes on each insertion)."""
    from moto.dynamodb.models.dynamo_type import Item

    old = Item.__new__(Item)
    old.__dict__.update(item.__dict__)
    old.attrs = type(item.attrs).__new__(type(item.attrs))
    dict.update(old.attrs, item.attrs)
    return old


def _update_item(backend: Any, body: dict[str, Any], size: int) -> dict[str, Any] | Exception | None:
    from moto.dynamodb.models.dynamo_type import DynamoType

    if not body.keys() <= _UPDATE_MEMBERS:
        return None
    returns = body.get("ReturnValues", "NONE")
    if returns not in ("NONE", "ALL_NEW", "ALL_OLD") or body.get("ReturnValuesOnConditionCheckFailure", "NONE") not in (
        "NONE",
        "ALL_OLD",
    ):
        return None
    update, condition = body.get("UpdateExpression"), body.get("ConditionExpression")
    if not isinstance(update, str) or not (condition is None or isinstance(condition, str)):
        return None
    clauses = parse_update(update)
    terms = parse_condition(condition) if condition is not None else ()
    if clauses is None or terms is None or not _placeholders(body, clauses, terms):
        return None
    table = backend.tables.get(body.get("TableName"))
    if table is None:
        return None
    key = _key_values(table, body.get("Key"))
    if key is None:
        return None
    names, values = body.get("ExpressionAttributeNames") or {}, body.get("ExpressionAttributeValues") or {}
    targets = [names[target] for target, _, _ in clauses]
    if len(set(targets)) != len(targets) or not _settable(table, targets, [values[v] for _, v, _ in clauses]):
        return None
    item = table.get_item(*key)
    if item is not None and item.size() + 2 * size > _SIZE_MARGIN:
        return None
    holds = _holds(item, terms, names, values)
    if holds is None:
        return None  # a comparison moto is left to make
    if not holds:
        from moto.dynamodb.exceptions import ConditionalCheckFailed

        wanted = body.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and item is not None
        return ConditionalCheckFailed(item=item.to_json()["Attributes"] if wanted else None)
    if item is None:
        old = None
        table.put_item({name: body["Key"][name] for name in body["Key"]})  # as moto's update creates it
        item = table.get_item(*key)
    else:
        old = _snapshot(item)
    for (_, value, only_if_absent), target in zip(clauses, targets, strict=True):
        if only_if_absent and target in item.attrs:
            continue  # moto sets the attribute to itself: no change
        # what moto's size-checking setter does, the check being out of reach (_SIZE_MARGIN)
        dict.__setitem__(item.attrs, target, DynamoType(values[value]))
    if table.stream_shard is not None:
        table.stream_shard.add(old, item)
    result: dict[str, Any] = {}
    if returns == "ALL_NEW":
        result["Attributes"] = item.to_json()["Attributes"]
    elif returns == "ALL_OLD" and old is not None and old.attrs:
        result["Attributes"] = old.to_json()["Attributes"]
    result["ConsumedCapacity"] = {"TableName": body["TableName"], "CapacityUnits": 0.5}
    return result


def answer(target: str, headers: Mapping[str, str], raw: bytes) -> tuple[int, dict[str, str], str] | None:
    """(status, response headers, body) of a GetItem / UpdateItem of the shapes served here, or
    None for moto to answer. ``headers`` are the request's, with lower-case names. Call it with
    moto's DynamoDB requests serialized (``moto_server.serialize_dynamodb``'s lock held)."""
    from moto import settings
    from moto.moto_api import recorder
    from moto.utilities.aws_headers import gen_amz_crc32, gen_amzn_requestid_long

    if target not in ITEM_TARGETS or settings.INITIAL_NO_AUTH_ACTION_COUNT != float("inf"):
        return None
    if getattr(recorder, "_user_enabled", False):
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    backend = _backend(headers)
    if backend is None:
        return None
    result = _get_item(backend, body) if target == GET_ITEM else _update_item(backend, body, len(raw))
    if result is None:
        return None
    if isinstance(result, Exception):  # a refusal, answered as moto's call_action answers it
        status, text = result.code, result.description  # type: ignore[attr-defined]
        response_headers = {"server": "amazon.com", **dict(result.get_headers()), "status": str(status)}  # type: ignore[attr-defined]
    else:
        status, text = 200, plain_json_body(result)
        response_headers = {"Content-Type": CONTENT_TYPE, "server": "amazon.com"}
    gen_amzn_requestid_long(response_headers)
    gen_amz_crc32(text, response_headers)
    return status, response_headers, text
