"""The MQTT glue: callbacks moved onto the loop in order, clients built for each auth mode."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from concurrent.futures import Future
from types import SimpleNamespace

from awscrt import mqtt5
from awscrt.http import HttpHeaders, HttpRequest

from fargate_bridge.mqtt import LoopPoster, MqttFactory, _outcome
from fargate_bridge.settings import MqttAuth

from .support import bridge_settings


def test_loop_poster_keeps_the_order_of_callbacks_from_threads():
    received: list[tuple[int, int]] = []

    async def scenario():
        poster = LoopPoster(asyncio.get_running_loop())

        def producer(tag: int) -> None:
            for i in range(2000):
                poster.post(lambda t, n: received.append((t, n)), tag, i)

        threads = [threading.Thread(target=producer, args=(tag,)) for tag in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            await asyncio.to_thread(thread.join)
        for _ in range(100):
            if len(received) == 6000:
                break
            await asyncio.sleep(0.01)

    asyncio.run(scenario())
    assert len(received) == 6000
    for tag in range(3):
        assert [n for t, n in received if t == tag] == list(range(2000))


def test_publish_outcomes():
    ok: Future = Future()
    ok.set_result(SimpleNamespace(puback=SimpleNamespace(reason_code=mqtt5.PubackReasonCode.SUCCESS)))
    assert _outcome(ok) is None
    refused: Future = Future()
    refused.set_result(SimpleNamespace(puback=SimpleNamespace(reason_code=mqtt5.PubackReasonCode.NOT_AUTHORIZED)))
    assert "NOT_AUTHORIZED" in _outcome(refused)
    failed: Future = Future()
    failed.set_exception(RuntimeError("offline"))
    assert _outcome(failed) == "offline"
    suback: Future = Future()
    suback.set_result(SimpleNamespace(reason_codes=[mqtt5.SubackReasonCode.GRANTED_QOS_1]))
    assert _outcome(suback) is None
    denied: Future = Future()
    denied.set_result(SimpleNamespace(reason_codes=[mqtt5.SubackReasonCode.NOT_AUTHORIZED]))
    assert "SUBACK" in _outcome(denied)


class Listener:
    def __getattr__(self, name):
        return lambda *args: None


def _build(settings) -> None:
    async def scenario():
        factory = MqttFactory(settings, LoopPoster(asyncio.get_running_loop()))
        listener = Listener()
        link = factory.new_link("CP-1", "ocpp/CP-1/events", b"{}", listener)
        options = factory.client_options("CP-1", mqtt5.PublishPacket(topic="t"), link._relay)
        assert options.connect_options.client_id == "CP-1"
        assert options.host_name == settings.broker_host and options.port == settings.mqtt_port
        assert options.bootstrap is factory.bootstrap  # one event loop group for every client
        return options, factory

    return asyncio.run(scenario())


def test_sigv4_clients_use_websockets_signed_with_the_default_chain(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = bridge_settings(
        mqtt_auth=MqttAuth.SIGV4,
        iot_endpoint="example-ats.iot.eu-west-1.amazonaws.com",
        region="eu-west-1",
        mqtt_port=443,
    )
    options, factory = _build(settings)
    assert options.websocket_handshake_transform is not None
    assert options.tls_ctx is factory._tls  # one TLS context shared by every client
    assert options.extended_validation_and_flow_control_options == (
        mqtt5.ExtendedValidationAndFlowControlOptions.AWS_IOT_CORE_DEFAULTS
    )
    # The upgrade request gets a SigV4 query-string signature for the iotdevicegateway service.
    request = HttpRequest("GET", "/mqtt", HttpHeaders([("host", settings.broker_host)]))
    done: Future = Future()
    factory._sign_handshake(SimpleNamespace(http_request=request, set_done=lambda exc=None: done.set_result(exc)))
    assert done.result(10) is None
    assert "X-Amz-Signature=" in request.path and "iotdevicegateway" in request.path


def test_x509_clients_use_mutual_tls(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-days", "1", "-subj", "/CN=bridge", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    settings = bridge_settings(
        mqtt_auth=MqttAuth.X509, iot_endpoint="example-ats.iot.eu-west-1.amazonaws.com", mqtt_port=8883,
        x509_cert=str(cert), x509_key=str(key),
    )  # fmt: skip
    options, factory = _build(settings)
    assert options.websocket_handshake_transform is None
    assert options.tls_ctx is factory._tls and options.tls_ctx is not None


def test_local_clients_are_plain_tcp():
    options, _ = _build(bridge_settings())
    assert options.tls_ctx is None and options.websocket_handshake_transform is None
