"""``GET /chargers/{chargePointId}/charging-profiles``: what the CSMS believes is installed.

Through the operator API (``request``) and the message processor (``from_charger``): the CSMS
sends the call, the charger answers it, the view shows the result.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

from lambdas.runtime import Dependencies
from ocpp_core.timefmt import format_ms
from tests.fakes import START_MS

from .support import connect, from_charger, request

V16, V201, V21 = "ocpp1.6", "ocpp2.0.1", "ocpp2.1"

_message_ids = itertools.count(1)


def _profile(protocol: str, profile_id: int, purpose: str = "TxDefaultProfile", **extra: Any) -> dict[str, Any]:
    periods = [{"startPeriod": 0, "limit": 16}]
    if protocol == V16:
        schedule: Any = {"chargingRateUnit": "A", "chargingSchedulePeriod": periods}
        ident = {"chargingProfileId": profile_id}
    else:
        schedule = [{"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": periods}]
        ident = {"id": profile_id}
    return {
        **ident,
        "stackLevel": extra.pop("stackLevel", 0),
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
        "chargingSchedule": schedule,
        **extra,
    }


def _set_payload(protocol: str, where: int, profile: dict[str, Any]) -> dict[str, Any]:
    if protocol == V16:
        return {"connectorId": where, "csChargingProfiles": profile}
    return {"evseId": where, "chargingProfile": profile}


def _call(deps: Dependencies, cp: str, protocol: str, action: str, payload: Any, answer: dict[str, Any]) -> None:
    """The operator sends ``action``; the charger answers ``answer``."""
    sent = request("POST", f"/chargers/{cp}/calls", {"action": action, "payload": payload})
    assert sent.status == 202, sent.body
    outcome = from_charger(deps, cp, protocol, [3, sent.body["uniqueId"], answer])
    assert outcome.kind == "result"
    assert request("GET", f"/chargers/{cp}/calls/{sent.body['uniqueId']}").body["status"] == "accepted"


def _send(deps: Dependencies, cp: str, protocol: str, action: str, payload: dict[str, Any]) -> Any:
    outcome = from_charger(deps, cp, protocol, [2, f"m{next(_message_ids)}", action, payload])
    reply = json.loads(outcome.reply)
    assert reply[0] == 3, reply
    return reply[2]


@pytest.mark.parametrize("protocol", [V16, V201, V21])
def test_a_profile_the_charger_accepted_is_shown(deps: Dependencies, protocol: str) -> None:
    connect(deps, "CP1", protocol)
    assert request("GET", "/chargers/CP1/charging-profiles").body == {
        "chargePointId": "CP1",
        "profiles": [],
        "compositeSchedules": [],
        "count": 0,
    }
    profile = _profile(protocol, 3, stackLevel=1)
    deps.clock.advance(2)
    _call(deps, "CP1", protocol, "SetChargingProfile", _set_payload(protocol, 1, profile), {"status": "Accepted"})
    _call(
        deps,
        "CP1",
        protocol,
        "SetChargingProfile",
        _set_payload(protocol, 2, _profile(protocol, 4)),
        {"status": "Rejected"},
    )

    answer = request("GET", "/chargers/CP1/charging-profiles")
    assert answer.status == 200
    assert answer.body["count"] == 1
    [shown] = answer.body["profiles"]
    scope, place = ("C", "connectorId") if protocol == V16 else ("E", "evseId")
    assert shown == {
        "chargingProfileId": 3,
        place: 1,
        "stackLevel": 1,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingProfile": profile,
        "source": "operator",
        "installedAt": format_ms(START_MS + 2000),
        "observedAt": format_ms(START_MS + 2000),
        "profileKey": f"{scope}1#3",
    }


def test_a_tx_profile_is_not_shown_once_its_transaction_ended(deps: Dependencies) -> None:
    request("PUT", "/id-tags/TAG", {})
    connect(deps, "CP1", V16)
    started = _send(
        deps,
        "CP1",
        V16,
        "StartTransaction",
        {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": "2025-06-15T15:06:40Z"},
    )
    tx = started["transactionId"]
    for profile_id, stack in ((1, 1), (2, 2)):
        tx_profile = _profile(V16, profile_id, "TxProfile", stackLevel=stack, transactionId=tx)
        _call(deps, "CP1", V16, "SetChargingProfile", _set_payload(V16, 1, tx_profile), {"status": "Accepted"})
    _call(deps, "CP1", V16, "SetChargingProfile", _set_payload(V16, 0, _profile(V16, 9)), {"status": "Accepted"})
    shown = request("GET", "/chargers/CP1/charging-profiles").body
    assert [p["profileKey"] for p in shown["profiles"]] == ["C0#9", "C1#1", "C1#2"]

    reads: list[tuple[str, str]] = []
    store: Any = deps.store
    original = store.get_transaction

    def counting(cp: str, transaction_id: str) -> Any:
        reads.append((cp, transaction_id))
        return original(cp, transaction_id)

    store.get_transaction = counting
    _send(
        deps, "CP1", V16, "StopTransaction", {"transactionId": tx, "meterStop": 10, "timestamp": "2025-06-15T16:00:00Z"}
    )
    reads.clear()
    shown = request("GET", "/chargers/CP1/charging-profiles").body
    assert [p["profileKey"] for p in shown["profiles"]] == ["C0#9"]
    assert shown["count"] == 1
    assert reads == [("CP1", str(tx))]  # one read for the two profiles of the transaction


def test_a_2x_report_and_a_composite_schedule_are_shown(deps: Dependencies) -> None:
    connect(deps, "CS1", V201)
    reported = _profile(V201, 5, "ChargingStationMaxProfile")
    report = {"requestId": 1, "chargingLimitSource": "CSO", "evseId": 0, "chargingProfile": [reported]}
    assert _send(deps, "CS1", V201, "ReportChargingProfiles", report) == {}
    composite = {
        "status": "Accepted",
        "schedule": {
            "evseId": 1,
            "duration": 600,
            "scheduleStart": "2025-06-15T15:06:40Z",
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10}],
        },
    }
    _call(deps, "CS1", V201, "GetCompositeSchedule", {"evseId": 1, "duration": 600}, composite)

    body = request("GET", "/chargers/CS1/charging-profiles").body
    [profile] = body["profiles"]
    assert (profile["profileKey"], profile["source"], profile["chargingLimitSource"]) == ("E0#5", "report", "CSO")
    assert profile["reportedAt"] == format_ms(START_MS)
    assert body["compositeSchedules"] == [
        {
            "request": {"evseId": 1, "duration": 600},
            "response": composite,
            "receivedAt": format_ms(START_MS),
            "label": "E1",
        }
    ]


def test_unknown_charger_and_bad_requests(deps: Dependencies) -> None:
    missing = request("GET", "/chargers/CP9/charging-profiles")
    assert missing.status == 404
    assert missing.body == {"error": "Unknown charger CP9.", "chargePointId": "CP9"}
    assert request("GET", "/chargers/bad%20id/charging-profiles").status == 400
    connect(deps, "CP1", V16)
    assert request("POST", "/chargers/CP1/charging-profiles").status == 405
