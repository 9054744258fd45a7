"""python -m csms_cli against the local HTTP server backed by an in-memory store."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from csms_cli.client import ApiClient, region_from_url
from lambdas.runtime import Dependencies
from local_stack.api_server import ApiServer, start_api_server
from local_stack.ports import free_port
from ocpp_core.passwords import verify_password

from .support import connect, from_charger, run_cli

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
    return run_cli(server.url, *args)


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


# --- reservations, call history, id-tag removal, stale transactions ------------------------


def published(deps: Dependencies) -> list[list[object]]:
    """The frames the CSMS sent to chargers, oldest first."""
    return [json.loads(message[1]) for message in deps.publisher.messages]  # type: ignore[attr-defined]


def answer_next_call(deps: Dependencies, cp: str, protocol: str, response: dict[str, object]) -> threading.Thread:
    """A charger that answers the next CALL the CSMS publishes (started before the CLI sends it)."""
    seen = len(deps.publisher.messages)  # type: ignore[attr-defined]

    def charger() -> None:
        deadline = time.monotonic() + 5
        while len(deps.publisher.messages) <= seen and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
        uid = published(deps)[seen][1]
        from_charger(deps, cp, protocol, [3, uid, response])

    thread = threading.Thread(target=charger, daemon=True)
    thread.start()
    return thread


def table_rows(text: str) -> list[list[str]]:
    """A table's lines cut at its header's column offsets (cells may hold spaces)."""
    lines = text.splitlines()
    header = lines[0]
    starts = [0] + [i + 2 for i in range(len(header) - 2) if header[i : i + 2] == "  " and header[i + 2] != " "]
    ends = [*starts[1:], None]
    return [[line[a:b].strip() for a, b in zip(starts, ends, strict=True)] for line in lines]


def fields(text: str) -> dict[str, str]:
    """``key  value`` lines (``output.key_values``) as a dict."""
    return dict(line.split(None, 1) if " " in line else (line, "") for line in text.splitlines() if line)


def test_reservations_create_list_show_cancel_1_6(server: ApiServer, deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    charger = answer_next_call(deps, "CP1", "ocpp1.6", {"status": "Accepted"})
    code, out, err = run(
        server,
        "reservations",
        "create",
        "CP1",
        "--id-tag",
        "TAG1",
        "--connector",
        "1",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--parent-id-tag",
        "FLEET",
        "--wait",
        "3",
        "--json",
    )
    charger.join(5)
    assert code == 0, err
    answer = json.loads(out)
    reservation, call = answer["reservation"], answer["call"]
    rid = reservation["reservationId"]
    assert isinstance(rid, int)
    assert reservation["chargePointId"] == "CP1" and reservation["connectorId"] == 1
    assert reservation["idTag"] == "TAG1" and reservation["parentIdTag"] == "FLEET"
    assert reservation["status"] == "Accepted" and reservation["uniqueId"] == call["uniqueId"]
    assert call["action"] == "ReserveNow" and call["status"] == "accepted"
    frame = published(deps)[-1]
    assert frame[2] == "ReserveNow"
    sent = frame[3]
    assert isinstance(sent, dict)
    assert (sent["reservationId"], sent["connectorId"], sent["idTag"]) == (rid, 1, "TAG1")
    assert sent["parentIdTag"] == "FLEET" and sent["expiryDate"].startswith("2099-01-01T00:00:00")

    code, out, err = run(server, "reservations", "list", "CP1")
    assert code == 0, err
    header, row = table_rows(out)
    assert header == ["RESERVATION", "CHARGER", "CONNECTOR", "ID TAG", "STATUS", "EXPIRES", "CREATED"]
    assert row[:5] == [str(rid), "CP1", "1", "TAG1", "Accepted"]
    assert row[5].startswith("2099-01-01T00:00:00") and row[6].endswith("Z")
    code, out, _ = run(server, "reservations", "list", "CP1", "--status", "Cancelled", "--json")
    assert code == 0 and json.loads(out) == {"reservations": [], "count": 0}

    code, out, _ = run(server, "reservations", "show", str(rid))
    assert code == 0
    shown = fields(out)
    assert (shown["reservationId"], shown["status"], shown["idTag"]) == (str(rid), "Accepted", "TAG1")
    code, out, _ = run(server, "reservations", "show", str(rid), "--json")
    assert json.loads(out)["uniqueId"] == call["uniqueId"]

    charger = answer_next_call(deps, "CP1", "ocpp1.6", {"status": "Accepted"})
    code, out, err = run(server, "reservations", "cancel", str(rid), "--wait", "3")
    charger.join(5)
    assert code == 0, err
    assert published(deps)[-1][2:] == ["CancelReservation", {"reservationId": rid}]
    reservation_part, call_part = out.split("\ncall:\n")
    assert fields(reservation_part)["status"] == "Cancelled"
    assert fields(reservation_part)["cancelUniqueId"] == fields(call_part)["uniqueId"]
    assert (fields(call_part)["action"], fields(call_part)["status"]) == ("CancelReservation", "accepted")

    code, _, err = run(server, "reservations", "cancel", str(rid))
    assert code == 1 and "(HTTP 409)" in err  # a second cancel
    code, out, err = run(server, "reservations", "cancel", "999999")
    assert code == 1 and out == "" and err.startswith("error: ") and err.endswith("(HTTP 404)\n")
    code, _, err = run(server, "reservations", "show", "999999")
    assert code == 1 and "(HTTP 404)" in err
    code, _, err = run(server, "reservations", "list", "NOPE")
    assert (code, err) == (1, "error: Unknown charger NOPE. (HTTP 404)\n")


def test_reservation_expires_in_2_x_table_and_errors(server: ApiServer, deps: Dependencies) -> None:
    connect(deps, "CS2", "ocpp2.0.1")
    before = time.time()
    code, out, err = run(
        server, "reservations", "create", "CS2", "--id-tag", "TAG2", "--evse", "1", "--expires-in", "30m"
    )
    assert code == 0, err  # not waited: the call is pending, the reservation Requested
    reservation_part, call_part = out.split("\ncall:\n")
    assert fields(reservation_part)["status"] == "Requested" and fields(call_part)["status"] == "pending"
    frame = published(deps)[-1]
    assert frame[2] == "ReserveNow"
    sent = frame[3]
    assert isinstance(sent, dict)
    assert sent["idToken"] == {"idToken": "TAG2", "type": "Central"} and sent["evseId"] == 1
    expiry = datetime.fromisoformat(sent["expiryDateTime"].replace("Z", "+00:00")).timestamp()
    assert before + 1800 - 2 <= expiry <= time.time() + 1800 + 2

    code, out, _ = run(server, "reservations", "list", "CS2")
    _, row = table_rows(out)
    assert row[1:5] == ["CS2", "1/-", "TAG2", "Requested"]

    # The charger's one call slot is taken by the ReserveNow that was not answered.
    code, _, err = run(server, "reservations", "create", "CS2", "--id-tag", "T", "--expires-in", "1h")
    assert code == 1 and "(HTTP 409)" in err
    code, _, err = run(server, "reservations", "create", "CS2", "--id-tag", "T", "--expires", "2001-01-01T00:00:00Z")
    assert code == 1 and "(HTTP 400)" in err
    code, _, err = run(server, "reservations", "create", "NOPE", "--id-tag", "T", "--expires-in", "1h")
    assert code == 1 and "(HTTP 404)" in err
    refused = cli("--api-url", server.url, "reservations", "create", "CS2", "--id-tag", "T", "--expires-in", "soon")
    assert refused.returncode == 2 and "--expires-in" in refused.stderr and "90s, 30m, 2h or 1d" in refused.stderr
    refused = cli("--api-url", server.url, "reservations", "create", "CS2", "--id-tag", "T")
    assert refused.returncode == 2 and "--expires" in refused.stderr
    refused = cli("--api-url", server.url, "reservations", "show", "seven")
    assert refused.returncode == 2


def test_reservation_create_exits_4_when_the_call_times_out(server: ApiServer, deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")

    def charger_never_answers() -> None:
        deadline = time.monotonic() + 5
        while not deps.publisher.messages and time.monotonic() < deadline:  # type: ignore[attr-defined]
            time.sleep(0.01)
        deps.clock.advance(60)  # type: ignore[attr-defined]  # past the call timeout

    thread = threading.Thread(target=charger_never_answers, daemon=True)
    thread.start()
    args = ("reservations", "create", "CP1", "--id-tag", "T", "--connector", "0", "--expires-in", "1d")
    code, out, err = run(server, *args, "--wait", "2", "--json")
    thread.join(5)
    assert code == 4, err
    assert json.loads(out)["call"]["status"] == "timeout"


def test_calls_list_pages_and_errors(server: ApiServer, deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    for action in ("ClearCache", "Reset"):
        charger = answer_next_call(deps, "CP1", "ocpp1.6", {"status": "Accepted"})
        payload = '{"type":"Soft"}' if action == "Reset" else "{}"
        assert run(server, "call", "CP1", action, payload, "--wait", "3")[0] == 0
        charger.join(5)
        deps.clock.advance(1)  # type: ignore[attr-defined]

    code, out, err = run(server, "calls", "list", "CP1")
    assert code == 0, err
    header, *rows = table_rows(out)
    assert header == ["UNIQUE ID", "ACTION", "STATUS", "CREATED", "COMPLETED"]
    assert [r[1:3] for r in rows] == [["Reset", "accepted"], ["ClearCache", "accepted"]]  # newest first
    assert all(r[3].endswith("Z") and r[4].endswith("Z") for r in rows)
    assert "more:" not in out

    code, out, _ = run(server, "calls", "list", "CP1", "--limit", "1")
    assert code == 0
    lines = out.splitlines()
    newest = lines[1].split()[0]
    assert lines[-1].startswith("more: --after ")
    cursor = lines[-1].removeprefix("more: --after ")
    code, out, _ = run(server, "calls", "list", "CP1", "--limit", "1", "--after", cursor, "--json")
    page = json.loads(out)
    assert page["count"] == 1 and page["next"] is None
    assert page["calls"][0]["action"] == "ClearCache" and page["calls"][0]["uniqueId"] != newest

    code, _, err = run(server, "calls", "list", "NOPE")
    assert (code, err) == (1, "error: Unknown charger NOPE. (HTTP 404)\n")
    code, _, err = run(server, "calls", "list", "CP1", "--limit", "501")
    assert code == 1 and "(HTTP 400)" in err


def test_id_tags_delete(server: ApiServer, deps: Dependencies) -> None:
    assert run(server, "id-tags", "put", "TAG 1")[0] == 0
    assert run(server, "id-tags", "put", "TAG-2")[0] == 0
    assert run(server, "id-tags", "delete", "TAG 1") == (0, "deleted TAG 1\n", "")
    assert deps.store.get_id_token("TAG 1") is None
    code, _, err = run(server, "id-tags", "show", "TAG 1")
    assert code == 1 and "(HTTP 404)" in err
    code, out, _ = run(server, "id-tags", "delete", "TAG-2", "--json")
    assert code == 0 and json.loads(out) == {"idTag": "TAG-2", "deleted": True}

    connect(deps, "CP1", "ocpp1.6")
    outcome = from_charger(deps, "CP1", "ocpp1.6", [2, "a1", "Authorize", {"idTag": "TAG-2"}])
    assert '"Invalid"' in outcome.reply

    code, out, err = run(server, "id-tags", "delete", "TAG-2")
    assert code == 1 and out == "" and err.startswith("error: ") and err.endswith("(HTTP 404)\n")


def test_transactions_older_than_and_close(server: ApiServer, deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    started = from_charger(
        deps,
        "CP1",
        "ocpp1.6",
        [
            2,
            "s",
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG", "meterStart": 1000, "timestamp": "2025-01-01T00:00:00Z"},
        ],
    )
    tx_id = str(json.loads(started.reply)[2]["transactionId"])
    from_charger(
        deps,
        "CP1",
        "ocpp1.6",
        [
            2,
            "m",
            "MeterValues",
            {
                "connectorId": 1,
                "transactionId": int(tx_id),
                "meterValue": [{"timestamp": "2025-01-01T00:10:00Z", "sampledValue": [{"value": "1500"}]}],
            },
        ],
    )
    deps.clock.advance(3 * 3600)  # type: ignore[attr-defined]

    code, out, err = run(server, "transactions", "list", "--status", "Active", "--older-than", "2h")
    assert code == 0, err
    header, row = table_rows(out)
    assert header[:8] == [
        "TRANSACTION",
        "CHARGER",
        "CONNECTOR",
        "ID TAG",
        "STATUS",
        "STARTED",
        "STOPPED",
        "LAST ACTIVITY",
    ]
    assert row[:5] == [tx_id, "CP1", "1", "TAG", "Active"] and row[7].endswith("Z")
    code, out, _ = run(server, "transactions", "list", "--older-than", "4h", "--json")
    assert json.loads(out)["count"] == 0
    code, out, _ = run(server, "transactions", "list", "--older-than", "2099-01-01T00:00:00Z", "--json")
    assert [t["transactionId"] for t in json.loads(out)["transactions"]] == [tx_id]
    code, _, err = run(server, "transactions", "list", "--older-than", "a while")
    assert code == 1 and "(HTTP 400)" in err

    code, out, err = run(server, "transactions", "close", tx_id, "--reason", "charger replaced", "--json")
    assert code == 0, err
    closed = json.loads(out)
    assert closed["status"] == "Completed" and closed["closedBy"] == "operator"
    assert closed["closeReason"] == "charger replaced" and closed["energyWh"] == 500
    assert closed["closedAt"].endswith("Z") and closed["stoppedAt"].endswith("Z")

    code, _, err = run(server, "transactions", "close", tx_id, "--reason", "again")
    assert code == 1 and "(HTTP 409)" in err
    code, _, err = run(server, "transactions", "close", "424242", "--reason", "x")
    assert code == 1 and "(HTTP 404)" in err
    refused = cli("--api-url", server.url, "transactions", "close", tx_id)
    assert refused.returncode == 2 and "--reason" in refused.stderr


def test_transactions_close_an_id_two_chargers_use(server: ApiServer, deps: Dependencies) -> None:
    for cs in ("CS1", "CS2"):
        connect(deps, cs, "ocpp2.0.1")
        from_charger(
            deps,
            cs,
            "ocpp2.0.1",
            [
                2,
                "te0",
                "TransactionEvent",
                {
                    "eventType": "Started",
                    "timestamp": "2025-01-01T10:00:00Z",
                    "triggerReason": "Authorized",
                    "seqNo": 0,
                    "transactionInfo": {"transactionId": "tx-1"},
                    "evse": {"id": 1, "connectorId": 1},
                },
            ],
        )
    code, _, err = run(server, "transactions", "close", "tx-1", "--reason", "stale")
    assert code == 1 and "(HTTP 409)" in err
    code, out, err = run(server, "transactions", "close", "tx-1", "--reason", "stale", "--charger", "CS2")
    assert code == 0, err
    shown = fields(out)
    assert (shown["chargePointId"], shown["status"], shown["closedBy"]) == ("CS2", "Completed", "operator")
    code, out, _ = run(server, "transactions", "list", "--status", "Active", "--json")
    assert [t["chargePointId"] for t in json.loads(out)["transactions"]] == ["CS1"]


# --- sites ---------------------------------------------------------------------------------


def test_sites_put_show_list_and_errors(server: ApiServer, deps: Dependencies) -> None:
    for cp in ("CP1", "CP2"):
        deps.store.update_charger(cp, {"registered": True})
    code, out, err = run(
        server, "sites", "put", "S1", "--limit-amps", "63", "--phases", "3", "--min-amps", "6",
        "--charger", "CP1", "--charger", "CP2", "--json",
    )  # fmt: skip
    assert code == 0, err
    put = json.loads(out)
    assert (put["siteId"], put["limitAmps"], put["minAmps"], put["chargers"]) == ("S1", 63, 6, ["CP1", "CP2"])
    code, out, err = run(server, "sites", "put", "S2", "--limit-watts", "11000.5", "--phases", "1", "--min-amps", "6")
    assert code == 0, err
    shown = fields(out.split("\nactive transactions:\n")[0])
    assert (shown["siteId"], shown["limitWatts"], shown["phases"], shown["chargers"]) == ("S2", "11000.5", "1", "-")

    code, out, err = run(server, "sites", "show", "S1")
    assert code == 0, err
    record, transactions = out.split("\nactive transactions:\n")
    assert fields(record)["chargers"] == "CP1 CP2" and fields(record)["limitAmps"] == "63"
    assert transactions.split() == ["CHARGER", "TRANSACTION", "STARTED", "SHARE", "A", "LIMIT", "A", "PROFILE"]
    code, out, _ = run(server, "sites", "show", "S1", "--json")
    assert json.loads(out)["activeTransactions"] == []

    code, out, err = run(server, "sites", "list")
    assert code == 0, err
    header, first, second = table_rows(out)
    assert header == ["SITE", "LIMIT", "PHASES", "MIN A", "CHARGERS", "UPDATED"]
    assert first[:5] == ["S1", "63 A", "3", "6", "CP1 CP2"] and second[:5] == ["S2", "11000.5 W", "1", "6", "-"]
    code, out, _ = run(server, "sites", "list", "--json")
    assert json.loads(out)["count"] == 2

    code, _, err = run(server, "sites", "put", "S3", "--limit-amps", "32", "--phases", "3", "--min-amps", "6",
                       "--charger", "CP2")  # fmt: skip
    assert (code, err) == (1, "error: Charger CP2 already belongs to site S1: remove it there first. (HTTP 400)\n")
    code, _, err = run(server, "sites", "put", "S3", "--limit-amps", "5", "--phases", "3", "--min-amps", "6")
    assert code == 1 and "above the site limit" in err and "(HTTP 400)" in err
    code, _, err = run(server, "sites", "show", "S9")
    assert (code, err) == (1, "error: Unknown site S9. (HTTP 404)\n")
    refused = cli("--api-url", server.url, "sites", "put", "S3", "--limit-amps", "5", "--limit-watts", "9",
                  "--phases", "3", "--min-amps", "6")  # fmt: skip
    assert refused.returncode == 2 and "not allowed with argument" in refused.stderr
    refused = cli(
        "--api-url", server.url, "sites", "put", "S3", "--limit-amps", "5", "--phases", "2", "--min-amps", "1"
    )
    assert refused.returncode == 2 and "--phases" in refused.stderr
