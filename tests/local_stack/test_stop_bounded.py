"""Every stop of ``make run`` is bounded (DESIGN §5: no process, no bound port within 10 s).

Bursts of signals (the terminal's SIGINT to the process group and make's SIGTERM, several
times), a SIGKILL of the stack itself (its children must not survive it) and a Ctrl-C while a
part is still starting.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from local_stack.broker import BINARY_VARIABLE

from .support import StackRun
from .test_shutdown import ALL_PORTS, assert_stopped_cleanly

pytestmark = pytest.mark.timeout(180)

#: DESIGN §5.
STOP_WITHIN = 10.0


def wait_for(condition: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def start_ready(run: StackRun) -> None:
    assert run.start().wait(90, until=run.ready) is None, run.output_tail()
    assert run.part_names() == {"mosquitto", "moto_server", "fargate_bridge"}


@pytest.mark.parametrize("rounds", [1, 5])
def test_sigint_and_sigterm_back_to_back_stop_within_10_s(stack_run: StackRun, rounds: int) -> None:
    start_ready(stack_run)
    assert stack_run.process is not None
    started = time.monotonic()
    for _ in range(rounds):  # Ctrl-C to the group and make's SIGTERM to the stack, at once
        os.killpg(stack_run.process.pid, signal.SIGINT)
        stack_run.process.send_signal(signal.SIGTERM)
        time.sleep(0.01)
    code = stack_run.wait(STOP_WITHIN + 5)
    elapsed = time.monotonic() - started
    assert elapsed < STOP_WITHIN, f"stopped after {elapsed:.1f} s:\n{stack_run.output_tail()}"
    assert code == 0, stack_run.output_tail()
    assert_stopped_cleanly(stack_run)


def test_signals_keep_coming_during_the_stop(stack_run: StackRun) -> None:
    start_ready(stack_run)
    assert stack_run.process is not None
    started = time.monotonic()
    while stack_run.process.poll() is None and time.monotonic() - started < STOP_WITHIN + 5:
        for signum in (signal.SIGINT, signal.SIGTERM):
            try:
                stack_run.process.send_signal(signum)
            except ProcessLookupError:
                break
        time.sleep(0.002)
    code = stack_run.wait(5)
    assert time.monotonic() - started < STOP_WITHIN, stack_run.output_tail()
    assert code == 0, stack_run.output_tail()
    assert_stopped_cleanly(stack_run)


def test_a_killed_stack_leaves_no_child_and_no_port_and_the_next_one_starts(
    stack_run: StackRun, tmp_path: Path
) -> None:
    start_ready(stack_run)
    assert stack_run.process is not None
    stack_run.process.kill()  # SIGKILL: none of the stack's code runs
    stack_run.process.wait(5)
    assert wait_for(lambda: stack_run.strays() == [] and stack_run.busy_ports(*ALL_PORTS) == [], STOP_WITHIN), (
        f"left behind: {stack_run.strays()} {stack_run.busy_ports(*ALL_PORTS)}"
    )

    again = StackRun(tmp_path / "again", ports=dict(stack_run.ports))
    try:
        start_ready(again)  # same ports: no "port in use"
        again.interrupt()
        assert again.wait(STOP_WITHIN + 5) == 0, again.output_tail()
        assert_stopped_cleanly(again)
    finally:
        again.cleanup()


def test_ctrl_c_while_a_part_is_still_starting_stops_within_seconds(stack_run: StackRun) -> None:
    # A "mosquitto" that never listens: the stack waits for its port (10 s) when Ctrl-C comes.
    fake = stack_run.tmp_path / "bin" / "mosquitto"
    fake.parent.mkdir()
    fake.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(120)\n")
    fake.chmod(0o755)
    stack_run.overrides[BINARY_VARIABLE] = str(fake)
    assert stack_run.start().wait(30, until=lambda: "mosquitto" in stack_run.part_names()) is None, (
        stack_run.output_tail()
    )
    stack_run.interrupt()
    started = time.monotonic()
    code = stack_run.wait(STOP_WITHIN + 5)
    assert time.monotonic() - started < 5, stack_run.output_tail()  # not after the 10 s wait for the port
    assert code == 0, stack_run.output_tail()
    assert not stack_run.ready()
    assert_stopped_cleanly(stack_run)
