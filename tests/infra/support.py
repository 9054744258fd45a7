"""Helpers for the infrastructure tests: one synthesis per module, and IAM policy checks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aws_cdk as cdk
from aws_cdk.assertions import Template
from cdk_nag import AwsSolutionsChecks

import app as cdk_app
from infra.config import StageConfig
from infra.stack import CsmsStack, stack_name


@dataclass
class Synthesized:
    app: cdk.App
    stack: CsmsStack
    template: Template
    assembly_dir: Path

    @property
    def json(self) -> dict[str, Any]:
        return self.template.to_json()

    def resources(self, resource_type: str) -> dict[str, dict[str, Any]]:
        return {k: v for k, v in self.json["Resources"].items() if v["Type"] == resource_type}


def synthesize(overrides: Mapping[str, Any], outdir: Path) -> Synthesized:
    """The app as ``cdk synth -c k=v ...`` would build it (cdk.json context plus the overrides)."""
    context = {**cdk_app.load_cdk_json_context(), **overrides}
    app = cdk_app.build_app(context, repo_root=cdk_app.REPO_ROOT, outdir=str(outdir))
    stacks = [child for child in app.node.children if isinstance(child, CsmsStack)]
    assert len(stacks) == 1
    template = Template.from_stack(stacks[0])
    assembly = app.synth()  # cached: the synthesis Template.from_stack did
    return Synthesized(app=app, stack=stacks[0], template=template, assembly_dir=Path(assembly.directory))


def synthesize_stages(stages: Mapping[str, Mapping[str, Any]], outdir: Path) -> dict[str, Synthesized]:
    """Several stages in one app, as one account holding them side by side (DESIGN §8).

    ``stages`` maps a stage name to its ``-c`` overrides; each stack is built as ``build_app``
    builds its one stack.
    """
    base = cdk_app.load_cdk_json_context()
    app = cdk.App(context=base, outdir=str(outdir))
    stacks: dict[str, CsmsStack] = {}
    for stage, overrides in stages.items():
        config = StageConfig.from_context({**base, **overrides, "stage": stage})
        stacks[stage] = CsmsStack(app, stack_name(stage), config=config, repo_root=cdk_app.REPO_ROOT)
    templates = {stage: Template.from_stack(stack) for stage, stack in stacks.items()}
    assembly = app.synth()
    return {
        stage: Synthesized(
            app=app, stack=stacks[stage], template=templates[stage], assembly_dir=Path(assembly.directory)
        )
        for stage in stages
    }


def bridge_environment(synth: Synthesized) -> dict[str, Any]:
    (task,) = synth.resources("AWS::ECS::TaskDefinition").values()
    (container,) = task["Properties"]["ContainerDefinitions"]
    return {item["Name"]: item["Value"] for item in container["Environment"]}


def dashboard_metrics(synth: Synthesized) -> list[list[Any]]:
    """Every metric row of every dashboard widget (CloudFormation tokens read as ``TOKEN``)."""
    (dashboard,) = synth.resources("AWS::CloudWatch::Dashboard").values()
    body = dashboard["Properties"]["DashboardBody"]
    parts = body["Fn::Join"][1] if isinstance(body, dict) else [body]
    document = json.loads("".join(part if isinstance(part, str) else "TOKEN" for part in parts))
    return [row for widget in document["widgets"] for row in widget["properties"].get("metrics", [])]


def nag_violations(stack: cdk.Stack) -> list[str]:
    """AwsSolutions findings left after the acknowledgments, one line each."""
    report = AwsSolutionsChecks().validate_scope(stack)
    lines = []
    for violation in report.violations:
        for resource in violation.violating_resources:
            lines.append(f"{violation.rule_name} at {resource.construct_path}: {violation.description}")
    return lines


# --- IAM ------------------------------------------------------------------------------------

#: Actions that accept no resource narrower than "*". Anything else with "*" is a finding.
STAR_RESOURCE_ALLOWED = {
    # X-Ray: trace segment upload has no resource-level permissions.
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    # ECR: the registry login token is account-wide; the image pull itself is scoped.
    "ecr:GetAuthorizationToken",
    # IoT: DescribeEndpoint takes no resource (the DescribeEndpoint custom resource).
    "iot:DescribeEndpoint",
    # CloudWatch: PutMetricData has no resources (namespace conditions at most).
    "cloudwatch:PutMetricData",
}

_SERVICE_WILDCARD = re.compile(r"^[a-z0-9-]+:\*$")


@dataclass(frozen=True)
class PolicyStatementRef:
    logical_id: str
    statement: dict[str, Any]

    @property
    def actions(self) -> list[str]:
        return _as_list(self.statement.get("Action", []))

    @property
    def resources(self) -> list[Any]:
        return _as_list(self.statement.get("Resource", []))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def policy_statements(template: Mapping[str, Any]) -> Iterator[PolicyStatementRef]:
    """Every statement of every identity policy, and every Allow of every resource policy."""
    for logical_id, resource in template["Resources"].items():
        kind, props = resource["Type"], resource.get("Properties", {})
        documents: list[dict[str, Any]] = []
        identity = True
        if kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props["PolicyDocument"])
        elif kind == "AWS::IAM::Role":
            documents.extend(policy["PolicyDocument"] for policy in props.get("Policies", []))
        elif kind in ("AWS::SQS::QueuePolicy", "AWS::SNS::TopicPolicy"):
            documents.append(props["PolicyDocument"])
            identity = False
        for document in documents:
            for statement in _as_list(document["Statement"]):
                if identity or statement.get("Effect") == "Allow":
                    yield PolicyStatementRef(logical_id, statement)


def wildcard_findings(template: Mapping[str, Any]) -> list[str]:
    """Allowed wildcards: ``"Action": "*"``, a whole service (``iot:*``), or ``"Resource": "*"``
    for an action that has a narrower resource."""
    findings = []
    for ref in policy_statements(template):
        if ref.statement.get("Effect", "Allow") != "Allow":
            continue
        for action in ref.actions:
            if action == "*" or _SERVICE_WILDCARD.match(action):
                findings.append(f"{ref.logical_id}: action {action}")
        if "*" in ref.resources:
            for action in ref.actions:
                if action not in STAR_RESOURCE_ALLOWED:
                    findings.append(f"{ref.logical_id}: {action} on Resource *")
    return findings


def grants(template: Mapping[str, Any], role_logical_id: str) -> set[tuple[str, str]]:
    """(action, resource as JSON) pairs allowed to one role by the AWS::IAM::Policy resources."""
    pairs: set[tuple[str, str]] = set()
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role_logical_id} not in resource["Properties"].get("Roles", []):
            continue
        for statement in _as_list(resource["Properties"]["PolicyDocument"]["Statement"]):
            if statement.get("Effect") != "Allow":
                continue
            for action in _as_list(statement["Action"]):
                for target in _as_list(statement["Resource"]):
                    pairs.add((action, json.dumps(target, sort_keys=True)))
    return pairs


def iot_arn(resource: str, region: Any = None, account: Any = None) -> dict[str, Any]:
    """The ARN ``Stack.format_arn`` renders for an IoT resource (env-agnostic stack)."""
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":iot:",
                region if region is not None else {"Ref": "AWS::Region"},
                ":",
                account if account is not None else {"Ref": "AWS::AccountId"},
                f":{resource}",
            ],
        ]
    }


def function(synth: Synthesized, handler: str) -> tuple[str, dict[str, Any]]:
    """The one Lambda function running ``handler``: (logical id, properties)."""
    (found,) = [
        (logical_id, resource["Properties"])
        for logical_id, resource in synth.resources("AWS::Lambda::Function").items()
        if resource["Properties"].get("Handler") == handler
    ]
    return found


def role_of(properties: dict[str, Any]) -> str:
    """The logical id of a function's role."""
    return str(properties["Role"]["Fn::GetAtt"][0])


def as_json(value: Any) -> str:
    """A template value in a comparable form."""
    return json.dumps(value, sort_keys=True)
