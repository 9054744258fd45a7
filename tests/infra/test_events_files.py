"""Events and files on AWS (DESIGN §11): the stream, the bus and its archive, the files bucket.

One synthesis of two stages side by side: dev as in cdk.json, prod with ``-c events_queue=true``
(the example rule), so that names are checked not to collide and the rule to exist only when asked.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match

from infra.config import ConfigError, StageConfig
from infra.events import example_rule_pattern
from infra.processing import EVENTS_PUBLISHER_HANDLER, FILES_RECEIVED_HANDLER, OPERATOR_API_HANDLER, UPLOADS_HANDLER
from local_stack.event_stream import matches_filter
from ocpp_core.events import EVENT_SOURCE, EVENT_SOURCE_SORT_KEYS, passes_stream_filter
from ocpp_core.keys import STATE_WRITE, TOUCH_WRITE, WRITE_KIND

from .support import (
    Synthesized,
    as_json,
    function,
    grants,
    nag_violations,
    policy_statements,
    role_of,
    synthesize_stages,
    wildcard_findings,
)

STAGES = ("dev", "prod")
DOCS = Path(__file__).parents[2] / "docs" / "deployment.md"


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Synthesized]]:
    yield synthesize_stages({"dev": {}, "prod": {"events_queue": "true"}}, tmp_path_factory.mktemp("cdk-events"))


@pytest.fixture(scope="module")
def dev(stages: dict[str, Synthesized]) -> Synthesized:
    return stages["dev"]


def role(synth: Synthesized, handler: str) -> str:
    return role_of(function(synth, handler)[1])


def only(synth: Synthesized, resource_type: str) -> tuple[str, dict[str, Any]]:
    ((logical_id, resource),) = synth.resources(resource_type).items()
    return logical_id, resource


def bucket_arn(stage: str, suffix: str = "") -> dict[str, Any]:
    """The files bucket's ARN as the stack spells it (from its name, env-agnostic stack)."""
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                f":s3:::ocpp-{stage}-files-",
                {"Ref": "AWS::AccountId"},
                "-",
                {"Ref": "AWS::Region"},
                *([suffix] if suffix else []),
            ],
        ]
    }


# --- the stream ------------------------------------------------------------------------------------


def test_the_table_streams_new_and_old_images(dev: Synthesized) -> None:
    dev.template.has_resource_properties(
        "AWS::DynamoDB::Table", {"StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"}}
    )


