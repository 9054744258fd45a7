"""Charging profiles on the simulated station (1.6 Smart Charging, 2.0.1 and 2.1 block K), against the fake CSMS."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ocpp_core.framing import CallResult
from ocpp_core.versions import OcppVersion
from simulator import messages
from simulator.station import Station

from .fake_csms import FakeCsms
from .helpers import eventually, run, station

VERSIONS = [OcppVersion.V16, OcppVersion.V201, OcppVersion.V21]
V2 = [OcppVersion.V201, OcppVersion.V21]
MEASURANDS = "Energy.Active.Import.Register,Current.Import,Power.Active.Import"


def _max_purpose(version: OcppVersion) -> str:
    return "ChargingStationMaxProfile" if version.is_2x else "ChargePointMaxProfile"


def _profile(
    version: OcppVersion,
    profile_id: int,
    purpose: str,
    stack_level: int,
    periods: list[tuple[int, float] | tuple[int, float, int]],
    *,
    unit: str = "A",
    kind: str = "Absolute",
    start_ms: int | None = None,
    duration: int | None = None,
    transaction_id: int | str | None = None,
    valid_from_ms: int | None = None,
    valid_to_ms: int | None = None,
    recurrency: str | None = None,
) -> dict[str, Any]:
    """A 1.6 csChargingProfiles / 2.x chargingProfile; ``purpose`` "max" is the station maximum."""
    if purpose == "max":
        purpose = _max_purpose(version)
    items = []
    for period in periods:
        item: dict[str, Any] = {"startPeriod": period[0], "limit": period[1]}
        if len(period) == 3:
            item["numberPhases"] = period[2]
        items.append(item)
    schedule: dict[str, Any] = {"chargingRateUnit": unit, "chargingSchedulePeriod": items}
    if kind in ("Absolute", "Recurring"):
        schedule["startSchedule"] = messages.timestamp(start_ms if start_ms is not None else messages.now_ms() - 1000)
    if duration is not None:
        schedule["duration"] = duration
    profile: dict[str, Any] = {
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
    }
    if recurrency is not None:
        profile["recurrencyKind"] = recurrency
    if valid_from_ms is not None:
        profile["validFrom"] = messages.timestamp(valid_from_ms)
    if valid_to_ms is not None:
        profile["validTo"] = messages.timestamp(valid_to_ms)
    if transaction_id is not None:
        profile["transactionId"] = transaction_id
    if version.is_2x:
        schedule["id"] = profile_id
        return {"id": profile_id, **profile, "chargingSchedule": [schedule]}
    return {"chargingProfileId": profile_id, **profile, "chargingSchedule": schedule}


async def _set(csms: FakeCsms, cp: str, version: OcppVersion, connector: int, profile: dict[str, Any]) -> str:
    if version.is_2x:
        payload = {"evseId": connector, "chargingProfile": profile}
    else:
        payload = {"connectorId": connector, "csChargingProfiles": profile}
    return await _status(csms, cp, "SetChargingProfile", payload)


async def _status(csms: FakeCsms, cp: str, action: str, payload: dict[str, Any]) -> str:
    answer = await csms.call(cp, action, payload)
    assert isinstance(answer, CallResult), (action, answer)
    return str(answer.payload["status"])


async def _composite(
    csms: FakeCsms, cp: str, version: OcppVersion, connector: int, duration: int, unit: str | None = None
) -> tuple[str, list[dict[str, Any]], str | None]:
    """(status, periods, unit) of a GetCompositeSchedule."""
    key = "evseId" if version.is_2x else "connectorId"
    payload: dict[str, Any] = {key: connector, "duration": duration}
    if unit is not None:
        payload["chargingRateUnit"] = unit
    answer = await csms.call(cp, "GetCompositeSchedule", payload)
    assert isinstance(answer, CallResult)
    schedule = answer.payload.get("schedule" if version.is_2x else "chargingSchedule")
    if schedule is None:
        return str(answer.payload["status"]), [], None
    return str(answer.payload["status"]), schedule["chargingSchedulePeriod"], schedule["chargingRateUnit"]


async def _booted(csms: FakeCsms, cp: str, version: OcppVersion, connectors: int = 1) -> Station:
    st = station(csms, cp, version.value, connectors=connectors)
    await st.connect()
    await st.boot()
    return st


async def _sample_measurands(csms: FakeCsms, cp: str, version: OcppVersion) -> None:
    """Ask for Current.Import and Power.Active.Import in the samples too."""
    if version.is_2x:
        item = {
            "component": {"name": "SampledDataCtrlr"},
            "variable": {"name": "TxUpdatedMeasurands"},
            "attributeValue": MEASURANDS,
        }
        answer = await csms.call(cp, "SetVariables", {"setVariableData": [item]})
        assert isinstance(answer, CallResult)
        assert answer.payload["setVariableResult"][0]["attributeStatus"] == "Accepted"
    else:
        status = await _status(csms, cp, "ChangeConfiguration", {"key": "MeterValuesSampledData", "value": MEASURANDS})
        assert status == "Accepted"


def _last_sample(csms: FakeCsms, cp: str, version: OcppVersion) -> dict[str, float]:
    """Measurand -> value of the last periodic sample ``cp`` sent in its transaction."""
    if version.is_2x:
        events = [e for e in csms.calls_of(cp, "TransactionEvent") if e["triggerReason"] == "MeterValuePeriodic"]
        sampled = events[-1]["meterValue"][0]["sampledValue"]
    else:
        sampled = csms.calls_of(cp, "MeterValues")[-1]["meterValue"][0]["sampledValue"]
    return {s["measurand"]: float(s["value"]) for s in sampled}


def _charging_states(csms: FakeCsms, cp: str, version: OcppVersion) -> list[str]:
    """1.6: the StatusNotification statuses; 2.x: the chargingState of each TransactionEvent that has one."""
    if version.is_2x:
        return [
            e["transactionInfo"]["chargingState"]
            for e in csms.calls_of(cp, "TransactionEvent")
            if "chargingState" in e["transactionInfo"]
        ]
    return [s["status"] for s in csms.calls_of(cp, "StatusNotification")]


@pytest.mark.parametrize("version", VERSIONS)
def test_accepted_and_rejected(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            cp = "CP-SCR"
            st = await _booted(csms, cp, version, connectors=2)
            try:
                tx_default = _profile(version, 1, "TxDefaultProfile", 0, [(0, 16)])
                assert await _set(csms, cp, version, 0, tx_default) == "Accepted"
                assert await _set(csms, cp, version, 3, _profile(version, 2, "TxDefaultProfile", 0, [(0, 8)])) == (
                    "Rejected"  # no such connector / EVSE
                )
                tx = _profile(version, 3, "TxProfile", 0, [(0, 10)])
                assert await _set(csms, cp, version, 1, tx) == "Rejected"  # no transaction on it
                assert await _set(csms, cp, version, 1, _profile(version, 4, "max", 0, [(0, 40)])) == "Rejected"
                assert await _set(csms, cp, version, 0, _profile(version, 4, "max", 0, [(0, 40)])) == "Accepted"
                too_high = _profile(version, 5, "TxDefaultProfile", 99, [(0, 8)])
                assert await _set(csms, cp, version, 1, too_high) == "Rejected"  # above ChargeProfileMaxStackLevel
                unordered = _profile(version, 6, "TxDefaultProfile", 1, [(10, 8)])
                assert await _set(csms, cp, version, 1, unordered) == "Rejected"  # the first period starts at 0
                if version.is_2x:
                    external = _profile(version, 7, "ChargingStationExternalConstraints", 0, [(0, 8)])
                    assert await _set(csms, cp, version, 0, external) == "Rejected"
                    # Another id on the same EVSE, stack level and purpose, overlapping: refused (K01).
                    clash = _profile(version, 8, "TxDefaultProfile", 0, [(0, 8)])
                    assert await _set(csms, cp, version, 0, clash) == "Rejected"
                # A station that takes schedules in amps only refuses watts.
                if version.is_2x:
                    st.model.force("RateUnit", "A", component="SmartChargingCtrlr")
                else:
                    st.model.force("ChargingScheduleAllowedChargingRateUnit", "Current")
                watts = _profile(version, 9, "TxDefaultProfile", 2, [(0, 11000)], unit="W")
                assert await _set(csms, cp, version, 1, watts) == "Rejected"
                assert (await _composite(csms, cp, version, 1, 60, "W"))[0] == "Rejected"

                running = await st.start_transaction(1, "TAG")
                wrong = "nope" if version.is_2x else 999
                mismatched = _profile(version, 10, "TxProfile", 0, [(0, 10)], transaction_id=wrong)
                assert await _set(csms, cp, version, 1, mismatched) == "Rejected"
                assert await _set(csms, cp, version, 0, _profile(version, 10, "TxProfile", 0, [(0, 10)])) == "Rejected"
                right = _profile(version, 10, "TxProfile", 0, [(0, 10)], transaction_id=running.transaction_id)
                assert await _set(csms, cp, version, 1, right) == "Accepted"
                assert [p.id for p in st.profiles.installed] == [1, 4, 10]
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


@pytest.mark.parametrize("version", VERSIONS)
def test_stack_levels_purposes_and_watts(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            cp = "CP-STK"
            st = await _booted(csms, cp, version)
            try:
                conn = st.connectors[1]
                await st.start_transaction(1, "TAG")
                assert st.draw(conn).amps == 32  # nothing limits: the EV's maximum
                assert await _set(csms, cp, version, 0, _profile(version, 1, "TxDefaultProfile", 0, [(0, 20)])) == (
                    "Accepted"
                )
                assert st.draw(conn).amps == 20
                assert await _set(csms, cp, version, 1, _profile(version, 2, "TxDefaultProfile", 1, [(0, 12)])) == (
                    "Accepted"
                )
                assert st.draw(conn).amps == 12  # the higher stack level wins
                # A higher stack level whose schedule is over does not count.
                ended = _profile(
                    version, 3, "TxDefaultProfile", 2, [(0, 6)], duration=1, start_ms=messages.now_ms() - 5000
                )
                assert await _set(csms, cp, version, 1, ended) == "Accepted"
                assert st.draw(conn).amps == 12
                # The transaction's own profile overrules the defaults, even above them.
                assert await _set(csms, cp, version, 1, _profile(version, 4, "TxProfile", 0, [(0, 25)])) == "Accepted"
                assert st.draw(conn).amps == 25
                # In W: 6900 W on 3 phases at 230 V is 10 A per phase; on 1 phase, 30 A.
                watts = _profile(version, 5, "TxProfile", 1, [(0, 6900)], unit="W")
                assert await _set(csms, cp, version, 1, watts) == "Accepted"
                assert st.draw(conn).amps == 10
                one_phase = _profile(version, 5, "TxProfile", 1, [(0, 6900, 1)], unit="W")
                assert await _set(csms, cp, version, 1, one_phase) == "Accepted"  # same id: replaces it
                assert st.draw(conn).amps == 30 and st.draw(conn).phases == 1
                # The station maximum caps everything.
                assert await _set(csms, cp, version, 0, _profile(version, 6, "max", 0, [(0, 16)])) == "Accepted"
                assert st.draw(conn).amps == 16
                status, periods, unit = await _composite(csms, cp, version, 1, 60)
                assert (status, unit) == ("Accepted", "A")
                assert periods == [{"startPeriod": 0, "limit": 16, "numberPhases": 1}]
                assert await _status(
                    csms, cp, "ClearChargingProfile", {"chargingProfileId" if version.is_2x else "id": 6}
                ) == ("Accepted")
                assert st.draw(conn).amps == 30
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


def test_station_maximum_is_shared_between_connectors() -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            version = OcppVersion.V16
            st = await _booted(csms, "CP-SHR", version, connectors=2)
            try:
                await st.start_transaction(1, "A")
                await st.start_transaction(2, "B")
                assert await _set(csms, "CP-SHR", version, 0, _profile(version, 1, "max", 0, [(0, 40)])) == "Accepted"
                assert [st.draw(c).amps for c in st.connectors.values()] == [20, 20]
                assert await _set(csms, "CP-SHR", version, 2, _profile(version, 2, "TxProfile", 0, [(0, 8)])) == (
                    "Accepted"
                )
                assert [st.draw(c).amps for c in st.connectors.values()] == [32, 8]  # 32 + 8 = 40
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


@pytest.mark.parametrize("version", VERSIONS)
def test_meter_values_follow_the_limit_and_zero_pauses(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            cp = "CP-MTR"
            st = await _booted(csms, cp, version)
            try:
                await _sample_measurands(csms, cp, version)
                await st.start_transaction(1, "TAG")
                await st.meter_values(1)
                assert _last_sample(csms, cp, version) == {
                    "Energy.Active.Import.Register": 250,
                    "Current.Import": 32,
                    "Power.Active.Import": 22080,
                }
                assert await _set(csms, cp, version, 1, _profile(version, 1, "TxProfile", 0, [(0, 16)])) == "Accepted"
                await st.meter_values(1)
                assert _last_sample(csms, cp, version) == {
                    "Energy.Active.Import.Register": 375,  # half the current: half the energy
                    "Current.Import": 16,
                    "Power.Active.Import": 11040,
                }
                assert await _set(csms, cp, version, 1, _profile(version, 1, "TxProfile", 0, [(0, 0)])) == "Accepted"
                await eventually(lambda: _charging_states(csms, cp, version)[-1:] == ["SuspendedEVSE"])
                assert st.connectors[1].transaction is not None
                assert st.connectors[1].transaction.charging_state == "SuspendedEVSE"
                await st.meter_values(1)
                await st.meter_values(1)
                assert _last_sample(csms, cp, version) == {
                    "Energy.Active.Import.Register": 375,  # paused: the register stands still
                    "Current.Import": 0,
                    "Power.Active.Import": 0,
                }
                if version.is_2x:
                    changed = [
                        e for e in csms.calls_of(cp, "TransactionEvent") if e["triggerReason"] == "ChargingStateChanged"
                    ]
                    assert [e["transactionInfo"]["chargingState"] for e in changed] == ["SuspendedEVSE"]
                assert await _status(csms, cp, "ClearChargingProfile", {}) == "Accepted"
                await eventually(lambda: _charging_states(csms, cp, version)[-1:] == ["Charging"])
                await st.meter_values(1)
                assert _last_sample(csms, cp, version)["Energy.Active.Import.Register"] == 625
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


@pytest.mark.parametrize("version", [OcppVersion.V16, OcppVersion.V201])
def test_a_schedule_moving_on_changes_the_charging_state(version: OcppVersion) -> None:
    """A Relative TxProfile: 32 A for a second, then 0: the station suspends by itself."""

    async def body() -> None:
        async with FakeCsms() as csms:
            cp = "CP-SCH"
            st = await _booted(csms, cp, version)
            try:
                await st.start_transaction(1, "TAG")
                relative = _profile(version, 1, "TxProfile", 0, [(0, 32), (1, 0)], kind="Relative")
                assert await _set(csms, cp, version, 1, relative) == "Accepted"
                await eventually(lambda: _charging_states(csms, cp, version)[-1:] == ["SuspendedEVSE"], timeout=3)
                assert st.draw(st.connectors[1]).amps == 0
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


@pytest.mark.parametrize("version", VERSIONS)
def test_clear_charging_profile(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            cp = "CP-CLR"
            st = await _booted(csms, cp, version)
            try:
                by_id = {"chargingProfileId": 1} if version.is_2x else {"id": 1}
                assert await _status(csms, cp, "ClearChargingProfile", by_id) == "Unknown"
                assert await _set(csms, cp, version, 0, _profile(version, 1, "TxDefaultProfile", 0, [(0, 16)])) == (
                    "Accepted"
                )
                assert await _set(csms, cp, version, 1, _profile(version, 2, "TxDefaultProfile", 3, [(0, 8)])) == (
                    "Accepted"
                )
                assert await _set(csms, cp, version, 0, _profile(version, 3, "max", 0, [(0, 30)])) == "Accepted"
                assert await _status(csms, cp, "ClearChargingProfile", by_id) == "Accepted"
                assert await _status(csms, cp, "ClearChargingProfile", by_id) == "Unknown"
                if version.is_2x:
                    criteria: dict[str, Any] = {"chargingProfileCriteria": {"evseId": 1, "stackLevel": 4}}
                else:
                    criteria = {"connectorId": 1, "stackLevel": 4}
                assert await _status(csms, cp, "ClearChargingProfile", criteria) == "Unknown"
                if version.is_2x:
                    criteria = {
                        "chargingProfileCriteria": {"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 3}
                    }
                else:
                    criteria = {"chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 3}
                assert await _status(csms, cp, "ClearChargingProfile", criteria) == "Accepted"
                assert [p.id for p in st.profiles.installed] == [3]
                assert await _status(csms, cp, "ClearChargingProfile", {}) == "Accepted"  # all
                assert st.profiles.installed == []
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


@pytest.mark.parametrize("version", VERSIONS)
def test_composite_schedule(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            cp = "CP-CMP"
            st = await _booted(csms, cp, version, connectors=2)
            try:
                now = messages.now_ms()
                status, periods, unit = await _composite(csms, cp, version, 1, 300)
                assert (status, unit) == ("Accepted", "A")
                assert periods == [{"startPeriod": 0, "limit": 32, "numberPhases": 3}]  # nothing limits
                assert (await _composite(csms, cp, version, 7, 300))[0] == "Rejected"
                # 16 A for a minute then 8 A for a minute, then nothing: 32 A.
                steps = _profile(version, 1, "TxDefaultProfile", 0, [(0, 16), (60, 8)], duration=120, start_ms=now)
                assert await _set(csms, cp, version, 1, steps) == "Accepted"
                # Valid from 200 s on: 10 A on a higher stack level.
                later = _profile(
                    version, 2, "TxDefaultProfile", 1, [(0, 10)], valid_from_ms=now + 200_000, start_ms=now
                )
                assert await _set(csms, cp, version, 1, later) == "Accepted"
                status, periods, _ = await _composite(csms, cp, version, 1, 300)
                assert [(p["startPeriod"], p["limit"]) for p in periods] == [(0, 16), (60, 8), (120, 32), (200, 10)]
                status, periods, unit = await _composite(csms, cp, version, 1, 100, "W")
                assert unit == "W"
                assert [(p["startPeriod"], p["limit"]) for p in periods] == [(0, 11040), (60, 5520)]
                # The other connector has none of them; the station maximum caps both.
                assert await _set(csms, cp, version, 0, _profile(version, 3, "max", 0, [(0, 24)], start_ms=now)) == (
                    "Accepted"
                )
                _, periods, _ = await _composite(csms, cp, version, 2, 60)
                assert [(p["startPeriod"], p["limit"]) for p in periods] == [(0, 24)]
                _, periods, _ = await _composite(csms, cp, version, 0, 60)
                assert [(p["startPeriod"], p["limit"]) for p in periods] == [(0, 24)]
                # Recurring daily, started an hour ago: 6 A for two hours, then 20 A.
                daily = _profile(
                    version,
                    4,
                    "TxDefaultProfile",
                    2,
                    [(0, 6), (7200, 20)],
                    kind="Recurring",
                    recurrency="Daily",
                    start_ms=now - 3_600_000,
                )
                assert await _set(csms, cp, version, 2, daily) == "Accepted"
                _, periods, _ = await _composite(csms, cp, version, 2, 7200)
                assert [(p["startPeriod"], p["limit"]) for p in periods] in (
                    [(0, 6), (3600, 20)],
                    [(0, 6), (3599, 20)],  # the request took a millisecond or so
                )
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


@pytest.mark.parametrize("version", V2)
def test_get_charging_profiles_reports_them(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            cp = "CP-GCP"
            st = await _booted(csms, cp, version, connectors=2)
            try:
                request: dict[str, Any] = {"requestId": 5, "chargingProfile": {}}
                assert await _status(csms, cp, "GetChargingProfiles", request) == "NoProfiles"
                station_max = _profile(version, 1, "max", 0, [(0, 40)])
                default = _profile(version, 2, "TxDefaultProfile", 0, [(0, 16)])
                assert await _set(csms, cp, version, 0, station_max) == "Accepted"
                assert await _set(csms, cp, version, 2, default) == "Accepted"
                assert await _status(csms, cp, "GetChargingProfiles", request) == "Accepted"
                first = await csms.wait_for_call(cp, "ReportChargingProfiles")
                second = await csms.wait_for_call(cp, "ReportChargingProfiles", count=2)
                assert (first["requestId"], first["evseId"], first["tbc"]) == (5, 0, True)
                assert (second["evseId"], second["tbc"]) == (2, False)
                assert first["chargingLimitSource"] == "CSO"
                assert first["chargingProfile"] == [station_max] and second["chargingProfile"] == [default]
                only = {"requestId": 6, "evseId": 2, "chargingProfile": {"chargingProfilePurpose": "TxDefaultProfile"}}
                assert await _status(csms, cp, "GetChargingProfiles", only) == "Accepted"
                third = await csms.wait_for_call(cp, "ReportChargingProfiles", count=3)
                assert (third["requestId"], third["evseId"], third["tbc"]) == (6, 2, False)
                ems = {"requestId": 7, "chargingProfile": {"chargingLimitSource": ["EMS"]}}
                assert await _status(csms, cp, "GetChargingProfiles", ems) == "NoProfiles"
                by_id = {"requestId": 8, "chargingProfile": {"chargingProfileId": [3]}}
                assert await _status(csms, cp, "GetChargingProfiles", by_id) == "NoProfiles"
                await asyncio.sleep(0.05)
                assert len(csms.calls_of(cp, "ReportChargingProfiles")) == 3
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


@pytest.mark.parametrize("version", VERSIONS)
def test_tx_profile_ends_with_its_transaction_others_persist(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            cp = "CP-END"
            st = await _booted(csms, cp, version)
            try:
                await st.start_transaction(1, "TAG")
                assert await _set(csms, cp, version, 1, _profile(version, 1, "TxProfile", 0, [(0, 10)])) == "Accepted"
                assert await _set(csms, cp, version, 0, _profile(version, 2, "TxDefaultProfile", 0, [(0, 20)])) == (
                    "Accepted"
                )
                await st.stop_transaction(1)
                assert [p.id for p in st.profiles.installed] == [2]
                await st.close()
                await st.connect()  # a reconnect keeps them
                await st.boot()
                await st.start_transaction(1, "TAG")
                assert st.draw(st.connectors[1]).amps == 20  # the default applies to the next one
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


@pytest.mark.parametrize("version", VERSIONS)
def test_remote_start_with_a_charging_profile(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            cp = "CP-RSP"
            st = await _booted(csms, cp, version)
            try:
                paused = _profile(version, 1, "TxProfile", 0, [(0, 0)], kind="Relative")
                default = _profile(version, 2, "TxDefaultProfile", 0, [(0, 0)], kind="Relative")
                if version.is_2x:
                    action = "RequestStartTransaction"

                    def request(profile: dict[str, Any]) -> dict[str, Any]:
                        token = {"idToken": "TAG", "type": "Central"}
                        return {"idToken": token, "remoteStartId": 1, "evseId": 1, "chargingProfile": profile}
                else:
                    action = "RemoteStartTransaction"

                    def request(profile: dict[str, Any]) -> dict[str, Any]:
                        return {"idTag": "TAG", "connectorId": 1, "chargingProfile": profile}

                assert await _status(csms, cp, action, request(default)) == "Rejected"  # a TxProfile or nothing
                assert await _status(csms, cp, action, request(paused)) == "Accepted"
                if version.is_2x:
                    started = await csms.wait_for_call(cp, "TransactionEvent")
                    assert started["eventType"] == "Started"
                    assert started["transactionInfo"]["chargingState"] == "SuspendedEVSE"
                else:
                    await eventually(lambda: _charging_states(csms, cp, version)[-1:] == ["SuspendedEVSE"])
                    assert _charging_states(csms, cp, version) == ["Preparing", "SuspendedEVSE"]
                await eventually(lambda: st.connectors[1].transaction is not None)
                assert [p.id for p in st.profiles.installed] == [1]
                assert st.draw(st.connectors[1]).amps == 0
            finally:
                await st.close()
            assert csms.violations == []

    run(body)
