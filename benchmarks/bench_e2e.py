"""End to end through the local stack: N simulated chargers, each sending a call every 10 s.

Starts ``python -m local_stack`` (own mosquitto, moto, bridge, rule emulator) on free ports,
runs the simulator's load mode against it, and prints
``bench e2e: chargers=<n> calls=<c> errors=<e> p50_ms=<x> p99_ms=<y>``.

The same load again with the rule emulator delivering as AWS does (``OCPP_RULE_DELIVERY=aws``:
unordered, 0-50 ms delays, 5 % duplicates, 2 % redelivered 1-3 s late; DESIGN §7) prints
``bench e2e-aws-order: ...`` with the same fields. A duplicated CALL is answered twice; the
simulator ignores the second answer (not an error), so what this line adds is the extra
processor work and whatever the unordered state writes cost in errors and latency.

To show where the time goes, it also samples, during the run, the DynamoDB work the processor
does for one Heartbeat (the one conditional write that moves ``lastSeen``) straight against
the stack's moto server, and prints it as ``bench e2e-moto: ...`` (``bench e2e-aws-order-moto: ...``
for the aws run): when that alone is close to
the end-to-end latency, moto (a single-process emulator of DynamoDB) is the bottleneck, not the
bridge or the processor.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from local_stack.process import RunningStack, start_stack, stop_stack
from ocpp_core.versions import OcppVersion


def _moto_sampler(stack: RunningStack, stop: threading.Event, samples: list[float]) -> None:
    store = stack.store()
    store.update_charger("BENCH-PROBE", {"registered": True})
    i = 0
    while not stop.is_set():
        i += 1
        start = time.perf_counter()
        store.touch_charger("BENCH-PROBE", int(time.time() * 1000), {"protocol": "ocpp1.6"})
        samples.append((time.perf_counter() - start) * 1000)
        stop.wait(0.5)


def _pct(values: list[float], pct: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


#: The rule emulator's environment per delivery mode (``local_stack.delivery``; aws: its defaults, seeded).
DELIVERY_ENV: dict[str, dict[str, str]] = {
    "ordered": {},
    "aws": {"OCPP_RULE_DELIVERY": "aws", "OCPP_RULE_SEED": "7"},
}


#: The ``bench <label>:`` of each (state backend, delivery mode) run.
LABELS = {
    ("moto", "ordered"): "e2e",
    ("memory", "ordered"): "e2e-memory",
    ("moto", "aws"): "e2e-aws-order",
    ("memory", "aws"): "e2e-aws-order-memory",
}


def _run(
    args: argparse.Namespace, versions: tuple[OcppVersion, ...], backend: str, delivery: str
) -> tuple[Any, list[float]]:
    from simulator.load import LoadConfig, run_load

    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as state:
        stack = start_stack(
            Path(state),
            {
                "BRIDGE_MAX_CONNECTIONS": str(args.chargers + 100),
                "BRIDGE_MQTT_CONNECT_RATE": "500",
                "OCPP_LOG_LEVEL": "WARNING",
                "BRIDGE_LOG_LEVEL": "WARNING",
                "OCPP_LOCAL_STATE": backend,
                **DELIVERY_ENV[delivery],
            },
        )
        samples: list[float] = []
        stop = threading.Event()
        sampler = threading.Thread(target=_moto_sampler, args=(stack, stop, samples), daemon=True)
        try:
            if backend == "moto":
                sampler.start()
            summary = asyncio.run(
                run_load(
                    LoadConfig(
                        chargers=args.chargers,
                        rate_per_charger=1.0 / args.interval,
                        duration=args.duration,
                        ramp_up=args.ramp_up,
                        url=stack.ws_url,
                        versions=versions,
                        id_prefix="E2E-",
                        id_tag="DEMO-TAG",
                        seed=7,
                    )
                )
            )
        finally:
            stop.set()
            if sampler.is_alive():
                sampler.join(timeout=10)
            stop_stack(stack)
    return summary, samples


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="end-to-end benchmark through the local stack")
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between calls per charger (default 10)")
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--ramp-up", type=float, default=20.0, help="seconds over which chargers connect (default 20)")
    parser.add_argument("--version", choices=["1.6", "2.0.1", "2.1", "mixed"], default="mixed")
    parser.add_argument(
        "--state",
        choices=["moto", "memory", "both"],
        default="both",
        help="state backend of the local stack: moto (the real local stack), memory (to show moto's share), both",
    )
    parser.add_argument(
        "--delivery",
        choices=["ordered", "aws", "both"],
        default="both",
        help="rule emulator delivery: ordered, aws (unordered, duplicates, late redeliveries; on moto), both",
    )
    args = parser.parse_args(argv)

    # Under overload every late answer to a timed-out call would log a line per station; the
    # timeouts are already counted as errors in the summary.
    logging.getLogger("simulator").setLevel(logging.ERROR)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = min(hard, max(soft, args.chargers * 4 + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))  # inherited by the stack and its bridge

    versions = {
        "1.6": (OcppVersion.V16,),
        "2.0.1": (OcppVersion.V201,),
        "2.1": (OcppVersion.V21,),
        "mixed": (OcppVersion.V16, OcppVersion.V201, OcppVersion.V21),
    }[args.version]
    backends = ["moto", "memory"] if args.state == "both" else [args.state]
    deliveries = ["ordered", "aws"] if args.delivery == "both" else [args.delivery]
    runs = [(b, d) for d in deliveries for b in backends]
    if args.state == "both" and args.delivery == "both":
        # By default the aws-ordering run is about the real local stack: on moto only.
        runs.remove(("memory", "aws"))
    for backend, delivery in runs:
        summary, samples = _run(args, versions, backend, delivery)
        label = LABELS[backend, delivery]
        # A charger that never connected is an error too: its calls were never made.
        errors = summary.errors + summary.failed + (summary.chargers - summary.connected)
        print(
            f"bench {label}: chargers={summary.connected} calls={summary.calls} errors={errors} "
            f"p50_ms={summary.p50_ms:.1f} p99_ms={summary.p99_ms:.1f} max_ms={summary.max_ms:.1f} "
            f"calls_per_s={summary.calls_per_s:.1f} steady_calls={summary.steady_calls} "
            f"steady_p50_ms={summary.steady_p50_ms:.1f} steady_p99_ms={summary.steady_p99_ms:.1f}",
            flush=True,
        )
        if samples:
            print(
                f"bench {label}-moto: heartbeat_dynamodb_ops_p50_ms={statistics.median(samples):.1f} "
                f"p99_ms={_pct(samples, 99):.1f} samples={len(samples)} (the one UpdateItem of a Heartbeat, "
                "sampled against the stack's moto during the run)",
                flush=True,
            )
        if errors:
            print(
                f"bench {label}: error detail: {summary.per_action_errors} connect={summary.connect_errors}",
                file=sys.stderr,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
