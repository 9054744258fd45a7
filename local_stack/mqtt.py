"""A small blocking facade over an awscrt MQTT5 client (plain TCP, for mosquitto).

Used by the rule emulator (subscribe to the rule topics) and as the local
:class:`lambdas.publisher.Publisher` (QoS 1 publish, waiting for the PUBACK).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future

from awscrt import mqtt5

logger = logging.getLogger(__name__)

MessageCallback = Callable[[str, bytes], None]


class MqttError(RuntimeError):
    pass


class MqttClient:
    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        *,
        on_message: MessageCallback | None = None,
        keep_alive_s: int = 30,
    ):
        self.host, self.port, self.client_id = host, port, client_id
        self._on_message = on_message
        self._connected = threading.Event()
        self._failure: str | None = None
        self._subscriptions: list[str] = []
        self._client = mqtt5.Client(
            mqtt5.ClientOptions(
                host_name=host,
                port=port,
                connect_options=mqtt5.ConnectPacket(client_id=client_id, keep_alive_interval_sec=keep_alive_s),
                session_behavior=mqtt5.ClientSessionBehaviorType.CLEAN,
                retry_jitter_mode=mqtt5.ExponentialBackoffJitterMode.FULL,
                min_reconnect_delay_ms=100,
                max_reconnect_delay_ms=2000,
                on_publish_callback_fn=self._on_publish,
                on_lifecycle_event_connection_success_fn=self._on_success,
                on_lifecycle_event_connection_failure_fn=self._on_failure,
                on_lifecycle_event_disconnection_fn=self._on_disconnect,
            )
        )

    # CRT callbacks run on CRT threads: keep them short.
    def _on_publish(self, data: mqtt5.PublishReceivedData) -> None:
        packet = data.publish_packet
        if self._on_message is None or packet is None:
            return
        try:
            self._on_message(packet.topic, bytes(packet.payload or b""))
        except Exception:
            logger.exception("MQTT message callback failed for %s", packet.topic)

    def _on_success(self, data: mqtt5.LifecycleConnectSuccessData) -> None:
        self._failure = None
        self._connected.set()
        # Clean sessions lose subscriptions: renew them after every reconnect.
        for topic_filter in self._subscriptions:
            self._client.subscribe(
                mqtt5.SubscribePacket(
                    subscriptions=[mqtt5.Subscription(topic_filter=topic_filter, qos=mqtt5.QoS.AT_LEAST_ONCE)]
                )
            )

    def _on_failure(self, data: mqtt5.LifecycleConnectFailureData) -> None:
        reason = data.connack_packet.reason_code if data.connack_packet is not None else None
        # By name (NOT_AUTHORIZED), not number (135): it ends up in the one line the user reads.
        reason_text = getattr(reason, "name", reason)
        self._failure = f"{data.exception}" + (f" (CONNACK {reason_text})" if reason is not None else "")

    def _on_disconnect(self, data: mqtt5.LifecycleDisconnectData) -> None:
        self._connected.clear()

    def start(self, timeout: float = 10.0) -> MqttClient:
        self._client.start()
        if not self._connected.wait(timeout):
            self._client.stop()
            detail = f": {self._failure}" if self._failure else ""
            raise MqttError(f"could not connect to the MQTT broker at {self.host}:{self.port}{detail}")
        return self

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def subscribe(self, topic_filter: str, timeout: float = 10.0) -> None:
        self._subscriptions.append(topic_filter)
        future: Future[mqtt5.SubackPacket] = self._client.subscribe(
            mqtt5.SubscribePacket(
                subscriptions=[mqtt5.Subscription(topic_filter=topic_filter, qos=mqtt5.QoS.AT_LEAST_ONCE)]
            )
        )
        suback = future.result(timeout)
        codes = list(suback.reason_codes or [])
        if not codes or int(codes[0]) > 2:
            raise MqttError(f"subscription to {topic_filter} refused: {codes}")

    def publish(self, topic: str, payload: str | bytes, *, expiry_s: int | None = None, timeout: float = 10.0) -> None:
        data = payload.encode("utf-8") if isinstance(payload, str) else payload
        future = self._client.publish(
            mqtt5.PublishPacket(
                topic=topic, payload=data, qos=mqtt5.QoS.AT_LEAST_ONCE, message_expiry_interval_sec=expiry_s
            )
        )
        result = future.result(timeout)
        puback = getattr(result, "puback", None)
        if puback is not None and int(puback.reason_code) >= 0x80:
            raise MqttError(f"publish to {topic} refused: {puback.reason_code}")

    def stop(self) -> None:
        try:
            self._client.stop()
        except RuntimeError:
            logger.debug("MQTT client %s was already stopped", self.client_id)


class MqttPublisher:
    """:class:`lambdas.publisher.Publisher` over MQTT (the local stand-in for ``iot-data``)."""

    def __init__(self, client: MqttClient):
        self._client = client

    def publish(self, topic: str, payload: str, *, expiry_s: int | None = None) -> None:
        self._client.publish(topic, payload, expiry_s=expiry_s)
