"""Memory per connected charger and round-trip throughput of the bridge, next to a raw echo server.

``python -m benchmarks.bench_bridge [--chargers 2000] [--duration 10] [--verbose]``

* A private mosquitto (``max_connections -1``) on a free port.
* A responder subprocess: one MQTT5 client on ``ocpp/+/in`` answering each CALL with a
  CALLRESULT on ``ocpp/{cp}/out`` (the processor's place, doing nothing), QoS 1 both ways.
* The bridge as ``python -m fargate_bridge`` in a subprocess, so its RSS is its own.
* N WebSocket clients in this process. RSS per charger = (RSS with N connected, each having
  done one round trip - RSS idle) / N. Then every client sends CALLs back to back (one
  outstanding each, as OCPP allows) for a fixed time: round trips/s, p50/p99 latency.
* The same load against a raw websockets server (subprocess) that answers each CALL itself:
  the upper bound for Python websockets on this machine. Bridge and echo loads alternate in
  rounds, so that both see the same background load.

Everything binds to 127.0.0.1; every loop is bounded in time and count. Prints one line:
``bench bridge: chargers=<n> rss_per_charger_kb=<x> round_trips_per_s=<r> p99_ms=<p> p50_ms=<q>
echo_round_trips_per_s=<e>``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve

from local_stack.broker import MosquittoProcess
from local_stack.ports import free_port, wait_for_port

HOST = "127.0.0.1"
PROTOCOL = "ocpp1.6"
CONNECT_CONCURRENCY = 100
MAX_CALLS_PER_CHARGER = 100_000  # a bound on the load loop besides its duration
ROUNDS = 5  # bridge and echo loads alternate, duration / ROUNDS seconds each time


class _BenchBroker(MosquittoProcess):
    """The private mosquitto, with more QoS 1 messages in flight per client than its default 20.

    The responder carries every charger's traffic on one connection; with 20 unacknowledged
    publishes at a time it would be the bottleneck, not the bridge. (IoT Core allows 100 per
    connection, which one charger never approaches.)
    """

    def _write_config(self) -> Path:
        config = super()._write_config()
        with open(config, "a") as extra:
            extra.write("max_inflight_messages 1000\n")
        return config


def _log(verbose: bool, message: str) -> None:
    if verbose:
        print(message, file=sys.stderr, flush=True)


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _reply_for(frame: str) -> str | None:
    """CALLRESULT for a CALL, as the processor would send (minus the processing)."""
    try:
        message = json.loads(frame)
    except ValueError:
        return None
    if isinstance(message, list) and len(message) >= 3 and message[0] == 2:
        return json.dumps([3, message[1], {"currentTime": "2026-01-01T00:00:00Z"}])
    return None


# --- roles run in subprocesses ---------------------------------------------------------------------
def run_responder(mqtt_port: int) -> None:
    """Answer every CALL on ``ocpp/+/in`` on ``ocpp/{cp}/out`` (QoS 1), until SIGTERM."""
    from awscrt import mqtt5

    connected = threading.Event()
    client: mqtt5.Client

    def on_publish(data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        if packet is None or packet.topic is None:
            return
        try:
            envelope = json.loads(bytes(packet.payload or b""))
            reply = _reply_for(envelope["frame"])
        except (ValueError, KeyError, TypeError):
            return
        if reply is not None:
            cp = envelope["chargePointId"]
            client.publish(
                mqtt5.PublishPacket(topic=f"ocpp/{cp}/out", payload=reply.encode(), qos=mqtt5.QoS.AT_LEAST_ONCE)
            )

    client = mqtt5.Client(
        mqtt5.ClientOptions(
            host_name=HOST,
            port=mqtt_port,
            connect_options=mqtt5.ConnectPacket(client_id="bench-responder", keep_alive_interval_sec=60),
            on_publish_callback_fn=on_publish,
            on_lifecycle_event_connection_success_fn=lambda _: connected.set(),
            disable_metrics=True,
        )
    )
    client.start()
    if not connected.wait(10):
        raise SystemExit("responder could not connect")
    client.subscribe(
        mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(topic_filter="ocpp/+/in", qos=mqtt5.QoS.AT_LEAST_ONCE)])
    ).result(10)
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait(600)
    client.stop()


def run_echo_server(port: int) -> None:
    """A websockets server answering each CALL itself: what the bridge is compared with."""

    async def handler(ws: ServerConnection) -> None:
        async for frame in ws:
            if isinstance(frame, str):
                reply = _reply_for(frame)
                if reply is not None:
                    await ws.send(reply)

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        async with serve(handler, HOST, port, subprotocols=[PROTOCOL], compression=None, max_size=65536):  # type: ignore[list-item]
            print("ready", flush=True)
            await asyncio.wait_for(stop.wait(), 600)

    asyncio.run(main())


# --- load --------------------------------------------------------------------------------------------
async def _open_clients(url_base: str, count: int) -> list[ClientConnection]:
    semaphore = asyncio.Semaphore(CONNECT_CONCURRENCY)

    async def one(index: int) -> ClientConnection:
        async with semaphore:
            for attempt in range(5):
                try:
                    return await connect(
                        f"{url_base}/BENCH-{index:05d}",
                        subprotocols=[PROTOCOL],  # type: ignore[list-item]
                        compression=None,
                        open_timeout=30,
                        ping_interval=None,
                        max_size=65536,
                    )
                except OSError:
                    await asyncio.sleep(0.2 * (attempt + 1))
            raise RuntimeError(f"charger {index} could not connect")

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def _call(ws: ClientConnection, unique_id: str, timeout: float) -> float:
    started = time.perf_counter()
    await ws.send(json.dumps([2, unique_id, "Heartbeat", {}]))
    reply = await asyncio.wait_for(ws.recv(), timeout)
    if not isinstance(reply, str) or f'"{unique_id}"' not in reply:
        raise RuntimeError(f"unexpected reply {reply!r}")
    return time.perf_counter() - started


async def _warm_up(clients: list[ClientConnection], timeout: float) -> None:
    """One round trip per charger: every MQTT session is up and subscribed afterwards."""
    await asyncio.gather(*(_call(ws, f"w{i}", timeout) for i, ws in enumerate(clients)))


async def _load(clients: list[ClientConnection], duration: float, tag: str) -> tuple[int, list[float], float]:
    deadline = time.perf_counter() + duration
    latencies: list[float] = []

    async def loop(index: int, ws: ClientConnection) -> None:
        for n in range(MAX_CALLS_PER_CHARGER):
            if time.perf_counter() >= deadline:
                return
            latencies.append(await _call(ws, f"{tag}-{index}-{n}", 30.0))

    started = time.perf_counter()
    await asyncio.gather(*(loop(i, ws) for i, ws in enumerate(clients)))
    return len(latencies), latencies, time.perf_counter() - started


async def _close_all(clients: list[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in clients), return_exceptions=True)


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@contextlib.contextmanager
def _subprocess(
    args: list[str], env: dict[str, str] | None = None, wait_ready: bool = True
) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=None, text=True, env=env, start_new_session=True
    )
    try:
        if wait_ready:
            line = proc.stdout.readline() if proc.stdout else ""
            if line.strip() != "ready":
                raise RuntimeError(f"{args} did not start: {line!r}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


async def _health_ok(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(HOST, port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            status = await reader.readline()
            writer.close()
            if b" 200 " in status:
                return True
        except OSError:
            pass
        await asyncio.sleep(0.1)
    return False


@contextlib.contextmanager
def _bridge_process(
    port: int, mqtt_port: int, chargers: int, env_overrides: dict[str, str | None] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "BRIDGE_HOST": HOST,
        "BRIDGE_PORT": str(port),
        "BRIDGE_MQTT_HOST": HOST,
        "BRIDGE_MQTT_PORT": str(mqtt_port),
        "BRIDGE_MQTT_AUTH": "none",
        "BRIDGE_MQTT_CONNECT_RATE": "5000",
        "BRIDGE_MQTT_CONNECT_BURST": "1000",
        "BRIDGE_MAX_CONNECTIONS": str(chargers + 100),
        "BRIDGE_LOG_LEVEL": "WARNING",
        "BRIDGE_METRICS_INTERVAL": "3600",
        "BRIDGE_REGISTRY_TABLE": "",
        # Load generators send CALLs back to back; the per-charger rate limit is not measured here.
        "BRIDGE_FRAME_RATE": "100000",
        "BRIDGE_FRAME_BURST": "100000",
    }
    for name, value in (env_overrides or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "fargate_bridge"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
        try:
            if not wait_for_port(HOST, port, 20):
                log.seek(0)
                raise RuntimeError(f"bridge did not start: {log.read()[-2000:]!r}")
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


class Result:
    def __init__(self) -> None:
        self.count = 0
        self.elapsed = 0.0
        self.latencies: list[float] = []

    def add(self, count: int, latencies: list[float], elapsed: float) -> None:
        self.count += count
        self.latencies.extend(latencies)
        self.elapsed += elapsed

    @property
    def rate(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0


async def _measure(
    args: argparse.Namespace, mqtt_port: int, others: dict[str, psutil.Process]
) -> tuple[float, Result, Result]:
    """RSS per charger, then bridge and echo loads in alternating rounds.

    Alternating (rather than one long run each) puts both under the same background load:
    this machine is shared, and its load changes over a minute.
    """
    bridge_port, echo_port = free_port(HOST), free_port(HOST)
    with (
        _bridge_process(bridge_port, mqtt_port, args.chargers) as proc,
        _subprocess(["-m", "benchmarks.bench_bridge", "--role", "echo", "--port", str(echo_port)]),
    ):
        if not await _health_ok(bridge_port, 20):
            raise RuntimeError("bridge did not report a reachable broker")
        bridge = psutil.Process(proc.pid)
        await asyncio.sleep(1.0)
        idle = bridge.memory_info().rss
        bridge_clients = await _open_clients(f"ws://{HOST}:{bridge_port}/ocpp", args.chargers)
        await _warm_up(bridge_clients, 60.0)
        await asyncio.sleep(1.0)
        connected = bridge.memory_info().rss
        rss_per_charger_kb = (connected - idle) / args.chargers / 1024
        _log(args.verbose, f"bridge rss idle={idle / 2**20:.1f} MiB connected={connected / 2**20:.1f} MiB")
        echo_clients = await _open_clients(f"ws://{HOST}:{echo_port}/ocpp", args.chargers)
        await _warm_up(echo_clients, 60.0)

        watched = {"bridge": bridge, "clients": psutil.Process(), **others}
        cpu_before = {name: sum(p.cpu_times()[:2]) for name, p in watched.items()}
        bridged, echoed = Result(), Result()
        for round_ in range(ROUNDS):
            bridged.add(*await _load(bridge_clients, args.duration / ROUNDS, f"b{round_}"))
            echoed.add(*await _load(echo_clients, args.duration / ROUNDS, f"e{round_}"))
        cpu = " ".join(f"{name}={sum(p.cpu_times()[:2]) - cpu_before[name]:.1f}" for name, p in watched.items())
        _log(
            args.verbose,
            f"bridge rss after load={bridge.memory_info().rss / 2**20:.1f} MiB; cpu s in "
            f"{bridged.elapsed + echoed.elapsed:.1f} s: {cpu}",
        )
        await _close_all(bridge_clients + echo_clients)
    return rss_per_charger_kb, bridged, echoed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_bridge", description=__doc__.split("\n")[0])
    parser.add_argument("--chargers", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of load per server, in rounds")
    parser.add_argument("--verbose", action="store_true", help="details on stderr")
    parser.add_argument("--role", choices=("bench", "responder", "echo"), default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "responder":
        run_responder(args.port)
        return 0
    if args.role == "echo":
        run_echo_server(args.port)
        return 0
    if not 1 <= args.chargers <= 9000 or not 0 < args.duration <= 60:
        parser.error("--chargers must be 1..9000 and --duration 0..60 s")
    _raise_fd_limit()
    root = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = root + os.pathsep + os.environ.get("PYTHONPATH", "")
    with _BenchBroker(max_connections=-1) as broker:
        with _subprocess(
            ["-m", "benchmarks.bench_bridge", "--role", "responder", "--port", str(broker.port)]
        ) as responder:
            others = {"responder": psutil.Process(responder.pid)}
            if broker._proc is not None:
                others["mosquitto"] = psutil.Process(broker._proc.pid)
            rss_kb, bridged, echoed = asyncio.run(_measure(args, broker.port, others))
    print(
        f"bench bridge: chargers={args.chargers} rss_per_charger_kb={rss_kb:.1f} "
        f"round_trips_per_s={bridged.rate:.0f} p99_ms={_percentile(bridged.latencies, 0.99) * 1000:.1f} "
        f"p50_ms={statistics.median(bridged.latencies) * 1000:.1f} echo_round_trips_per_s={echoed.rate:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
