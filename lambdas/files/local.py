"""The local file host: files under the stack's state directory, URLs of its file server.

Layout: ``<state dir>/files/<cp>/<uploadId>/<name>`` (received files),
``<state dir>/firmware/<firmwareId>/<name>`` (firmware images), ``<state dir>/files/.tmp`` (uploads
being received: renamed into place once complete, on the same file system). Storage keys map onto
these directories only after every segment is checked, and the resolved path must stay inside them.

Download URLs of received files are ``<base>/files/<token>``: the storage key and an expiry, signed
with HMAC-SHA256 by a secret created once in the state directory (``files.secret``, mode 0600).
Firmware URLs are ``<base>/firmware/<firmwareId>/<name>``: the id is unguessable (``new_file_id``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from ocpp_core.files import FIRMWARE_PREFIX, UPLOADS_PREFIX, firmware_key, name_problem
from ocpp_core.ids import is_valid_charge_point_id

SECRET_FILE = "files.secret"
TEMP_DIR = ".tmp"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_secret(path: Path) -> bytes:
    """The signing secret: made once (``O_EXCL``, mode 0600), read on every later start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) < 32:
            raise ValueError(f"{path} holds no usable secret (delete it to make a new one)") from None
        return secret
    secret = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as out:
        out.write(secret)
    return secret


def _is_id(value: str) -> bool:
    return 0 < len(value) <= 64 and value.isascii() and value.isalnum()


class LocalFileHost:
    #: the file server's ``/upload/<token>`` takes POST multipart and PUT
    presigned_uploads = False

    def __init__(self, state_dir: Path, base_url: str, *, clock_s: Callable[[], float] = time.time) -> None:
        self.files_dir = (state_dir / "files").resolve()
        self.firmware_dir = (state_dir / "firmware").resolve()
        self.temp_dir = self.files_dir / TEMP_DIR
        for directory in (self.files_dir, self.firmware_dir, self.temp_dir):
            directory.mkdir(parents=True, exist_ok=True)
        self._secret = load_or_create_secret(state_dir / SECRET_FILE)
        self.base_url = base_url.rstrip("/")
        self._now_s = clock_s

    # --- FileHost ------------------------------------------------------------------------
    def upload_url(self, charge_point_id: str, upload_id: str, name: str, expires_in_s: int) -> str:
        return f"{self.base_url}/upload/{upload_id}"

    def download_url(self, storage_key: str, name: str, expires_in_s: int) -> str:
        if storage_key.startswith(FIRMWARE_PREFIX):
            return f"{self.base_url}/{quote(storage_key)}"
        return f"{self.base_url}/files/{self.sign(storage_key, int(self._now_s()) + expires_in_s)}"

    def store_firmware(self, firmware_id: str, name: str, data: bytes) -> str:
        key = firmware_key(firmware_id, name)
        path = self.path_of(key)
        if path is None:
            raise ValueError(f"invalid firmware id or name: {firmware_id!r} {name!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = self.temp_dir / f"firmware-{secrets.token_hex(8)}"
        try:
            temp.write_bytes(data)
            os.replace(temp, path)
        finally:
            temp.unlink(missing_ok=True)
        return key

    # --- paths and tokens ----------------------------------------------------------------
    def path_of(self, storage_key: str) -> Path | None:
        """The file of a storage key, or None if the key is not one this host makes."""
        parts = storage_key.split("/")
        if storage_key.startswith(UPLOADS_PREFIX) and len(parts) == 4:
            _, cp, upload_id, name = parts
            if not is_valid_charge_point_id(cp) or not _is_id(upload_id):
                return None
            root, relative = self.files_dir, Path(cp, upload_id, name)
        elif storage_key.startswith(FIRMWARE_PREFIX) and len(parts) == 3:
            _, firmware_id, name = parts
            if not _is_id(firmware_id):
                return None
            root, relative = self.firmware_dir, Path(firmware_id, name)
        else:
            return None
        if name_problem(name) is not None or relative.parts[0] in (".", ".."):
            return None
        path = (root / relative).resolve()
        return path if path.is_relative_to(root) and path.parent != self.temp_dir else None

    def sign(self, storage_key: str, expires_at_s: int) -> str:
        body = _b64(storage_key.encode("utf-8")) + "." + str(expires_at_s)
        mac = hmac.new(self._secret, body.encode("ascii"), hashlib.sha256).digest()[:16]
        return body + "." + _b64(mac)

    def verify(self, token: str) -> str | None:
        """The storage key of a valid, unexpired download token, else None."""
        parts = token.split(".")
        if len(parts) != 3 or len(token) > 2048 or not parts[1].isdigit():
            return None
        body = parts[0] + "." + parts[1]
        expected = hmac.new(self._secret, body.encode("ascii", "replace"), hashlib.sha256).digest()[:16]
        try:
            given = _unb64(parts[2])
            key = _unb64(parts[0]).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(expected, given) or int(parts[1]) <= self._now_s():
            return None
        return key
