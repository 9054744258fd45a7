"""What an endpoint gets besides the request: the shared dependencies and a few seams.

``sleep`` and ``monotonic`` pace ``?wait`` (real time: how long the HTTP request stays open),
while ``deps.clock`` is the time the call records are judged by (``timeoutAt``), so a test can
run a call into its timeout with a fake clock without sleeping for it. ``count`` emits one
metric; by default an EMF metric through Powertools.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aws_lambda_powertools.metrics import MetricUnit

from ..observability import metrics
from ..runtime import Dependencies

_metrics_lock = threading.Lock()


def emit_metric(name: str, value: int = 1) -> None:
    # The local server runs handlers on several threads; Powertools' metric set is a plain dict.
    with _metrics_lock:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


@dataclass(frozen=True, slots=True)
class ApiContext:
    deps: Dependencies
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    count: Callable[..., None] = field(default=emit_metric)

    def now_ms(self) -> int:
        return self.deps.clock.now_ms()
