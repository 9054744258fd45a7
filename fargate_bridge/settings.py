"""Bridge configuration: one frozen dataclass, built once from the environment.

Every environment variable the bridge reads is named in :class:`Env` and parsed in
:meth:`Settings.from_env`; nothing else in the package looks at ``os.environ``. An invalid
value raises :class:`~fargate_bridge.errors.SettingsError` naming the variable, so a task
with a typo fails at start with one clear line instead of misbehaving later.
"""

from __future__ import annotations

import enum
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ocpp_core.topics import DEFAULT_ROOT, TOPIC_ROOT_ENV, TopicRootError, check_root

from .errors import SettingsError

T = TypeVar("T")


class Env:
    """Names of the environment variables (documented in docs/bridge.md)."""

    HOST = "BRIDGE_HOST"
    PORT = "BRIDGE_PORT"
    MQTT_HOST = "BRIDGE_MQTT_HOST"
    MQTT_PORT = "BRIDGE_MQTT_PORT"
    MQTT_AUTH = "BRIDGE_MQTT_AUTH"
    IOT_ENDPOINT = "BRIDGE_IOT_ENDPOINT"
    REGION = "AWS_REGION"
    DEFAULT_REGION = "AWS_DEFAULT_REGION"
    X509_CERT = "BRIDGE_X509_CERT"
    X509_KEY = "BRIDGE_X509_KEY"
    X509_CA = "BRIDGE_X509_CA"
    TLS_CERT = "BRIDGE_TLS_CERT"
    TLS_KEY = "BRIDGE_TLS_KEY"
    # Security profile 3 (DESIGN §9): a TLS listener of its own that asks for client certificates.
    TLS_PORT = "BRIDGE_TLS_PORT"
    TLS_PORT_CERT = "BRIDGE_TLS_PORT_CERT"
    TLS_PORT_KEY = "BRIDGE_TLS_PORT_KEY"
    CLIENT_CA = "BRIDGE_CLIENT_CA"
    REGISTRY_TABLE = "BRIDGE_REGISTRY_TABLE"
    REGISTRY_CACHE_TTL = "BRIDGE_REGISTRY_CACHE_TTL"
    UNKNOWN_CHARGERS = "BRIDGE_UNKNOWN_CHARGERS"
    REQUIRE_PASSWORD = "BRIDGE_REQUIRE_PASSWORD"
    MAX_CONNECTIONS = "BRIDGE_MAX_CONNECTIONS"
    MAX_FRAME_BYTES = "BRIDGE_MAX_FRAME_BYTES"
    PING_INTERVAL = "BRIDGE_PING_INTERVAL"
    PING_TIMEOUT = "BRIDGE_PING_TIMEOUT"
    HANDSHAKE_TIMEOUT = "BRIDGE_HANDSHAKE_TIMEOUT"
    MQTT_CONNECT_RATE = "BRIDGE_MQTT_CONNECT_RATE"
    MQTT_CONNECT_BURST = "BRIDGE_MQTT_CONNECT_BURST"
    MQTT_KEEPALIVE = "BRIDGE_MQTT_KEEPALIVE"
    MQTT_RECONNECT_MIN_MS = "BRIDGE_MQTT_RECONNECT_MIN_MS"
    MQTT_RECONNECT_MAX_MS = "BRIDGE_MQTT_RECONNECT_MAX_MS"
    MQTT_SESSION_EXPIRY = "BRIDGE_MQTT_SESSION_EXPIRY"
    MQTT_THREADS = "BRIDGE_MQTT_THREADS"
    QUEUE_LIMIT = "BRIDGE_QUEUE_LIMIT"
    DRAIN_TIMEOUT = "BRIDGE_DRAIN_TIMEOUT"
    METRICS_NAMESPACE = "BRIDGE_METRICS_NAMESPACE"
    METRICS_INTERVAL = "BRIDGE_METRICS_INTERVAL"
    LOG_LEVEL = "BRIDGE_LOG_LEVEL"
    PLAIN_PORT = "BRIDGE_PLAIN_PORT"
    FRAME_RATE = "BRIDGE_FRAME_RATE"
    FRAME_BURST = "BRIDGE_FRAME_BURST"
    OUTBOX_LIMIT_BYTES = "BRIDGE_OUTBOX_LIMIT_BYTES"
    LISTEN_BACKLOG = "BRIDGE_LISTEN_BACKLOG"
    REGISTRY_THREADS = "BRIDGE_REGISTRY_THREADS"
    # Stages in one account (DESIGN §8): the names are shared with infra/ and the Lambdas.
    TOPIC_ROOT = TOPIC_ROOT_ENV
    CLIENT_ID_PREFIX = "BRIDGE_CLIENT_ID_PREFIX"
    BASIC_INGEST_RULE = "BRIDGE_BASIC_INGEST_RULE"
    STAGE = "OCPP_STAGE"


