"""Minimal valid request payloads, generated from the official schemas by following ``required``."""

from __future__ import annotations

import json
from typing import Any

from ocpp_core.schemas import SchemaKind, schema_path
from ocpp_core.versions import OcppVersion


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = root["definitions"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _minimal(root: dict[str, Any], node: dict[str, Any]) -> Any:
    node = _resolve(root, node)
    if "enum" in node:
        return node["enum"][0]
    kind = node.get("type", "object")
    if isinstance(kind, list):
        kind = kind[0]
    if kind == "object":
        properties = node.get("properties", {})
        return {name: _minimal(root, properties[name]) for name in node.get("required", [])}
    if kind == "array":
        return [_minimal(root, node["items"]) for _ in range(node.get("minItems", 0))]
    if kind == "string":
        if node.get("format") == "date-time":
            return "2025-01-01T00:00:00Z"
        if node.get("format") == "uri":
            return "https://example.com/file"
        return "x" * max(1, node.get("minLength", 1))
    if kind == "integer":
        return int(node.get("minimum", 0))
    if kind == "number":
        return float(node.get("minimum", 0))
    if kind == "boolean":
        return False
    raise AssertionError(f"schema type {kind!r} not handled")


def minimal_request(version: OcppVersion, action: str) -> Any:
    path = schema_path(version, action, SchemaKind.REQUEST)
    schema = json.loads(path.read_text(encoding="utf-8-sig"))
    return _minimal(schema, schema)
