"""At-least-once delivery: the same frame delivered twice gives the same reply, state changes once.

"The same frame" is the same connection, unique id and bytes (``keys.message_digest``): OCPP-J makes
unique ids unique per sender and connection only, and chargers count from 1 again after a reboot.
"""

from __future__ import annotations

import json

import pytest

from ocpp_core.config import ProcessorConfig, UnknownChargerPolicy
from ocpp_core.extensions import Extensions
from ocpp_core.handlers.transactions import transaction_view
from ocpp_core.keys import message_digest
from ocpp_core.memory_store import InMemoryStore
from ocpp_core.ports import StoreError
from ocpp_core.processor import OutcomeKind
from tests.fakes import START_MS, FakeClock, SeqIds

from .support import V2X, V16, VERSIONS, Charger, boot_payload, energy_sample_v2, transaction_event

START_16 = {"connectorId": 1, "idTag": "TAG", "meterStart": 10, "timestamp": "2025-06-15T15:00:00Z"}


def test_start_transaction_twice_gives_one_transaction(make_charger) -> None:
    charger: Charger = make_charger(V16)
    text = json.dumps([2, "dup-1", "StartTransaction", START_16])
    first = charger.send_text(text, receivedAt=START_MS)
    charger.clock.advance(5)
    second = charger.send_text(text, receivedAt=START_MS)  # IoT delivers the same message again
    assert first.kind == second.kind == OutcomeKind.REPLIED
    assert second.reply == first.reply
    assert json.loads(first.reply)[2]["transactionId"] == 1
    assert len(charger.store.list_transactions()) == 1
    # The charger sending the same start again (a resend, a new connection after a reboot) is the
    # same start: the same transaction id, however late.
    charger.clock.advance(3 * 86400)
    assert charger.send_text(text, connectionId="conn-2").reply == first.reply
    assert len(charger.store.list_transactions()) == 1
    # A different start is a new transaction, whatever its unique id.
    later = {**START_16, "timestamp": "2025-06-15T18:00:00Z", "meterStart": 500}
    assert charger.result("StartTransaction", later, uid="dup-1")["transactionId"] > 1
    assert len(charger.store.list_transactions()) == 2


@pytest.mark.parametrize("version", VERSIONS)
def test_boot_redelivered_later_gets_the_same_reply(make_charger, version) -> None:
    charger: Charger = make_charger(version, config=ProcessorConfig(unknown_chargers=UnknownChargerPolicy.ACCEPT))
    text = json.dumps([2, "boot-1", "BootNotification", boot_payload(version)])
    first = charger.send_text(text, receivedAt=START_MS)
    boot_at = charger.store.get_charger("CP1")["bootAt"]
    charger.clock.advance(30)
    again = charger.send_text(text, receivedAt=START_MS)
    assert again.reply == first.reply  # currentTime is the receive time: the same reply, byte for byte
    assert again.kind == OutcomeKind.REPLIED
    assert charger.store.get_charger("CP1")["bootAt"] == boot_at


