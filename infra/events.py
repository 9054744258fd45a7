"""Domain events (DESIGN §11): the stage's EventBridge bus, its archive, and the stream that feeds it.

The events publisher (``lambdas.events_publisher.handler``, made in infra/processing.py) reads the
table's change stream through an event source mapping and puts each event on the bus (``Source``
``ocpp.csms``, ``DetailType`` the event's type, ``Detail`` the whole event). The mapping's filter
lets through only the inserts and changes of the items that can make an event
(``ocpp_core.events.EVENT_SOURCE_SORT_KEYS``), and of a charger item only its writes that are not
a frame's ``lastSeen`` touch: the other writes of every frame (meter values, idempotency records,
the outbox, the touch) never invoke the function, and filtered-out records cost nothing
(https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html).

With ``events_queue`` (infra/config.py) an example rule sends ``TransactionEnded`` to an SQS queue;
docs/deployment.md ("Events and files") shows its pattern and how to add another rule by hand.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.processing import dead_letter_queue
from lambdas.events_publisher import EVENT_BUS_NAME as EVENT_BUS_ENV
from ocpp_core import keys
from ocpp_core.events import EVENT_SOURCE, EVENT_SOURCE_SORT_KEYS, EventType

# The event source mapping on the stream
# (https://docs.aws.amazon.com/lambda/latest/dg/with-ddb.html, .../services-ddb-batchfailurereporting.html):
# from the oldest record kept (24 hours), in batches of up to 100 gathered for at most 1 s; a
# batch that fails is split in two to find the bad record, retried up to 10 times, and given up
# after a day (the stream's retention anyway): then the failure goes to the queue as a pointer to
# the records (shard and sequence numbers), not the records themselves.
STREAM_BATCH_SIZE = 100
STREAM_MAX_BATCHING_WINDOW = cdk.Duration.seconds(1)
STREAM_RETRY_ATTEMPTS = 10
STREAM_MAX_RECORD_AGE = cdk.Duration.days(1)
#: what Lambda needs to poll a DynamoDB stream, on that stream alone
#: (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/iam-policy-example-lamda-process-dynamodb-streams.html)
STREAM_READ_ACTIONS = (
    "dynamodb:DescribeStream",
    "dynamodb:GetRecords",
    "dynamodb:GetShardIterator",
    "dynamodb:ListStreams",
)

#: the example rule's event type
EXAMPLE_RULE_TYPE = EventType.TRANSACTION_ENDED
#: Consumers that fail a message this often leave it in the example queue's dead-letter queue.
EXAMPLE_MAX_RECEIVE_COUNT = 5


def bus_name(stage: str) -> str:
    """Bus names are per account and region: the stage's own."""
    return f"ocpp-csms-{stage}"


def archive_name(stage: str) -> str:
    """Archive names are per account and region too (at most 48 characters: a stage has 20)."""
    return f"ocpp-csms-{stage}-events"


def stream_filter_patterns() -> list[dict[str, Any]]:
    """The Lambda filter patterns (a record passes if one matches): inserts and changes of the items
    whose sort key can make an event, a charger item's only when its write was not a ``lastSeen``
    touch (``keys.WRITE_KIND``; ``ocpp_core.events.passes_stream_filter`` is the same rule).

    Exact sort keys match as values, the ones ending in ``#`` as prefixes
    (https://docs.aws.amazon.com/lambda/latest/dg/with-ddb-filtering.html); removals (TTL deletions)
    make no event. ``anything-but`` is the filter syntax's "Not"
    (https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html#filtering-syntax),
    and, as every comparison there, it needs the attribute present: a charger record whose new
    image has no write kind is dropped (every write of the adapter sets one). Touches are most of
    the table's writes (every Heartbeat's), so most charger records invoke nothing.
    """
    others = [{"prefix": key} if key.endswith("#") else key for key in EVENT_SOURCE_SORT_KEYS if key != keys.CHARGER_SK]
    changes = ["INSERT", "MODIFY"]
    return [
        {"eventName": changes, "dynamodb": {"Keys": {keys.SK: {"S": others}}}},
        {
            "eventName": changes,
            "dynamodb": {
                "Keys": {keys.SK: {"S": [keys.CHARGER_SK]}},
                "NewImage": {keys.WRITE_KIND: {"S": [{"anything-but": [keys.TOUCH_WRITE]}]}},
            },
        },
    ]


