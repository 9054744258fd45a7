"""The IoT topic rules, defined once.

``infra/`` creates AWS IoT topic rules from these, and the local rule emulator
(``local_stack.rules``) evaluates the same SQL against messages from mosquitto, so a Lambda
handler receives the same event shape locally and on AWS.

``topic(2)`` is the charger id as the topic says it: the IoT policy lets the bridge publish
only on ``ocpp/<id>/...`` for the client id it connected with, so the topic, not the body,
is the trusted source of the id.
"""

from __future__ import annotations

from dataclasses import dataclass

AWS_IOT_SQL_VERSION = "2016-03-23"


@dataclass(frozen=True, slots=True)
class RuleDefinition:
    name: str
    sql: str
    #: dotted path of the Lambda handler the rule invokes
    handler: str
    description: str


MESSAGE_RULE = RuleDefinition(
    name="ocpp_inbound_messages",
    sql="SELECT *, topic(2) AS topicChargePointId, timestamp() AS ruleTimestamp FROM 'ocpp/+/in'",
    handler="lambdas.message_processor.handler",
    description="Every OCPP-J frame a charger sends, wrapped by the bridge, to the message processor",
)

LIFECYCLE_RULE = RuleDefinition(
    name="ocpp_connection_events",
    sql="SELECT *, topic(2) AS topicChargePointId, timestamp() AS ruleTimestamp FROM 'ocpp/+/events'",
    handler="lambdas.lifecycle.handler",
    description="Charger connected / disconnected events from the bridge, to the presence handler",
)

RULES: tuple[RuleDefinition, ...] = (MESSAGE_RULE, LIFECYCLE_RULE)
