"""``ocpp_core.files``: names, keys, location filling, and upload status notifications matched to their
request through ``process``, in any order and duplicated (hypothesis permutations)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ocpp_core import files, process
from ocpp_core.config import ProcessorConfig, UnknownChargerPolicy
from ocpp_core.memory_store import InMemoryStore
from tests.fakes import START_MS, FakeClock, SeqIds

BAD_NAMES = [
    "",
    "a/b",
    "..",
    "../etc",
    "a\\b",
    "x..y",
    "nul\x00",
    "tab\tx",
    "del\x7f",
    "a" * 256,
    " lead",
    ".",
    "\ud800",
]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_that_could_escape_or_confuse_are_refused(name: str) -> None:
    assert files.name_problem(name) is not None


@pytest.mark.parametrize("name", ["diag.log", "Log 2025-06-15.tar.gz", "é.txt", "a" * 255])
def test_plain_names_are_kept(name: str) -> None:
    assert files.name_problem(name) is None


def test_upload_keys_round_trip_url_encoded() -> None:
    key = files.upload_key("CP:1", "0123abc", "my log.txt")
    assert files.parse_upload_key(key) == files.UploadKey("CP:1", "0123abc", "my log.txt")
    # S3 notifications URL-encode keys: spaces as '+', others as %XX
    assert files.parse_upload_key("uploads/CP%3A1/0123abc/my+log.txt") == files.UploadKey(
        "CP:1", "0123abc", "my log.txt"
    )
    for bad in ("firmware/x/y", "uploads/CP1/id", "uploads/CP1/i-d/x", "uploads/CP1/id/%2E%2E", "uploads/C/P/id/x"):
        assert files.parse_upload_key(bad) is None, bad


def test_location_is_filled_only_when_absent() -> None:
    assert files.upload_kind("GetDiagnostics", {}) == files.KIND_DIAGNOSTICS
    assert files.upload_kind("GetDiagnostics", {"location": "ftp://x"}) is None
    assert files.upload_kind("GetLog", {"logType": "DiagnosticsLog", "requestId": 1, "log": {}}) == files.KIND_LOG
    assert files.upload_kind("GetLog", {"log": {"remoteLocation": "https://x"}}) is None
    assert files.upload_kind("Reset", {}) is None
    filled = files.with_location(files.KIND_LOG, {"logType": "SecurityLog", "log": {}}, "http://u", 7)
    assert filled == {"logType": "SecurityLog", "log": {"remoteLocation": "http://u"}, "requestId": 7}
    kept = files.with_location(files.KIND_LOG, {"requestId": 3}, "http://u", 7)
    assert kept["requestId"] == 3
    assert 0 < files.derived_request_id("any-call-id") < 2**31


def test_check_upload_names_each_refusal() -> None:
    upload = files.upload_record(
        "CP1", "u1", kind="log", unique_id="c1", request_id=5, created_at_ms=START_MS, ttl_s=60, url="http://u"
    )
    assert files.check_upload(upload, START_MS + 1)["uploadId"] == "u1"
    with pytest.raises(files.UploadRefused) as refused:
        files.check_upload(upload, START_MS + 60_000)
    assert refused.value.reason == files.REFUSAL_EXPIRED
    with pytest.raises(files.UploadRefused) as refused:
        files.check_upload({**upload, "fileId": "u1"}, START_MS)
    assert refused.value.reason == files.REFUSAL_USED
    with pytest.raises(files.UploadRefused) as refused:
        files.check_upload(None, START_MS)
    assert refused.value.reason == files.REFUSAL_UNKNOWN


# --- status notifications through the processor -----------------------------------------------
def _store_with_uploads() -> InMemoryStore:
    store = InMemoryStore()
    store.update_charger("CP1", {"registered": True, "registrationStatus": "Accepted"})
    for upload_id, kind, request_id, at in (
        ("d1", files.KIND_DIAGNOSTICS, None, START_MS - 5000),
        ("d2", files.KIND_DIAGNOSTICS, None, START_MS - 4000),  # the latest diagnostics request
        ("l7", files.KIND_LOG, 7, START_MS - 3000),
        ("l8", files.KIND_LOG, 8, START_MS - 2000),
    ):
        record = files.upload_record(
            "CP1", upload_id, kind=kind, unique_id=f"call-{upload_id}", request_id=request_id,
            created_at_ms=at, ttl_s=3600, url="http://u",
        )  # fmt: skip
        store.create_upload("CP1", upload_id, record)
    return store


def _send(store: InMemoryStore, protocol: str, uid: str, at_ms: int, action: str, payload: object) -> None:
    envelope = {
        "chargePointId": "CP1",
        "protocol": protocol,
        "connectionId": "conn-1",
        "receivedAt": at_ms,
        "frame": json.dumps([2, uid, action, payload]),
    }
    outcome = process(
        envelope,
        store=store,
        clock=FakeClock(at_ms),
        ids=SeqIds(),
        config=ProcessorConfig(unknown_chargers=UnknownChargerPolicy.ACCEPT),
    )
    assert outcome.reply is not None and json.loads(outcome.reply)[0] == 3, outcome


def _status(store: InMemoryStore, upload_id: str) -> object:
    return {u["uploadId"]: u for u in store.list_uploads("CP1")}[upload_id].get("status")


LOG_SEQUENCE = [("Uploading", 7), ("Uploading", 8), ("Uploaded", 7), ("UploadFailure", 8), ("Idle", None)]


@settings(max_examples=60, deadline=None)
@given(order=st.permutations(range(len(LOG_SEQUENCE))), duplicates=st.lists(st.integers(0, 4), max_size=3))
def test_log_status_is_matched_by_request_id_and_the_newest_wins(order: list[int], duplicates: list[int]) -> None:
    store = _store_with_uploads()
    # frame i was received at START_MS + i s; delivered in ``order``, some twice
    for i in [*order, *duplicates]:
        status, request_id = LOG_SEQUENCE[i]
        payload = {"status": status} if request_id is None else {"status": status, "requestId": request_id}
        _send(store, "ocpp2.0.1", f"m{i}", START_MS + i * 1000, "LogStatusNotification", payload)
    assert _status(store, "l7") == "Uploaded"
    assert _status(store, "l8") == "UploadFailure"
    assert _status(store, "d2") == "Requested"  # Idle and the log notifications leave diagnostics alone


DIAGNOSTICS_SEQUENCE = ["Uploading", "Uploaded", "Idle"]


@settings(max_examples=30, deadline=None)
@given(order=st.permutations(range(len(DIAGNOSTICS_SEQUENCE))), duplicates=st.lists(st.integers(0, 2), max_size=2))
def test_16_diagnostics_status_goes_to_the_latest_request(order: list[int], duplicates: list[int]) -> None:
    store = _store_with_uploads()
    for i in [*order, *duplicates]:
        payload = {"status": DIAGNOSTICS_SEQUENCE[i]}
        _send(store, "ocpp1.6", f"d{i}", START_MS + i * 1000, "DiagnosticsStatusNotification", payload)
    assert _status(store, "d2") == "Uploaded"
    assert _status(store, "d1") == "Requested"
    # the charger's own status and the EVT# records are kept as before
    assert store.get_charger("CP1")["diagnosticsStatus"] == "Idle"
    assert len(store.list_events("CP1", "DiagnosticsStatusNotification")) == 3


def test_firmware_history_from_the_notifications() -> None:
    store = _store_with_uploads()
    for i, status in enumerate(["Downloading", "Downloaded", "Installing", "Installed"]):
        _send(
            store,
            "ocpp2.0.1",
            f"f{i}",
            START_MS + i * 1000,
            "FirmwareStatusNotification",
            {"status": status, "requestId": 4},
        )
    view = files.firmware_history(store.get_charger("CP1"), store.list_events("CP1", "FirmwareStatusNotification"))
    assert view["status"] == "Installed"
    assert [h["status"] for h in view["history"]] == ["Downloading", "Downloaded", "Installing", "Installed"]
    assert {h["requestId"] for h in view["history"]} == {4}
