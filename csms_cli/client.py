"""A small HTTP client for the operator API: urllib, plus SigV4 signing for a deployed API.

Signing uses botocore (already a dependency through boto3) and the default credential chain
(environment, profile, SSO, instance or task role). It is imported only when a request has
to be signed, so the CLI stays quick against the local stack.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

DEFAULT_API_URL = "http://127.0.0.1:9001"
API_URL_ENV = "OCPP_API_URL"
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


class CliError(Exception):
    """One line for stderr, and the exit code."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiFailure(CliError):
    """The API answered with an error status."""

    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body
        reason = body.get("error") if isinstance(body, dict) else None
        super().__init__(f"{reason or 'request failed'} (HTTP {status})", exit_code=1)


def segment(value: str) -> str:
    """A path segment, percent-encoded (id tags may hold any printable character)."""
    return quote(value, safe="")


def _is_local(host: str) -> bool:
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def region_from_url(url: str) -> str | None:
    """``abc123.execute-api.eu-west-1.amazonaws.com`` gives ``eu-west-1``."""
    match = _EXECUTE_API_HOST.match((urlsplit(url).hostname or "").lower())
    return match.group(1) if match else None


@dataclass
class ApiClient:
    base_url: str
    #: ``auto``: sign for https URLs that are not on this machine; ``sigv4``: always; ``none``: never
    auth: str = "auto"
    region: str | None = None
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise CliError(f"invalid API URL {self.base_url!r}: expected http(s)://host[:port][/stage]", exit_code=2)

    @property
    def signs(self) -> bool:
        if self.auth == "auto":
            parts = urlsplit(self.base_url)
            return parts.scheme == "https" and not _is_local(parts.hostname or "")
        return self.auth == "sigv4"

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, Any] | None = None,
        *,
        raw: bytes | None = None,
    ) -> Any:
        """The decoded JSON answer (None for ``204 No Content``); :class:`ApiFailure` for an error
        status, :class:`CliError` otherwise. ``raw``: a binary body (a firmware image) instead of JSON."""
        url = self.base_url + path
        params = {k: str(v) for k, v in (query or {}).items() if v is not None}
        if params:
            url += "?" + urlencode(params, quote_via=quote)
        data = raw if raw is not None else json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"accept": "application/json", "user-agent": "csms-cli"}
        if data is not None:
            headers["content-type"] = "application/octet-stream" if raw is not None else "application/json"
        if self.signs:
            headers.update(self._sigv4_headers(method, url, data or b"", headers))
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                if response.status == 204:
                    return None  # no body, by definition (http.client does not read one)
                return _decode(response.read(), response.status)
        except urllib.error.HTTPError as error:
            raise ApiFailure(error.code, _decode(error.read(), error.code, strict=False)) from None
        except urllib.error.URLError as error:
            raise CliError(self._unreachable(error.reason), exit_code=3) from None
        except TimeoutError:
            raise CliError(
                f"no answer from the operator API at {self.base_url} within {self.timeout_s:g} s", 3
            ) from None
        except (ConnectionError, OSError) as error:
            raise CliError(self._unreachable(error), exit_code=3) from None

    def _unreachable(self, reason: Any) -> str:
        hint = ": is `make run` running?" if _is_local(urlsplit(self.base_url).hostname or "") else f" ({reason})"
        return f"cannot reach the operator API at {self.base_url}{hint}"

    def _sigv4_headers(self, method: str, url: str, data: bytes, headers: dict[str, str]) -> dict[str, str]:
        try:
            import botocore.session
            from botocore.auth import SigV4Auth
            from botocore.awsrequest import AWSRequest
            from botocore.exceptions import BotoCoreError
        except ImportError:  # pragma: no cover - botocore comes with boto3
            raise CliError("signing requests for a deployed API needs botocore (pip install boto3)", 2) from None
        session = botocore.session.get_session()
        region = (
            self.region
            or os.environ.get("AWS_REGION")
            or os.environ.get("AWS_DEFAULT_REGION")
            or region_from_url(url)
            or session.get_config_variable("region")
        )
        if not region:
            raise CliError("cannot tell the AWS region of the API: pass --region or set AWS_REGION", exit_code=2)
        try:
            credentials = session.get_credentials()
            frozen = credentials.get_frozen_credentials() if credentials is not None else None
        except BotoCoreError as error:
            raise CliError(f"cannot load AWS credentials: {error}", exit_code=2) from None
        if frozen is None or not frozen.access_key:
            raise CliError(
                "no AWS credentials found to sign the request (set AWS_PROFILE, run 'aws sso login', "
                "or use --auth none for an API without IAM auth)",
                exit_code=2,
            )
        aws_request = AWSRequest(method=method, url=url, data=data, headers=dict(headers))
        SigV4Auth(frozen, "execute-api", region).add_auth(aws_request)
        return {k: v for k, v in aws_request.headers.items() if k.lower().startswith(("authorization", "x-amz-"))}


def download(url: str, destination: Any, timeout_s: float = 30.0) -> int:
    """GET ``url`` (a download URL the API gave: presigned, so never signed here) into the open
    binary file ``destination``, in chunks; the bytes written."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise CliError(f"the API gave a download URL that is not http(s): {url[:100]!r}")
    written = 0
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers={"user-agent": "csms-cli"}), timeout=timeout_s
        ) as r:
            while chunk := r.read(64 * 1024):
                destination.write(chunk)
                written += len(chunk)
    except urllib.error.HTTPError as error:
        raise CliError(f"the download failed: HTTP {error.code} from {urlsplit(url).netloc}") from None
    except (urllib.error.URLError, OSError) as error:
        raise CliError(f"the download failed: {error}", exit_code=3) from None
    return written


def _decode(raw: bytes, status: int, *, strict: bool = True) -> Any:
    if not raw:
        return {}
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        if not strict:
            return {"error": raw.decode("utf-8", errors="replace").strip()[:300] or "no details"}
        raise CliError(f"the operator API answered HTTP {status} with a body that is not JSON") from None
