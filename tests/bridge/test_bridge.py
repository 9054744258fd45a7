"""The bridge in process against a real mosquitto, with real websockets clients."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import time
import uuid
from dataclasses import replace

import pytest
from awscrt import mqtt5
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidMessage, InvalidStatus

import fargate_bridge.auth as auth_module
from fargate_bridge import ChargerCredentials, InMemoryChargerRegistry
from fargate_bridge.lifecycle import Phase
from fargate_bridge.settings import UnknownChargers
from ocpp_core.passwords import hash_password

from .support import basic, bridge_settings, eventually, processor, raw_websocket, running_bridge


def run(coro, timeout: float = 60.0):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def new_id(prefix: str = "CP") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def url(bridge, cp: str, prefix: str = "/ocpp/") -> str:
    return f"ws://127.0.0.1:{bridge.port}{prefix}{cp}"


async def connected_event(proc, cp: str, count: int = 1) -> list[dict]:
    return await eventually(
        lambda: (
            [e for e in proc.events(cp) if e["event"] == "connected"][:count]
            if len([e for e in proc.events(cp) if e["event"] == "connected"]) >= count
            else None
        ),
        what=f"connected event of {cp}",
    )


async def http_get(port: int, path: str) -> tuple[int, dict]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)


def test_frames_both_ways_with_the_envelope_contract(mosquitto):
    cp = new_id()

    async def scenario():
        with processor(mosquitto, filters=(f"ocpp/{cp}/+",)) as proc:
            async with running_bridge(bridge_settings(mosquitto)) as bridge:
                before = time.time_ns() // 1_000_000
                async with connect(url(bridge, cp), subprotocols=["ocpp1.6", "ocpp2.0.1"]) as ws:
                    assert ws.subprotocol == "ocpp2.0.1"  # the server's preference
                    frame = '[2, "m1", "Heartbeat", {"é": "✓"}]'  # spacing and unicode kept as is
                    await ws.send(frame)
                    envelopes = await eventually(lambda: proc.json(f"ocpp/{cp}/in"), what="envelope")
                    after = time.time_ns() // 1_000_000
                    (env,) = envelopes
                    assert set(env) == {"chargePointId", "protocol", "connectionId", "receivedAt", "frame"}
                    assert env["frame"] == frame
                    assert (env["chargePointId"], env["protocol"]) == (cp, "ocpp2.0.1")
                    assert before <= env["receivedAt"] <= after
                    assert len(env["connectionId"]) == 32 and int(env["connectionId"], 16) >= 0
                    (connected,) = await connected_event(proc, cp)
                    assert connected["connectionId"] == env["connectionId"]
                    assert connected["protocol"] == "ocpp2.0.1"
                    assert isinstance(connected["at"], int)

                    reply = '[3,"m1",{"currentTime":"2026-01-01T00:00:00Z"}]'
                    await asyncio.to_thread(proc.publish, f"ocpp/{cp}/out", reply)
                    assert await asyncio.wait_for(ws.recv(), 5) == reply
                    assert bridge.connected_count == 1
                    assert bridge.metrics.totals["FramesIn"] == 1
                    assert bridge.metrics.totals["FramesOut"] == 1
                closed_at = time.time_ns() // 1_000_000
                events = await eventually(lambda: proc.events(cp) if len(proc.events(cp)) == 2 else None)
                assert [e["event"] for e in events] == ["connected", "disconnected"]
                # Stamped when published (the will, fixed at CONNECT, only stands in for a crash).
                assert events[1]["at"] >= closed_at - 50 and events[1]["at"] >= events[0]["at"]
                assert events[1]["connectionId"] == env["connectionId"]
                assert events[1]["reason"] == "closed by the charger with 1000"
                await eventually(lambda: bridge.connected_count == 0, what="session gone")

    run(scenario())


def test_two_hundred_frames_keep_their_order_both_ways(mosquitto):
    cp = new_id()
    count = 200

    async def scenario():
        with processor(mosquitto, filters=(f"ocpp/{cp}/in",)) as proc:
            async with running_bridge(bridge_settings(mosquitto, queue_limit=1000)) as bridge:
                async with connect(url(bridge, cp), subprotocols=["ocpp1.6"]) as ws:
                    for i in range(count):
                        await ws.send(json.dumps([2, str(i), "Heartbeat", {}]))
                    frames = await eventually(
                        lambda: proc.frames(cp) if len(proc.frames(cp)) >= count else None, what="200 frames"
                    )
                    assert [json.loads(f)[1] for f in frames] == [str(i) for i in range(count)]
                    for i in range(count):
                        proc.publish_nowait(f"ocpp/{cp}/out", json.dumps([3, str(i), {}]))
                    received = [json.loads(await asyncio.wait_for(ws.recv(), 5))[1] for _ in range(count)]
                    assert received == [str(i) for i in range(count)]

    run(scenario())


async def expect_status(address: str, status: int, **kwargs) -> InvalidStatus:
    with pytest.raises(InvalidStatus) as caught:
        async with connect(address, open_timeout=5, **kwargs):
            pass
    assert caught.value.response.status_code == status, caught.value.response.body
    return caught.value


def test_bad_handshakes_are_refused_before_any_mqtt_traffic(mosquitto):
    locked, unknown, sentinel = new_id("LOCKED"), new_id("UNKNOWN"), new_id("OK")
    registry = InMemoryChargerRegistry(
        {
            locked: ChargerCredentials(password_hash=hash_password("right-password-123", b"0123456789abcdef")),
            sentinel: ChargerCredentials(registration_status="Accepted"),
        }
    )
    settings = bridge_settings(mosquitto, unknown_chargers=UnknownChargers.REJECT)

    async def scenario():
        with processor(mosquitto, filters=("ocpp/+/in", "ocpp/+/events")) as proc:
            async with running_bridge(settings, registry) as bridge:
                v16 = {"subprotocols": ["ocpp1.6"]}
                await expect_status(url(bridge, sentinel), 400)  # no subprotocol
                await expect_status(url(bridge, sentinel), 400, subprotocols=["ocpp1.5", "wamp"])
                await expect_status(url(bridge, "a%2Fb"), 400, **v16)  # percent-encoded slash
                await expect_status(url(bridge, "x" * 49), 400, **v16)
                await expect_status(url(bridge, ""), 400, **v16)
                await expect_status(url(bridge, "CP%20X"), 400, **v16)
                await expect_status(url(bridge, locked), 401, **v16)  # password required, none given
                wrong = await expect_status(
                    url(bridge, locked), 401, additional_headers={"Authorization": basic(locked, "wrong")}, **v16
                )
                assert wrong.response.headers["WWW-Authenticate"].startswith("Basic")
                await expect_status(url(bridge, unknown), 401, **v16)  # unknown under the reject policy
                assert bridge.metrics.totals["HandshakeRejections"] == 9
                assert bridge.metrics.totals["AuthFailures"] == 3

                # A good charger afterwards: once its event is in, nothing from the refused ones came first.
                async with connect(url(bridge, sentinel), **v16):
                    await connected_event(proc, sentinel)
                assert all(locked not in t and unknown not in t for t in proc.topics())
                async with connect(
                    url(bridge, locked),
                    additional_headers={"Authorization": basic(locked, "right-password-123")},
                    **v16,
                ):
                    await connected_event(proc, locked)

    run(scenario())


def test_verified_passwords_are_cached_and_failures_slowed_down(mosquitto, monkeypatch):
    cp = new_id()
    password = "correct-horse-battery-staple"
    registry = InMemoryChargerRegistry(
        {cp: ChargerCredentials(password_hash=hash_password(password, b"salt-salt-salt"))}
    )
    calls = []
    real_verify = auth_module.verify_password
    monkeypatch.setattr(auth_module, "verify_password", lambda p, h: calls.append(p) or real_verify(p, h))
    good = {"subprotocols": ["ocpp1.6"], "additional_headers": {"Authorization": basic(cp, password)}}
    bad = {"subprotocols": ["ocpp1.6"], "additional_headers": {"Authorization": basic(cp, "nope")}}

    async def scenario():
        async with running_bridge(bridge_settings(mosquitto), registry) as bridge:
            for _ in range(3):
                async with connect(url(bridge, cp), **good):
                    pass
            assert calls == [password]  # PBKDF2 once; reconnections hit the cache
            started = time.monotonic()
            await expect_status(url(bridge, cp), 401, **bad)
            first = time.monotonic() - started
            started = time.monotonic()
            await expect_status(url(bridge, cp), 401, **bad)
            second = time.monotonic() - started
            assert second >= bridge.authenticator.backoff.base * 0.9 > first * 0.5
            async with connect(url(bridge, cp), **good):  # the right password still works (after the delay)
                pass
            assert bridge.authenticator.backoff.delay(cp) == 0.0

    run(scenario())


def test_a_second_socket_for_the_same_id_takes_over(mosquitto):
    cp = new_id()

    async def scenario():
        with processor(mosquitto, filters=(f"ocpp/{cp}/+",)) as proc:
            async with running_bridge(bridge_settings(mosquitto)) as bridge:
                first = await connect(url(bridge, cp), subprotocols=["ocpp1.6"])
                (event1,) = await connected_event(proc, cp)
                second = await connect(url(bridge, cp), subprotocols=["ocpp1.6"])
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(first.recv(), 5)
                assert closed.value.rcvd.code == 4000
                assert closed.value.rcvd.reason == "replaced by a newer connection"
                _, event2 = await connected_event(proc, cp, count=2)
                assert event2["connectionId"] != event1["connectionId"]
                events = proc.events(cp)
                assert [e["event"] for e in events] == ["connected", "disconnected", "connected"]
                assert events[1]["connectionId"] == event1["connectionId"]
                assert events[1]["reason"] == "replaced by a newer connection"
                await second.send('[2,"after","Heartbeat",{}]')
                envelopes = await eventually(lambda: proc.json(f"ocpp/{cp}/in"), what="frame after takeover")
                assert envelopes[0]["connectionId"] == event2["connectionId"]
                await asyncio.to_thread(proc.publish, f"ocpp/{cp}/out", '[3,"after",{}]')
                assert await asyncio.wait_for(second.recv(), 5) == '[3,"after",{}]'
                assert bridge.metrics.totals["TakeOvers"] == 1
                assert bridge.connected_count == 1
                await second.close()

    run(scenario())


def test_mqtt_session_taken_over_elsewhere_closes_the_socket(mosquitto):
    """IoT Core's DISCONNECT with SESSION_TAKEN_OVER: another task won, this one lets go.

    mosquitto 2.0 closes the older connection without sending that DISCONNECT, so the
    broker's side is played here by delivering the lifecycle event to the live session.
    """
    cp = new_id()

    async def scenario():
        with processor(mosquitto, filters=(f"ocpp/{cp}/events",)) as proc:
            async with running_bridge(bridge_settings(mosquitto)) as bridge:
                ws = await connect(url(bridge, cp), subprotocols=["ocpp1.6"])
                await connected_event(proc, cp)
                session = bridge.sessions[cp]
                session.on_mqtt_disconnected(int(mqtt5.DisconnectReasonCode.SESSION_TAKEN_OVER), None)
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd.code == 4000
                assert "another bridge task" in closed.value.rcvd.reason
                await eventually(lambda: bridge.connected_count == 0, what="session gone")
                await asyncio.wait_for(asyncio.shield(session.finished), 5)
                assert session.phase is Phase.CLOSED and session.state.taken_over
                assert bridge.metrics.totals["TakeOvers"] == 1
                assert bridge.metrics.totals["MqttReconnects"] == 0
                # The winner owns presence now: the loser publishes no disconnected event.
                assert [e["event"] for e in proc.events(cp)] == ["connected"]

    run(scenario())


def test_oversized_and_binary_frames_close_the_socket(mosquitto):
    cp = new_id()

    async def scenario():
        async with running_bridge(bridge_settings(mosquitto, max_frame_bytes=1024)) as bridge:
            async with connect(url(bridge, cp), subprotocols=["ocpp1.6"], max_size=None) as ws:
                await ws.send("x" * 1025)
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd.code == 1009
            async with connect(url(bridge, cp), subprotocols=["ocpp1.6"]) as ws:
                await ws.send(b"\x00\x01")
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 5)
                assert closed.value.rcvd.code == 1003

    run(scenario())


def test_max_connections_answers_503_at_the_handshake(mosquitto):
    async def scenario():
        async with running_bridge(bridge_settings(mosquitto, max_connections=2)) as bridge:
            a = await connect(url(bridge, new_id()), subprotocols=["ocpp1.6"])
            b = await connect(url(bridge, new_id()), subprotocols=["ocpp1.6"])
            await expect_status(url(bridge, new_id()), 503, subprotocols=["ocpp1.6"])
            await a.close()
            await eventually(lambda: bridge._admitted < 2, what="slot freed")
            c = await connect(url(bridge, new_id()), subprotocols=["ocpp1.6"])
            await b.close()
            await c.close()

    run(scenario())


def test_health_is_200_with_the_broker_up(mosquitto):
    async def scenario():
        async with running_bridge(bridge_settings(mosquitto)) as bridge:
            status, body = await http_get(bridge.port, "/health")
            assert status == 200 and body["status"] == "ok"

    run(scenario())


def test_a_charger_that_misses_pongs_is_disconnected(mosquitto):
    cp = new_id()

    async def scenario():
        with processor(mosquitto, filters=(f"ocpp/{cp}/events",)) as proc:
            async with running_bridge(bridge_settings(mosquitto, ping_interval=0.2, ping_timeout=0.3)) as bridge:
                # A raw client that completes the handshake and then never reads (so never pongs).
                reader, writer = await raw_websocket(bridge.port, cp)
                # Read pings without answering them; when the bridge gives up and sends a close
                # frame (opcode 8), drop the connection (so the test does not wait close_timeout).
                while True:
                    header = await asyncio.wait_for(reader.readexactly(2), 5)
                    payload = await reader.readexactly(header[1] & 0x7F)
                    if header[0] & 0x0F == 8:
                        assert int.from_bytes(payload[:2], "big") == 1011
                        break
                writer.close()
                events = await eventually(
                    lambda: [e for e in proc.events(cp) if e["event"] == "disconnected"], what="disconnected event"
                )
                assert "keepalive" in events[0]["reason"]

    run(scenario())


def test_tls_termination(mosquitto, tmp_path):
    """Security profile 2 without a load balancer: the bridge terminates TLS itself."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    client_context = ssl.create_default_context(cafile=str(cert))

    async def scenario():
        settings = bridge_settings(mosquitto, tls_cert=str(cert), tls_key=str(key))
        async with running_bridge(settings) as bridge:
            cp = new_id()
            async with connect(
                f"wss://127.0.0.1:{bridge.port}/ocpp/{cp}", subprotocols=["ocpp1.6"], ssl=client_context
            ) as ws:
                assert ws.subprotocol == "ocpp1.6"
            # Secure by default: no plain listener next to TLS, and the TLS port refuses plain HTTP.
            assert bridge.plain_port is None
            with pytest.raises(InvalidMessage):  # no HTTP answer in clear
                async with connect(
                    f"ws://127.0.0.1:{bridge.port}/ocpp/{new_id()}", subprotocols=["ocpp1.6"], open_timeout=2
                ):
                    pass
        # Asked for: a plain listener as well (BRIDGE_PLAIN_PORT), e.g. the local stack's 9000 next to 9443.
        async with running_bridge(replace(settings, plain_port=0)) as bridge:
            assert bridge.plain_port not in (None, bridge.port)
            async with connect(f"ws://127.0.0.1:{bridge.plain_port}/ocpp/{new_id()}", subprotocols=["ocpp1.6"]) as ws:
                assert ws.subprotocol == "ocpp1.6"

    run(scenario())
