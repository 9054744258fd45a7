"""Start and stop the whole system on one machine (DESIGN §5).

Parts, in start order: the MQTT broker (one already reachable at the configured address,
else a mosquitto of ours), moto in server mode (DynamoDB and the IoT data plane) with the
table created and a demo id tag, the rule emulator invoking the Lambda handlers in process,
the outbox timer (``timer.py``: what EventBridge's schedule invokes on AWS), the bridge (``python -m fargate_bridge``, as on Fargate) and the operator API. Every part
started is stopped again on exit or on a failure half-way, so nothing is left running.

Stopping is bounded (DESIGN §5: no process and no bound port left within 10 s): the child
processes die with the stack even when it is killed (``children.py``), :meth:`LocalStack.stop`
shares one budget (:data:`STOP_BUDGET_S`) among the parts and SIGKILLs a child that does not
exit on SIGTERM in its share, and a stop requested while starting (``start(cancelled=...)``)
interrupts the start at the next check, including the waits for a part to come up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .broker import BrokerCancelled, BrokerError, MosquittoProcess, find_mosquitto, not_found_message
from .children import spawn, stop_process
from .delivery import DeliveryError, DeliverySettings
from .environment import DEFAULT_ENVIRONMENTS, ENVIRONMENTS_VARIABLE, parse_environments
from .event_stream import WEBHOOK_VARIABLE
from .moto_ttl import DEFAULT_SWEEP_INTERVAL_S, SWEEP_INTERVAL_VARIABLE
from .ports import port_free, port_open, wait_for_port
from .timer import DEFAULT_TIMER_INTERVAL_S, TIMER_INTERVAL_VARIABLE, PeriodicTimer

logger = logging.getLogger("local_stack")

_LOOPBACK = ("127.0.0.1", "localhost", "::1")


#: The whole of :meth:`LocalStack.stop`, within DESIGN §5's 10 s (the rest: the interpreter's exit).
STOP_BUDGET_S = 8.0
#: The bridge's drain when the stack starts it (its own default, 25 s, is the ECS stop timeout's);
#: ``BRIDGE_DRAIN_TIMEOUT`` overrides it, but the stop still kills the bridge after its share.
LOCAL_BRIDGE_DRAIN_S = "4"


class StackError(RuntimeError):
    """A part could not start; the message is the one line the user sees."""


class StackInterrupted(StackError):
    """A stop was requested while starting: what had started is stopped again."""


#: Rule emulator threads per process: a thread is cheap, but each holds a boto3 request open.
MAX_EMULATOR_WORKERS = 256


def _env_int(
    env: Mapping[str, str], name: str, default: int, *, maximum: int = 65535, what: str = "a port number"
) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not {what}") from None
    if not 0 < value <= maximum:
        raise StackError(f"{name}={value} is not {what} (1-{maximum})")
    return value


@dataclass(frozen=True)
class StackSettings:
    """Addresses of the parts; every one overridable by an environment variable (README)."""

    host: str = "127.0.0.1"
    bridge_port: int = 9000
    #: security profile 3: the bridge's TLS listener asking for client certificates (DESIGN §9)
    bridge_tls_port: int = 9443
    api_port: int = 9001
    moto_port: int = 9002
    #: the file server: uploads from chargers, firmware downloads (DESIGN §11)
    files_port: int = 9003
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    table_name: str = "ocpp-csms"
    demo_id_tag: str = "DEMO-TAG"
    unknown_chargers: str = "accept"
    #: "moto" (DynamoDB on moto, the default) or "memory" (benchmark only: not persisted,
    #: not visible to the bridge's registry reads; shows what the pipeline does without moto)
    state_backend: str = "moto"
    emulator_workers: int = 8
    #: processes running the handlers, this one included (``local_stack.environment``; moto state only)
    lambda_environments: int = DEFAULT_ENVIRONMENTS
    #: seconds between two passes of the moto server's TTL (moto applies none itself); 0: never
    ttl_sweep_interval_s: float = DEFAULT_SWEEP_INTERVAL_S
    #: seconds between two runs of the outbox timer (every minute on AWS); 0: no timer
    timer_interval_s: float = DEFAULT_TIMER_INTERVAL_S
    #: how the rule emulator delivers (OCPP_RULE_DELIVERY=ordered|aws and its parameters)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    #: where domain events are POSTed besides ``events.jsonl`` (OCPP_EVENTS_WEBHOOK; None: nowhere)
    events_webhook: str | None = None
    state_dir: Path = field(default_factory=lambda: Path(".local-stack"))
    #: extra environment for the processor settings (OCPP_HEARTBEAT_INTERVAL, OCPP_EXTENSIONS...)
    processor_env: Mapping[str, str] = field(default_factory=dict)
    bridge_env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StackSettings:
        env = os.environ if env is None else env
        return cls(
            host=env.get("OCPP_LOCAL_HOST", "127.0.0.1"),
            bridge_port=_env_int(env, "OCPP_BRIDGE_PORT", 9000),
            bridge_tls_port=_env_int(env, "OCPP_BRIDGE_TLS_PORT", 9443),
            api_port=_env_int(env, "OCPP_API_PORT", 9001),
            moto_port=_env_int(env, "OCPP_MOTO_PORT", 9002),
            files_port=_env_int(env, "OCPP_FILES_PORT", 9003),
            mqtt_host=env.get("OCPP_MQTT_HOST", "127.0.0.1"),
            mqtt_port=_env_int(env, "OCPP_MQTT_PORT", 1883),
            table_name=env.get("OCPP_TABLE_NAME", "ocpp-csms"),
            demo_id_tag=env.get("OCPP_DEMO_ID_TAG", "DEMO-TAG"),
            unknown_chargers=env.get("OCPP_UNKNOWN_CHARGERS", "accept"),
            state_backend=_state_backend(env.get("OCPP_LOCAL_STATE", "moto")),
            emulator_workers=_env_int(
                env, "OCPP_EMULATOR_WORKERS", 8, maximum=MAX_EMULATOR_WORKERS, what="a number of worker threads"
            ),
            lambda_environments=_environments(env),
            ttl_sweep_interval_s=_env_seconds(env, SWEEP_INTERVAL_VARIABLE, DEFAULT_SWEEP_INTERVAL_S),
            timer_interval_s=_env_seconds(env, TIMER_INTERVAL_VARIABLE, DEFAULT_TIMER_INTERVAL_S),
            delivery=_delivery(env),
            events_webhook=_webhook(env),
            state_dir=Path(env.get("OCPP_LOCAL_STATE_DIR", ".local-stack")),
            processor_env={k: v for k, v in env.items() if k.startswith("OCPP_")},
            bridge_env={k: v for k, v in env.items() if k.startswith("BRIDGE_")},
        )

    @property
    def moto_url(self) -> str:
        return f"http://{self.host}:{self.moto_port}"

    @property
    def bridge_url(self) -> str:
        return f"ws://{self.host}:{self.bridge_port}/ocpp"

    @property
    def bridge_tls_url(self) -> str:
        return f"wss://{self.host}:{self.bridge_tls_port}/ocpp"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    @property
    def files_url(self) -> str:
        return f"http://{self.host}:{self.files_port}"


def _delivery(env: Mapping[str, str]) -> DeliverySettings:
    try:
        return DeliverySettings.from_env(env)
    except DeliveryError as error:
        raise StackError(str(error)) from None


def _environments(env: Mapping[str, str]) -> int:
    try:
        return parse_environments(env.get(ENVIRONMENTS_VARIABLE, ""))
    except ValueError as error:
        raise StackError(str(error)) from None


def _webhook(env: Mapping[str, str]) -> str | None:
    from .event_sinks import validate_webhook_url

    raw = env.get(WEBHOOK_VARIABLE, "").strip()
    if not raw:
        return None
    try:
        return validate_webhook_url(raw)
    except ValueError as error:
        raise StackError(f"{WEBHOOK_VARIABLE}: {error}") from None


def _env_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise StackError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 <= value <= 86400:
        raise StackError(f"{name}={raw} is not between 0 and 86400 seconds")
    return value


def _state_backend(raw: str) -> str:
    value = raw.strip().lower()
    if value not in ("moto", "memory"):
        raise StackError(f"OCPP_LOCAL_STATE={raw!r} is not one of moto, memory")
    return value


class LocalStack:
    def __init__(self, settings: StackSettings | None = None, *, bridge_output: Any = None):
        self.settings = settings or StackSettings.from_env()
        self._exit = contextlib.ExitStack()
        self._bridge_output = bridge_output
        self.broker: MosquittoProcess | None = None
        self.store: Any = None
        self.emulator: Any = None
        self.bridge: subprocess.Popen[bytes] | None = None
        self.timer: PeriodicTimer | None = None
        self._cancelled: Callable[[], bool] = lambda: False
        self._stop_deadline = 0.0

    # --- stopping in bounded time ------------------------------------------------------------
    def _share(self, cap: float, reserve: float) -> float:
        """Seconds one part may take to stop: at most ``cap``, leaving ``reserve`` for the parts after it."""
        return max(0.1, min(cap, self._stop_deadline - time.monotonic() - reserve))

    def _check_cancelled(self) -> None:
        if self._cancelled():
            raise StackInterrupted("stop requested while starting")

    # --- parts -----------------------------------------------------------------------------
    def _check_ports(self) -> None:
        s = self.settings
        for name, port in (
            ("bridge", s.bridge_port),
            ("bridge (TLS, client certificates)", s.bridge_tls_port),
            ("operator API", s.api_port),
            ("moto", s.moto_port),
            ("file server", s.files_port),
        ):
            if not port_free(s.host, port):
                variable = {
                    "bridge": "OCPP_BRIDGE_PORT",
                    "bridge (TLS, client certificates)": "OCPP_BRIDGE_TLS_PORT",
                    "operator API": "OCPP_API_PORT",
                    "moto": "OCPP_MOTO_PORT",
                    "file server": "OCPP_FILES_PORT",
                }[name]
                raise StackError(
                    f"port {s.host}:{port} for the {name} is already in use: stop what uses it or set {variable}"
                )

    def _start_broker(self) -> None:
        from .mqtt import MqttClient, MqttError

        s = self.settings
        if port_open(s.mqtt_host, s.mqtt_port):
            probe = MqttClient(s.mqtt_host, s.mqtt_port, f"local-stack-probe-{os.getpid()}")
            try:
                probe.start(timeout=5)
            except MqttError as error:
                raise StackError(
                    f"the MQTT broker at {s.mqtt_host}:{s.mqtt_port} refused us ({error}); set OCPP_MQTT_HOST/OCPP_MQTT_PORT"
                ) from None
            finally:
                probe.stop()
            logger.info("MQTT broker: using the one already running at %s:%s", s.mqtt_host, s.mqtt_port)
            return
        if s.mqtt_host not in _LOOPBACK:
            raise StackError(f"no MQTT broker reachable at {s.mqtt_host}:{s.mqtt_port}")
        if find_mosquitto() is None:
            raise StackError(not_found_message())
        broker = MosquittoProcess(s.mqtt_host, s.mqtt_port, die_with_parent=True)
        # Stops it and removes its temporary config directory, whether it started or not.
        self._exit.callback(self._stop_broker, broker)
        try:
            self.broker = broker.start(cancelled=self._cancelled)
        except BrokerCancelled:
            raise StackInterrupted("stop requested while starting mosquitto") from None
        except BrokerError as error:
            raise StackError(str(error)) from None
        logger.info("MQTT broker: started mosquitto on %s:%s", s.mqtt_host, s.mqtt_port)

    def _stop_broker(self, broker: MosquittoProcess) -> None:
        broker.stop(timeout=self._share(2.0, 0.0))
        broker.__exit__(None, None, None)

    def _start_moto(self) -> None:
        s = self.settings
        s.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(s.state_dir / "moto.log", "ab")
        proc = spawn(
            [
                sys.executable,
                "-m",
                "local_stack.moto_server",
                "-H",
                s.host,
                "-p",
                str(s.moto_port),
                "--ttl-interval",
                str(s.ttl_sweep_interval_s),
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        self._exit.callback(lambda: stop_process(proc, "moto", self._share(2.0, 1.0)))
        up = wait_for_port(s.host, s.moto_port, timeout=30, cancelled=self._cancelled)
        self._check_cancelled()
        if not up or proc.poll() is not None:
            raise StackError(f"moto did not start on {s.moto_url} (see {s.state_dir / 'moto.log'})")
        logger.info("moto (DynamoDB, IoT data plane): %s", s.moto_url)
        if s.ttl_sweep_interval_s > 0:
            logger.info(
                "expired items: removed by the moto server every %g s (moto applies no TTL; %s)",
                s.ttl_sweep_interval_s,
                SWEEP_INTERVAL_VARIABLE,
            )

    def _aws_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.settings.moto_url,
            "AWS_ACCESS_KEY_ID": "local",
            "AWS_SECRET_ACCESS_KEY": "local",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }

    def _start_processing(self) -> None:
        from lambdas import runtime
        from lambdas.adapters.dynamo import DynamoStore, create_table
        from lambdas.certificates import local_ca
        from lambdas.rules import RULES
        from lambdas.settings import SettingsError

        from .emulator import RuleEmulator
        from .environment import Environments, dynamodb_client, processing_dependencies, warm_up
        from .mqtt import MqttClient

        s = self.settings
        client = dynamodb_client(s)
        create_table(client, s.table_name)
        if s.state_backend == "memory":
            from ocpp_core.memory_store import InMemoryStore

            # the emulator's workers and the API share it: the store's lock stands for DynamoDB's
            # per-request atomicity
            self.store = InMemoryStore(lock=threading.RLock())
            logger.warning("state: in memory (OCPP_LOCAL_STATE=memory): nothing is persisted, for benchmarks only")
        else:
            self.store = DynamoStore(client, s.table_name)
        if s.demo_id_tag:
            self.store.put_id_token(s.demo_id_tag, {"idTag": s.demo_id_tag, "status": "Accepted"})
            logger.info("demo id tag %s (Accepted)", s.demo_id_tag)
        publisher_client = MqttClient(s.mqtt_host, s.mqtt_port, f"local-iot-data-{os.getpid()}").start()
        self._exit.callback(publisher_client.stop)
        try:
            deps = processing_dependencies(s, self.store, publisher_client)
        except SettingsError as error:
            raise StackError(str(error)) from None
        self.files: Any = deps.files
        logger.info(
            "certificate authority: %s (CA certificate %s)", local_ca.CA_NAME, local_ca.files(s.state_dir).ca_cert
        )
        runtime.configure(deps)
        self._exit.callback(runtime.configure, None)
        # The state in memory lives in this process: then it runs every handler.
        processes = s.lambda_environments if s.state_backend == "moto" else 1
        self.emulator = RuleEmulator(
            s.mqtt_host, s.mqtt_port, RULES, workers=s.emulator_workers, delivery=s.delivery, shard=(0, processes)
        ).start()
        emulator = self.emulator
        self._exit.callback(lambda: emulator.stop(self._share(2.0, 2.0)))
        environments = Environments(s, emulator, self._cancelled)
        # registered before it starts: a start that fails half-way stops the children it started
        self._exit.callback(lambda: environments.stop(self._share(2.5, 2.0)))
        environments.spawn()
        warm_up()  # while the children start theirs
        environments.wait_ready()
        logger.info("rule emulator: %s", ", ".join(f"'{r.sql}' -> {r.handler}" for r in RULES))

    def _start_events(self) -> None:
        """Domain events (DESIGN §11): the table's stream, read as the event source mapping does on
        AWS, to ``events.jsonl`` in the state directory and the webhook."""
        from lambdas.events_publisher import current_connection_reader

        from .event_sinks import LocalEventSink
        from .event_stream import POLL_INTERVAL_S, StreamPoller, local_client, local_sink, stream_arn

        s = self.settings
        if s.state_backend != "moto":
            logger.warning("domain events: none with OCPP_LOCAL_STATE=memory (they are read from moto's table stream)")
            return
        sink = self.events_sink = LocalEventSink(s.state_dir, s.events_webhook)
        sink.start()
        self._exit.callback(lambda: sink.stop(self._share(1.0, 2.0)))
        dynamodb = local_client("dynamodb", s.moto_url)
        poller = self.events_poller = StreamPoller(
            local_client("dynamodbstreams", s.moto_url),
            stream_arn(dynamodb, s.table_name),
            local_sink(sink),
            current_connection_reader(self.store),
        )
        timer = PeriodicTimer(poller.poll, interval_s=POLL_INTERVAL_S, name="events-stream").start()
        self._exit.callback(lambda: timer.stop(self._share(1.0, 2.0)))
        logger.info(
            "domain events: %s%s",
            sink.file.path,
            f" and POST {s.events_webhook}" if s.events_webhook else f" (set {WEBHOOK_VARIABLE} to POST them too)",
        )

    def _start_files(self) -> None:
        """The file server (S3 on AWS): chargers' uploads, firmware downloads, on the processing's store."""
        from lambdas.runtime import dependencies

        from .file_server import FileServer

        s, deps = self.settings, dependencies()
        server = self.file_server = FileServer(
            s.host,
            s.files_port,
            store=self.store,
            files=self.files,
            now_ms=deps.clock.now_ms,
            max_bytes=deps.settings.files_max_bytes,
        ).start()
        self._exit.callback(server.stop)
        logger.info(
            "file server: %s (uploads under %s, firmware under %s)",
            server.url,
            self.files.files_dir,
            self.files.firmware_dir,
        )

    def _start_timer(self) -> None:
        """The outbox timer (EventBridge's schedule on AWS), on the dependencies ``_start_processing`` configured."""
        s = self.settings
        if s.timer_interval_s <= 0:
            return
        from lambdas.timer import handle  # imported here: it needs the dependencies configured first

        timer = self.timer = PeriodicTimer(handle, interval_s=s.timer_interval_s).start()
        self._exit.callback(lambda: timer.stop(self._share(1.0, 2.0)))
        logger.info(
            "outbox timer: call timeouts and queued calls every %g s (every minute on AWS; %s)",
            s.timer_interval_s,
            TIMER_INTERVAL_VARIABLE,
        )

    def _start_bridge(self) -> None:
        from lambdas.certificates import local_ca

        s = self.settings
        # Idempotent: the CA (and the bridge's server certificate) exist once processing started,
        # but the bridge must not depend on that order.
        local_ca.load_or_create(s.state_dir)
        ca_files = local_ca.files(s.state_dir)
        env = {
            **os.environ,
            **self._aws_env(),
            "BRIDGE_HOST": s.host,
            "BRIDGE_PORT": str(s.bridge_port),
            # Security profile 3: wss:// with the dev CA's server certificate, client certificates
            # from the same CA (what SignCertificate issues).
            "BRIDGE_TLS_PORT": str(s.bridge_tls_port),
            "BRIDGE_TLS_PORT_CERT": str(ca_files.bridge_cert.resolve()),
            "BRIDGE_TLS_PORT_KEY": str(ca_files.bridge_key.resolve()),
            "BRIDGE_CLIENT_CA": str(ca_files.ca_cert.resolve()),
            "BRIDGE_MQTT_HOST": s.mqtt_host,
            "BRIDGE_MQTT_PORT": str(s.mqtt_port),
            "BRIDGE_MQTT_AUTH": "none",
            "BRIDGE_REGISTRY_TABLE": s.table_name,
            "BRIDGE_UNKNOWN_CHARGERS": "accept" if s.unknown_chargers != "reject" else "reject",
            "BRIDGE_DRAIN_TIMEOUT": LOCAL_BRIDGE_DRAIN_S,
            **dict(s.bridge_env),
        }
        bridge = self.bridge = spawn(
            [sys.executable, "-m", "fargate_bridge"], env=env, stdout=self._bridge_output, stderr=self._bridge_output
        )
        # The bridge drains first (it needs the broker for its last publishes): the largest share.
        self._exit.callback(lambda: stop_process(bridge, "bridge", self._share(float(LOCAL_BRIDGE_DRAIN_S) + 1, 3.0)))
        deadline = time.monotonic() + 30
        health = f"http://{s.host}:{s.bridge_port}/health"
        while time.monotonic() < deadline:
            self._check_cancelled()
            if self.bridge.poll() is not None:
                raise StackError(f"the bridge exited at start (code {self.bridge.returncode}); see its log above")
            try:
                with urllib.request.urlopen(health, timeout=1) as response:
                    if response.status == 200:
                        logger.info("bridge (charger endpoint): %s/<chargePointId>  health: %s", s.bridge_url, health)
                        logger.info(
                            "bridge (security profile 3, client certificates): %s/<chargePointId>  (CA %s)",
                            s.bridge_tls_url,
                            ca_files.ca_cert,
                        )
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise StackError(f"the bridge did not become healthy at {health} within 30 s")

    def _start_api(self) -> None:
        s = self.settings
        try:
            from .api_server import start_api_server
        except ImportError:
            logger.warning("operator API: not available in this build")
            return
        from lambdas.api.files import body_limits
        from lambdas.runtime import dependencies

        server = start_api_server(s.host, s.api_port, body_limits=body_limits(dependencies().settings))
        self._exit.callback(server.shutdown if hasattr(server, "shutdown") else server.stop)
        logger.info("operator API: %s  (try: python -m csms_cli chargers list)", s.api_url)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self, *, cancelled: Callable[[], bool] | None = None) -> LocalStack:
        """Start every part; raises :class:`StackInterrupted` (having stopped them) once ``cancelled()`` holds.

        Call it from the main thread: the children's parent-death signal fires when the thread
        that forked them exits (``children.py``).
        """
        if cancelled is not None:
            self._cancelled = cancelled
        try:
            for step in (
                self._check_ports,
                self._start_broker,
                self._start_moto,
                self._start_processing,
                self._start_files,
                self._start_events,
                self._start_timer,
                self._start_bridge,
                self._start_api,
            ):
                self._check_cancelled()
                step()
            self._check_cancelled()
        except StackInterrupted:
            logger.info("stopping...")
            self.stop()
            raise
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, budget: float = STOP_BUDGET_S) -> None:
        """Stop every part started, in reverse order, within about ``budget`` seconds."""
        self._stop_deadline = time.monotonic() + budget
        self._exit.close()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def with_ports(settings: StackSettings, **ports: int) -> StackSettings:
    return replace(settings, **ports)
