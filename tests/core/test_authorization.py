"""Authorization from the id token list: status, expiry, parent / group token, unknown is Invalid."""

from __future__ import annotations

import pytest

from .support import V2X, V16, Charger

FUTURE = "2030-01-01T00:00:00.000Z"
PAST = "2025-06-15T15:06:39.999Z"  # one millisecond before the fake clock's start
NOW = "2025-06-15T15:06:40.000Z"


def authorize_v16(charger: Charger, tag: str) -> dict:
    return charger.result("Authorize", {"idTag": tag})["idTagInfo"]


def authorize_v2(charger: Charger, token: str, kind: str = "ISO14443") -> dict:
    return charger.result("Authorize", {"idToken": {"idToken": token, "type": kind}})["idTokenInfo"]


def test_v16_unknown_tag_is_invalid(make_charger) -> None:
    assert authorize_v16(make_charger(V16), "NOPE") == {"status": "Invalid"}


@pytest.mark.parametrize("version", V2X)
def test_v2_unknown_token_is_invalid(make_charger, version) -> None:
    assert authorize_v2(make_charger(version), "NOPE") == {"status": "Invalid"}


def test_v16_status_expiry_and_parent(make_charger) -> None:
    charger: Charger = make_charger(V16)
    store = charger.store
    store.put_id_token("OK", {"status": "Accepted", "expiryDate": FUTURE, "parentIdTag": "FLEET"})
    store.put_id_token("PLAIN", {"status": "Accepted"})
    store.put_id_token("NOSTATUS", {})
    store.put_id_token("BLOCKED", {"status": "Blocked"})
    store.put_id_token("OLD", {"status": "Accepted", "expiryDate": PAST})
    store.put_id_token("EDGE", {"status": "Accepted", "expiryDate": NOW})
    store.put_id_token("BLOCKED-OLD", {"status": "Blocked", "expiryDate": PAST})
    store.put_id_token("CREDIT", {"status": "NoCredit"})  # a 2.x-only status
    store.put_id_token("LONGPARENT", {"status": "Accepted", "parentIdTag": "P" * 21})

    assert authorize_v16(charger, "OK") == {"status": "Accepted", "expiryDate": FUTURE, "parentIdTag": "FLEET"}
    assert authorize_v16(charger, "PLAIN") == {"status": "Accepted"}
    assert authorize_v16(charger, "NOSTATUS") == {"status": "Accepted"}
    assert authorize_v16(charger, "BLOCKED") == {"status": "Blocked"}
    assert authorize_v16(charger, "OLD") == {"status": "Expired", "expiryDate": PAST}
    assert authorize_v16(charger, "EDGE")["status"] == "Expired"  # valid until, not including, expiry
    assert authorize_v16(charger, "BLOCKED-OLD")["status"] == "Blocked"  # blocked stays blocked
    assert authorize_v16(charger, "CREDIT") == {"status": "Blocked"}  # 1.6 has no NoCredit
    assert authorize_v16(charger, "LONGPARENT") == {"status": "Accepted"}  # 1.6 parentIdTag: 20 max


def test_v16_token_expires_as_the_clock_moves(make_charger) -> None:
    charger: Charger = make_charger(V16)
    charger.store.put_id_token("T", {"status": "Accepted", "expiryDate": "2025-06-15T15:07:40Z"})
    assert authorize_v16(charger, "T")["status"] == "Accepted"
    charger.clock.advance(59.999)
    assert authorize_v16(charger, "T")["status"] == "Accepted"
    charger.clock.advance(0.001)
    assert authorize_v16(charger, "T")["status"] == "Expired"


@pytest.mark.parametrize("version", V2X)
def test_v2_status_expiry_and_group(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    store = charger.store
    store.put_id_token("OK", {"status": "Accepted", "expiryDate": FUTURE, "parentIdTag": "FLEET"})
    store.put_id_token("OLD", {"status": "Accepted", "expiryDate": PAST})
    store.put_id_token("CREDIT", {"status": "NoCredit"})
    store.put_id_token("WEIRD", {"status": "Whatever"})

    assert authorize_v2(charger, "OK") == {
        "status": "Accepted",
        "cacheExpiryDateTime": FUTURE,
        "groupIdToken": {"idToken": "FLEET", "type": "Central"},
    }
    assert authorize_v2(charger, "OLD") == {"status": "Expired", "cacheExpiryDateTime": PAST}
    assert authorize_v2(charger, "CREDIT") == {"status": "NoCredit"}
    assert authorize_v2(charger, "WEIRD") == {"status": "Invalid"}


@pytest.mark.parametrize("version", V2X)
def test_v2_no_authorization_token_is_accepted(make_charger, version) -> None:
    # C01 free vending: idToken type NoAuthorization (empty token) needs no list entry.
    assert authorize_v2(make_charger(version), "", "NoAuthorization") == {"status": "Accepted"}


def test_v16_start_transaction_carries_the_authorization(make_charger) -> None:
    charger: Charger = make_charger(V16)
    charger.store.put_id_token("OLD", {"status": "Accepted", "expiryDate": PAST})
    response = charger.result("StartTransaction", {"connectorId": 1, "idTag": "OLD", "meterStart": 0, "timestamp": NOW})
    assert response["idTagInfo"] == {"status": "Expired", "expiryDate": PAST}
    [tx] = charger.store.list_transactions("CP1")
    assert tx["authorizationStatus"] == "Expired"
