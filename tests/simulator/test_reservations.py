"""Reservations on the simulated station (1.6 §5.13 / §5.1, 2.0.1 and 2.1 block H), against the fake CSMS."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ocpp_core.framing import CallResult
from ocpp_core.versions import OcppVersion
from simulator import messages
from simulator.device_model import DeviceModel
from simulator.station import Station

from .fake_csms import FakeCsms
from .helpers import eventually, run, station

VERSIONS = [OcppVersion.V16, OcppVersion.V201, OcppVersion.V21]
HOUR_MS = 3_600_000


def _expiry(in_ms: int = HOUR_MS) -> str:
    return messages.timestamp(messages.now_ms() + in_ms)


def _reserve_now(
    version: OcppVersion, reservation_id: int, connector: int | None, tag: str, expiry: str | None = None
) -> dict[str, Any]:
    """ReserveNow for ``connector`` (1.6 connectorId, 0 = the station; 2.x evseId, None = any)."""
    expiry = expiry or _expiry()
    if version is OcppVersion.V16:
        return {"connectorId": connector or 0, "expiryDate": expiry, "idTag": tag, "reservationId": reservation_id}
    payload: dict[str, Any] = {
        "id": reservation_id,
        "expiryDateTime": expiry,
        "idToken": {"idToken": tag, "type": "Central"},
    }
    if connector is not None:
        payload["evseId"] = connector
    return payload


async def _answer(csms: FakeCsms, cp: str, action: str, payload: dict[str, Any]) -> str:
    answer = await csms.call(cp, action, payload)
    assert isinstance(answer, CallResult), (action, answer)
    return str(answer.payload["status"])


def _statuses(csms: FakeCsms, cp: str) -> list[tuple[int, str]]:
    """(connector / EVSE, status) of every StatusNotification ``cp`` sent, in order."""
    return [
        (int(s["connectorId"] if "status" in s else s["evseId"]), str(s.get("status", s.get("connectorStatus"))))
        for s in csms.calls_of(cp, "StatusNotification")
    ]


async def _wait_status(csms: FakeCsms, cp: str, connector: int, status: str, count: int = 1) -> None:
    """Until ``cp`` reported ``status`` for ``connector`` ``count`` times."""
    await eventually(lambda: _statuses(csms, cp).count((connector, status)) >= count)


def _started(csms: FakeCsms, cp: str, version: OcppVersion) -> list[dict[str, Any]]:
    """The StartTransaction / TransactionEvent Started payloads ``cp`` sent."""
    if version is OcppVersion.V16:
        return csms.calls_of(cp, "StartTransaction")
    return [e for e in csms.calls_of(cp, "TransactionEvent") if e["eventType"] == "Started"]


async def _booted(csms: FakeCsms, cp: str, version: OcppVersion, connectors: int = 1) -> Station:
    st = station(csms, cp, version.value, connectors=connectors)
    await st.connect()
    await st.boot()
    await st.send_status_all()
    return st


@pytest.mark.parametrize("version", VERSIONS)
def test_reserve_then_use_it(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            st = await _booted(csms, "CP-RES", version)
            try:
                assert await _answer(csms, "CP-RES", "ReserveNow", _reserve_now(version, 7, 1, "TAG-A")) == "Accepted"
                await _wait_status(csms, "CP-RES", 1, "Reserved")
                assert st.connectors[1].status == "Reserved" and set(st.reservations) == {7}
                # Id tags are case insensitive: the reserved driver badges in.
                tx = await st.start_transaction(1, "tag-a")
                assert tx.reservation_id == 7 and st.reservations == {}
                (started,) = _started(csms, "CP-RES", version)
                assert started["reservationId"] == 7  # 2.x: top level of TransactionEvent Started
                # Used: a second start (after the stop) carries no reservation; cancelling it fails.
                await st.stop_transaction(1)
                assert await _answer(csms, "CP-RES", "CancelReservation", {"reservationId": 7}) == "Rejected"
                await st.start_transaction(1, "TAG-A")
                assert "reservationId" not in _started(csms, "CP-RES", version)[1]
                await st.stop_transaction(1)
                await asyncio.sleep(0.1)
                assert csms.calls_of("CP-RES", "ReservationStatusUpdate") == []
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


@pytest.mark.parametrize("version", VERSIONS)
def test_reserve_now_answers(version: OcppVersion) -> None:
    """Occupied, Unavailable, Faulted, Rejected, and a ReserveNow with a known id replacing the reservation."""

    async def body() -> None:
        async with FakeCsms() as csms:
            cp = "CP-ANS"
            st = await _booted(csms, cp, version, connectors=3)
            try:

                async def reserve(rid: int, connector: int | None, tag: str, expiry: str | None = None) -> str:
                    return await _answer(csms, cp, "ReserveNow", _reserve_now(version, rid, connector, tag, expiry))

                # A transaction on connector 1: Occupied.
                await st.start_transaction(1, "DRIVER")
                assert await reserve(1, 1, "TAG-A") == "Occupied"
                # Connector 2 reserved for TAG-A; another reservation on it is Occupied, whatever the tag.
                assert await reserve(2, 2, "TAG-A") == "Accepted"
                assert await reserve(3, 2, "TAG-B") == "Occupied"
                assert await reserve(3, 2, "TAG-A") == "Occupied"
                # The same id again replaces it: here, moved to connector 3 (2 is free again).
                assert await reserve(2, 3, "TAG-C") == "Accepted"
                assert st.reservations[2].connector_id == 3 and st.reservations[2].id_tag == "TAG-C"
                await _wait_status(csms, cp, 3, "Reserved")
                await _wait_status(csms, cp, 2, "Available", count=2)  # boot, then the reservation moved away
                # A replacement that is refused leaves the reservation as it was.
                assert await reserve(2, 1, "TAG-D") == "Occupied"
                assert st.reservations[2].connector_id == 3

                # Unavailable and Faulted connectors.
                inoperative = (
                    {"connectorId": 2, "type": "Inoperative"}
                    if version is OcppVersion.V16
                    else {"operationalStatus": "Inoperative", "evse": {"id": 2}}
                )
                assert await _answer(csms, cp, "ChangeAvailability", inoperative) == "Accepted"
                assert await reserve(4, 2, "TAG-E") == "Unavailable"
                await st.status(3, "Faulted")
                assert await reserve(2, 3, "TAG-C") == "Faulted"  # a replacement is judged afresh too

                # Rejected: an unknown connector, an expiry in the past.
                assert await reserve(5, 9, "TAG-F") == "Rejected"
                assert await reserve(6, 3, "TAG-F", expiry="2020-01-01T00:00:00Z") == "Rejected"
                assert set(st.reservations) == {2}
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


def test_reservations_can_be_switched_off_in_2x() -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            st = await _booted(csms, "CP-OFF", OcppVersion.V201)
            try:
                enabled = {"component": {"name": "ReservationCtrlr"}, "variable": {"name": "Enabled"}}
                answer = await csms.call(
                    "CP-OFF", "SetVariables", {"setVariableData": [{**enabled, "attributeValue": "false"}]}
                )
                assert isinstance(answer, CallResult)
                assert answer.payload["setVariableResult"][0]["attributeStatus"] == "Accepted"
                status = await _answer(csms, "CP-OFF", "ReserveNow", _reserve_now(OcppVersion.V201, 1, 1, "TAG"))
                assert status == "Rejected" and st.reservations == {}
            finally:
                await st.close()

    run(body)


def test_reservation_settings_are_reported() -> None:
    v16 = DeviceModel(OcppVersion.V16).get_configuration(["ReserveConnectorZeroSupported"])
    assert v16["configurationKey"] == [{"key": "ReserveConnectorZeroSupported", "readonly": True, "value": "true"}]
    v2 = DeviceModel(OcppVersion.V201)
    names = {i["variable"]["name"] for i in v2.report(selection=[{"component": {"name": "ReservationCtrlr"}}])}
    assert names == {"Available", "Enabled", "NonEvseSpecific"}
    assert v2.reservations_enabled and v2.reserve_whole_station


@pytest.mark.parametrize("version", VERSIONS)
def test_cancel_reservation(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            st = await _booted(csms, "CP-CAN", version)
            try:
                assert await _answer(csms, "CP-CAN", "CancelReservation", {"reservationId": 3}) == "Rejected"
                assert await _answer(csms, "CP-CAN", "ReserveNow", _reserve_now(version, 3, 1, "TAG")) == "Accepted"
                await _wait_status(csms, "CP-CAN", 1, "Reserved")
                assert await _answer(csms, "CP-CAN", "CancelReservation", {"reservationId": 3}) == "Accepted"
                await _wait_status(csms, "CP-CAN", 1, "Available", count=2)
                assert st.reservations == {}
                assert await _answer(csms, "CP-CAN", "CancelReservation", {"reservationId": 3}) == "Rejected"
                # The connector is anyone's again.
                tx = await st.start_transaction(1, "SOMEONE-ELSE")
                assert tx.reservation_id is None
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


@pytest.mark.parametrize("version", VERSIONS)
def test_reservation_expires(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            st = await _booted(csms, "CP-EXP", version)
            try:
                request = _reserve_now(version, 11, 1, "TAG", expiry=_expiry(400))
                assert await _answer(csms, "CP-EXP", "ReserveNow", request) == "Accepted"
                await _wait_status(csms, "CP-EXP", 1, "Reserved")
                await _wait_status(csms, "CP-EXP", 1, "Available", count=2)  # the timer, ~0.4 s later
                assert st.reservations == {}
                updates = csms.calls_of("CP-EXP", "ReservationStatusUpdate")
                if version.is_2x:
                    assert updates == [{"reservationId": 11, "reservationUpdateStatus": "Expired"}]
                else:
                    assert updates == []  # 1.6 has no such message: the CSMS knows the expiry date
                assert csms.actions("CP-EXP")[-1] == "StatusNotification"
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


def test_an_expired_reservation_is_dropped_on_the_next_action_too() -> None:
    """Without its timer (a station closed meanwhile, say), the expiry is noticed when next needed."""

    async def body() -> None:
        async with FakeCsms() as csms:
            st = await _booted(csms, "CP-LAZY", OcppVersion.V201)
            try:
                request = _reserve_now(OcppVersion.V201, 12, 1, "TAG", expiry=_expiry(200))
                assert await _answer(csms, "CP-LAZY", "ReserveNow", request) == "Accepted"
                reservation = st.reservations[12]
                assert reservation.timer is not None
                reservation.timer.cancel()
                await asyncio.sleep(0.3)
                assert set(st.reservations) == {12}  # nobody looked yet
                assert await _answer(csms, "CP-LAZY", "CancelReservation", {"reservationId": 12}) == "Rejected"
                update = await csms.wait_for_call("CP-LAZY", "ReservationStatusUpdate")
                assert update == {"reservationId": 12, "reservationUpdateStatus": "Expired"}
                await _wait_status(csms, "CP-LAZY", 1, "Available", count=2)
            finally:
                await st.close()

    run(body)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_reserved_connector_refuses_other_id_tags(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            cp = "CP-BLK"
            st = await _booted(csms, cp, version, connectors=2)
            try:
                assert await _answer(csms, cp, "ReserveNow", _reserve_now(version, 5, 2, "TAG-A")) == "Accepted"
                if version is OcppVersion.V16:
                    start = "RemoteStartTransaction"

                    def request(tag: str, connector: int | None) -> dict[str, Any]:
                        return {"idTag": tag, **({"connectorId": connector} if connector else {})}
                else:
                    start = "RequestStartTransaction"

                    def request(tag: str, connector: int | None) -> dict[str, Any]:
                        token = {"idToken": tag, "type": "Central"}
                        return {"idToken": token, "remoteStartId": 1, **({"evseId": connector} if connector else {})}

                assert await _answer(csms, cp, start, request("TAG-B", 2)) == "Rejected"
                with pytest.raises(ValueError, match="reserved for another id tag"):
                    await st.start_transaction(2, "TAG-B")
                # Without a connector, the reserved driver gets the reserved one (not the first free).
                assert await _answer(csms, cp, start, request("TAG-A", None)) == "Accepted"
                await eventually(lambda: len(_started(csms, cp, version)) == 1)
                (started,) = _started(csms, cp, version)
                assert started["reservationId"] == 5
                assert (started.get("connectorId") or started["evse"]["id"]) == 2
                if version.is_2x:
                    assert started["triggerReason"] == "RemoteStart"
                assert st.reservations == {}
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


@pytest.mark.parametrize("version", VERSIONS)
def test_whole_station_reservation(version: OcppVersion) -> None:
    """1.6 connector 0 / 2.x without evseId: one connector stays free for the tag, shown Reserved once it is the last."""

    async def body() -> None:
        async with FakeCsms() as csms:
            cp = "CP-ANY"
            st = await _booted(csms, cp, version, connectors=2)
            try:
                assert await _answer(csms, cp, "ReserveNow", _reserve_now(version, 21, None, "TAG-A")) == "Accepted"
                await asyncio.sleep(0.1)
                assert [c.status for c in st.connectors.values()] == ["Available", "Available"]  # two free, one needed
                # Someone else takes connector 1: connector 2 is the last one, kept for TAG-A.
                await st.start_transaction(1, "TAG-B")
                await _wait_status(csms, cp, 2, "Reserved")
                with pytest.raises(ValueError, match="reserved for another id tag"):
                    await st.start_transaction(2, "TAG-C")
                other = await _answer(csms, cp, "ReserveNow", _reserve_now(version, 22, None, "TAG-C"))
                assert other == "Occupied"  # no connector left for a second one
                tx = await st.start_transaction(2, "TAG-A")
                assert tx.reservation_id == 21 and st.reservations == {}
                assert _started(csms, cp, version)[-1]["reservationId"] == 21
            finally:
                await st.close()
            assert csms.violations == []

    run(body)


def test_reservations_survive_a_reboot() -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            st = await _booted(csms, "CP-RB", OcppVersion.V16)
            try:
                request = _reserve_now(OcppVersion.V16, 8, 1, "TAG")
                assert await _answer(csms, "CP-RB", "ReserveNow", request) == "Accepted"
                assert await _answer(csms, "CP-RB", "Reset", {"type": "Soft"}) == "Accepted"
                await csms.wait_for_call("CP-RB", "BootNotification", count=2)
                await _wait_status(csms, "CP-RB", 1, "Reserved", count=2)  # reported again after the boot
                assert set(st.reservations) == {8}
            finally:
                await st.close()
            assert csms.violations == []

    run(body)
