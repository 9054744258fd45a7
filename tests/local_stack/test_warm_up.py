"""A handler process of the local stack compiles what every charger sends before its first frame."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)

# A fresh interpreter: its validator cache starts empty, whatever this one has compiled.
COUNT_COMPILES = textwrap.dedent(
    """
    import json
    import fastjsonschema
    from ocpp_core import schemas
    from ocpp_core.errors import OcppError
    from ocpp_core.versions import FREQUENT_ACTIONS, OcppVersion
    from local_stack.environment import warm_up

    compiles = []
    real = fastjsonschema.compile
    fastjsonschema.compile = lambda *a, **k: compiles.append(1) or real(*a, **k)

    def validate_all(pairs):
        before = len(compiles)
        for version, action in pairs:
            for check in (schemas.validate_request, schemas.validate_response):
                try:
                    check(version, action, {})
                except OcppError:
                    pass  # an empty payload is refused: only the compiling counts here
        return len(compiles) - before

    rare = validate_all([(OcppVersion.V16, "DataTransfer")])
    warm_up()
    frequent = validate_all([(v, a) for v, actions in FREQUENT_ACTIONS.items() for a in actions])
    print(json.dumps({"rare": rare, "frequent": frequent}))
    """
)


def test_after_warm_up_the_frequent_actions_compile_nothing_and_a_rare_one_still_does() -> None:
    out = subprocess.run(
        [sys.executable, "-c", COUNT_COMPILES], cwd=ROOT, capture_output=True, text=True, timeout=50, check=True
    )
    counts = json.loads(out.stdout.strip().splitlines()[-1])
    assert counts["rare"] == 2  # the counting sees compiles: a request and a response schema
    assert counts["frequent"] == 0
