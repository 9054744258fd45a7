"""Extensions: a user's handler replaces an action's, ``after`` hooks run once the reply is out."""

from __future__ import annotations

import json
import logging

import pytest

from ocpp_core.config import ProcessorConfig
from ocpp_core.errors import SecurityError
from ocpp_core.extensions import Extensions
from ocpp_core.processor import OutcomeKind

from .support import V16, V21, V201, VERSIONS, Charger, check_call_result


def parking_extensions(seen: list) -> Extensions:
    extensions = Extensions()

    @extensions.on("DataTransfer", versions=["ocpp1.6", "ocpp2.0.1"])
    def data_transfer(ctx, payload):
        seen.append((ctx.charge_point_id, ctx.unique_id, ctx.version, payload))
        if payload["vendorId"] == "com.example.parking":
            ctx.store.put_event(
                ctx.charge_point_id,
                "Parking",
                ctx.frame_digest,
                {"chargePointId": ctx.charge_point_id, "kind": "Parking", "receivedAt": ctx.received_at_ms},
                None,
            )
            return {"status": "Accepted", "data": "bay 7"}
        return ctx.default(payload)

    return extensions


@pytest.mark.parametrize("version", (V16, V201))
def test_on_replaces_the_handler(make_charger, version) -> None:
    seen: list = []
    charger: Charger = make_charger(version, extensions=parking_extensions(seen))
    assert charger.result("DataTransfer", {"vendorId": "com.example.parking"}) == {
        "status": "Accepted",
        "data": "bay 7",
    }
    assert charger.store.list_events("CP1", "Parking") != []
    assert charger.store.list_events("CP1", "DataTransfer") == []  # the built-in did not run
    # ctx.default falls back to the built-in handler.
    assert charger.result("DataTransfer", {"vendorId": "other"}) == {"status": "UnknownVendorId"}
    assert len(charger.store.list_events("CP1", "DataTransfer")) == 1
    assert [s[1] for s in seen] == ["m-1", "m-2"] and seen[0][2] is version


def test_on_applies_only_to_its_versions(make_charger) -> None:
    seen: list = []
    charger: Charger = make_charger(V21, extensions=parking_extensions(seen))
    assert charger.result("DataTransfer", {"vendorId": "com.example.parking"}) == {"status": "UnknownVendorId"}
    assert seen == []


@pytest.mark.parametrize("version", VERSIONS)
def test_on_can_replace_any_charger_action(make_charger, version) -> None:
    extensions = Extensions()
    extensions.on("Heartbeat")(lambda ctx, payload: {"currentTime": "2000-01-01T00:00:00Z"})
    charger: Charger = make_charger(version, extensions=extensions)
    assert charger.result("Heartbeat", {}) == {"currentTime": "2000-01-01T00:00:00Z"}


def test_an_extension_cannot_open_actions_the_charger_may_not_send(make_charger) -> None:
    extensions = Extensions()
    extensions.on("Reset")(lambda ctx, payload: {"status": "Accepted"})
    extensions.on("MakeCoffee")(lambda ctx, payload: {})
    charger: Charger = make_charger(V16, extensions=extensions)
    assert charger.error("Reset", {"type": "Soft"}) == "NotSupported"
    assert charger.error("MakeCoffee", {}) == "NotImplemented"


def test_requests_are_validated_before_the_extension_runs(make_charger) -> None:
    called = []
    extensions = Extensions()
    extensions.on("DataTransfer")(lambda ctx, payload: called.append(payload) or {"status": "Accepted"})
    charger: Charger = make_charger(V16, extensions=extensions)
    assert charger.error("DataTransfer", {"vendorId": 5}) == "TypeConstraintViolation"
    assert called == []


def test_an_invalid_response_from_an_extension_is_an_internal_error(make_charger, caplog) -> None:
    extensions = Extensions()
    extensions.on("DataTransfer")(lambda ctx, payload: {"status": "Sure"})
    charger: Charger = make_charger(V16, extensions=extensions)
    outcome = charger.call("DataTransfer", {"vendorId": "v"}, uid="bad-1")
    assert json.loads(outcome.reply)[:3] == [4, "bad-1", "InternalError"]  # never an invalid CALLRESULT
    assert "does not validate" in caplog.text
    # Not remembered: once the extension is fixed, the redelivery gets a real answer.
    extensions.on("DataTransfer")(lambda ctx, payload: {"status": "Accepted"})
    assert charger.call("DataTransfer", {"vendorId": "v"}, uid="bad-1").kind == OutcomeKind.REPLIED


def test_an_extension_may_answer_with_an_ocpp_error(make_charger) -> None:
    extensions = Extensions()

    @extensions.on("Authorize", versions=[V201])
    def authorize(ctx, payload):
        raise SecurityError("token from a blocked reader")

    charger: Charger = make_charger(V201, extensions=extensions)
    assert charger.error("Authorize", {"idToken": {"idToken": "x", "type": "Central"}}) == "SecurityError"


def test_unknown_version_is_refused_when_registering() -> None:
    extensions = Extensions()
    with pytest.raises(ValueError, match=r"ocpp1\.5"):
        extensions.on("Heartbeat", versions=["ocpp1.5"])(lambda ctx, payload: {})
    with pytest.raises(ValueError):
        extensions.after("Heartbeat", versions=["2.0.1"])(lambda ctx, request, response: None)


