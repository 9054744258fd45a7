"""The local rule emulator: IoT topic rules -> Lambda handlers, in process.

Subscribes to each rule's topic filter on the broker, evaluates the rule's SQL (the same
string ``infra/`` deploys, from ``lambdas.rules``) and invokes the rule's Lambda handler
with the resulting event, as AWS IoT does. Messages of one charger are handled in order
(one worker per hash bucket of the topic); a handler that raises is logged and counted,
and the next message still flows.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from lambdas.rules import RuleDefinition

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


class _Job(NamedTuple):
    """A queued invocation; ``topic`` is the message's, for the log."""

    binding: _Binding
    event: dict[str, Any]
    topic: str


_STOP = object()


class RuleEmulator:
    def __init__(
        self,
        mqtt_host: str,
        mqtt_port: int,
        rules: Sequence[RuleDefinition],
        *,
        handlers: dict[str, LambdaHandler] | None = None,
        workers: int = 4,
    ):
        self._bindings = [
            _Binding(rule, compile_rule(rule.sql), (handlers or {}).get(rule.name) or resolve_handler(rule.handler))
            for rule in rules
        ]
        self._queues: list[queue.Queue[Any]] = [queue.Queue() for _ in range(max(1, workers))]
        self._threads: list[threading.Thread] = []
        self._client = MqttClient(
            mqtt_host, mqtt_port, f"local-rule-emulator-{uuid.uuid4().hex[:8]}", on_message=self._on_message
        )
        self.invocations = 0
        self.failures = 0
        self._lock = threading.Lock()

    def start(self) -> RuleEmulator:
        for index, q in enumerate(self._queues):
            thread = threading.Thread(target=self._worker, args=(q,), name=f"rule-worker-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        self._client.start()
        for binding in self._bindings:
            self._client.subscribe(binding.compiled.topic_filter)
            logger.info("rule %s: %s -> %s", binding.rule.name, binding.rule.sql, binding.rule.handler)
        return self

    def _on_message(self, topic: str, payload: bytes) -> None:
        now = time.time_ns() // 1_000_000
        for binding in self._bindings:
            if binding.compiled.matches(topic):
                event = binding.compiled.evaluate(topic, payload, now)
                # Same topic, same worker: one charger's frames are handled in the order received.
                bucket = zlib.crc32(topic.encode()) % len(self._queues)
                self._queues[bucket].put(_Job(binding, event, topic))

    def _worker(self, q: queue.Queue[Any]) -> None:
        while True:
            item = q.get()
            if item is _STOP:
                return
            binding, event, topic = item
            try:
                binding.handler(event, LambdaContext.for_handler(binding.rule.name))
            except Exception:
                with self._lock:
                    self.failures += 1
                logger.exception(
                    "handler %s raised on a message on %s (rule %s); the next messages still flow",
                    binding.rule.handler,
                    topic,
                    binding.rule.name,
                )
            finally:
                with self._lock:
                    self.invocations += 1

    def stop(self) -> None:
        self._client.stop()
        for q in self._queues:
            q.put(_STOP)
        for thread in self._threads:
            thread.join(timeout=5)
