"""``python -m fargate_bridge`` as a process: configuration errors, SIGTERM drain, logs and metrics."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from local_stack.ports import free_port, wait_for_port

from .support import eventually, processor
from .test_bridge import run

ROOT = Path(__file__).resolve().parents[2]


def bridge_env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}
    env.update(values)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_invalid_configuration_fails_at_start_with_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "fargate_bridge"],
        env=bridge_env(BRIDGE_PORT="nine-thousand"),
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "BRIDGE_PORT" in lines[0] and "nine-thousand" in lines[0]


@pytest.mark.timeout(60)
def test_sigterm_closes_sockets_with_1001_reports_disconnections_and_exits_0(mosquitto, tmp_path):
    port = free_port()
    drain_timeout = 10.0
    out, err = open(tmp_path / "stdout", "w+"), open(tmp_path / "stderr", "w+")
    bridge = subprocess.Popen(
        [sys.executable, "-m", "fargate_bridge"],
        env=bridge_env(
            BRIDGE_PORT=str(port),
            BRIDGE_MQTT_HOST=mosquitto.host,
            BRIDGE_MQTT_PORT=str(mosquitto.port),
            BRIDGE_DRAIN_TIMEOUT=str(drain_timeout),
            BRIDGE_METRICS_INTERVAL="3600",
            BRIDGE_MQTT_CONNECT_RATE="1000",
        ),
        stdout=out,
        stderr=err,
        cwd=ROOT,
    )
    ids = [f"CP-TERM-{i}" for i in range(3)]
    try:
        assert wait_for_port("127.0.0.1", port, 20), "bridge did not listen"

        async def scenario() -> float:
            with processor(mosquitto, filters=[f"ocpp/{cp}/events" for cp in ids]) as proc:
                sockets = [await connect(f"ws://127.0.0.1:{port}/ocpp/{cp}", subprotocols=["ocpp2.0.1"]) for cp in ids]
                await eventually(lambda: all(proc.events(cp) for cp in ids), what="connected events")
                await sockets[0].send('[2,"1","Heartbeat",{}]')
                started = time.monotonic()
                bridge.send_signal(signal.SIGTERM)
                for ws in sockets:
                    with pytest.raises(ConnectionClosed) as closed:
                        await asyncio.wait_for(ws.recv(), 10)
                    assert closed.value.rcvd.code == 1001
                    assert closed.value.rcvd.reason == "bridge shutting down"
                code = await asyncio.to_thread(bridge.wait, drain_timeout + 5)
                elapsed = time.monotonic() - started
                assert code == 0
                for cp in ids:
                    events = await eventually(lambda cp=cp: proc.events(cp)[1:], what=f"disconnected event of {cp}")
                    assert events[0]["event"] == "disconnected"
                    assert events[0]["reason"] == "bridge shutting down"
                return elapsed

        elapsed = run(scenario())
        assert elapsed < drain_timeout
    finally:
        if bridge.poll() is None:
            bridge.kill()
            bridge.wait(10)
        out.close()
        err.close()
    stdout = (tmp_path / "stdout").read_text().splitlines()
    emf = [json.loads(line) for line in stdout if line.startswith("{")]
    assert emf and emf[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "OCPP/Bridge"
    assert sum(doc["FramesIn"] for doc in emf) == 1
    logs = [json.loads(line) for line in (tmp_path / "stderr").read_text().splitlines() if line.strip()]
    connected = [entry for entry in logs if entry.get("event") == "connected"]
    assert sorted(entry["chargePointId"] for entry in connected) == ids


def test_a_crashed_bridge_still_reports_the_disconnection_through_the_will(mosquitto):
    port = free_port()
    bridge = subprocess.Popen(
        [sys.executable, "-m", "fargate_bridge"],
        env=bridge_env(BRIDGE_PORT=str(port), BRIDGE_MQTT_HOST=mosquitto.host, BRIDGE_MQTT_PORT=str(mosquitto.port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    cp = "CP-CRASH"
    try:
        assert wait_for_port("127.0.0.1", port, 20), "bridge did not listen"

        async def scenario() -> None:
            with processor(mosquitto, filters=[f"ocpp/{cp}/events"]) as proc:
                async with connect(f"ws://127.0.0.1:{port}/ocpp/{cp}", subprotocols=["ocpp1.6"]):
                    (connected,) = await eventually(lambda: proc.events(cp), what="connected event")
                    bridge.kill()  # no drain, no DISCONNECT: the broker sees the connection drop
                    events = await eventually(lambda: proc.events(cp)[1:], what="the will")
                assert events[0]["event"] == "disconnected"
                assert events[0]["connectionId"] == connected["connectionId"]
                assert events[0]["reason"] == "bridge lost its MQTT connection"

        run(scenario())
    finally:
        if bridge.poll() is None:
            bridge.kill()
        bridge.wait(10)