def example_rule_pattern() -> dict[str, list[str]]:
    """The example rule's event pattern, as EventBridge (and docs/deployment.md) spells it."""
    return {"source": [EVENT_SOURCE], "detail-type": [EXAMPLE_RULE_TYPE.value]}


class DomainEvents(Construct):
    """The bus with its archive, the stream's event source mapping and its failure queue, the
    publisher's permissions (``events:PutEvents`` on this bus, reading this stream), and the
    optional example rule."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        table: dynamodb.Table,
        publisher: lambda_.Function,
        archive_days: int,
        example_queue: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        stream_arn = table.table_stream_arn
        if stream_arn is None:
            raise ValueError("the events publisher needs the table's stream (infra/state.py)")

        self.bus = events.EventBus(self, "Bus", event_bus_name=bus_name(stage))
        # Replays (docs/deployment.md) send archived events back to this bus; 0 days keeps them for ever.
        self.archive = self.bus.archive(
            "Archive",
            archive_name=archive_name(stage),
            description=f"OCPP CSMS {stage}: every domain event of the bus",
            event_pattern=events.EventPattern(source=[EVENT_SOURCE]),
            retention=cdk.Duration.days(archive_days) if archive_days else None,
        )

        publisher.add_environment(EVENT_BUS_ENV, self.bus.event_bus_name)
        self.bus.grant_put_events_to(publisher)
        publisher.add_to_role_policy(iam.PolicyStatement(actions=list(STREAM_READ_ACTIONS), resources=[stream_arn]))

        #: batches given up on (pointers to their stream records)
        self.failure_queue = dead_letter_queue(self, "StreamFailures")
        self.mapping = lambda_.EventSourceMapping(
            self,
            "StreamMapping",
            target=publisher,
            event_source_arn=stream_arn,
            starting_position=lambda_.StartingPosition.TRIM_HORIZON,
            batch_size=STREAM_BATCH_SIZE,
            max_batching_window=STREAM_MAX_BATCHING_WINDOW,
            bisect_batch_on_error=True,
            retry_attempts=STREAM_RETRY_ATTEMPTS,
            max_record_age=STREAM_MAX_RECORD_AGE,
            report_batch_item_failures=True,
            on_failure=event_sources.SqsDlq(self.failure_queue),
            filters=[lambda_.FilterCriteria.filter(pattern) for pattern in stream_filter_patterns()],
        )

        self.example_queue: sqs.Queue | None = None
        self.example_dead_letter_queue: sqs.Queue | None = None
        self.example_rule: events.Rule | None = None
        if example_queue:
            self._example_rule(stage)

    def _example_rule(self, stage: str) -> None:
        """``TransactionEnded`` events to an encrypted queue (for a billing system, say). What
        EventBridge cannot deliver after its retries, and what consumers fail
        ``EXAMPLE_MAX_RECEIVE_COUNT`` times, lands in the dead-letter queue."""
        dlq = dead_letter_queue(self, "TransactionEndedDeadLetters")
        queue = sqs.Queue(
            self,
            "TransactionEndedQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=cdk.Duration.days(14),
            dead_letter_queue=sqs.DeadLetterQueue(max_receive_count=EXAMPLE_MAX_RECEIVE_COUNT, queue=dlq),
        )
        pattern = example_rule_pattern()
        self.example_rule = events.Rule(
            self,
            "TransactionEndedRule",
            event_bus=self.bus,
            description=f"OCPP CSMS {stage}: example rule, TransactionEnded events to an SQS queue",
            event_pattern=events.EventPattern(source=pattern["source"], detail_type=pattern["detail-type"]),
            # EventBridge's own retry policy (24 hours, 185 attempts) before the dead-letter queue:
            # https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rule-dlq.html
            targets=[targets.SqsQueue(queue, dead_letter_queue=dlq)],
        )
        self.example_queue = queue
        self.example_dead_letter_queue = dlq
