"""Property: domain events come once per state change, whatever AWS's delivery does to the frames.

The histories of ``test_unordered_delivery`` (boot, statuses, sessions, CSMS-call results,
reconnects) go through ``ocpp_core.process`` and the real DynamoDB adapter on moto; the events
are what ``lambdas.events_publisher`` derives from the table's stream, as on AWS.

* **Duplicates make nothing.** Delivering every frame again (in any order, concurrently) after a
  run adds no event: a duplicated frame is never reported twice.
* **Realistic AWS delivery gives the in-order events.** A charger sends its next CALL only once the
  previous one is answered, and the answer comes after the frame's writes; so the *first* delivery
  of each frame is in order, while its duplicates (IoT's and Lambda's retries, minutes late) come
  anywhere and concurrently. Those runs make exactly the events, ids and details of in-order
  delivery.
* **Any permutation at all** (stronger than AWS can produce) still gives unique ids, one
  TransactionStarted and one TransactionEnded per transaction, one CallCompleted per call, and per
  connector a sequence of statuses whose order keys only increase, ending with the final status.
"""

from __future__ import annotations

import itertools
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from lambdas.events_publisher import current_connection_reader, handle
from ocpp_core.events import Event

from .support import REGION
from .test_unordered_delivery import CP, Delivery, _Run, histories

_SETTINGS = settings(
    max_examples=10,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)


class _Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def publish(self, events: Any) -> list[int]:
        self.events += list(events)
        return []


class _Stream:
    """Reads a table's stream from where it was last read, as the event source mapping does."""

    def __init__(self, table: str) -> None:
        # botocore sends calls naming a stream ARN to an account endpoint moto does not serve
        endpoint = f"https://streams.dynamodb.{REGION}.amazonaws.com"
        self.streams = boto3.client("dynamodbstreams", region_name=REGION, endpoint_url=endpoint)
        arn = boto3.client("dynamodb", region_name=REGION).describe_table(TableName=table)["Table"]["LatestStreamArn"]
        shard = self.streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        self.iterator = self.streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")[
            "ShardIterator"
        ]

    def events(self, run: _Run) -> list[Event]:
        sink = _Sink()
        while True:
            answer = self.streams.get_records(ShardIterator=self.iterator, Limit=1000)
            self.iterator = answer["NextShardIterator"]
            if not answer["Records"]:
                return sink.events
            handle(answer["Records"], sink, current_connection_reader(run.store))


_tables = itertools.count(1)


def _run(version: Any, calls: Any, reservations: Any) -> tuple[_Run, _Stream]:
    client = boto3.client("dynamodb", region_name=REGION)
    table = f"events-{next(_tables)}"
    run = _Run(client, table, version, calls, reservations)
    return run, _Stream(table)


def _in_order(history: Any) -> tuple[list[Event], _Run, _Stream]:
    version, deliveries, calls, reservations = history
    run, stream = _run(version, calls, reservations)
    for delivery in deliveries:
        (run.answer if delivery.kind == "result" else run.deliver)(delivery)
    return stream.events(run), run, stream


@_SETTINGS
@given(history=histories(), data=st.data())
def test_realistic_delivery_makes_the_in_order_events_and_duplicates_make_none(
    moto, atomic_moto_requests, history, data
) -> None:
    version, deliveries, calls, reservations = history
    expected, _, _ = _in_order(history)
    assert len({e["id"] for e in expected}) == len(expected)

    run, stream = _run(version, calls, reservations)
    # first deliveries in order; each frame's duplicates somewhere after it, concurrently
    duplicates = data.draw(st.lists(st.integers(0, len(deliveries) - 1), max_size=len(deliveries)), label="dups")
    late: dict[int, list[Delivery]] = {}
    for index in duplicates:
        at = data.draw(st.integers(index, len(deliveries)), label="when")
        late.setdefault(at, []).append(deliveries[index])
    with ThreadPoolExecutor(max_workers=4) as workers:
        for position in range(len(deliveries) + 1):
            pending = [workers.submit(run.deliver, d) for d in late.get(position, [])]
            if position < len(deliveries):
                first = deliveries[position]
                (run.answer if first.kind == "result" else run.deliver)(first)
            for future in pending:
                future.result()
    got = stream.events(run)
    assert got == expected

    # every frame again, in any order, concurrently: nothing new to report
    again = data.draw(st.permutations(deliveries), label="again")
    with ThreadPoolExecutor(max_workers=4) as workers:
        for future in [workers.submit(run.deliver, d) for d in again]:
            future.result()
    assert stream.events(run) == []


@_SETTINGS
@given(history=histories(), data=st.data())
def test_any_permutation_reports_each_change_once_and_never_goes_back(
    moto, atomic_moto_requests, history, data
) -> None:
    version, deliveries, calls, reservations = history
    expected, _, _ = _in_order(history)
    run, stream = _run(version, calls, reservations)
    results = [d for d in deliveries if d.kind == "result"]
    others = [d for d in deliveries if d.kind != "result"]
    duplicates = data.draw(st.lists(st.sampled_from(deliveries), max_size=len(deliveries)), label="duplicates")
    pool = data.draw(st.permutations(others + duplicates), label="order")

    def lane() -> None:  # CSMS-call answers in order (one outstanding call per direction)
        for delivery in results:
            run.answer(delivery)

    with ThreadPoolExecutor(max_workers=4) as workers:
        for future in [workers.submit(lane)] + [workers.submit(run.deliver, d) for d in pool]:
            future.result()
    got = stream.events(run)

    assert len({e["id"] for e in got}) == len(got), "an event id came twice"
    for kind in ("TransactionStarted", "TransactionEnded", "CallCompleted"):
        assert sorted(e["id"] for e in got if e["type"] == kind) == sorted(
            e["id"] for e in expected if e["type"] == kind
        ), kind
    statuses = {s["connectorId"]: s["status"] for s in run.store.list_statuses(CP)}
    per_connector: dict[str, list[Event]] = {}
    for event in got:
        if event["type"] == "ConnectorStatusChanged":
            per_connector.setdefault(event["detail"]["connector"], []).append(event)
    for label, changes in per_connector.items():
        assert changes[-1]["detail"]["status"] == statuses[changes[-1]["detail"]["connectorId"]], label
        for before, after in itertools.pairwise(changes):
            assert after["detail"].get("previousStatus") == before["detail"]["status"]
    # boots: only ones in-order delivery reports too (a late older boot loses), and always the newest
    boots = [e["id"] for e in got if e["type"] == "ChargerBooted"]
    expected_boots = [e["id"] for e in expected if e["type"] == "ChargerBooted"]
    assert set(boots) <= set(expected_boots)
    assert not expected_boots or expected_boots[-1] in boots
    assert json.dumps(got, sort_keys=True)  # every event is plain JSON
