"""The station against a fake CSMS: sessions, answers to every CSMS call, robustness."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
from pathlib import Path
from typing import Any

import pytest

from ocpp_core.framing import Call, CallError, CallResult, serialize_result
from ocpp_core.schemas import SchemaKind, validate_request, validate_response
from ocpp_core.versions import CSMS_INITIATED, OcppVersion
from simulator import (
    CallErrorReceived,
    CallTimeout,
    ConnectFailed,
    HandshakeRejected,
    InvalidRequest,
    InvalidResponse,
    ScenarioFailed,
    ScenarioOptions,
    run_scenario,
)
from simulator.station import Station

from .fake_csms import FakeCsms, Responder
from .helpers import eventually, run, station
from .schema_samples import load_schema, minimal

VERSIONS = [OcppVersion.V16, OcppVersion.V201, OcppVersion.V21]
V2 = [OcppVersion.V201, OcppVersion.V21]

EXPECTED_SESSION = {
    OcppVersion.V16: [
        "BootNotification",
        "StatusNotification",
        "Authorize",
        "StartTransaction",
        "StatusNotification",
        "MeterValues",
        "MeterValues",
        "MeterValues",
        "StopTransaction",
        "StatusNotification",
    ],
    OcppVersion.V201: [
        "BootNotification",
        "StatusNotification",
        "Authorize",
        "TransactionEvent",
        "StatusNotification",
        "TransactionEvent",
        "TransactionEvent",
        "TransactionEvent",
        "TransactionEvent",
        "StatusNotification",
    ],
}
EXPECTED_SESSION[OcppVersion.V21] = EXPECTED_SESSION[OcppVersion.V201]


def _sent_calls(csms: FakeCsms, cp: str) -> list[Call]:
    return [f for f in csms.frames(cp) if isinstance(f, Call)]


@pytest.mark.parametrize("version", VERSIONS)
def test_full_scenario(version: OcppVersion) -> None:
    async def body() -> None:
        shown: list[tuple[str, str]] = []
        async with FakeCsms() as csms:
            options = ScenarioOptions("CP-S", version, url=csms.url, sample_interval=0, id_tag="TAG-1")
            await run_scenario(options, on_frame=lambda d, t: shown.append((d, t)))
            calls = _sent_calls(csms, "CP-S")
            assert [c.action for c in calls] == EXPECTED_SESSION[version]
            for call in calls:
                validate_request(version, call.action, call.payload)
            assert csms.violations == []
            assert csms.connections_seen == [("CP-S", version.value)]
        # Every frame both ways went through on_frame, in order.
        assert [d for d, _ in shown] == ["->", "<-"] * len(calls)
        boot = calls[0].payload
        status = [c.payload for c in calls if c.action == "StatusNotification"]
        if version is OcppVersion.V16:
            assert boot == {
                "chargePointVendor": "OCPP-Sim",
                "chargePointModel": "Simulator",
                "firmwareVersion": "sim-0.1",
            }
            assert [s["status"] for s in status] == ["Available", "Charging", "Available"]
            start, stop = calls[3].payload, calls[8].payload
            assert start["idTag"] == "TAG-1" and start["meterStart"] == 0 and start["timestamp"].endswith("Z")
            assert [c.payload["transactionId"] for c in calls[5:8]] == [1, 1, 1]
            assert stop["transactionId"] == 1 and stop["meterStop"] == 750 and stop["reason"] == "Local"
        else:
            assert boot["reason"] == "PowerUp" and boot["chargingStation"]["vendorName"] == "OCPP-Sim"
            assert [s["connectorStatus"] for s in status] == ["Available", "Occupied", "Available"]
            assert calls[2].payload == {"idToken": {"idToken": "TAG-1", "type": "ISO14443"}}
            events = [c.payload for c in calls if c.action == "TransactionEvent"]
            assert [e["eventType"] for e in events] == ["Started", "Updated", "Updated", "Updated", "Ended"]
            assert [e["seqNo"] for e in events] == [0, 1, 2, 3, 4]
            assert len({e["transactionInfo"]["transactionId"] for e in events}) == 1
            assert events[0]["idToken"]["idToken"] == "TAG-1" and events[0]["evse"] == {"id": 1, "connectorId": 1}
            energy = [e["meterValue"][0]["sampledValue"][0] for e in events]
            assert [s["value"] for s in energy] == [0, 250, 500, 750, 750]
            assert all(s["measurand"] == "Energy.Active.Import.Register" for s in energy)
            assert events[-1]["transactionInfo"]["stoppedReason"] == "Local"

    run(body)


@pytest.mark.parametrize("version", VERSIONS)
def test_answers_every_csms_action(version: OcppVersion) -> None:
    """Each CSMS-initiated action, minimal request: a CALLRESULT that passes the response schema."""

    async def body() -> None:
        async with FakeCsms() as csms:
            st = station(csms, "CP-ALL", version.value, connectors=2)
            await st.connect()
            await st.boot()
            # Reset last: it reboots the station.
            actions = sorted(CSMS_INITIATED[version], key=lambda a: (a == "Reset", a))
            for action in actions:
                answer = await csms.call("CP-ALL", action, minimal(version, action))
                assert isinstance(answer, CallResult), (action, answer)
                validate_response(version, action, answer.payload)
            await csms.wait_for_call("CP-ALL", "BootNotification", count=2)  # the reset rebooted it
            await asyncio.sleep(0.2)  # let follow-ups (reports, statuses) finish
            assert csms.violations == []
            assert sum(st.answered.values()) == len(actions)
            await st.close()

    run(body)


def _start_request(version: OcppVersion) -> tuple[str, dict[str, Any]]:
    if version is OcppVersion.V16:
        return "RemoteStartTransaction", {"connectorId": 1, "idTag": "REMOTE-1"}
    return "RequestStartTransaction", {
        "idToken": {"idToken": "REMOTE-1", "type": "Central"},
        "remoteStartId": 42,
        "evseId": 1,
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_remote_start_and_stop(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            async with station(csms, "CP-R", version.value) as st:
                await st.boot()
                action, request = _start_request(version)
                answer = await csms.call("CP-R", action, request)
                assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
                if version is OcppVersion.V16:
                    started = await csms.wait_for_call("CP-R", "StartTransaction")
                    assert started["idTag"] == "REMOTE-1" and started["connectorId"] == 1
                    tx_id: int | str = 1
                    stop_action = "RemoteStopTransaction"
                else:
                    started = await csms.wait_for_call("CP-R", "TransactionEvent")
                    assert started["eventType"] == "Started" and started["triggerReason"] == "RemoteStart"
                    assert started["transactionInfo"]["remoteStartId"] == 42
                    assert started["idToken"] == {"idToken": "REMOTE-1", "type": "Central"}
                    tx_id = started["transactionInfo"]["transactionId"]
                    stop_action = "RequestStopTransaction"
                # 1.6: Preparing, then Charging; 2.x: Occupied once the transaction runs.
                n = 2 if version is OcppVersion.V16 else 1
                status = await csms.wait_for_call("CP-R", "StatusNotification", count=n)
                assert status.get("status", status.get("connectorStatus")) in ("Charging", "Occupied")
                busy = await csms.call("CP-R", action, request)
                assert isinstance(busy, CallResult) and busy.payload["status"] == "Rejected"  # connector busy

                unknown = await csms.call(
                    "CP-R", stop_action, {"transactionId": 999 if isinstance(tx_id, int) else "nope"}
                )
                assert isinstance(unknown, CallResult) and unknown.payload["status"] == "Rejected"
                stop = await csms.call("CP-R", stop_action, {"transactionId": tx_id})
                assert isinstance(stop, CallResult) and stop.payload["status"] == "Accepted"
                if version is OcppVersion.V16:
                    ended = await csms.wait_for_call("CP-R", "StopTransaction")
                    assert ended["transactionId"] == 1 and ended["reason"] == "Remote"
                else:
                    ended = await csms.wait_for_call("CP-R", "TransactionEvent", count=2)
                    assert ended["eventType"] == "Ended" and ended["transactionInfo"]["stoppedReason"] == "Remote"
                    assert ended["triggerReason"] == "RemoteStop"
                available = await csms.wait_for_call("CP-R", "StatusNotification", count=n + 1)
                assert available.get("status", available.get("connectorStatus")) == "Available"
                assert st.transactions() == []
            assert csms.violations == []

    run(body)


TRIGGERS = ["StatusNotification", "Heartbeat", "MeterValues", "BootNotification", "FirmwareStatusNotification"]


@pytest.mark.parametrize("version", VERSIONS)
def test_trigger_message_sends_the_message(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            async with station(csms, "CP-T", version.value) as st:
                await st.boot()
                for message in TRIGGERS:
                    before = len(csms.calls_of("CP-T", message))
                    answer = await csms.call("CP-T", "TriggerMessage", {"requestedMessage": message})
                    assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
                    payload = await csms.wait_for_call("CP-T", message, count=before + 1)
                    if message == "BootNotification" and version.is_2x:
                        assert payload["reason"] == "Triggered"
                    if message == "MeterValues":
                        sample = payload["meterValue"][0]["sampledValue"][0]
                        assert sample["context"] == "Trigger"
                if version.is_2x:
                    # No transaction to report on: TransactionEvent is refused.
                    answer = await csms.call("CP-T", "TriggerMessage", {"requestedMessage": "TransactionEvent"})
                    assert isinstance(answer, CallResult) and answer.payload["status"] == "Rejected"
                    wrong = await csms.call(
                        "CP-T", "TriggerMessage", {"requestedMessage": "Heartbeat", "evse": {"id": 7}}
                    )
                else:
                    wrong = await csms.call(
                        "CP-T", "TriggerMessage", {"requestedMessage": "Heartbeat", "connectorId": 7}
                    )
                assert isinstance(wrong, CallResult) and wrong.payload["status"] == "Rejected"
            assert csms.violations == []

    run(body)


BAD_CALLS: dict[OcppVersion, list[tuple[str, str]]] = {
    OcppVersion.V16: [
        ('[2,"u1","NoSuchAction",{}]', "NotImplemented"),
        ('[2,"u2","Reset",{"type":"Sideways"}]', "PropertyConstraintViolation"),
        ('[2,"u3","Reset",{}]', "OccurenceConstraintViolation"),
        ('[2,"u4","ChangeAvailability",{"connectorId":"one","type":"Operative"}]', "TypeConstraintViolation"),
        ('[2,"u5","BootNotification",{"chargePointVendor":"V","chargePointModel":"M"}]', "NotSupported"),
        ('[2,"u6","Reset",[]]', "FormationViolation"),
        ('[2,"u7","Reset"]', "ProtocolError"),
        ('[9,"u8","Reset",{}]', "FormationViolation"),
    ],
    OcppVersion.V201: [
        ('[2,"u1","NoSuchAction",{}]', "NotImplemented"),
        ('[2,"u2","Reset",{"type":"Sideways"}]', "PropertyConstraintViolation"),
        ('[2,"u3","Reset",{}]', "OccurrenceConstraintViolation"),
        ('[2,"u4","Reset",{"type":"Immediate","evseId":"one"}]', "TypeConstraintViolation"),
        ('[2,"u5","Heartbeat",{}]', "NotSupported"),
        ('[2,"u6","Reset",{"type":"Immediate","extra":1}]', "FormatViolation"),
        ('[2,"u7","Reset"]', "ProtocolError"),
        ('[9,"u8","Reset",{}]', "MessageTypeNotSupported"),
    ],
}
BAD_CALLS[OcppVersion.V21] = BAD_CALLS[OcppVersion.V201]


@pytest.mark.parametrize("version", VERSIONS)
def test_bad_input_from_the_csms(version: OcppVersion) -> None:
    async def body() -> None:
        events: list[tuple[str, str]] = []
        async with FakeCsms() as csms:
            async with station(csms, "CP-B", version.value, on_event=lambda k, d: events.append((k, d))) as st:
                await st.boot()
                for text, code in BAD_CALLS[version]:
                    unique_id = json.loads(text)[1]
                    answer = await csms.call_raw("CP-B", text, unique_id)
                    assert isinstance(answer, CallError), text
                    assert answer.error_code == code, (text, answer)
                # Garbage, a binary frame, an answer to nothing: ignored, never answered.
                await csms.send_raw("CP-B", "this is not json")
                await csms.send_raw("CP-B", b"\x00\x01")  # type: ignore[arg-type]
                await csms.send_raw("CP-B", serialize_result("no-such-call", {}))
                await csms.send_raw("CP-B", '[4,"no-such-call","GenericError","",{}]')
                # Still alive and answering.
                assert "currentTime" in await st.heartbeat()
                assert st.connected
            assert csms.violations == []
        kinds = [k for k, _ in events]
        assert kinds.count("bad_frame") >= 3 and kinds.count("unmatched") == 2

    run(body)


def test_callerror_timeout_and_invalid_answers_to_our_calls() -> None:
    def heartbeat(cp: str, version: OcppVersion, unique_id: str, payload: dict[str, Any]) -> str:
        return json.dumps([4, unique_id, "InternalError", "boom", {}])

    async def body() -> None:
        outcomes: list[str] = []
        responders: dict[str, Responder] = {
            "Heartbeat": heartbeat,
            "Authorize": lambda *a: None,  # never answered
            "StatusNotification": lambda *a: {"unexpected": True},
        }
        async with FakeCsms(responders=responders) as csms:
            async with station(csms, "CP-E", "2.0.1", on_call=lambda a, s, o: outcomes.append(o)) as st:
                await st.boot()
                with pytest.raises(CallErrorReceived) as err:
                    await st.heartbeat()
                assert err.value.code == "InternalError" and err.value.description == "boom"
                with pytest.raises(CallTimeout):
                    await st.call("Authorize", {"idToken": {"idToken": "T", "type": "ISO14443"}}, timeout=0.2)
                with pytest.raises(InvalidResponse):
                    await st.status(1, "Available")
                # The station carries on.
                answer = await st.call("MeterValues", {"evseId": 1, "meterValue": [_sample()]})
                assert answer == {}
        assert outcomes == ["ok", "callerror", "timeout", "invalid_response", "ok"]

    run(body)


def _sample() -> dict[str, Any]:
    return {"timestamp": "2025-01-01T00:00:00Z", "sampledValue": [{"value": 1.0}]}


def test_one_outstanding_call_at_a_time() -> None:
    held: list[str] = []

    async def body() -> None:
        async with FakeCsms(responders={"Heartbeat": lambda cp, v, uid, p: held.append(uid)}) as csms:
            async with station(csms, "CP-1", "1.6") as st:
                tasks = [asyncio.create_task(st.heartbeat()) for _ in range(3)]
                for n in range(1, 4):
                    await csms.wait_for_call("CP-1", "Heartbeat", count=n)
                    await asyncio.sleep(0.1)  # time for a wrongly sent next call to arrive
                    # Only one Heartbeat reached the CSMS until it was answered.
                    assert len(csms.calls_of("CP-1", "Heartbeat")) == n == len(held)
                    await csms.send_raw("CP-1", serialize_result(held[-1], {"currentTime": "2025-01-01T00:00:00Z"}))
                results = await asyncio.gather(*tasks)
                assert len(results) == 3

    run(body)


@pytest.mark.parametrize("version", [OcppVersion.V16, OcppVersion.V201])
def test_reset_reboots_and_boots_again(version: OcppVersion) -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            async with station(csms, "CP-X", version.value) as st:
                await st.boot()
                await st.start_transaction(1, "TAG")
                kind = "Hard" if version is OcppVersion.V16 else "Immediate"
                answer = await csms.call("CP-X", "Reset", {"type": kind})
                assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
                boot = await csms.wait_for_call("CP-X", "BootNotification", count=2)
                await csms.wait_for_call("CP-X", "StatusNotification")
                assert len(csms.connections_seen) == 2
                if version is OcppVersion.V16:
                    stop = csms.calls_of("CP-X", "StopTransaction")[0]
                    assert stop["reason"] == "HardReset"
                else:
                    assert boot["reason"] == "RemoteReset"
                    ended = csms.calls_of("CP-X", "TransactionEvent")[-1]
                    assert (
                        ended["eventType"] == "Ended" and ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
                    )
                assert st.connected and st.transactions() == []
            assert csms.violations == []

    run(body)


def test_reset_on_idle_waits_for_the_transaction() -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            async with station(csms, "CP-I", "2.0.1") as st:
                await st.boot()
                await st.start_transaction(1, "TAG")
                answer = await csms.call("CP-I", "Reset", {"type": "OnIdle"})
                assert isinstance(answer, CallResult) and answer.payload["status"] == "Scheduled"
                await asyncio.sleep(0.1)
                assert len(csms.connections_seen) == 1
                await st.stop_transaction(1)
                await csms.wait_for_call("CP-I", "BootNotification", count=2)
                assert len(csms.connections_seen) == 2

    run(body)


def test_configuration_1_6() -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            async with station(csms, "CP-C", "1.6") as st:
                ok = await csms.call("CP-C", "ChangeConfiguration", {"key": "HeartbeatInterval", "value": "42"})
                unknown = await csms.call("CP-C", "ChangeConfiguration", {"key": "Nope", "value": "1"})
                got = await csms.call("CP-C", "GetConfiguration", {"key": ["HeartbeatInterval", "Nope"]})
                assert isinstance(ok, CallResult) and ok.payload == {"status": "Accepted"}
                assert isinstance(unknown, CallResult) and unknown.payload == {"status": "NotSupported"}
                assert isinstance(got, CallResult)
                assert got.payload == {
                    "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "42"}],
                    "unknownKey": ["Nope"],
                }
                assert st.model.heartbeat_interval == 42

    run(body)


@pytest.mark.parametrize("version", V2)
def test_variables_and_base_report_2x(version: OcppVersion) -> None:
    async def body() -> None:
        hb = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
        async with FakeCsms() as csms:
            async with station(csms, "CP-V", version.value) as st:
                await st.boot()
                answer = await csms.call(
                    "CP-V",
                    "SetVariables",
                    {
                        "setVariableData": [
                            {**hb, "attributeValue": "42"},
                            {"component": {"name": "Nope"}, "variable": {"name": "X"}, "attributeValue": "1"},
                            {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "X"}, "attributeValue": "1"},
                        ]
                    },
                )
                assert isinstance(answer, CallResult)
                statuses = [r["attributeStatus"] for r in answer.payload["setVariableResult"]]
                assert statuses == ["Accepted", "UnknownComponent", "UnknownVariable"]
                got = await csms.call("CP-V", "GetVariables", {"getVariableData": [hb]})
                assert isinstance(got, CallResult)
                assert got.payload["getVariableResult"][0]["attributeValue"] == "42"
                assert st.model.heartbeat_interval == 42

                report = await csms.call("CP-V", "GetBaseReport", {"requestId": 7, "reportBase": "FullInventory"})
                assert isinstance(report, CallResult) and report.payload == {"status": "Accepted"}
                first = await csms.wait_for_call("CP-V", "NotifyReport")
                second = await csms.wait_for_call("CP-V", "NotifyReport", count=2)
                assert (first["requestId"], first["seqNo"], first["tbc"]) == (7, 0, True)
                assert (second["seqNo"], second["tbc"]) == (1, False)
                names = {item["variable"]["name"] for item in first["reportData"] + second["reportData"]}
                assert "HeartbeatInterval" in names
            assert csms.violations == []

    run(body)


def test_change_availability_and_unlock_1_6() -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            async with station(csms, "CP-A", "1.6", connectors=2) as st:
                await st.boot()
                await st.start_transaction(1, "TAG")
                answer = await csms.call("CP-A", "ChangeAvailability", {"connectorId": 0, "type": "Inoperative"})
                assert isinstance(answer, CallResult) and answer.payload == {"status": "Scheduled"}
                unavailable = await csms.wait_for_call("CP-A", "StatusNotification")
                assert unavailable == {**unavailable, "connectorId": 2, "status": "Unavailable"}
                start = await csms.call("CP-A", "RemoteStartTransaction", {"idTag": "T", "connectorId": 2})
                assert isinstance(start, CallResult) and start.payload == {"status": "Rejected"}
                unlock = await csms.call("CP-A", "UnlockConnector", {"connectorId": 1})
                assert isinstance(unlock, CallResult) and unlock.payload == {"status": "Unlocked"}
                stop = await csms.wait_for_call("CP-A", "StopTransaction")
                assert stop["reason"] == "UnlockCommand"
                await eventually(lambda: not st.connectors[1].operative)  # applied once the transaction ended
            assert csms.violations == []

    run(body)


def test_reconnects_after_the_csms_closes() -> None:
    async def body() -> None:
        events: list[str] = []
        async with FakeCsms() as csms:
            st = station(csms, "CP-Z", "2.1", auto_reconnect=True, on_event=lambda k, d: events.append(k))
            async with st:
                await st.boot()
                await csms.close_connection("CP-Z")
                await csms.wait_disconnected("CP-Z")
                await csms.wait_connected("CP-Z")
                assert "currentTime" in await st.heartbeat()
                assert [cp for cp, _ in csms.connections_seen] == ["CP-Z", "CP-Z"]
        assert "disconnect" in events

    run(body)


def test_heartbeats_at_the_interval_the_csms_gave() -> None:
    async def body() -> None:
        async with FakeCsms(heartbeat_interval=1) as csms:
            async with station(csms, "CP-H", "1.6") as st:
                await st.boot()
                st.start_heartbeats()
                await csms.wait_for_call("CP-H", "Heartbeat", timeout=3)

    run(body)


def test_connection_failures_are_clear() -> None:
    async def body() -> None:
        async with FakeCsms(password="s3cret") as csms:
            with pytest.raises(HandshakeRejected) as refused:
                await Station("CP-P", "1.6", csms.url).connect()
            assert refused.value.status == 401 and "HTTP 401" in str(refused.value)
            with pytest.raises(HandshakeRejected):
                await Station("CP-P", "1.6", csms.url, password="wrong").connect()
            async with Station("CP-P", "1.6", csms.url, password="s3cret") as st:
                assert st.connected
        with pytest.raises(ConnectFailed, match="connection refused"):
            await Station("CP-P", "1.6", csms.url).connect()

    run(body)


def test_charger_id_is_percent_encoded_in_the_url() -> None:
    st = Station("CP 1/x", "1.6", "ws://127.0.0.1:9000/ocpp/")
    assert st.endpoint == "ws://127.0.0.1:9000/ocpp/CP%201%2Fx"


def test_call_refuses_what_a_station_never_sends() -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            async with station(csms, "CP-Q", "2.0.1") as st:
                with pytest.raises(InvalidRequest, match="not a message a charging station sends"):
                    await st.call("Reset", {"type": "Immediate"})
                with pytest.raises(InvalidRequest, match="idToken"):
                    await st.call("Authorize", {"idTag": "1.6 style"})
            assert csms.received == []  # nothing went on the wire

    run(body)


def test_scenario_stay_answers_the_csms_until_stopped() -> None:
    async def body() -> None:
        async with FakeCsms(heartbeat_interval=1) as csms:
            stop = asyncio.Event()
            options = ScenarioOptions("CP-STAY", OcppVersion.V201, url=csms.url, session=False, stay=True)
            task = asyncio.create_task(run_scenario(options, stop=stop))
            await csms.wait_for_call("CP-STAY", "StatusNotification")
            answer = await csms.call(
                "CP-STAY",
                "RequestStartTransaction",
                {"idToken": {"idToken": "R", "type": "Central"}, "remoteStartId": 1},
            )
            assert isinstance(answer, CallResult) and answer.payload["status"] == "Accepted"
            await csms.wait_for_call("CP-STAY", "TransactionEvent")
            await csms.wait_for_call("CP-STAY", "Heartbeat", timeout=3)
            stop.set()
            st = await task
            assert st.stopped and not st.connected
            assert csms.violations == []

    run(body)


def test_scenario_stay_fails_when_the_csms_is_gone_for_good() -> None:
    async def body() -> None:
        csms = await FakeCsms().start()
        options = ScenarioOptions(
            "CP-GONE",
            OcppVersion.V16,
            url=csms.url,
            session=False,
            stay=True,
            reconnect_attempts=2,
            reconnect_delay=0.05,
        )
        task = asyncio.create_task(run_scenario(options))
        await csms.wait_for_call("CP-GONE", "StatusNotification")
        await csms.stop()
        with pytest.raises(ScenarioFailed, match="could not reconnect"):
            await task

    run(body)


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and its PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-csms")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, cert_file


def test_security_profile_2_over_tls(tmp_path: Path) -> None:
    server_context, ca_file = _self_signed(tmp_path)

    async def body() -> None:
        async with FakeCsms(password="pw", ssl_context=server_context) as csms:
            assert csms.url.startswith("wss://")
            with pytest.raises(ConnectFailed, match="certificate verify failed"):
                await Station("CP-TLS", "2.0.1", csms.url, password="pw").connect()
            options = ScenarioOptions(
                "CP-TLS", OcppVersion.V201, url=csms.url, password="pw", ca_file=str(ca_file), sample_interval=0
            )
            await run_scenario(options)
            assert csms.actions("CP-TLS")[0] == "BootNotification"
            assert csms.violations == []

    run(body)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_trigger_value_gets_a_valid_answer_and_message(version: OcppVersion) -> None:
    """Each requestedMessage of TriggerMessage (and 1.6 ExtendedTriggerMessage), with a transaction running."""

    async def body() -> None:
        async with FakeCsms() as csms:
            async with station(csms, "CP-TT", version.value) as st:
                await st.boot()
                await st.start_transaction(1, "TAG")
                actions = ["TriggerMessage"] + (["ExtendedTriggerMessage"] if version is OcppVersion.V16 else [])
                for action in actions:
                    schema = load_schema(version, action, SchemaKind.REQUEST)
                    field = schema["properties"]["requestedMessage"]
                    values = field.get("enum") or schema["definitions"][field["$ref"].rsplit("/", 1)[-1]]["enum"]
                    for value in values:
                        answer = await csms.call("CP-TT", action, {"requestedMessage": value})
                        assert isinstance(answer, CallResult), (action, value)
                        validate_response(version, action, answer.payload)
                        assert answer.payload["status"] in ("Accepted", "NotImplemented"), (action, value)
                await asyncio.sleep(0.2)  # the triggered messages
                assert csms.violations == []

    run(body)
