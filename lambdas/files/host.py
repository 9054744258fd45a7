"""The file host port: upload URLs for chargers, download URLs, firmware images stored.

Storage keys are ``ocpp_core.files``' (``uploads/<cp>/<uploadId>/<name>``,
``firmware/<firmwareId>/<name>``), the same on S3 and on disk. Adapters: ``lambdas.files.s3``
(presigned S3 URLs) and ``lambdas.files.local`` (the local stack's file server).
"""

from __future__ import annotations

import secrets
from typing import Protocol


class FileHost(Protocol):
    def upload_url(self, charge_point_id: str, upload_id: str, name: str, expires_in_s: int) -> str:
        """Where the charger sends the file of this upload request (PUT; locally POST multipart too)."""
        ...

    def download_url(self, storage_key: str, name: str, expires_in_s: int) -> str:
        """A URL that fetches the stored object for a while (a firmware image, a received file)."""
        ...

    def store_firmware(self, firmware_id: str, name: str, data: bytes) -> str:
        """Keep a firmware image; its storage key."""
        ...


def new_file_id(now_ms: int) -> str:
    """An upload or firmware id: the time (sorts by creation) then 80 random bits (unguessable: it is
    the token of a URL that needs no other authentication)."""
    return f"{now_ms:013d}{secrets.token_hex(10)}"
