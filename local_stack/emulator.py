"""The local rule emulator: IoT topic rules -> Lambda handlers, in process.

Subscribes to each rule's topic filter on the broker, evaluates the rule's SQL (the same
string ``infra/`` deploys, from ``lambdas.rules``) and invokes the rule's Lambda handler
with the resulting event, as AWS IoT does. A handler that raises is logged and counted, and
the next message still flows.

Two delivery modes (:class:`DeliveryMode`, ``OCPP_RULE_DELIVERY``):

* ``ordered`` (the default): one charger's messages (one topic's) are handled one at a time, in
  the order the broker delivered them, by whichever worker is free; a slow message holds up only
  its own topic. Friendly for reading logs, but AWS never promises it. (Workers used to own a hash
  bucket of topics each, so a slow message held up every topic of its bucket: under ``bench e2e``
  that, not the work, was what the ramp-up waited on once moto got faster.)
* ``aws``: delivery as AWS does it (DESIGN §7). An IoT rule's Lambda action invokes the
  function asynchronously (https://docs.aws.amazon.com/iot/latest/developerguide/lambda-rule-action.html),
  and an asynchronous invocation goes through Lambda's event queue, which is eventually
  consistent: "it's possible for it to receive the same event from Lambda multiple times", and
  failed or throttled events are retried one and two minutes later, or for up to 6 hours
  (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html). So here
  every worker takes any message (no per-charger order), each delivery waits a random delay
  (0 to ``max_delay_s``), a fraction ``duplicate_rate`` of the messages is delivered a second
  time (after its own random delay) and a fraction ``late_rate`` once more after
  ``late_delay_s`` (1 to 3 s by default: the real retry comes minutes later, after the
  charger's call has timed out, which a test cannot wait for; what matters for the state is
  that it lands after newer messages). A duplicate is the very same event (same body, same
  ``ruleTimestamp``), as Lambda redelivers it, with a fresh request id.

  With a ``seed``, each topic (one charger's frames, or its presence events) draws from its own
  random stream seeded by ``(seed, topic)``: which of a charger's messages are duplicated or late
  is then the same in every run, whatever the other chargers do meanwhile; only thread timing
  varies.

With a ``shard`` ``(index, count)`` the emulator handles only the topics whose CRC32 is ``index``
modulo ``count``: ``count`` emulators on one broker, one per process (``local_stack.environment``),
then handle every message exactly once between them, and a topic's messages always in the same one
(so ``ordered`` keeps its order).

``stop()`` is bounded by its ``timeout`` in both modes: deliveries not yet started (queued,
or waiting for their delay) are dropped and counted in ``dropped`` (the bridge is already
stopped by then, so their replies would reach no one); handlers already running get until the
deadline to finish.
"""

from __future__ import annotations

import collections
import copy
import heapq
import importlib
import itertools
import logging
import queue
import random
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from lambdas.rules import RuleDefinition

from .delivery import DeliveryKind, DeliveryMode, DeliverySettings
from .mqtt import MqttClient
from .rules import CompiledRule, compile_rule

logger = logging.getLogger(__name__)

LambdaHandler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """The attributes of the Lambda context object that handlers and Powertools read."""

    function_name: str
    aws_request_id: str
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = ""
    log_group_name: str = "local"
    log_stream_name: str = "local"

    @staticmethod
    def for_handler(name: str) -> LambdaContext:
        return LambdaContext(
            function_name=name,
            aws_request_id=str(uuid.uuid4()),
            invoked_function_arn=f"arn:aws:lambda:local:000000000000:function:{name}",
        )

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def resolve_handler(dotted: str) -> LambdaHandler:
    module_name, _, attribute = dotted.rpartition(".")
    handler = getattr(importlib.import_module(module_name), attribute)
    if not callable(handler):
        raise TypeError(f"{dotted} is not callable")
    return handler  # type: ignore[no-any-return]


@dataclass
class _Binding:
    rule: RuleDefinition
    compiled: CompiledRule
    handler: LambdaHandler


def shard_of(topic: str, count: int) -> int:
    """The shard, of ``count``, that handles the messages on ``topic``."""
    return zlib.crc32(topic.encode()) % count


