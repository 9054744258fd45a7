"""The Lambda shell and the event handling: API Gateway v2 events, errors, the decorated handler."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest

from lambdas import operator_api, runtime
from lambdas.api.http import MAX_BODY_BYTES, parse_event
from lambdas.runtime import Dependencies
from ocpp_core.ports import StoreError

from .support import connect, event, from_charger, load_event, request


class LambdaContext:
    function_name = "operator-api"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:operator-api"
    aws_request_id = "6f1c5b0e-0000-4000-8000-000000000000"


@pytest.mark.filterwarnings("ignore:No application metrics")
def test_decorated_handler_with_api_gateway_events(deps: Dependencies, capsys: pytest.CaptureFixture[str]) -> None:
    request("PUT", "/chargers/CP1", {})
    listed = operator_api.handler(load_event("get_chargers"), LambdaContext())
    assert listed["statusCode"] == 200
    assert listed["headers"]["content-type"] == "application/json"
    assert [c["chargePointId"] for c in json.loads(listed["body"])["chargers"]] == ["CP1"]

    connect(deps, "CP1", "ocpp1.6")
    response = operator_api.handler(load_event("post_call_wait"), LambdaContext())  # base64 body, ?wait=0.5
    body = json.loads(response["body"])
    assert response["statusCode"] == 200 and body["action"] == "Reset"
    assert body["status"] == "pending"  # nobody answered within the wait
    # EMF metrics were flushed to stdout at the end of the invocation.
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert any("CallsCreated" in m for m in emf)


def test_named_stage_prefix_is_ignored(deps: Dependencies) -> None:
    ev = event("GET", "/prod/chargers")
    ev["requestContext"]["stage"] = "prod"
    assert json.loads(operator_api.handle(ev)["body"]) == {"chargers": [], "count": 0, "next": None}


def test_query_from_raw_query_string_only(deps: Dependencies) -> None:
    ev = event("GET", "/transactions")
    ev["rawQueryString"] = "chargePointId=bad%20id"
    assert operator_api.handle(ev)["statusCode"] == 400


def test_body_limits() -> None:
    big = "x" * (MAX_BODY_BYTES + 1)
    with pytest.raises(Exception) as too_big:
        parse_event(event("PUT", "/chargers/CP1", raw_body=big))
    assert getattr(too_big.value, "status", None) == 413
    encoded = base64.b64encode(big.encode()).decode()
    ev = event("PUT", "/chargers/CP1", raw_body=encoded)
    ev["isBase64Encoded"] = True
    with pytest.raises(Exception) as too_big_b64:
        parse_event(ev)
    assert getattr(too_big_b64.value, "status", None) == 413
    exactly = parse_event(event("PUT", "/chargers/CP1", raw_body="y" * MAX_BODY_BYTES))
    assert len(exactly.body) == MAX_BODY_BYTES


def test_too_large_and_bad_base64_bodies_through_the_handler(deps: Dependencies) -> None:
    assert request("PUT", "/chargers/CP1", raw_body=" " * (MAX_BODY_BYTES + 1)).status == 413
    ev = event("PUT", "/chargers/CP1", raw_body="!!not base64!!")
    ev["isBase64Encoded"] = True
    response = operator_api.handle(ev)
    assert response["statusCode"] == 400 and "base64" in json.loads(response["body"])["error"]
    ev = event("PUT", "/chargers/CP1", raw_body=base64.b64encode(b"\xff\xfe").decode())
    ev["isBase64Encoded"] = True
    assert operator_api.handle(ev)["statusCode"] == 400


@pytest.mark.parametrize(
    "bad_event",
    [None, [], "GET /", {}, {"rawPath": "/chargers"}, {"requestContext": {"http": {"method": "GET"}}}],
)
def test_malformed_events_are_400(deps: Dependencies, bad_event: Any) -> None:
    response = operator_api.handle(bad_event)
    assert response["statusCode"] == 400
    assert "error" in json.loads(response["body"])


def test_unknown_routes_and_methods(deps: Dependencies) -> None:
    for path in ("/", "/charger", "/chargers/CP1/calls/x/y", "//chargers", "/id-tags", "/id-tags/"):
        assert request("GET", path).status == 404, path
    wrong = request("DELETE", "/chargers")
    assert wrong.status == 405
    assert wrong.headers["allow"] == "GET"
    assert wrong.body["allowedMethods"] == ["GET"]
    assert request("GET", "/chargers/").status == 200  # a trailing slash is tolerated


class _BrokenStore:
    def __init__(self, error: Exception):
        self.error = error

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            raise self.error

        return fail


@pytest.fixture
def broken(deps: Dependencies) -> Iterator[Dependencies]:
    real = deps.store
    yield deps
    deps.store = real


def test_backend_failures_are_503_or_500_with_a_clear_message(broken: Dependencies) -> None:
    broken.store = _BrokenStore(StoreError("DynamoDB get_item failed: throttled"))  # type: ignore[assignment]
    answer = request("GET", "/chargers/CP1")
    assert answer.status == 503
    assert answer.body["error"].startswith("The state store is unavailable")
    broken.store = _BrokenStore(RuntimeError("bug"))  # type: ignore[assignment]
    answer = request("GET", "/chargers")
    assert answer.status == 500
    assert "logged" in answer.body["error"]


def test_store_failure_during_a_wait_returns_the_pending_record(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    real_get = deps.store.get_call

    def flaky_get(cp: str, uid: str) -> Any:
        raise StoreError("throttled")

    deps.store.get_call = flaky_get  # type: ignore[method-assign]
    try:
        answer = request("POST", "/chargers/CP1/calls", {"action": "ClearCache"}, {"wait": "1"})
    finally:
        deps.store.get_call = real_get  # type: ignore[method-assign]
    assert answer.status == 200 and answer.body["status"] == "pending"
    from_charger(deps, "CP1", "ocpp1.6", [3, answer.body["uniqueId"], {"status": "Accepted"}])


def test_dependencies_that_cannot_be_built_give_503(monkeypatch: pytest.MonkeyPatch) -> None:
    runtime.configure(None)

    def fail() -> Dependencies:
        raise ValueError("OCPP_CALL_TIMEOUT='x' is not a whole number")

    monkeypatch.setattr(operator_api, "dependencies", fail)
    response = operator_api.handle(event("GET", "/chargers"))
    assert response["statusCode"] == 503
