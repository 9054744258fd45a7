"""Pure helpers of the bridge, tested without an event loop or a broker."""

from __future__ import annotations

import io
import json
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fargate_bridge.auth import AuthPolicy, Verdict, decide
from fargate_bridge.handshake import (
    Admission,
    Rejection,
    choose_subprotocol,
    evaluate_request,
    is_health_check,
    offered_subprotocols,
    parse_basic_credentials,
)
from fargate_bridge.logs import JsonFormatter
from fargate_bridge.metrics import COUNTERS, GAUGES, Metrics, emf_document
from fargate_bridge.registry import ChargerCredentials, credentials_from_item
from fargate_bridge.session import describe_close
from fargate_bridge.settings import UnknownChargers
from fargate_bridge.throttle import FailureBackoff, MinInterval, TokenBucket, TtlCache
from fargate_bridge.topics import (
    EnvelopeEncoder,
    encode_event,
    envelope,
    events_topic,
    inbound_topic,
    outbound_topic,
)
from ocpp_core.ids import is_valid_charge_point_id
from ocpp_core.versions import OcppVersion

from .support import basic


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- topics and payloads ---------------------------------------------------------------------------------
def test_topics():
    assert inbound_topic("CP-1") == "ocpp/CP-1/in"
    assert outbound_topic("CP-1") == "ocpp/CP-1/out"
    assert events_topic("CP-1") == "ocpp/CP-1/events"


@pytest.mark.parametrize(
    "frame",
    ['[2,"1","Heartbeat",{}]', "", 'quote " backslash \\ newline \n tab \t', "unicode é ✓ 😀", "\u0000\u001f"],
)
def test_envelope_encoder_matches_the_contract(frame):
    encoded = EnvelopeEncoder("CP:1.a_b-c", "ocpp2.0.1", "ab" * 16).encode(1_700_000_000_123, frame)
    assert json.loads(encoded) == envelope("CP:1.a_b-c", "ocpp2.0.1", "ab" * 16, 1_700_000_000_123, frame)
    assert set(json.loads(encoded)) == {"chargePointId", "protocol", "connectionId", "receivedAt", "frame"}


def test_events():
    decoded = json.loads(encode_event("disconnected", "CP-1", "ocpp1.6", "c1", 5, "bye"))
    assert decoded == {
        "event": "disconnected",
        "chargePointId": "CP-1",
        "protocol": "ocpp1.6",
        "connectionId": "c1",
        "at": 5,
        "reason": "bye",
    }


# --- handshake ------------------------------------------------------------------------------------------
def test_subprotocol_preference_is_the_servers():
    assert choose_subprotocol(["ocpp1.6", "ocpp2.0.1"]) is OcppVersion.V201
    assert choose_subprotocol(["ocpp1.6", "ocpp2.1", "ocpp2.0.1"]) is OcppVersion.V21
    assert choose_subprotocol(["ocpp1.6"]) is OcppVersion.V16
    assert choose_subprotocol(["ocpp1.5", "chat"]) is None
    assert choose_subprotocol([]) is None
    assert offered_subprotocols(["ocpp1.6, ocpp2.0.1", " ", "ocpp2.1"]) == ["ocpp1.6", "ocpp2.0.1", "ocpp2.1"]


def test_admission():
    result = evaluate_request("/ocpp/CP%2D1", ["ocpp1.6, ocpp2.0.1"], None)
    assert result == Admission("CP-1", OcppVersion.V201, None)
    result = evaluate_request("/any/prefix/CP-1?x=1", ["ocpp1.6"], basic("CP-1", "s3cret:with:colons"))
    assert result == Admission("CP-1", OcppVersion.V16, "s3cret:with:colons")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/ocpp/",
        "",
        "/ocpp/a%2Fb",
        "/ocpp/" + "x" * 49,
        "/ocpp/CP%201",
        "/ocpp/CP%231",
        "/ocpp/%ZZ",
        "/ocpp/%C3%A9",
    ],
)
def test_bad_ids_are_400(path):
    result = evaluate_request(path, ["ocpp1.6"], None)
    assert isinstance(result, Rejection) and result.status == 400


@pytest.mark.parametrize("offered", [[], [""], ["chat"], ["ocpp1.5,ocpp2.0"]])
def test_missing_or_unsupported_subprotocol_is_400(offered):
    result = evaluate_request("/ocpp/CP-1", offered, None)
    assert isinstance(result, Rejection) and result.status == 400 and "subprotocol" in result.reason


@pytest.mark.parametrize("authorization", ["Bearer abc", "Basic !!!", "Basic", basic("CP-2", "pw")])
def test_malformed_or_foreign_credentials_are_401(authorization):
    result = evaluate_request("/ocpp/CP-1", ["ocpp1.6"], authorization)
    assert isinstance(result, Rejection) and result.status == 401 and result.challenge