def test_the_stream_invokes_the_publisher_in_bisected_batches_with_a_failure_queue(dev: Synthesized) -> None:
    table, _ = only(dev, "AWS::DynamoDB::Table")
    publisher, _ = function(dev, EVENTS_PUBLISHER_HANDLER)
    _, mapping = only(dev, "AWS::Lambda::EventSourceMapping")
    props = mapping["Properties"]
    assert props["EventSourceArn"] == {"Fn::GetAtt": [table, "StreamArn"]}
    assert props["FunctionName"] == {"Ref": publisher}
    assert props["StartingPosition"] == "TRIM_HORIZON"
    assert (props["BatchSize"], props["MaximumBatchingWindowInSeconds"]) == (100, 1)
    assert props["BisectBatchOnFunctionError"] is True
    assert props["MaximumRetryAttempts"] == 10
    assert props["MaximumRecordAgeInSeconds"] == 86400
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = props["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    queue_props = dev.json["Resources"][queue]["Properties"]
    assert dev.json["Resources"][queue]["Type"] == "AWS::SQS::Queue"
    assert queue_props["SqsManagedSseEnabled"] is True
    # the publisher may send the failure records there
    assert ("sqs:SendMessage", as_json({"Fn::GetAtt": [queue, "Arn"]})) in grants(
        dev.json, role(dev, EVENTS_PUBLISHER_HANDLER)
    )


def _filter_patterns(synth: Synthesized) -> list[dict[str, Any]]:
    _, mapping = only(synth, "AWS::Lambda::EventSourceMapping")
    return [json.loads(criterion["Pattern"]) for criterion in mapping["Properties"]["FilterCriteria"]["Filters"]]


def test_the_filter_names_the_event_sort_keys_exactly_or_by_prefix(dev: Synthesized) -> None:
    others, charger = _filter_patterns(dev)
    assert others["eventName"] == charger["eventName"] == ["INSERT", "MODIFY"]
    values = others["dynamodb"]["Keys"]["sk"]["S"] + charger["dynamodb"]["Keys"]["sk"]["S"]
    expected = [{"prefix": key} if key.endswith("#") else key for key in EVENT_SOURCE_SORT_KEYS]
    assert sorted(map(str, values)) == sorted(map(str, expected))
    assert charger["dynamodb"]["Keys"]["sk"]["S"] == ["CHARGER"]  # exact: not CHARGER... items of other kinds
    assert charger["dynamodb"]["NewImage"] == {WRITE_KIND: {"S": [{"anything-but": [TOUCH_WRITE]}]}}


def _matches(pattern: Any, value: Any) -> bool:
    """Lambda event filtering for what the patterns use: objects nest (every field named must be
    there), a list is any of its values, ``{"prefix": p}`` matches strings starting with p,
    ``{"anything-but": [...]}`` any value present but those."""
    if isinstance(pattern, dict):
        return isinstance(value, Mapping) and all(k in value and _matches(p, value[k]) for k, p in pattern.items())

    def one(option: Any) -> bool:
        if isinstance(option, dict) and "prefix" in option:
            return isinstance(value, str) and value.startswith(option["prefix"])
        if isinstance(option, dict) and "anything-but" in option:
            return value not in option["anything-but"]
        return bool(option == value)

    return any(one(option) for option in pattern)


@pytest.mark.parametrize(
    ("event_name", "sort_key", "write_kind", "invokes"),
    [
        ("INSERT", "CHARGER", STATE_WRITE, True),
        ("MODIFY", "CHARGER", STATE_WRITE, True),  # a boot, presence, the operator
        ("MODIFY", "CHARGER", TOUCH_WRITE, False),  # a frame's lastSeen: never an event
        ("MODIFY", "CHARGER", None, False),  # no write kind: dropped (every adapter write sets one)
        ("MODIFY", "TX#123", None, True),
        ("INSERT", "STATUS#1", None, True),
        ("INSERT", "FILE#abc", TOUCH_WRITE, True),  # the write kind only matters on charger items
        ("REMOVE", "TX#123", None, False),  # TTL deletions make no event
        ("REMOVE", "CHARGER", STATE_WRITE, False),
        ("INSERT", "CHARGERS", STATE_WRITE, False),
        ("INSERT", "METER#1", None, False),
        ("MODIFY", "IDEM#x", None, False),
        ("INSERT", "OUTBOX#1", None, False),
    ],
)
def test_only_event_items_invoke_the_publisher(
    dev: Synthesized, event_name: str, sort_key: str, write_kind: str | None, invokes: bool
) -> None:
    change: dict[str, Any] = {"Keys": {"pk": {"S": "CP#CP1"}, "sk": {"S": sort_key}}}
    if write_kind is not None:
        change["NewImage"] = {**change["Keys"], WRITE_KIND: {"S": write_kind}}
    record = {"eventName": event_name, "dynamodb": change}
    assert any(_matches(pattern, record) for pattern in _filter_patterns(dev)) is invokes
    # the local stack's stream poller and the moto server apply the same rule
    assert passes_stream_filter(event_name, sort_key, write_kind) is invokes
    assert matches_filter(record) is invokes


# --- the bus ------------------------------------------------------------------------------------------


def test_each_stage_has_its_own_bus_with_an_archive_of_its_events(stages: dict[str, Synthesized]) -> None:
    for stage, synth in stages.items():
        bus, bus_resource = only(synth, "AWS::Events::EventBus")
        assert bus_resource["Properties"]["Name"] == f"ocpp-csms-{stage}"
        _, archive = only(synth, "AWS::Events::Archive")
        props = archive["Properties"]
        assert props["SourceArn"] == {"Fn::GetAtt": [bus, "Arn"]}
        assert props["ArchiveName"] == f"ocpp-csms-{stage}-events"
        assert props["RetentionDays"] == 30
        assert props["EventPattern"]["source"] == [EVENT_SOURCE]


def test_the_publisher_may_put_events_on_its_bus_and_read_the_stream_only(dev: Synthesized) -> None:
    bus, _ = only(dev, "AWS::Events::EventBus")
    table, _ = only(dev, "AWS::DynamoDB::Table")
    _, props = function(dev, EVENTS_PUBLISHER_HANDLER)
    assert props["Environment"]["Variables"]["OCPP_EVENT_BUS_NAME"] == {"Ref": bus}
    allowed = grants(dev.json, role(dev, EVENTS_PUBLISHER_HANDLER))
    assert {(a, r) for a, r in allowed if a.startswith("events:")} == {
        ("events:PutEvents", as_json({"Fn::GetAtt": [bus, "Arn"]}))
    }
    stream = as_json({"Fn::GetAtt": [table, "StreamArn"]})
    stream_reads = {
        (action, stream)
        for action in (
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
        )
    }
    # and GetItem on the table: is an ended connection still the charger's current one?
    charger_read = ("dynamodb:GetItem", as_json({"Fn::GetAtt": [table, "Arn"]}))
    assert {(a, r) for a, r in allowed if a.startswith("dynamodb:")} == stream_reads | {charger_read}
    assert not {a for a, _ in allowed if a.startswith(("s3:", "iot:"))}
    # nobody else puts events
    holders = {ref.logical_id for ref in policy_statements(dev.json) if "events:PutEvents" in ref.actions}
    assert len(holders) == 1 and "EventsPublisher" in holders.pop()


def test_errors_iterator_age_and_failure_queue_alarm(dev: Synthesized) -> None:
    alarms = {r["Properties"]["AlarmName"]: r["Properties"] for r in dev.resources("AWS::CloudWatch::Alarm").values()}
    publisher, _ = function(dev, EVENTS_PUBLISHER_HANDLER)
    receiver, _ = function(dev, FILES_RECEIVED_HANDLER)
    assert alarms["OCPP-CSMS-dev-EventsPublisherErrors"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": publisher}}
    ]
    assert alarms["OCPP-CSMS-dev-FilesReceivedErrors"]["Dimensions"] == [
        {"Name": "FunctionName", "Value": {"Ref": receiver}}
    ]
    age = alarms["OCPP-CSMS-dev-EventsStreamIteratorAge"]
    assert (age["Namespace"], age["MetricName"], age["Statistic"]) == ("AWS/Lambda", "IteratorAge", "Maximum")
    assert age["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": publisher}}]
    assert age["TreatMissingData"] == "notBreaching"
    depth = alarms["OCPP-CSMS-dev-EventsStreamFailuresDepth"]
    assert depth["MetricName"] == "ApproximateNumberOfMessagesVisible"
    _, mapping = only(dev, "AWS::Lambda::EventSourceMapping")
    queue = mapping["Properties"]["DestinationConfig"]["OnFailure"]["Destination"]["Fn::GetAtt"][0]
    assert depth["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}]


# --- the example rule ------------------------------------------------------------------------------


def _bus_rules(synth: Synthesized) -> list[dict[str, Any]]:
    return [r["Properties"] for r in synth.resources("AWS::Events::Rule").values() if "EventBusName" in r["Properties"]]


def test_the_example_rule_exists_only_with_the_context_flag(stages: dict[str, Synthesized]) -> None:
    assert _bus_rules(stages["dev"]) == []
    assert "TransactionEndedQueueUrl" not in stages["dev"].json["Outputs"]
    prod = stages["prod"]
    (rule,) = _bus_rules(prod)
    bus, _ = only(prod, "AWS::Events::EventBus")
    assert rule["EventBusName"] == {"Ref": bus}
    assert rule["EventPattern"] == {"source": ["ocpp.csms"], "detail-type": ["TransactionEnded"]}
    (target,) = rule["Targets"]
    queue = target["Arn"]["Fn::GetAtt"][0]
    dlq = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    resources = prod.json["Resources"]
    assert resources[queue]["Properties"]["SqsManagedSseEnabled"] is True
    assert resources[queue]["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq, "Arn"]}
    assert resources[dlq]["Properties"]["SqsManagedSseEnabled"] is True
    # EventBridge may send to the queue, from this rule only
    prod.template.has_resource_properties(
        "AWS::SQS::QueuePolicy",
        {
            "Queues": [{"Ref": queue}],
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Allow",
                                "Principal": {"Service": "events.amazonaws.com"},
                                "Condition": {"ArnEquals": {"aws:SourceArn": Match.any_value()}},
                            }
                        )
                    ]
                )
            },
        },
    )
    alarm_names = {r["Properties"]["AlarmName"] for r in prod.resources("AWS::CloudWatch::Alarm").values()}
    assert "OCPP-CSMS-prod-TransactionEndedDeadLettersDepth" in alarm_names
    assert "TransactionEndedQueueUrl" in prod.json["Outputs"]


