"""The IoT topic rules, defined once.

``infra/`` creates AWS IoT topic rules from :func:`rules_for` (one set per stage, from the stage's
:class:`~ocpp_core.topics.Topics`), and the local rule emulator (``local_stack.rules``) evaluates
the same SQL against messages from mosquitto, so a Lambda handler receives the same event shape
locally and on AWS. :data:`RULES` is the set for the default topic root ``ocpp`` (the local stack).

Which charger a message is about: ``topicChargePointId`` is the topic level that holds the
charger id (``topic(n)``, n from :meth:`Topics.charger_level`). What makes the topic trustworthy
is who may publish there, not a per-charger restriction: the IoT policy (``infra/stack.py``) lets
only the bridge's task role publish on this stage's inbound and events topics (the Lambdas may
only publish on ``<root>/*/out``), and the bridge builds each topic from the charger id it
authenticated at the WebSocket handshake. It does *not* bind a topic to the MQTT client id it is
published from: one role holds every charger's connection, and the IoT policy variable
``${iot:ClientId}`` is defined for AWS IoT Core policies (attached to certificates, Cognito
identities and thing groups: https://docs.aws.amazon.com/iot/latest/developerguide/iot-policies.html,
https://docs.aws.amazon.com/iot/latest/developerguide/basic-policy-variables.html), not for the
task role's IAM policy; and the client id carries the stage prefix, which the topic does not.

Basic Ingest (https://docs.aws.amazon.com/iot/latest/developerguide/iot-basic-ingest.html): the
bridge may publish inbound frames to ``$aws/rules/<rule name>/<root>/<cp>/in``, which hands them
to the message rule without the broker (no messaging charge). That page says "the initial prefix
of a Basic Ingest topic ($aws/rules/rule_name) isn't available to the topic(Decimal) function",
and that the ``FROM`` clause is not what selects a Basic Ingest message (the rule name does); the
IoT SiteWise guide says the same of the rule's topic: "AWS IoT removes the Basic Ingest prefix
($aws/rules/rule-name/) from the topic that's visible to the rule action"
(https://docs.aws.amazon.com/iot-sitewise/latest/userguide/basic-ingest-rules.html). So the same
``topic(n)`` names the charger for both ways in: :func:`topic_seen_by_rule` is that documented
behaviour, for tests and the emulator. The message rule keeps its ``FROM`` filter, so a bridge
publishing on the plain topic (Basic Ingest off, or an older task during a rollout) still reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ocpp_core.topics import DEFAULT_TOPICS, Topics

AWS_IOT_SQL_VERSION = "2016-03-23"

#: Base names; a deployed stage prefixes them (:func:`rule_name`): rule names are account-wide.
MESSAGE_RULE_NAME = "ocpp_inbound_messages"
LIFECYCLE_RULE_NAME = "ocpp_connection_events"

MESSAGE_HANDLER = "lambdas.message_processor.handler"
LIFECYCLE_HANDLER = "lambdas.lifecycle.handler"

#: The Basic Ingest reserved prefix: ``$aws/rules/<rule name>/``.
BASIC_INGEST_PREFIX = "$aws/rules/"

# The rule adds the charger id from the topic and the broker's receive time to the payload.
_SQL = "SELECT *, topic({level}) AS topicChargePointId, timestamp() AS ruleTimestamp FROM '{topic_filter}'"


@dataclass(frozen=True, slots=True)
class RuleDefinition:
    #: the rule's name: the physical IoT rule name on AWS (unique in the account and region)
    name: str
    sql: str
    #: dotted path of the Lambda handler the rule invokes
    handler: str
    description: str
    #: the stage-independent name (:data:`MESSAGE_RULE_NAME`...), for construct ids
    base_name: str = ""


def rule_name(base_name: str, stage: str | None) -> str:
    """``<stage>_<base>`` (IoT rule names allow only ``[A-Za-z0-9_]``); the bare base without a stage."""
    if stage is None:
        return base_name
    return f"{stage.replace('-', '_')}_{base_name}"


def rules_for(topics: Topics = DEFAULT_TOPICS, stage: str | None = None) -> tuple[RuleDefinition, ...]:
    """The message rule and the lifecycle rule of one stage: its topic filters, its rule names."""
    level = topics.charger_level()
    return (
        RuleDefinition(
            name=rule_name(MESSAGE_RULE_NAME, stage),
            sql=_SQL.format(level=level, topic_filter=topics.filter("in")),
            handler=MESSAGE_HANDLER,
            description="Every OCPP-J frame a charger sends, wrapped by the bridge, to the message processor",
            base_name=MESSAGE_RULE_NAME,
        ),
        RuleDefinition(
            name=rule_name(LIFECYCLE_RULE_NAME, stage),
            sql=_SQL.format(level=level, topic_filter=topics.filter("events")),
            handler=LIFECYCLE_HANDLER,
            description="Charger connected / disconnected events from the bridge, to the presence handler",
            base_name=LIFECYCLE_RULE_NAME,
        ),
    )


def topic_seen_by_rule(published_topic: str) -> str:
    """The topic a rule's SQL functions see for a message published on ``published_topic``.

    A Basic Ingest topic ``$aws/rules/<rule>/<topic>`` is seen as ``<topic>`` (see the module
    docstring for the AWS documentation); any other topic as itself.
    """
    if not published_topic.startswith(BASIC_INGEST_PREFIX):
        return published_topic
    _rule, sep, rest = published_topic[len(BASIC_INGEST_PREFIX) :].partition("/")
    return rest if sep else ""


RULES: tuple[RuleDefinition, ...] = rules_for(DEFAULT_TOPICS)
MESSAGE_RULE, LIFECYCLE_RULE = RULES
