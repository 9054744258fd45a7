"""The call flow once against the DynamoDB adapter on moto: conditional slot, conditional completion."""

from __future__ import annotations

import json
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from lambdas import runtime
from lambdas.adapters.dynamo import DynamoStore, create_table
from lambdas.runtime import Dependencies
from ocpp_core.passwords import verify_password
from tests.fakes import FakeClock

from .support import connect, from_charger, make_deps, request


@pytest.fixture
def dynamo_deps(monkeypatch: pytest.MonkeyPatch) -> Iterator[Dependencies]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name="eu-west-1")
        create_table(client, "ocpp-test")
        clock = FakeClock()
        # The adapter checks TTLs against the same (fake) time the records are written with.
        store = DynamoStore(client, "ocpp-test", clock_s=lambda: clock.ms / 1000)
        injected = make_deps(store, clock=clock)
        runtime.configure(injected)
        yield injected
        runtime.configure(None)


def test_call_flow_on_dynamodb(dynamo_deps: Dependencies) -> None:
    deps = dynamo_deps
    assert request("PUT", "/chargers/CP1", {"password": "dynamo-password-1"}).status == 201
    stored = deps.store.get_charger("CP1")
    assert stored is not None and verify_password("dynamo-password-1", stored["passwordHash"])
    connect(deps, "CP1", "ocpp1.6")

    first = request("POST", "/chargers/CP1/calls", {"action": "Reset", "payload": {"type": "Soft"}})
    assert first.status == 202
    uid = first.body["uniqueId"]
    # The outstanding slot is a conditional put: a second call is refused while the first is pending.
    busy = request("POST", "/chargers/CP1/calls", {"action": "ClearCache"})
    assert busy.status == 409 and busy.body["pendingUniqueId"] == uid

    from_charger(deps, "CP1", "ocpp1.6", [3, uid, {"status": "Accepted"}])
    done = request("GET", f"/chargers/CP1/calls/{uid}").body
    assert done["status"] == "accepted" and done["response"] == {"status": "Accepted"}
    # complete_call is conditional on "pending": a redelivered answer changes nothing.
    from_charger(deps, "CP1", "ocpp1.6", [4, uid, "InternalError", "late duplicate", {}])
    assert request("GET", f"/chargers/CP1/calls/{uid}").body["status"] == "accepted"

    second = request("POST", "/chargers/CP1/calls", {"action": "GetConfiguration", "payload": {"key": ["A"]}})
    assert second.status == 202
    deps.clock.advance(31)  # type: ignore[attr-defined]
    assert request("GET", f"/chargers/CP1/calls/{second.body['uniqueId']}").body["status"] == "timeout"
    from_charger(deps, "CP1", "ocpp1.6", [3, second.body["uniqueId"], {"configurationKey": []}])
    assert request("GET", f"/chargers/CP1/calls/{second.body['uniqueId']}").body["status"] == "timeout"
    assert request("POST", "/chargers/CP1/calls", {"action": "ClearCache"}).status == 202


def test_registry_id_tags_and_transactions_on_dynamodb(dynamo_deps: Dependencies) -> None:
    deps = dynamo_deps
    assert request("PUT", "/id-tags/TAG", {"expiryDate": "2099-01-01T00:00:00Z"}).status == 201
    assert request("GET", "/id-tags/TAG").body["effectiveStatus"] == "Accepted"
    connect(deps, "CP1", "ocpp1.6")
    started = from_charger(
        deps,
        "CP1",
        "ocpp1.6",
        [
            2,
            "s",
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG", "meterStart": 5, "timestamp": "2025-01-01T00:00:00Z"},
        ],
    )
    tx_id = json.loads(started.reply)[2]["transactionId"]
    from_charger(
        deps,
        "CP1",
        "ocpp1.6",
        [2, "e", "StopTransaction", {"transactionId": tx_id, "meterStop": 105, "timestamp": "2025-01-01T01:00:00Z"}],
    )
    txs = request("GET", "/transactions", query={"chargePointId": "CP1"}).body["transactions"]
    assert [(t["transactionId"], t["energyWh"], t["status"]) for t in txs] == [(str(tx_id), 100, "Completed")]
    chargers = request("GET", "/chargers").body["chargers"]
    assert [c["chargePointId"] for c in chargers] == ["CP1"]
    assert chargers[0]["connected"] is True
    # Storage internals never leak into answers.
    assert "pk" not in chargers[0] and "expiresAt" not in str(chargers)
