"""The uploads Lambda (``lambdas.uploads``) on moto: S3 and DynamoDB through the adapter.

The same answers as the local file server: POST multipart and PUT, with and without a name after
the token, one file per URL, refusals that store nothing; and the operator API filling
GetDiagnostics with its own ``https://<domain>/upload/<token>`` (``OCPP_UPLOAD_MODE=api``) or an S3
presigned PUT (``presigned``).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import boto3
import pytest

from lambdas import operator_api, runtime, uploads
from lambdas.files.host import new_file_id
from lambdas.files.s3 import S3FileHost
from lambdas.runtime import Dependencies
from lambdas.settings import UPLOAD_MODE_PRESIGNED, Settings
from ocpp_core import files, keys
from ocpp_core.config import UnknownChargerPolicy
from tests.api.support import connect
from tests.fakes import FakeClock

from .support import REGION, TABLE, FakeLambdaContext, moto_dependencies, raw_item

BUCKET = "ocpp-uploads-test"
LIMIT = 1024
DOMAIN = "abc123.execute-api.us-east-1.amazonaws.com"
BOUNDARY = "xYzBoundary"


@pytest.fixture
def s3(moto: None) -> Any:
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


def _deps(clock: FakeClock, s3: Any, **settings: Any) -> Dependencies:
    deps = moto_dependencies(
        clock,
        Settings(
            table_name=TABLE,
            unknown_chargers=UnknownChargerPolicy.ACCEPT,
            files_bucket=BUCKET,
            upload_max_bytes=LIMIT,
            upload_url_ttl_s=600,
            **settings,
        ),
    )
    deps.files = S3FileHost(s3, BUCKET)
    return deps


@pytest.fixture
def deps(dynamodb: Any, s3: Any, clock: FakeClock) -> Iterator[Dependencies]:
    injected = _deps(clock, s3)
    runtime.configure(injected)
    yield injected
    runtime.configure(None)


def _request(deps: Dependencies, cp: str = "CP1", kind: str = files.KIND_DIAGNOSTICS) -> str:
    """An upload request as the operator API makes it; its token."""
    now = deps.clock.now_ms()
    upload_id = new_file_id(now)
    record = files.upload_record(
        cp, upload_id, kind=kind, unique_id="call-1", request_id=7, created_at_ms=now, ttl_s=600, url="x"
    )
    deps.store.create_upload(cp, upload_id, record)
    return upload_id


def _event(method: str, path: str, body: bytes = b"", *, content_type: str | None = None, b64: bool = True) -> Any:
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": f"{method} /upload/{{token}}",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": content_type} if content_type else {},
        "requestContext": {"http": {"method": method, "path": path}, "stage": "$default", "domainName": DOMAIN},
        "isBase64Encoded": b64,
    }
    if body:
        event["body"] = base64.b64encode(body).decode() if b64 else body.decode()
    return event


def _multipart(data: bytes, filename: str = "station.log", *, field_first: bool = True) -> bytes:
    before = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'.encode()
    part = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return (before if field_first else b"") + part + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def _call(event: Any) -> tuple[int, dict[str, Any]]:
    response = uploads.handler(event, FakeLambdaContext())
    assert response["headers"]["content-type"] == "application/json"
    return response["statusCode"], json.loads(response["body"])


def _objects(s3: Any) -> dict[str, bytes]:
    listed = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listed}


def _file_item(dynamodb: Any, token: str, cp: str = "CP1") -> Any:
    return raw_item(dynamodb, keys.charger_pk(cp), keys.file_sk(token))


def _nothing_stored(deps: Dependencies, s3: Any, dynamodb: Any, token: str) -> None:
    assert _objects(s3) == {}
    assert _file_item(dynamodb, token) is None
    upload = deps.store.find_upload(token)
    assert upload is not None and "fileId" not in upload


# --- accepted -------------------------------------------------------------------------------
@pytest.mark.parametrize("b64", [True, False])
@pytest.mark.parametrize("suffix", ["", "/ignored.txt"])
def test_post_multipart_stores_the_first_part_with_a_filename(
    deps: Dependencies, s3: Any, dynamodb: Any, b64: bool, suffix: str
) -> None:
    token = _request(deps)
    content = b"line 1\nline 2\n"
    body = _multipart(content)
    status, answer = _call(
        _event(
            "POST", f"/upload/{token}{suffix}", body, content_type=f"multipart/form-data; boundary={BOUNDARY}", b64=b64
        )
    )
    assert status == 201, answer
    assert answer == {"fileId": token, "name": "station.log", "size": len(content)}
    assert _objects(s3) == {f"uploads/CP1/{token}/station.log": content}
    [record] = deps.store.list_files("CP1")
    assert record["storageKey"] == f"uploads/CP1/{token}/station.log" and record["requestId"] == 7
    assert (record["uniqueId"], record["kind"], record["size"]) == ("call-1", "diagnostics", len(content))
    assert deps.store.find_upload(token)["fileId"] == token  # type: ignore[index]


@pytest.mark.parametrize(
    ("suffix", "name"),
    [("", "diagnostics.log"), ("/CP1-diag.zip", "CP1-diag.zip"), ("/" + quote("rapport été.txt"), "rapport été.txt")],
)
def test_put_stores_the_raw_body_under_the_urls_name_or_the_default(
    deps: Dependencies, s3: Any, suffix: str, name: str
) -> None:
    token = _request(deps)
    content = bytes(range(256)) * 3
    status, answer = _call(_event("PUT", f"/upload/{token}{suffix}", content))
    assert (status, answer) == (201, {"fileId": token, "name": name, "size": len(content)})
    assert _objects(s3) == {f"uploads/CP1/{token}/{name}": content}


def test_a_log_upload_defaults_to_log_log_and_a_named_stage_prefix_is_ignored(deps: Dependencies, s3: Any) -> None:
    token = _request(deps, kind=files.KIND_LOG)
    event = _event("PUT", f"/prod/upload/{token}", b"log", b64=False)
    event["requestContext"]["stage"] = "prod"
    assert _call(event) == (201, {"fileId": token, "name": "log.log", "size": 3})


def test_exactly_the_limit_is_taken(deps: Dependencies, s3: Any) -> None:
    token = _request(deps)
    assert _call(_event("PUT", f"/upload/{token}", b"x" * LIMIT))[0] == 201


# --- refused, nothing stored ----------------------------------------------------------------
def test_a_second_upload_to_the_same_url_is_409(deps: Dependencies, s3: Any, dynamodb: Any) -> None:
    token = _request(deps)
    assert _call(_event("PUT", f"/upload/{token}/first.log", b"first"))[0] == 201
    status, answer = _call(_event("PUT", f"/upload/{token}/second.log", b"second"))
    assert status == 409 and "one file per URL" in answer["error"]
    assert _objects(s3) == {f"uploads/CP1/{token}/first.log": b"first"}
    assert [r["name"] for r in deps.store.list_files("CP1")] == ["first.log"]


def test_an_expired_url_is_410(deps: Dependencies, s3: Any, dynamodb: Any, clock: FakeClock) -> None:
    token = _request(deps)
    clock.advance(601)
    status, answer = _call(_event("PUT", f"/upload/{token}", b"late"))
    assert status == 410 and answer == {"error": "This upload URL has expired."}
    _nothing_stored(deps, s3, dynamodb, token)


@pytest.mark.parametrize("token", ["1750000000000aaaaaaaaaaaaaaaaaaaa", "not-alnum", "x" * 65])
def test_an_unknown_token_is_404(deps: Dependencies, s3: Any, token: str) -> None:
    status, answer = _call(_event("PUT", f"/upload/{token}", b"data"))
    assert status == 404 and answer["error"] == "No upload was requested at this URL."
    assert _objects(s3) == {}


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_too_large_is_413(deps: Dependencies, s3: Any, dynamodb: Any, method: str) -> None:
    token = _request(deps)
    if method == "PUT":
        event = _event("PUT", f"/upload/{token}", b"x" * (LIMIT + 1))
    else:
        body = _multipart(b"x" * (LIMIT + 1))
        event = _event("POST", f"/upload/{token}", body, content_type=f"multipart/form-data; boundary={BOUNDARY}")
    status, answer = _call(event)
    assert status == 413 and answer == {"error": f"The file is larger than {LIMIT} bytes."}
    _nothing_stored(deps, s3, dynamodb, token)


def test_a_body_far_beyond_the_limit_is_413_before_decoding(deps: Dependencies, s3: Any, dynamodb: Any) -> None:
    token = _request(deps)
    event = _event("PUT", f"/upload/{token}", b"x")
    event["body"] = "!" * (LIMIT * 2)  # not even base64: the size decides first
    assert _call(event)[0] == 413
    _nothing_stored(deps, s3, dynamodb, token)


@pytest.mark.parametrize(
    "url_name",
    ["..", quote("../etc", safe=""), quote("a\\b"), quote("a\x00b"), quote("a\nb"), "x" * 256, "%2e%2e", "%ff"],
)
def test_a_bad_name_in_the_url_is_400(deps: Dependencies, s3: Any, dynamodb: Any, url_name: str) -> None:
    token = _request(deps)
    status, answer = _call(_event("PUT", f"/upload/{token}/{url_name}", b"data"))
    assert status == 400 and answer["error"].startswith(("Invalid file name", "The URL has")), answer
    _nothing_stored(deps, s3, dynamodb, token)


@pytest.mark.parametrize("filename", ["../../etc/passwd", "a/b.log", "a\\b.log", "..", ""])
def test_a_bad_multipart_filename_is_400(deps: Dependencies, s3: Any, dynamodb: Any, filename: str) -> None:
    token = _request(deps)
    body = _multipart(b"data", filename)
    event = _event("POST", f"/upload/{token}", body, content_type=f"multipart/form-data; boundary={BOUNDARY}")
    status, answer = _call(event)
    assert status == 400 and answer["error"].startswith("Invalid file name"), answer
    _nothing_stored(deps, s3, dynamodb, token)


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("text/plain", b"data", "must be multipart/form-data"),
        ("multipart/form-data", b"data", "no valid boundary"),
        (f"multipart/form-data; boundary={BOUNDARY}", b"no boundary here", "no boundary line"),
        (f"multipart/form-data; boundary={BOUNDARY}", f"--{BOUNDARY}--\r\n".encode(), "no part with a filename"),
    ],
)
def test_bad_multipart_is_400(
    deps: Dependencies, s3: Any, dynamodb: Any, content_type: str, body: bytes, message: str
) -> None:
    token = _request(deps)
    status, answer = _call(_event("POST", f"/upload/{token}", body, content_type=content_type))
    assert status == 400 and message in answer["error"], answer
    _nothing_stored(deps, s3, dynamodb, token)


def test_invalid_base64_is_400_and_other_methods_405(deps: Dependencies, s3: Any, dynamodb: Any) -> None:
    token = _request(deps)
    event = _event("PUT", f"/upload/{token}", b"x")
    event["body"] = "***"
    assert _call(event) == (400, {"error": "The request body is not valid base64."})
    status, answer = _call(_event("GET", f"/upload/{token}"))
    assert status == 405 and "use POST or PUT" in answer["error"]
    assert _call({"rawPath": 5})[0] == 400
    _nothing_stored(deps, s3, dynamodb, token)


def test_a_storage_failure_is_503_not_an_exception(deps: Dependencies, s3: Any) -> None:
    token = _request(deps)
    deps.files = S3FileHost(s3, "no-such-bucket")
    status, answer = _call(_event("PUT", f"/upload/{token}", b"data"))
    assert status == 503 and "could not be stored" in answer["error"]
    assert deps.store.list_files("CP1") == []


# --- the operator API's upload URL ------------------------------------------------------------
def _get_diagnostics() -> dict[str, Any]:
    body = json.dumps({"action": "GetDiagnostics", "payload": {}})
    return {
        "version": "2.0",
        "rawPath": "/chargers/CP1/calls",
        "rawQueryString": "",
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": "POST"}, "stage": "$default", "domainName": DOMAIN},
        "body": body,
        "isBase64Encoded": False,
    }


def test_the_api_gives_its_own_upload_url_which_the_uploads_function_serves(
    deps: Dependencies, s3: Any, dynamodb: Any
) -> None:
    connect(deps, "CP1", "ocpp1.6")
    response = operator_api.handle(_get_diagnostics())
    assert response["statusCode"] == 202, response
    location = json.loads(response["body"])["payload"]["location"]
    [upload] = deps.store.list_uploads("CP1")
    assert location == f"https://{DOMAIN}/upload/{upload['uploadId']}" == upload["url"]
    # the charger POSTs multipart to it, with its file name appended
    body = _multipart(b"diagnostics bytes")
    event = _event(
        "POST", urlsplit(location).path + "/CP1.zip", body, content_type=f"multipart/form-data; boundary={BOUNDARY}"
    )
    assert _call(event) == (201, {"fileId": upload["uploadId"], "name": "station.log", "size": 17})
    assert _file_item(dynamodb, upload["uploadId"]) is not None


def test_presigned_mode_gives_an_s3_presigned_put(dynamodb: Any, s3: Any, clock: FakeClock) -> None:
    injected = _deps(clock, s3, upload_mode=UPLOAD_MODE_PRESIGNED)
    runtime.configure(injected)
    try:
        connect(injected, "CP1", "ocpp1.6")
        response = operator_api.handle(_get_diagnostics())
        assert response["statusCode"] == 202, response
        location = json.loads(response["body"])["payload"]["location"]
    finally:
        runtime.configure(None)
    [upload] = injected.store.list_uploads("CP1")
    parts = urlsplit(location)
    assert parts.scheme == "https" and BUCKET in location and DOMAIN not in location
    assert parts.path.endswith(f"uploads/CP1/{upload['uploadId']}/diagnostics.log")
    assert "X-Amz-Signature=" in parts.query or "Signature=" in parts.query


def test_the_mode_setting_is_checked() -> None:
    assert Settings.from_env({}).upload_mode == "api"
    assert Settings.from_env({"OCPP_UPLOAD_MODE": "Presigned"}).upload_mode == "presigned"
    assert Settings.from_env({}).upload_max_bytes == 4 * 1024 * 1024
    from lambdas.settings import SettingsError

    with pytest.raises(SettingsError, match="OCPP_UPLOAD_MODE='ftp'"):
        Settings.from_env({"OCPP_UPLOAD_MODE": "ftp"})
    with pytest.raises(SettingsError, match="OCPP_UPLOAD_MAX_BYTES"):
        Settings.from_env({"OCPP_UPLOAD_MAX_BYTES": str(5 * 1024 * 1024)})


def test_a_named_stage_is_kept_in_the_upload_url(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    event = _get_diagnostics()
    event["rawPath"] = "/beta/chargers/CP1/calls"
    event["requestContext"]["stage"] = "beta"
    response = operator_api.handle(event)
    assert response["statusCode"] == 202, response
    [upload] = deps.store.list_uploads("CP1")
    assert json.loads(response["body"])["payload"]["location"] == f"https://{DOMAIN}/beta/upload/{upload['uploadId']}"


@pytest.mark.parametrize("domain", [None, "evil.example/x", "a b", ""])
def test_without_a_usable_domain_the_api_falls_back_to_a_presigned_put(deps: Dependencies, domain: Any) -> None:
    connect(deps, "CP1", "ocpp1.6")
    event = _get_diagnostics()
    event["requestContext"]["domainName"] = domain
    response = operator_api.handle(event)
    assert response["statusCode"] == 202, response
    location = json.loads(response["body"])["payload"]["location"]
    assert BUCKET in location and "/uploads/CP1/" in location