def test_the_documented_pattern_is_the_example_rules() -> None:
    text = DOCS.read_text(encoding="utf-8")
    blocks = [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, flags=re.S)]
    assert example_rule_pattern() in blocks


# --- the files bucket ------------------------------------------------------------------------------


def test_the_bucket_is_encrypted_private_tls_only_and_versioned(dev: Synthesized) -> None:
    bucket, resource = only(dev, "AWS::S3::Bucket")
    props = resource["Properties"]
    assert props["BucketName"] == {
        "Fn::Join": ["", ["ocpp-dev-files-", {"Ref": "AWS::AccountId"}, "-", {"Ref": "AWS::Region"}]]
    }
    (encryption,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    dev.template.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "Bucket": {"Ref": bucket},
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                )
            },
        },
    )
    # removal as the table's: dev deletes, prod keeps (retain_data)
    assert resource["DeletionPolicy"] == "Delete"


def test_prod_keeps_its_bucket_as_it_keeps_its_table(stages: dict[str, Synthesized]) -> None:
    _, bucket = only(stages["prod"], "AWS::S3::Bucket")
    _, table = only(stages["prod"], "AWS::DynamoDB::Table")
    assert bucket["DeletionPolicy"] == table["DeletionPolicy"] == "Retain"


def test_the_lifecycle_expires_uploads_old_versions_and_stale_multipart_uploads(dev: Synthesized) -> None:
    _, resource = only(dev, "AWS::S3::Bucket")
    rules = {rule["Id"]: rule for rule in resource["Properties"]["LifecycleConfiguration"]["Rules"]}
    assert rules["ExpireUploads"] == {
        "Id": "ExpireUploads",
        "Prefix": "uploads/",
        "ExpirationInDays": 90,
        "Status": "Enabled",
    }
    housekeeping = rules["Housekeeping"]
    assert "Prefix" not in housekeeping  # the whole bucket, firmware included
    assert housekeeping["NoncurrentVersionExpiration"] == {"NoncurrentDays": 30}
    assert housekeeping["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert "ExpirationInDays" not in housekeeping  # firmware stays until deleted


def test_new_uploads_invoke_the_files_received_function(dev: Synthesized) -> None:
    receiver, props = function(dev, FILES_RECEIVED_HANDLER)
    _, resource = only(dev, "AWS::S3::Bucket")
    (notification,) = resource["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    assert notification == {
        "Event": "s3:ObjectCreated:*",
        "Filter": {"S3Key": {"Rules": [{"Name": "prefix", "Value": "uploads/"}]}},
        "Function": {"Fn::GetAtt": [receiver, "Arn"]},
    }
    permissions = {
        k: v["Properties"]
        for k, v in dev.resources("AWS::Lambda::Permission").items()
        if v["Properties"]["Principal"] == "s3.amazonaws.com"
    }
    ((permission, permission_props),) = permissions.items()
    assert permission_props["FunctionName"] == {"Fn::GetAtt": [receiver, "Arn"]}
    assert permission_props["SourceArn"] == bucket_arn("dev")
    assert permission_props["SourceAccount"] == {"Ref": "AWS::AccountId"}
    # S3 checks the permission when the notification is set: it must exist first
    assert permission in resource["DependsOn"]
    assert props["Environment"]["Variables"]["OCPP_FILES_BUCKET"] == resource["Properties"]["BucketName"]
    assert props["Environment"]["Variables"]["OCPP_TABLE_NAME"] == {"Ref": only(dev, "AWS::DynamoDB::Table")[0]}


def test_only_the_api_gets_the_bucket_and_only_its_two_prefixes(dev: Synthesized) -> None:
    api = grants(dev.json, role(dev, OPERATOR_API_HANDLER))
    uploads, firmware = as_json(bucket_arn("dev", "/uploads/*")), as_json(bucket_arn("dev", "/firmware/*"))
    assert {(a, r) for a, r in api if a.startswith("s3:")} == {
        ("s3:PutObject", uploads),
        ("s3:PutObject", firmware),
        ("s3:GetObject", uploads),
        ("s3:GetObject", firmware),
    }
    receiver = grants(dev.json, role(dev, FILES_RECEIVED_HANDLER))
    assert not {a for a, _ in receiver if a.startswith("s3:")}  # the notification says all it records
    # the receiver records files in the table, like the other functions
    table = as_json({"Fn::GetAtt": [only(dev, "AWS::DynamoDB::Table")[0], "Arn"]})
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:Query"} <= {
        a for a, r in receiver if r == table
    }
    # the uploads function puts what chargers send through the API, under uploads/ only
    assert {(a, r) for a, r in grants(dev.json, role(dev, UPLOADS_HANDLER)) if a.startswith("s3:")} == {
        ("s3:PutObject", uploads)
    }
    # nothing else gets the bucket (nor any other S3 permission)
    holders = {ref.logical_id for ref in policy_statements(dev.json) if any(a.startswith("s3:") for a in ref.actions)}
    roles = sorted(as_json(dev.json["Resources"][holder]["Properties"].get("Roles")) for holder in holders)
    assert roles == sorted(as_json([{"Ref": role(dev, h)}]) for h in (OPERATOR_API_HANDLER, UPLOADS_HANDLER))


