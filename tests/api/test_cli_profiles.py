"""``python -m csms_cli profiles CP``: the charging profiles the CSMS believes a charger has."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from lambdas.runtime import Dependencies
from local_stack.api_server import ApiServer, start_api_server
from local_stack.ports import free_port

from .support import connect, from_charger, request
from .test_cli import run, table_rows


@pytest.fixture
def server(deps: Dependencies) -> Iterator[ApiServer]:
    started = start_api_server("127.0.0.1", free_port())
    yield started
    started.stop()


def _answered(deps: Dependencies, cp: str, protocol: str, action: str, payload: dict, answer: dict) -> None:
    sent = request("POST", f"/chargers/{cp}/calls", {"action": action, "payload": payload})
    assert sent.status == 202, sent.body
    from_charger(deps, cp, protocol, [3, sent.body["uniqueId"], answer])


def test_profiles_table_json_and_errors(server: ApiServer, deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    periods = [{"startPeriod": 0, "limit": 16}, {"startPeriod": 3600, "limit": 10.5}]
    profile = {
        "chargingProfileId": 7,
        "stackLevel": 2,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {"chargingRateUnit": "A", "chargingSchedulePeriod": periods},
    }
    _answered(
        deps,
        "CP1",
        "ocpp1.6",
        "SetChargingProfile",
        {"connectorId": 1, "csChargingProfiles": profile},
        {"status": "Accepted"},
    )
    composite = {
        "status": "Accepted",
        "connectorId": 1,
        "scheduleStart": "2025-06-15T15:06:40Z",
        "chargingSchedule": {"duration": 600, "chargingRateUnit": "A", "chargingSchedulePeriod": periods[:1]},
    }
    _answered(deps, "CP1", "ocpp1.6", "GetCompositeSchedule", {"connectorId": 1, "duration": 600}, composite)

    code, out, err = run(server, "profiles", "CP1")
    assert code == 0, err
    profiles, schedules = out.split("\ncomposite schedules:\n")
    header, row = table_rows(profiles)
    assert header == [
        "CONNECTOR/EVSE", "ID", "PURPOSE", "STACK", "KIND", "TRANSACTION", "SOURCE", "LIMITS", "SINCE"
    ]  # fmt: skip
    assert row[:8] == ["1", "7", "TxDefaultProfile", "2", "Relative", "-", "operator", "0s:16A 3600s:10.5A"]
    assert row[8].endswith("Z")
    header, row = table_rows(schedules)
    assert header == ["CONNECTOR/EVSE", "START", "DURATION", "UNIT", "LIMITS", "RECEIVED"]
    assert row[:5] == ["1", "2025-06-15T15:06:40Z", "600", "A", "0s:16A"]

    code, out, err = run(server, "profiles", "CP1", "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert (answer["count"], answer["profiles"][0]["chargingProfile"]) == (1, profile)

    code, out, err = run(server, "profiles", "CP9")
    assert (code, out, err) == (1, "", "error: Unknown charger CP9. (HTTP 404)\n")


def test_profiles_of_a_2x_charger_show_the_evse(server: ApiServer, deps: Dependencies) -> None:
    connect(deps, "CS1", "ocpp2.0.1")
    profile = {
        "id": 3,
        "stackLevel": 0,
        "chargingProfilePurpose": "ChargingStationMaxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 22000}]}
        ],
    }
    _answered(
        deps,
        "CS1",
        "ocpp2.0.1",
        "SetChargingProfile",
        {"evseId": 0, "chargingProfile": profile},
        {"status": "Accepted"},
    )
    code, out, err = run(server, "profiles", "CS1")
    assert code == 0, err
    profiles, schedules = out.split("\ncomposite schedules:\n")
    _, row = table_rows(profiles)
    assert row[:3] == ["evse 0", "3", "ChargingStationMaxProfile"] and row[7] == "0s:22000W"
    assert table_rows(schedules) == [["CONNECTOR/EVSE", "START", "DURATION", "UNIT", "LIMITS", "RECEIVED"]]
