"""Every charger-initiated action of every version: valid requests get a CALLRESULT that validates.

Requests come from the official request schema (``tests.strategies``), in varied registry, token
and transaction states; the reply is checked against the official response schema with the
independent ``jsonschema`` oracle.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocpp_core.config import ProcessorConfig, UnknownChargerPolicy
from ocpp_core.memory_store import InMemoryStore
from ocpp_core.ports import ItemUpdate
from ocpp_core.processor import OutcomeKind
from ocpp_core.schemas import SchemaKind, actions_with_schemas, schema_path
from ocpp_core.timefmt import format_ms
from ocpp_core.versions import CHARGER_INITIATED, CSMS_INITIATED, SEND_ACTIONS
from tests.fakes import FakeClock, SeqIds
from tests.strategies import load_schema, payloads, schema_validator

from .support import V16, V21, VERSIONS, Charger, check_call_result

CASES = [(v, a) for v in VERSIONS for a in sorted(CHARGER_INITIATED[v] - SEND_ACTIONS[v])]

# Every status an operator may store for a token: the 1.6 and 2.1 schemas' lists together.
AUTHORIZATION_STATES = sorted(
    set(load_schema(V16, "Authorize", SchemaKind.RESPONSE)["properties"]["idTagInfo"]["properties"]["status"]["enum"])
    | set(load_schema(V21, "Authorize", SchemaKind.RESPONSE)["definitions"]["AuthorizationStatusEnumType"]["enum"])
)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_direction_lists_cover_every_schema(version) -> None:
    # Every action the package has a schema for is sent by exactly one side (or is a 2.1 SEND).
    charger, csms, send = CHARGER_INITIATED[version], CSMS_INITIATED[version], SEND_ACTIONS[version]
    both_ways = {"DataTransfer"}  # the only action both sides send
    assert charger & csms == both_ways
    assert charger | csms == actions_with_schemas(version)
    assert send <= charger
    for action in charger - send:
        assert schema_path(version, action, SchemaKind.REQUEST).is_file()
        assert schema_path(version, action, SchemaKind.RESPONSE).is_file()


def test_there_are_cases_for_every_version() -> None:
    counts = {v: sum(1 for version, _ in CASES if version is v) for v in VERSIONS}
    assert counts[V16] == 14 and counts[V21] > counts[V16]


def _tokens(value: Any) -> Iterator[str]:
    """Every 1.6 idTag and 2.x idToken string in a payload."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "idTag" and isinstance(item, str):
                yield item
            elif key == "idToken" and isinstance(item, str):
                yield item
            else:
                yield from _tokens(item)
    elif isinstance(value, list):
        for item in value:
            yield from _tokens(item)


token_records = st.fixed_dictionaries(
    {"status": st.sampled_from(AUTHORIZATION_STATES)},
    optional={
        # stored normalised by the operator API (format_ms), from 1970 to 2100
        "expiryDate": st.integers(0, 4_102_444_800_000).map(format_ms),
        "parentIdTag": st.text(min_size=1, max_size=36),
    },
)


def _seed(data: st.DataObject, store: InMemoryStore, payload: dict) -> None:
    """A registry, token and transaction state the request can meet."""
    if data.draw(st.booleans(), label="known charger"):
        store.update_charger(
            "CP1",
            {
                "registered": data.draw(st.booleans()),
                "registrationStatus": data.draw(st.sampled_from(["Accepted", "Pending", "Rejected"])),
                # 2.x: a station rejected at boot may only boot again (checked in test_registration)
                "bootStatus": data.draw(st.sampled_from(["Accepted", "Pending"])),
            },
        )
    for token in set(_tokens(payload)):
        if data.draw(st.booleans(), label="token known"):
            store.put_id_token(token, data.draw(token_records, label="token"))
    transaction_id = payload.get("transactionId", (payload.get("transactionInfo") or {}).get("transactionId"))
    if transaction_id is not None and data.draw(st.booleans(), label="transaction known"):
        store.update_transaction(
            "CP1",
            str(transaction_id),
            ItemUpdate(
                set={
                    "status": data.draw(st.sampled_from(["Active", "Completed"])),
                    # JSON allows any integer: a meter start beyond float range must not break the stop
                    "meterStart": data.draw(
                        st.integers(-(10**6), 10**9)
                        | st.floats(allow_nan=False)
                        | st.sampled_from([10**400, -(10**400)])
                    ),
                    "lastSeqNo": data.draw(st.integers(0, 10)),
                }
            ),
        )


@pytest.mark.parametrize(("version", "action"), CASES, ids=[f"{v.value}-{a}" for v, a in CASES])
def test_every_reply_validates(version, action: str) -> None:
    check_request = schema_validator(version, action, SchemaKind.REQUEST)
    answered: list[str] = []

    @settings(
        max_examples=25,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(payload=payloads(version, action), data=st.data(), policy=st.sampled_from(list(UnknownChargerPolicy)))
    def run(payload: dict, data: st.DataObject, policy: UnknownChargerPolicy) -> None:
        check_request(payload)  # the strategy's own output is valid (independent oracle)
        store = InMemoryStore()
        _seed(data, store, payload)
        charger = Charger(version, store, FakeClock(), SeqIds(), config=ProcessorConfig(unknown_chargers=policy))
        outcome = charger.send_text(json.dumps([2, "r-1", action, payload]))
        assert outcome.kind == OutcomeKind.REPLIED, (outcome, payload)
        check_call_result(outcome.reply, version, "r-1", action)
        answered.append(outcome.reply)

    run()
    assert len(answered) >= 10
