"""Per-message cost of the processor, and the import time of the message-processor Lambda.

``bench processor``: the same OCPP 1.6 frames (a mix of BootNotification, Heartbeat,
StatusNotification, MeterValues, StartTransaction, StopTransaction) through
``ocpp_core.process`` with the in-memory store, and through the ``ocpp`` library's
``ChargePoint.route_message`` (the design this project replaces), both with full schema
validation of requests and responses, in the same run.

``bench cold-start``: ``import lambdas.message_processor`` in a fresh interpreter with boto3
already imported (excluded, as on Lambda where the runtime ships it), bytecode cached, the
median of several runs.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from ocpp_core import InMemoryStore, ProcessorConfig, UnknownChargerPolicy, process

CP = "BENCH-CP-1"
_TS = "2026-01-01T00:00:00Z"


def _frames(count: int) -> list[str]:
    """``count`` frames cycling through the mix; unique ids never repeat (idempotency)."""
    templates: list[tuple[str, dict[str, Any]]] = [
        ("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "B1", "firmwareVersion": "1.0"}),
        ("Heartbeat", {}),
        ("StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": _TS}),
        (
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": 1,
                "meterValue": [
                    {
                        "timestamp": _TS,
                        "sampledValue": [
                            {"value": "1234", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                            {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
                        ],
                    }
                ],
            },
        ),
        ("StartTransaction", {"connectorId": 1, "idTag": "TAG-1", "meterStart": 1000, "timestamp": _TS}),
        (
            "StopTransaction",
            {"transactionId": 1, "idTag": "TAG-1", "meterStop": 5000, "timestamp": _TS, "reason": "Local"},
        ),
    ]
    frames = []
    for i in range(count):
        action, payload = templates[i % len(templates)]
        frames.append(json.dumps([2, f"m-{i}", action, payload]))
    return frames


class _Clock:
    def now_ms(self) -> int:
        return 1_800_000_000_000


class _Ids:
    def __init__(self) -> None:
        self._n = itertools.count()

    def new_id(self) -> str:
        return f"id-{next(self._n)}"


def bench_ours(frames: list[str]) -> float:
    """Microseconds per message."""
    store = InMemoryStore()
    store.put_id_token("TAG-1", {"status": "Accepted"})
    config = ProcessorConfig(unknown_chargers=UnknownChargerPolicy.ACCEPT)
    clock, ids = _Clock(), _Ids()
    envelopes = [
        {"chargePointId": CP, "protocol": "ocpp1.6", "connectionId": "c", "receivedAt": 0, "frame": f} for f in frames
    ]
    # Warm up: compile the schemas, fill caches (a long-lived Lambda environment is warm too).
    for envelope in envelopes[:60]:
        process(
            {**envelope, "frame": envelope["frame"].replace('"m-', '"warm-')},
            store=store,
            clock=clock,
            ids=ids,
            config=config,
        )
    start = time.perf_counter()
    for envelope in envelopes:
        outcome = process(envelope, store=store, clock=clock, ids=ids, config=config)
        if outcome.reply is None or outcome.reply[1] != "3":
            raise RuntimeError(f"unexpected outcome {outcome}")
    return (time.perf_counter() - start) / len(envelopes) * 1e6


def bench_ocpp_lib(frames: list[str]) -> float:
    """Microseconds per message through ``ocpp.v16.ChargePoint.route_message``."""
    from ocpp.routing import on
    from ocpp.v16 import ChargePoint, call_result
    from ocpp.v16.enums import Action, AuthorizationStatus, RegistrationStatus

    logging.getLogger("ocpp").setLevel(logging.CRITICAL)
    counter = itertools.count(1)
    state: dict[str, Any] = {"status": {}, "transactions": {}, "meter": []}

    class Connection:
        def __init__(self) -> None:
            self.sent = 0

        async def send(self, message: str) -> None:
            self.sent += 1

        async def recv(self) -> str:  # pragma: no cover - never called by route_message
            raise RuntimeError

    class CentralSystem(ChargePoint):
        @on(Action.boot_notification)
        def boot(self, charge_point_vendor: str, charge_point_model: str, **kwargs: Any) -> Any:
            return call_result.BootNotification(current_time=_TS, interval=300, status=RegistrationStatus.accepted)

        @on(Action.heartbeat)
        def heartbeat(self) -> Any:
            return call_result.Heartbeat(current_time=_TS)

        @on(Action.status_notification)
        def status(self, connector_id: int, error_code: str, status: str, **kwargs: Any) -> Any:
            state["status"][connector_id] = status
            return call_result.StatusNotification()

        @on(Action.meter_values)
        def meter(self, connector_id: int, meter_value: list[Any], **kwargs: Any) -> Any:
            state["meter"].append(meter_value)
            return call_result.MeterValues()

        @on(Action.start_transaction)
        def start(self, connector_id: int, id_tag: str, meter_start: int, timestamp: str, **kwargs: Any) -> Any:
            tx = next(counter)
            state["transactions"][tx] = meter_start
            return call_result.StartTransaction(transaction_id=tx, id_tag_info={"status": AuthorizationStatus.accepted})

        @on(Action.stop_transaction)
        def stop(self, transaction_id: int, meter_stop: int, timestamp: str, **kwargs: Any) -> Any:
            state["transactions"][transaction_id] = meter_stop
            return call_result.StopTransaction(id_tag_info={"status": AuthorizationStatus.accepted})

    connection = Connection()
    cp = CentralSystem(CP, connection)

    async def run() -> float:
        for frame in frames[:60]:
            await cp.route_message(frame)
        start = time.perf_counter()
        for frame in frames:
            await cp.route_message(frame)
        return (time.perf_counter() - start) / len(frames) * 1e6

    result = asyncio.run(run())
    if connection.sent < len(frames):
        raise RuntimeError(f"the ocpp library answered {connection.sent} of {len(frames)} frames")
    return result


_IMPORT_PROBE = """
import time, boto3, botocore.session
t = time.perf_counter()
import lambdas.message_processor
print((time.perf_counter() - t) * 1000)
"""


def bench_cold_start(runs: int = 7) -> float:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    subprocess.run([sys.executable, "-c", _IMPORT_PROBE], env=env, check=True, capture_output=True)  # caches bytecode
    samples = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], env=env, check=True, capture_output=True, text=True)
        samples.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(samples)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=12_000, help="frames per run (default 12000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side; the best is kept (default 3)")
    args = parser.parse_args(argv)
    frames = _frames(args.messages)
    ours = min(bench_ours(frames) for _ in range(args.repeat))
    lib = min(bench_ocpp_lib(frames) for _ in range(args.repeat))
    print(f"bench processor: ours_us_per_msg={ours:.1f} ocpp_lib_us_per_msg={lib:.1f} speedup={lib / ours:.1f}")
    print(f"bench cold-start: handler_import_ms={bench_cold_start():.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
