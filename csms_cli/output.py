"""Printing answers: aligned tables and key/value blocks for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, TextIO


def cell(value: Any) -> str:
    """One table cell: ``-`` for nothing, ``yes``/``no``, compact JSON for structures."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value).replace("\n", " ")


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], out: TextIO) -> None:
    texts = [[cell(v) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in texts:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    lines = [list(headers), *texts]
    for row in lines:
        out.write("  ".join(text.ljust(widths[i]) for i, text in enumerate(row)).rstrip() + "\n")


def key_values(pairs: Iterable[tuple[str, Any]], out: TextIO) -> None:
    items = [(k, cell(v)) for k, v in pairs]
    width = max((len(k) for k, _ in items), default=0)
    for key, text in items:
        out.write(f"{key.ljust(width)}  {text}\n")


def as_json(value: Any, out: TextIO) -> None:
    out.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def show(args: Any, answer: Any, out: TextIO, printer: Any) -> None:
    """The API's JSON answer with ``--json``, else ``printer``'s rendering of it."""
    if args.json:
        as_json(answer, out)
    else:
        printer(answer, out)
