"""Hypothesis strategies for OCPP payloads, built from the official JSON schemas.

``from_schema(schema)`` walks one OCPP JSON schema (the subset the OCA files use: ``type``,
``enum``, ``required``, ``properties``, ``additionalProperties``, ``items``, ``minItems``,
``maxItems``, ``maxLength``, ``minimum``, ``maximum``, ``multipleOf``, ``format`` date-time and
uri, ``$ref`` into ``definitions``) and returns a strategy of instances that validate. Arrays and
strings are capped (``max_items``, ``max_string``) to keep examples small; the caps never go
below what the schema requires.

``validator(schema)`` is an independent oracle for tests: ``jsonschema`` (shipped as a
dependency of the ``ocpp`` package) with the draft the schema names, a strict RFC 3339
``date-time`` check, and ``multipleOf`` judged on the decimal value a JSON reader sees.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

import jsonschema
from hypothesis import strategies as st

from ocpp_core.schemas import SchemaKind, schema_path
from ocpp_core.versions import OcppVersion

Schema = Mapping[str, Any]

#: Any JSON value (no NaN / Infinity, which JSON cannot carry), small.
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=10,
)

# Date-times as OCPP writes them, over the whole range a JSON schema accepts (years 0001-9999).
_OFFSETS = st.sampled_from(["Z", "z", "+00:00", "-00:00", "+01:00", "-05:30", "+14:00", "-12:00", "+0530"])


@st.composite
def date_times(draw: st.DrawFn) -> str:
    dt = draw(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
    fraction = draw(st.sampled_from(["", ".{ms:03d}", ".{us:06d}", ".0"]))
    text = (
        f"{dt.year:04d}-{dt.month:02d}-{dt.day:02d}T{dt.hour:02d}:{dt.minute:02d}:{dt.second:02d}"
        + fraction.format(ms=dt.microsecond // 1000, us=dt.microsecond)
        + draw(_OFFSETS)
    )
    return text


_URI_TAIL = st.text(alphabet=string.ascii_letters + string.digits + "/._-~%", min_size=1, max_size=20)
uris: st.SearchStrategy[str] = st.builds(
    lambda scheme, tail: f"{scheme}://{tail}", st.sampled_from(["ftp", "http", "https", "sftp"]), _URI_TAIL
)


def _resolve(node: Schema, root: Schema) -> Schema:
    seen = 0
    while "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/definitions/"):
            raise ValueError(f"unsupported $ref {ref!r}")
        node = root["definitions"][ref[len("#/definitions/") :]]
        seen += 1
        if seen > 16:
            raise ValueError("$ref cycle")
    return node


def _number_strategy(node: Schema, integer: bool) -> st.SearchStrategy[Any]:
    low, high = node.get("minimum"), node.get("maximum")
    multiple = node.get("multipleOf")
    if multiple is not None:
        step = Decimal(repr(multiple))
        k_low = None if low is None else math.ceil(Decimal(repr(low)) / step)
        k_high = None if high is None else math.floor(Decimal(repr(high)) / step)
        if k_low is None and k_high is None:
            k_low, k_high = -(10**6), 10**6
        ks = st.integers(min_value=k_low, max_value=k_high)
        if integer:
            return ks.map(lambda k: int(Decimal(k) * step))
        # The shortest repr of the float is the decimal multiple (k * 0.1 -> "10.3").
        return ks.map(lambda k: float(Decimal(k) * step))
    if integer:
        return st.integers(
            min_value=None if low is None else math.ceil(low),
            max_value=None if high is None else math.floor(high),
        )
    floats = st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False)
    ints = st.integers(
        min_value=None if low is None else math.ceil(low),
        max_value=None if high is None else math.floor(high),
    )
    # Numbers in JSON are often written without a fraction: "number" accepts integers too.
    return st.one_of(floats, ints)


def _strategy(node: Schema, root: Schema, max_items: int, max_string: int, depth: int) -> st.SearchStrategy[Any]:
    if depth > 40:
        raise ValueError("schema nested too deeply")
    node = _resolve(node, root)
    if "enum" in node:
        return st.sampled_from(list(node["enum"]))
    kind = node.get("type")
    if kind is None and "properties" in node:
        kind = "object"
    if isinstance(kind, list):
        raise ValueError(f"unsupported type list {kind!r}")

    def sub(child: Schema) -> st.SearchStrategy[Any]:
        return _strategy(child, root, max_items, max_string, depth + 1)

    if kind == "object":
        properties: Mapping[str, Schema] = node.get("properties", {})
        required = list(node.get("required", []))
        missing = [name for name in required if name not in properties]
        if missing:
            raise ValueError(f"required properties without a schema: {missing}")
        return st.fixed_dictionaries(
            {name: sub(properties[name]) for name in required},
            optional={name: sub(child) for name, child in properties.items() if name not in required},
        )
    if kind == "array":
        items = node.get("items", {})
        if not isinstance(items, Mapping):
            raise ValueError("tuple-typed items are not supported")
        low = int(node.get("minItems", 0))
        high = node.get("maxItems")
        cap = max(low, max_items)
        high = cap if high is None else min(int(high), cap)
        return st.lists(sub(items), min_size=low, max_size=high)
    if kind == "string":
        fmt = node.get("format")
        limit = node.get("maxLength")
        if fmt == "date-time":
            strategy = date_times()
        elif fmt == "uri":
            strategy = uris
        elif fmt is not None:
            raise ValueError(f"unsupported format {fmt!r}")
        else:
            return st.text(max_size=max_string if limit is None else min(int(limit), max_string))
        return strategy if limit is None else strategy.filter(lambda s: len(s) <= limit)
    if kind == "integer":
        return _number_strategy(node, integer=True)
    if kind == "number":
        return _number_strategy(node, integer=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind is None:
        return json_values  # no constraint at all (2.x DataTransfer "data")
    raise ValueError(f"unsupported schema type {kind!r}")


def from_schema(schema: Schema, *, max_items: int = 3, max_string: int = 16) -> st.SearchStrategy[Any]:
    """Instances that validate against ``schema`` (an OCPP JSON schema)."""
    return _strategy(schema, schema, max_items, max_string, 0)


@cache
def load_schema(version: OcppVersion, action: str, kind: SchemaKind = SchemaKind.REQUEST) -> dict[str, Any]:
    """The official schema, read from the installed ``ocpp`` package (never copied here)."""
    return json.loads(schema_path(version, action, kind).read_text(encoding="utf-8-sig"))


@cache
def payloads(
    version: OcppVersion, action: str, kind: SchemaKind = SchemaKind.REQUEST, max_items: int = 3
) -> st.SearchStrategy[Any]:
    """Valid payloads of ``action`` in ``version``."""
    return from_schema(load_schema(version, action, kind), max_items=max_items)


# --- the oracle --------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:?\d{2})",
)


def is_rfc3339(value: object) -> bool:
    if not isinstance(value, str):
        return True  # formats only constrain strings
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    if hour > 23 or minute > 59 or second > 60:
        return False
    try:
        datetime(year, month, day)
    except ValueError:
        return False
    offset = match.group(8)
    if offset not in ("Z", "z"):
        digits = offset[1:].replace(":", "")
        if int(digits[:2]) > 23 or int(digits[2:]) > 59:
            return False
    return True


_FORMATS = jsonschema.FormatChecker(formats=())
_FORMATS.checks("date-time")(is_rfc3339)


def _decimal_multiple_of(validator: Any, multiple: Any, instance: Any, schema: Any) -> Any:
    if isinstance(instance, bool) or not isinstance(instance, (int, float)):
        return
    if isinstance(instance, float) and not math.isfinite(instance):
        yield jsonschema.ValidationError(f"{instance!r} is not a finite number")
        return
    if Decimal(repr(instance)) % Decimal(repr(multiple)) != 0:
        yield jsonschema.ValidationError(f"{instance!r} is not a multiple of {multiple}")


@cache
def _validator_class(draft_uri: str) -> type:
    base = jsonschema.validators.validator_for({"$schema": draft_uri})
    return jsonschema.validators.extend(base, {"multipleOf": _decimal_multiple_of})


def validator(schema: Schema) -> Callable[[Any], None]:
    """A function raising ``jsonschema.ValidationError`` when its argument does not validate."""
    schema = dict(schema)
    schema.pop("$id", None)  # 2.1 "urn:" ids; every $ref is local
    cls = _validator_class(str(schema.get("$schema", "http://json-schema.org/draft-06/schema#")))
    checker = cls(schema, format_checker=_FORMATS)

    def check(instance: Any) -> None:
        error = jsonschema.exceptions.best_match(checker.iter_errors(instance))
        if error is not None:
            raise error

    return check


@cache
def schema_validator(version: OcppVersion, action: str, kind: SchemaKind) -> Callable[[Any], None]:
    return validator(load_schema(version, action, kind))
