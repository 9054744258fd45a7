"""What the Lambda handlers share: dependencies built once per execution environment.

Handlers only compose: parse the event, call the domain function, hand the result to an
adapter. Dependencies are built lazily from the environment on the first invocation (so
importing a handler stays cheap) or injected with :func:`configure` by the local stack and
the tests.
"""

from __future__ import annotations

import importlib
import logging
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ocpp_core.config import ProcessorConfig
from ocpp_core.extensions import Extensions
from ocpp_core.ports import CertificateSigner, Clock, IdSource, StateStore

from .files.host import FileHost
from .publisher import Publisher
from .settings import Settings

logger = logging.getLogger(__name__)


class SystemClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class TimeOrderedIds:
    """UUIDv7 (RFC 9562 §5.7): the Unix time in ms in the first 48 bits, then 74 random bits, so
    ids sort by creation time and a charger's calls list newest first by key. Python 3.11's
    ``uuid`` has no ``uuid7`` (3.14 adds it), hence these lines."""

    def new_id(self) -> str:
        ms = time.time_ns() // 1_000_000 & (1 << 48) - 1
        value = ms << 80 | 0x7 << 76 | secrets.randbits(12) << 64 | 0b10 << 62 | secrets.randbits(62)
        return str(uuid.UUID(int=value))


@dataclass
class Dependencies:
    settings: Settings
    store: StateStore
    publisher: Publisher
    clock: Clock
    ids: IdSource
    config: ProcessorConfig
    extensions: Extensions
    #: the chargers' certificate authority (None: SignCertificate is Rejected)
    ca: CertificateSigner | None = None
    #: where chargers upload files and download firmware (None: no upload URLs, no firmware hosting)
    files: FileHost | None = None


def load_extensions(module_names: tuple[str, ...]) -> Extensions:
    """Import each module and merge its ``extensions`` object (later modules win)."""
    merged = Extensions()
    for name in module_names:
        module = importlib.import_module(name)
        found = getattr(module, "extensions", None)
        if not isinstance(found, Extensions):
            raise TypeError(f"extension module {name!r} must define 'extensions = Extensions()'")
        merged = merged.merge(found)
        logger.info("loaded OCPP extensions from %s", name)
    return merged


def build_from_env(settings: Settings | None = None) -> Dependencies:
    import boto3  # deferred: the import is the heaviest part of a cold start

    from .adapters.dynamo import DynamoStore
    from .publisher import IotDataPublisher

    settings = settings or Settings.from_env()
    iot_kwargs: dict[str, Any] = {}
    if settings.iot_data_endpoint:
        iot_kwargs["endpoint_url"] = settings.iot_data_endpoint
    store = DynamoStore(boto3.client("dynamodb"), settings.table_name)
    ca: CertificateSigner | None = None
    if settings.ca_kms_key_id:
        from .certificates.kms_ca import from_kms

        ca = from_kms(store, boto3.client("kms"), settings.ca_kms_key_id)
    files: FileHost | None = None
    if settings.files_bucket:
        from botocore.config import Config

        from .files.s3 import S3FileHost

        # SigV4 presigned URLs (the only kind new regions accept), addressed virtual-host style
        s3 = boto3.client("s3", config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}))
        files = S3FileHost(s3, settings.files_bucket)
    return Dependencies(
        settings=settings,
        store=store,
        publisher=IotDataPublisher(boto3.client("iot-data", **iot_kwargs)),
        clock=SystemClock(),
        ids=TimeOrderedIds(),
        config=settings.processor_config(),
        extensions=load_extensions(settings.extensions),
        ca=ca,
        files=files,
    )


_deps: Dependencies | None = None


def configure(deps: Dependencies | None) -> None:
    """Inject dependencies (local stack, tests); None resets to building from the environment."""
    global _deps
    _deps = deps


def dependencies() -> Dependencies:
    global _deps
    if _deps is None:
        _deps = build_from_env()
    return _deps
