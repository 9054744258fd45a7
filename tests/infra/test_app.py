"""app.py: nothing is built at import, bad context fails with one line, before any construct."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import aws_cdk as cdk
import pytest

import app as cdk_app
from infra.config import LOG_RETENTION_DAYS, ConfigError
from infra.stack import RETENTION_BY_DAYS


def test_importing_the_app_builds_nothing() -> None:
    assert not [value for value in vars(cdk_app).values() if isinstance(value, cdk.App)]


def test_every_accepted_log_retention_maps_to_cdk() -> None:
    assert set(RETENTION_BY_DAYS) == LOG_RETENTION_DAYS


def test_cdk_json_runs_the_app_with_python() -> None:
    config = json.loads((cdk_app.REPO_ROOT / "cdk.json").read_text())
    assert config["app"] == "python3 app.py"
    assert config["context"]["stage"] == "dev"


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"stage": "qa"}, "stage=qa"),
        ({"min_tasks": "-2"}, "min_tasks=-2"),
        ({"max_tasks": "lots"}, "max_tasks=lots"),
        ({"domain_name": "bad_domain", "certificate_arn": "x"}, "domain_name=bad_domain"),
        ({"unknown_chargers": "sometimes"}, "unknown_chargers=sometimes"),
    ],
)
def test_build_app_refuses_bad_context_before_building(override: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        cdk_app.build_app({**cdk_app.load_cdk_json_context(), **override})


def test_main_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    # As the CDK CLI runs it: `-c key=value` arrives in CDK_CONTEXT_JSON, read at process start.
    env = {
        **os.environ,
        "CDK_CONTEXT_JSON": json.dumps({"min_tasks": "-1"}),
        "CDK_OUTDIR": str(tmp_path),
        "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    }
    done = subprocess.run(
        [sys.executable, "app.py"],
        cwd=Path(cdk_app.__file__).parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: invalid context value min_tasks=-1: expected a whole number from 1 to 1000"
    )
    assert not list(tmp_path.iterdir()), "nothing synthesized"


def _older_pythons() -> list[str]:
    """One interpreter from 3.8 to 3.10 on this machine (on PATH, or pyenv's), if there is one."""
    import glob
    import shutil

    found = [p for p in (shutil.which(f"python3.{minor}") for minor in (10, 9, 8)) if p]
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for minor in (10, 9, 8):
        found += sorted(glob.glob(os.path.join(pyenv, "versions", f"3.{minor}.*", "bin", "python")))
    for path in found:
        probe = subprocess.run(
            [path, "-c", "import sys; print((3, 8) <= sys.version_info < (3, 11))"], capture_output=True, text=True
        )
        if probe.returncode == 0 and probe.stdout.strip() == "True":
            return [path]
    return []


def test_an_older_python_gets_one_line_before_any_import() -> None:
    # Simulated with this interpreter: app.py decides on sys.version_info before importing anything else.
    code = (
        "import runpy, sys; sys.version_info = (3, 10, 14, 'final', 0); runpy.run_path('app.py', run_name='__main__')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cdk_app.REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "error: Python 3.11 or newer is needed to synthesize (this is Python 3.10)"


@pytest.mark.parametrize(
    "python", _older_pythons() or [pytest.param(None, marks=pytest.mark.skip("no Python < 3.11 here"))]
)
def test_a_real_older_python_gets_the_same_line(python: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run(
        [python, "app.py"], cwd=cdk_app.REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: Python 3.11 or newer is needed to synthesize (this is Python 3.")
