"""The files part of the StateStore contract (``FileStore``), on every implementation:
``InMemoryStore`` and ``DynamoStore`` over moto, as in ``test_store_contract.py``."""

from __future__ import annotations

from ocpp_core import files
from ocpp_core.ports import ItemUpdate, Newer, StateStore
from tests.fakes import START_MS


def _upload(upload_id: str, *, kind: str = "log", request_id: int | None = 1, at: int = START_MS) -> dict[str, object]:
    return files.upload_record(
        "CP1", upload_id, kind=kind, unique_id=f"c-{upload_id}", request_id=request_id, created_at_ms=at,
        ttl_s=3600, url=f"http://127.0.0.1:9003/upload/{upload_id}",
    )  # fmt: skip


def test_an_upload_is_found_by_its_id_alone_and_listed_newest_first(store: StateStore) -> None:
    store.create_upload("CP1", "u1", _upload("u1", at=START_MS))
    store.create_upload("CP1", "u2", _upload("u2", at=START_MS + 1000))
    assert store.find_upload("u1") == _upload("u1")
    assert store.find_upload("nope") is None
    assert [u["uploadId"] for u in store.list_uploads("CP1")] == ["u2", "u1"]
    assert store.list_uploads("CP2") == []


def test_one_file_per_upload_the_claim_is_conditional(store: StateStore) -> None:
    store.create_upload("CP1", "u1", _upload("u1"))
    changes = files.claim_changes("u1", "a.log", 3, START_MS + 5)
    assert store.claim_upload("CP1", "u1", changes)
    assert not store.claim_upload("CP1", "u1", files.claim_changes("u1", "b.log", 4, START_MS + 6))
    assert not store.claim_upload("CP1", "missing", changes)
    assert store.find_upload("missing") is None
    assert store.find_upload("u1")["fileName"] == "a.log"
    assert store.list_uploads("CP1")[0]["fileId"] == "u1"  # the listing shows it too


def test_upload_status_keeps_the_newest(store: StateStore) -> None:
    store.create_upload("CP1", "u1", _upload("u1"))

    def status(value: str, order: str) -> bool:
        update = ItemUpdate(set={"status": value}, newer=Newer("statusOrder", order), must_exist=True)
        return store.update_upload("CP1", "u1", update)

    assert status("Uploaded", "0002")
    assert not status("Uploading", "0001")  # older, delivered late
    assert not status("Uploaded", "0002")  # duplicate
    assert store.list_uploads("CP1")[0]["status"] == "Uploaded"
    missing = ItemUpdate(set={"status": "x"}, newer=Newer("statusOrder", "9"), must_exist=True)
    assert not store.update_upload("CP1", "zz", missing)
    assert [u["uploadId"] for u in store.list_uploads("CP1")] == ["u1"]


def test_delete_upload_forgets_both_items(store: StateStore) -> None:
    store.create_upload("CP1", "u1", _upload("u1"))
    store.delete_upload("CP1", "u1")
    assert store.find_upload("u1") is None
    assert store.list_uploads("CP1") == []


def test_files_are_kept_per_charger_newest_first(store: StateStore) -> None:
    upload = _upload("u1")
    first = files.file_record(upload, name="a.log", size=3, received_at_ms=START_MS, storage_key="uploads/CP1/u1/a.log")
    second = {**first, "fileId": "u2", "uploadId": "u2", "receivedAt": START_MS + 10}
    store.put_file("CP1", "u1", first)
    store.put_file("CP1", "u2", second)
    store.put_file("CP1", "u1", first)  # a redelivery rewrites
    assert store.get_file("CP1", "u1") == first
    assert store.get_file("CP2", "u1") is None
    assert [f["fileId"] for f in store.list_files("CP1")] == ["u2", "u1"]
    assert set(first) == {
        "chargePointId", "fileId", "name", "size", "receivedAt", "uploadId", "requestId", "uniqueId", "kind",
        "storageKey",
    }  # fmt: skip


def test_firmware_is_listed_newest_first_without_index_keys(store: StateStore) -> None:
    for firmware_id, at in (("0001aa", START_MS), ("0002bb", START_MS + 1)):
        record = files.firmware_record(
            firmware_id,
            "fw.bin",
            size=1,
            sha256="s",
            md5="m",
            created_at_ms=at,
            storage_key=f"firmware/{firmware_id}/fw.bin",
        )
        store.put_firmware(firmware_id, record)
    assert [f["firmwareId"] for f in store.list_firmware()] == ["0002bb", "0001aa"]
    assert store.get_firmware("0001aa")["storageKey"] == "firmware/0001aa/fw.bin"
    assert "listPk" not in store.get_firmware("0001aa")
    assert store.get_firmware("nope") is None
