"""Processing: the Lambda handlers and the IoT topic rules that invoke them (DESIGN §1, §7).

One function per rule of the stage (``lambdas.rules.rules_for``: the stage's topic filters and
rule names; the SQL is built by the same code the local rule emulator evaluates), plus the
operator API function and the outbox timer (DESIGN §10), which an EventBridge rule invokes every
minute, and the three functions of DESIGN §11: the events publisher (the table's change stream
invokes it: infra/events.py), the files-received function (S3 invokes it: infra/files.py) and the
uploads function (the operator API's unauthenticated ``/upload/<token>`` routes: infra/api.py).
IoT rules invoke Lambda asynchronously; a
retry would arrive after the charger's call timed out, so there is none: a failed event goes to
a dead-letter queue to be looked at, and a rule that cannot invoke at all sends the message to its
error action (another queue).
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_iot as iot
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.nag import acknowledge
from lambdas.rules import AWS_IOT_SQL_VERSION, LIFECYCLE_RULE, MESSAGE_RULE, RULES, RuleDefinition

OPERATOR_API_HANDLER = "lambdas.operator_api.handler"
TIMER_HANDLER = "lambdas.timer.handler"
EVENTS_PUBLISHER_HANDLER = "lambdas.events_publisher.handler"
FILES_RECEIVED_HANDLER = "lambdas.files_received.handler"
UPLOADS_HANDLER = "lambdas.uploads.handler"

# EventBridge schedules have no second-level precision: "The finest resolution using a cron
# expression is one minute" (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html),
# and a rate expression counts whole minutes, hours or days, ``rate(1 minute)`` being the
# shortest (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-rate-expressions.html).
# The run lands somewhere within its minute, and its target may start several seconds after
# that. So a call unanswered past its timeout (OCPP_CALL_TIMEOUT, 30 s) is released up to about a
# minute later on AWS; the local stack runs the timer every few seconds (OCPP_LOCAL_TIMER_S).
TIMER_SCHEDULE = events.Schedule.rate(cdk.Duration.minutes(1))
#: A run may take the whole minute before the next one starts.
TIMER_TIMEOUT = cdk.Duration.seconds(60)
#: Two runs that meet are harmless (every step is a conditional write) but useless.
TIMER_RESERVED_CONCURRENCY = 1

#: Lambda's own defaults would retry twice over up to six hours; an OCPP reply is worthless
#: after the charger's timeout (tens of seconds), and every handler is idempotent anyway.
ASYNC_RETRY_ATTEMPTS = 0
ASYNC_MAX_EVENT_AGE = cdk.Duration.seconds(60)

# API Gateway gives up on an integration after 30 s; the API's ?wait= stays below that.
OPERATOR_API_TIMEOUT = cdk.Duration.seconds(29)

#: A batch of 100 stream records is at most 10 PutEvents calls (10 entries each) and their retries.
EVENTS_PUBLISHER_TIMEOUT = cdk.Duration.seconds(60)
#: Recording a file is one idempotent write: S3's asynchronous invocation may retry it (Lambda's
#: default, twice), and what still fails waits in FailedInvocations with the S3 event.
FILES_RECEIVED_TIMEOUT = cdk.Duration.seconds(30)
FILES_RECEIVED_RETRY_ATTEMPTS = 2
FILES_RECEIVED_MAX_EVENT_AGE = cdk.Duration.hours(6)
#: The uploads function answers API Gateway, which gives up after 30 s (as for the operator API).
UPLOADS_TIMEOUT = cdk.Duration.seconds(29)
#: A request holds the file up to three times (base64 text, bytes, the parsed part): 4 MiB files
#: need tens of MiB; more memory also means more CPU for the base64 and the S3 put.
UPLOADS_MEMORY_MIB = 512

_SERVICE_NAMES = {
    MESSAGE_RULE.handler: "ocpp-message-processor",
    LIFECYCLE_RULE.handler: "ocpp-lifecycle",
    OPERATOR_API_HANDLER: "ocpp-operator-api",
}


def service_name(handler: str) -> str:
    """Powertools ``service`` (log field and EMF dimension) for a handler."""
    return _SERVICE_NAMES.get(handler, "ocpp-" + handler.split(".")[-2].replace("_", "-"))


def dead_letter_queue(scope: Construct, construct_id: str) -> sqs.Queue:
    """An encrypted, TLS-only queue that keeps what failed for 14 days, for someone to look at."""
    queue = sqs.Queue(
        scope,
        construct_id,
        # The longest SQS keeps anything: time to notice the alarm and look.
        retention_period=cdk.Duration.days(14),
        encryption=sqs.QueueEncryption.SQS_MANAGED,
        enforce_ssl=True,
    )
    acknowledge(
        queue,
        "AwsSolutions-SQS3",
        "This queue is itself a dead-letter queue; nothing consumes it automatically.",
    )
    return queue


class Processing(Construct):
    """Lambda functions, topic rules with their permissions, async-invoke settings and DLQs, and
    the outbox timer's schedule."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        code: lambda_.Code,
        runtime: lambda_.Runtime,
        environment: Mapping[str, str],
        processor_memory_mib: int,
        processor_reserved_concurrency: int | None,
        xray: bool,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        rules: tuple[RuleDefinition, ...] = RULES,
    ) -> None:
        super().__init__(scope, construct_id)
        self._code = code
        self._runtime = runtime
        self._environment = dict(environment)
        self._tracing = lambda_.Tracing.ACTIVE if xray else lambda_.Tracing.DISABLED
        self._log_retention = log_retention
        self._removal_policy = removal_policy

        #: async invocations that failed (function error, or too old to run)
        self.failure_queue = dead_letter_queue(self, "FailedInvocations")
        #: messages a rule could not deliver to its function (the rules' error action)
        self.rule_error_queue = dead_letter_queue(self, "RuleErrors")

        self.functions: dict[str, lambda_.Function] = {}
        self.topic_rules: dict[str, iot.CfnTopicRule] = {}
        #: base rule name -> physical rule name (the RuleName dimension of AWS/IoT metrics)
        self.rule_names: dict[str, str] = {}

        for rule in rules:
            is_processor = rule.handler == MESSAGE_RULE.handler
            function = self._function(
                _construct_id(rule.handler),
                handler=rule.handler,
                description=rule.description,
                memory_mib=processor_memory_mib if is_processor else 256,
                timeout=cdk.Duration.seconds(15),
                reserved_concurrency=processor_reserved_concurrency if is_processor else None,
            )
            function.configure_async_invoke(
                retry_attempts=ASYNC_RETRY_ATTEMPTS,
                max_event_age=ASYNC_MAX_EVENT_AGE,
                on_failure=destinations.SqsDestination(self.failure_queue),
            )
            self.functions[rule.handler] = function

        self.message_processor = self.functions[MESSAGE_RULE.handler]
        self.lifecycle = self.functions[LIFECYCLE_RULE.handler]
        self.operator_api = self._function(
            "OperatorApi",
            handler=OPERATOR_API_HANDLER,
            description="Operator HTTP API: registry, id tags, transactions, CSMS-initiated calls",
            memory_mib=processor_memory_mib,
            timeout=OPERATOR_API_TIMEOUT,
            reserved_concurrency=None,
        )
        self.functions[OPERATOR_API_HANDLER] = self.operator_api

        self.timer = self._function(
            "OutboxTimer",
            handler=TIMER_HANDLER,
            description="Outbox timer: applies CSMS call timeouts and sends queued calls",
            memory_mib=256,
            timeout=TIMER_TIMEOUT,
            reserved_concurrency=TIMER_RESERVED_CONCURRENCY,
        )
        # EventBridge invokes it asynchronously. A run that failed, or waited a minute behind a
        # run still busy (the reserved concurrency throttles it), is worth nothing: the next
        # minute's run does the same work. So no retry, neither by Lambda nor by EventBridge, and
        # no failure queue: there is nothing in the event to look at; TimerErrors says it failed.
        self.timer.configure_async_invoke(retry_attempts=0, max_event_age=ASYNC_MAX_EVENT_AGE)
        self.timer_schedule = events.Rule(
            self,
            "OutboxTimerSchedule",
            schedule=TIMER_SCHEDULE,
            description="Runs the outbox timer every minute (DESIGN §10)",
            targets=[targets.LambdaFunction(self.timer, retry_attempts=0)],
        )
        self.functions[TIMER_HANDLER] = self.timer

        # Domain events (DESIGN §11): invoked by the event source mapping on the table's stream
        # (infra/events.py), which retries and bisects a failed batch itself; never asynchronously.
        self.events_publisher = self._function(
            "EventsPublisher",
            handler=EVENTS_PUBLISHER_HANDLER,
            description="Domain events: the table's change stream to the stage's EventBridge bus",
            memory_mib=256,
            timeout=EVENTS_PUBLISHER_TIMEOUT,
            reserved_concurrency=None,
        )
        self.functions[EVENTS_PUBLISHER_HANDLER] = self.events_publisher

        # Files chargers upload: S3 invokes it asynchronously for each new object under uploads/
        # (infra/files.py).
        self.files_received = self._function(
            "FilesReceived",
            handler=FILES_RECEIVED_HANDLER,
            description="Files received: records each upload (diagnostics, logs) a charger put in the files bucket",
            memory_mib=256,
            timeout=FILES_RECEIVED_TIMEOUT,
            reserved_concurrency=None,
        )
        self.files_received.configure_async_invoke(
            retry_attempts=FILES_RECEIVED_RETRY_ATTEMPTS,
            max_event_age=FILES_RECEIVED_MAX_EVENT_AGE,
            on_failure=destinations.SqsDestination(self.failure_queue),
        )
        self.functions[FILES_RECEIVED_HANDLER] = self.files_received

        # Uploads through the API (``POST``/``PUT /upload/<token>``, infra/api.py): API Gateway
        # invokes it synchronously and the charger sees its answer; never asynchronously.
        self.uploads = self._function(
            "Uploads",
            handler=UPLOADS_HANDLER,
            description="Uploads: diagnostics and logs chargers POST (multipart) or PUT to /upload/<token>",
            memory_mib=UPLOADS_MEMORY_MIB,
            timeout=UPLOADS_TIMEOUT,
            reserved_concurrency=None,
        )
        self.functions[UPLOADS_HANDLER] = self.uploads

        # IoT Core assumes this role only to put undeliverable messages on the error queue.
        account = cdk.Stack.of(self).account
        self.rule_error_role = iam.Role(
            self,
            "RuleErrorActionRole",
            assumed_by=iam.ServicePrincipal("iot.amazonaws.com").with_conditions(
                {"StringEquals": {"aws:SourceAccount": account}}
            ),
            description="IoT topic rules: error action to the rule-errors queue",
        )
        self.rule_error_queue.grant_send_messages(self.rule_error_role)

        for rule in rules:
            function = self.functions[rule.handler]
            # The construct id comes from the base name: the stage is in the physical name only,
            # so the logical ids (and the rules of a deployed stage) stay what they were.
            base = rule.base_name or rule.name
            topic_rule = iot.CfnTopicRule(
                self,
                _construct_id(base) + "Rule",
                rule_name=rule.name,
                topic_rule_payload=iot.CfnTopicRule.TopicRulePayloadProperty(
                    sql=rule.sql,
                    aws_iot_sql_version=AWS_IOT_SQL_VERSION,
                    description=rule.description,
                    rule_disabled=False,
                    actions=[
                        iot.CfnTopicRule.ActionProperty(
                            lambda_=iot.CfnTopicRule.LambdaActionProperty(function_arn=function.function_arn)
                        )
                    ],
                    error_action=iot.CfnTopicRule.ActionProperty(
                        sqs=iot.CfnTopicRule.SqsActionProperty(
                            queue_url=self.rule_error_queue.queue_url,
                            role_arn=self.rule_error_role.role_arn,
                            use_base64=False,
                        )
                    ),
                ),
            )
            # The rule cannot create the permission on the role's policy: it needs it up front.
            topic_rule.node.add_dependency(self.rule_error_role)
            function.add_permission(
                _construct_id(base) + "Invoke",
                principal=iam.ServicePrincipal("iot.amazonaws.com"),
                action="lambda:InvokeFunction",
                source_arn=topic_rule.attr_arn,
                source_account=account,
            )
            self.topic_rules[base] = topic_rule
            self.rule_names[base] = rule.name

    def _function(
        self,
        construct_id: str,
        *,
        handler: str,
        description: str,
        memory_mib: int,
        timeout: cdk.Duration,
        reserved_concurrency: int | None,
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            self, construct_id + "Logs", retention=self._log_retention, removal_policy=self._removal_policy
        )
        environment = {**self._environment, "POWERTOOLS_SERVICE_NAME": service_name(handler)}
        function = lambda_.Function(
            self,
            construct_id,
            runtime=self._runtime,
            # Graviton: cheaper per GB-s, and every dependency is pure Python.
            architecture=lambda_.Architecture.ARM_64,
            handler=handler,
            code=self._code,
            description=description[:256],
            memory_size=memory_mib,
            timeout=timeout,
            environment=environment,
            reserved_concurrent_executions=reserved_concurrency,
            tracing=self._tracing,
            log_group=log_group,
        )
        acknowledge(
            function,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            "AWS-managed basic execution policy: CreateLogStream/PutLogEvents (and CreateLogGroup) only, "
            "which CDK attaches to every function role.",
        )
        acknowledge(
            function,
            "AwsSolutions-L1",
            f"{self._runtime.name}: the runtime of the interpreter that bundles and byte-compiles the code "
            "(infra/bundling.py), so the shipped bytecode is used at cold start; a newer runtime is a "
            "deliberate change (-c lambda_python=...).",
        )
        if self._tracing == lambda_.Tracing.ACTIVE:
            acknowledge(
                function,
                "AwsSolutions-IAM5[Resource::*]",
                "X-Ray active tracing: xray:PutTraceSegments and xray:PutTelemetryRecords support no "
                "resource-level permission.",
            )
        return function


def _construct_id(dotted: str) -> str:
    """``lambdas.message_processor.handler`` -> ``MessageProcessor``; ``ocpp_inbound_messages`` -> ``OcppInboundMessages``."""
    parts = dotted.split(".")
    name = parts[-2] if len(parts) >= 2 and parts[-1] == "handler" else parts[-1]
    return "".join(word.capitalize() for word in name.split("_"))
