"""Settings.from_env: defaults, overrides, and one clear error naming the variable."""

from __future__ import annotations

import pytest

from fargate_bridge.errors import SettingsError
from fargate_bridge.settings import MqttAuth, Settings, UnknownChargers


def test_defaults_are_the_local_ones():
    s = Settings.from_env({})
    assert (s.host, s.port, s.mqtt_host, s.mqtt_port) == ("127.0.0.1", 9000, "127.0.0.1", 1883)
    assert s.mqtt_auth is MqttAuth.NONE
    assert s.unknown_chargers is UnknownChargers.ACCEPT
    assert s.require_password is False
    assert s.max_connections == 10_000
    assert s.max_frame_bytes == 65_536
    assert s.ping_interval <= 60
    assert s.mqtt_connect_rate == 100.0
    assert s.metrics_namespace == "OCPP/Bridge"
    assert s.registry_table is None
    assert s.broker_host == "127.0.0.1"
    assert not s.tls_enabled


def test_everything_can_be_set():
    s = Settings.from_env(
        {
            "BRIDGE_HOST": "0.0.0.0",
            "BRIDGE_PORT": "9100",
            "BRIDGE_MQTT_HOST": "broker",
            "BRIDGE_MQTT_PORT": "1884",
            "BRIDGE_REGISTRY_TABLE": "csms",
            "BRIDGE_UNKNOWN_CHARGERS": "REJECT",
            "BRIDGE_REQUIRE_PASSWORD": "yes",
            "BRIDGE_MAX_CONNECTIONS": "5",
            "BRIDGE_MAX_FRAME_BYTES": "1024",
            "BRIDGE_PING_INTERVAL": "15",
            "BRIDGE_PING_TIMEOUT": "5.5",
            "BRIDGE_HANDSHAKE_TIMEOUT": "3",
            "BRIDGE_MQTT_CONNECT_RATE": "50",
            "BRIDGE_MQTT_CONNECT_BURST": "10",
            "BRIDGE_QUEUE_LIMIT": "7",
            "BRIDGE_DRAIN_TIMEOUT": "12",
            "BRIDGE_METRICS_NAMESPACE": "Custom/NS",
            "BRIDGE_METRICS_INTERVAL": "1",
            "BRIDGE_LOG_LEVEL": "debug",
        }
    )
    assert (s.host, s.port, s.mqtt_host, s.mqtt_port) == ("0.0.0.0", 9100, "broker", 1884)
    assert s.registry_table == "csms"
    assert s.unknown_chargers is UnknownChargers.REJECT
    assert s.require_password is True
    assert (s.max_connections, s.max_frame_bytes, s.queue_limit) == (5, 1024, 7)
    assert (s.ping_interval, s.ping_timeout, s.handshake_timeout, s.drain_timeout) == (15.0, 5.5, 3.0, 12.0)
    assert (s.mqtt_connect_rate, s.mqtt_connect_burst) == (50.0, 10)
    assert (s.metrics_namespace, s.metrics_interval, s.log_level) == ("Custom/NS", 1.0, "DEBUG")


def test_aws_modes_default_to_rejecting_unknown_chargers_and_the_iot_port():
    s = Settings.from_env(
        {
            "BRIDGE_MQTT_AUTH": "sigv4",
            "BRIDGE_IOT_ENDPOINT": "abc-ats.iot.eu-west-1.amazonaws.com",
            "AWS_REGION": "eu-west-1",
        }
    )
    assert s.mqtt_auth is MqttAuth.SIGV4
    assert s.unknown_chargers is UnknownChargers.REJECT
    assert s.mqtt_port == 443
    assert s.broker_host == "abc-ats.iot.eu-west-1.amazonaws.com"
    assert s.region == "eu-west-1"


