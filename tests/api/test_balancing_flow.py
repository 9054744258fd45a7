"""Site balancing through the Lambda handlers (processor, lifecycle, operator API, timer) over the
in-memory store: what is published to the chargers, in what order, and how the outbox shares the
charger's one outstanding-call slot with operator calls (DESIGN §10)."""

from __future__ import annotations

import json
from typing import Any

from lambdas import timer
from lambdas.runtime import Dependencies
from ocpp_core.smart_charging import BALANCING_PROFILE_ID_BASE

from .support import connect, disconnect, from_charger, request

SITE = {"limitAmps": 32, "phases": 3, "minAmps": 6, "chargers": ["CP1", "CP2"]}
V16, V201 = "ocpp1.6", "ocpp2.0.1"
UNITS = {
    V16: {
        "configurationKey": [{"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Current"}]
    },
    V201: {
        "getVariableResult": [
            {
                "attributeStatus": "Accepted",
                "attributeValue": "A,W",
                "component": {"name": "SmartChargingCtrlr"},
                "variable": {"name": "RateUnit"},
            }
        ]
    },
}


def sent(deps: Dependencies, cp: str) -> list[list[Any]]:
    """The frames published to ``cp`` so far, oldest first."""
    return [json.loads(payload) for topic, payload, _ in deps.publisher.messages if topic == f"ocpp/{cp}/out"]


def calls(deps: Dependencies, cp: str) -> list[list[Any]]:
    return [frame for frame in sent(deps, cp) if frame[0] == 2]


def profiles(deps: Dependencies, cp: str) -> list[list[Any]]:
    """The SetChargingProfile calls sent to ``cp``, oldest first."""
    return [frame for frame in calls(deps, cp) if frame[2] == "SetChargingProfile"]


def answer(deps: Dependencies, cp: str, protocol: str, payload: Any = None, frame: Any = None) -> None:
    """The charger answers the last call it got (Accepted unless told otherwise)."""
    unique_id = calls(deps, cp)[-1][1]
    from_charger(deps, cp, protocol, frame or [3, unique_id, payload or {"status": "Accepted"}])


