"""python -m csms_cli against the local HTTP server backed by an in-memory store."""

from __future__ import annotations

import io
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from csms_cli.client import ApiClient, region_from_url
from csms_cli.main import main
from lambdas.runtime import Dependencies
from local_stack.api_server import ApiServer, start_api_server
from local_stack.ports import free_port
from ocpp_core.passwords import verify_password

from .support import connect, from_charger

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def server(deps: Dependencies) -> Iterator[ApiServer]:
    started = start_api_server("127.0.0.1", free_port())
    yield started
    started.stop()


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "csms_cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


def run(server: ApiServer, *args: str) -> tuple[int, str, str]:
    """The CLI in process (quicker than a subprocess for the many small cases)."""
    out, err = io.StringIO(), io.StringIO()
    code = main(["--api-url", server.url, *args], out, err)
    return code, out.getvalue(), err.getvalue()


def test_chargers_list_json_and_table_via_subprocess(server: ApiServer, deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    from_charger(
        deps, "CP1", "ocpp1.6", [2, "b", "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X1"}]
    )
    from_charger(
        deps,
        "CP1",
        "ocpp1.6",
        [2, "s", "StatusNotification", {"connectorId": 1, "errorCode": "NoError", "status": "Available"}],
    )
    deps.store.update_charger("A-LONGER-CHARGER-ID", {"registered": True, "registrationStatus": "Pending"})

    listed = cli("--api-url", server.url, "chargers", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [c["chargePointId"] for c in json.loads(listed.stdout)["chargers"]] == ["A-LONGER-CHARGER-ID", "CP1"]

    table = cli("chargers", "list", env={"OCPP_API_URL": server.url})
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "CHARGER",
        "PROTOCOL",
        "CONNECTED",
        "REGISTRATION",
        "LAST",
        "SEEN",
        "MODEL",
        "CONNECTORS",
    ]
    assert lines[2].split()[:4] == ["CP1", "ocpp1.6", "yes", "Accepted"]
    assert lines[2].rstrip().endswith("Acme X1  1:Available")
    # Aligned: every column starts at the same offset on every line.
    assert lines[0].index("PROTOCOL") == lines[1].index(" - ") + 1 == lines[2].index("ocpp1.6")


def test_unreachable_api_is_one_line_and_a_non_zero_exit() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = cli("--api-url", url, "chargers", "list")
    assert result.returncode == 3
    assert result.stdout == ""
    assert result.stderr == f"error: cannot reach the operator API at {url}: is `make run` running?\n"


def test_register_show_and_errors(server: ApiServer, deps: Dependencies) -> None:
    code, out, _ = run(server, "chargers", "register", "CP9", "--password", "cli-password-123", "--status", "Pending")
    assert code == 0 and "registrationStatus  Pending" in out
    assert verify_password("cli-password-123", deps.store.get_charger("CP9")["passwordHash"])  # type: ignore[index]
    code, out, _ = run(server, "chargers", "show", "CP9", "--json")
    assert code == 0 and json.loads(out)["hasPassword"] is True
    code, out, err = run(server, "chargers", "show", "NOPE")
    assert (code, out, err) == (1, "", "error: Unknown charger NOPE. (HTTP 404)\n")


def test_call_with_wait_and_call_status(server: ApiServer, deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")

    def charger() -> None:
        deadline = time.monotonic() + 5
        while not deps.publisher.messages and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
        uid = json.loads(deps.publisher.messages[0][1])[1]  # type: ignore[attr-defined]
        from_charger(deps, "CP1", "ocpp1.6", [3, uid, {"status": "Accepted"}])

    thread = threading.Thread(target=charger, daemon=True)
    thread.start()
    code, out, err = run(server, "call", "CP1", "Reset", '{"type":"Soft"}', "--wait", "3", "--json")
    thread.join(5)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["status"] == "accepted" and answer["response"] == {"status": "Accepted"}

    code, out, _ = run(server, "call-status", "CP1", answer["uniqueId"])
    assert code == 0 and "status         accepted" in out

    code, out, _ = run(server, "call", "CP1", "ClearCache", "--wait", "0.2")
    assert code == 0 and "pending" in out
    code, _, err = run(server, "call", "CP1", "Reset", '{"type":"Soft"}')
    assert code == 1 and "already has a CSMS call pending" in err and "(HTTP 409)" in err
    deps.clock.advance(60)  # type: ignore[attr-defined]
    uid = json.loads(deps.publisher.messages[-1][1])[1]  # type: ignore[attr-defined]
    code, out, _ = run(server, "call-status", "CP1", uid)
    assert code == 4 and "timeout" in out  # a call that failed is a non-zero exit for scripts

    code, _, err = run(server, "call", "CP1", "Reset", "{not json")
    assert code == 2 and "not valid JSON" in err


def test_id_tags_and_transactions(server: ApiServer, deps: Dependencies) -> None:
    code, out, _ = run(server, "id-tags", "put", "TAG 1", "--expiry", "2099-01-01T00:00:00Z", "--parent", "FLEET")
    assert code == 0 and "effectiveStatus  Accepted" in out
    code, out, _ = run(server, "id-tags", "show", "TAG 1", "--json")
    assert json.loads(out)["parentIdTag"] == "FLEET"
    code, _, err = run(server, "id-tags", "put", "T", "--status", "Whatever")
    assert code == 1 and "status must be one of" in err

    connect(deps, "CP1", "ocpp1.6")
    from_charger(
        deps,
        "CP1",
        "ocpp1.6",
        [
            2,
            "s",
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG 1", "meterStart": 10, "timestamp": "2025-01-01T00:00:00Z"},
        ],
    )
    code, out, _ = run(server, "transactions", "list", "--charger", "CP1")
    assert code == 0
    header, row = out.splitlines()
    assert header.startswith("TRANSACTION  CHARGER")
    assert row.split()[:6] == ["1", "CP1", "1", "TAG", "1", "Active"]


def test_sigv4_signing_for_a_deployed_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com"
    assert region_from_url(url) == "eu-west-1"
    client = ApiClient(url)
    assert client.signs and not ApiClient("http://127.0.0.1:9001").signs and not ApiClient(url, auth="none").signs
    headers = client._sigv4_headers("GET", url + "/chargers", b"", {"accept": "application/json"})
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/execute-api/aws4_request" in headers["Authorization"]
    assert "X-Amz-Date" in headers


def test_chargers_list_follows_every_page_and_stops_at_limit(
    server: ApiServer, deps: Dependencies, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("csms_cli.main.PAGE", 2)  # five chargers: three requests
    ids = [f"CP-{n}" for n in range(5)]
    for cp in ids:
        deps.store.update_charger(cp, {"registered": True})
    code, out, err = run(server, "chargers", "list", "--json")
    assert code == 0, err
    assert [c["chargePointId"] for c in json.loads(out)["chargers"]] == ids
    code, out, err = run(server, "chargers", "list", "--json", "--limit", "3")
    assert code == 0, err
    assert [c["chargePointId"] for c in json.loads(out)["chargers"]] == ids[:3]
    refused = cli("--api-url", server.url, "chargers", "list", "--limit", "0")
    assert refused.returncode == 2 and "--limit" in refused.stderr
