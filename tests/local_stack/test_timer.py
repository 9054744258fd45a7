"""The local outbox timer: runs its function again and again, survives it raising, stops promptly,
and the local stack starts it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from local_stack.stack import StackError, StackSettings
from local_stack.timer import DEFAULT_TIMER_INTERVAL_S, TIMER_INTERVAL_VARIABLE, PeriodicTimer

from .support import StackRun

pytestmark = pytest.mark.timeout(30)


class Counting:
    """A fake run: counts its calls; raises for the first ``failures`` of them; may block."""

    def __init__(self, failures: int = 0, block: threading.Event | None = None):
        self.calls = 0
        self.failures = failures
        self.block = block
        self.entered = threading.Event()

    def __call__(self) -> dict[str, int]:
        self.calls += 1
        self.entered.set()
        if self.block is not None:
            self.block.wait(10)
        if self.calls <= self.failures:
            raise RuntimeError(f"store unavailable ({self.calls})")
        return {"timedOut": 0, "sent": 0}


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def timer_threads(name: str) -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == name]


def test_the_thread_calls_the_function_repeatedly() -> None:
    run = Counting()
    timer = PeriodicTimer(run, interval_s=0.02, name="timer-repeat").start()
    try:
        assert timer.running
        assert wait_until(lambda: run.calls >= 5), f"only {run.calls} runs"
        assert timer.failures == 0
    finally:
        timer.stop(2)


def test_a_raising_function_is_logged_and_the_runs_go_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="local_stack.timer")
    run = Counting(failures=3)
    timer = PeriodicTimer(run, interval_s=0.02, name="timer-raises").start()
    try:
        assert wait_until(lambda: run.calls >= 6), f"the timer stopped after {run.calls} runs"
        assert timer.failures == 3 and timer.running
    finally:
        timer.stop(2)
    failed = [r for r in caplog.records if "run failed" in r.getMessage()]
    assert len(failed) == 3
    # the traceback once, then one line per repeated failure, and a line when it recovers
    assert [bool(r.exc_info) for r in failed] == [True, False, False]
    assert "store unavailable (1)" in caplog.text
    assert any("running again" in r.getMessage() for r in caplog.records)


def test_stop_is_prompt_and_leaves_no_thread() -> None:
    run = Counting()
    timer = PeriodicTimer(run, interval_s=3600, name="timer-stop").start()  # waiting for its first run
    started = time.monotonic()
    timer.stop(2)
    assert time.monotonic() - started < 0.5
    assert not timer.running and timer_threads("timer-stop") == []
    assert run.calls == 0


def test_stop_is_bounded_by_its_timeout_even_while_a_run_hangs(caplog: pytest.LogCaptureFixture) -> None:
    release = threading.Event()
    run = Counting(block=release)
    timer = PeriodicTimer(run, interval_s=0.01, name="timer-hangs").start()
    try:
        assert run.entered.wait(5)
        started = time.monotonic()
        timer.stop(0.2)
        assert time.monotonic() - started < 1
        assert "still busy" in caplog.text
    finally:
        release.set()
    # the run in flight finishes; no run starts after the stop
    assert wait_until(lambda: not timer.running)
    assert run.calls == 1


def test_interval_zero_means_no_thread() -> None:
    run = Counting()
    timer = PeriodicTimer(run, interval_s=0, name="timer-off").start()
    assert not timer.running and timer_threads("timer-off") == []
    timer.stop(1)  # harmless
    assert run.calls == 0


def test_the_interval_is_a_stack_setting() -> None:
    assert StackSettings.from_env({}).timer_interval_s == DEFAULT_TIMER_INTERVAL_S == 2.0
    assert StackSettings.from_env({TIMER_INTERVAL_VARIABLE: "0.5"}).timer_interval_s == 0.5
    assert StackSettings.from_env({TIMER_INTERVAL_VARIABLE: "0"}).timer_interval_s == 0
    for bad in ("soon", "-1"):
        with pytest.raises(StackError, match=TIMER_INTERVAL_VARIABLE):
            StackSettings.from_env({TIMER_INTERVAL_VARIABLE: bad})


@pytest.mark.timeout(120)
def test_the_local_stack_runs_the_outbox_timer(stack_run: StackRun) -> None:
    stack_run.overrides[TIMER_INTERVAL_VARIABLE] = "0.2"
    assert stack_run.start().wait(90, until=stack_run.ready) is None, stack_run.output_tail()
    time.sleep(1.5)  # some runs of lambdas.timer.handle on the stack's own dependencies
    output = stack_run.stdout + stack_run.stderr
    assert "outbox timer: call timeouts and queued calls every 0.2 s" in output, output
    assert "outbox-timer: run failed" not in output, output


@pytest.mark.parametrize("bad", ["0", "-1", "many", "257"])
def test_a_wrong_number_of_emulator_workers_is_refused_as_a_count_not_a_port(bad: str) -> None:
    with pytest.raises(StackError, match=r"OCPP_EMULATOR_WORKERS=.* is not a number of worker threads"):
        StackSettings.from_env({"OCPP_EMULATOR_WORKERS": bad})
    assert StackSettings.from_env({"OCPP_EMULATOR_WORKERS": "256"}).emulator_workers == 256
    with pytest.raises(StackError, match=r"OCPP_API_PORT='x' is not a port number"):
        StackSettings.from_env({"OCPP_API_PORT": "x"})