def test_basic_credentials_parsing():
    assert parse_basic_credentials(basic("CP-1", "pw")) == ("CP-1", "pw")
    assert parse_basic_credentials(None) is None
    assert parse_basic_credentials("Basic " + "A" * 3) is None


def test_health_path():
    assert is_health_check("/health")
    assert is_health_check("/health?probe=1")
    assert not is_health_check("/ocpp/health")


@settings(max_examples=300, deadline=None)
@given(
    path=st.text(max_size=300),
    protocols=st.lists(st.text(max_size=30), max_size=4),
    authorization=st.none() | st.text(max_size=100),
)
def test_no_request_crashes_the_handshake(path, protocols, authorization):
    result = evaluate_request(path, protocols, authorization)
    assert isinstance(result, Admission | Rejection)
    if isinstance(result, Admission):
        assert is_valid_charge_point_id(result.charge_point_id)
        assert result.protocol.value in offered_subprotocols(protocols)
    else:
        assert result.status in (400, 401)


@settings(max_examples=200, deadline=None)
@given(segment=st.text(alphabet=st.characters(codec="ascii"), min_size=1, max_size=60))
def test_percent_encoded_ids_round_trip(segment):
    from urllib.parse import quote

    result = evaluate_request("/ocpp/" + quote(segment, safe=""), ["ocpp1.6"], None)
    if is_valid_charge_point_id(segment):
        assert isinstance(result, Admission) and result.charge_point_id == segment
    else:
        assert isinstance(result, Rejection) and result.status == 400


# --- close descriptions ----------------------------------------------------------------------------------
def test_describe_close():
    assert describe_close(None, None, False) == "connection lost"
    assert describe_close(None, (1000, ""), False) == "closed by the charger with 1000"
    assert describe_close((1009, "too big"), (1009, "too big"), False) == "closed by the bridge with 1009: too big"
    assert describe_close((1000, ""), (1001, "reboot"), True) == "closed by the charger with 1001: reboot"


# --- rate limits and caches ------------------------------------------------------------------------------
def test_token_bucket_allows_a_burst_then_paces():
    clock = FakeClock()
    bucket = TokenBucket(10.0, 3, clock=clock, jitter=0.0)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    delays = [bucket.reserve() for _ in range(3)]
    assert delays == pytest.approx([0.1, 0.2, 0.3])
    clock.now += 1.0  # refills up to the burst, minus what the queued reservations took
    assert bucket.reserve() == 0.0
    clock.now += 100.0
    assert bucket.tokens <= 3


def test_token_bucket_jitter_is_bounded_and_only_when_throttled():
    clock = FakeClock()
    bucket = TokenBucket(100.0, 1, clock=clock, jitter=1.0, rng=lambda: 0.999)
    assert bucket.reserve() == 0.0
    delay = bucket.reserve()
    assert 0.01 <= delay < 0.02


def test_token_bucket_keeps_the_rate_over_10000_connects():
    clock = FakeClock()
    bucket = TokenBucket(100.0, 100, clock=clock, jitter=0.5)
    last = max(bucket.reserve() for _ in range(10_000))
    # 10,000 CONNECTs at 100/s with a burst of 100 take ~99 s: never more than the rate allows.
    assert 98.9 <= last <= 99.1


def test_token_bucket_rejects_nonsense():
    with pytest.raises(ValueError):
        TokenBucket(0, 1)


def test_min_interval_per_key():
    clock = FakeClock()
    limit: MinInterval[str] = MinInterval(1.0, max_keys=2, clock=clock)
    assert limit.reserve("a") == 0.0
    assert limit.reserve("a") == pytest.approx(1.0)
    assert limit.reserve("b") == 0.0
    clock.now += 5
    assert limit.reserve("a") == 0.0
    limit.reserve("c")
    assert len(limit._next) == 2


def test_failure_backoff_grows_is_capped_and_forgets():
    clock = FakeClock()
    backoff: FailureBackoff[str] = FailureBackoff(base=0.5, cap=3.0, window=60, max_keys=3, clock=clock)
    assert backoff.delay("cp") == 0.0
    delays = []
    for _ in range(5):
        backoff.failed("cp")
        delays.append(backoff.delay("cp"))
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.succeeded("cp")
    assert backoff.delay("cp") == 0.0
    backoff.failed("cp")
    clock.now += 61
    assert backoff.delay("cp") == 0.0
    for key in ("a", "b", "c", "d", "e"):
        backoff.failed(key)
    assert len(backoff) == 3  # memory bounded: the oldest are forgotten


def test_ttl_cache():
    clock = FakeClock()
    cache: TtlCache[str, int | None] = TtlCache(10, 2, clock=clock)
    cache.put("a", None)
    assert cache.get("a") == (True, None)
    assert cache.get("b") == (False, None)
    cache.put("b", 2)
    cache.put("c", 3)
    assert cache.get("a") == (False, None)  # evicted: least recently used
    clock.now += 11
    assert cache.get("b") == (False, None)
    zero: TtlCache[str, int] = TtlCache(0, 10, clock=clock)
    zero.put("a", 1)
    assert zero.get("a") == (False, None)


