"""PUT/GET /id-tags/{idTag} and GET /transactions."""

from __future__ import annotations

import json

from lambdas.runtime import Dependencies

from .support import connect, from_charger, request


def test_put_and_get_id_tag(deps: Dependencies) -> None:
    answer = request(
        "PUT",
        "/id-tags/TAG-1",
        {"status": "Accepted", "expiryDate": "2099-01-01T01:00:00+01:00", "parentIdTag": "FLEET"},
    )
    assert answer.status == 201
    assert answer.body == {
        "idTag": "TAG-1",
        "status": "Accepted",
        "expiryDate": "2099-01-01T00:00:00.000Z",
        "parentIdTag": "FLEET",
        "updatedAt": answer.body["updatedAt"],
        "effectiveStatus": "Accepted",
    }
    assert deps.store.get_id_token("TAG-1") == {
        "status": "Accepted",
        "expiryDate": "2099-01-01T00:00:00.000Z",
        "parentIdTag": "FLEET",
        "updatedAt": deps.store.get_id_token("TAG-1")["updatedAt"],  # type: ignore[index]
    }
    shown = request("GET", "/id-tags/TAG-1")
    assert shown.status == 200 and shown.body["parentIdTag"] == "FLEET"

    replaced = request("PUT", "/id-tags/TAG-1", {"status": "Blocked"})
    assert replaced.status == 200
    assert "expiryDate" not in replaced.body  # PUT replaces the whole record


def test_expired_tag_shows_its_effective_status(deps: Dependencies) -> None:
    request("PUT", "/id-tags/OLD", {"expiryDate": "2001-01-01T00:00:00Z"})
    assert request("GET", "/id-tags/OLD").body["effectiveStatus"] == "Expired"


def test_id_tag_with_reserved_characters_round_trips(deps: Dependencies) -> None:
    assert request("PUT", "/id-tags/a%2Fb%20c", {}).status == 201
    assert deps.store.get_id_token("a/b c") is not None
    assert request("GET", "/id-tags/a%2Fb%20c").body["idTag"] == "a/b c"


def test_id_tag_errors(deps: Dependencies) -> None:
    assert request("GET", "/id-tags/UNKNOWN").status == 404
    assert request("PUT", "/id-tags/T", {"status": "Sure"}).status == 400
    assert request("PUT", "/id-tags/T", {"expiryDate": "tomorrow"}).status == 400
    assert request("PUT", "/id-tags/T", {"parentIdTag": ""}).status == 400
    assert request("PUT", "/id-tags/T", {"colour": "red"}).status == 400
    assert request("PUT", "/id-tags/" + "x" * 256, {}).status == 400
    assert request("PUT", "/id-tags/%0A", {}).status == 400
    assert request("PATCH", "/id-tags/T").status == 405
    assert request("DELETE", "/id-tags/T").status == 404  # no such tag


def test_the_processor_authorizes_from_the_tags_the_api_put(deps: Dependencies) -> None:
    request("PUT", "/id-tags/GOOD", {"status": "Accepted"})
    connect(deps, "CP1", "ocpp1.6")
    outcome = from_charger(deps, "CP1", "ocpp1.6", [2, "a1", "Authorize", {"idTag": "GOOD"}])
    assert '"Accepted"' in outcome.reply
    outcome = from_charger(deps, "CP1", "ocpp1.6", [2, "a2", "Authorize", {"idTag": "BAD"}])
    assert '"Invalid"' in outcome.reply


def test_transactions_after_a_1_6_session(deps: Dependencies) -> None:
    request("PUT", "/id-tags/TAG", {})
    connect(deps, "CP1", "ocpp1.6")
    connect(deps, "CP2", "ocpp1.6")
    from_charger(
        deps, "CP1", "ocpp1.6", [2, "boot", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
    )
    started = from_charger(
        deps,
        "CP1",
        "ocpp1.6",
        [
            2,
            "start",
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG", "meterStart": 1000, "timestamp": "2025-01-01T10:00:00Z"},
        ],
    )
    tx_id = json.loads(started.reply)[2]["transactionId"]
    deps.clock.advance(3600)
    from_charger(
        deps,
        "CP1",
        "ocpp1.6",
        [
            2,
            "stop",
            "StopTransaction",
            {"transactionId": tx_id, "meterStop": 8500, "timestamp": "2025-01-01T11:00:00Z", "reason": "Local"},
        ],
    )
    from_charger(
        deps,
        "CP2",
        "ocpp1.6",
        [
            2,
            "start2",
            "StartTransaction",
            {"connectorId": 1, "idTag": "TAG", "meterStart": 0, "timestamp": "2025-01-01T10:30:00Z"},
        ],
    )

    everything = request("GET", "/transactions")
    assert everything.status == 200 and everything.body["count"] == 2

    mine = request("GET", "/transactions", query={"chargePointId": "CP1"}).body["transactions"]
    assert len(mine) == 1
    tx = mine[0]
    assert tx["chargePointId"] == "CP1"
    assert tx["transactionId"] == str(tx_id)
    assert tx["idTag"] == "TAG"
    assert (tx["meterStart"], tx["meterStop"], tx["energyWh"]) == (1000, 8500, 7500)
    assert tx["status"] == "Completed" and tx["stopReason"] == "Local"
    assert tx["startTimestamp"] == "2025-01-01T10:00:00Z"
    assert tx["startedAt"].endswith("Z") and tx["stoppedAt"].endswith("Z")

    active = request("GET", "/transactions", query={"status": "Active"}).body["transactions"]
    assert [t["chargePointId"] for t in active] == ["CP2"]


def test_transactions_after_a_2_0_1_session(deps: Dependencies) -> None:
    connect(deps, "CS1", "ocpp2.0.1")

    def event(kind: str, seq: int, wh: float) -> list[object]:
        return [
            2,
            f"te{seq}",
            "TransactionEvent",
            {
                "eventType": kind,
                "timestamp": f"2025-01-01T10:0{seq}:00Z",
                "triggerReason": "Authorized",
                "seqNo": seq,
                "transactionInfo": {"transactionId": "tx-abc"},
                "evse": {"id": 1, "connectorId": 1},
                "meterValue": [{"timestamp": "2025-01-01T10:00:00Z", "sampledValue": [{"value": wh}]}],
            },
        ]

    from_charger(deps, "CS1", "ocpp2.0.1", event("Started", 0, 100.0))
    from_charger(deps, "CS1", "ocpp2.0.1", event("Ended", 1, 2100.0))
    tx = request("GET", "/transactions", query={"chargePointId": "CS1"}).body["transactions"][0]
    assert tx["transactionId"] == "tx-abc"
    assert tx["evseId"] == 1
    assert (tx["meterStart"], tx["meterStop"], tx["energyWh"]) == (100, 2100, 2000)
    assert tx["status"] == "Completed"


def test_transactions_refuses_bad_filters(deps: Dependencies) -> None:
    assert request("GET", "/transactions", query={"chargePointId": "bad id"}).status == 400
    assert request("GET", "/transactions", query={"chargePointId": ""}).status == 400
    assert request("GET", "/transactions", query={"status": "Paused"}).status == 400
    assert request("POST", "/transactions").status == 405
