"""Test helpers: an MQTT client playing the processor, a gated TCP proxy, an in-process bridge."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from typing import Any, TypeVar

from awscrt import mqtt5

from fargate_bridge import Bridge, Settings
from fargate_bridge.registry import ChargerRegistry
from local_stack.broker import MosquittoProcess

T = TypeVar("T")
QOS1 = mqtt5.QoS.AT_LEAST_ONCE


def basic(user: str, password: str) -> str:
    """An ``Authorization: Basic`` header value."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def bridge_settings(broker: MosquittoProcess | None = None, **overrides: Any) -> Settings:
    """Settings for an in-process bridge on a free port, with short timers."""
    base = Settings(
        host="127.0.0.1",
        port=0,
        mqtt_host=broker.host if broker else "127.0.0.1",
        mqtt_port=broker.port if broker else 1,
        mqtt_connect_rate=1000.0,
        mqtt_connect_burst=1000,
        mqtt_reconnect_min_ms=50,
        mqtt_reconnect_max_ms=400,
        ping_interval=20.0,
        ping_timeout=20.0,
        handshake_timeout=5.0,
        drain_timeout=6.0,
        metrics_interval=3600.0,
        registry_cache_ttl=0.0,
        # Tests send frames back to back; the per-charger rate limit has tests of its own.
        frame_rate=100_000.0,
        frame_burst=100_000,
    )
    return replace(base, **overrides)


async def eventually(check: Callable[[], T], timeout: float = 5.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy (and return it), or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


class Processor:
    """An MQTT5 client in the processor's seat: records what the bridge publishes, publishes replies.

    ``ready`` is set once the subscriptions of the current connection are acknowledged, so a
    test can tell when messages can no longer slip past it.
    """

    def __init__(
        self,
        broker: MosquittoProcess,
        filters: Iterable[str] = ("ocpp/+/in", "ocpp/+/events"),
        client_id: str = "test-processor",
    ):
        self.filters = list(filters)
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self._client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=broker.host,
                port=broker.port,
                connect_options=mqtt5.ConnectPacket(client_id=client_id, keep_alive_interval_sec=30),
                session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
                min_reconnect_delay_ms=50,
                max_reconnect_delay_ms=300,
                on_publish_callback_fn=self._on_publish,
                on_lifecycle_event_connection_success_fn=self._on_success,
                on_lifecycle_event_disconnection_fn=lambda _: self.ready.clear(),
                disable_metrics=True,
            )
        )

    def _on_publish(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        if packet is not None:
            with self._lock:
                self.messages.append((str(packet.topic), bytes(packet.payload or b"")))

    def _on_success(self, _: mqtt5.LifecycleConnectSuccessData) -> None:
        future = self._client.subscribe(
            mqtt5.SubscribePacket(subscriptions=[mqtt5.Subscription(topic_filter=f, qos=QOS1) for f in self.filters])
        )
        future.add_done_callback(lambda f: self.ready.set() if f.exception() is None else None)

    def start(self, timeout: float = 10.0) -> Processor:
        self._client.start()
        if not self.ready.wait(timeout):
            raise AssertionError("processor client could not subscribe")
        return self

    def stop(self) -> None:
        self._client.stop()

    def publish(self, topic: str, payload: str | bytes, timeout: float = 5.0) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self._client.publish(mqtt5.PublishPacket(topic=topic, payload=data, qos=QOS1)).result(timeout)

    def publish_nowait(self, topic: str, payload: str) -> None:
        self._client.publish(mqtt5.PublishPacket(topic=topic, payload=payload.encode(), qos=QOS1))

    def payloads(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload in self.messages if t == topic]

    def json(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(payload) for payload in self.payloads(topic)]

    def topics(self) -> list[str]:
        with self._lock:
            return [t for t, _ in self.messages]

    def events(self, cp: str) -> list[dict[str, Any]]:
        return self.json(f"ocpp/{cp}/events")

    def frames(self, cp: str) -> list[str]:
        return [envelope["frame"] for envelope in self.json(f"ocpp/{cp}/in")]


@contextlib.contextmanager
def processor(broker: MosquittoProcess, **kwargs: Any) -> Any:
    client = Processor(broker, **kwargs).start()
    try:
        yield client
    finally:
        client.stop()


@contextlib.asynccontextmanager
async def running_bridge(
    settings: Settings, registry: ChargerRegistry | None = None, **kwargs: Any
) -> AsyncIterator[Bridge]:
    bridge = Bridge(settings, registry, **kwargs)
    await bridge.start()
    try:
        yield bridge
    finally:
        await bridge.stop()


class GatedProxy:
    """A TCP forwarder to the broker that the test can close (refusing connections) and open."""

    def __init__(self, target_host: str, target_port: int):
        self.target = (target_host, target_port)
        self.open = asyncio.Event()
        self.open.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self) -> GatedProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open.is_set():
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        for task in (asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class Responder(Processor):
    """The processor's seat, answering every CALL on ``<root>/+/in`` with a CALLRESULT (on the CRT thread)."""

    def __init__(self, broker: MosquittoProcess, root: str = "ocpp", client_id: str = "test-responder"):
        self.root = root
        super().__init__(broker, filters=(f"{root}/+/in",), client_id=client_id)

    def _on_publish(self, data: mqtt5.PublishReceivedData) -> None:
        super()._on_publish(data)
        packet = data.publish_packet
        if packet is None:
            return
        try:
            envelope = json.loads(bytes(packet.payload or b""))
            frame = json.loads(envelope["frame"])
        except (ValueError, KeyError, TypeError):
            return
        if isinstance(frame, list) and len(frame) >= 3 and frame[0] == 2:
            reply = json.dumps([3, frame[1], {}]).encode()
            topic = f"{self.root}/{envelope['chargePointId']}/out"
            self._client.publish(mqtt5.PublishPacket(topic=topic, payload=reply, qos=QOS1))


async def raw_websocket(port: int, cp: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that completes the handshake and then never reads."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        (
            f"GET /ocpp/{cp} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n"
        ).encode()
    )
    assert b" 101 " in await reader.readline()
    await reader.readuntil(b"\r\n\r\n")
    return reader, writer
