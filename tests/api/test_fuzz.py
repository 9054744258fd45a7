"""Property: no request makes the handler raise, and nothing an operator sends is a 5xx.

FUZZ_EXAMPLES=5000 runs a longer search than the default 400 examples.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas import runtime
from lambdas.api import ApiContext, handle_event

from .support import connect, make_deps

# Any code point, lone surrogates included (hypothesis leaves them out of st.text() by default).
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=16)

METHODS = st.one_of(
    st.sampled_from(["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "get"]),
    st.text(min_size=1, max_size=12),
)
SEGMENTS = st.one_of(
    st.sampled_from(
        [
            "chargers",
            "calls",
            "id-tags",
            "transactions",
            "CP1",
            "CP2",
            "call-1",
            "",
            "%ZZ",
            "%FF",
            "%2F",
            "a%20b",
            "x" * 60,
        ]
    ),
    st.text(max_size=20),
    ANY_TEXT,
)
PATHS = st.one_of(
    st.sampled_from(["/chargers", "/chargers/CP1", "/chargers/CP1/calls", "/chargers/CP2/calls", "/transactions"]),
    st.lists(SEGMENTS, max_size=5).map(lambda parts: "/" + "/".join(parts)),
    st.text(max_size=30),
)
QUERY = st.dictionaries(
    st.one_of(st.sampled_from(["wait", "chargePointId", "status"]), st.text(max_size=8)),
    st.one_of(st.sampled_from(["1", "0.05", "0", "-3", "nan", "CP1", "Active", "1e400", ""]), st.text(max_size=12)),
    max_size=3,
)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12) | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ACTIONS = st.sampled_from(
    ["Reset", "ClearCache", "GetConfiguration", "GetVariables", "RequestStartTransaction", "Nope", ""]
)
CALL_BODIES = st.fixed_dictionaries(
    {"action": st.one_of(ACTIONS, JSON_VALUES)},
    optional={"payload": st.one_of(st.just({"type": "Soft"}), st.just({}), JSON_VALUES), "extra": JSON_VALUES},
)
REGISTRY_BODIES = st.fixed_dictionaries(
    {},
    optional={
        "password": st.one_of(st.text(max_size=300), JSON_VALUES),
        "registrationStatus": st.one_of(st.sampled_from(["Accepted", "Pending", "Bogus"]), JSON_VALUES),
        "status": st.one_of(st.sampled_from(["Accepted", "Blocked", "Nope"]), JSON_VALUES),
        "expiryDate": st.one_of(
            st.sampled_from(["2030-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"]), JSON_VALUES
        ),
        "parentIdTag": JSON_VALUES,
        "description": JSON_VALUES,
    },
)
BODIES = st.one_of(
    st.none(),
    CALL_BODIES.map(json.dumps),
    REGISTRY_BODIES.map(json.dumps),
    JSON_VALUES.map(lambda v: json.dumps(v)),
    st.text(max_size=50),
    st.binary(max_size=50).map(lambda b: base64.b64encode(b).decode()),
)


class _Instant:
    """``?wait`` in fake time, so a fuzzed wait never sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(method=METHODS, path=PATHS, query=QUERY, body=BODIES, base64_flag=st.booleans(), raw_query=st.booleans())
def test_any_request_gets_a_json_answer_below_500(
    method: str, path: str, query: dict[str, str], body: str | None, base64_flag: bool, raw_query: bool
) -> None:
    deps = make_deps()
    runtime.configure(deps)
    try:
        connect(deps, "CP1", "ocpp1.6")
        connect(deps, "CP2", "ocpp2.0.1")
        event: dict[str, Any] = {
            "version": "2.0",
            "rawPath": path,
            "requestContext": {"http": {"method": method}},
            "isBase64Encoded": base64_flag,
        }
        if raw_query:
            event["rawQueryString"] = "&".join(f"{k}={v}" for k, v in query.items())
        elif query:
            event["queryStringParameters"] = query
        if body is not None:
            event["body"] = body
        clock = _Instant()
        response = handle_event(event, ApiContext(deps, sleep=clock.sleep, monotonic=clock.monotonic))
    finally:
        runtime.configure(None)
    status = response["statusCode"]
    assert isinstance(status, int) and 200 <= status < 500, (status, response["body"])
    answer = json.loads(response["body"])
    if status >= 400:
        assert isinstance(answer.get("error"), str) and answer["error"]
