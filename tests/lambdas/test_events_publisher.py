"""The events Lambda on moto: stream records in, events on an EventBridge bus out, routed by a rule
like the one docs/deployment.md shows (``TransactionEnded`` to an SQS queue); partial failures
reported so that the stream retries from the first failed record."""

from __future__ import annotations

import json
from typing import Any

import boto3

from lambdas.adapters.eventbridge import MAX_ENTRIES, EventBridgeSink
from lambdas.events_publisher import handle
from ocpp_core.events import EVENT_SOURCE

from .support import REGION


def _record(seq: int, new: dict[str, Any], old: dict[str, Any] | None = None) -> dict[str, Any]:
    from lambdas.adapters.dynamo_codec import serialize_item

    change: dict[str, Any] = {
        "SequenceNumber": str(seq),
        "Keys": {"pk": {"S": new["pk"]}, "sk": {"S": new["sk"]}},
        "NewImage": serialize_item(new),
    }
    if old is not None:
        change["OldImage"] = serialize_item(old)
    return {"eventName": "MODIFY" if old else "INSERT", "dynamodb": change}


def _ended(transaction_id: str) -> dict[str, Any]:
    return {
        "pk": "CP#CP1",
        "sk": f"TX#{transaction_id}",
        "transactionId": transaction_id,
        "startedAt": 1_750_000_000_000,
        "stoppedAt": 1_750_000_060_000,
        "meterStart": 100,
        "meterStop": 1_100,
        "idTag": "A",
        "stopReason": "Local",
    }


def test_events_reach_the_bus_and_a_rule_routes_transaction_ended_to_a_queue(moto) -> None:
    events = boto3.client("events", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    events.create_event_bus(Name="ocpp-test-events")
    queue = sqs.create_queue(QueueName="transactions-ended")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"source": [EVENT_SOURCE], "detail-type": ["TransactionEnded"]}
    events.put_rule(Name="ended", EventBusName="ocpp-test-events", EventPattern=json.dumps(pattern))
    events.put_targets(Rule="ended", EventBusName="ocpp-test-events", Targets=[{"Id": "q", "Arn": queue_arn}])

    status = {"pk": "CP#CP1", "sk": "STATUS#C1", "status": "Charging", "order": "2", "connectorId": 1}
    records = [_record(1, _ended("7")), _record(2, status, {**status, "status": "Preparing", "order": "1"})]
    answer = handle(records, EventBridgeSink(events, "ocpp-test-events"))
    assert answer == {"batchItemFailures": []}

    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
    assert len(messages) == 1  # only TransactionEnded matches the rule
    envelope = json.loads(messages[0]["Body"])
    assert envelope["source"] == EVENT_SOURCE and envelope["detail-type"] == "TransactionEnded"
    event = envelope["detail"]
    assert event["type"] == "TransactionEnded" and event["chargePointId"] == "CP1"
    assert event["detail"]["energyWh"] == 1_000 and event["detail"]["durationS"] == 60


class _FailingAt:
    """A sink that refuses the events at the given indexes (as PutEvents reports failed entries)."""

    def __init__(self, failing: set[int]) -> None:
        self.failing = failing
        self.seen: list[dict[str, Any]] = []

    def publish(self, events: Any) -> list[int]:
        self.seen = list(events)
        return sorted(self.failing)


def test_a_failed_event_makes_the_stream_retry_from_its_record() -> None:
    records = [_record(10 + n, _ended(f"t{n}")) for n in range(3)]  # 2 events each
    sink = _FailingAt({3})  # the second event of the second record
    assert handle(records, sink) == {"batchItemFailures": [{"itemIdentifier": "11"}]}
    assert [e["type"] for e in sink.seen] == ["TransactionStarted", "TransactionEnded"] * 3


def test_unreadable_records_are_skipped_not_fatal() -> None:
    sink = _FailingAt(set())
    bad = [{"eventName": "INSERT"}, {"eventName": "REMOVE", "dynamodb": {}}, {"eventName": "INSERT", "dynamodb": 5}]
    assert handle([*bad, _record(3, _ended("x"))], sink) == {"batchItemFailures": []}
    assert len(sink.seen) == 2


class _Recording:
    def __init__(self, fail_code: str | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.fail_code = fail_code

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        if self.fail_code:
            return {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": self.fail_code}] + [{"EventId": "x"}] * (len(Entries) - 1),
            }
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(n)} for n in range(len(Entries))]}


def test_the_sink_sends_at_most_ten_entries_per_call_and_reports_failed_entries() -> None:
    client = _Recording()
    events = [
        {"type": "CallCompleted", "id": str(n), "chargePointId": "CP1", "at": None, "detail": {}} for n in range(23)
    ]
    assert EventBridgeSink(client, "bus").publish(events) == []
    assert [len(c) for c in client.calls] == [MAX_ENTRIES, MAX_ENTRIES, 3]
    entry = client.calls[0][0]
    assert entry["Source"] == EVENT_SOURCE and entry["DetailType"] == "CallCompleted" and entry["EventBusName"] == "bus"
    assert json.loads(entry["Detail"]) == events[0]
    failing = _Recording("ThrottlingException")
    assert EventBridgeSink(failing, "bus").publish(events) == [0, 10, 20]