class MqttAuth(enum.StrEnum):
    """How the bridge authenticates to its broker."""

    NONE = "none"  # plain TCP, anonymous (mosquitto, local)
    SIGV4 = "sigv4"  # MQTT over WebSocket to IoT Core, signed with the task role
    X509 = "x509"  # mutual TLS with a device certificate


class UnknownChargers(enum.StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"


_DEFAULT_MQTT_PORT = {MqttAuth.NONE: 1883, MqttAuth.SIGV4: 443, MqttAuth.X509: 8883}
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
#: IoT Core client ids are at most 128 bytes; charger ids at most 48 (DESIGN §2).
_CLIENT_ID_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{0,64}")
#: IoT rule names: letters, digits and underscores, at most 128
#: (https://docs.aws.amazon.com/iot/latest/apireference/API_CreateTopicRule.html).
_RULE_NAME = re.compile(r"[A-Za-z0-9_]{1,128}")
#: A stage name is a CloudWatch dimension value and part of resource names.
_STAGE = re.compile(r"[A-Za-z0-9_-]{1,32}")


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 9000
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtt_auth: MqttAuth = MqttAuth.NONE
    iot_endpoint: str | None = None
    region: str | None = None
    x509_cert: str | None = None
    x509_key: str | None = None
    x509_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    registry_table: str | None = None
    registry_cache_ttl: float = 10.0
    unknown_chargers: UnknownChargers = UnknownChargers.ACCEPT
    require_password: bool = False
    max_connections: int = 10_000
    max_frame_bytes: int = 65_536
    ping_interval: float = 30.0
    ping_timeout: float = 30.0
    handshake_timeout: float = 10.0
    mqtt_connect_rate: float = 100.0
    mqtt_connect_burst: int = 100
    mqtt_keepalive: int = 60
    mqtt_reconnect_min_ms: int = 1_000
    mqtt_reconnect_max_ms: int = 3_000
    mqtt_session_expiry: int = 60
    mqtt_threads: int = 1
    queue_limit: int = 256
    drain_timeout: float = 25.0
    metrics_namespace: str = "OCPP/Bridge"
    metrics_interval: float = 10.0
    log_level: str = "INFO"
    #: Extra plain ``ws://`` listener next to the TLS one; None: no plain listener with TLS.
    plain_port: int | None = None
    #: Security profile 3: a ``wss://`` listener asking for client certificates; None: none.
    tls_port: int | None = None
    #: Its server certificate chain and key (a file, or the PEM itself as ECS injects a secret).
    tls_port_cert: str | None = None
    tls_port_key: str | None = None
    #: The CA bundle client certificates must chain to (a file or the PEM itself).
    client_ca: str | None = None
    #: Frames per second a charger may send (token bucket); beyond it the socket is closed (1008).
    frame_rate: float = 10.0
    frame_burst: int = 20
    #: Bytes of replies waiting for a charger that does not read its socket; beyond: closed (1008).
    outbox_limit_bytes: int = 1_048_576
    #: TCP listen backlog (websockets' default is 100: a storm of SYNs overflows it).
    listen_backlog: int = 4096
    #: Threads for registry reads and password hashes (not Python's shared default pool).
    registry_threads: int = 16
    topic_root: str = DEFAULT_ROOT
    client_id_prefix: str = ""
    basic_ingest_rule: str | None = None
    stage: str = "local"

    @property
    def broker_host(self) -> str:
        """Where the MQTT clients connect: the IoT endpoint on AWS, else the local broker."""
        if self.mqtt_auth is MqttAuth.NONE:
            return self.mqtt_host
        return self.iot_endpoint or self.mqtt_host

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Parse the environment; raises SettingsError naming the first bad variable."""
        env = _Reader(os.environ if environ is None else environ)
        auth = env.choice(Env.MQTT_AUTH, MqttAuth, MqttAuth.NONE)
        on_aws = auth is not MqttAuth.NONE
        settings = cls(
            host=env.text(Env.HOST, "127.0.0.1"),
            port=env.integer(Env.PORT, 9000, low=0, high=65535),
            mqtt_host=env.text(Env.MQTT_HOST, "127.0.0.1"),
            mqtt_port=env.integer(Env.MQTT_PORT, _DEFAULT_MQTT_PORT[auth], low=1, high=65535),
            mqtt_auth=auth,
            iot_endpoint=env.optional(Env.IOT_ENDPOINT),
            region=env.optional(Env.REGION) or env.optional(Env.DEFAULT_REGION),
            x509_cert=env.optional(Env.X509_CERT),
            x509_key=env.optional(Env.X509_KEY),
            x509_ca=env.optional(Env.X509_CA),
            tls_cert=env.optional(Env.TLS_CERT),
            tls_key=env.optional(Env.TLS_KEY),
            registry_table=env.optional(Env.REGISTRY_TABLE),
            registry_cache_ttl=env.number(Env.REGISTRY_CACHE_TTL, 10.0, low=0.0, high=3600.0),
            # Local stack: any charger may connect; on AWS only registered ones (DESIGN §5).
            unknown_chargers=env.choice(
                Env.UNKNOWN_CHARGERS, UnknownChargers, UnknownChargers.REJECT if on_aws else UnknownChargers.ACCEPT
            ),
            require_password=env.boolean(Env.REQUIRE_PASSWORD, False),
            max_connections=env.integer(Env.MAX_CONNECTIONS, 10_000, low=1, high=1_000_000),
            max_frame_bytes=env.integer(Env.MAX_FRAME_BYTES, 65_536, low=128, high=16 * 1024 * 1024),
            # The NLB's TLS idle timeout is a fixed 350 s and DESIGN §3 asks for a ping every 60 s at most.
            ping_interval=env.number(Env.PING_INTERVAL, 30.0, low=0.01, high=60.0),
            ping_timeout=env.number(Env.PING_TIMEOUT, 30.0, low=0.01, high=600.0),
            handshake_timeout=env.number(Env.HANDSHAKE_TIMEOUT, 10.0, low=0.1, high=300.0),
            mqtt_connect_rate=env.number(Env.MQTT_CONNECT_RATE, 100.0, low=0.01, high=100_000.0),
            mqtt_connect_burst=env.integer(Env.MQTT_CONNECT_BURST, 100, low=1, high=100_000),
            # IoT Core accepts keepalives of 30 to 1200 s; mosquitto anything.
            mqtt_keepalive=env.integer(Env.MQTT_KEEPALIVE, 60, low=5, high=1200),
            mqtt_reconnect_min_ms=env.integer(Env.MQTT_RECONNECT_MIN_MS, 1_000, low=10, high=600_000),
            # At least (chargers / BRIDGE_MQTT_CONNECT_RATE) s in any case: see MqttFactory.reconnect_max_ms.
            mqtt_reconnect_max_ms=env.integer(Env.MQTT_RECONNECT_MAX_MS, 3_000, low=10, high=3_600_000),
            mqtt_session_expiry=env.integer(Env.MQTT_SESSION_EXPIRY, 60, low=0, high=86_400),
            mqtt_threads=env.integer(Env.MQTT_THREADS, 1, low=1, high=64),
            queue_limit=env.integer(Env.QUEUE_LIMIT, 256, low=1, high=1_000_000),
            drain_timeout=env.number(Env.DRAIN_TIMEOUT, 25.0, low=0.1, high=3600.0),
            metrics_namespace=env.text(Env.METRICS_NAMESPACE, "OCPP/Bridge"),
            metrics_interval=env.number(Env.METRICS_INTERVAL, 10.0, low=0.05, high=3600.0),
            log_level=env.choice_str(Env.LOG_LEVEL, _LOG_LEVELS, "INFO"),
            plain_port=env.optional_integer(Env.PLAIN_PORT, low=0, high=65535),
            tls_port=env.optional_integer(Env.TLS_PORT, low=0, high=65535),
            # Without a pair of its own, the profile-3 listener serves BRIDGE_TLS_CERT's.
            tls_port_cert=env.optional(Env.TLS_PORT_CERT) or env.optional(Env.TLS_CERT),
            tls_port_key=env.optional(Env.TLS_PORT_KEY) or env.optional(Env.TLS_KEY),
            client_ca=env.optional(Env.CLIENT_CA),
            frame_rate=env.number(Env.FRAME_RATE, 10.0, low=0.01, high=100_000.0),
            frame_burst=env.integer(Env.FRAME_BURST, 20, low=1, high=1_000_000),
            outbox_limit_bytes=env.integer(Env.OUTBOX_LIMIT_BYTES, 1_048_576, low=1024, high=1 << 30),
            listen_backlog=env.integer(Env.LISTEN_BACKLOG, 4096, low=1, high=65535),
            registry_threads=env.integer(Env.REGISTRY_THREADS, 16, low=1, high=256),
            topic_root=env.text(Env.TOPIC_ROOT, DEFAULT_ROOT),
            client_id_prefix=env.text(Env.CLIENT_ID_PREFIX, ""),
            basic_ingest_rule=env.optional(Env.BASIC_INGEST_RULE),
            stage=env.text(Env.STAGE, "local"),
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Cross-field rules (also applied to settings built in code)."""
        if self.mqtt_reconnect_max_ms < self.mqtt_reconnect_min_ms:
            raise SettingsError(Env.MQTT_RECONNECT_MAX_MS, f"must be >= {Env.MQTT_RECONNECT_MIN_MS}")
        if self.mqtt_auth is not MqttAuth.NONE and not self.iot_endpoint:
            raise SettingsError(Env.IOT_ENDPOINT, f"required when {Env.MQTT_AUTH}={self.mqtt_auth.value}")
        if self.mqtt_auth is MqttAuth.SIGV4 and not self.region:
            raise SettingsError(Env.REGION, f"required when {Env.MQTT_AUTH}=sigv4 (the signing region)")
        if self.mqtt_auth is MqttAuth.X509:
            _require_file(Env.X509_CERT, self.x509_cert, "required when BRIDGE_MQTT_AUTH=x509")
            _require_file(Env.X509_KEY, self.x509_key, "required when BRIDGE_MQTT_AUTH=x509")
        if self.x509_ca is not None:
            _require_file(Env.X509_CA, self.x509_ca, "")
        if (self.tls_cert is None) != (self.tls_key is None):
            missing = Env.TLS_KEY if self.tls_key is None else Env.TLS_CERT
            raise SettingsError(missing, f"{Env.TLS_CERT} and {Env.TLS_KEY} go together")
        if self.tls_cert is not None:
            _require_file(Env.TLS_CERT, self.tls_cert, "")
            _require_file(Env.TLS_KEY, self.tls_key, "")
        if self.plain_port is not None and self.tls_cert is None:
            raise SettingsError(Env.PLAIN_PORT, f"only with {Env.TLS_CERT} ({Env.PORT} is plain without it)")
        if self.tls_port is not None:
            why = f"required with {Env.TLS_PORT}"
            _require_pem_or_file(Env.TLS_PORT_CERT, self.tls_port_cert, f"{why} (or {Env.TLS_CERT})")
            _require_pem_or_file(Env.TLS_PORT_KEY, self.tls_port_key, f"{why} (or {Env.TLS_KEY})")
            _require_pem_or_file(Env.CLIENT_CA, self.client_ca, why)
            if self.tls_port != 0 and self.tls_port in (self.port, self.plain_port):
                raise SettingsError(Env.TLS_PORT, f"must differ from {Env.PORT} and {Env.PLAIN_PORT}")
        elif self.client_ca is not None:
            raise SettingsError(Env.CLIENT_CA, f"only with {Env.TLS_PORT} (the listener that asks for certificates)")
        try:
            check_root(self.topic_root)
        except TopicRootError as exc:
            raise SettingsError(Env.TOPIC_ROOT, str(exc)) from None
        if not _CLIENT_ID_PREFIX.fullmatch(self.client_id_prefix):
            raise SettingsError(Env.CLIENT_ID_PREFIX, "at most 64 of A-Z a-z 0-9 _ . : -")
        if self.basic_ingest_rule is not None and not _RULE_NAME.fullmatch(self.basic_ingest_rule):
            raise SettingsError(Env.BASIC_INGEST_RULE, "an IoT rule name: 1 to 128 of A-Z a-z 0-9 _")
        if not _STAGE.fullmatch(self.stage):
            raise SettingsError(Env.STAGE, "1 to 32 of A-Z a-z 0-9 _ -")


def is_pem(value: str) -> bool:
    """A value holding the PEM itself (an ECS secret) rather than naming a file."""
    return value.lstrip().startswith("-----BEGIN ")


def _require_pem_or_file(variable: str, value: str | None, why: str) -> None:
    if value is not None and is_pem(value):
        return
    _require_file(variable, value, why)


def _require_file(variable: str, path: str | None, why: str) -> None:
    if not path:
        raise SettingsError(variable, why or "required")
    if not os.path.isfile(path):
        raise SettingsError(variable, f"no such file: {path}")


class _Reader:
    """Typed reads of string variables; empty counts as unset (ECS task definitions often set '')."""

    def __init__(self, environ: Mapping[str, str]):
        self._environ = environ

    def optional(self, name: str) -> str | None:
        value = self._environ.get(name)
        if value is None or not value.strip():
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        return self.optional(name) or default

    def _parse(self, name: str, default: T, convert: Callable[[str], T], expected: str) -> T:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            return convert(raw)
        except ValueError:
            raise SettingsError(name, f"expected {expected}, got {raw!r}") from None

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self._parse(name, default, int, "an integer")
        if not low <= value <= high:
            raise SettingsError(name, f"must be between {low} and {high}, got {value}")
        return value

    def optional_integer(self, name: str, *, low: int, high: int) -> int | None:
        if self.optional(name) is None:
            return None
        return self.integer(name, 0, low=low, high=high)

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        value = self._parse(name, default, float, "a number")
        if not math.isfinite(value) or not low <= value <= high:
            raise SettingsError(name, f"must be between {low:g} and {high:g}, got {value:g}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise SettingsError(name, f"expected true or false, got {raw!r}")

    def choice(self, name: str, kind: type[enum.StrEnum], default: T) -> T:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            return kind(raw.lower())  # type: ignore[return-value]
        except ValueError:
            allowed = " | ".join(member.value for member in kind)
            raise SettingsError(name, f"expected one of {allowed}, got {raw!r}") from None

    def choice_str(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        raw = self.optional(name)
        if raw is None:
            return default
        if raw.upper() not in allowed:
            raise SettingsError(name, f"expected one of {' | '.join(allowed)}, got {raw!r}")
        return raw.upper()
