"""The account's IoT Core data endpoint (``xxxx-ats.iot.<region>.amazonaws.com``).

It is per account and region and not a CloudFormation attribute, so it is read at deploy time
with ``iot:DescribeEndpoint`` from a custom resource, unless given as context (``iot_endpoint``).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.nag import acknowledge


class IotDataEndpoint(Construct):
    """Exposes ``host`` (for the bridge's MQTT client) and ``url`` (for boto3's ``iot-data``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        host: str | None,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        self.lookup: cr.AwsCustomResource | None = None
        if host is None:
            describe = cr.AwsSdkCall(
                service="Iot",
                action="describeEndpoint",
                # ATS: the endpoint with Amazon Trust Services certificates, the one AWS recommends;
                # the same host serves MQTT over WebSocket (bridge) and HTTPS publish (Lambdas).
                parameters={"endpointType": "iot:Data-ATS"},
                physical_resource_id=cr.PhysicalResourceId.of("iot-data-ats-endpoint"),
            )
            self.lookup = cr.AwsCustomResource(
                self,
                "Describe",
                on_create=describe,
                on_update=describe,
                # DescribeEndpoint has no resource-level permissions: '*' is the only resource.
                policy=cr.AwsCustomResourcePolicy.from_sdk_calls(resources=cr.AwsCustomResourcePolicy.ANY_RESOURCE),
                # The SDK in the Lambda runtime has the call; fetching the latest needs internet at deploy.
                install_latest_aws_sdk=False,
                log_group=logs.LogGroup(self, "Logs", retention=log_retention, removal_policy=removal_policy),
            )
            acknowledge(
                self.lookup,
                "AwsSolutions-IAM5[Resource::*]",
                "iot:DescribeEndpoint supports no resource-level permission; it is the only action granted.",
            )
            # CDK's singleton provider function behind every AwsCustomResource in the stack.
            provider_role = self.lookup.grant_principal
            if isinstance(provider_role, Construct):
                acknowledge(
                    provider_role,
                    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                    "CDK's custom resource provider: the AWS-managed basic execution policy only writes its logs.",
                )
            host = self.lookup.get_response_field("endpointAddress")
        self.host: str = host
        self.url: str = cdk.Fn.join("", ["https://", host]) if cdk.Token.is_unresolved(host) else "https://" + host
