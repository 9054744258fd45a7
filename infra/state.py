"""State: the one DynamoDB table every component shares (layout in ``ocpp_core/keys.py``)."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from ocpp_core import keys


class StateTable(Construct):
    """On-demand table with point-in-time recovery, the TTL attribute ``expiresAt`` and a change stream
    of new and old images."""

    def __init__(self, scope: Construct, construct_id: str, *, deletion_protection: bool, retain: bool) -> None:
        super().__init__(scope, construct_id)
        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=keys.PK, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=keys.SK, type=dynamodb.AttributeType.STRING),
            # Traffic follows charger behaviour (boot storms after an outage): no capacity to plan.
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            # Idempotency records and pending calls expire; readers still check it (deletion is lazy).
            time_to_live_attribute=keys.TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=deletion_protection,
            # The domain events are derived from the change stream (lambdas/events_publisher.py):
            # a state change is told by the old and the new item together. Stream records stay
            # 24 hours (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html).
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            removal_policy=cdk.RemovalPolicy.RETAIN if retain else cdk.RemovalPolicy.DESTROY,
        )
        # GET /chargers pages through this instead of scanning the table (ocpp_core/keys.py).
        self.table.add_global_secondary_index(
            index_name=keys.LIST_INDEX,
            partition_key=dynamodb.Attribute(name=keys.LIST_PK, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=keys.LIST_SK, type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
