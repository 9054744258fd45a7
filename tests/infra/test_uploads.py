"""Uploads through the API on AWS (DESIGN §11): the uploads function, its unauthenticated routes, its
grants (the table like the others, ``s3:PutObject`` under ``uploads/`` only) and its alarms."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from infra.api import UPLOAD_ROUTES
from infra.processing import UPLOADS_HANDLER, UPLOADS_MEMORY_MIB, UPLOADS_TIMEOUT
from infra.stack import TABLE_DATA_ACTIONS
from lambdas.files.receive import UPLOAD_METHODS, upload_path

from .support import Synthesized, function, grants, nag_violations, synthesize_stages


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize_stages({"dev": {}}, tmp_path_factory.mktemp("cdk-uploads"))["dev"]


def _function(synth: Synthesized) -> tuple[str, dict[str, Any]]:
    return function(synth, UPLOADS_HANDLER)


def test_the_upload_routes_are_the_paths_the_uploads_function_parses() -> None:
    for method, path in UPLOAD_ROUTES:
        assert method.value in UPLOAD_METHODS
        concrete = path.replace("{token}", "1750000000000abc").replace("{name}", "station.log")
        token, name = upload_path(concrete) or ("", "")
        assert token == "1750000000000abc" and name == ("station.log" if "{name}" in path else None)
    assert {m.value for m, _ in UPLOAD_ROUTES} == set(UPLOAD_METHODS)


def test_the_function_knows_the_bucket_and_the_table_and_fits_api_gateways_timeout(dev: Synthesized) -> None:
    _, props = _function(dev)
    variables = props["Environment"]["Variables"]
    (bucket,) = dev.resources("AWS::S3::Bucket").values()
    (table,) = dev.resources("AWS::DynamoDB::Table")
    assert variables["OCPP_FILES_BUCKET"] == bucket["Properties"]["BucketName"]
    assert variables["OCPP_TABLE_NAME"] == {"Ref": table}
    assert props["Timeout"] == UPLOADS_TIMEOUT.to_seconds() < 30
    assert props["MemorySize"] == UPLOADS_MEMORY_MIB
    assert "ReservedConcurrentExecutions" not in props


def test_it_may_use_the_table_and_put_under_uploads_only(dev: Synthesized) -> None:
    _, props = _function(dev)
    allowed = grants(dev.json, props["Role"]["Fn::GetAtt"][0])
    (table,) = dev.resources("AWS::DynamoDB::Table")
    table_arn = json.dumps({"Fn::GetAtt": [table, "Arn"]}, sort_keys=True)
    assert {a for a, r in allowed if r == table_arn} == set(TABLE_DATA_ACTIONS)
    s3 = {(a, json.loads(r)["Fn::Join"][1][-1]) for a, r in allowed if a.startswith("s3:")}
    assert s3 == {("s3:PutObject", "/uploads/*")}
    # no index, no KMS, no IoT, no events: it only receives files
    assert {a.split(":")[0] for a, _ in allowed} <= {"dynamodb", "s3", "logs"}


def test_only_the_upload_routes_are_unauthenticated_and_they_reach_the_uploads_function(dev: Synthesized) -> None:
    logical_id, _ = _function(dev)
    open_routes = {
        r["Properties"]["RouteKey"]
        for r in dev.resources("AWS::ApiGatewayV2::Route").values()
        if r["Properties"].get("AuthorizationType") != "AWS_IAM"
    }
    assert open_routes == {f"{m.value} {p}" for m, p in UPLOAD_ROUTES}
    uris = [i["Properties"]["IntegrationUri"] for i in dev.resources("AWS::ApiGatewayV2::Integration").values()]
    assert {"Fn::GetAtt": [logical_id, "Arn"]} in uris
    # API Gateway may invoke it
    permissions = [
        p["Properties"]
        for p in dev.resources("AWS::Lambda::Permission").values()
        if p["Properties"]["FunctionName"] == {"Fn::GetAtt": [logical_id, "Arn"]}
    ]
    assert permissions and all(p["Principal"] == "apigateway.amazonaws.com" for p in permissions)


def test_its_errors_and_throttles_alarm(dev: Synthesized) -> None:
    names = [
        json.dumps(a["Properties"].get("AlarmName"))
        for a in dev.resources("AWS::CloudWatch::Alarm").values()
        if "Uploads" in json.dumps(a["Properties"].get("AlarmName"))
    ]
    assert any("UploadsErrors" in n for n in names) and any("UploadsThrottles" in n for n in names), names


def test_cdk_nag_finds_nothing(dev: Synthesized) -> None:
    assert nag_violations(dev.stack) == []
