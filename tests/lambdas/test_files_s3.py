"""S3 as the file host, against moto's threaded server on a free port (presigned URLs are used by a
real HTTP client, which in-process moto could not answer), and the ObjectCreated Lambda."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote_plus

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

from lambdas import files_received, runtime
from lambdas.files.s3 import S3FileHost
from lambdas.runtime import Dependencies
from lambdas.settings import Settings
from local_stack.ports import free_port
from ocpp_core import files
from ocpp_core.memory_store import InMemoryStore
from tests.fakes import START_MS, FakeClock

from .support import REGION

BUCKET = "ocpp-files-test"


@pytest.fixture
def s3(aws_env: None) -> Iterator[Any]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        client = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name=REGION,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        client.create_bucket(Bucket=BUCKET)
        yield client
    finally:
        server.stop()


@pytest.fixture
def deps() -> Iterator[Dependencies]:
    settings = Settings(files_bucket=BUCKET)
    injected = Dependencies(
        settings=settings,
        store=InMemoryStore(),
        publisher=None,  # type: ignore[arg-type]  # nothing is published here
        clock=FakeClock(),
        ids=None,  # type: ignore[arg-type]
        config=settings.processor_config(),
        extensions=None,  # type: ignore[arg-type]
    )
    runtime.configure(injected)
    yield injected
    runtime.configure(None)


def _http(method: str, url: str, data: bytes | None = None) -> tuple[int, bytes]:
    # urllib would send a body as a form (x-www-form-urlencoded), which moto's server parses away
    headers = {"content-type": "application/octet-stream"} if data is not None else {}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.read()


def _upload_request(deps: Dependencies, upload_id: str, ttl_s: int = 3600) -> dict[str, Any]:
    record = files.upload_record(
        "CP:1", upload_id, kind="diagnostics", unique_id="call-1", request_id=None,
        created_at_ms=START_MS, ttl_s=ttl_s, url="(presigned)",
    )  # fmt: skip
    deps.store.create_upload("CP:1", upload_id, record)
    return record


def _notification(key: str, size: int, at: str = "2025-06-15T15:07:00.000Z") -> dict[str, Any]:
    """An S3 ObjectCreated:Put notification, the key URL-encoded as S3 sends it."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventTime": at,
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": BUCKET}, "object": {"key": quote_plus(key, safe="/"), "size": size}},
            }
        ]
    }


def test_presigned_put_then_the_notification_records_the_file(s3: Any, deps: Dependencies) -> None:
    host = S3FileHost(s3, BUCKET)
    upload_id = "1750000000000abc123"
    _upload_request(deps, upload_id)
    name = files.DEFAULT_NAMES["diagnostics"]
    url = host.upload_url("CP:1", upload_id, name, 600)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=600" in url
    assert _http("PUT", url, b"diagnostics of CP:1\n")[0] == 200
    key = files.upload_key("CP:1", upload_id, name)
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"diagnostics of CP:1\n"

    event = _notification(key, 20)
    assert files_received.handle(event) == {"recorded": 1}
    assert files_received.handle(event) == {"already-recorded": 1}  # at least once: a redelivery keeps it
    record = deps.store.get_file("CP:1", upload_id)
    assert record == {
        "chargePointId": "CP:1",
        "fileId": upload_id,
        "name": name,
        "size": 20,
        "receivedAt": 1_750_000_020_000,
        "uploadId": upload_id,
        "uniqueId": "call-1",
        "kind": "diagnostics",
        "storageKey": key,
    }
    assert deps.store.find_upload(upload_id)["fileId"] == upload_id
    # the operator's download link: a presigned GET
    assert _http("GET", host.download_url(key, name, 60)) == (200, b"diagnostics of CP:1\n")


def test_unknown_expired_and_foreign_objects_are_ignored(s3: Any, deps: Dependencies) -> None:
    _upload_request(deps, "1750000000000old", ttl_s=60)
    late = _notification("uploads/CP:1/1750000000000old/diagnostics.log", 1, at="2025-06-16T00:00:00Z")
    assert files_received.handle(late) == {"expired": 1}
    assert files_received.handle(_notification("uploads/CP:1/1750000000000none/a.log", 1)) == {"unknown": 1}
    assert files_received.handle(_notification("uploads/CP:2/1750000000000old/a.log", 1)) == {"unknown": 1}
    assert files_received.handle(_notification("uploads/CP:1/x/../../a", 1)) == {"not-an-upload": 1}
    assert files_received.handle(_notification("firmware/abc/fw.bin", 1)) == {"not-an-upload": 1}
    assert files_received.handle({"Records": [{"s3": {}}, "garbage"]}) == {"malformed": 2}
    assert files_received.handle({}) == {}
    assert deps.store.list_files("CP:1") == []


def test_firmware_put_and_presigned_get(s3: Any) -> None:
    host = S3FileHost(s3, BUCKET)
    image = bytes(range(256)) * 10
    key = host.store_firmware("1750000000000fw", "fw 1.2.bin", image)
    assert key == "firmware/1750000000000fw/fw 1.2.bin"
    assert _http("GET", host.download_url(key, "fw 1.2.bin", 60)) == (200, image)


def test_build_from_env_builds_the_s3_host_when_the_bucket_is_set(aws_env: None) -> None:
    deps = runtime.build_from_env(Settings(files_bucket=BUCKET))
    assert isinstance(deps.files, S3FileHost) and deps.files.bucket == BUCKET
    assert runtime.build_from_env(Settings()).files is None
    assert Settings.from_env({"OCPP_FILES_BUCKET": " b ", "OCPP_UPLOAD_URL_TTL_S": "120"}).upload_url_ttl_s == 120
