"""``PUT /sites/{siteId}``, ``GET /sites/{siteId}``, ``GET /sites`` over the in-memory store."""

from __future__ import annotations

from typing import Any

import pytest

from lambdas.runtime import Dependencies
from ocpp_core.timefmt import format_ms
from tests.fakes import START_MS

from .support import connect, from_charger, request

SITE = {"limitAmps": 63, "phases": 3, "minAmps": 6, "chargers": ["CP1", "CP2"]}


def register(deps: Dependencies, *chargers: str) -> None:
    for cp in chargers:
        assert request("PUT", f"/chargers/{cp}", {}).status in (200, 201)


def test_a_site_is_created_replaced_read_and_listed(deps: Dependencies) -> None:
    register(deps, "CP1", "CP2", "CP3")
    created = request("PUT", "/sites/S1", SITE)
    assert created.status == 201
    assert created.body == {
        "siteId": "S1",
        "limitAmps": 63,
        "phases": 3,
        "minAmps": 6,
        "chargers": ["CP1", "CP2"],
        "updatedAt": format_ms(START_MS),
        "activeTransactions": [],
        "shareUnit": "A",
        "allocated": 0,
    }
    deps.clock.advance(5)
    replaced = request("PUT", "/sites/S1", {"limitWatts": 22000.5, "phases": 1, "minAmps": 8, "chargers": ["CP3"]})
    assert replaced.status == 200
    assert replaced.body["limitWatts"] == 22000.5 and "limitAmps" not in replaced.body
    assert replaced.body["chargers"] == ["CP3"] and replaced.body["updatedAt"] == format_ms(START_MS + 5000)
    assert request("GET", "/sites/S1").body == replaced.body
    # The chargers it dropped are free again: another site takes them.
    assert request("PUT", "/sites/A-site", {**SITE, "chargers": ["CP1"]}).status == 201
    listed = request("GET", "/sites")
    assert listed.status == 200 and listed.body["count"] == 2
    assert [s["siteId"] for s in listed.body["sites"]] == ["A-site", "S1"]
    assert deps.store.site_of("CP1") == "A-site" and deps.store.site_of("CP2") is None


def test_an_empty_site_list_and_an_unknown_site(deps: Dependencies) -> None:
    assert request("GET", "/sites").body == {"sites": [], "count": 0}
    missing = request("GET", "/sites/S9")
    assert (missing.status, missing.body) == (404, {"error": "Unknown site S9.", "siteId": "S9"})
    assert request("GET", "/sites/bad%20id").status == 400
    assert request("PUT", "/sites/" + "x" * 49, SITE).status == 400
    assert request("DELETE", "/sites/S1").status == 405


def test_the_site_shows_the_active_transactions_of_its_chargers(deps: Dependencies) -> None:
    register(deps, "CP1", "CP2", "CP3")
    for cp in ("CP1", "CP3"):
        connect(deps, cp, "ocpp1.6")
        answer = from_charger(
            deps,
            cp,
            "ocpp1.6",
            [
                2,
                "st",
                "StartTransaction",
                {"connectorId": 1, "idTag": "T", "meterStart": 0, "timestamp": "2025-06-15T15:00:00Z"},
            ],
        )
        assert answer is not None
    assert request("PUT", "/sites/S1", SITE).status == 201
    active = request("GET", "/sites/S1").body["activeTransactions"]
    assert [(t["chargePointId"], t["startedAt"]) for t in active] == [("CP1", format_ms(START_MS))]
    assert set(active[0]) == {"chargePointId", "transactionId", "startedAt", "share", "pending", "profileStatus"}
    # Alone on the site: all of it, in a profile sent and not answered yet.
    assert (active[0]["share"], active[0]["pending"], active[0]["profileStatus"]) == (63, 63, "pending")
    stored = deps.store.list_transactions("CP1")[0]
    assert active[0]["transactionId"] == stored["transactionId"]


