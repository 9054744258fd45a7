"""CloudWatch Embedded Metric Format (EMF) on stdout.

One JSON line per flush, every ``BRIDGE_METRICS_INTERVAL`` seconds and at exit. CloudWatch
Logs extracts the metrics from the awslogs stream; nothing calls the CloudWatch API. The
names are a contract with the dashboards, alarms and autoscaling in ``infra/``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

CONNECTED_CHARGERS = "ConnectedChargers"
FRAMES_IN = "FramesIn"
FRAMES_OUT = "FramesOut"
AUTH_FAILURES = "AuthFailures"
HANDSHAKE_REJECTIONS = "HandshakeRejections"
MQTT_RECONNECTS = "MqttReconnects"
QUEUE_DROPS = "QueueDrops"
TAKE_OVERS = "TakeOvers"

GAUGES = (CONNECTED_CHARGERS,)
COUNTERS = (FRAMES_IN, FRAMES_OUT, AUTH_FAILURES, HANDSHAKE_REJECTIONS, MQTT_RECONNECTS, QUEUE_DROPS, TAKE_OVERS)
SERVICE = "bridge"


def emf_document(
    namespace: str, timestamp_ms: int, values: dict[str, float], *, service: str = SERVICE
) -> dict[str, Any]:
    """An EMF log event with dimension ``Service`` (pure)."""
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [["Service"]],
                    "Metrics": [{"Name": name, "Unit": "Count"} for name in values],
                }
            ],
        },
        "Service": service,
        **values,
    }


class Metrics:
    """Counters reset at each flush; the gauge is read from a callback at flush time.

    Increments come from the event loop thread only; the lock is for the flush at exit, which
    may run from a signal path.
    """

    def __init__(
        self,
        namespace: str,
        *,
        stream: TextIO | None = None,
        gauge: Callable[[], int] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.namespace = namespace
        self._stream = stream
        self._gauge = gauge
        self._clock = clock
        self._lock = threading.Lock()
        self._counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.totals: dict[str, int] = dict.fromkeys(COUNTERS, 0)

    def incr(self, name: str, value: int = 1) -> None:
        self._counters[name] += value
        self.totals[name] += value

    def set_gauge(self, gauge: Callable[[], int]) -> None:
        self._gauge = gauge

    def collect(self) -> dict[str, Any]:
        """The EMF document for the counts since the last collect, and reset them."""
        with self._lock:
            values: dict[str, float] = {CONNECTED_CHARGERS: self._gauge() if self._gauge is not None else 0}
            values.update(self._counters)
            for name in self._counters:
                self._counters[name] = 0
        return emf_document(self.namespace, int(self._clock() * 1000), values)

    def flush(self) -> None:
        line = json.dumps(self.collect(), separators=(",", ":"))
        stream = self._stream or sys.stdout
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # stdout closed at exit: nothing useful to do
