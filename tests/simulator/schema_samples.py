"""Smallest payloads that pass an official OCPP schema, built from the schema itself.

Used to drive every CSMS-initiated action into the simulator, and by the fake CSMS to answer
charger calls it has no hand-written answer for. Enums take their first value, integers 1
(or their minimum), strings ``"x"``, date-times a fixed instant; optional fields are left out.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from ocpp_core.schemas import SchemaKind, schema_path
from ocpp_core.versions import OcppVersion

DATE_TIME = "2025-01-01T00:00:00Z"


@cache
def load_schema(version: OcppVersion, action: str, kind: SchemaKind) -> dict[str, Any]:
    return json.loads(schema_path(version, action, kind).read_text(encoding="utf-8-sig"))


def _build(node: dict[str, Any], root: dict[str, Any]) -> Any:
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _build(root["definitions"][ref.rsplit("/", 1)[-1]], root)
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type")
    if kind == "object":
        properties = node.get("properties", {})
        return {name: _build(properties[name], root) for name in node.get("required", [])}
    if kind == "array":
        return [_build(node["items"], root) for _ in range(node.get("minItems", 0))]
    if kind == "string":
        return {"date-time": DATE_TIME, "uri": "ftp://example.com/x"}.get(node.get("format", ""), "x")
    if kind in ("integer", "number"):
        value = max(1, int(node.get("minimum", 1)))
        if "maximum" in node:
            value = min(value, int(node["maximum"]))
        return value if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    raise ValueError(f"no sample for schema node {node!r}")


def minimal(version: OcppVersion, action: str, kind: SchemaKind = SchemaKind.REQUEST) -> dict[str, Any]:
    root = load_schema(version, action, kind)
    payload = _build(root, root)
    assert isinstance(payload, dict)
    return payload
