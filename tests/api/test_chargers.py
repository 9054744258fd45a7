"""GET /chargers, GET /chargers/{id}, PUT /chargers/{id}."""

from __future__ import annotations

import pytest

from lambdas.runtime import Dependencies
from ocpp_core.passwords import verify_password

from .support import connect, from_charger, request


def test_register_with_password_stores_a_hash_and_never_returns_it(deps: Dependencies) -> None:
    answer = request("PUT", "/chargers/CP1", {"password": "correct-horse-battery", "description": "Bay 4"})
    assert answer.status == 201
    assert answer.body["registered"] is True
    assert answer.body["registrationStatus"] == "Accepted"
    assert answer.body["description"] == "Bay 4"
    assert answer.body["hasPassword"] is True
    assert "correct-horse-battery" not in str(answer.body)
    assert "passwordHash" not in answer.body
    stored = deps.store.get_charger("CP1")
    assert stored is not None
    assert stored["passwordHash"].startswith("pbkdf2_sha256$")
    assert verify_password("correct-horse-battery", stored["passwordHash"])
    assert not verify_password("wrong", stored["passwordHash"])

    listed = request("GET", "/chargers")
    assert listed.status == 200 and listed.body["count"] == 1
    assert "passwordHash" not in str(listed.body)
    shown = request("GET", "/chargers/CP1")
    assert shown.status == 200 and "passwordHash" not in shown.body


def test_each_registration_gets_its_own_salt(deps: Dependencies) -> None:
    request("PUT", "/chargers/A", {"password": "same-password-123"})
    request("PUT", "/chargers/B", {"password": "same-password-123"})
    a, b = deps.store.get_charger("A"), deps.store.get_charger("B")
    assert a and b and a["passwordHash"] != b["passwordHash"]


def test_update_keeps_what_the_body_does_not_set(deps: Dependencies) -> None:
    request("PUT", "/chargers/CP1", {"password": "first-password-1", "description": "old"})
    first_hash = deps.store.get_charger("CP1")["passwordHash"]  # type: ignore[index]
    answer = request("PUT", "/chargers/CP1", {"registrationStatus": "Rejected"})
    assert answer.status == 200
    assert answer.body["registrationStatus"] == "Rejected"
    assert answer.body["description"] == "old"
    assert deps.store.get_charger("CP1")["passwordHash"] == first_hash  # type: ignore[index]
    assert request("PUT", "/chargers/CP1").status == 200  # an empty body just (re-)registers


def test_registration_status_decides_the_boot_notification(deps: Dependencies) -> None:
    request("PUT", "/chargers/CP1", {"registrationStatus": "Pending"})
    connect(deps, "CP1", "ocpp1.6")
    outcome = from_charger(
        deps, "CP1", "ocpp1.6", [2, "b1", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}]
    )
    assert '"Pending"' in outcome.reply


def test_charger_view_shows_boot_presence_connectors_and_configuration(deps: Dependencies) -> None:
    connect(deps, "CP1", "ocpp1.6")
    from_charger(
        deps, "CP1", "ocpp1.6", [2, "b1", "BootNotification", {"chargePointVendor": "Acme", "chargePointModel": "X1"}]
    )
    for connector, status in ((2, "Charging"), (1, "Available")):
        from_charger(
            deps,
            "CP1",
            "ocpp1.6",
            [
                2,
                f"s{connector}",
                "StatusNotification",
                {"connectorId": connector, "errorCode": "NoError", "status": status},
            ],
        )
    deps.store.set_charger_map_entries(
        "CP1", "configuration", {"HeartbeatInterval": {"value": "300", "readonly": False}}
    )

    listed = request("GET", "/chargers").body["chargers"][0]
    assert listed["chargePointId"] == "CP1"
    assert listed["protocol"] == "ocpp1.6"
    assert listed["connected"] is True
    assert listed["boot"]["chargePointVendor"] == "Acme"
    assert listed["bootStatus"] == "Accepted"
    assert listed["lastSeen"].endswith("Z")  # RFC 3339 UTC, not epoch ms
    assert [(c["connectorId"], c["status"]) for c in listed["connectors"]] == [(1, "Available"), (2, "Charging")]
    assert "configuration" not in listed  # the list stays small

    shown = request("GET", "/chargers/CP1").body
    assert shown["configuration"]["HeartbeatInterval"]["value"] == "300"
    assert shown["variables"] == {}
    assert shown["connectedAt"].endswith("Z")


def test_2x_charger_shows_evse_status(deps: Dependencies) -> None:
    connect(deps, "CS2", "ocpp2.0.1")
    from_charger(
        deps,
        "CS2",
        "ocpp2.0.1",
        [
            2,
            "s1",
            "StatusNotification",
            {"timestamp": "2025-01-01T00:00:00Z", "connectorStatus": "Occupied", "evseId": 1, "connectorId": 1},
        ],
    )
    connectors = request("GET", "/chargers/CS2").body["connectors"]
    assert connectors == [
        {
            "evseId": 1,
            "connectorId": 1,
            "status": "Occupied",
            "timestamp": "2025-01-01T00:00:00Z",
            "updatedAt": connectors[0]["updatedAt"],
        }
    ]


def test_unknown_and_invalid_chargers(deps: Dependencies) -> None:
    missing = request("GET", "/chargers/NOPE")
    assert missing.status == 404 and missing.body["error"] == "Unknown charger NOPE."
    for bad in ("/chargers/has%20space", "/chargers/" + "x" * 49, "/chargers/a%2Fb", "/chargers/%FF"):
        answer = request("GET", bad)
        assert answer.status == 400, bad
        assert set(answer.body) >= {"error"}


def test_put_refuses_bad_bodies(deps: Dependencies) -> None:
    cases = [
        ({"password": ""}, "password"),
        ({"password": 12345}, "password"),
        ({"password": "x" * 257}, "password"),
        ({"registrationStatus": "Maybe"}, "registrationStatus"),
        ({"pasword": "typo-typo-typo"}, "pasword"),
        (["not", "an", "object"], "JSON object"),
        ({"description": 5}, "description"),
    ]
    for body, mentioned in cases:
        answer = request("PUT", "/chargers/CP1", body)
        assert answer.status == 400, body
        assert mentioned in answer.body["error"], answer.body
    assert request("PUT", "/chargers/CP1", raw_body="{not json").status == 400
    assert deps.store.get_charger("CP1") is None


def test_get_chargers_pages_with_limit_and_after(deps: Dependencies) -> None:
    for cp in ("CP-c", "CP-a", "CP-b"):
        deps.store.update_charger(cp, {"registered": True})
    first = request("GET", "/chargers", query={"limit": "2"})
    assert first.status == 200, first.body
    assert [c["chargePointId"] for c in first.body["chargers"]] == ["CP-a", "CP-b"]
    assert first.body["count"] == 2 and first.body["next"] == "CP-b"
    rest = request("GET", "/chargers", query={"limit": "2", "after": "CP-b"})
    assert [c["chargePointId"] for c in rest.body["chargers"]] == ["CP-c"] and rest.body["next"] is None
    assert request("GET", "/chargers").body["next"] is None  # default page of 100


@pytest.mark.parametrize("limit", ["0", "-1", "1001", "ten", "1.5"])
def test_get_chargers_with_a_bad_limit_is_400(deps: Dependencies, limit: str) -> None:
    answer = request("GET", "/chargers", query={"limit": limit})
    assert answer.status == 400 and "limit" in answer.body["error"], answer.body
