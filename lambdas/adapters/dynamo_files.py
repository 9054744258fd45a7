"""The DynamoDB items of uploads, received files and firmware (``ocpp_core.files``): part of ``DynamoStore``.

An upload request is two items: ``CP#<cp>`` / ``UPLOAD#<id>`` (listed per charger, its status moved
by the notifications) and the pointer ``UPLOAD#<id>`` / ``UPLOAD`` (a copy, found by the id alone:
the file server's one GetItem). The pointer holds the one-file claim: a conditional UpdateItem
(``attribute_exists(pk) AND attribute_not_exists(fileId)``), so two uploads racing to one URL store
one file. It lives a week past its URL's expiry (TTL) so a late upload gets "expired", not "unknown".
Firmware items carry the sparse ``list`` index keys under ``FIRMWARE`` (listed without a scan).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ocpp_core import keys
from ocpp_core.ports import ItemUpdate, Record

from .dynamo_codec import serialize_item
from .dynamo_table import TableAccess

#: how long the pointer outlives its URL (then the table's TTL removes it)
POINTER_GRACE_S = 7 * 24 * 3600


class FileItems(TableAccess):
    def create_upload(self, charge_point_id: str, upload_id: str, record: Mapping[str, Any]) -> None:
        pointer = keys.upload_pointer_key(upload_id)
        expires_ms = int(record.get("urlExpiresAt") or 0)
        self._put(
            pointer[keys.PK],
            pointer[keys.SK],
            {**record, keys.TTL_ATTRIBUTE: expires_ms // 1000 + POINTER_GRACE_S},
        )
        self._put(keys.charger_pk(charge_point_id), keys.upload_sk(upload_id), record)

    def find_upload(self, upload_id: str) -> Record | None:
        pointer = keys.upload_pointer_key(upload_id)
        found = self._get(pointer[keys.PK], pointer[keys.SK])
        if found is not None:
            found.pop(keys.TTL_ATTRIBUTE, None)  # the pointer's own lifetime, not the request's
        return found

    def delete_upload(self, charge_point_id: str, upload_id: str) -> None:
        pointer = keys.upload_pointer_key(upload_id)
        for pk, sk in (
            (pointer[keys.PK], pointer[keys.SK]),
            (keys.charger_pk(charge_point_id), keys.upload_sk(upload_id)),
        ):
            self._call("delete_item", Key=serialize_item({keys.PK: pk, keys.SK: sk}))

    def claim_upload(self, charge_point_id: str, upload_id: str, changes: Mapping[str, Any]) -> bool:
        pointer = keys.upload_pointer_key(upload_id)
        claim = ItemUpdate(set=changes, must_exist=True, require_absent=("fileId",))
        if not self._apply(pointer[keys.PK], pointer[keys.SK], claim):
            return False
        # the listing's copy; the claim above already decided
        self._apply(
            keys.charger_pk(charge_point_id), keys.upload_sk(upload_id), ItemUpdate(set=changes, must_exist=True)
        )
        return True

    def update_upload(self, charge_point_id: str, upload_id: str, update: ItemUpdate) -> bool:
        return self._apply(keys.charger_pk(charge_point_id), keys.upload_sk(upload_id), update)

    def list_uploads(self, charge_point_id: str) -> list[Record]:
        found = self._query(keys.charger_pk(charge_point_id), keys.UPLOAD_PREFIX)
        return sorted(found, key=lambda r: (int(r.get("createdAt") or 0), str(r.get("uploadId"))), reverse=True)

    def put_file(self, charge_point_id: str, file_id: str, record: Mapping[str, Any]) -> None:
        self._put(keys.charger_pk(charge_point_id), keys.file_sk(file_id), record)

    def get_file(self, charge_point_id: str, file_id: str) -> Record | None:
        return self._get(keys.charger_pk(charge_point_id), keys.file_sk(file_id))

    def list_files(self, charge_point_id: str) -> list[Record]:
        found = self._query(keys.charger_pk(charge_point_id), keys.FILE_PREFIX)
        return sorted(found, key=lambda r: (int(r.get("receivedAt") or 0), str(r.get("fileId"))), reverse=True)

    def put_firmware(self, firmware_id: str, record: Mapping[str, Any]) -> None:
        key = keys.firmware_key(firmware_id)
        self._put(key[keys.PK], key[keys.SK], {**record, keys.LIST_PK: keys.FIRMWARE_LIST, keys.LIST_SK: firmware_id})

    def get_firmware(self, firmware_id: str) -> Record | None:
        key = keys.firmware_key(firmware_id)
        return self._get(key[keys.PK], key[keys.SK])

    def list_firmware(self) -> list[Record]:
        """A query of the sparse ``list`` index (``FIRMWARE``), then the records in batches."""
        ids = [str(item[keys.LIST_SK]) for item in self._index_keys(keys.FIRMWARE_LIST)]
        found = self._batch_get([keys.firmware_key(i) for i in ids])
        return sorted(found, key=lambda r: str(r.get("firmwareId")), reverse=True)
