"""The stack's child processes (mosquitto, moto, the bridge): they die with the stack, and stop in bounded time.

* Children stay in the stack's process group, so whatever signals the group (``kill -- -PGID``,
  a hang-up) reaches them too. Except Ctrl-C: they start with SIGINT blocked, because the
  terminal's SIGINT to the group is the stack's to handle (it stops the parts in order, the
  bridge before the broker it drains to), a Python child hit while still starting prints a
  ``KeyboardInterrupt`` traceback instead of stopping, and the bridge takes a second SIGINT
  as a KeyboardInterrupt. Blocked rather than ignored: a handler the child installs (the
  bridge and mosquitto install one) does not undo a blocked signal mask, which execve keeps
  (https://man7.org/linux/man-pages/man7/signal.7.html). SIGTERM stops them as before.
* A SIGKILL of the stack runs none of its code, so each child also gets a parent-death signal:
  on Linux ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` in the child between fork and exec (it holds
  across exec, also for a binary such as mosquitto; https://man7.org/linux/man-pages/man2/prctl.2.html).
  The kernel sends it when the *thread* that forked exits, so children are forked from the main
  thread (``LocalStack.start`` runs there), which lives as long as the process. SIGKILL rather
  than SIGTERM: an orphan has no one left to stop it in order (its broker and moto die in the
  same instant), and its ports must be free for the next ``make run`` at once.
* Elsewhere (macOS has no PDEATHSIG) a small watchdog process per child (``python -m
  local_stack.children PARENT CHILD``) polls for the stack and kills the child when it is gone.
* :func:`stop_process` asks with SIGTERM and escalates to SIGKILL after its timeout.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

logger = logging.getLogger("local_stack")

#: <linux/prctl.h>
PR_SET_PDEATHSIG = 1
#: How often a watchdog looks for its parent (the bound on how long an orphan outlives the stack).
WATCHDOG_POLL_S = 0.2
HAVE_PDEATHSIG = sys.platform.startswith("linux")


def _block_sigint() -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # kept across exec


def parent_death_preexec(signum: int = signal.SIGKILL) -> Callable[[], None]:
    """A ``preexec_fn`` giving the child ``signum`` when this process dies (Linux), with SIGINT blocked."""
    libc = ctypes.CDLL(None, use_errno=True)  # looked up here, in the parent: the child only calls it
    prctl = libc.prctl
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    parent = os.getpid()

    def preexec() -> None:
        _block_sigint()
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        # The parent may have died between fork and prctl: then no signal would ever come.
        if os.getppid() != parent:
            os.kill(os.getpid(), signum)

    return preexec


def spawn(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    stdout: IO[Any] | int | None = None,
    stderr: IO[Any] | int | None = None,
    watchdog: bool | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in this process group, to die with this process (``watchdog``: force the fallback)."""
    use_watchdog = (not HAVE_PDEATHSIG) if watchdog is None else watchdog
    proc = subprocess.Popen(
        list(argv),
        env=env,
        stdout=stdout,
        stderr=stderr,
        stdin=subprocess.DEVNULL,
        preexec_fn=_block_sigint if use_watchdog else parent_death_preexec(),
    )
    if use_watchdog:
        guard = subprocess.Popen(
            [sys.executable, "-m", "local_stack.children", str(os.getpid()), str(proc.pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            preexec_fn=_block_sigint,  # it outlives a Ctrl-C and keeps watching
        )
        proc.watchdog = guard  # type: ignore[attr-defined]  # reaped by stop_process
    return proc


def stop_process(proc: subprocess.Popen[bytes], name: str, timeout: float) -> None:
    """SIGTERM, wait up to ``timeout`` s, then SIGKILL: returns once ``proc`` is gone (and reaped)."""
    try:
        if proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %.1f s: killing it", name, timeout)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:  # in uninterruptible sleep: nothing more to do
                logger.error("%s (pid %s) survived SIGKILL for 5 s", name, proc.pid)
    finally:
        guard: subprocess.Popen[bytes] | None = getattr(proc, "watchdog", None)
        if guard is not None and guard.poll() is None:
            guard.kill()
            guard.wait(timeout=5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def watchdog(parent: int, child: int, poll_s: float = WATCHDOG_POLL_S) -> int:
    """Kill ``child`` once ``parent`` (the stack, our own parent) is gone; return when ``child`` is."""
    while _alive(child):
        # Reparented (to init or a subreaper): the stack died without stopping us.
        if os.getppid() != parent:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
            return 0
        time.sleep(poll_s)
    return 0


if __name__ == "__main__":
    sys.exit(watchdog(int(sys.argv[1]), int(sys.argv[2])))
