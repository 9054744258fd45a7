"""``python -m local_stack`` (what ``make run`` starts): the whole CSMS on this machine."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading


def main() -> int:
    # Before any handler module is imported: Powertools reads these at import.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "ocpp-csms-local")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", os.environ.get("OCPP_LOG_LEVEL", "INFO"))
    logging.basicConfig(
        level=os.environ.get("OCPP_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
    )
    from .stack import LocalStack, StackError, StackSettings

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        stack = LocalStack(StackSettings.from_env()).start()
    except StackError as error:
        print(f"local stack: {error}", file=sys.stderr)
        return 1
    # Printed whatever the log level: people and scripts (tests, benchmarks) wait for this line.
    # Not after a Ctrl-C during the start (the parts finish starting, then stop at once).
    if not stop.is_set():
        print(
            f"ready: connect a charger to {stack.settings.bridge_url}/<chargePointId> (Ctrl-C stops everything)",
            flush=True,
        )
    try:
        stop.wait()
    finally:
        logging.getLogger("local_stack").info("stopping...")
        stack.stop()
        logging.getLogger("local_stack").info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
