"""lambdas.lifecycle.handler on moto: the bridge's connected / disconnected events keep presence.

Events arrive in any order, twice or late (DESIGN §7). They are ordered by the rule's
``ruleTimestamp`` (the broker's clock), else the bridge's ``at``. Each connection keeps its latest
connected and disconnected (``CONN#<connectionId>``); the charger item names its current connection,
the one with the latest connected, so an old socket's late event cannot mark the charger offline
(``ocpp_core.presence``).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest

from lambdas import lifecycle
from lambdas.runtime import Dependencies
from ocpp_core import keys
from ocpp_core.presence import CONNECTION_TTL_S
from tests.fakes import charger_connected

from .support import FakeLambdaContext, load_event, raw_item, table_items


def invoke(event: Any) -> str:
    result: dict[str, Any] = lifecycle.handler(event, FakeLambdaContext())
    return str(result["result"])


def later(event: dict[str, Any], ms: int, **changes: Any) -> dict[str, Any]:
    """The same event kind ``ms`` later (bridge ``at`` and rule timestamp), with changes."""
    return {**event, "at": event["at"] + ms, "ruleTimestamp": event["ruleTimestamp"] + ms, **changes}


def connection(deps: Dependencies, cp: str, connection_id: str) -> dict[str, Any] | None:
    return deps.store.get_connections([(cp, connection_id)]).get((cp, connection_id))


def test_connected_marks_the_charger_online_with_its_connection_info(deps: Dependencies, dynamodb: Any) -> None:
    event = load_event("connected")
    assert invoke(event) == "connected"
    rule_at = event["ruleTimestamp"]
    assert deps.store.get_charger("CP-16") == {
        "chargePointId": "CP-16",
        "connectionId": event["connectionId"],
        "connectionAt": rule_at,
        "lastConnectedAt": rule_at,
        "protocol": "ocpp1.6",
    }
    assert connection(deps, "CP-16", event["connectionId"]) == {
        "chargePointId": "CP-16",
        "connectionId": event["connectionId"],
        "connectedAt": rule_at,
        keys.TTL_ATTRIBUTE: rule_at // 1000 + CONNECTION_TTL_S,
    }
    assert charger_connected(deps.store, "CP-16")
    # The connection's item sits beside the charger item, under its connection id, with a TTL.
    item = raw_item(dynamodb, keys.charger_pk("CP-16"), keys.connection_sk(event["connectionId"]))
    assert item is not None and item[keys.TTL_ATTRIBUTE] == {"N": str(rule_at // 1000 + CONNECTION_TTL_S)}


def test_disconnected_marks_it_offline_and_keeps_the_registry(deps: Dependencies) -> None:
    deps.store.update_charger("CP-16", {"registered": True, "passwordHash": "h"})
    connected = load_event("connected")
    assert invoke(connected) == "connected"
    disconnected = load_event("disconnected")
    assert invoke(disconnected) == "disconnected"
    assert not charger_connected(deps.store, "CP-16")
    charger = deps.store.get_charger("CP-16")
    assert charger is not None
    assert charger["registered"] is True and charger["passwordHash"] == "h"
    assert charger["connectionId"] == connected["connectionId"], "the last connection is still named"
    assert connection(deps, "CP-16", connected["connectionId"]) == {
        "chargePointId": "CP-16",
        "connectionId": connected["connectionId"],
        "connectedAt": connected["ruleTimestamp"],
        "disconnectedAt": disconnected["ruleTimestamp"],
        "disconnectReason": "charger closed the connection (1000)",
        keys.TTL_ATTRIBUTE: disconnected["ruleTimestamp"] // 1000 + CONNECTION_TTL_S,
    }


def test_a_redelivered_event_leaves_the_same_state(deps: Dependencies, dynamodb: Any) -> None:
    assert invoke(load_event("connected")) == "connected"
    once = table_items(dynamodb)
    assert invoke(load_event("connected")) == "stale", "a duplicate changes nothing"
    assert table_items(dynamodb) == once
    assert invoke(load_event("disconnected")) == "disconnected"
    offline = table_items(dynamodb)
    assert invoke(load_event("disconnected")) == "stale"
    assert invoke(load_event("connected")) == "stale", "a late duplicate of the connected too"
    assert table_items(dynamodb) == offline
    assert not charger_connected(deps.store, "CP-16")


def test_an_old_connections_late_disconnect_does_not_mark_a_reconnected_charger_offline(
    deps: Dependencies,
) -> None:
    old = load_event("connected")
    new = later(old, 30_000, connectionId="a-newer-connection")
    assert invoke(old) == "connected"
    assert invoke(new) == "connected"
    # The old socket's disconnected (here even stamped after the new connection: a takeover) is
    # kept on the old connection's item only.
    assert invoke(load_event("disconnected")) == "disconnected"
    assert charger_connected(deps.store, "CP-16")
    charger = deps.store.get_charger("CP-16")
    assert charger is not None and charger["connectionId"] == "a-newer-connection"
    current = connection(deps, "CP-16", "a-newer-connection")
    assert current is not None and "disconnectedAt" not in current
    previous = connection(deps, "CP-16", old["connectionId"])
    assert previous is not None and previous["disconnectedAt"] == load_event("disconnected")["ruleTimestamp"]


def test_an_older_connected_event_delivered_late_does_not_become_current(deps: Dependencies) -> None:
    old = load_event("connected")
    new = later(old, 30_000, connectionId="a-newer-connection", protocol="ocpp2.0.1")
    assert invoke(new) == "connected"
    assert invoke(old) == "connected", "the old connection's own item is still kept"
    charger = deps.store.get_charger("CP-16")
    assert charger is not None and charger["connectionId"] == "a-newer-connection"
    assert charger["connectionAt"] == new["ruleTimestamp"] and charger["protocol"] == "ocpp2.0.1"
    assert charger_connected(deps.store, "CP-16")


def test_events_are_ordered_by_the_rule_timestamp_not_the_bridges_at(deps: Dependencies) -> None:
    """A will carries the time its MQTT client was built: after a daily reconnect on the same
    socket its ``at`` is older than the connected it follows; the broker's clock orders it."""
    connected = load_event("connected")
    will = {
        **load_event("disconnected"),
        "at": connected["at"] - 5_000,
        "ruleTimestamp": connected["ruleTimestamp"] + 1,
    }
    assert invoke(connected) == "connected"
    assert invoke(will) == "disconnected"
    assert not charger_connected(deps.store, "CP-16"), "ordered by `at`, the will would look older"
    # The reconnect on the same socket, after the will by the broker's clock: online again.
    reconnected = {**connected, "at": connected["at"] - 1_000, "ruleTimestamp": will["ruleTimestamp"] + 1}
    assert invoke(reconnected) == "connected"
    assert charger_connected(deps.store, "CP-16")


