"""The stack's children die with it (parent-death signal, or the watchdog elsewhere) and stop in bounded time."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from local_stack.children import HAVE_PDEATHSIG, spawn, stop_process

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.timeout(60)

PARENT = textwrap.dedent(
    """
    import sys, time
    from local_stack.children import spawn
    child = spawn([sys.executable, "-c", "import time; time.sleep(60)"], watchdog=sys.argv[1] == "watchdog")
    print(child.pid, flush=True)
    time.sleep(60)
    """
)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize(
    "mechanism",
    [
        pytest.param("pdeathsig", marks=pytest.mark.skipif(not HAVE_PDEATHSIG, reason="Linux only")),
        "watchdog",
    ],
)
def test_a_child_dies_when_its_parent_is_killed(mechanism: str) -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT, mechanism], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child_pid = None
    try:
        assert parent.stdout is not None
        child_pid = int(parent.stdout.readline())
        assert not gone(child_pid)
        parent.kill()  # SIGKILL: none of the parent's code runs
        parent.wait(5)
        assert wait_until(lambda: gone(child_pid), 5), "the child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(5)
        if child_pid is not None and not gone(child_pid):
            psutil.Process(child_pid).kill()


def test_stop_process_escalates_to_sigkill_after_its_timeout(caplog: pytest.LogCaptureFixture) -> None:
    stubborn = spawn(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    )
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    started = time.monotonic()
    stop_process(stubborn, "stubborn", 0.5)
    assert time.monotonic() - started < 3
    assert stubborn.returncode == -9
    assert "stubborn did not stop within 0.5 s: killing it" in caplog.text


def test_stop_process_takes_sigterm_when_the_child_obeys() -> None:
    child = spawn([sys.executable, "-c", "import time; time.sleep(60)"])
    stop_process(child, "obedient", 5)
    assert child.returncode == -15
