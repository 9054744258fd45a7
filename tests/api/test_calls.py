"""POST /chargers/{id}/calls and GET /chargers/{id}/calls/{uniqueId}: the CSMS call lifecycle."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from lambdas import runtime
from lambdas.api import ApiContext, handle_event
from lambdas.runtime import Dependencies
from lambdas.settings import Settings
from tests.fakes import FakeClock

from .support import connect, disconnect, event, from_charger, make_deps, request

RESET = {
    "ocpp1.6": ({"type": "Soft"}, {"status": "Accepted"}),
    "ocpp2.0.1": ({"type": "Immediate"}, {"status": "Accepted"}),
    "ocpp2.1": ({"type": "Immediate"}, {"status": "Accepted"}),
}


def _published(deps: Dependencies) -> list[tuple[str, Any, int | None]]:
    return [(topic, json.loads(payload), expiry) for topic, payload, expiry in deps.publisher.messages]  # type: ignore[attr-defined]


@pytest.mark.parametrize("protocol", sorted(RESET))
def test_call_is_published_and_completed_by_the_chargers_result(deps: Dependencies, protocol: str) -> None:
    payload, response = RESET[protocol]
    connect(deps, "CP1", protocol)

    answer = request("POST", "/chargers/CP1/calls", {"action": "Reset", "payload": payload})
    assert answer.status == 202
    uid = answer.body["uniqueId"]
    assert answer.body["status"] == "pending"
    assert answer.body["action"] == "Reset"
    assert answer.headers["location"] == f"/chargers/CP1/calls/{uid}"
    # The frame goes out verbatim on the charger's topic, expiring with the call (MQTT5 expiry).
    assert _published(deps) == [("ocpp/CP1/out", [2, uid, "Reset", payload], 30)]

    assert request("GET", f"/chargers/CP1/calls/{uid}").body["status"] == "pending"
    outcome = from_charger(deps, "CP1", protocol, [3, uid, response])
    assert outcome.kind == "result"

    done = request("GET", f"/chargers/CP1/calls/{uid}")
    assert done.status == 200
    assert done.body["status"] == "accepted"
    assert done.body["response"] == response
    assert done.body["completedAt"].endswith("Z")
    # The slot is free again: the next call goes out.
    assert request("POST", "/chargers/CP1/calls", {"action": "Reset", "payload": payload}).status == 202


@pytest.mark.parametrize("protocol", sorted(RESET))
def test_call_error_from_the_charger(deps: Dependencies, protocol: str) -> None:
    connect(deps, "CP1", protocol)
    uid = request("POST", "/chargers/CP1/calls", {"action": "Reset", "payload": RESET[protocol][0]}).body["uniqueId"]
    from_charger(deps, "CP1", protocol, [4, uid, "NotSupported", "no resets today", {}])
    body = request("GET", f"/chargers/CP1/calls/{uid}").body
    assert body["status"] == "error"
    assert body["error"]["errorCode"] == "NotSupported"
    assert body["error"]["errorDescription"] == "no resets today"
    assert "response" not in body


@pytest.mark.parametrize("protocol", sorted(RESET))
def test_invalid_call_result_gives_error_not_a_crash(deps: Dependencies, protocol: str) -> None:
    connect(deps, "CP1", protocol)
    uid = request("POST", "/chargers/CP1/calls", {"action": "Reset", "payload": RESET[protocol][0]}).body["uniqueId"]
    from_charger(deps, "CP1", protocol, [3, uid, {"status": "Perhaps"}])
    body = request("GET", f"/chargers/CP1/calls/{uid}").body
    assert body["status"] == "error"
    assert "does not validate" in body["error"]["errorDescription"]
    assert request("POST", "/chargers/CP1/calls", {"action": "Reset", "payload": RESET[protocol][0]}).status == 202


def test_get_configuration_result_shows_in_the_charger_view(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    uid = request("POST", "/chargers/CP1/calls", {"action": "GetConfiguration", "payload": {}}).body["uniqueId"]
    result = {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "120"}]}
    from_charger(deps, "CP1", "ocpp1.6", [3, uid, result])
    configuration = request("GET", "/chargers/CP1").body["configuration"]
    assert configuration == {"HeartbeatInterval": {"value": "120", "readonly": False}}


def test_get_variables_result_shows_in_the_charger_view(deps: Dependencies) -> None:
    connect(deps, "CS1", "ocpp2.0.1")
    wanted = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
    uid = request(
        "POST", "/chargers/CS1/calls", {"action": "GetVariables", "payload": {"getVariableData": [wanted]}}
    ).body["uniqueId"]
    result = {"getVariableResult": [{"attributeStatus": "Accepted", "attributeValue": "60", **wanted}]}
    from_charger(deps, "CS1", "ocpp2.0.1", [3, uid, result])
    assert request("GET", "/chargers/CS1").body["variables"] == {"OCPPCommCtrlr/HeartbeatInterval": "60"}


def test_empty_payload_defaults_to_an_empty_object(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    answer = request("POST", "/chargers/CP1/calls", {"action": "ClearCache"})
    assert answer.status == 202
    assert _published(deps)[0][1][2:] == ["ClearCache", {}]


# --- ?wait ---------------------------------------------------------------------------------


def _answer_when_published(deps: Dependencies, cp: str, protocol: str, result: Any, delay_s: float) -> threading.Thread:
    """A charger on another thread: answers the first call published to it, after ``delay_s``."""

    def run() -> None:
        deadline = time.monotonic() + 5
        while not deps.publisher.messages and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
        uid = json.loads(deps.publisher.messages[0][1])[1]  # type: ignore[attr-defined]
        time.sleep(delay_s)
        from_charger(deps, cp, protocol, [3, uid, result])

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_wait_returns_the_final_record_when_the_answer_arrives_mid_wait(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    charger = _answer_when_published(deps, "CP1", "ocpp1.6", {"status": "Accepted"}, delay_s=0.3)
    started = time.monotonic()
    answer = request("POST", "/chargers/CP1/calls", {"action": "Reset", "payload": {"type": "Hard"}}, {"wait": "4"})
    elapsed = time.monotonic() - started
    charger.join(5)
    assert answer.status == 200
    assert answer.body["status"] == "accepted"
    assert answer.body["response"] == {"status": "Accepted"}
    assert answer.body["waitedS"] == 4
    assert 0.25 < elapsed < 2.0


def test_wait_that_ends_first_returns_the_pending_record(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    started = time.monotonic()
    answer = request("POST", "/chargers/CP1/calls", {"action": "ClearCache", "payload": {}}, {"wait": "0.3"})
    assert 0.3 <= time.monotonic() - started < 1.5
    assert answer.status == 200
    assert answer.body["status"] == "pending"


@pytest.mark.parametrize("bad", ["abc", "0", "-1", "nan", "inf", "", "1e999", "9" * 40])
def test_bad_wait_is_refused_before_anything_is_sent(deps: Dependencies, bad: str) -> None:
    connect(deps, "CP1", "ocpp1.6")
    answer = request("POST", "/chargers/CP1/calls", {"action": "ClearCache"}, {"wait": bad})
    assert answer.status == 400
    assert "wait" in answer.body["error"]
    assert deps.publisher.messages == []  # type: ignore[attr-defined]


class _FakeTime:
    """``sleep`` and ``monotonic`` for ``ApiContext``: a wait that takes no real time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_wait_above_the_maximum_is_clamped(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    fake = _FakeTime()
    ctx = ApiContext(deps, sleep=fake.sleep, monotonic=fake.monotonic)
    response = handle_event(event("POST", "/chargers/CP1/calls", {"action": "ClearCache"}, {"wait": "600"}), ctx)
    body = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert body["status"] == "pending"
    assert body["waitedS"] == deps.settings.max_wait_s == 5
    assert fake.now == pytest.approx(5.0)
    assert max(fake.slept) <= 0.1 + 1e-9  # polled about every 100 ms


# --- timeouts (fake clock) -----------------------------------------------------------------


def test_call_times_out_and_frees_the_slot(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    uid = request("POST", "/chargers/CP1/calls", {"action": "ClearCache"}).body["uniqueId"]
    deps.clock.advance(29)  # type: ignore[attr-defined]
    assert request("GET", f"/chargers/CP1/calls/{uid}").body["status"] == "pending"
    assert request("POST", "/chargers/CP1/calls", {"action": "ClearCache"}).status == 409
    deps.clock.advance(2)  # type: ignore[attr-defined]
    timed_out = request("GET", f"/chargers/CP1/calls/{uid}").body
    assert timed_out["status"] == "timeout"
    assert "response" not in timed_out and "error" not in timed_out
    # A late answer does not revive it.
    from_charger(deps, "CP1", "ocpp1.6", [3, uid, {"status": "Accepted"}])
    assert request("GET", f"/chargers/CP1/calls/{uid}").body["status"] == "timeout"
    assert request("POST", "/chargers/CP1/calls", {"action": "ClearCache"}).status == 202


@pytest.fixture
def fast_clock_deps() -> Iterator[Dependencies]:
    """Each clock read moves time 500 ms: a 3 s call timeout passes within a few polls."""
    injected = make_deps(clock=FakeClock(step_ms=500), settings=Settings(call_timeout_s=3, max_wait_s=20))
    runtime.configure(injected)
    yield injected
    runtime.configure(None)


def test_wait_returns_timeout_when_the_call_times_out(fast_clock_deps: Dependencies) -> None:
    connect(fast_clock_deps, "CP1", "ocpp1.6")
    started = time.monotonic()
    answer = request("POST", "/chargers/CP1/calls", {"action": "ClearCache"}, {"wait": "20"})
    assert time.monotonic() - started < 3
    assert answer.status == 200
    assert answer.body["status"] == "timeout"


def test_metrics_for_created_completed_and_timed_out_calls(deps: Dependencies) -> None:
    counted: list[str] = []
    fake = _FakeTime()

    def count(name: str, value: int = 1) -> None:
        counted.append(name)

    ctx = ApiContext(deps, sleep=fake.sleep, monotonic=fake.monotonic, count=count)
    connect(deps, "CP1", "ocpp1.6")

    def answer_during_sleep(seconds: float) -> None:
        fake.sleep(seconds)
        uid = json.loads(deps.publisher.messages[-1][1])[1]  # type: ignore[attr-defined]
        from_charger(deps, "CP1", "ocpp1.6", [3, uid, {"status": "Accepted"}])

    waiting = ApiContext(deps, sleep=answer_during_sleep, monotonic=fake.monotonic, count=count)
    handle_event(event("POST", "/chargers/CP1/calls", {"action": "ClearCache"}, {"wait": "2"}), waiting)
    assert counted == ["CallsCreated"]  # completions are counted by the message processor

    counted.clear()
    response = handle_event(event("POST", "/chargers/CP1/calls", {"action": "ClearCache"}), ctx)
    uid = json.loads(response["body"])["uniqueId"]
    deps.clock.advance(31)  # type: ignore[attr-defined]
    handle_event(event("GET", f"/chargers/CP1/calls/{uid}"), ctx)
    handle_event(event("GET", f"/chargers/CP1/calls/{uid}"), ctx)  # counted once, not per read
    assert counted == ["CallsCreated", "CallsTimedOut"]

    counted.clear()
    handle_event(event("POST", "/chargers/CP1/calls", {"action": "Nope"}), ctx)
    assert counted == ["CallsRefused"]


# --- refusals ------------------------------------------------------------------------------


def test_action_not_in_the_chargers_protocol(deps: Dependencies) -> None:
    connect(deps, "CP16", "ocpp1.6")
    connect(deps, "CP201", "ocpp2.0.1")
    start_2x = {"idToken": {"idToken": "TAG", "type": "Central"}, "remoteStartId": 1}
    answer = request("POST", "/chargers/CP16/calls", {"action": "RequestStartTransaction", "payload": start_2x})
    assert answer.status == 400
    assert "ocpp1.6" in answer.body["error"] and answer.body["protocol"] == "ocpp1.6"
    answer = request("POST", "/chargers/CP201/calls", {"action": "RemoteStartTransaction", "payload": {"idTag": "T"}})
    assert answer.status == 400 and answer.body["protocol"] == "ocpp2.0.1"
    # A charger-initiated action is not something the CSMS sends.
    assert request("POST", "/chargers/CP16/calls", {"action": "BootNotification", "payload": {}}).status == 400
    assert deps.publisher.messages == []  # type: ignore[attr-defined]


def test_invalid_payload_gives_the_schema_reason(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    answer = request("POST", "/chargers/CP1/calls", {"action": "Reset", "payload": {"type": "Sideways"}})
    assert answer.status == 400
    assert answer.body["error"].startswith("Invalid Reset payload:")
    assert request("POST", "/chargers/CP1/calls", {"action": "Reset", "payload": {}}).status == 400
    assert request("POST", "/chargers/CP1/calls", {"action": "Reset", "payload": "Soft"}).status == 400
    assert deps.publisher.messages == []  # type: ignore[attr-defined]


def test_unknown_charger_is_404(deps: Dependencies) -> None:
    answer = request("POST", "/chargers/GHOST/calls", {"action": "Reset", "payload": {"type": "Soft"}})
    assert answer.status == 404 and answer.body["chargePointId"] == "GHOST"


def test_not_connected_is_409(deps: Dependencies) -> None:
    request("PUT", "/chargers/NEW", {})
    never = request("POST", "/chargers/NEW/calls", {"action": "Reset", "payload": {"type": "Soft"}})
    assert never.status == 409 and "never connected" in never.body["error"]
    connect(deps, "CP1", "ocpp1.6")
    disconnect(deps, "CP1")
    gone = request("POST", "/chargers/CP1/calls", {"action": "Reset", "payload": {"type": "Soft"}})
    assert gone.status == 409 and "not connected" in gone.body["error"]


def test_second_call_while_one_is_pending_is_409(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    first = request("POST", "/chargers/CP1/calls", {"action": "ClearCache"}).body["uniqueId"]
    busy = request("POST", "/chargers/CP1/calls", {"action": "Reset", "payload": {"type": "Soft"}})
    assert busy.status == 409
    assert busy.body["pendingUniqueId"] == first
    assert len(deps.publisher.messages) == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("raw", "mentioned"),
    [
        ("{not json", "not valid JSON"),
        ("", "JSON object body"),
        ("[]", "JSON object"),
        ('{"payload": {}}', "action"),
        ('{"action": 5}', "action"),
        ('{"action": "Reset", "paylaod": {}}', "paylaod"),
        ('{"action": "Reset", "payload": NaN}', "not valid JSON"),
        ('{"action": "Reset", "payload": {"type": 1e999}}', "range"),
        ('{"action": "Reset", "payload": {"', "not valid JSON"),
        ('{"action": "DataTransfer", "payload": {"vendorId": "v", "data": 1' + "0" * 50 + "}}", "38 digits"),
        ('{"action": "Reset", "payload": ' + "[" * 30 + "]" * 30 + "}", "nested"),
        ('{"action": "DataTransfer", "payload": {"vendorId": "\\ud800"}}', "surrogate"),
        ('{"action": "DataTransfer", "payload": {"vendorId": "v", "data": {"": 1}}}', "empty key"),
    ],
)
def test_malformed_bodies_are_400(deps: Dependencies, raw: str, mentioned: str) -> None:
    connect(deps, "CP1", "ocpp1.6")
    answer = request("POST", "/chargers/CP1/calls", raw_body=raw)
    assert answer.status == 400
    assert mentioned in answer.body["error"]


def test_publish_failure_is_502_and_frees_the_slot(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    deps.publisher.fail = True  # type: ignore[attr-defined]
    answer = request("POST", "/chargers/CP1/calls", {"action": "ClearCache"})
    assert answer.status == 502
    assert "Could not publish the call to ocpp/CP1/out" in answer.body["error"]
    record = request("GET", f"/chargers/CP1/calls/{answer.body['uniqueId']}").body
    assert record["status"] == "error" and record["error"]["errorCode"] == "NotSent"
    deps.publisher.fail = False  # type: ignore[attr-defined]
    assert request("POST", "/chargers/CP1/calls", {"action": "ClearCache"}).status == 202


def test_unknown_call_and_bad_call_id(deps: Dependencies) -> None:
    assert request("GET", "/chargers/CP1/calls/nope").status == 404
    assert request("GET", "/chargers/CP1/calls/" + "x" * 37).status == 400
    assert request("GET", "/chargers/bad!/calls/x").status == 400
    assert request("PUT", "/chargers/CP1/calls/x").status == 405
    assert request("DELETE", "/chargers/CP1/calls").status == 405
    assert request("GET", "/chargers/CP1/calls").status == 404  # the history of an unknown charger