# --- after hooks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_after_hooks_run_once_the_reply_is_out(make_charger, version) -> None:
    ran: list = []
    extensions = Extensions()

    @extensions.after("Heartbeat")
    def on_heartbeat(ctx, request, response):
        ran.append(("heartbeat", ctx.charge_point_id, ctx.unique_id, request, response))

    @extensions.after()
    def on_everything(ctx, request, response):
        ran.append(("any", ctx.action))

    charger: Charger = make_charger(version, extensions=extensions)
    outcome = charger.call("Heartbeat", {}, uid="hb-1")
    response = check_call_result(outcome.reply, version, "hb-1", "Heartbeat")
    assert ran == []  # not before the caller says the reply is out
    assert outcome.run_after_hooks() == []
    assert ran == [("heartbeat", "CP1", "hb-1", {}, response), ("any", "Heartbeat")]
    outcome.run_after_hooks()
    assert len(ran) == 2  # once only

    charger.result("DataTransfer", {"vendorId": "v"})
    charger.clock.advance(1)
    charger.call("DataTransfer", {"vendorId": "v"}, uid="dt").run_after_hooks()
    assert ran[-1] == ("any", "DataTransfer")


def test_after_hooks_do_not_run_for_errors_or_duplicates(make_charger) -> None:
    ran: list = []
    extensions = Extensions()
    extensions.after()(lambda ctx, request, response: ran.append(ctx.unique_id))
    charger: Charger = make_charger(V16, extensions=extensions)
    charger.call("Authorize", {}, uid="err").run_after_hooks()  # CALLERROR
    charger.call("Heartbeat", {}, uid="ok").run_after_hooks()
    charger.call("Heartbeat", {}, uid="ok").run_after_hooks()  # duplicate: the state change was done
    assert ran == ["ok"]


def test_a_failing_hook_is_logged_with_the_charger_id_and_changes_nothing(make_charger, caplog) -> None:
    ran: list = []
    extensions = Extensions()

    @extensions.after("BootNotification")
    def broken(ctx, request, response):
        raise RuntimeError("CRM is down")

    @extensions.after("BootNotification")
    def fine(ctx, request, response):
        ran.append(response["status"])

    charger: Charger = make_charger(V16, cp="CP-HOOK", extensions=extensions)
    outcome = charger.call("BootNotification", {"chargePointVendor": "A", "chargePointModel": "B"}, uid="b-1")
    reply = outcome.reply
    with caplog.at_level(logging.ERROR, logger="ocpp_core"):
        failures = outcome.run_after_hooks()
    assert [(name, type(exc)) for name, exc in failures] == [(broken.__qualname__, RuntimeError)]
    assert ran == ["Rejected"]  # the next hook still ran
    assert outcome.reply == reply and outcome.kind == OutcomeKind.REPLIED
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "CP-HOOK" in record.getMessage() and "BootNotification" in record.getMessage()
    assert record.exc_info is not None and "CRM is down" in str(record.exc_info[1])


def test_v21_send_hooks_get_no_response(make_charger) -> None:
    ran: list = []
    extensions = Extensions()
    extensions.after("NotifyPeriodicEventStream")(lambda ctx, request, response: ran.append((request["id"], response)))
    charger: Charger = make_charger(V21, extensions=extensions)
    payload = {"id": 4, "pending": 0, "basetime": "2025-06-15T15:00:00Z", "data": [{"t": 0, "v": "1"}]}
    outcome = charger.send_text(json.dumps([6, "s-1", "NotifyPeriodicEventStream", payload]))
    assert outcome.reply is None
    outcome.run_after_hooks()
    assert ran == [(4, None)]


def test_merge_later_modules_win() -> None:
    first, second = Extensions(), Extensions()
    first.on("Heartbeat")(lambda ctx, payload: {"from": "first"})
    second.on("Heartbeat", versions=[V16])(lambda ctx, payload: {"from": "second"})
    hook_a, hook_b = (lambda *a: None), (lambda *a: None)
    first.after("Heartbeat")(hook_a)
    second.after("Heartbeat")(hook_b)
    merged = first.merge(second)
    assert merged.handler_for(V16, "Heartbeat")(None, {}) == {"from": "second"}
    assert merged.handler_for(V201, "Heartbeat")(None, {}) == {"from": "first"}
    assert merged.hooks_for(V16, "Heartbeat") == [hook_a, hook_b]
    assert first.hooks_for(V16, "Heartbeat") == [hook_a]  # the originals are untouched


@pytest.mark.parametrize("version", VERSIONS)
def test_data_transfer_from_a_configured_vendor_is_accepted_and_recorded(make_charger, version) -> None:
    config = ProcessorConfig(data_transfer_vendors=frozenset({"com.example.parking"}))
    charger: Charger = make_charger(version, config=config)
    assert charger.result("DataTransfer", {"vendorId": "com.example.parking", "data": "x"}) == {"status": "Accepted"}
    assert charger.result("DataTransfer", {"vendorId": "com.example.other"}) == {"status": "UnknownVendorId"}
    events = charger.store.list_events("CP1", "DataTransfer")
    assert [e["payload"]["vendorId"] for e in events] == ["com.example.parking", "com.example.other"]
