"""Lambda: an S3 ObjectCreated notification of the files bucket records a file a charger uploaded.

The object key is ``uploads/<chargePointId>/<uploadId>/<name>``, URL-encoded in the notification
("The s3 key provided in the event notification is URL encoded",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html).
S3 delivers notifications at least once, so recording is idempotent: the file's id is its upload's
and its item is overwritten. An unknown key, an unknown upload id or one whose URL had expired is
logged and ignored (it never raises: a retry would not change it); only a state store failure
raises, so that Lambda retries the notification.
"""

from __future__ import annotations

import logging
from typing import Any

from ocpp_core.files import claim_changes, file_record, parse_upload_key, upload_key
from ocpp_core.timefmt import parse_ms

from .observability import logger as lambda_logger
from .runtime import dependencies

logger = logging.getLogger(__name__)

#: an upload that began before its URL expired may complete after it (S3 checks at the start)
EXPIRY_GRACE_MS = 15 * 60 * 1000


def record_object(s3_record: Any, now_ms: int) -> str:
    """Record one notification's object; what happened (``recorded`` or why it was ignored)."""
    s3 = s3_record.get("s3") if isinstance(s3_record, dict) else None
    obj = s3.get("object") if isinstance(s3, dict) else None
    key = obj.get("key") if isinstance(obj, dict) else None
    if not isinstance(key, str):
        logger.warning("S3 notification without an object key: ignored")
        return "malformed"
    parsed = parse_upload_key(key)
    if parsed is None:
        logger.warning("object %s is not an upload key: ignored", key[:300])
        return "not-an-upload"
    store = dependencies().store
    upload = store.find_upload(parsed.upload_id)
    if upload is None or upload.get("chargePointId") != parsed.charge_point_id:
        logger.warning("object %s: no such upload request: ignored", key[:300])
        return "unknown"
    received = parse_ms(s3_record.get("eventTime")) or now_ms
    if received > int(upload.get("urlExpiresAt") or 0) + EXPIRY_GRACE_MS:
        logger.warning("object %s arrived after its upload URL expired: ignored", key[:300])
        return "expired"
    raw_size = obj.get("size") if isinstance(obj, dict) else None
    size = raw_size if isinstance(raw_size, int) else 0
    file_id = parsed.upload_id
    if store.get_file(parsed.charge_point_id, file_id) is not None:
        # the uploads Lambda stored and recorded it (OCPP_UPLOAD_MODE=api), or a redelivery: kept as is
        return "already-recorded"
    # The first notification claims the request (presigned mode: S3 took the file itself).
    store.claim_upload(parsed.charge_point_id, parsed.upload_id, claim_changes(file_id, parsed.name, size, received))
    record = file_record(
        upload,
        name=parsed.name,
        size=size,
        received_at_ms=received,
        storage_key=upload_key(parsed.charge_point_id, parsed.upload_id, parsed.name),
    )
    store.put_file(parsed.charge_point_id, file_id, record)
    logger.info("file %s (%s bytes) received from %s", parsed.name, size, parsed.charge_point_id)
    return "recorded"


def handle(event: Any) -> dict[str, int]:
    records = event.get("Records") if isinstance(event, dict) else None
    outcomes: dict[str, int] = {}
    now = dependencies().clock.now_ms()
    for s3_record in records if isinstance(records, list) else []:
        outcome = record_object(s3_record, now)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


@lambda_logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    return handle(event)