def test_without_a_rule_timestamp_the_bridges_at_orders_the_event(deps: Dependencies) -> None:
    connected = {k: v for k, v in load_event("connected").items() if k != "ruleTimestamp"}
    assert invoke(connected) == "connected"
    charger = deps.store.get_charger("CP-16")
    assert charger is not None and charger["connectionAt"] == connected["at"]
    found = connection(deps, "CP-16", connected["connectionId"])
    assert found is not None and found[keys.TTL_ATTRIBUTE] == connected["at"] // 1000 + CONNECTION_TTL_S
    # A boolean is not a timestamp: `at` is used.
    assert invoke({**connected, "at": connected["at"] + 10, "ruleTimestamp": True}) == "connected"
    charger = deps.store.get_charger("CP-16")
    assert charger is not None and charger["connectionAt"] == connected["at"] + 10


def test_the_events_of_a_takeover_give_the_same_presence_in_every_order(deps: Dependencies) -> None:
    old = load_event("connected")
    new = later(old, 30_000, connectionId="a-newer-connection")
    old_closed = load_event("disconnected")  # after the new connection's connected
    for n, order in enumerate(itertools.permutations([old, new, old_closed])):
        cp = f"CP-{n}"
        for event in order:
            invoke({**event, "chargePointId": cp, "topicChargePointId": cp})
        charger = deps.store.get_charger(cp)
        assert charger is not None and charger["connectionId"] == "a-newer-connection", order
        assert charger_connected(deps.store, cp), order


def test_a_disconnect_for_a_charger_never_seen_keeps_only_the_connection(deps: Dependencies, dynamodb: Any) -> None:
    disconnected = load_event("disconnected")
    assert invoke(disconnected) == "disconnected"
    assert [(i[keys.PK]["S"], i[keys.SK]["S"]) for i in table_items(dynamodb)] == [
        (keys.charger_pk("CP-16"), keys.connection_sk(disconnected["connectionId"]))
    ], "no charger item is created"
    assert deps.store.get_charger("CP-16") is None
    # Its connected, delivered late, finds the disconnect already there: offline.
    assert invoke(load_event("connected")) == "connected"
    assert not charger_connected(deps.store, "CP-16")


def test_connected_with_an_unknown_protocol_still_records_presence(deps: Dependencies) -> None:
    assert invoke({**load_event("connected"), "protocol": "ocpp9.9"}) == "connected"
    charger = deps.store.get_charger("CP-16")
    assert charger is not None and "protocol" not in charger
    assert charger_connected(deps.store, "CP-16")


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
