"""Property: a site's balancing state stays right under AWS's delivery (DESIGN §7, §10).

Two 2.0.1 stations on one site send sessions (TransactionEvent Started, Updated with meter values,
and for some Ended); the frames are delivered as a random permutation with duplicates by four
threads at once, through ``ocpp_core.process`` and the real DynamoDB adapter on moto (each moto
request made atomic, as on DynamoDB). Whatever the order:

* the site's active sessions are exactly the transactions that have not ended (an Ended delivered
  before its Started leaves a tombstone the Started does not revive; a duplicate adds nothing);
* the shares sum to at most the site's limit, each 0 or at least the minimum;
* no change of the state is lost: the optimistic version check makes the writers take turns, so
  every session the frames started is there (active or ended).

What OCPP rules out is not generated: a 2.x transaction's events carry increasing seqNo (E07), so
two Started of one transaction do not exist. Everything else is permuted, and duplicated.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lambdas.adapters.dynamo import DynamoStore, create_table
from ocpp_core import ProcessorConfig, process
from ocpp_core.smart_charging.balancing import ACTIVE
from tests.fakes import START_MS, FakeClock, SeqIds

from .support import REGION

CHARGERS = ("BAL-A", "BAL-B")
LIMIT, MINIMUM = 32, 6


def _event(cp: str, at: int, uid: str, kind: str, tx: str, seq: int, evse: int) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": kind,
        "timestamp": "2025-06-15T15:00:00Z",
        "triggerReason": {"Started": "Authorized", "Updated": "MeterValuePeriodic", "Ended": "EVCommunicationLost"}[
            kind
        ],
        "seqNo": seq,
        "transactionInfo": {"transactionId": tx},
        "evse": {"id": evse, "connectorId": 1},
    }
    if kind == "Updated":
        payload["meterValue"] = [
            {
                "timestamp": "2025-06-15T15:01:00Z",
                "sampledValue": [{"value": 7.5, "measurand": "Current.Import", "unitOfMeasure": {"unit": "A"}}],
            }
        ]
    return {
        "chargePointId": cp,
        "protocol": "ocpp2.0.1",
        "connectionId": "c1",
        "receivedAt": at,
        "frame": json.dumps([2, uid, "TransactionEvent", payload]),
        "topicChargePointId": cp,
    }


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[dict[str, Any]], set[str]]:
    frames: list[dict[str, Any]] = []
    open_sessions: set[str] = set()
    at = START_MS
    for cp in CHARGERS:
        for n in range(draw(st.integers(1, 3))):
            tx, evse = f"{cp}-tx{n}", n + 1
            at += 1000
            frames.append(_event(cp, at, f"{tx}-s", "Started", tx, 0, evse))
            if draw(st.booleans()):
                at += 1000
                frames.append(_event(cp, at, f"{tx}-u", "Updated", tx, 1, evse))
            if draw(st.booleans()):
                at += 1000
                frames.append(_event(cp, at, f"{tx}-e", "Ended", tx, 2, evse))
            else:
                open_sessions.add(f"{cp}|{tx}")
    return frames, open_sessions


_tables = iter(range(10**9))


@settings(
    max_examples=15,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories(), data=st.data())
def test_any_interleaving_keeps_the_sessions_and_the_limit(moto, atomic_moto_requests, history, data) -> None:
    frames, open_sessions = history
    client = boto3.client("dynamodb", region_name=REGION)
    name = f"balancing-{next(_tables)}"
    create_table(client, name)
    store = DynamoStore(client, name, clock_s=lambda: START_MS / 1000)
    for cp in CHARGERS:
        store.update_charger(cp, {"registered": True, "protocol": "ocpp2.0.1"})
    store.put_site(
        "S1", {"siteId": "S1", "limitAmps": LIMIT, "phases": 3, "minAmps": MINIMUM, "chargers": list(CHARGERS)}, []
    )
    duplicates = data.draw(st.lists(st.sampled_from(frames), max_size=len(frames)), label="duplicates")
    order = data.draw(st.permutations(frames + duplicates), label="order")
    clock, ids = FakeClock(), SeqIds()

    def deliver(envelope: dict[str, Any]) -> str:
        return process(dict(envelope), store=store, clock=clock, ids=ids, config=ProcessorConfig()).kind

    with ThreadPoolExecutor(max_workers=4) as workers:
        kinds = list(workers.map(deliver, order))
    assert set(kinds) == {"replied"}, kinds  # a lost version race would have been an InternalError

    balance = store.get_balance("S1")
    assert balance is not None
    sessions = balance["sessions"]
    active = {key for key, s in sessions.items() if s["state"] == ACTIVE}
    assert active == open_sessions
    started = {f"{json.loads(f['frame'])[3]['transactionInfo']['transactionId']}" for f in frames}
    assert {key.split("|", 1)[1] for key in sessions} == started  # no session lost
    shares = [float(sessions[key]["share"]) for key in active]
    assert sum(shares) <= LIMIT + 1e-6
    assert all(share == 0 or share >= MINIMUM for share in shares)
