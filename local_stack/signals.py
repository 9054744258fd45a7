"""Stop requests by signal (Ctrl-C, SIGTERM) that can never hang the process receiving them.

A Python signal handler runs in the main thread between two bytecodes of whatever the main
thread was doing, including another run of the same handler. A handler that takes a lock
(``threading.Event.set()`` takes its condition's lock) deadlocks when a second signal (the
terminal's SIGINT to the whole process group, then make's SIGTERM) lands while the first run
holds it: the second run waits for a lock its own thread holds, for ever.

So the handler here only assigns an attribute (no lock, no allocation that can block), and the
C-level handler writes the signal number to a self-pipe given to :func:`signal.set_wakeup_fd`
(async-signal-safe: ``write(2)`` on a non-blocking pipe, see
https://docs.python.org/3/library/signal.html#signal.set_wakeup_fd). The main thread waits on
that pipe with ``select`` and does the stopping itself, as ordinary code.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from types import FrameType
from typing import Any

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM)


class StopSignal:
    """Install with :meth:`install` (main thread only); then :meth:`wait` or poll :meth:`is_set`."""

    def __init__(self, signums: tuple[signal.Signals, ...] = STOP_SIGNALS):
        self.signums = signums
        #: the first stop signal received (None: none yet); set by the handler, read by anyone
        self.received: int | None = None
        #: how many stop signals arrived (a plain int: the handler must not take a lock)
        self.count = 0
        self._read_fd, self._write_fd = os.pipe()
        for fd in (self._read_fd, self._write_fd):
            os.set_blocking(fd, False)  # set_wakeup_fd requires it; a full pipe drops bytes, never blocks
        self._previous: dict[int, Any] = {}
        self._previous_wakeup_fd: int | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        # Attribute assignments only: safe however often and however nested this runs.
        if self.received is None:
            self.received = signum
        self.count += 1

    def install(self) -> StopSignal:
        self._previous_wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        for signum in self.signums:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def uninstall(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
        if self._previous_wakeup_fd is not None:
            signal.set_wakeup_fd(self._previous_wakeup_fd)
            self._previous_wakeup_fd = None

    def close(self) -> None:
        self.uninstall()
        for fd in (self._read_fd, self._write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def is_set(self) -> bool:
        return self.received is not None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until a stop signal has arrived (True) or ``timeout`` seconds passed (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            # The wake-up byte is written before the Python handler runs; select returns as
            # soon as it is there (and retries by itself after EINTR, PEP 475). A bounded wait
            # anyway, so a signal whose byte was dropped (full pipe) is still seen.
            ready, _, _ = select.select([self._read_fd], [], [], 0.5 if remaining is None else min(remaining, 0.5))
            if ready:
                with contextlib.suppress(BlockingIOError, InterruptedError):
                    os.read(self._read_fd, 512)
        return True

    def __enter__(self) -> StopSignal:
        return self.install()

    def __exit__(self, *exc: object) -> None:
        self.close()