def start_16(deps: Dependencies, cp: str, unique_id: str = "st") -> int:
    reply = from_charger(
        deps,
        cp,
        V16,
        [
            2,
            unique_id,
            "StartTransaction",
            {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2025-06-15T15:00:00Z"},
        ],
    )
    return int(json.loads(reply.reply)[2]["transactionId"])


def limit_of(call: list[Any]) -> float:
    payload = call[3]
    profile = payload.get("csChargingProfiles") or payload["chargingProfile"]
    schedule = profile["chargingSchedule"]
    schedule = schedule[0] if isinstance(schedule, list) else schedule
    return float(schedule["chargingSchedulePeriod"][0]["limit"])


def site_of_two(deps: Dependencies, protocols: tuple[str, str] = (V16, V16)) -> None:
    for cp, protocol in zip(("CP1", "CP2"), protocols, strict=True):
        assert request("PUT", f"/chargers/{cp}", {}).status in (200, 201)
        connect(deps, cp, protocol)
    assert request("PUT", "/sites/S1", SITE).status == 201
    for cp, protocol in zip(("CP1", "CP2"), protocols, strict=True):
        (default,) = calls(deps, cp)
        assert default[2] == "SetChargingProfile"
        profile = default[3].get("csChargingProfiles") or default[3]["chargingProfile"]
        assert profile["chargingProfilePurpose"] == "TxDefaultProfile" and limit_of(default) == 0
        answer(deps, cp, protocol)
        # Then the rate units it takes, read once (the answer fills its configuration / variables).
        probe = calls(deps, cp)[-1]
        assert probe[2] == ("GetConfiguration" if protocol == V16 else "GetVariables")
        answer(deps, cp, protocol, UNITS[protocol])


def test_the_profile_follows_the_start_transaction_reply(deps: Dependencies) -> None:
    site_of_two(deps)
    transaction_id = start_16(deps, "CP1")
    frames = sent(deps, "CP1")
    # The StartTransaction answer first: the charger knows the transaction id the profile names.
    assert frames[-2][0] == 3 and frames[-2][1] == "st"
    profile = frames[-1]
    assert profile[2] == "SetChargingProfile"
    assert profile[3]["connectorId"] == 1
    assert profile[3]["csChargingProfiles"]["transactionId"] == transaction_id
    assert profile[3]["csChargingProfiles"]["chargingProfileId"] == BALANCING_PROFILE_ID_BASE + 1
    assert limit_of(profile) == 32


def test_lower_first_then_raise(deps: Dependencies) -> None:
    site_of_two(deps)
    start_16(deps, "CP1")
    answer(deps, "CP1", V16)
    start_16(deps, "CP2", "st2")
    assert limit_of(calls(deps, "CP1")[-1]) == 16  # lowered at once
    assert limit_of(profiles(deps, "CP2")[-1]) == 0
    # ^ still the default: CP2's raise waits for CP1 to accept its decrease.
    answer(deps, "CP1", V16)
    assert limit_of(calls(deps, "CP2")[-1]) == 16
    answer(deps, "CP2", V16)
    view = request("GET", "/sites/S1").body
    assert [(t["chargePointId"], t["limit"], t["profileStatus"]) for t in view["activeTransactions"]] == [
        ("CP1", 16, "applied"),
        ("CP2", 16, "applied"),
    ]


def test_an_operator_call_and_the_outbox_share_the_slot(deps: Dependencies) -> None:
    site_of_two(deps)
    start_16(deps, "CP1")  # a profile is now out, unanswered
    busy = request("POST", "/chargers/CP1/calls", {"action": "ClearCache", "payload": {}})
    assert busy.status == 409 and "pending" in busy.body["error"]
    answer(deps, "CP1", V16)
    ok = request("POST", "/chargers/CP1/calls", {"action": "ClearCache", "payload": {}})
    assert ok.status == 202
    # While the operator's call is out, a new profile waits in the outbox...
    start_16(deps, "CP2", "st2")
    assert calls(deps, "CP1")[-1][2] == "ClearCache"
    # ...and goes out when the operator's call is answered.
    answer(deps, "CP1", V16)
    assert calls(deps, "CP1")[-1][2] == "SetChargingProfile" and limit_of(calls(deps, "CP1")[-1]) == 16


def test_an_unanswered_profile_is_timed_out_by_the_timer_and_retried(deps: Dependencies) -> None:
    site_of_two(deps)
    start_16(deps, "CP1")
    first = calls(deps, "CP1")[-1]
    deps.clock.advance(31)  # past the 30 s call timeout
    assert timer.handle({}) == {"timedOut": 1, "sent": 1}
    retry = calls(deps, "CP1")[-1]
    assert retry[2] == "SetChargingProfile" and retry[1] != first[1] and limit_of(retry) == 32
    record = request("GET", f"/chargers/CP1/calls/{first[1]}").body
    assert record["status"] == "timeout"
    assert timer.handle({}) == {"timedOut": 0, "sent": 0}  # nothing more to do


def test_rejected_three_times_is_reported_and_the_garbage_answer_counts_as_one(deps: Dependencies) -> None:
    site_of_two(deps)
    start_16(deps, "CP1")
    answer(deps, "CP1", V16, {"status": "Rejected"})
    answer(deps, "CP1", V16, {"no": "schema"})  # a CALLRESULT that does not validate
    answer(deps, "CP1", V16, frame=[4, calls(deps, "CP1")[-1][1], "InternalError", "boom", {}])
    view = request("GET", "/sites/S1").body["activeTransactions"][0]
    assert view["profileStatus"] == "failed" and "error" in view["lastError"]
    count = len(calls(deps, "CP1"))
    timer.handle({})
    assert len(calls(deps, "CP1")) == count  # no more retries until it reconnects


def test_a_reconnect_sends_the_profiles_again(deps: Dependencies) -> None:
    site_of_two(deps)
    start_16(deps, "CP1")
    answer(deps, "CP1", V16)
    disconnect(deps, "CP1")
    deps.clock.advance(1)
    connect(deps, "CP1", V16, connection_id="conn-2")
    again = calls(deps, "CP1")[-1]
    assert again[2] == "SetChargingProfile" and limit_of(again) == 32


def test_a_profile_for_an_offline_charger_waits_for_it(deps: Dependencies) -> None:
    site_of_two(deps)
    start_16(deps, "CP1")
    answer(deps, "CP1", V16)
    disconnect(deps, "CP1")
    start_16(deps, "CP2", "st2")  # CP1 must come down to 16, but it is offline
    assert limit_of(calls(deps, "CP1")[-1]) == 32
    assert limit_of(profiles(deps, "CP2")[-1]) == 0  # and CP2 is not raised meanwhile
    deps.clock.advance(1)
    connect(deps, "CP1", V16, connection_id="conn-2")
    assert limit_of(calls(deps, "CP1")[-1]) == 16


def test_two_x_reordered_ended_before_started_leaves_no_session(deps: Dependencies) -> None:
    site_of_two(deps, (V201, V201))

    def event(kind: str, seq: int, uid: str) -> None:
        payload = {
            "eventType": kind,
            "timestamp": "2025-06-15T15:00:00Z",
            "triggerReason": "Authorized" if kind == "Started" else "EVCommunicationLost",
            "seqNo": seq,
            "transactionInfo": {"transactionId": "tx-1"},
            "evse": {"id": 1, "connectorId": 1},
        }
        from_charger(deps, "CP1", V201, [2, uid, "TransactionEvent", payload])

    event("Ended", 1, "e1")
    event("Started", 0, "e0")  # delivered late
    assert request("GET", "/sites/S1").body["activeTransactions"] == []
    assert [c[2] for c in calls(deps, "CP1")] == ["SetChargingProfile", "GetVariables"]  # the default only


def test_a_two_x_session_gets_a_tx_profile_for_its_evse(deps: Dependencies) -> None:
    site_of_two(deps, (V201, V16))
    payload = {
        "eventType": "Started",
        "timestamp": "2025-06-15T15:00:00Z",
        "triggerReason": "Authorized",
        "seqNo": 0,
        "transactionInfo": {"transactionId": "tx-9"},
        "evse": {"id": 2, "connectorId": 1},
    }
    from_charger(deps, "CP1", V201, [2, "e0", "TransactionEvent", payload])
    profile = calls(deps, "CP1")[-1][3]
    assert profile["evseId"] == 2
    assert profile["chargingProfile"]["transactionId"] == "tx-9"
    assert profile["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
    assert profile["chargingProfile"]["chargingSchedule"][0]["chargingRateUnit"] == "A"


def test_a_charger_that_leaves_the_site_gets_the_balancing_profiles_removed(deps: Dependencies) -> None:
    site_of_two(deps)
    start_16(deps, "CP2", "st2")
    answer(deps, "CP2", V16)
    assert request("PUT", "/sites/S1", {**SITE, "chargers": ["CP1"]}).status == 200
    # Its default at 0 A would pause every session it starts, for ever: both profiles go.
    clear = calls(deps, "CP2")[-1]
    assert clear[2] == "ClearChargingProfile"
    removed = {clear[3]["id"]}
    answer(deps, "CP2", V16)
    clear = calls(deps, "CP2")[-1]
    assert clear[2] == "ClearChargingProfile"
    removed.add(clear[3]["id"])
    answer(deps, "CP2", V16)
    assert removed == {BALANCING_PROFILE_ID_BASE, BALANCING_PROFILE_ID_BASE + 1}
    assert request("GET", "/sites/S1").body["activeTransactions"] == []
    profiles = request("GET", "/chargers/CP2/charging-profiles").body["profiles"]
    assert [p for p in profiles if p["source"] == "balancing"] == []


def test_a_charger_that_takes_only_watts_gets_its_profiles_in_watts(deps: Dependencies) -> None:
    for cp in ("CP1", "CP2"):
        assert request("PUT", f"/chargers/{cp}", {}).status in (200, 201)
        connect(deps, cp, V16)
    assert request("PUT", "/sites/S1", SITE).status == 201
    answer(deps, "CP1", V16)  # the default
    only_power = {
        "configurationKey": [{"key": "ChargingScheduleAllowedChargingRateUnit", "readonly": True, "value": "Power"}]
    }
    answer(deps, "CP1", V16, only_power)
    start_16(deps, "CP1")
    profile = calls(deps, "CP1")[-1][3]["csChargingProfiles"]["chargingSchedule"]
    # 32 A on 3 phases at 230 V
    assert profile["chargingRateUnit"] == "W" and profile["chargingSchedulePeriod"][0]["limit"] == 22080
