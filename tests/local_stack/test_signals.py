"""Stop signals never hang the stack: the handler takes no lock, however signals nest.

The hang seen in production (py-spy: the SIGTERM handler blocked in ``threading.Event.set()``)
needs a second signal to land while the first handler holds the Event's lock. Here that timing
is forced, not hoped for: a trace function sends another SIGTERM at every line the handler (and
whatever it calls) executes, so the nested handler always runs in the middle of the outer one.
Each case runs in a subprocess with a bounded wait.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from local_stack.signals import StopSignal

ROOT = Path(__file__).resolve().parents[2]

NESTED = textwrap.dedent(
    """
    import os, signal, sys, threading

    if sys.argv[1] == "stop-signal":
        from local_stack.signals import StopSignal
        stop = StopSignal().install()
    else:  # the handler the stack had: Event.set() takes the Event's condition lock
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
    handler = signal.getsignal(signal.SIGTERM)
    handler_code = getattr(handler, "__func__", handler).__code__
    sent = 0

    def in_handler(frame, event, arg):
        global sent
        if event == "line" and sent < 20:
            sent += 1
            os.kill(os.getpid(), signal.SIGTERM if sent % 2 else signal.SIGINT)
        return in_handler

    def tracer(frame, event, arg):
        caller = frame
        while caller is not None:  # the handler's frame, or one it called
            if caller.f_code is handler_code:
                return in_handler
            caller = caller.f_back
        return None

    sys.settrace(tracer)
    os.kill(os.getpid(), signal.SIGTERM)
    stop.wait(10)
    if sys.argv[1] == "stop-signal":  # let every signal sent be handled, each traced in turn
        import time
        deadline = time.monotonic() + 5
        while stop.count < sent + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        print("handled", stop.count, flush=True)
    sys.settrace(None)
    print("sent", sent, flush=True)
    """
)


def run_nested(variant: str, timeout: float) -> subprocess.CompletedProcess[str] | None:
    """None if it hung for ``timeout`` seconds (then killed)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", NESTED, variant], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_signals_nested_in_the_handler_never_block_it() -> None:
    result = run_nested("stop-signal", timeout=10)
    assert result is not None, "the stop signal handler hung on a nested signal"
    assert result.returncode == 0, result.stderr
    # A trace function runs untraced, so the nested handlers (run inside it, while the outer one is
    # mid-way) send no more signals: two sent, three handled, none lost.
    words = result.stdout.split()
    assert words[0::2] == ["handled", "sent"], result.stdout + result.stderr
    handled, sent = int(words[1]), int(words[3])
    assert sent >= 2 and handled == sent + 1, result.stdout


def test_the_harness_catches_a_handler_that_takes_a_lock() -> None:
    # The old handler (Event.set()) deadlocks under the same nesting: the harness does find the bug.
    assert run_nested("event", timeout=3) is None


def test_wait_returns_on_a_signal_and_times_out_without_one() -> None:
    with StopSignal() as stop:
        started = time.monotonic()
        assert stop.wait(0.2) is False
        assert 0.15 < time.monotonic() - started < 2
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5) is True
        os.kill(os.getpid(), signal.SIGINT)  # a second one: counted, no KeyboardInterrupt
        assert stop.wait(5) is True
        assert stop.received == signal.SIGTERM and stop.count >= 2
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_wait_wakes_promptly_from_another_process(signum: int) -> None:
    script = textwrap.dedent(
        """
        import os
        from local_stack.signals import StopSignal
        stop = StopSignal().install()
        print("ready", flush=True)
        assert stop.wait(20)
        print("woke", flush=True)
        os._exit(0)  # as local_stack does: the rest of the burst must not turn into the exit status
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for _ in range(50):  # a burst, as a terminal and make send together
            proc.send_signal(signum)
        assert proc.wait(timeout=5) == 0
        assert proc.stdout.read() == "woke\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
