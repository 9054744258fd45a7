"""S3 as the file host: presigned PUT for uploads, presigned GET for downloads, firmware put.

By default (``OCPP_UPLOAD_MODE=api``) chargers upload through the operator API's ``/upload/<token>``
instead, and ``lambdas.uploads`` puts the file with :meth:`S3FileHost.store_upload`; the
presigned PUT remains for files above Lambda's payload limit (``OCPP_UPLOAD_MODE=presigned``).

A presigned URL carries the signer's credentials: made with a Lambda role's temporary credentials
it stops working when they expire, whatever ``ExpiresIn`` says, and SigV4 presigned URLs last at
most 7 days (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html).
The key of a presigned PUT is fixed when it is signed, so a charger that appends a file name to
the URL breaks the signature: the name is chosen here (``ocpp_core.files.DEFAULT_NAMES``).
"""

from __future__ import annotations

from typing import Any

from ocpp_core.files import firmware_key, upload_key


class S3FileHost:
    presigned_uploads = True

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self.bucket = bucket

    def upload_url(self, charge_point_id: str, upload_id: str, name: str, expires_in_s: int) -> str:
        return str(
            self._client.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": upload_key(charge_point_id, upload_id, name)},
                ExpiresIn=expires_in_s,
                HttpMethod="PUT",
            )
        )

    def download_url(self, storage_key: str, name: str, expires_in_s: int) -> str:
        safe = name.replace('"', "")
        return str(
            self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": storage_key,
                    "ResponseContentDisposition": f'attachment; filename="{safe}"',
                },
                ExpiresIn=expires_in_s,
            )
        )

    def store_firmware(self, firmware_id: str, name: str, data: bytes) -> str:
        key = firmware_key(firmware_id, name)
        self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/octet-stream")
        return key

    def store_upload(self, storage_key: str, data: bytes) -> None:
        """Put a file a charger uploaded through the API (``lambdas.uploads``) under ``uploads/``."""
        self._client.put_object(Bucket=self.bucket, Key=storage_key, Body=data, ContentType="application/octet-stream")
