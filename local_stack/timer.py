"""Runs the outbox timer in the local stack, as EventBridge does on AWS (DESIGN §10).

On AWS an EventBridge rule invokes ``lambdas.timer.handler`` every minute, the finest a
schedule rule gives (infra/processing.py). Locally nothing invokes it, so :class:`PeriodicTimer`
calls the function it is given (the stack gives ``lambdas.timer.handle``, which uses the same
``lambdas.runtime`` dependencies as the handlers the rule emulator invokes) every ``interval_s``
in a daemon thread: a few seconds, so that a call's timeout is applied about when it falls due
and a demo or a test need not wait a minute. The timer's work is idempotent, so a run that meets
the message processor (or a late run) does no harm.

The moto server's TTL (``local_stack.moto_ttl``) runs on a :class:`PeriodicTimer` of its own too.

A run that raises is logged and counted, and the next one comes all the same; it never stops
the stack. A failure that repeats is logged with its traceback once, then one line each time,
until a run succeeds again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds between two runs of the outbox timer in the local stack (0: none); documented in the README.
TIMER_INTERVAL_VARIABLE = "OCPP_LOCAL_TIMER_S"
DEFAULT_TIMER_INTERVAL_S = 2.0


class PeriodicTimer:
    """``start()`` calls ``run`` every ``interval_s`` (after a first wait) in a daemon thread; ``0`` runs nothing."""

    def __init__(
        self,
        run: Callable[[], Any],
        *,
        interval_s: float = DEFAULT_TIMER_INTERVAL_S,
        name: str = "outbox-timer",
        thread_name: str | None = None,
    ):
        self._run_once = run
        self.interval_s = interval_s
        self.name = name
        self._thread_name = thread_name or name
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: totals since start, for logs and tests
        self.runs = 0
        self.failures = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        failing = False
        while not self._stopping.wait(self.interval_s):
            try:
                self._run_once()
            except Exception:  # moto restarting, a store error...: the next run tries again
                self.failures += 1
                logger.warning(
                    "%s: run failed%s; next in %g s",
                    self.name,
                    " again" if failing else "",
                    self.interval_s,
                    exc_info=not failing,
                )
                failing = True
            else:
                if failing:
                    logger.info("%s: running again", self.name)
                failing = False
            finally:
                self.runs += 1

    def start(self) -> PeriodicTimer:
        if self.interval_s <= 0:
            return self  # disabled: no thread
        self._thread = threading.Thread(target=self._loop, name=self._thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop within ``timeout``: no run starts after this; a run in flight is left to its daemon thread."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=max(0.0, timeout))
            if self._thread.is_alive():
                logger.warning("%s: a run still busy after %.1f s; left behind (daemon thread)", self.name, timeout)
