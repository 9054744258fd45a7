"""Lambda execution environments of the local stack: the handlers' dependencies, and more processes.

On AWS each concurrent invocation of a function runs in an execution environment of its own
(https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html): a thousand chargers
connecting at once are handled in parallel. The stack's own process runs the rule emulator's
handlers on threads, and threads share one GIL: in ``bench e2e``'s ramp-up (50 connects a second)
the workers spent more time waiting for it than anything else (py-spy, all threads sampled: half of
their time in Python code with one of them at a time holding the GIL, 12 % in ``sendall`` taking it
back), while moto, the other half of each invocation, sat at 40 % of a core.

So, with the state on moto, ``OCPP_LAMBDA_ENVIRONMENTS`` = N (default: :data:`DEFAULT_ENVIRONMENTS`)
runs the handlers in N processes: the stack's own and N - 1 of ``python -m local_stack.environment``.
Each holds a rule emulator with a shard of the topics (``RuleEmulator(shard=(i, N))``: by CRC32 of
the topic), its own boto3 client on moto and its own broker client for the replies, and the same
dependencies as the stack's (:func:`processing_dependencies`). Every message is handled by exactly
one of them, and a topic always by the same one, so ``ordered`` delivery keeps each charger's order.
A child that dies leaves its shard to the stack's own emulator (``take_over``), with an error in the
log. With ``OCPP_LOCAL_STATE=memory`` there is one process: the state lives in it.

A child reads the stack's settings from its environment (:func:`settings_environment`), subscribes,
says ``ready`` on its stdout (the stack waits for that line, so no message arrives before every
shard is subscribed) and stops on SIGTERM within the stack's share of the stop budget.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .children import spawn, stop_process

if TYPE_CHECKING:
    from lambdas.runtime import Dependencies

    from .emulator import RuleEmulator
    from .stack import StackSettings

logger = logging.getLogger("local_stack")

#: How long a thread may hold the GIL while others wait for it (Python's default: 5 ms). This
#: process is dozens of threads that each compute a little between waits (the rule emulator's
#: workers on moto and the broker, the broker client's callbacks, the delivery scheduler, the
#: stream poller); each wait ends with taking the GIL back, and under load that took up to the
#: whole interval every time. bench e2e on moto, ramp-up included: p99 184 and 186 ms with 1 ms in
#: two runs, against 258 to 794 ms with 5 ms (ordered delivery; aws: 217 and 808 ms, against 1.7
#: to 3.2 s). https://docs.python.org/3/library/sys.html#sys.setswitchinterval
GIL_SWITCH_INTERVAL_S = 0.001

#: Processes running the handlers, the stack's own included, when nothing says otherwise: two, the
#: cores of the smallest machine we run on; more buy nothing there (each is another interpreter).
DEFAULT_ENVIRONMENTS = 2
ENVIRONMENTS_VARIABLE = "OCPP_LAMBDA_ENVIRONMENTS"
MAX_ENVIRONMENTS = 16
#: The shard of a child, ``<index>/<count>`` (set by the stack only).
SHARD_VARIABLE = "OCPP_LAMBDA_SHARD"
READY_LINE = b"ready\n"
#: How long a child may take to import, connect and subscribe.
READY_TIMEOUT_S = 60.0


def parse_environments(raw: str) -> int:
    """``OCPP_LAMBDA_ENVIRONMENTS``: a count from 1 to :data:`MAX_ENVIRONMENTS` (ValueError otherwise)."""
    value = raw.strip()
    if not value:
        return DEFAULT_ENVIRONMENTS
    if not value.isdigit() or not 1 <= int(value) <= MAX_ENVIRONMENTS:
        raise ValueError(f"{ENVIRONMENTS_VARIABLE}={raw!r} is not a number of processes from 1 to {MAX_ENVIRONMENTS}")
    return int(value)


def prepare_process() -> None:
    """What every process running handlers sets before it imports one (the stack's and a child's)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    # Powertools reads these at import.
    os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "ocpp-csms-local")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", os.environ.get("OCPP_LOG_LEVEL", "INFO"))
    # Sign as on Lambda. Our bundle ships no awscrt (infra.bundling.LAMBDA_DISTRIBUTIONS), so there
    # botocore signs with its own SigV4 code; here awscrt is installed for the bridge's MQTT, and
    # botocore would use it for SigV4 (botocore.compat.HAS_CRT), at 0.94 ms of client CPU per
    # UpdateItem against 0.69 ms (a thousand touches on the local moto server).
    os.environ.setdefault("BOTO_DISABLE_CRT", "true")
    logging.basicConfig(
        level=os.environ.get("OCPP_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
    )


def warm_up() -> None:
    """Compile the validators of what every charger sends (``FREQUENT_ACTIONS``, every version), as
    a provisioned execution environment has initialised before its first invocation
    (https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html).

    The processor Lambda itself does not do this at import (``schemas.compile_ahead``: it would add
    ~0.6 s to every cold start); without it each process here compiled them on its first frames, in
    the middle of a thousand chargers connecting (``bench e2e``: p99 2.2 s in one run, against 82 to
    163 ms over five runs warmed up). Rarer actions still compile on first use.
    """
    from ocpp_core.schemas import compile_ahead
    from ocpp_core.versions import FREQUENT_ACTIONS

    for version, actions in FREQUENT_ACTIONS.items():
        compile_ahead(version, actions)


def dynamodb_client(settings: StackSettings) -> Any:
    from .event_stream import local_client

    return local_client("dynamodb", settings.moto_url)


def processing_dependencies(settings: StackSettings, store: Any, publisher_client: Any) -> Dependencies:
    """The handlers' dependencies, the same in every process: ``lambdas.settings.SettingsError`` if
    the processor's settings are wrong."""
    from lambdas import runtime
    from lambdas.certificates import local_ca
    from lambdas.files.local import LocalFileHost
    from lambdas.settings import Settings

    from .mqtt import MqttPublisher

    s = settings
    processor = Settings.from_env(
        {**s.processor_env, "OCPP_TABLE_NAME": s.table_name, "OCPP_UNKNOWN_CHARGERS": s.unknown_chargers}
    )
    return runtime.Dependencies(
        settings=processor,
        store=store,
        publisher=MqttPublisher(publisher_client),
        clock=runtime.SystemClock(),
        ids=runtime.TimeOrderedIds(),
        config=processor.processor_config(),
        extensions=runtime.load_extensions(processor.extensions),
        # the development CA of the state directory (the stack's process creates it first)
        ca=local_ca.load_or_create(s.state_dir),
        files=LocalFileHost(s.state_dir, s.files_url),
    )


def settings_environment(settings: StackSettings) -> dict[str, str]:
    """The environment from which ``StackSettings.from_env`` gives a child the stack's settings for
    the handlers (the ports the stack chose included)."""
    s = settings
    return {
        **os.environ,
        **s.processor_env,
        "OCPP_LOCAL_HOST": s.host,
        "OCPP_MOTO_PORT": str(s.moto_port),
        "OCPP_FILES_PORT": str(s.files_port),
        "OCPP_MQTT_HOST": s.mqtt_host,
        "OCPP_MQTT_PORT": str(s.mqtt_port),
        "OCPP_TABLE_NAME": s.table_name,
        "OCPP_UNKNOWN_CHARGERS": s.unknown_chargers,
        "OCPP_LOCAL_STATE_DIR": str(s.state_dir.resolve()),
        "OCPP_EMULATOR_WORKERS": str(s.emulator_workers),
    }


class Environments:
    """The stack's child environments: started and waited for, watched, stopped."""

    def __init__(self, settings: StackSettings, emulator: RuleEmulator, cancelled: Callable[[], bool]):
        self._settings = settings
        self._emulator = emulator
        self._cancelled = cancelled
        self._children: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()

    def spawn(self) -> None:
        """Start a child per shard but the stack's own (shard 0); :meth:`wait_ready` waits for them."""
        index, count = self._emulator.shard
        env = settings_environment(self._settings)
        for shard in range(count):
            if shard == index:
                continue
            child = spawn(
                [sys.executable, "-m", "local_stack.environment"],
                env={**env, SHARD_VARIABLE: f"{shard}/{count}"},
                stdout=subprocess.PIPE,
            )
            self._children.append(child)

    def wait_ready(self) -> None:
        for child in self._children:
            self._wait_ready(child)
        for child in self._children:
            threading.Thread(target=self._watch, args=(child,), name="environment-watch", daemon=True).start()
        logger.info("handlers: %d processes (%s)", self._emulator.shard[1], ENVIRONMENTS_VARIABLE)

    def _wait_ready(self, child: subprocess.Popen[bytes]) -> None:
        from .stack import StackError, StackInterrupted

        assert child.stdout is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        line = b""
        while time.monotonic() < deadline:
            if self._cancelled():
                raise StackInterrupted("stop requested while starting")
            readable, _, _ = select.select([child.stdout], [], [], 0.1)
            if readable:
                line = child.stdout.readline()
                break
        child.stdout.close()
        if line != READY_LINE:
            code = child.poll()
            raise StackError(
                f"a Lambda environment process did not start (exit code {code}); see its log above"
                if code is not None or line
                else f"a Lambda environment process was not ready within {READY_TIMEOUT_S:.0f} s"
            )

    def _watch(self, child: subprocess.Popen[bytes]) -> None:
        code = child.wait()
        if not self._stopping.is_set():
            logger.error(
                "a Lambda environment process (pid %d) exited with %s: the stack's own process handles its share now",
                child.pid,
                code,
            )
            self._emulator.take_over()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for child in self._children:
            if child.poll() is None:
                child.terminate()
        for child in self._children:
            stop_process(child, "Lambda environment", max(0.1, deadline - time.monotonic()))


def main(env: Mapping[str, str] | None = None) -> int:
    """A child: the handlers of one shard until SIGTERM."""
    from .signals import StopSignal

    stop = StopSignal().install()
    prepare_process()
    env = os.environ if env is None else env
    import process_gc
    from lambdas import runtime
    from lambdas.adapters.dynamo import DynamoStore
    from lambdas.rules import RULES

    from .emulator import RuleEmulator
    from .mqtt import MqttClient
    from .stack import StackSettings

    index, _, count = env.get(SHARD_VARIABLE, "").partition("/")
    settings = StackSettings.from_env(env)
    publisher_client = MqttClient(settings.mqtt_host, settings.mqtt_port, f"local-iot-data-{os.getpid()}").start()
    store = DynamoStore(dynamodb_client(settings), settings.table_name)
    runtime.configure(processing_dependencies(settings, store, publisher_client))
    warm_up()
    process_gc.install()
    emulator = RuleEmulator(
        settings.mqtt_host,
        settings.mqtt_port,
        RULES,
        workers=settings.emulator_workers,
        delivery=settings.delivery,
        shard=(int(index), int(count)),
    ).start()
    os.write(1, READY_LINE)
    os.dup2(2, 1)  # the stack stopped reading: anything printed goes to the log with the rest
    try:
        stop.wait()
    finally:
        emulator.stop(timeout=2.0)
        publisher_client.stop()
    return 0


if __name__ == "__main__":
    from .__main__ import _exit

    _exit(main())
