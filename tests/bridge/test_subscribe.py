"""No reply lost after an MQTT (re)connect: frames wait for a successful SUBACK (issue 12).

mosquitto grants every subscription (its ACL only filters delivery), so the refusal is played by
:class:`SubackProxy`, an MQTT-aware TCP forwarder between the bridge and the broker that, while
``refuse`` is set, rewrites the reason codes of SUBACKs to 0x87 (not authorized), as IoT Core
answers a SUBSCRIBE its policy does not allow.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from fargate_bridge.lifecycle import Phase, SubscribeRetry

from .support import GatedProxy, bridge_settings, eventually, processor, running_bridge
from .test_bridge import run

SUBACK = 0x9
NOT_AUTHORIZED = 0x87


async def read_packet(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """One MQTT control packet: (fixed header, body)."""
    first = await reader.readexactly(1)
    header, length, shift = bytearray(first), 0, 0
    while True:
        byte = (await reader.readexactly(1))[0]
        header.append(byte)
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return bytes(header), await reader.readexactly(length)


def varint(data: bytes, offset: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[offset]
        offset += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, offset


def refused(body: bytes) -> bytes:
    """An MQTT 5 SUBACK body (packet id, properties, reason codes) with every code 0x87."""
    properties, offset = varint(body, 2)
    start = offset + properties
    return body[:start] + bytes([NOT_AUTHORIZED]) * (len(body) - start)


class SubackProxy(GatedProxy):
    """The forwarder of support.py, rewriting the broker's SUBACKs to "not authorized" while ``refuse``."""

    def __init__(self, host: str, port: int):
        super().__init__(host, port)
        self.refuse = True
        self.accept = True  # False: close new connections at once (the bridge retries)
        self.subacks = 0

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if not self.accept:
                raise ConnectionRefusedError
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()  # broker down: refuse, as the broker itself would
            return

        async def upstream() -> None:
            with _quiet():
                while data := await reader.read(65536):
                    up_writer.write(data)
                    await up_writer.drain()
            up_writer.close()

        async def downstream() -> None:
            with _quiet():
                while True:
                    header, body = await read_packet(up_reader)
                    if header[0] >> 4 == SUBACK:
                        self.subacks += 1
                        if self.refuse:
                            body = refused(body)
                    writer.write(header + body)
                    await writer.drain()
            writer.close()

        for task in (asyncio.create_task(upstream()), asyncio.create_task(downstream())):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, (OSError, asyncio.IncompleteReadError, asyncio.CancelledError))


def test_frames_wait_for_the_suback_and_a_failed_one_is_retried(mosquitto):
    cp = "CP-SUBACK"
    retry = SubscribeRetry(attempts=50, base=0.1, cap=0.2)

    async def scenario():
        proxy = await SubackProxy(mosquitto.host, mosquitto.port).start()
        try:
            with processor(mosquitto, filters=(f"ocpp/{cp}/in", f"ocpp/{cp}/events")) as proc:
                settings = bridge_settings(mosquitto, mqtt_port=proxy.port)
                async with running_bridge(settings, subscribe_retry=retry) as bridge:
                    async with connect(f"ws://127.0.0.1:{bridge.port}/ocpp/{cp}", subprotocols=["ocpp1.6"]) as ws:
                        await ws.send('[2,"1","Heartbeat",{}]')
                        await eventually(lambda: bridge.metrics.totals["SubscribeFailures"] >= 2, what="SUBACK refused")
                        assert bridge.sessions[cp].phase is Phase.SUBSCRIBING
                        # Nothing forwarded (its reply would be lost) and no "connected" announced.
                        assert proc.frames(cp) == [] and proc.events(cp) == []
                        proxy.refuse = False
                        frames = await eventually(lambda: proc.frames(cp), timeout=5, what="frame after the SUBACK")
                        assert [json.loads(f)[1] for f in frames] == ["1"]
                        assert [e["event"] for e in proc.events(cp)] == ["connected"]
                        await asyncio.to_thread(proc.publish, f"ocpp/{cp}/out", '[3,"1",{}]')
                        assert await asyncio.wait_for(ws.recv(), 5) == '[3,"1",{}]'
        finally:
            await proxy.stop()

    run(scenario())


def test_a_suback_that_keeps_failing_closes_the_socket_with_1011(mosquitto):
    cp = "CP-NOSUB"
    retry = SubscribeRetry(attempts=3, base=0.05, cap=0.1)

    async def scenario():
        proxy = await SubackProxy(mosquitto.host, mosquitto.port).start()
        try:
            settings = bridge_settings(mosquitto, mqtt_port=proxy.port)
            async with running_bridge(settings, subscribe_retry=retry) as bridge:
                async with connect(f"ws://127.0.0.1:{bridge.port}/ocpp/{cp}", subprotocols=["ocpp1.6"]) as ws:
                    with pytest.raises(ConnectionClosed) as closed:
                        await asyncio.wait_for(ws.recv(), 10)
                assert closed.value.rcvd.code == 1011
                assert "subscribe" in closed.value.rcvd.reason
                assert bridge.metrics.totals["SubscribeFailures"] == 3
                await eventually(lambda: bridge.connected_count == 0, what="session gone")
        finally:
            await proxy.stop()

    run(scenario())


def test_every_reconnection_resubscribes_before_forwarding(private_mosquitto):
    """After a broker restart the bridge subscribes again, even if it believes the session rejoined."""
    broker = private_mosquitto
    cp = "CP-RESUB"

    async def scenario():
        proxy = await SubackProxy(broker.host, broker.port).start()
        proxy.refuse = False
        try:
            with processor(broker, filters=(f"ocpp/{cp}/in",)) as proc:
                settings = bridge_settings(broker, mqtt_port=proxy.port)
                async with running_bridge(settings) as bridge:
                    async with connect(f"ws://127.0.0.1:{bridge.port}/ocpp/{cp}", subprotocols=["ocpp1.6"]) as ws:
                        await eventually(lambda: bridge.sessions[cp].phase is Phase.OPEN, what="open")
                        assert proxy.subacks == 1
                        proxy.accept = False  # the bridge comes back only once the processor listens
                        broker.kill()
                        await eventually(lambda: bridge.sessions[cp].phase is Phase.BROKER_LOST, what="lost")
                        await eventually(lambda: not proc.ready.is_set(), what="processor disconnected")
                        await ws.send('[2,"2","Heartbeat",{}]')
                        await asyncio.to_thread(broker.start)
                        await eventually(proc.ready.is_set, timeout=10, what="processor back")
                        proxy.accept = True
                        await eventually(lambda: bridge.sessions[cp].phase is Phase.OPEN, timeout=10, what="open")
                        assert proxy.subacks >= 2  # subscribed again on the new connection
                        await eventually(lambda: proc.frames(cp), timeout=5, what="queued frame")
                        await asyncio.to_thread(proc.publish, f"ocpp/{cp}/out", '[3,"2",{}]')
                        assert await asyncio.wait_for(ws.recv(), 5) == '[3,"2",{}]'
        finally:
            await proxy.stop()

    run(scenario())
