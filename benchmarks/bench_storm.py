"""Connection storm: N chargers open their sockets within one second on one bridge (issue 12).

``python -m benchmarks.bench_storm [--chargers 3000] [--spread 1.0] [--verbose]``

* A private mosquitto, the MQTT responder of ``bench_bridge`` (answers every CALL), and the bridge
  as ``python -m fargate_bridge`` with its production pacing (``BRIDGE_MQTT_CONNECT_RATE`` and
  ``_BURST`` defaults) in subprocesses.
* The chargers run in ``--workers`` client processes (so the load generator is not the
  bottleneck); each opens its sockets spread over ``--spread`` seconds, sends a BootNotification
  as soon as the socket is open and waits for its CALLRESULT. One try each, as the issue asks:
  no retry. A charger's handshake waits up to 60 s (``open_timeout``), the boot reply as long.
* booted = got the BootNotification CALLRESULT; all_booted_s = from the first connect to the last
  boot answered; handshake_failures = sockets refused, reset or timed out before the upgrade.

Everything binds to 127.0.0.1. Prints one line:
``bench storm: chargers=<n> booted=<b> all_booted_s=<s> handshake_failures=<f>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from websockets.asyncio.client import connect

from local_stack.ports import free_port

from .bench_bridge import HOST, PROTOCOL, _BenchBroker, _bridge_process, _health_ok, _subprocess

CHARGER_TIMEOUT = 60.0


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _charger(url: str, index: int, start_at: float) -> tuple[str, float]:
    """('booted' | 'handshake' | 'boot', monotonic time it ended)."""
    await asyncio.sleep(max(0.0, start_at - time.monotonic()))
    try:
        ws = await connect(
            f"{url}/STORM-{index:05d}",
            subprotocols=[PROTOCOL],  # type: ignore[list-item]
            compression=None,
            open_timeout=CHARGER_TIMEOUT,
            ping_interval=None,
            max_size=65536,
        )
    except Exception:  # noqa: BLE001 - refused, reset, timed out, bad status: all the same here
        return "handshake", time.monotonic()
    try:
        unique_id = f"boot-{index}"
        await ws.send(
            json.dumps([2, unique_id, "BootNotification", {"chargePointVendor": "v", "chargePointModel": "m"}])
        )
        reply = await asyncio.wait_for(ws.recv(), CHARGER_TIMEOUT)
        ok = isinstance(reply, str) and f'"{unique_id}"' in reply
        return ("booted" if ok else "boot"), time.monotonic()
    except Exception:  # noqa: BLE001
        return "boot", time.monotonic()
    finally:
        await ws.close()


async def _worker(url: str, indices: list[int], spread: float, t0_wall: float) -> list[tuple[str, float]]:
    # Every worker shares the wall-clock start, so the storm really lands within ``spread``.
    offset = time.monotonic() - time.time()
    start = t0_wall + offset
    count = max(1, len(indices))
    tasks = [_charger(url, index, start + spread * n / count) for n, index in enumerate(indices)]
    results = await asyncio.gather(*tasks)
    return [(kind, ended - offset) for kind, ended in results]  # back to wall-clock time


def run_worker(url: str, first: int, count: int, spread: float, t0_wall: float) -> None:
    _raise_fd_limit()
    results = asyncio.run(_worker(url, list(range(first, first + count)), spread, t0_wall))
    print(json.dumps(results), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_storm", description=__doc__.split("\n")[0])
    parser.add_argument("--chargers", type=int, default=3000)
    parser.add_argument("--spread", type=float, default=1.0, help="seconds over which the sockets open")
    parser.add_argument("--workers", type=int, default=2, help="client processes")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--role", choices=("bench", "worker"), default="bench", help=argparse.SUPPRESS)
    parser.add_argument("--url", default="", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--t0", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "worker":
        run_worker(args.url, args.first, args.count, args.spread, args.t0)
        return 0
    if not 1 <= args.chargers <= 9000 or not 0 < args.spread <= 60 or not 1 <= args.workers <= 8:
        parser.error("--chargers must be 1..9000, --spread 0..60 s, --workers 1..8")
    _raise_fd_limit()
    root = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = root + os.pathsep + os.environ.get("PYTHONPATH", "")
    with _BenchBroker(max_connections=-1) as broker:
        with _subprocess(["-m", "benchmarks.bench_bridge", "--role", "responder", "--port", str(broker.port)]):
            port = free_port(HOST)
            # The production CONNECT pacing (BRIDGE_MQTT_CONNECT_RATE / _BURST defaults): the
            # storm must queue behind it, not fail.
            production = {"BRIDGE_MQTT_CONNECT_RATE": None, "BRIDGE_MQTT_CONNECT_BURST": None}
            with _bridge_process(port, broker.port, args.chargers, env_overrides=production):
                if not asyncio.run(_health_ok(port, 20)):
                    raise RuntimeError("bridge did not report a reachable broker")
                t0, results = _storm(args, f"ws://{HOST}:{port}/ocpp")
    booted = [ended for kind, ended in results if kind == "booted"]
    failures = sum(kind == "handshake" for kind, _ in results)
    all_booted_s = (max(booted) - t0) if len(booted) == args.chargers else float("nan")
    if args.verbose:
        print(f"# boot failures after the handshake: {sum(kind == 'boot' for kind, _ in results)}", file=sys.stderr)
    print(
        f"bench storm: chargers={args.chargers} booted={len(booted)} all_booted_s={all_booted_s:.1f} "
        f"handshake_failures={failures}"
    )
    return 0


def _storm(args: argparse.Namespace, url: str) -> tuple[float, list[tuple[str, float]]]:
    """The storm's wall-clock start and, per charger, how it ended and when."""
    t0 = time.time() + 2.0  # time for the workers to start
    share, extra = divmod(args.chargers, args.workers)
    procs = []
    first = 0
    for worker in range(args.workers):
        count = share + (1 if worker < extra else 0)
        cmd = [sys.executable, "-m", "benchmarks.bench_storm", "--role", "worker", "--url", url]
        cmd += ["--first", str(first), "--count", str(count), "--spread", str(args.spread), "--t0", str(t0)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
        first += count
    results: list[tuple[str, float]] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=CHARGER_TIMEOUT * 2 + 30)
        lines = [line for line in out.splitlines() if line.startswith("[")]
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"storm worker failed ({proc.returncode})")
        results.extend((kind, ended) for kind, ended in json.loads(lines[-1]))
    return t0, results


if __name__ == "__main__":
    sys.exit(main())