BAD_BODIES: dict[str, tuple[Any, str]] = {
    "no body": (None, "JSON object body"),
    "not an object": ([1], "JSON object"),
    "unknown field": ({**SITE, "limit": 3}, "Unknown field 'limit'"),
    "no limit": ({"phases": 3, "minAmps": 6, "chargers": []}, "exactly one limit"),
    "both limits": ({**SITE, "limitWatts": 1000}, "exactly one limit"),
    "zero limit": ({**SITE, "limitAmps": 0}, "limitAmps must be a number above 0"),
    "limit null": ({**SITE, "limitAmps": None}, "limitAmps must be a number above 0"),
    "negative watts": (
        {"limitWatts": -5, "phases": 3, "minAmps": 6, "chargers": []},
        "limitWatts must be a number above 0",
    ),
    "limit a string": ({**SITE, "limitAmps": "63"}, "limitAmps must be a number above 0"),
    "limit a bool": ({**SITE, "limitAmps": True}, "limitAmps must be a number above 0"),
    "phases 2": ({**SITE, "phases": 2}, "phases must be 1 or 3"),
    "phases missing": ({k: v for k, v in SITE.items() if k != "phases"}, "phases must be 1 or 3"),
    "phases true": ({**SITE, "phases": True}, "phases must be 1 or 3"),
    "minAmps 0": ({**SITE, "minAmps": 0}, "minAmps must be a number above 0"),
    "minAmps missing": ({k: v for k, v in SITE.items() if k != "minAmps"}, "minAmps must be a number above 0"),
    "minAmps above the limit": ({**SITE, "minAmps": 64}, "above the site limit of 63 A"),
    "minAmps above a W limit": (
        {"limitWatts": 4000, "phases": 3, "minAmps": 6, "chargers": []},
        "4140 W) is above the site limit of 4000 W",
    ),
    "chargers missing": ({k: v for k, v in SITE.items() if k != "chargers"}, "chargers must be a list"),
    "chargers a string": ({**SITE, "chargers": "CP1"}, "chargers must be a list"),
    "a charger id invalid": ({**SITE, "chargers": ["CP1", "bad id"]}, "'bad id', which is not a charger id"),
    "a charger id a number": ({**SITE, "chargers": [7]}, "7, which is not a charger id"),
    "a charger twice": ({**SITE, "chargers": ["CP1", "CP2", "CP1"]}, "names CP1 more than once"),
    "an unknown charger": ({**SITE, "chargers": ["CP1", "CP9"]}, "Unknown charger CP9"),
    "an unregistered charger": ({**SITE, "chargers": ["SEEN"]}, "Unknown charger SEEN"),
    "too many chargers": ({**SITE, "chargers": [f"CP{i}" for i in range(501)]}, "at most 500 chargers, not 501"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_input_is_one_400_sentence_and_changes_nothing(deps: Dependencies, case: str) -> None:
    register(deps, "CP1", "CP2")
    deps.store.update_charger("SEEN", {"registered": False})  # seen by the bridge, never registered
    before = request("PUT", "/sites/S1", {**SITE, "chargers": ["CP2"]}).body
    body, message = BAD_BODIES[case]
    answer = request("PUT", "/sites/S1", body)
    assert answer.status == 400, answer.body
    assert message in answer.body["error"]
    assert answer.body["error"].count(". ") == 0 and answer.body["error"].endswith(".")
    assert request("GET", "/sites/S1").body == before
    assert deps.store.site_of("CP1") is None and deps.store.site_of("CP2") == "S1"


def test_a_charger_of_another_site_is_a_400_naming_it(deps: Dependencies) -> None:
    register(deps, "CP1", "CP2", "CP3")
    assert request("PUT", "/sites/S1", SITE).status == 201
    refused = request("PUT", "/sites/S2", {**SITE, "chargers": ["CP3", "CP2"]})
    assert refused.status == 400
    assert refused.body == {
        "error": "Charger CP2 already belongs to site S1: remove it there first.",
        "chargePointId": "CP2",
        "siteId": "S1",
    }
    assert request("GET", "/sites/S2").status == 404
    assert deps.store.site_of("CP3") is None  # the refused PUT's claim was undone
    # Taken out of S1, it can join S2.
    assert request("PUT", "/sites/S1", {**SITE, "chargers": ["CP1"]}).status == 200
    assert request("PUT", "/sites/S2", {**SITE, "chargers": ["CP3", "CP2"]}).status == 201


def test_a_site_of_500_chargers(deps: Dependencies) -> None:
    chargers = [f"CP{i:03d}" for i in range(500)]
    for cp in chargers:
        deps.store.update_charger(cp, {"registered": True})
    answer = request("PUT", "/sites/BIG", {**SITE, "chargers": chargers})
    assert answer.status == 201 and len(answer.body["chargers"]) == 500
    assert deps.store.site_of("CP499") == "BIG"
