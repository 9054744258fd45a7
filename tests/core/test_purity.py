"""``ocpp_core`` is pure (DESIGN §4): no AWS SDK, no event loop, no environment, no clock or
randomness of its own. Time and ids come in through the ``Clock`` and ``IdSource`` ports.

Checked on the source (AST of every module), so a forbidden use is caught even in a code path
no test runs, and once at run time (importing the package pulls in none of those modules).
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

import ocpp_core

PACKAGE = pathlib.Path(ocpp_core.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))

#: Modules ``ocpp_core`` must never import: I/O, AWS, concurrency, randomness, environment.
FORBIDDEN_MODULES = frozenset(
    {
        "aioboto3",
        "aiobotocore",
        "asyncio",
        "aws_lambda_powertools",
        "awscrt",
        "awsiot",
        "boto3",
        "botocore",
        "concurrent",
        "http",
        "moto",
        "multiprocessing",
        "os",
        "random",
        "requests",
        "secrets",
        "select",
        "selectors",
        "signal",
        "socket",
        "ssl",
        "subprocess",
        "sys",
        "threading",
        "urllib.request",
        "uuid",
        "websockets",
    }
)
#: Everything ``ocpp_core`` may import. A new import must be added here on purpose, after
#: checking it does no I/O, reads no clock and draws no random numbers.
ALLOWED_MODULES = frozenset(
    {
        "__future__",
        "collections",
        "copy",  # deepcopy of a record read, changed and written back under a version check
        "dataclasses",
        "datetime",  # conversions only: now/utcnow/today are refused below
        "decimal",
        "enum",
        "fastjsonschema",
        "functools",
        "hashlib",
        "hmac",
        "importlib.util",  # find_spec locates the ocpp package's schema files
        "itertools",
        "json",
        "logging",
        "math",
        "pathlib",
        "re",
        "string",
        "time",  # conversions only: every clock read is refused below
        "typing",
        "urllib.parse",
    }
)
#: Attribute reads that consult the wall clock, the environment or a random source.
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        ("time", "time"),
        ("time", "time_ns"),
        ("time", "monotonic"),
        ("time", "monotonic_ns"),
        ("time", "perf_counter"),
        ("time", "perf_counter_ns"),
        ("time", "process_time"),
        ("time", "sleep"),
        ("datetime", "now"),
        ("datetime", "utcnow"),
        ("datetime", "today"),
        ("date", "today"),
        ("os", "environ"),
        ("os", "getenv"),
        ("os", "urandom"),
    }
)
#: ``time`` functions that read the clock when called without their time argument: name -> its position.
CLOCK_WITHOUT_ARGUMENT = {"gmtime": 0, "localtime": 0, "ctime": 0, "asctime": 0, "strftime": 1}
FORBIDDEN_BUILTINS = frozenset({"input", "breakpoint", "exec", "eval", "__import__"})


def _is_forbidden_module(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_MODULES)


def _is_allowed_module(name: str) -> bool:
    return any(name == ok or name.startswith(ok + ".") for ok in ALLOWED_MODULES) or name.split(".")[0] in {
        "collections",
        "typing",
    }


def violations(source: str, filename: str = "<source>") -> list[str]:
    """Every impure construct in ``source``, as ``file:line: what``."""
    tree = ast.parse(source, filename)
    found: list[str] = []
    # names bound by ``from time import time`` and the like: name -> (module, attribute)
    imported_names: dict[str, tuple[str, str]] = {}

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{filename}:{getattr(node, 'lineno', '?')}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _is_forbidden_module(alias.name) or not _is_allowed_module(alias.name):
                    report(node, f"import {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: inside ocpp_core
                continue
            module = node.module or ""
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if _is_forbidden_module(module) or _is_forbidden_module(full) or not _is_allowed_module(module):
                    report(node, f"from {module} import {alias.name}")
                imported_names[alias.asname or alias.name] = (module.rsplit(".", 1)[-1], alias.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, (ast.Name, ast.Attribute)):
            owner = node.value.id if isinstance(node.value, ast.Name) else node.value.attr
            owner = imported_names.get(owner, (None, owner))[1]
            if (owner, node.attr) in FORBIDDEN_ATTRIBUTES:
                report(node, f"{owner}.{node.attr}")
        elif isinstance(node, ast.Name) and node.id in imported_names:
            if imported_names[node.id] in FORBIDDEN_ATTRIBUTES:
                module, attribute = imported_names[node.id]
                report(node, f"{module}.{attribute}")

        if isinstance(node, ast.Call):
            func = node.func
            name = None
            if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "time":
                name = func.attr
            elif isinstance(func, ast.Name) and imported_names.get(func.id, ("", ""))[0] == "time":
                name = imported_names[func.id][1]
            if name in CLOCK_WITHOUT_ARGUMENT and len(node.args) <= CLOCK_WITHOUT_ARGUMENT[name] and not node.keywords:
                report(node, f"time.{name}() reads the clock")
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_BUILTINS:
                report(node, f"{func.id}()")
    return found


def test_the_package_has_modules() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in MODULES}
    assert {
        "processor.py",
        "framing.py",
        "handlers/transactions.py",
        "handlers/provisioning.py",
        "memory_store.py",
    } <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_module_is_pure(path: pathlib.Path) -> None:
    assert violations(path.read_text(encoding="utf-8"), path.name) == []


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("import boto3", "import boto3"),
        ("import botocore.config", "import botocore.config"),
        ("from asyncio import sleep", "from asyncio import sleep"),
        ("import random", "import random"),
        ("import uuid", "import uuid"),
        ("import secrets", "import secrets"),
        ("import os", "import os"),
        ("from os import environ", "from os import environ"),
        ("from urllib import request", "from urllib import request"),
        ("import socket", "import socket"),
        ("import threading", "import threading"),
        ("import sqlite3", "import sqlite3"),  # not on the allow list
        ("import time\nnow = time.time()", "time.time"),
        ("import time\nnow = time.monotonic_ns()", "time.monotonic_ns"),
        ("from time import time\nnow = time()", "time.time"),
        ("from time import perf_counter as pc\nx = pc()", "time.perf_counter"),
        ("import time\nt = time.gmtime()", "time.gmtime() reads the clock"),
        ("import time\nt = time.strftime('%Y')", "time.strftime() reads the clock"),
        ("from datetime import datetime\nnow = datetime.now()", "datetime.now"),
        ("import datetime\nnow = datetime.datetime.utcnow()", "datetime.utcnow"),
        ("from datetime import date\nd = date.today()", "date.today"),
        ("x = __import__('os')", "__import__()"),
    ],
)
def test_the_checker_catches(source: str, what: str) -> None:
    found = violations(source)
    assert any(f": {what}" in line for line in found), found


@pytest.mark.parametrize(
    "source",
    [
        "import time\nt = time.gmtime(1700000000)",  # a conversion of a given instant
        "from datetime import UTC, datetime\nd = datetime.fromisoformat('2025-01-01').replace(tzinfo=UTC)",
        "from . import schemas\nfrom .ports import Clock",
        "import json, re, math",
        "from collections.abc import Mapping",
    ],
)
def test_the_checker_allows(source: str) -> None:
    assert violations(source) == []


def test_importing_the_package_loads_no_impure_module() -> None:
    code = (
        "import sys\n"
        "import ocpp_core, ocpp_core.calls, ocpp_core.passwords, ocpp_core.keys, ocpp_core.handlers\n"
        "from ocpp_core import schemas\n"
        "from ocpp_core.versions import OcppVersion\n"
        "schemas.validate(OcppVersion.V16, 'Heartbeat', schemas.SchemaKind.REQUEST, {})\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = set(
        subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    )
    # os and threading are loaded by the standard library itself (logging, pathlib): not checked here.
    never = {"boto3", "botocore", "asyncio", "random", "secrets", "uuid", "socket", "subprocess", "awscrt", "moto"}
    assert loaded & never == set()