class _Job(NamedTuple):
    """A queued invocation; ``topic`` is the message's, for the log."""

    binding: _Binding
    event: dict[str, Any]
    topic: str


_STOP = object()


class _Scheduler:
    """Holds delayed deliveries and hands each to ``release`` when its time comes (aws mode)."""

    def __init__(self, release: Callable[[_Job], None]):
        self._release = release
        self._heap: list[tuple[float, int, _Job]] = []
        self._order = itertools.count()  # ties keep submission order; jobs are never compared
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="rule-delivery-scheduler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, delay_s: float, job: _Job) -> bool:
        with self._cond:
            if self._stopped:
                return False
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._order), job))
            self._cond.notify()
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    self._cond.wait(None if not self._heap else self._heap[0][0] - time.monotonic())
                if self._stopped:
                    return
                _, _, job = heapq.heappop(self._heap)
            self._release(job)

    def stop(self, timeout: float) -> int:
        """Stop releasing; returns how many deliveries were still waiting (dropped)."""
        with self._cond:
            self._stopped = True
            dropped = len(self._heap)
            self._heap.clear()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout=max(0.0, timeout))
        return dropped


class RuleEmulator:
    def __init__(
        self,
        mqtt_host: str,
        mqtt_port: int,
        rules: Sequence[RuleDefinition],
        *,
        handlers: dict[str, LambdaHandler] | None = None,
        workers: int = 4,
        delivery: DeliverySettings | None = None,
        shard: tuple[int, int] = (0, 1),
    ):
        index, count = shard
        if not 0 <= index < count:
            raise ValueError(f"shard {shard!r} is not (index, count) with 0 <= index < count")
        self.delivery = delivery or DeliverySettings()
        self.shard = shard
        self._bindings = [
            _Binding(rule, compile_rule(rule.sql), (handlers or {}).get(rule.name) or resolve_handler(rule.handler))
            for rule in rules
        ]
        self._workers = max(1, workers)
        self._aws = self.delivery.mode is DeliveryMode.AWS
        # Every worker takes from one queue. aws: jobs, in any order; ordered: topics with work to do,
        # each topic's jobs in a line of its own (_lines), one at a time.
        self._queue: queue.Queue[Any] = queue.Queue()
        self._lines: dict[str, collections.deque[_Job]] = {}
        self._scheduler = _Scheduler(self._queue.put) if self._aws else None
        self._rng = random.Random(self.delivery.seed)
        self._topic_rngs: dict[str, random.Random] = {}
        self._threads: list[threading.Thread] = []
        self._client = MqttClient(
            mqtt_host, mqtt_port, f"local-rule-emulator-{uuid.uuid4().hex[:8]}", on_message=self._on_message
        )
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._outstanding = 0
        #: handler invocations finished (raised or not), failures among them
        self.invocations = 0
        self.failures = 0
        #: messages received, and the extra deliveries the aws mode added
        self.messages = 0
        self.duplicates = 0
        self.late = 0
        #: deliveries not started because stop() came first
        self.dropped = 0

    def start(self) -> RuleEmulator:
        if self._scheduler is not None:
            self._scheduler.start()
        for index in range(self._workers):
            thread = threading.Thread(target=self._worker, name=f"rule-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._client.start()
        for binding in self._bindings:
            self._client.subscribe(binding.compiled.topic_filter)
            logger.info("rule %s: %s -> %s", binding.rule.name, binding.rule.sql, binding.rule.handler)
        logger.info("rule delivery: %s", self.delivery.describe())
        return self

    def _rng_for(self, topic: str) -> random.Random:
        if self.delivery.seed is None:
            return self._rng
        rng = self._topic_rngs.get(topic)
        if rng is None:
            # A str seed is hashed with SHA-512 (random.seed version 2): stable across runs and processes.
            rng = self._topic_rngs[topic] = random.Random(f"{self.delivery.seed}/{topic}")
        return rng

    def handles(self, topic: str) -> bool:
        """Whether ``topic`` is in this emulator's shard."""
        index, count = self.shard
        return count == 1 or shard_of(topic, count) == index

    def take_over(self) -> None:
        """Handle every topic from now on (the other shards' emulators are gone)."""
        self.shard = (0, 1)

    def _on_message(self, topic: str, payload: bytes) -> None:
        if self._stopping.is_set() or not self.handles(topic):
            return
        now = time.time_ns() // 1_000_000
        for binding in self._bindings:
            if not binding.compiled.matches(topic):
                continue
            event = binding.compiled.evaluate(topic, payload, now)
            if self._scheduler is None:
                # One charger's frames are handled in the order received, one at a time, by whichever
                # worker is free: a slow one holds up only its own topic's line, never another's.
                with self._lock:
                    self.messages += 1
                    self._outstanding += 1
                    line = self._lines.get(topic)
                    if line is None:
                        self._lines[topic] = collections.deque([_Job(binding, event, topic)])
                    else:
                        line.append(_Job(binding, event, topic))
                if line is None:
                    self._queue.put(topic)
                continue
            with self._lock:
                deliveries = self.delivery.plan(self._rng_for(topic))
                self.messages += 1
                self.duplicates += sum(d.kind is DeliveryKind.DUPLICATE for d in deliveries)
                self.late += sum(d.kind is DeliveryKind.LATE for d in deliveries)
                self._outstanding += len(deliveries)
            # Each delivery its own copy, made before any is handed over: a handler that mutates its
            # event must not change a redelivery.
            jobs = [_Job(binding, copy.deepcopy(event) if i else event, topic) for i in range(len(deliveries))]
            for delivery, job in zip(deliveries, jobs, strict=True):
                if delivery.kind is not DeliveryKind.ORIGINAL:
                    logger.debug("%s delivery of a message on %s in %.3f s", delivery.kind, topic, delivery.delay_s)
                if not self._scheduler.submit(delivery.delay_s, job):
                    self._done(dropped=True)

    def _done(self, *, dropped: bool = False, failed: bool = False) -> None:
        with self._lock:
            if dropped:
                self.dropped += 1
            else:
                self.invocations += 1
                self.failures += failed
            self._outstanding -= 1
            if self._outstanding <= 0:
                self._idle.notify_all()

    def _worker(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if not isinstance(item, str):
                self._run(item)  # aws: any job, in any order
                continue
            # ordered: the first job of a topic's line. It stays at the head while it runs, so a
            # message for the topic meanwhile joins the line without putting the topic up again.
            with self._lock:
                job = self._lines[item][0]
            self._run(job)
            with self._lock:
                line = self._lines[item]
                line.popleft()
                if not line:
                    del self._lines[item]
            if line:
                self._queue.put(item)

    def _run(self, job: _Job) -> None:
        if self._stopping.is_set():
            self._done(dropped=True)
            return
        binding, event, topic = job
        failed = False
        try:
            binding.handler(event, LambdaContext.for_handler(binding.rule.name))
        except Exception:
            failed = True
            logger.exception(
                "handler %s raised on a message on %s (rule %s); the next messages still flow",
                binding.rule.handler,
                topic,
                binding.rule.name,
            )
        finally:
            self._done(failed=failed)

    @property
    def outstanding(self) -> int:
        """Deliveries received or scheduled and not yet finished (nor dropped)."""
        with self._lock:
            return self._outstanding

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every delivery so far (late ones included) has finished; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._outstanding > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def stop(self, timeout: float = 5.0) -> None:
        """Stop within ``timeout`` seconds: deliveries not started are dropped, running ones may finish."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._client.stop()
        if self._scheduler is not None:
            waiting = self._scheduler.stop(deadline - time.monotonic())
            with self._lock:
                self.dropped += waiting
                self._outstanding -= waiting
        for _ in self._threads:  # one sentinel per worker
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        alive = sum(thread.is_alive() for thread in self._threads)
        if alive:
            logger.warning("rule emulator: %d handler(s) still running after %.1f s; left behind", alive, timeout)
        else:
            # ordered: a line put up again behind the workers' sentinels was never started
            with self._lock:
                waiting = sum(len(line) for line in self._lines.values())
                self._lines.clear()
                self.dropped += waiting
                self._outstanding -= waiting
        if self.dropped:
            logger.info("rule emulator: %d delivery(ies) not started before the stop, dropped", self.dropped)