@pytest.mark.parametrize("version", V2X)
def test_transaction_event_twice_stores_meter_values_once(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    event = transaction_event("Started", "t1", 0, meter=[energy_sample_v2(100)], offline=True)
    text = json.dumps([2, "te-1", "TransactionEvent", event])
    assert charger.send_text(text).reply == charger.send_text(text).reply
    assert len(charger.store.list_meter_values("CP1", "t1")) == 1
    assert transaction_view(charger.store.get_transaction("CP1", "t1"))["offlineEvents"] == 1


def test_data_transfer_twice_is_one_event(make_charger) -> None:
    charger: Charger = make_charger(V16)
    text = json.dumps([2, "dt-1", "DataTransfer", {"vendorId": "v"}])
    replies = {charger.send_text(text).reply for _ in range(3)}
    assert len(replies) == 1
    assert len(charger.store.list_events("CP1")) == 1


def test_the_same_id_from_two_chargers_is_two_messages(make_charger) -> None:
    a: Charger = make_charger(V16, cp="A")
    b: Charger = make_charger(V16, cp="B")
    text = json.dumps([2, "same", "StartTransaction", START_16])
    assert json.loads(a.send_text(text).reply)[2]["transactionId"] == 1
    assert json.loads(b.send_text(text).reply)[2]["transactionId"] == 2


def test_a_reused_id_with_another_frame_is_a_new_message(make_charger) -> None:
    # OCPP-J makes unique ids unique per sender and connection only: the key is the frame.
    charger: Charger = make_charger(V16)
    first = charger.send_text(json.dumps([2, "reused", "Heartbeat", {}]))
    second = charger.send_text(json.dumps([2, "reused", "StartTransaction", START_16]))
    assert second.kind == OutcomeKind.REPLIED and second.reply != first.reply
    assert json.loads(second.reply)[2]["transactionId"] == 1


@pytest.mark.parametrize("version", VERSIONS)
def test_counters_restarting_at_1_after_a_reboot_get_their_own_answers(make_charger, version) -> None:
    charger: Charger = make_charger(version, config=ProcessorConfig(unknown_chargers=UnknownChargerPolicy.ACCEPT))
    boot = json.dumps([2, "1", "BootNotification", boot_payload(version)])
    heartbeat = json.dumps([2, "1", "Heartbeat", {}])
    charger.send_text(boot, connectionId="before-reboot")
    charger.clock.advance(60)
    charger.send_text(heartbeat, connectionId="before-reboot")
    charger.clock.advance(60)
    rebooted = charger.send_text(boot, connectionId="after-reboot")
    assert set(json.loads(rebooted.reply)[2]) == {"status", "currentTime", "interval"}


def test_two_sessions_reusing_ids_on_two_connections_are_two_transactions(make_charger) -> None:
    charger: Charger = make_charger(V16)
    one = charger.send_text(json.dumps([2, "7", "StartTransaction", START_16]), connectionId="a")
    other = {**START_16, "timestamp": "2025-06-15T19:00:00Z", "meterStart": 900}
    two = charger.send_text(json.dumps([2, "7", "StartTransaction", other]), connectionId="b")
    assert json.loads(one.reply)[2]["transactionId"] != json.loads(two.reply)[2]["transactionId"]
    assert len(charger.store.list_transactions()) == 2


def test_refused_frames_are_not_remembered(make_charger) -> None:
    # Invalid CALLs change nothing, so no record: the corrected frame with the same id is processed.
    charger: Charger = make_charger(V16)
    assert charger.error("StartTransaction", {"connectorId": 1}, uid="fix-1") == "OccurenceConstraintViolation"
    assert charger.result("StartTransaction", START_16, uid="fix-1")["transactionId"] == 1


def test_handler_errors_are_remembered(make_charger) -> None:
    # An OcppError raised by a handler is a decision: the duplicate gets the same CALLERROR.
    extensions = Extensions()
    calls = []

    @extensions.on("DataTransfer")
    def refuse(ctx, payload):
        calls.append(payload)
        from ocpp_core.errors import PropertyConstraintViolation

        raise PropertyConstraintViolation("vendor data out of range")

    charger: Charger = make_charger(V16, extensions=extensions)
    text = json.dumps([2, "e-1", "DataTransfer", {"vendorId": "v"}])
    first, second = charger.send_text(text), charger.send_text(text)
    assert json.loads(first.reply)[2] == "PropertyConstraintViolation"
    assert second.kind == OutcomeKind.DUPLICATE and second.reply == first.reply
    assert len(calls) == 1


def _hooked(seen: list) -> Extensions:
    """An ``after`` hook on StartTransaction and Heartbeat: such frames are claimed (not idempotent)."""
    extensions = Extensions()

    @extensions.after("StartTransaction")
    @extensions.after("Heartbeat")
    def hook(ctx, request, response):
        seen.append(ctx.unique_id)

    return extensions


def test_redelivery_while_the_first_is_in_progress_is_not_answered_twice(make_charger) -> None:
    charger: Charger = make_charger(V16, extensions=_hooked([]))
    text = json.dumps([2, "busy", "StartTransaction", START_16])
    # Another Lambda invocation has claimed it and not finished yet.
    key = message_digest("conn-1", "busy", text)
    assert charger.store.claim_message("CP1", key, charger.clock.now_ms(), 10**10) is None
    outcome = charger.send_text(text)
    assert (outcome.kind, outcome.reply) == (OutcomeKind.IN_PROGRESS, None)
    assert charger.store.list_transactions() == []


def test_hooks_run_once_and_an_expired_record_changes_nothing_twice(make_charger) -> None:
    seen: list = []
    charger: Charger = make_charger(V16, config=ProcessorConfig(idempotency_ttl_s=60), extensions=_hooked(seen))
    text = json.dumps([2, "ttl-1", "StartTransaction", START_16])
    first = charger.send_text(text, receivedAt=START_MS)
    first.run_after_hooks()
    charger.clock.advance(59)
    again = charger.send_text(text, receivedAt=START_MS)
    assert again.kind == OutcomeKind.DUPLICATE and again.reply == first.reply
    again.run_after_hooks()
    assert seen == ["ttl-1"]
    charger.clock.advance(2)
    late = charger.send_text(text, receivedAt=START_MS)  # the record expired: handled again...
    assert late.kind == OutcomeKind.REPLIED and late.reply == first.reply
    assert len(charger.store.list_transactions()) == 1  # ...and the transaction is still one


class FlakyStore(InMemoryStore):
    """Fails the named operation the first ``times`` times it is called."""

    def __init__(self, operation: str, times: int = 1) -> None:
        super().__init__()
        self.operation, self.left = operation, times
        original = getattr(self, operation)

        def flaky(*args, **kwargs):
            if self.left > 0:
                self.left -= 1
                raise StoreError(f"{operation} throttled")
            return original(*args, **kwargs)

        setattr(self, operation, flaky)


@pytest.mark.parametrize("operation", ["start_transaction", "next_transaction_id", "touch_charger"])
def test_store_failure_is_an_internal_error_and_the_redelivery_succeeds(operation, caplog) -> None:
    store = FlakyStore(operation)
    store.update_charger("CP1", {"registered": True})
    charger = Charger(V16, store, FakeClock(), SeqIds())
    text = json.dumps([2, "flaky-1", "StartTransaction", START_16])
    failed = charger.send_text(text)
    assert failed.kind == OutcomeKind.CALL_ERROR and failed.error_code == "InternalError"
    assert json.loads(failed.reply)[:3] == [4, "flaky-1", "InternalError"]
    # Nothing remembers the failure: the redelivery is processed, not answered with the error again.
    retried = charger.send_text(text)
    assert retried.kind == OutcomeKind.REPLIED, retried
    assert len(store.list_transactions()) == 1
    assert any("CP1" in r.getMessage() for r in caplog.records)  # logged with the charger id


def test_failing_to_store_the_reply_still_replies(caplog) -> None:
    store = FlakyStore("complete_message")
    charger = Charger(V16, store, FakeClock(), SeqIds(), extensions=_hooked([]))
    outcome = charger.send_text(json.dumps([2, "c-1", "Heartbeat", {}]))
    assert outcome.kind == OutcomeKind.REPLIED
    assert "could not store the idempotency record" in caplog.text
    # The claim lapses after its lease instead of blocking the unique id for a day.
    charger.clock.advance(ProcessorConfig().claim_lease_s + 1)
    assert charger.send_text(json.dumps([2, "c-1", "Heartbeat", {}])).kind == OutcomeKind.REPLIED


def test_a_claim_whose_attempt_died_is_retried_after_its_lease_not_a_day_later() -> None:
    # The first attempt claimed the message and never completed it (a Lambda timed out mid-way).
    store, clock = InMemoryStore(), FakeClock()
    store.update_charger("CP1", {"registered": True})
    config = ProcessorConfig(claim_lease_s=60)
    text = json.dumps([2, "slow-1", "StartTransaction", START_16])
    key = message_digest("conn-1", "slow-1", text)
    store.claim_message("CP1", key, clock.now_ms(), clock.now_ms() // 1000 + config.claim_lease_s)
    charger = Charger(V16, store, clock, SeqIds(), config=config, extensions=_hooked([]))
    sent_at = clock.now_ms()
    clock.advance(59)
    assert charger.send_text(text, receivedAt=sent_at).kind == OutcomeKind.IN_PROGRESS  # maybe still running
    clock.advance(2)
    done = charger.send_text(text, receivedAt=sent_at)
    assert done.kind == OutcomeKind.REPLIED and json.loads(done.reply)[2]["transactionId"] == 1
    # Completed, it is remembered for the full TTL, far beyond the lease.
    clock.advance(config.idempotency_ttl_s - 10)
    again = charger.send_text(text, receivedAt=sent_at)
    assert again.kind == OutcomeKind.DUPLICATE and again.reply == done.reply
    assert len(store.list_transactions()) == 1
