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
#: 1 when the bridge reached its broker at the last check, else 0 (a gauge: alarm when < 1).
BROKER_REACHABLE = "BrokerReachable"
FRAMES_IN = "FramesIn"
FRAMES_OUT = "FramesOut"
AUTH_FAILURES = "AuthFailures"
HANDSHAKE_REJECTIONS = "HandshakeRejections"
MQTT_RECONNECTS = "MqttReconnects"
QUEUE_DROPS = "QueueDrops"
TAKE_OVERS = "TakeOvers"
#: Opening handshakes that did not complete in BRIDGE_HANDSHAKE_TIMEOUT (also logged, one line each),
#: TLS handshakes that failed or stalled included.
HANDSHAKE_TIMEOUTS = "HandshakeTimeouts"
#: Sockets closed (1008) because the charger sent frames faster than BRIDGE_FRAME_RATE.
RATE_LIMITED = "RateLimited"
#: Sockets closed (1008) because the charger stopped reading its replies (BRIDGE_OUTBOX_LIMIT_BYTES).
SLOW_READERS = "SlowReaders"
#: Frames answered by the bridge with a CALLERROR because their envelope exceeds IoT Core's limit.
OVERSIZED_FRAMES = "OversizedFrames"
#: SUBSCRIBEs to a charger's replies that failed (each is retried, then the socket closed with 1011).
SUBSCRIBE_FAILURES = "SubscribeFailures"

GAUGES = (CONNECTED_CHARGERS, BROKER_REACHABLE)
COUNTERS = (
    FRAMES_IN,
    FRAMES_OUT,
    AUTH_FAILURES,
    HANDSHAKE_REJECTIONS,
    HANDSHAKE_TIMEOUTS,
    MQTT_RECONNECTS,
    QUEUE_DROPS,
    TAKE_OVERS,
    RATE_LIMITED,
    SLOW_READERS,
    OVERSIZED_FRAMES,
    SUBSCRIBE_FAILURES,
)
SERVICE = "bridge"
#: Every document carries both: two stages in one account never mix their metrics (DESIGN §8).
DIMENSIONS = ("Service", "Stage")


def emf_document(
    namespace: str, timestamp_ms: int, values: dict[str, float], *, service: str = SERVICE, stage: str = "local"
) -> dict[str, Any]:
    """An EMF log event with the dimension set ``[Service, Stage]`` (pure)."""
    return {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": namespace,
                    "Dimensions": [list(DIMENSIONS)],
                    "Metrics": [{"Name": name, "Unit": "Count"} for name in values],
                }
            ],
        },
        "Service": service,
        "Stage": stage,
        **values,
    }


class Metrics:
    """Counters reset at each flush; gauges are read from callbacks at flush time.

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
        stage: str = "local",
    ):
        self.namespace = namespace
        self.stage = stage
        self._stream = stream
        self._gauges: dict[str, Callable[[], float]] = {}
        if gauge is not None:
            self._gauges[CONNECTED_CHARGERS] = gauge
        self._clock = clock
        self._lock = threading.Lock()
        self._counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        self.totals: dict[str, int] = dict.fromkeys(COUNTERS, 0)

    def incr(self, name: str, value: int = 1) -> None:
        self._counters[name] += value
        self.totals[name] += value

    def set_gauge(self, gauge: Callable[[], float], name: str = CONNECTED_CHARGERS) -> None:
        self._gauges[name] = gauge

    def collect(self) -> dict[str, Any]:
        """The EMF document for the counts since the last collect, and reset them."""
        with self._lock:
            values: dict[str, float] = {}
            for name in GAUGES:
                gauge = self._gauges.get(name)
                values[name] = gauge() if gauge is not None else 0
            values.update(self._counters)
            for name in self._counters:
                self._counters[name] = 0
        return emf_document(self.namespace, int(self._clock() * 1000), values, stage=self.stage)

    def flush(self) -> None:
        line = json.dumps(self.collect(), separators=(",", ":"))
        stream = self._stream or sys.stdout
        try:
            stream.write(line + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass  # stdout closed at exit: nothing useful to do