# --- auth policy -----------------------------------------------------------------------------------------
ACCEPT = AuthPolicy(UnknownChargers.ACCEPT, require_password=False)
REJECT = AuthPolicy(UnknownChargers.REJECT, require_password=False)
STRICT = AuthPolicy(UnknownChargers.ACCEPT, require_password=True)
WITH_HASH = ChargerCredentials(password_hash="pbkdf2_sha256$1$00$00")
NO_HASH = ChargerCredentials(registration_status="Accepted")


@pytest.mark.parametrize(
    ("credentials", "password", "policy", "expected"),
    [
        (None, None, ACCEPT, Verdict.ACCEPTED),
        (None, "pw", ACCEPT, Verdict.ACCEPTED),
        (None, None, REJECT, Verdict.UNKNOWN),
        (None, "pw", REJECT, Verdict.UNKNOWN),
        (None, "pw", STRICT, Verdict.NO_PASSWORD_SET),
        (NO_HASH, None, ACCEPT, Verdict.ACCEPTED),
        (NO_HASH, None, REJECT, Verdict.ACCEPTED),
        (NO_HASH, "pw", STRICT, Verdict.NO_PASSWORD_SET),
        (WITH_HASH, None, ACCEPT, Verdict.MISSING_PASSWORD),
        (WITH_HASH, "pw", ACCEPT, WITH_HASH),
        (WITH_HASH, "pw", STRICT, WITH_HASH),
    ],
)
def test_auth_policy(credentials, password, policy, expected):
    assert decide(credentials, password, policy) == expected


def test_credentials_from_registry_items():
    assert credentials_from_item(None) is None
    assert credentials_from_item({"connected": True, "connectionId": "x"}) is None  # presence only: unknown
    assert credentials_from_item({"registered": True}) == ChargerCredentials(None, None, True)
    assert credentials_from_item({"passwordHash": "h", "registrationStatus": "Pending"}) == ChargerCredentials(
        "h", "Pending", False
    )
    assert credentials_from_item({"passwordHash": "", "registered": True}) == ChargerCredentials(None, None, True)


# --- metrics and logs ------------------------------------------------------------------------------------
def test_emf_document_shape():
    doc = emf_document("OCPP/Bridge", 123, {"ConnectedChargers": 2, "FramesIn": 5}, stage="prod")
    directive = doc["_aws"]["CloudWatchMetrics"][0]
    assert doc["_aws"]["Timestamp"] == 123
    assert directive["Namespace"] == "OCPP/Bridge"
    # Two stages in one account never read each other's metrics (DESIGN §8).
    assert directive["Dimensions"] == [["Service", "Stage"]]
    assert [metric["Name"] for metric in directive["Metrics"]] == ["ConnectedChargers", "FramesIn"]
    assert doc["Service"] == "bridge" and doc["Stage"] == "prod" and doc["FramesIn"] == 5


def test_metrics_flush_resets_counters_and_reads_the_gauge():
    stream = io.StringIO()
    metrics = Metrics("NS", stream=stream, gauge=lambda: 7, clock=lambda: 1.5, stage="dev")
    metrics.set_gauge(lambda: 1, "BrokerReachable")
    metrics.incr("FramesIn", 3)
    metrics.incr("TakeOvers")
    metrics.flush()
    metrics.flush()
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    names = [m["Name"] for m in first["_aws"]["CloudWatchMetrics"][0]["Metrics"]]
    assert names == [*GAUGES, *COUNTERS]
    assert set(names) == {
        "ConnectedChargers",
        "BrokerReachable",
        "FramesIn",
        "FramesOut",
        "AuthFailures",
        "HandshakeRejections",
        "HandshakeTimeouts",
        "MqttReconnects",
        "QueueDrops",
        "TakeOvers",
        "RateLimited",
        "SlowReaders",
        "OversizedFrames",
        "SubscribeFailures",
    }
    assert (first["ConnectedChargers"], first["BrokerReachable"], first["FramesIn"], first["TakeOvers"]) == (7, 1, 3, 1)
    assert first["Stage"] == "dev"
    assert first["_aws"]["Timestamp"] == 1500
    assert (second["FramesIn"], second["TakeOvers"]) == (0, 0)
    assert metrics.totals["FramesIn"] == 3


def test_json_log_lines():
    record = logging.LogRecord(
        "fargate_bridge.session", logging.INFO, __file__, 1, "charger %s connected", ("CP-1",), None
    )
    record.chargePointId = "CP-1"
    record.event = "connected"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "charger CP-1 connected"
    assert (line["chargePointId"], line["event"], line["level"]) == ("CP-1", "connected", "INFO")
