"""At-least-once delivery: the same (chargePointId, uniqueId) twice gives the same reply, state changes once."""

from __future__ import annotations

import json

import pytest

from ocpp_core.config import ProcessorConfig, UnknownChargerPolicy
from ocpp_core.extensions import Extensions
from ocpp_core.memory_store import InMemoryStore
from ocpp_core.ports import StoreError
from ocpp_core.processor import OutcomeKind
from tests.fakes import FakeClock, SeqIds

from .support import V2X, V16, VERSIONS, Charger, boot_payload, energy_sample_v2, transaction_event

START_16 = {"connectorId": 1, "idTag": "TAG", "meterStart": 10, "timestamp": "2025-06-15T15:00:00Z"}


def test_start_transaction_twice_gives_one_transaction(make_charger) -> None:
    charger: Charger = make_charger(V16)
    text = json.dumps([2, "dup-1", "StartTransaction", START_16])
    first = charger.send_text(text)
    charger.clock.advance(5)
    second = charger.send_text(text)
    assert first.kind == OutcomeKind.REPLIED and second.kind == OutcomeKind.DUPLICATE
    assert second.reply == first.reply
    assert json.loads(first.reply)[2]["transactionId"] == 1
    assert len(charger.store.list_transactions()) == 1
    assert charger.store.next_transaction_id() == 2  # the counter moved once
    # A new unique id is a new transaction.
    assert charger.result("StartTransaction", START_16, uid="dup-2")["transactionId"] == 3


@pytest.mark.parametrize("version", VERSIONS)
def test_boot_twice_gives_the_same_reply_even_later(make_charger, version) -> None:
    charger: Charger = make_charger(version, config=ProcessorConfig(unknown_chargers=UnknownChargerPolicy.ACCEPT))
    text = json.dumps([2, "boot-1", "BootNotification", boot_payload(version)])
    first = charger.send_text(text)
    boot_at = charger.store.get_charger("CP1")["bootAt"]
    charger.clock.advance(30)
    again = charger.send_text(text)
    assert again.reply == first.reply  # currentTime included: the stored reply, not a new one
    assert again.kind == OutcomeKind.DUPLICATE
    assert charger.store.get_charger("CP1")["bootAt"] == boot_at


@pytest.mark.parametrize("version", V2X)
def test_transaction_event_twice_stores_meter_values_once(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    event = transaction_event("Started", "t1", 0, meter=[energy_sample_v2(100)], offline=True)
    text = json.dumps([2, "te-1", "TransactionEvent", event])
    assert charger.send_text(text).reply == charger.send_text(text).reply
    assert len(charger.store.list_meter_values("CP1", "t1")) == 1
    assert charger.store.get_transaction("CP1", "t1")["offlineEvents"] == 1


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


def test_a_repeated_id_gets_the_first_reply_whatever_the_frame(make_charger) -> None:
    # The key is (charger, unique id): a charger reusing an id gets the answer it had.
    charger: Charger = make_charger(V16)
    first = charger.send_text(json.dumps([2, "reused", "Heartbeat", {}]))
    second = charger.send_text(json.dumps([2, "reused", "StartTransaction", START_16]))
    assert second.kind == OutcomeKind.DUPLICATE and second.reply == first.reply
    assert charger.store.list_transactions() == []


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


def test_redelivery_while_the_first_is_in_progress_is_not_answered_twice(make_charger) -> None:
    charger: Charger = make_charger(V16)
    # Another Lambda invocation has claimed it and not finished yet.
    assert charger.store.claim_message("CP1", "busy", charger.clock.now_ms(), 10**10) is None
    outcome = charger.send_text(json.dumps([2, "busy", "StartTransaction", START_16]))
    assert (outcome.kind, outcome.reply) == (OutcomeKind.IN_PROGRESS, None)
    assert charger.store.list_transactions() == []


def test_the_idempotency_record_expires(make_charger) -> None:
    charger: Charger = make_charger(V16, config=ProcessorConfig(idempotency_ttl_s=60))
    text = json.dumps([2, "ttl-1", "StartTransaction", START_16])
    charger.send_text(text)
    charger.clock.advance(59)
    assert charger.send_text(text).kind == OutcomeKind.DUPLICATE
    charger.clock.advance(2)
    assert charger.send_text(text).kind == OutcomeKind.REPLIED
    assert len(charger.store.list_transactions()) == 2


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


@pytest.mark.parametrize("operation", ["update_transaction", "next_transaction_id", "touch_charger", "claim_message"])
def test_store_failure_is_an_internal_error_and_the_redelivery_succeeds(operation, caplog) -> None:
    store = FlakyStore(operation)
    store.update_charger("CP1", {"registered": True})
    charger = Charger(V16, store, FakeClock(), SeqIds())
    text = json.dumps([2, "flaky-1", "StartTransaction", START_16])
    failed = charger.send_text(text)
    assert failed.kind == OutcomeKind.CALL_ERROR and failed.error_code == "InternalError"
    assert json.loads(failed.reply)[:3] == [4, "flaky-1", "InternalError"]
    # The claim was released: the redelivery is processed, not answered with the error again.
    retried = charger.send_text(text)
    assert retried.kind == OutcomeKind.REPLIED, retried
    assert len(store.list_transactions()) == 1
    assert any("CP1" in r.getMessage() for r in caplog.records)  # logged with the charger id


def test_failing_to_store_the_reply_still_replies(caplog) -> None:
    store = FlakyStore("complete_message")
    charger = Charger(V16, store, FakeClock(), SeqIds())
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
    store.claim_message("CP1", "slow-1", clock.now_ms(), clock.now_ms() // 1000 + config.claim_lease_s)
    charger = Charger(V16, store, clock, SeqIds(), config=config)
    clock.advance(59)
    assert charger.send_text(text).kind == OutcomeKind.IN_PROGRESS  # maybe still running: not twice
    clock.advance(2)
    done = charger.send_text(text)
    assert done.kind == OutcomeKind.REPLIED and json.loads(done.reply)[2]["transactionId"] == 1
    # Completed, it is remembered for the full TTL, far beyond the lease.
    clock.advance(config.idempotency_ttl_s - 10)
    again = charger.send_text(text)
    assert again.kind == OutcomeKind.DUPLICATE and again.reply == done.reply
    assert len(store.list_transactions()) == 1