def test_x509_takes_existing_files(tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("y")
    s = Settings.from_env(
        {
            "BRIDGE_MQTT_AUTH": "x509",
            "BRIDGE_IOT_ENDPOINT": "e",
            "BRIDGE_X509_CERT": str(cert),
            "BRIDGE_X509_KEY": str(key),
        }
    )
    assert s.mqtt_port == 8883
    assert s.x509_cert == str(cert)


def test_empty_values_count_as_unset():
    assert Settings.from_env({"BRIDGE_PORT": "", "BRIDGE_REGISTRY_TABLE": "  "}) == Settings.from_env({})


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"BRIDGE_PORT": "nine"}, "BRIDGE_PORT"),
        ({"BRIDGE_PORT": "70000"}, "BRIDGE_PORT"),
        ({"BRIDGE_MQTT_PORT": "0"}, "BRIDGE_MQTT_PORT"),
        ({"BRIDGE_MQTT_AUTH": "kerberos"}, "BRIDGE_MQTT_AUTH"),
        ({"BRIDGE_UNKNOWN_CHARGERS": "maybe"}, "BRIDGE_UNKNOWN_CHARGERS"),
        ({"BRIDGE_REQUIRE_PASSWORD": "sometimes"}, "BRIDGE_REQUIRE_PASSWORD"),
        ({"BRIDGE_PING_INTERVAL": "120"}, "BRIDGE_PING_INTERVAL"),
        ({"BRIDGE_PING_INTERVAL": "nan"}, "BRIDGE_PING_INTERVAL"),
        ({"BRIDGE_MAX_CONNECTIONS": "0"}, "BRIDGE_MAX_CONNECTIONS"),
        ({"BRIDGE_MQTT_CONNECT_RATE": "-1"}, "BRIDGE_MQTT_CONNECT_RATE"),
        ({"BRIDGE_QUEUE_LIMIT": "1.5"}, "BRIDGE_QUEUE_LIMIT"),
        ({"BRIDGE_LOG_LEVEL": "LOUD"}, "BRIDGE_LOG_LEVEL"),
        ({"BRIDGE_MQTT_AUTH": "sigv4", "AWS_REGION": "eu-west-1"}, "BRIDGE_IOT_ENDPOINT"),
        ({"BRIDGE_MQTT_AUTH": "sigv4", "BRIDGE_IOT_ENDPOINT": "e"}, "AWS_REGION"),
        ({"BRIDGE_MQTT_AUTH": "x509", "BRIDGE_IOT_ENDPOINT": "e"}, "BRIDGE_X509_CERT"),
        ({"BRIDGE_TLS_CERT": "/nonexistent/cert.pem"}, "BRIDGE_TLS_KEY"),
        ({"BRIDGE_TLS_CERT": "/nonexistent/c.pem", "BRIDGE_TLS_KEY": "/nonexistent/k.pem"}, "BRIDGE_TLS_CERT"),
        (
            {"BRIDGE_MQTT_RECONNECT_MIN_MS": "5000", "BRIDGE_MQTT_RECONNECT_MAX_MS": "100"},
            "BRIDGE_MQTT_RECONNECT_MAX_MS",
        ),
    ],
)
def test_bad_values_name_the_variable(env, variable):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable
    message = str(caught.value)
    assert message.startswith(variable + ":")
    assert "\n" not in message


def test_stage_settings():
    s = Settings.from_env({})
    assert (s.topic_root, s.client_id_prefix, s.basic_ingest_rule, s.stage) == ("ocpp", "", None, "local")
    s = Settings.from_env(
        {
            "OCPP_TOPIC_ROOT": "prod/ocpp",
            "BRIDGE_CLIENT_ID_PREFIX": "prod-",
            "BRIDGE_BASIC_INGEST_RULE": "prod_ocpp_in",
            "OCPP_STAGE": "prod",
        }
    )
    assert (s.topic_root, s.client_id_prefix, s.basic_ingest_rule, s.stage) == (
        "prod/ocpp",
        "prod-",
        "prod_ocpp_in",
        "prod",
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"OCPP_TOPIC_ROOT": "ocpp/+"}, "OCPP_TOPIC_ROOT"),
        ({"OCPP_TOPIC_ROOT": "$aws/x"}, "OCPP_TOPIC_ROOT"),
        ({"BRIDGE_CLIENT_ID_PREFIX": "a/b"}, "BRIDGE_CLIENT_ID_PREFIX"),
        ({"BRIDGE_BASIC_INGEST_RULE": "with-dash"}, "BRIDGE_BASIC_INGEST_RULE"),
        ({"OCPP_STAGE": "a b"}, "OCPP_STAGE"),
        ({"BRIDGE_PLAIN_PORT": "9001"}, "BRIDGE_PLAIN_PORT"),  # only next to a TLS listener
        ({"BRIDGE_FRAME_RATE": "0"}, "BRIDGE_FRAME_RATE"),
    ],
)
def test_invalid_stage_and_abuse_settings(env, variable):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable


def test_abuse_defaults():
    s = Settings.from_env({})
    assert (s.frame_rate, s.frame_burst, s.outbox_limit_bytes) == (10.0, 20, 1_048_576)
    assert s.listen_backlog >= 1024 and s.plain_port is None
    assert s.mqtt_reconnect_max_ms <= 5_000  # back within seconds of the broker's return
