"""The DynamoDB items of charger certificates (``ocpp_core.certificates``): part of ``DynamoStore``.

One item per certificate (``CP#<id>`` / ``CERT#<serial>``), created once (a conditional put: a
redelivered SignCertificate finds the first one), listed under ``CERTS`` in the sparse ``list``
index by its end, so the certificates expiring within a month are one query away. The bridge
reads the item at each profile-3 handshake (one GetItem) to refuse a revoked certificate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from ocpp_core import keys
from ocpp_core.ports import ItemUpdate, Record

from .dynamo_table import TableAccess


class CertificateItems(TableAccess):
    def create_certificate(self, charge_point_id: str, serial: str, record: Mapping[str, Any]) -> tuple[Record, bool]:
        pk, sk = keys.charger_pk(charge_point_id), keys.certificate_sk(serial)
        item = {
            **record,
            keys.LIST_PK: keys.CERTIFICATES_LIST,
            keys.LIST_SK: keys.certificate_list_sk(int(record.get("notAfter") or 0), charge_point_id, serial),
        }
        try:
            self._put(
                pk, sk, item, ConditionExpression="attribute_not_exists(#pk)", ExpressionAttributeNames={"#pk": keys.PK}
            )
        except ClientError:
            stored = self._get(pk, sk)
            if stored is not None:
                return stored, False
            raise
        return dict(record), True

    def get_certificate(self, charge_point_id: str, serial: str) -> Record | None:
        return self._get(keys.charger_pk(charge_point_id), keys.certificate_sk(serial))

    def list_certificates(self, charge_point_id: str) -> list[Record]:
        found = self._query(keys.charger_pk(charge_point_id), keys.CERTIFICATE_PREFIX)
        return sorted(found, key=lambda r: (int(r.get("issuedAt") or 0), str(r.get("serial"))), reverse=True)

    def update_certificate(self, charge_point_id: str, serial: str, update: ItemUpdate) -> bool:
        return self._apply(keys.charger_pk(charge_point_id), keys.certificate_sk(serial), update)

    def get_root_certificate(self) -> str | None:
        item = self._get(keys.ROOT_CERTIFICATE_PK, keys.ROOT_CERTIFICATE_SK)
        return str(item["pem"]) if item is not None else None

    def put_root_certificate(self, pem: str) -> str:
        try:
            self._put(
                keys.ROOT_CERTIFICATE_PK,
                keys.ROOT_CERTIFICATE_SK,
                {"pem": pem},
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": keys.PK},
            )
        except ClientError:
            stored = self.get_root_certificate()
            if stored is None:
                raise
            return stored
        return pem

    def expiring_certificates(self, before_ms: int, *, limit: int = 1000) -> list[Record]:
        found = self._index_keys(keys.CERTIFICATES_LIST, up_to=f"{before_ms - 1:015d}#\uffff", limit=limit)
        records = [self._get(str(item[keys.PK]), str(item[keys.SK])) for item in found]
        return [r for r in records if r is not None]
