"""``python -m simulator`` as a user runs it: help, a scenario, clear failures."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from local_stack.ports import free_port

from .fake_csms import FakeCsms
from .helpers import run

ROOT = Path(__file__).resolve().parents[2]


async def _simulator(*args: str, timeout: float = 30.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("mode", [None, "scenario", "load"])
def test_help(mode: str | None) -> None:
    args = [sys.executable, "-m", "simulator", *([mode] if mode else []), "--help"]
    result = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "usage: python -m simulator" in result.stdout
    if mode == "scenario":
        assert "--stay" in result.stdout and "--password" in result.stdout and "exit codes" in result.stdout
    if mode == "load":
        assert "--rate-per-charger" in result.stdout and "--json" in result.stdout and "mixed" in result.stdout


def test_scenario_run_prints_every_frame() -> None:
    async def body() -> None:
        async with FakeCsms(password="pw") as csms:
            code, out, err = await _simulator(
                "scenario", "--id", "CLI-1", "--version", "1.6", "--url", csms.url, "--password", "pw",
                "--sample-interval", "0", "--samples", "2",
            )  # fmt: skip
            assert csms.violations == []
        assert code == 0, err
        lines = out.splitlines()
        sent = [line for line in lines if line.startswith("-> [2,")]
        received = [line for line in lines if line.startswith("<- [3,")]
        assert len(sent) == len(received) == 9
        assert '"BootNotification"' in sent[0] and '"StopTransaction"' in sent[-2]
        assert "session completed" in err

    run(body)


def test_scenario_handshake_refused() -> None:
    async def body() -> None:
        async with FakeCsms(password="pw") as csms:
            code, out, err = await _simulator("scenario", "--id", "CLI-2", "--url", csms.url)
        assert code == 3
        assert out == ""
        [line] = err.strip().splitlines()
        assert line.startswith("error: could not connect to ws://") and "HTTP 401" in line

    run(body)


def test_scenario_nothing_listening() -> None:
    async def body() -> None:
        url = f"ws://127.0.0.1:{free_port()}/ocpp"
        code, _, err = await _simulator("scenario", "--id", "CLI-3", "--url", url)
        assert code == 3
        [line] = err.strip().splitlines()
        assert "connection refused" in line

    run(body)


def test_scenario_rejected_boot() -> None:
    async def body() -> None:
        async with FakeCsms(boot_status="Rejected") as csms:
            code, out, err = await _simulator("scenario", "--id", "CLI-4", "--version", "2.1", "--url", csms.url)
        assert code == 1
        assert '"BootNotification"' in out
        [line] = err.strip().splitlines()
        assert "rejected BootNotification" in line

    run(body)


def test_load_json_summary() -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            code, out, err = await _simulator(
                "load", "--chargers", "3", "--duration", "1", "--rate-per-charger", "2", "--version", "mixed",
                "--url", csms.url, "--json", "--no-progress",
            )  # fmt: skip
        assert code == 0, err
        summary = json.loads(out)
        assert summary["connected"] == 3 and summary["errors"] == 0
        assert {"p50_ms", "p95_ms", "p99_ms", "max_ms", "calls_per_s", "per_action"} <= set(summary)

    run(body)


def test_usage_errors_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "load", "--chargers", "0"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 2 and "must be at least 1" in result.stderr
