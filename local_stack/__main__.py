"""``python -m local_stack`` (what ``make run`` starts): the whole CSMS on this machine.

Ctrl-C or SIGTERM, once or many times, at any moment (also while starting), stops everything
within DESIGN §5's 10 s: the signal handler only records the signal (``signals.py``); this
main thread notices and does the stopping.
"""

from __future__ import annotations

import logging
import os
import sys

from .environment import prepare_process
from .signals import StopSignal


def main() -> int:
    # First: a Ctrl-C from here on is a stop request, never a KeyboardInterrupt in the middle of
    # starting a part (which could leave that part running).
    stop = StopSignal().install()
    prepare_process()  # before any handler module is imported
    logger = logging.getLogger("local_stack")
    import process_gc

    from .stack import LocalStack, StackError, StackInterrupted, StackSettings

    try:
        # In the main thread, which lives as long as the process: the children's parent-death
        # signal fires when the thread that forked them exits (children.py).
        stack = LocalStack(StackSettings.from_env()).start(cancelled=stop.is_set)
    except StackInterrupted:
        # Nobody is told to connect to a stack that is stopping; start() stopped what it started.
        logger.info("stopped")
        return 0
    except StackError as error:
        print(f"local stack: {error}", file=sys.stderr)
        return 1
    process_gc.install()
    # Printed whatever the log level: people and scripts (tests, benchmarks) wait for this line.
    print(
        f"ready: connect a charger to {stack.settings.bridge_url}/<chargePointId> (Ctrl-C stops everything)",
        flush=True,
    )
    try:
        stop.wait()
    finally:
        logger.info("stopping...")
        stack.stop()
        logger.info("stopped")
    return 0


def _exit(code: int) -> None:
    """Flush, then leave at once: everything is stopped, and the interpreter's own shutdown would
    restore the default signal handlers, so the tail of a burst of Ctrl-Cs would turn a clean
    exit 0 into death by SIGINT (or wait on a library's leftover thread)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
