"""What the CSMS believes a charger has installed (``ocpp_core.smart_charging.profiles``).

The effects of SetChargingProfile, ClearChargingProfile and GetCompositeSchedule results, and the
2.x ReportChargingProfiles handler, against the in-memory store. Every request and response built
here is validated against the official schemas of its version first, so the tests speak OCPP.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ocpp_core import calls, schemas
from ocpp_core.memory_store import InMemoryStore
from ocpp_core.smart_charging import BALANCING_PROFILE_ID_BASE
from ocpp_core.smart_charging.profiles import (
    clear_charging_profile_result,
    composite_schedule_result,
    set_charging_profile_result,
)
from ocpp_core.versions import OcppVersion
from tests.fakes import START_MS

from .support import V2X, V16, V21, V201, VERSIONS, Charger

CP = "CP1"
ACCEPTED = {"status": "Accepted"}


def _profile(
    version: OcppVersion,
    profile_id: int,
    *,
    stack: int = 0,
    purpose: str = "TxDefaultProfile",
    limit: float = 16,
    transaction: Any = None,
    valid: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """A ChargingProfileType of ``version`` (1.6 ``csChargingProfiles``, 2.x ``chargingProfile``)."""
    periods = [{"startPeriod": 0, "limit": limit}]
    profile: dict[str, Any] = {
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Relative",
    }
    if version is V16:
        profile["chargingProfileId"] = profile_id
        profile["chargingSchedule"] = {"chargingRateUnit": "A", "chargingSchedulePeriod": periods}
    else:
        profile["id"] = profile_id
        profile["chargingSchedule"] = [{"id": 1, "chargingRateUnit": "A", "chargingSchedulePeriod": periods}]
    if transaction is not None:
        profile["transactionId"] = transaction
    if valid is not None:
        profile["validFrom"], profile["validTo"] = valid
    return profile


def _request(version: OcppVersion, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    schemas.validate_request(version, action, payload)
    return payload


def _response(version: OcppVersion, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    schemas.validate_response(version, action, payload)
    return payload


def set_request(version: OcppVersion, where: int, profile: dict[str, Any]) -> dict[str, Any]:
    if version is V16:
        return _request(version, "SetChargingProfile", {"connectorId": where, "csChargingProfiles": profile})
    return _request(version, "SetChargingProfile", {"evseId": where, "chargingProfile": profile})


def install(
    store: InMemoryStore,
    version: OcppVersion,
    where: int,
    profile: dict[str, Any],
    *,
    status: str = "Accepted",
    at: int = START_MS,
) -> None:
    request = set_request(version, where, profile)
    set_charging_profile_result(store, at, CP, request, _response(version, "SetChargingProfile", {"status": status}))


def clear(store: InMemoryStore, version: OcppVersion, request: dict[str, Any], status: str = "Accepted") -> None:
    clear_charging_profile_result(
        store,
        START_MS,
        CP,
        _request(version, "ClearChargingProfile", request),
        _response(version, "ClearChargingProfile", {"status": status}),
    )


def keys(store: InMemoryStore) -> list[str]:
    return [r["profileKey"] for r in store.list_charging_profiles(CP)]


def scope(version: OcppVersion, where: int) -> str:
    return f"C{where}" if version is V16 else f"E{where}"


# --- SetChargingProfile -------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_an_accepted_profile_is_kept_as_sent(version: OcppVersion) -> None:
    store = InMemoryStore()
    tx = 17 if version is V16 else "tx-17"
    profile = _profile(version, 5, stack=2, purpose="TxProfile", transaction=tx)
    install(store, version, 1, profile, at=START_MS + 5)

    [record] = store.list_charging_profiles(CP)
    place = "connectorId" if version is V16 else "evseId"
    assert record == {
        "chargingProfileId": 5,
        place: 1,
        "stackLevel": 2,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "transactionId": tx,
        "chargingProfile": profile,
        "source": "operator",
        "installedAt": START_MS + 5,
        "observedAt": START_MS + 5,
        "profileKey": f"{scope(version, 1)}#5",
        "chargePointId": CP,
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_a_rejected_profile_changes_nothing(version: OcppVersion) -> None:
    store = InMemoryStore()
    install(store, version, 1, _profile(version, 5))
    install(store, version, 1, _profile(version, 5, limit=8), status="Rejected")
    install(store, version, 1, _profile(version, 6), status="Rejected")
    assert keys(store) == [f"{scope(version, 1)}#5"]
    assert store.list_charging_profiles(CP)[0]["chargingProfile"]["stackLevel"] == 0


@pytest.mark.parametrize("version", VERSIONS)
def test_the_balancings_own_ids_are_marked_as_its(version: OcppVersion) -> None:
    store = InMemoryStore()
    install(store, version, 1, _profile(version, BALANCING_PROFILE_ID_BASE + 1, stack=1))
    install(store, version, 0, _profile(version, 1))
    sources = {r["chargingProfileId"]: r["source"] for r in store.list_charging_profiles(CP)}
    assert sources == {BALANCING_PROFILE_ID_BASE + 1: "balancing", 1: "operator"}


@pytest.mark.parametrize("version", VERSIONS)
def test_the_same_id_replaces_the_profile_wherever_it_was(version: OcppVersion) -> None:
    # 1.6 §5.16, 2.0.1 K01.FR.05: an accepted profile replaces the one with its id.
    store = InMemoryStore()
    install(store, version, 1, _profile(version, 5, limit=16), at=START_MS)
    install(store, version, 2, _profile(version, 5, stack=3, limit=10), at=START_MS + 1)
    [record] = store.list_charging_profiles(CP)
    assert record["profileKey"] == f"{scope(version, 2)}#5"
    assert (record["stackLevel"], record["installedAt"]) == (3, START_MS + 1)


def test_1_6_the_same_stack_level_and_purpose_on_a_connector_replaces() -> None:
    # 1.6 §5.16: "the same combination of stackLevel / ChargingProfilePurpose" is replaced.
    store = InMemoryStore()
    install(store, V16, 1, _profile(V16, 1, stack=1))
    install(store, V16, 2, _profile(V16, 2, stack=1))  # another connector: both stay
    install(store, V16, 1, _profile(V16, 3, stack=2))  # another stack level: both stay
    install(store, V16, 1, _profile(V16, 4, stack=1, purpose="TxProfile", transaction=9))  # another purpose
    assert keys(store) == ["C1#1", "C1#3", "C1#4", "C2#2"]

    install(store, V16, 1, _profile(V16, 5, stack=1))
    assert keys(store) == ["C1#3", "C1#4", "C1#5", "C2#2"]
    install(store, V16, 1, _profile(V16, 6, stack=1, purpose="TxProfile", transaction=10))
    assert keys(store) == ["C1#3", "C1#5", "C1#6", "C2#2"]


@pytest.mark.parametrize("version", V2X)
def test_2x_the_same_stack_level_and_purpose_replaces_only_an_overlapping_validity(version: OcppVersion) -> None:
    # 2.0.1 K01.FR.06: no two profiles of one stackLevel / purpose / evseId valid at the same time.
    store = InMemoryStore()
    january = ("2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z")
    february = ("2025-02-01T00:00:00Z", "2025-03-01T00:00:00Z")
    install(store, version, 1, _profile(version, 1, stack=1, valid=january))
    install(store, version, 1, _profile(version, 2, stack=1, valid=february))  # apart in time: both stay
    install(store, version, 2, _profile(version, 3, stack=1))  # another EVSE
    assert keys(store) == ["E1#1", "E1#2", "E2#3"]

    install(store, version, 1, _profile(version, 4, stack=1, valid=("2025-01-15T00:00:00Z", "2025-01-20T00:00:00Z")))
    assert keys(store) == ["E1#2", "E1#4", "E2#3"]
    install(store, version, 1, _profile(version, 5, stack=1))  # open validity: overlaps everything
    assert keys(store) == ["E1#5", "E2#3"]


@pytest.mark.parametrize("version", V2X)
def test_2x_a_tx_profile_at_the_same_stack_level_replaces(version: OcppVersion) -> None:
    # K01.FR.39: one TxProfile per stackLevel and transaction.
    store = InMemoryStore()
    install(store, version, 1, _profile(version, 1, stack=1, purpose="TxProfile", transaction="t1"))
    install(store, version, 1, _profile(version, 2, stack=1, purpose="TxProfile", transaction="t1"))
    assert keys(store) == ["E1#2"]


def test_an_older_answer_never_overwrites_a_later_observation() -> None:
    store = InMemoryStore()
    install(store, V201, 1, _profile(V201, 5, limit=10), at=START_MS + 10)
    install(store, V201, 1, _profile(V201, 5, limit=20), at=START_MS + 5)
    [record] = store.list_charging_profiles(CP)
    assert record["installedAt"] == START_MS + 10


# --- ClearChargingProfile -----------------------------------------------------------------------


def _four(store: InMemoryStore, version: OcppVersion) -> None:
    install(store, version, 0, _profile(version, 1, stack=0))
    install(store, version, 1, _profile(version, 2, stack=1))
    install(
        store, version, 1, _profile(version, 3, stack=2, purpose="TxProfile", transaction=7 if version is V16 else "7")
    )
    install(store, version, 2, _profile(version, 4, stack=1))


@pytest.mark.parametrize(
    ("request_", "left"),
    [
        ({"id": 2}, ["C0#1", "C1#3", "C2#4"]),
        ({"id": 2, "connectorId": 2, "stackLevel": 5}, ["C0#1", "C1#3", "C2#4"]),  # an id names its profile
        ({"connectorId": 1}, ["C0#1", "C2#4"]),
        ({"connectorId": 0}, ["C1#2", "C1#3", "C2#4"]),  # 0 is the charger's own, not "every connector"
        ({"stackLevel": 1}, ["C0#1", "C1#3"]),
        ({"chargingProfilePurpose": "TxProfile"}, ["C0#1", "C1#2", "C2#4"]),
        ({"connectorId": 2, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile"}, ["C0#1", "C1#2", "C1#3"]),
        ({"connectorId": 2, "stackLevel": 2}, ["C0#1", "C1#2", "C1#3", "C2#4"]),
        ({"id": 99}, ["C0#1", "C1#2", "C1#3", "C2#4"]),
        ({}, []),
    ],
)
def test_1_6_clear_removes_what_the_request_names(request_: dict[str, Any], left: list[str]) -> None:
    store = InMemoryStore()
    _four(store, V16)
    clear(store, V16, request_)
    assert keys(store) == left


@pytest.mark.parametrize("version", V2X)
@pytest.mark.parametrize(
    ("request_", "left"),
    [
        ({"chargingProfileId": 2}, ["E0#1", "E1#3", "E2#4"]),
        ({"chargingProfileId": 2, "chargingProfileCriteria": {"evseId": 2}}, ["E0#1", "E1#3", "E2#4"]),
        ({"chargingProfileCriteria": {"evseId": 0}}, ["E1#2", "E1#3", "E2#4"]),
        ({"chargingProfileCriteria": {"evseId": 1, "stackLevel": 2}}, ["E0#1", "E1#2", "E2#4"]),
        ({"chargingProfileCriteria": {"chargingProfilePurpose": "TxDefaultProfile"}}, ["E1#3"]),
        ({}, []),
    ],
)
def test_2x_clear_removes_what_the_request_names(
    version: OcppVersion, request_: dict[str, Any], left: list[str]
) -> None:
    store = InMemoryStore()
    _four(store, version)
    clear(store, version, request_)
    assert keys(store) == left


@pytest.mark.parametrize("version", VERSIONS)
def test_clear_answered_unknown_changes_nothing(version: OcppVersion) -> None:
    store = InMemoryStore()
    _four(store, version)
    clear(store, version, {}, status="Unknown")
    assert len(keys(store)) == 4


@pytest.mark.parametrize("version", V2X)
def test_2x_external_constraints_are_not_the_csms_to_clear_or_replace(make_charger: Any, version: OcppVersion) -> None:
    # K01.FR.05 replaces a known id "unless ChargingStationExternalConstraints"; K10 clears only the CSMS's.
    charger: Charger = make_charger(version)
    external = _profile(version, 1, purpose="ChargingStationExternalConstraints")
    report = {"requestId": 3, "chargingLimitSource": "EMS", "evseId": 0, "chargingProfile": [external]}
    charger.result("ReportChargingProfiles", _request(version, "ReportChargingProfiles", report))
    install(charger.store, version, 1, _profile(version, 1))
    assert keys(charger.store) == ["E0#1", "E1#1"]
    clear(charger.store, version, {"chargingProfileId": 1})
    assert keys(charger.store) == ["E0#1"]
    clear(charger.store, version, {})
    assert keys(charger.store) == ["E0#1"]


# --- GetCompositeSchedule -------------------------------------------------------------------------

COMPOSITE = {
    V16: (
        {"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"},
        {
            "status": "Accepted",
            "connectorId": 1,
            "scheduleStart": "2025-06-15T15:06:40Z",
            "chargingSchedule": {
                "duration": 3600,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
            },
        },
    ),
    V201: (
        {"evseId": 1, "duration": 3600, "chargingRateUnit": "A"},
        {
            "status": "Accepted",
            "schedule": {
                "evseId": 1,
                "duration": 3600,
                "scheduleStart": "2025-06-15T15:06:40Z",
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16}],
            },
        },
    ),
}
COMPOSITE[V21] = COMPOSITE[V201]


@pytest.mark.parametrize("version", VERSIONS)
def test_an_accepted_composite_schedule_is_kept_per_connector(version: OcppVersion) -> None:
    store = InMemoryStore()
    request, response = COMPOSITE[version]
    _request(version, "GetCompositeSchedule", request)
    _response(version, "GetCompositeSchedule", response)
    composite_schedule_result(store, START_MS, CP, request, response)
    composite_schedule_result(store, START_MS + 1, CP, request, response)  # the latest replaces it
    rejected = _response(version, "GetCompositeSchedule", {"status": "Rejected"})
    other = {**request, "connectorId" if version is V16 else "evseId": 2}
    composite_schedule_result(store, START_MS + 2, CP, _request(version, "GetCompositeSchedule", other), rejected)

    label = scope(version, 1)
    assert store.list_composite_schedules(CP) == [
        {"request": request, "response": response, "receivedAt": START_MS + 1, "label": label, "chargePointId": CP}
    ]


# --- through the call lifecycle and the processor -----------------------------------------------


def test_the_effects_are_registered_for_the_call_results() -> None:
    assert calls.RESULT_EFFECTS["SetChargingProfile"] is set_charging_profile_result
    assert calls.RESULT_EFFECTS["ClearChargingProfile"] is clear_charging_profile_result
    assert calls.RESULT_EFFECTS["GetCompositeSchedule"] is composite_schedule_result


@pytest.mark.parametrize("version", VERSIONS)
def test_a_call_answered_accepted_installs_the_profile(make_charger: Any, version: OcppVersion) -> None:
    from tests.fakes import mark_connected

    charger: Charger = make_charger(version)
    mark_connected(charger.store, CP, "conn-1", charger.clock.now_ms(), protocol=version.value, registered=True)
    request = set_request(version, 1, _profile(version, 8))
    new = calls.start_call(
        charger.store, charger.ids, charger.clock.now_ms(), CP, "SetChargingProfile", request, timeout_s=30
    )
    charger.clock.advance(1)
    charger.send_text(json.dumps([3, new.record["uniqueId"], ACCEPTED]))
    [record] = charger.store.list_charging_profiles(CP)
    assert (record["profileKey"], record["installedAt"]) == (f"{scope(version, 1)}#8", START_MS + 1000)


@pytest.mark.parametrize("version", V2X)
def test_a_report_is_kept_as_an_event_and_as_installed_profiles(make_charger: Any, version: OcppVersion) -> None:
    charger: Charger = make_charger(version)
    install(charger.store, version, 1, _profile(version, 1, limit=32), at=START_MS - 1)
    charger.clock.advance(5)
    reported = [_profile(version, 1, limit=16), _profile(version, 2, stack=3, purpose="TxProfile", transaction="t9")]
    report = _request(
        version,
        "ReportChargingProfiles",
        {"requestId": 42, "chargingLimitSource": "CSO", "evseId": 1, "chargingProfile": reported, "tbc": False},
    )
    frame = json.dumps([2, "r-1", "ReportChargingProfiles", report])
    charger.send_text(frame)
    first = charger.store.list_charging_profiles(CP)
    charger.send_text(frame)  # redelivered: the same records
    assert charger.store.list_charging_profiles(CP) == first

    assert [(r["profileKey"], r["source"]) for r in first] == [("E1#1", "report"), ("E1#2", "report")]
    one, two = first
    assert one["chargingProfile"] == reported[0]  # the charger's word replaces what was sent
    assert (one["chargingLimitSource"], one["requestId"]) == ("CSO", 42)
    assert one["reportedAt"] == one["observedAt"] == START_MS + 5000
    assert (two["transactionId"], two["stackLevel"], two["evseId"]) == ("t9", 3, 1)
    [event] = charger.store.list_events(CP, "ReportChargingProfiles")
    assert event["payload"] == report

    # An older report delivered late changes nothing.
    charger.clock.advance(-2)
    stale = {**report, "chargingProfile": [_profile(version, 1, limit=6)]}
    charger.send_text(
        json.dumps([2, "r-0", "ReportChargingProfiles", _request(version, "ReportChargingProfiles", stale)])
    )
    assert charger.store.list_charging_profiles(CP)[0]["chargingProfile"] == reported[0]
