"""Bad input (issue 12): half-open sockets, parallel guessing, floods, slow readers, huge frames."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import fargate_bridge.auth as auth_module
from fargate_bridge import ChargerCredentials, InMemoryChargerRegistry
from fargate_bridge.frames import MAX_MQTT_PAYLOAD
from ocpp_core.passwords import hash_password

from .support import basic, bridge_settings, eventually, processor, raw_websocket, running_bridge
from .test_bridge import new_id, run, url


def test_every_half_open_connection_is_closed_at_the_handshake_timeout(mosquitto):
    count, timeout = 1000, 1.0

    async def scenario():
        async with running_bridge(bridge_settings(mosquitto, handshake_timeout=timeout)) as bridge:
            sockets = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", bridge.port) for _ in range(count)))

            async def closed_by_the_bridge(reader: asyncio.StreamReader) -> bool:
                try:
                    return await asyncio.wait_for(reader.read(1), timeout + 5) == b""
                except (ConnectionResetError, TimeoutError):
                    return False

            results = await asyncio.gather(*(closed_by_the_bridge(reader) for reader, _ in sockets))
            for _, writer in sockets:
                writer.close()
            assert sum(results) == count  # none left open
            await eventually(lambda: bridge.metrics.totals["HandshakeTimeouts"] == count, what="all counted")
            assert bridge.metrics.totals["HandshakeRejections"] == 0

    run(scenario())


def test_parallel_guesses_for_one_id_are_throttled_like_sequential_ones(mosquitto, monkeypatch):
    cp = new_id()
    password = "the-real-password-123"
    registry = InMemoryChargerRegistry(
        {cp: ChargerCredentials(password_hash=hash_password(password, b"0123456789abcdef"))}
    )
    checks: list[str] = []
    real_verify = auth_module.verify_password
    monkeypatch.setattr(auth_module, "verify_password", lambda p, h: checks.append(p) or real_verify(p, h))
    good = {"subprotocols": ["ocpp1.6"], "additional_headers": {"Authorization": basic(cp, password)}}

    async def guess(bridge, n: int) -> int:
        try:
            async with connect(
                url(bridge, cp),
                subprotocols=["ocpp1.6"],
                additional_headers={"Authorization": basic(cp, f"guess-{n}")},
                open_timeout=10,
            ):
                return 101
        except InvalidStatus as refused:
            return refused.response.status_code

    async def scenario():
        settings = bridge_settings(mosquitto, handshake_timeout=3.0)
        async with running_bridge(settings, registry) as bridge:
            async with connect(url(bridge, cp), **good):
                pass  # the real charger once: its password is verified and cached
            checks.clear()
            statuses = await asyncio.gather(*(guess(bridge, n) for n in range(50)))
            assert 101 not in statuses
            # 50 sockets at once for one id: the guesses took turns, most were refused unchecked.
            assert len([p for p in checks if p.startswith("guess-")]) <= 3
            # The real charger is not locked out: its verified password needs no turn.
            async with connect(url(bridge, cp), open_timeout=2, **good):
                pass

    run(scenario())


def test_a_charger_flooding_frames_is_closed_with_1008(mosquitto):
    cp = new_id()

    async def scenario():
        settings = bridge_settings(mosquitto, frame_rate=10.0, frame_burst=20)
        with processor(mosquitto, filters=(f"ocpp/{cp}/in",)) as proc:
            async with running_bridge(settings) as bridge:
                async with connect(url(bridge, cp), subprotocols=["ocpp1.6"]) as ws:
                    with pytest.raises(ConnectionClosed) as closed:
                        for i in range(100):
                            await ws.send(json.dumps([2, str(i), "Heartbeat", {}]))
                        await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd.code == 1008
                assert "too many frames" in closed.value.rcvd.reason
                assert bridge.metrics.totals["RateLimited"] == 1
                await eventually(lambda: bridge.connected_count == 0, what="session gone")
                # The burst went through (in order); the flood beyond it did not.
                assert len(proc.frames(cp)) <= 20

    run(scenario())


def test_a_charger_that_stops_reading_is_closed_instead_of_growing_memory(mosquitto):
    cp = new_id()

    async def scenario():
        settings = bridge_settings(mosquitto, outbox_limit_bytes=256 * 1024)
        with processor(mosquitto, filters=(f"ocpp/{cp}/events",)) as proc:
            async with running_bridge(settings) as bridge:
                _reader, writer = await raw_websocket(bridge.port, cp)
                await eventually(lambda: proc.events(cp), what="connected")
                reply = json.dumps([3, "x", {"data": "y" * 60_000}])
                for _ in range(400):  # 24 MB, far more than the socket buffers hold
                    proc.publish_nowait(f"ocpp/{cp}/out", reply)
                    if bridge.metrics.totals["SlowReaders"]:
                        break
                    await asyncio.sleep(0.002)
                await eventually(lambda: bridge.metrics.totals["SlowReaders"] == 1, timeout=15, what="closed")
                await eventually(lambda: bridge.connected_count == 0, timeout=15, what="session gone")
                writer.close()

    run(scenario())


@pytest.mark.parametrize(("protocol", "code"), [("ocpp1.6", "FormationViolation"), ("ocpp2.0.1", "FormatViolation")])
def test_a_frame_too_big_once_wrapped_gets_a_callerror(mosquitto, protocol, code):
    cp = new_id()
    # Under the frame limit, but every '"' doubles when the envelope JSON-escapes the frame.
    frame = json.dumps([2, "big-1", "DataTransfer", {"vendorId": "x", "data": '"' * 40_000}])
    assert len(frame) < MAX_MQTT_PAYLOAD < len(json.dumps(frame))

    async def scenario():
        settings = bridge_settings(mosquitto, max_frame_bytes=256 * 1024)
        with processor(mosquitto, filters=(f"ocpp/{cp}/in",)) as proc:
            async with running_bridge(settings) as bridge:
                async with connect(url(bridge, cp), subprotocols=[protocol], max_size=None) as ws:
                    await ws.send(frame)
                    error = json.loads(await asyncio.wait_for(ws.recv(), 5))
                    assert error[:3] == [4, "big-1", code]
                    assert str(MAX_MQTT_PAYLOAD) in error[3]
                    await ws.send('[2,"small","Heartbeat",{}]')  # the socket stays usable
                    await eventually(lambda: proc.frames(cp), what="small frame")
                    assert [json.loads(f)[1] for f in proc.frames(cp)] == ["small"]
                    assert bridge.metrics.totals["OversizedFrames"] == 1

    run(scenario())


def test_a_charger_reconnecting_in_a_tight_loop_does_not_delay_the_others(mosquitto):
    """Its replaced sockets wait on its own client id only; they never take the shared CONNECT tokens."""
    looper, other = new_id("LOOP"), new_id("OTHER")

    async def scenario():
        settings = bridge_settings(mosquitto, mqtt_connect_rate=5.0, mqtt_connect_burst=5)
        async with running_bridge(settings) as bridge:
            sockets = []
            for _ in range(50):  # each new socket replaces the previous one at once
                sockets.append(await connect(url(bridge, looper), subprotocols=["ocpp1.6"]))
            started = asyncio.get_running_loop().time()
            async with connect(url(bridge, other), subprotocols=["ocpp1.6"]):
                await eventually(lambda: other in bridge.sessions and bridge.sessions[other].connected, what="other up")
            # At 5 CONNECT/s, 50 tokens taken by the looper would have made this 10 s.
            assert asyncio.get_running_loop().time() - started < 2.0
            await asyncio.gather(*(ws.close() for ws in sockets))
            await eventually(lambda: looper not in bridge.sessions, timeout=10, what="looper gone")

    run(scenario())