def test_only_the_api_and_the_receiver_know_the_bucket(dev: Synthesized) -> None:
    for logical_id, resource in dev.resources("AWS::Lambda::Function").items():
        props = resource["Properties"]
        variables = props.get("Environment", {}).get("Variables", {})
        knows = "OCPP_FILES_BUCKET" in variables
        knowers = (OPERATOR_API_HANDLER, FILES_RECEIVED_HANDLER, UPLOADS_HANDLER)
        assert knows == (props.get("Handler") in knowers), logical_id


# --- the API, the stages, cdk-nag ----------------------------------------------------------------------


def test_the_gateway_serves_the_files_and_firmware_routes(dev: Synthesized) -> None:
    keys = {r["Properties"]["RouteKey"] for r in dev.resources("AWS::ApiGatewayV2::Route").values()}
    assert {
        "GET /chargers/{id}/files",
        "GET /chargers/{id}/files/{fileId}",
        "GET /chargers/{id}/uploads",
        "GET /chargers/{id}/firmware",
        "POST /firmware",
        "GET /firmware",
        "GET /firmware/{firmwareId}",
    } <= keys


def test_two_stages_name_their_bus_archive_and_bucket_apart(stages: dict[str, Synthesized]) -> None:
    def names(synth: Synthesized) -> set[str]:
        found = set()
        for resource_type, key in (
            ("AWS::Events::EventBus", "Name"),
            ("AWS::Events::Archive", "ArchiveName"),
            ("AWS::S3::Bucket", "BucketName"),
        ):
            (resource,) = synth.resources(resource_type).values()
            found.add(as_json(resource["Properties"][key]))
        return found

    dev_names, prod_names = names(stages["dev"]), names(stages["prod"])
    assert len(dev_names) == len(prod_names) == 3
    assert not dev_names & prod_names
    assert all("dev" in name for name in dev_names) and all("prod" in name for name in prod_names)


@pytest.mark.parametrize("stage", STAGES)
def test_cdk_nag_and_the_wildcard_check_find_nothing(stages: dict[str, Synthesized], stage: str) -> None:
    assert nag_violations(stages[stage].stack) == []
    assert wildcard_findings(stages[stage].json) == []


def test_archive_retention_and_the_example_rule_are_context_keys() -> None:
    base: dict[str, Any] = {"stages": {"dev": {}}}
    assert StageConfig.from_context(base).events_archive_days == 30
    assert StageConfig.from_context({**base, "events_archive_days": "0"}).events_archive_days == 0  # for ever
    assert StageConfig.from_context(base).events_queue is False
    assert StageConfig.from_context({**base, "events_queue": "true"}).events_queue is True
    with pytest.raises(ConfigError, match="events_archive_days=3651"):
        StageConfig.from_context({**base, "events_archive_days": "3651"})
    with pytest.raises(ConfigError, match="events_queue=maybe"):
        StageConfig.from_context({**base, "events_queue": "maybe"})
