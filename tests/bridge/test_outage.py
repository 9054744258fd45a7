"""Broker outages: no frame lost, bounded queues, health. Each test has a broker of its own.

The bridge reaches the broker through a :class:`GatedProxy` so that, after a restart, the
test lets the bridge reconnect only once the processor's subscription is back: otherwise
frames could reach the broker before anyone listens, which says nothing about the bridge.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from .support import GatedProxy, bridge_settings, eventually, processor, running_bridge
from .test_bridge import http_get, run


def first_occurrences(items: list[str]) -> list[str]:
    seen: set[str] = set()
    return [item for item in items if not (item in seen or seen.add(item))]


def unique_ids(frames: list[str]) -> list[str]:
    return first_occurrences([json.loads(frame)[1] for frame in frames])


def test_broker_killed_and_restarted_mid_traffic_loses_no_frame(private_mosquitto):
    broker = private_mosquitto
    cp = "CP-OUTAGE"

    async def scenario():
        proxy = await GatedProxy(broker.host, broker.port).start()
        try:
            with processor(broker, filters=(f"ocpp/{cp}/in", f"ocpp/{cp}/events")) as proc:
                settings = bridge_settings(broker, mqtt_port=proxy.port, queue_limit=500)
                async with running_bridge(settings) as bridge:
                    async with connect(f"ws://127.0.0.1:{bridge.port}/ocpp/{cp}", subprotocols=["ocpp1.6"]) as ws:
                        await eventually(lambda: proc.events(cp), what="connected event")
                        for i in range(30):
                            await ws.send(json.dumps([2, str(i), "Heartbeat", {}]))
                        broker.kill()  # some of those frames are still in flight
                        proxy.open.clear()
                        await eventually(lambda: not proc.ready.is_set(), what="processor disconnected")
                        for i in range(30, 60):  # sent while the broker is down
                            await ws.send(json.dumps([2, str(i), "Heartbeat", {}]))
                        await asyncio.to_thread(broker.start)
                        await eventually(proc.ready.is_set, timeout=10, what="processor resubscribed")
                        proxy.open.set()
                        ids = await eventually(
                            lambda: unique_ids(proc.frames(cp)) if len(unique_ids(proc.frames(cp))) >= 60 else None,
                            timeout=15,
                            what="all 60 frames",
                        )
                        assert ids == [str(i) for i in range(60)]  # none lost, in order (QoS 1 may repeat)
                        # The way back works on the new broker too.
                        await eventually(lambda: len(proc.events(cp)) >= 2, what="second connected event")
                        await asyncio.to_thread(proc.publish, f"ocpp/{cp}/out", '[3,"59",{}]')
                        assert await asyncio.wait_for(ws.recv(), 5) == '[3,"59",{}]'
                        events = proc.events(cp)
                        assert [e["event"] for e in events[:2]] == ["connected", "connected"]
                        assert events[1]["reason"] == "mqtt reconnected"
                        assert events[0]["connectionId"] == events[1]["connectionId"]
                        assert bridge.metrics.totals["MqttReconnects"] >= 1
                        assert bridge.metrics.totals["QueueDrops"] == 0
        finally:
            await proxy.stop()

    run(scenario())


def test_frames_wait_for_the_first_mqtt_session(private_mosquitto):
    broker = private_mosquitto
    cp = "CP-EARLY"

    async def scenario():
        proxy = await GatedProxy(broker.host, broker.port).start()
        proxy.open.clear()  # the bridge cannot reach the broker yet
        try:
            with processor(broker, filters=(f"ocpp/{cp}/in", f"ocpp/{cp}/events")) as proc:
                settings = bridge_settings(broker, mqtt_port=proxy.port)
                async with running_bridge(settings) as bridge:
                    async with connect(f"ws://127.0.0.1:{bridge.port}/ocpp/{cp}", subprotocols=["ocpp1.6"]) as ws:
                        for i in range(5):
                            await ws.send(json.dumps([2, str(i), "Heartbeat", {}]))
                        await eventually(lambda: len(bridge.sessions[cp].pending) == 5, what="frames queued")
                        assert proc.frames(cp) == []
                        proxy.open.set()
                        frames = await eventually(
                            lambda: proc.frames(cp) if len(proc.frames(cp)) >= 5 else None, timeout=10
                        )
                        assert [json.loads(f)[1] for f in frames] == ["0", "1", "2", "3", "4"]
                        topics = [t for t in proc.topics() if t.startswith(f"ocpp/{cp}/")]
                        assert topics[0] == f"ocpp/{cp}/events"  # announced before its frames
        finally:
            await proxy.stop()

    run(scenario())


def test_a_full_queue_disconnects_the_charger_with_1013(private_mosquitto):
    broker = private_mosquitto

    async def scenario():
        async with running_bridge(bridge_settings(broker, queue_limit=5, drain_timeout=1.5)) as bridge:
            async with connect(f"ws://127.0.0.1:{bridge.port}/ocpp/CP-FULL", subprotocols=["ocpp1.6"]) as ws:
                await eventually(lambda: bridge.sessions["CP-FULL"].connected, what="MQTT session")
                broker.kill()
                await eventually(lambda: not bridge.sessions["CP-FULL"].connected, what="MQTT session lost")
                with pytest.raises(ConnectionClosed) as closed:
                    for i in range(6):
                        await ws.send(json.dumps([2, str(i), "Heartbeat", {}]))
                    await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd.code == 1013
                assert "try again later" in closed.value.rcvd.reason
            await eventually(lambda: bridge.connected_count == 0, timeout=10, what="session gone")
            # The frame that overflowed, and the five the broker never confirmed.
            assert bridge.metrics.totals["QueueDrops"] == 6

    run(scenario())


def test_health_follows_the_broker(private_mosquitto):
    broker = private_mosquitto

    async def scenario():
        async with running_bridge(bridge_settings(broker)) as bridge:
            status, body = await http_get(bridge.port, "/health")
            assert (status, body["broker"]) == (200, True)
            broker.kill()

            async def status_now() -> int:
                return (await http_get(bridge.port, "/health"))[0]

            await eventually_async(status_now, 503)
            status, body = await http_get(bridge.port, "/health?x=1")
            assert (status, body["status"]) == (503, "unavailable")
            await asyncio.to_thread(broker.start)
            await eventually_async(status_now, 200)

    run(scenario())


async def eventually_async(probe, expected, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (value := await probe()) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"still {value}, expected {expected}")
        await asyncio.sleep(0.05)
