"""The official OCA JSON schemas, read from the installed ``ocpp`` package.

Nothing is copied into this repository: the files are located with
``importlib.util.find_spec("ocpp")`` (which does not import the package) and compiled with
fastjsonschema the first time an action is validated, then cached for the life of the
process (a Lambda execution environment or the bridge).

One deviation from a plain compile: OCPP 1.6 declares ``"multipleOf": 0.1`` on charging
limits. With binary floats ``10.3 / 0.1`` is not an integer, so a valid limit would be
refused. Those constraints are taken out of the compiled schema and checked here with
:class:`decimal.Decimal` on the value's shortest repr, which is what a reader of the JSON
text expects.
"""

from __future__ import annotations

import enum
import importlib.util
import json
import pathlib
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

import fastjsonschema

from .errors import (
    ErrorKind,
    OcppError,
    error_for_kind,
)
from .versions import OcppVersion

Validator = Callable[[Any], Any]


class SchemaKind(enum.Enum):
    REQUEST = "request"
    RESPONSE = "response"
    SEND = "send"


_OCCURRENCE_RULES = frozenset({"required", "minItems", "maxItems", "minProperties", "maxProperties"})
_FORMAT_RULES = frozenset({"additionalProperties", "dependencies", "propertyNames"})
_MAX_DESCRIPTION = 255


def _package_root() -> pathlib.Path:
    spec = importlib.util.find_spec("ocpp")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the 'ocpp' package (OCA JSON schemas) is not installed")
    return pathlib.Path(next(iter(spec.submodule_search_locations)))


def schema_path(version: OcppVersion, action: str, kind: SchemaKind) -> pathlib.Path:
    folder = _package_root() / version.package_dir / "schemas"
    if kind is SchemaKind.SEND:
        name = action
    elif kind is SchemaKind.RESPONSE:
        name = action + "Response"
    elif version is OcppVersion.V16:
        name = action
    else:
        name = action + "Request"
    return folder / (name + ".json")


def actions_with_schemas(version: OcppVersion) -> frozenset[str]:
    """Every action the package has a request (or SEND) schema for."""
    folder = _package_root() / version.package_dir / "schemas"
    names = {p.stem for p in folder.glob("*.json")}
    actions: set[str] = set()
    for name in names:
        if name.endswith("Response"):
            continue
        if version is not OcppVersion.V16 and name.endswith("Request"):
            actions.add(name[: -len("Request")])
        else:
            actions.add(name)
    return frozenset(actions)


class _Compiled:
    __slots__ = ("fractional", "validate")

    def __init__(self, validate: Validator, fractional: list[tuple[tuple[str, ...], Decimal]]):
        self.validate = validate
        self.fractional = fractional


_cache: dict[tuple[OcppVersion, str, SchemaKind], _Compiled | None] = {}


def _strip_fractional(
    root: dict[str, Any],
    node: Any,
    path: tuple[str, ...],
    out: list[tuple[tuple[str, ...], Decimal]],
    depth: int = 0,
) -> None:
    """Remove non-integer ``multipleOf`` constraints, recording where they applied."""
    if depth > 32 or not isinstance(node, dict):
        return
    multiple = node.get("multipleOf")
    if isinstance(multiple, float) and not multiple.is_integer():
        del node["multipleOf"]
        out.append((path, Decimal(repr(multiple))))
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/definitions/"):
        target = root.get("definitions", {}).get(ref[len("#/definitions/") :])
        _strip_fractional(root, target, path, out, depth + 1)
    for key, sub in (node.get("properties") or {}).items():
        _strip_fractional(root, sub, (*path, key), out, depth + 1)
    items = node.get("items")
    if isinstance(items, dict):
        _strip_fractional(root, items, (*path, "*"), out, depth + 1)


def _load(version: OcppVersion, action: str, kind: SchemaKind) -> _Compiled | None:
    key = (version, action, kind)
    if key in _cache:
        return _cache[key]
    path = schema_path(version, action, kind)
    compiled: _Compiled | None
    if not path.is_file():
        compiled = None
    else:
        schema = json.loads(path.read_text(encoding="utf-8-sig"))
        # 2.1 schemas carry an "urn:" $id; references are all local ("#/definitions/..").
        schema.pop("$id", None)
        fractional: list[tuple[tuple[str, ...], Decimal]] = []
        _strip_fractional(schema, schema, (), fractional)
        # use_default=False: validating must never change the payload (no defaults filled in).
        compiled = _Compiled(fastjsonschema.compile(schema, use_default=False), fractional)
    _cache[key] = compiled
    return compiled


def has_schema(version: OcppVersion, action: str, kind: SchemaKind) -> bool:
    if not _is_action_name(action):
        return False
    return _load(version, action, kind) is not None


