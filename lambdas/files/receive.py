"""Receiving one file for an upload request: the steps the local file server and the uploads Lambda share.

Both answer ``/upload/<token>`` and ``/upload/<token>/<name>`` (``POST`` multipart/form-data or
``PUT`` the raw body) the same way, because both go through these functions:

1. :func:`url_name` and :func:`find_upload`: the name appended to the URL (400), the token (404),
   the request (404 unknown, 410 expired, 409 already used): before the body is read;
2. :func:`file_name`: the multipart filename, else the URL's name, else ``diagnostics.log`` /
   ``log.log`` (400 for a bad name);
3. :func:`keep`: claim the request (a conditional write: one file per URL, 409 for the loser),
   store the bytes (``store``: a rename on disk, ``put_object`` on S3), record the ``FILE#`` item.

A refusal is an :class:`~lambdas.files.multipart.HttpRefusal` (status and one sentence); nothing is
stored before the claim succeeds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from ocpp_core.files import (
    DEFAULT_NAMES,
    REFUSAL_EXPIRED,
    REFUSAL_UNKNOWN,
    REFUSAL_USED,
    UploadRefused,
    check_upload,
    claim_changes,
    file_id_of,
    file_record,
    name_problem,
    upload_key,
)
from ocpp_core.ports import Record, StateStore

from .multipart import HttpRefusal

logger = logging.getLogger(__name__)

UPLOAD_SEGMENT = "upload"
UPLOAD_METHODS = ("POST", "PUT")
#: the HTTP status of each ``ocpp_core.files`` refusal
REFUSAL_STATUS = {REFUSAL_UNKNOWN: 404, REFUSAL_EXPIRED: 410, REFUSAL_USED: 409}
#: the largest token accepted (``new_file_id`` makes 45 characters)
MAX_TOKEN_LENGTH = 64


def upload_path(path: str) -> tuple[str, str | None] | None:
    """``/upload/<token>[/<name>]`` -> (token, percent-decoded name or None); None for another path.

    400 for a name that is not UTF-8 once decoded."""
    parts = path.strip("/").split("/")
    if parts[0] != UPLOAD_SEGMENT or len(parts) not in (2, 3):
        return None
    if len(parts) == 2:
        return parts[1], None
    try:
        return parts[1], unquote(parts[2], errors="strict")
    except UnicodeDecodeError:
        raise HttpRefusal(400, "The URL has a percent-encoded name that is not UTF-8.") from None


def check_method(method: str) -> None:
    if method not in UPLOAD_METHODS:
        raise HttpRefusal(405, f"{method[:16]} is not allowed on an upload URL; use POST or PUT.")


def checked_name(name: object) -> str:
    """``name`` if it can name a stored file; 400 with the reason otherwise (path traversal...)."""
    problem = name_problem(name)
    if problem is not None:
        raise HttpRefusal(400, f"Invalid file name: {problem}.")
    assert isinstance(name, str)
    return name


def url_name(name: str | None) -> str | None:
    """The name appended to the URL, checked (None: none appended)."""
    return None if name is None else checked_name(name)


def find_upload(store: StateStore, token: str, now_ms: int) -> Record:
    """The upload request a file may be stored for: 404 unknown, 410 expired, 409 already used."""
    if not (0 < len(token) <= MAX_TOKEN_LENGTH and token.isascii() and token.isalnum()):
        raise HttpRefusal(404, "No upload was requested at this URL.")
    try:
        return check_upload(store.find_upload(token), now_ms)
    except UploadRefused as refused:
        raise HttpRefusal(REFUSAL_STATUS[refused.reason], refused.message) from None


def file_name(upload: Record, *, part_name: str | None, url_name: str | None) -> str:
    """The stored file's name: the multipart filename, else the URL's, else the kind's default."""
    if part_name is not None:
        return checked_name(part_name)
    return url_name or DEFAULT_NAMES.get(str(upload.get("kind")), "upload.bin")


def keep(store: StateStore, upload: Record, name: str, size: int, now_ms: int, put: Callable[[str], None]) -> Record:
    """Claim the request (409 if another file got it first), ``put(storage key)``, record the file.

    ``put`` runs only once the claim is won, so two uploads racing for one URL never overwrite
    each other's bytes. If ``put`` fails the URL stays used (no file): the operator asks again."""
    cp, upload_id = str(upload["chargePointId"]), str(upload["uploadId"])
    key = upload_key(cp, upload_id, checked_name(name))
    file_id = file_id_of(upload_id)
    if not store.claim_upload(cp, upload_id, claim_changes(file_id, name, size, now_ms)):
        raise HttpRefusal(409, "A file was already uploaded to this URL (one file per URL).")
    try:
        put(key)
    except Exception:
        logger.exception("upload %s of %s was claimed but its file could not be stored", upload_id, cp)
        raise
    record = file_record(upload, name=name, size=size, received_at_ms=now_ms, storage_key=key)
    store.put_file(cp, file_id, record)
    logger.info("file %s (%s bytes) received from %s for upload %s", name, size, cp, upload_id)
    return record


def created(record: Record) -> dict[str, Any]:
    """The 201 body."""
    return {"fileId": record["fileId"], "name": record["name"], "size": record["size"]}


def refusal_body(refusal: HttpRefusal) -> dict[str, Any]:
    """The body of a refusal: the operator API's error shape, ``{"error": "<sentence>"}``."""
    return {"error": refusal.message}
