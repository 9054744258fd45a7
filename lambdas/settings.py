"""Lambda configuration: every environment variable name in one place.

Resolution order: explicit argument (tests, local stack), then environment, then default.
A bad value fails with one line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from ocpp_core.config import ProcessorConfig, UnknownChargerPolicy
from ocpp_core.topics import DEFAULT_ROOT, TOPIC_ROOT_ENV, TopicRootError, Topics

TABLE_NAME = "OCPP_TABLE_NAME"
UNKNOWN_CHARGERS = "OCPP_UNKNOWN_CHARGERS"
HEARTBEAT_INTERVAL = "OCPP_HEARTBEAT_INTERVAL"
BOOT_RETRY_INTERVAL = "OCPP_BOOT_RETRY_INTERVAL"
IDEMPOTENCY_TTL = "OCPP_IDEMPOTENCY_TTL"
EVENT_TTL_DAYS = "OCPP_EVENT_TTL_DAYS"
CALL_TIMEOUT = "OCPP_CALL_TIMEOUT"
MAX_WAIT = "OCPP_MAX_WAIT"
EXTENSIONS = "OCPP_EXTENSIONS"
DATA_TRANSFER_VENDORS = "OCPP_DATA_TRANSFER_VENDORS"
IOT_DATA_ENDPOINT = "IOT_DATA_ENDPOINT"
#: the stage's topic root (DESIGN §8); the name is ocpp_core.topics' contract
TOPIC_ROOT = TOPIC_ROOT_ENV
#: the stage name: the ``Stage`` dimension of the handlers' metrics
STAGE = "OCPP_STAGE"
#: the KMS key (id or ARN) of the chargers' CA on AWS; unset: no CA (SignCertificate is Rejected)
CA_KMS_KEY = "OCPP_CA_KMS_KEY_ID"
DEFAULT_STAGE = "local"
#: files (DESIGN §11): the stage's bucket on AWS (unset: no uploads to the CSMS, no firmware hosting)
FILES_BUCKET = "OCPP_FILES_BUCKET"
#: the local stack's file server port (local_stack reads it; default 9003)
FILES_PORT = "OCPP_FILES_PORT"
FILES_MAX_BYTES = "OCPP_FILES_MAX_BYTES"
UPLOAD_URL_TTL = "OCPP_UPLOAD_URL_TTL_S"
FIRMWARE_MAX_BYTES = "OCPP_FIRMWARE_MAX_BYTES"
DEFAULT_FILES_PORT = 9003
DEFAULT_FILES_MAX_BYTES = 50 * 1024 * 1024
#: Lambda's synchronous payload limit is 6 MB and API Gateway sends a binary body base64 (4/3):
#: 4 MiB of firmware is 5.3 MiB encoded (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html)
DEFAULT_FIRMWARE_MAX_BYTES = 4 * 1024 * 1024
#: where chargers upload on AWS: ``api`` (the operator API's own ``/upload/<token>``, served by
#: ``lambdas.uploads``: POST multipart or PUT, one file per URL) or ``presigned`` (an S3 presigned
#: PUT: only a PUT at exactly that URL, reusable until it expires, but as large as S3 takes)
UPLOAD_MODE = "OCPP_UPLOAD_MODE"
UPLOAD_MODE_API = "api"
UPLOAD_MODE_PRESIGNED = "presigned"
UPLOAD_MODES = (UPLOAD_MODE_API, UPLOAD_MODE_PRESIGNED)
#: the largest file ``lambdas.uploads`` takes: the same 4 MiB as firmware, for the same reason
#: (https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html: 6 MB request payload)
UPLOAD_MAX_BYTES = "OCPP_UPLOAD_MAX_BYTES"
DEFAULT_UPLOAD_MAX_BYTES = 4 * 1024 * 1024

ALL_VARIABLES = (
    TABLE_NAME,
    UNKNOWN_CHARGERS,
    HEARTBEAT_INTERVAL,
    BOOT_RETRY_INTERVAL,
    IDEMPOTENCY_TTL,
    EVENT_TTL_DAYS,
    CALL_TIMEOUT,
    MAX_WAIT,
    EXTENSIONS,
    DATA_TRANSFER_VENDORS,
    IOT_DATA_ENDPOINT,
    TOPIC_ROOT,
    STAGE,
    CA_KMS_KEY,
    FILES_BUCKET,
    FILES_MAX_BYTES,
    UPLOAD_URL_TTL,
    FIRMWARE_MAX_BYTES,
    UPLOAD_MODE,
    UPLOAD_MAX_BYTES,
)


class SettingsError(ValueError):
    pass


def _int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a whole number") from None
    if not low <= value <= high:
        raise SettingsError(f"{name}={value} is out of range ({low}..{high})")
    return value


def _topic_root(environ: Mapping[str, str]) -> str:
    raw = environ.get(TOPIC_ROOT, "").strip() or DEFAULT_ROOT
    try:
        return Topics(raw).root
    except TopicRootError as exc:
        raise SettingsError(f"{TOPIC_ROOT}={raw!r}: {exc}") from None


def _names(raw: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (raw or "").split(",") if part.strip())


@dataclass(frozen=True, slots=True)
class Settings:
    table_name: str = "ocpp-csms"
    unknown_chargers: UnknownChargerPolicy = UnknownChargerPolicy.REJECT
    heartbeat_interval_s: int = 300
    boot_retry_interval_s: int = 60
    idempotency_ttl_s: int = 24 * 3600
    event_ttl_days: int = 90
    call_timeout_s: int = 30
    #: ``?wait=`` upper bound: API Gateway answers 504 after 29 s, so stay below it.
    max_wait_s: int = 25
    extensions: tuple[str, ...] = ()
    data_transfer_vendors: tuple[str, ...] = ()
    iot_data_endpoint: str | None = None
    topic_root: str = DEFAULT_ROOT
    stage: str = DEFAULT_STAGE
    ca_kms_key_id: str | None = None
    files_bucket: str | None = None
    files_max_bytes: int = DEFAULT_FILES_MAX_BYTES
    #: a presigned S3 URL made with a role's temporary credentials also ends with them
    upload_url_ttl_s: int = 3600
    firmware_max_bytes: int = DEFAULT_FIRMWARE_MAX_BYTES
    upload_mode: str = UPLOAD_MODE_API
    upload_max_bytes: int = DEFAULT_UPLOAD_MAX_BYTES

    @property
    def topics(self) -> Topics:
        """The stage's MQTT topics (replies go to ``topics.outbound(cp)``)."""
        return Topics(self.topic_root)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        policy_raw = env.get(UNKNOWN_CHARGERS, UnknownChargerPolicy.REJECT.value).strip().lower()
        try:
            policy = UnknownChargerPolicy(policy_raw)
        except ValueError:
            choices = ", ".join(p.value for p in UnknownChargerPolicy)
            raise SettingsError(f"{UNKNOWN_CHARGERS}={policy_raw!r} is not one of {choices}") from None
        upload_mode = env.get(UPLOAD_MODE, "").strip().lower() or UPLOAD_MODE_API
        if upload_mode not in UPLOAD_MODES:
            raise SettingsError(f"{UPLOAD_MODE}={upload_mode!r} is not one of {', '.join(UPLOAD_MODES)}")
        return cls(
            table_name=env.get(TABLE_NAME, "").strip() or cls.table_name,
            unknown_chargers=policy,
            heartbeat_interval_s=_int(env, HEARTBEAT_INTERVAL, 300, 1, 86400),
            boot_retry_interval_s=_int(env, BOOT_RETRY_INTERVAL, 60, 1, 86400),
            idempotency_ttl_s=_int(env, IDEMPOTENCY_TTL, 24 * 3600, 60, 30 * 86400),
            event_ttl_days=_int(env, EVENT_TTL_DAYS, 90, 0, 3650),
            call_timeout_s=_int(env, CALL_TIMEOUT, 30, 1, 3600),
            max_wait_s=_int(env, MAX_WAIT, 25, 0, 900),
            extensions=_names(env.get(EXTENSIONS)),
            data_transfer_vendors=_names(env.get(DATA_TRANSFER_VENDORS)),
            iot_data_endpoint=env.get(IOT_DATA_ENDPOINT, "").strip() or None,
            topic_root=_topic_root(env),
            stage=env.get(STAGE, "").strip() or DEFAULT_STAGE,
            ca_kms_key_id=env.get(CA_KMS_KEY, "").strip() or None,
            files_bucket=env.get(FILES_BUCKET, "").strip() or None,
            files_max_bytes=_int(env, FILES_MAX_BYTES, DEFAULT_FILES_MAX_BYTES, 1, 5 * 1024**3),
            # SigV4 presigned URLs last at most 7 days (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html)
            upload_url_ttl_s=_int(env, UPLOAD_URL_TTL, 3600, 60, 7 * 86400),
            firmware_max_bytes=_int(env, FIRMWARE_MAX_BYTES, DEFAULT_FIRMWARE_MAX_BYTES, 1, 1024**3),
            upload_mode=upload_mode,
            # more would not fit in Lambda's request payload once base64-encoded with its framing
            upload_max_bytes=_int(env, UPLOAD_MAX_BYTES, DEFAULT_UPLOAD_MAX_BYTES, 1, DEFAULT_UPLOAD_MAX_BYTES),
        )

    def processor_config(self) -> ProcessorConfig:
        return ProcessorConfig(
            heartbeat_interval_s=self.heartbeat_interval_s,
            boot_retry_interval_s=self.boot_retry_interval_s,
            unknown_chargers=self.unknown_chargers,
            idempotency_ttl_s=self.idempotency_ttl_s,
            event_ttl_s=self.event_ttl_days * 86400 if self.event_ttl_days > 0 else None,
            data_transfer_vendors=frozenset(self.data_transfer_vendors),
        )
