"""Monitoring: the dashboard a CPO opens first, and the alarms that page someone.

Top to bottom the dashboard follows a frame's path: chargers connected to the bridge, frames
in and out, the NLB and the tasks, the IoT rules, the processor and its EMF metrics, the
operator calls, the other functions (lifecycle, operator API, outbox timer), the dead-letter
queues, every alarm's state, then the events publisher (DESIGN §11). Every function has its Errors
and Throttles alarms; the events publisher also its IteratorAge (how far behind the table's stream).

Metric sources: the bridge's EMF metrics (``OCPP/Bridge``, ``Service=bridge``, ``Stage``), the
Lambda handlers' Powertools EMF metrics (``OCPP/CSMS``, dimensions ``service`` = the function's
service name and ``Stage``: a SEARCH expression picks them up for every function of this stage),
and AWS's own namespaces (per resource, so per stage already). Two stages in one account share
the EMF namespaces; the ``Stage`` dimension keeps each stage's graphs, alarms and autoscaling to
its own tasks and functions (DESIGN §8).
"""

from __future__ import annotations

from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_cloudwatch as cw
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.bridge_service import BROKER_REACHABLE, CONNECTED_CHARGERS, bridge_metric

CSMS_METRICS_NAMESPACE = "OCPP/CSMS"
PROCESSOR_EMF_METRICS = ("MessagesProcessed", "CallErrors", "DuplicateMessages", "HandlerFailures", "HookFailures")
CALL_EMF_METRICS = ("CallsCreated", "CallsCompleted", "CallsTimedOut")
#: The events publisher is this far behind the table's change stream: events reach consumers late.
#: Records older than a day are given up on (infra/events.py), so a lag of minutes is worth a page.
STREAM_ITERATOR_AGE_ALARM_MS = 10 * 60 * 1000
BRIDGE_PROBLEM_METRICS = ("AuthFailures", "HandshakeRejections", "TakeOvers", "MqttReconnects", "QueueDrops")

ONE_MINUTE = cdk.Duration.minutes(1)
FIVE_MINUTES = cdk.Duration.minutes(5)


#: the Powertools default dimension the handlers add (lambdas/observability.py)
STAGE_DIMENSION = "Stage"


def csms_search(
    metric_name: str, *, stage: str, statistic: str = "Sum", period: cdk.Duration = ONE_MINUTE
) -> cw.MathExpression:
    """Every ``service`` of this stage that emits ``metric_name`` (processor, API, lifecycle handler)."""
    return cw.MathExpression(
        expression=(
            f"SEARCH('{{{CSMS_METRICS_NAMESPACE},{STAGE_DIMENSION},service}} "
            f'MetricName="{metric_name}" {STAGE_DIMENSION}="{stage}"\', '
            f"'{statistic}', {int(period.to_seconds())})"
        ),
        using_metrics={},
        label=metric_name,
        period=period,
    )


def iot_rule_metric(metric_name: str, rule_name: str) -> cw.Metric:
    return cw.Metric(
        namespace="AWS/IoT",
        metric_name=metric_name,
        dimensions_map={"RuleName": rule_name},
        statistic="Sum",
        period=ONE_MINUTE,
        label=f"{metric_name} {rule_name}",
    )


