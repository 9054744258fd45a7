"""Files (DESIGN §11): the stage's bucket for what chargers upload and the firmware they download.

Keys: ``uploads/<chargePointId>/<uploadId>/<name>`` (diagnostics and logs: put by the uploads
function for what chargers send to the API's ``/upload/<token>``, or with ``OCPP_UPLOAD_MODE=presigned``
by chargers with a presigned PUT URL the operator API signs) and ``firmware/<firmwareId>/<name>`` (stored by
``POST /firmware``, fetched by chargers with a presigned GET). Each new object under ``uploads/``
invokes ``lambdas.files_received.handler``, which records the file (for an upload through the API,
which the uploads function recorded already, it rewrites the same item).

The notification is the bucket's own ``NotificationConfiguration`` rather than CDK's
``add_event_notification`` (a custom resource whose role may change the notifications of every
bucket). S3 checks, when the configuration is set, that it may invoke the function, so the
permission comes first; and for the permission's source ARN and the functions' environment not to
refer to the bucket (a circular dependency) the bucket has a name known in advance:
https://repost.aws/knowledge-center/unable-validate-circular-dependency-cloudformation
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from constructs import Construct

from infra.nag import acknowledge
from lambdas.settings import FILES_BUCKET as FILES_BUCKET_ENV
from ocpp_core.files import FIRMWARE_PREFIX, UPLOADS_PREFIX

#: Received diagnostics and logs are kept this long (firmware images until deleted).
UPLOADS_EXPIRE_AFTER = cdk.Duration.days(90)
#: Overwritten or expired objects (the bucket is versioned) are kept this long after.
NONCURRENT_EXPIRE_AFTER = cdk.Duration.days(30)
#: A multipart upload a client never completed is removed after this.
ABORT_MULTIPART_AFTER = cdk.Duration.days(1)


def files_bucket_name(stage: str, account: str, region: str) -> str:
    """Bucket names are global: stage, account and region make it unique (at most 59 characters)."""
    return f"ocpp-{stage}-files-{account}-{region}"


class FilesBucket(Construct):
    """Encrypted, private, TLS-only, versioned bucket with its lifecycle, and the notification of
    new uploads to ``receiver``, which needs no access to the bucket: the notification says what
    it records (key, size, time). Only the operator API gets the bucket (``grant_api``), and the
    uploads function may put under ``uploads/`` (``grant_uploads``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        receiver: lambda_.Function,
        removal_policy: cdk.RemovalPolicy,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = cdk.Stack.of(self)
        #: the name, without referring to the bucket resource (see the module docstring)
        self.bucket_name = files_bucket_name(stage, stack.account, stack.region)
        self.bucket_arn = f"arn:{stack.partition}:s3:::{self.bucket_name}"

        self.bucket = s3.Bucket(
            self,
            "Bucket",
            bucket_name=self.bucket_name,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            enforce_ssl=True,
            versioned=True,
            removal_policy=removal_policy,
            lifecycle_rules=[
                s3.LifecycleRule(id="ExpireUploads", prefix=UPLOADS_PREFIX, expiration=UPLOADS_EXPIRE_AFTER),
                s3.LifecycleRule(
                    id="Housekeeping",
                    noncurrent_version_expiration=NONCURRENT_EXPIRE_AFTER,
                    abort_incomplete_multipart_upload_after=ABORT_MULTIPART_AFTER,
                    # the delete markers the expiry leaves, once no version is behind them
                    expired_object_delete_marker=True,
                ),
            ],
        )
        acknowledge(
            self.bucket,
            "AwsSolutions-S1",
            "Every upload is recorded by the files-received function (charger, upload, size, time) and "
            "every download URL is signed by the operator API, whose calls are in its access log; "
            "server access logs would add a second bucket and its cost for no more than that.",
        )

        # S3 invokes the receiver for new objects under uploads/ only (firmware is ours).
        self.invoke_permission = lambda_.CfnPermission(
            self,
            "ReceiverInvoke",
            action="lambda:InvokeFunction",
            function_name=receiver.function_arn,
            principal="s3.amazonaws.com",
            source_arn=self.bucket_arn,
            source_account=stack.account,
        )
        cfn_bucket = self.bucket.node.default_child
        assert isinstance(cfn_bucket, s3.CfnBucket)
        cfn_bucket.notification_configuration = s3.CfnBucket.NotificationConfigurationProperty(
            lambda_configurations=[
                s3.CfnBucket.LambdaConfigurationProperty(
                    event="s3:ObjectCreated:*",
                    function=receiver.function_arn,
                    filter=s3.CfnBucket.NotificationFilterProperty(
                        s3_key=s3.CfnBucket.S3KeyFilterProperty(
                            rules=[s3.CfnBucket.FilterRuleProperty(name="prefix", value=UPLOADS_PREFIX)]
                        )
                    ),
                )
            ]
        )
        cfn_bucket.node.add_dependency(self.invoke_permission)
        receiver.add_environment(FILES_BUCKET_ENV, self.bucket_name)

    def objects_arn(self, prefix: str) -> str:
        """``arn:...:s3:::<bucket>/<prefix>*``, from the name (no reference to the bucket)."""
        return f"{self.bucket_arn}/{prefix}*"

    def grant_api(self, function: lambda_.Function) -> None:
        """The operator API signs presigned PUT URLs (uploads) and stores firmware, and signs GET URLs
        for both: a presigned URL acts with the permissions of the credentials that signed it
        (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-presigned-url.html)."""
        function.add_environment(FILES_BUCKET_ENV, self.bucket_name)
        resources = [self.objects_arn(UPLOADS_PREFIX), self.objects_arn(FIRMWARE_PREFIX)]
        function.add_to_role_policy(iam.PolicyStatement(actions=["s3:PutObject", "s3:GetObject"], resources=resources))
        for resource in resources:
            acknowledge(
                function,
                _s3_finding(self, resource),
                "Object keys hold the charger, upload and firmware ids, which are data: the operator API may "
                "put and get objects under uploads/ and firmware/ of the stage's files bucket only.",
            )

    def grant_uploads(self, function: lambda_.Function) -> None:
        """The uploads function (``lambdas.uploads``) puts what chargers send to ``/upload/<token>``:
        ``s3:PutObject`` under ``uploads/`` only, nothing to read, list or delete."""
        function.add_environment(FILES_BUCKET_ENV, self.bucket_name)
        resource = self.objects_arn(UPLOADS_PREFIX)
        function.add_to_role_policy(iam.PolicyStatement(actions=["s3:PutObject"], resources=[resource]))
        acknowledge(
            function,
            _s3_finding(self, resource),
            "Object keys hold the charger and upload ids, which are data: the uploads function may only put "
            "objects under uploads/ of the stage's files bucket.",
        )


def _s3_finding(scope: Construct, resource: str) -> str:
    """The cdk-nag finding id of a wildcard S3 object ARN: cdk-nag spells a pseudo parameter
    ``<AWS::Partition>`` (as ``infra.stack`` does for IoT resources)."""
    resolved = cdk.Stack.of(scope).resolve(resource)
    if isinstance(resolved, dict):
        resolved = "".join(part if isinstance(part, str) else f"<{part['Ref']}>" for part in resolved["Fn::Join"][1])
    return f"AwsSolutions-IAM5[Resource::{resolved}]"
