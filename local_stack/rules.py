"""A local stand-in for AWS IoT topic rules: the same SQL, the same event shape.

Evaluates the subset of the AWS IoT SQL (version 2016-03-23) that ``lambdas.rules`` uses:
``SELECT <items> FROM '<topic filter>'`` where an item is ``*``, ``topic()``,
``topic(n)``, ``timestamp()`` or ``clientid()``, each optionally ``AS name``. Anything
else is refused when the rule is loaded, so a rule that would not run the same way here
fails loudly instead of producing a different event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_SQL = re.compile(r"^\s*SELECT\s+(?P<items>.+?)\s+FROM\s+'(?P<topic>[^']+)'\s*$", re.IGNORECASE | re.DOTALL)
_ITEM = re.compile(r"^(?P<expr>\*|[a-z]+\(\s*\d*\s*\))(?:\s+AS\s+(?P<alias>[A-Za-z_][A-Za-z0-9_]*))?$", re.IGNORECASE)
_FUNCTION = re.compile(r"^(?P<name>[a-z]+)\(\s*(?P<arg>\d*)\s*\)$", re.IGNORECASE)


class RuleSqlError(ValueError):
    pass


def topic_matches(topic_filter: str, topic: str) -> bool:
    """MQTT filter matching with ``+`` (one level) and ``#`` (the rest)."""
    f_parts, t_parts = topic_filter.split("/"), topic.split("/")
    for i, part in enumerate(f_parts):
        if part == "#":
            return True
        if i >= len(t_parts) or (part != "+" and part != t_parts[i]):
            return False
    return len(f_parts) == len(t_parts)


Evaluator = Callable[[str, Any, int, str], Any]


def _function(name: str, arg: str) -> Evaluator:
    name = name.lower()
    if name == "topic":
        if arg == "":
            return lambda topic, payload, now, client: topic
        index = int(arg)
        if index < 1:
            raise RuleSqlError(f"topic({arg}): levels count from 1")
        return lambda topic, payload, now, client: (
            topic.split("/")[index - 1] if index <= len(topic.split("/")) else None
        )
    if name == "timestamp" and arg == "":
        return lambda topic, payload, now, client: now
    if name == "clientid" and arg == "":
        return lambda topic, payload, now, client: client
    raise RuleSqlError(f"unsupported function {name}({arg}) in the local rule emulator")


@dataclass(frozen=True)
class CompiledRule:
    sql: str
    topic_filter: str
    _items: tuple[tuple[str | None, Evaluator | None], ...]

    def matches(self, topic: str) -> bool:
        return topic_matches(self.topic_filter, topic)

    def evaluate(self, topic: str, payload: bytes, now_ms: int, client_id: str = "") -> dict[str, Any]:
        """The event the rule's action receives for a message (AWS: the Lambda event)."""
        try:
            body: Any = json.loads(payload)
        except (ValueError, RecursionError):
            body = None
        event: dict[str, Any] = {}
        for alias, evaluator in self._items:
            if evaluator is None:  # "*": the JSON payload's fields
                if isinstance(body, dict):
                    event.update(body)
                continue
            value = evaluator(topic, body, now_ms, client_id)
            if value is not None and alias is not None:
                event[alias] = value
        return event


def compile_rule(sql: str) -> CompiledRule:
    match = _SQL.match(sql)
    if match is None:
        raise RuleSqlError(f"not a SELECT ... FROM '<topic>' rule: {sql!r}")
    items: list[tuple[str | None, Evaluator | None]] = []
    for raw in (part.strip() for part in match.group("items").split(",")):
        item = _ITEM.match(raw)
        if item is None:
            raise RuleSqlError(f"unsupported select item {raw!r} in the local rule emulator")
        expr, alias = item.group("expr"), item.group("alias")
        if expr == "*":
            items.append((None, None))
            continue
        fn = _FUNCTION.match(expr)
        assert fn is not None
        items.append((alias or fn.group("name").lower(), _function(fn.group("name"), fn.group("arg"))))
    return CompiledRule(sql=sql, topic_filter=match.group("topic"), _items=tuple(items))
