"""lambdas.lifecycle.handler on moto: the bridge's connected / disconnected events keep presence.

Ordering is by the bridge's ``at`` and the connection id (not ``ruleTimestamp``): a connected
event older than the last applied one is stale, and a disconnected event applies only to the
charger's current connection, so an old socket's late event cannot mark the charger offline.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from lambdas import lifecycle
from lambdas.runtime import Dependencies
from ocpp_core import keys

from .support import FakeLambdaContext, load_event, raw_item, table_items


def invoke(event: Any) -> str:
    result: dict[str, Any] = lifecycle.handler(event, FakeLambdaContext())
    return str(result["result"])


def later(event: dict[str, Any], ms: int, **changes: Any) -> dict[str, Any]:
    """The same event kind ``ms`` later (bridge ``at`` and rule timestamp), with changes."""
    return {**event, "at": event["at"] + ms, "ruleTimestamp": event["ruleTimestamp"] + ms, **changes}


def test_connected_marks_the_charger_online_with_its_connection_info(deps: Dependencies, dynamodb: Any) -> None:
    event = load_event("connected")
    assert invoke(event) == "connected"
    assert deps.store.get_charger("CP-16") == {
        "chargePointId": "CP-16",
        "connected": True,
        "connectionId": event["connectionId"],
        "presenceAt": event["at"],
        "connectedAt": event["at"],
        "lastSeen": event["at"],
        "protocol": "ocpp1.6",
    }
    # Presence lives on the charger item itself (one item per charger, DESIGN §6).
    item = raw_item(dynamodb, keys.charger_pk("CP-16"), keys.CHARGER_SK)
    assert item is not None and item["connected"] == {"BOOL": True}


def test_disconnected_marks_it_offline_and_keeps_the_registry(deps: Dependencies) -> None:
    deps.store.update_charger("CP-16", {"registered": True, "passwordHash": "h"})
    assert invoke(load_event("connected")) == "connected"
    disconnected = load_event("disconnected")
    assert invoke(disconnected) == "disconnected"
    charger = deps.store.get_charger("CP-16")
    assert charger is not None
    assert charger["connected"] is False
    assert charger["disconnectedAt"] == disconnected["at"] == charger["presenceAt"]
    assert charger["disconnectReason"] == "charger closed the connection (1000)"
    assert charger["registered"] is True and charger["passwordHash"] == "h"
    assert charger["connectedAt"] == load_event("connected")["at"], "the last connection time is kept"


def test_a_redelivered_event_leaves_the_same_state(deps: Dependencies) -> None:
    assert invoke(load_event("connected")) == "connected"
    once = deps.store.get_charger("CP-16")
    assert invoke(load_event("connected")) == "connected"
    assert deps.store.get_charger("CP-16") == once
    assert invoke(load_event("disconnected")) == "disconnected"
    offline = deps.store.get_charger("CP-16")
    assert invoke(load_event("disconnected")) == "disconnected"
    assert deps.store.get_charger("CP-16") == offline


def test_an_old_connections_late_disconnect_does_not_mark_a_reconnected_charger_offline(
    deps: Dependencies,
) -> None:
    old = load_event("connected")
    new = later(old, 30_000, connectionId="a-newer-connection")
    assert invoke(old) == "connected"
    assert invoke(new) == "connected"
    # The old socket's disconnected (here even stamped after the new connection: a takeover)
    assert invoke(load_event("disconnected")) == "stale"
    charger = deps.store.get_charger("CP-16")
    assert charger is not None and charger["connected"] is True and charger["connectionId"] == "a-newer-connection"
    assert "disconnectedAt" not in charger


def test_an_older_connected_event_delivered_late_is_stale(deps: Dependencies) -> None:
    old = load_event("connected")
    new = later(old, 30_000, connectionId="a-newer-connection")
    assert invoke(new) == "connected"
    assert invoke(old) == "stale"
    charger = deps.store.get_charger("CP-16")
    assert charger is not None and charger["connectionId"] == "a-newer-connection"
    assert charger["connectedAt"] == new["at"]


def test_a_disconnect_for_a_charger_never_seen_is_stale_and_creates_nothing(deps: Dependencies, dynamodb: Any) -> None:
    assert invoke(load_event("disconnected")) == "stale"
    assert table_items(dynamodb) == []


def test_connected_with_an_unknown_protocol_still_records_presence(deps: Dependencies) -> None:
    assert invoke({**load_event("connected"), "protocol": "ocpp9.9"}) == "connected"
    charger = deps.store.get_charger("CP-16")
    assert charger is not None and charger["connected"] is True and "protocol" not in charger


def _malformed_variants() -> list[Any]:
    connected = load_event("connected")
    return [
        pytest.param(load_event("malformed_lifecycle"), id="fixture-missing-connection-and-at"),
        pytest.param(None, id="null"),
        pytest.param(["connected"], id="array"),
        pytest.param({}, id="empty"),
        pytest.param({**connected, "event": "rebooted"}, id="unknown-kind"),
        pytest.param({**connected, "at": "1750000000000"}, id="at-as-string"),
        pytest.param({**connected, "at": True}, id="at-as-bool"),
        pytest.param({**connected, "connectionId": 7}, id="connection-id-not-text"),
        pytest.param({**connected, "chargePointId": "bad id/#"}, id="invalid-charger-id"),
        pytest.param({**connected, "topicChargePointId": "CP-other"}, id="body-and-topic-disagree"),
    ]


@pytest.mark.parametrize("event", _malformed_variants())
def test_a_malformed_event_is_logged_and_dropped_without_raising(
    deps: Dependencies, dynamodb: Any, event: Any, lambda_output: Callable[[], list[dict[str, Any]]]
) -> None:
    assert invoke(event) == "dropped"
    assert table_items(dynamodb) == []
    warnings = [line for line in lambda_output() if line.get("level") == "WARNING"]
    assert len(warnings) == 1 and warnings[0]["message"].startswith("dropped")