def compile_ahead(version: OcppVersion, actions: tuple[str, ...]) -> None:
    """Compile the request and response validators of ``actions`` now, not on first use.

    A first use compiles on the request path (up to ~130 ms for a 2.1 Authorize response or
    TransactionEvent request): a load generator does it before its clock starts, and the local
    stack's handler processes before they take messages (``local_stack.environment.warm_up``). The
    processor Lambda does not: compiling what every charger sends took ~0.6 s, which a cold start
    would add to its ~55 ms import (``bench cold-start``), for every new execution environment.
    """
    for action in actions:
        has_schema(version, action, SchemaKind.REQUEST)
        has_schema(version, action, SchemaKind.RESPONSE)


def _is_action_name(action: str) -> bool:
    # Guards the file lookup: an action is an identifier, never a path.
    return 0 < len(action) <= 64 and action.isascii() and action.isalnum()


def _values_at(data: Any, path: tuple[str, ...]) -> list[Any]:
    current = [data]
    for segment in path:
        nxt: list[Any] = []
        for value in current:
            if segment == "*":
                if isinstance(value, list):
                    nxt.extend(value)
            elif isinstance(value, dict) and segment in value:
                nxt.append(value[segment])
        current = nxt
    return current


def _check_fractional(compiled: _Compiled, payload: Any) -> None:
    for path, multiple in compiled.fractional:
        for value in _values_at(payload, path):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            try:
                ok = Decimal(repr(value)) % multiple == 0
            except (InvalidOperation, ValueError):
                ok = False
            if not ok:
                where = ".".join(("data", *path)).replace(".*", "[]")
                raise error_for_kind(ErrorKind.PROPERTY, f"{where} must be a multiple of {multiple}")


def _error_from(exc: fastjsonschema.JsonSchemaValueException) -> OcppError:
    rule = exc.rule or ""
    path = exc.path or []
    if rule in _OCCURRENCE_RULES:
        kind = ErrorKind.OCCURRENCE
    elif rule == "type":
        # The payload itself not being an object is a structural error.
        kind = ErrorKind.FORMAT if len(path) <= 1 else ErrorKind.TYPE
    elif rule in _FORMAT_RULES:
        kind = ErrorKind.FORMAT
    else:
        kind = ErrorKind.PROPERTY
    message = str(exc.message)
    if len(message) > _MAX_DESCRIPTION:
        message = message[: _MAX_DESCRIPTION - 3] + "..."
    return error_for_kind(kind, message)


def validate(version: OcppVersion, action: str, kind: SchemaKind, payload: Any) -> None:
    """Validate ``payload``; raise the :class:`OcppError` a CALLERROR would carry.

    An action without a schema raises ``NotImplementedAction``.
    """
    compiled = _cache.get((version, action, kind))  # fast path: already compiled
    if compiled is None:
        compiled = _load(version, action, kind) if _is_action_name(action) else None
    if compiled is None:
        raise error_for_kind(ErrorKind.NOT_IMPLEMENTED, f"No schema for {action} ({kind.value}) in {version.value}")
    try:
        compiled.validate(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _error_from(exc) from None
    except RecursionError:
        raise error_for_kind(ErrorKind.FORMAT, "Payload is nested too deeply") from None
    if compiled.fractional:
        _check_fractional(compiled, payload)
    if _deeper_than(payload, MAX_PAYLOAD_DEPTH):
        raise error_for_kind(ErrorKind.FORMAT, f"Payload is nested deeper than {MAX_PAYLOAD_DEPTH} levels")


#: Objects and arrays inside one another, the payload itself being level 1. The deepest OCPP
#: structure is 13 levels (ReportChargingProfiles); only free-form fields (``customData``, 2.x
#: DataTransfer ``data``) go further. The bound keeps every stored payload within DynamoDB's 32
#: nesting levels and every later step (copies, hooks) far from Python's recursion limit, so a
#: valid-looking payload is refused up front instead of failing half way and being retried.
MAX_PAYLOAD_DEPTH = 30


def _deeper_than(payload: Any, limit: int) -> bool:
    """Whether objects / arrays nest more than ``limit`` levels (recursing at most ``limit`` deep)."""
    kind = type(payload)
    return (kind is dict or kind is list) and _nests_more_than(payload, limit - 1)


def _nests_more_than(container: Any, levels: int) -> bool:
    for child in container.values() if type(container) is dict else container:
        kind = type(child)
        if (kind is dict or kind is list) and (levels == 0 or _nests_more_than(child, levels - 1)):
            return True
    return False


def validate_request(version: OcppVersion, action: str, payload: Any) -> None:
    validate(version, action, SchemaKind.REQUEST, payload)


def validate_response(version: OcppVersion, action: str, payload: Any) -> None:
    validate(version, action, SchemaKind.RESPONSE, payload)