class Monitoring(Construct):
    """SNS alarm topic (optional e-mail subscription), alarms and the dashboard."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        alarm_email: str | None,
        functions: Mapping[str, lambda_.Function],
        message_processor: lambda_.Function,
        rule_names: Mapping[str, str],
        dead_letter_queues: Mapping[str, sqs.IQueue],
        load_balancer: elbv2.NetworkLoadBalancer,
        target_group: elbv2.NetworkTargetGroup,
        service: ecs.FargateService,
        table: dynamodb.ITable,
        http_api: apigwv2.HttpApi,
        connected_drop_std_devs: float,
        stream_consumer: lambda_.IFunction | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        self._stage = stage

        self.topic = sns.Topic(self, "AlarmTopic", display_name=f"OCPP CSMS {stage} alarms", enforce_ssl=True)
        # The topic policy CDK writes for enforce_ssl replaces SNS's default one: say explicitly
        # that this account's CloudWatch alarms may publish.
        self.topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="CloudWatchAlarmsPublish",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[self.topic.topic_arn],
                conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
            )
        )
        if alarm_email:
            self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
        self._action = cw_actions.SnsAction(self.topic)
        self.alarms: list[cw.AlarmBase] = []

        # --- metrics ----------------------------------------------------------------------
        # Every task emits the ConnectedChargers gauge on the same interval (BRIDGE_METRICS_INTERVAL),
        # so its average over a minute is the per-task mean (the scaling policy's input), and the
        # fleet total is that mean times the running tasks. A plain Sum would count each task
        # once per sample, and samples drift across minute boundaries.
        connected_per_task = bridge_metric(
            CONNECTED_CHARGERS, stage=stage, statistic="Average", label="Per task (average)"
        )
        # Per task, 1 or 0 at each flush: the minute's minimum is 0 as soon as one task lost IoT Core.
        broker_reachable = bridge_metric(
            BROKER_REACHABLE, stage=stage, statistic="Minimum", label="Broker reachable (worst task)"
        )
        running_tasks = cw.Metric(
            namespace="ECS/ContainerInsights",
            metric_name="RunningTaskCount",
            dimensions_map={"ClusterName": service.cluster.cluster_name, "ServiceName": service.service_name},
            statistic="Average",
            period=ONE_MINUTE,
            label="Running tasks",
        )
        connected_total = cw.MathExpression(
            expression="perTask * tasks",
            using_metrics={"perTask": connected_per_task, "tasks": running_tasks},
            label="Connected chargers",
            period=ONE_MINUTE,
        )
        frames_in = bridge_metric("FramesIn", stage=stage, label="Frames in (chargers to CSMS)")
        frames_out = bridge_metric("FramesOut", stage=stage, label="Frames out (CSMS to chargers)")
        healthy = target_group.metrics.healthy_host_count(period=ONE_MINUTE, statistic="Minimum", label="Healthy tasks")
        unhealthy = target_group.metrics.un_healthy_host_count(
            period=ONE_MINUTE, statistic="Maximum", label="Unhealthy tasks"
        )

        # --- alarms -------------------------------------------------------------------------
        for handler, function in functions.items():
            label = handler.split(".")[-2]
            # No invocation, no error: missing data is fine.
            self._alarm(
                f"{_pascal(label)}Errors",
                metric=function.metric_errors(period=FIVE_MINUTES, statistic="Sum"),
                threshold=1,
                description=f"{label}: the function raised (it should answer every input itself)",
            )
            self._alarm(
                f"{_pascal(label)}Throttles",
                metric=function.metric_throttles(period=FIVE_MINUTES, statistic="Sum"),
                threshold=1,
                description=f"{label}: invocations throttled (concurrency limit reached)",
            )
        # The outbox timer counts, once an hour, the valid charger certificates that end within 30
        # days (lambdas/outbox_sender.py): renew them (GET /certificates?expiringWithinDays=30).
        self._alarm(
            "CertificatesExpiring",
            metric=cw.Metric(
                namespace=CSMS_METRICS_NAMESPACE,
                metric_name="TimerCertificatesExpiring",
                dimensions_map={"service": "ocpp-timer", STAGE_DIMENSION: stage},
                statistic="Maximum",
                period=cdk.Duration.hours(1),
            ),
            threshold=1,
            description="Charger certificates end within 30 days: renew them "
            "(2.x TriggerMessage SignChargingStationCertificate, 1.6 ExtendedTriggerMessage SignChargePointCertificate)",
        )
        for name, queue in dead_letter_queues.items():
            self._alarm(
                f"{name}Depth",
                metric=queue.metric_approximate_number_of_messages_visible(period=FIVE_MINUTES, statistic="Maximum"),
                threshold=1,
                description=f"{name}: messages are waiting in the dead-letter queue",
            )
        if stream_consumer is not None:
            # IteratorAge: the age of the last record of each batch when the function got it
            # (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html). No
            # data means no record arrived: nothing is late.
            self._alarm(
                "EventsStreamIteratorAge",
                metric=stream_consumer.metric("IteratorAge", period=FIVE_MINUTES, statistic="Maximum"),
                threshold=STREAM_ITERATOR_AGE_ALARM_MS,
                evaluation_periods=2,
                description="Events publisher: more than 10 minutes behind the table's change stream for 10 "
                "minutes (failing batches being retried, or throttled); events reach the bus late",
            )
        self._alarm(
            "UnhealthyBridgeTasks",
            metric=unhealthy,
            threshold=1,
            evaluation_periods=3,
            description="NLB: a bridge task failed its liveness check (/health/live) for 3 minutes: "
            "the process stopped serving; ECS replaces it (IoT Core reachability is BridgeBrokerUnreachable)",
        )
        # The bridge keeps its sockets and queues through a broker outage (liveness is not
        # readiness): this is how someone learns that frames are waiting. 3 of 5 minutes rides out
        # a reconnect; no data means no task, which NoHealthyBridgeTask reports.
        self._alarm(
            "BridgeBrokerUnreachable",
            metric=broker_reachable,
            threshold=1,
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=5,
            datapoints_to_alarm=3,
            description="Bridge: a task could not reach IoT Core in 3 of the last 5 minutes "
            "(NAT, VPC endpoint, IoT Core or its quota); chargers stay connected, their frames wait",
        )
        # No data here means no target group metrics at all: the bridge is gone.
        self._alarm(
            "NoHealthyBridgeTask",
            metric=healthy,
            threshold=1,
            comparison=cw.ComparisonOperator.LESS_THAN_THRESHOLD,
            evaluation_periods=2,
            missing=cw.TreatMissingData.BREACHING,
            description="NLB: no healthy bridge task, chargers cannot connect",
        )
        # A sudden drop: below the band CloudWatch learns from the metric's own history (it needs
        # a few days of data before it fires). No data is covered by NoHealthyBridgeTask.
        drop = cw.AnomalyDetectionAlarm(
            self,
            "ConnectedChargersDrop",
            metric=connected_total,
            std_devs=connected_drop_std_devs,
            comparison_operator=cw.ComparisonOperator.LESS_THAN_LOWER_THRESHOLD,
            evaluation_periods=3,
            datapoints_to_alarm=3,
            treat_missing_data=cw.TreatMissingData.NOT_BREACHING,
            alarm_name=self._alarm_name("ConnectedChargersDrop"),
            alarm_description="Connected chargers fell below their expected band for 3 minutes",
        )
        self._wire(drop)

        # --- dashboard ----------------------------------------------------------------------
        self.dashboard = cw.Dashboard(
            self,
            "Dashboard",
            dashboard_name=cdk.Fn.join("-", ["OCPP-CSMS", stage, stack.region]),
            default_interval=cdk.Duration.hours(3),
        )
        graph = _graph
        rule_list = list(rule_names.values())
        other_functions = [f for f in functions.values() if f is not message_processor]
        self.dashboard.add_widgets(
            cw.TextWidget(
                markdown=f"# OCPP CSMS — {stage}\nChargers → NLB → bridge (Fargate) → IoT Core → rules → "
                "Lambda → DynamoDB; replies back through IoT Core. Alarms go to the SNS topic "
                "in this stack's outputs.",
                width=24,
                height=2,
            )
        )
        self.dashboard.add_widgets(
            cw.SingleValueWidget(
                title="Connected chargers", metrics=[connected_total], width=6, height=6, sparkline=True
            ),
            graph("Connected chargers", [connected_total], right=[connected_per_task], width=9),
            graph("Frames", [frames_in, frames_out], width=9),
        )
        self.dashboard.add_widgets(
            graph(
                "Bridge: refusals and reconnects; IoT Core reachable (right)",
                [bridge_metric(name, stage=stage) for name in BRIDGE_PROBLEM_METRICS],
                right=[broker_reachable],
            ),
            graph(
                "NLB: bridge tasks and flows",
                [healthy, unhealthy],
                right=[
                    load_balancer.metrics.active_flow_count(period=ONE_MINUTE, label="Active flows"),
                    load_balancer.metrics.new_flow_count(period=ONE_MINUTE, label="New flows"),
                ],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Bridge tasks: CPU and memory (%)",
                [
                    service.metric_cpu_utilization(period=ONE_MINUTE, label="CPU"),
                    service.metric_memory_utilization(period=ONE_MINUTE, label="Memory"),
                ],
                right=[running_tasks],
            ),
            graph(
                "IoT rules: matched, failed, throttled",
                [iot_rule_metric("TopicMatch", name) for name in rule_list],
                right=[
                    *(iot_rule_metric("Failure", name) for name in rule_list),
                    *(iot_rule_metric("RuleMessageThrottled", name) for name in rule_list),
                ],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Message processor: invocations, errors, throttles",
                [message_processor.metric_invocations(period=ONE_MINUTE, statistic="Sum")],
                right=[
                    message_processor.metric_errors(period=ONE_MINUTE, statistic="Sum"),
                    message_processor.metric_throttles(period=ONE_MINUTE, statistic="Sum"),
                ],
                width=8,
            ),
            graph(
                "Message processor: duration (ms)",
                [
                    message_processor.metric_duration(period=ONE_MINUTE, statistic="p50", label="p50"),
                    message_processor.metric_duration(period=ONE_MINUTE, statistic="p99", label="p99"),
                ],
                width=8,
            ),
            graph(
                "Message processor: concurrency",
                [
                    message_processor.metric(
                        "ConcurrentExecutions", period=ONE_MINUTE, statistic="Maximum", label="Concurrent executions"
                    )
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Processor (EMF): messages and failures",
                [csms_search(name, stage=stage) for name in PROCESSOR_EMF_METRICS],
            ),
            graph(
                "Operator calls: created, completed, timed out",
                [csms_search(name, stage=stage) for name in CALL_EMF_METRICS],
                right=[
                    cw.MathExpression(
                        expression="SUM(created) - SUM(completed) - SUM(timedOut)",
                        using_metrics={
                            "created": csms_search("CallsCreated", stage=stage),
                            "completed": csms_search("CallsCompleted", stage=stage),
                            "timedOut": csms_search("CallsTimedOut", stage=stage),
                        },
                        label="Opened minus closed (pending growth)",
                        period=ONE_MINUTE,
                    )
                ],
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Other functions: lifecycle, operator API, outbox timer, events, files",
                [f.metric_invocations(period=ONE_MINUTE, statistic="Sum", label=_short(f)) for f in other_functions],
                right=[
                    *(f.metric_errors(period=ONE_MINUTE, statistic="Sum") for f in other_functions),
                    *(f.metric_throttles(period=ONE_MINUTE, statistic="Sum") for f in other_functions),
                    csms_search("ConnectionEvents", stage=stage),  # the lifecycle handler's EMF count
                ],
                width=8,
            ),
            graph(
                "Operator API: requests and errors",
                [http_api.metric_count(period=ONE_MINUTE, label="Requests")],
                right=[
                    http_api.metric_client_error(period=ONE_MINUTE, label="4xx"),
                    http_api.metric_server_error(period=ONE_MINUTE, label="5xx"),
                ],
                width=8,
            ),
            graph(
                "DynamoDB: consumed capacity",
                [
                    table.metric_consumed_read_capacity_units(period=ONE_MINUTE, label="Read units"),
                    table.metric_consumed_write_capacity_units(period=ONE_MINUTE, label="Write units"),
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            graph(
                "Dead-letter queues: messages waiting",
                [
                    queue.metric_approximate_number_of_messages_visible(
                        period=ONE_MINUTE, statistic="Maximum", label=name
                    )
                    for name, queue in dead_letter_queues.items()
                ],
            ),
            cw.AlarmStatusWidget(title="Alarms", alarms=list(self.alarms), width=12, height=6),
        )
        if stream_consumer is not None:
            self.dashboard.add_widgets(
                graph(
                    "Events publisher: invocations, errors; iterator age (ms, right)",
                    [
                        stream_consumer.metric_invocations(period=ONE_MINUTE, statistic="Sum"),
                        stream_consumer.metric_errors(period=ONE_MINUTE, statistic="Sum"),
                    ],
                    right=[stream_consumer.metric("IteratorAge", period=ONE_MINUTE, statistic="Maximum")],
                ),
            )

    # ------------------------------------------------------------------------------------------
    def _alarm(
        self,
        construct_id: str,
        *,
        metric: cw.IMetric,
        threshold: float,
        description: str,
        comparison: cw.ComparisonOperator = cw.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
        missing: cw.TreatMissingData = cw.TreatMissingData.NOT_BREACHING,
    ) -> cw.Alarm:
        alarm = cw.Alarm(
            self,
            construct_id,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm or evaluation_periods,
            treat_missing_data=missing,
            alarm_name=self._alarm_name(construct_id),
            alarm_description=description,
        )
        self._wire(alarm)
        return alarm

    def _alarm_name(self, construct_id: str) -> str:
        # Read in the notification's subject line: say which system and stage it is about.
        return f"OCPP-CSMS-{self._stage}-{construct_id}"

    def _wire(self, alarm: cw.AlarmBase) -> None:
        alarm.add_alarm_action(self._action)
        alarm.add_ok_action(self._action)  # someone paged wants to know when it is over
        self.alarms.append(alarm)


def _graph(
    title: str,
    left: list[cw.IMetric],
    *,
    right: list[cw.IMetric] | None = None,
    width: int = 12,
    height: int = 6,
) -> cw.GraphWidget:
    return cw.GraphWidget(title=title, left=left, right=right or [], width=width, height=height)


def _pascal(snake: str) -> str:
    return "".join(word.capitalize() for word in snake.split("_"))


def _short(function: lambda_.Function) -> str:
    return function.node.id
