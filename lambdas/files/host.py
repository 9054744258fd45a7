"""The file host port: upload URLs for chargers, download URLs, firmware images stored.

Storage keys are ``ocpp_core.files``' (``uploads/<cp>/<uploadId>/<name>``,
``firmware/<firmwareId>/<name>``), the same on S3 and on disk. Adapters: ``lambdas.files.s3``
(presigned S3 URLs; uploads through the API by default, ``lambdas.uploads``) and
``lambdas.files.local`` (the local stack's file server).
"""

from __future__ import annotations

import secrets
from typing import Protocol


class FileHost(Protocol):
    #: True if :meth:`upload_url` is an S3 presigned PUT (only a PUT at exactly that URL, until it
    #: expires): with ``OCPP_UPLOAD_MODE=api`` the operator API gives its own ``/upload/<token>``
    #: instead (``lambdas.uploads``). False: the host's URL takes POST multipart and PUT already.
    presigned_uploads: bool

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
    """An upload or firmware id: the time (sorts by creation) then 128 random bits (unguessable: it is
    the token of a URL that needs no other authentication, on AWS an unauthenticated API route)."""
    return f"{now_ms:013d}{secrets.token_hex(16)}"
