"""Operator API: API Gateway HTTP API, IAM-authorized, proxying to the operator Lambda (DESIGN §5).

Besides the operator routes, the same API serves the chargers' uploads (``UPLOAD_ROUTES``:
``POST``/``PUT /upload/{token}[/{name}]``, DESIGN §11) with the uploads function and no
authorization: the token is the credential (an upload id with 128 random bits, good for one file
and until its URL expires), and a charger has no AWS credentials to sign with. The operator API
builds the upload URL from the request's own address, so neither function needs the API's URL.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.nag import acknowledge

#: (method, path) of every operator route; the same routes the local stack serves.
ROUTES: tuple[tuple[apigwv2.HttpMethod, str], ...] = (
    (apigwv2.HttpMethod.GET, "/chargers"),
    (apigwv2.HttpMethod.GET, "/chargers/{id}"),
    (apigwv2.HttpMethod.PUT, "/chargers/{id}"),
    (apigwv2.HttpMethod.PUT, "/id-tags/{idTag}"),
    (apigwv2.HttpMethod.GET, "/id-tags/{idTag}"),
    (apigwv2.HttpMethod.DELETE, "/id-tags/{idTag}"),
    (apigwv2.HttpMethod.GET, "/transactions"),
    (apigwv2.HttpMethod.POST, "/transactions/{transactionId}/close"),
    (apigwv2.HttpMethod.GET, "/chargers/{id}/calls"),
    (apigwv2.HttpMethod.POST, "/chargers/{id}/calls"),
    (apigwv2.HttpMethod.GET, "/chargers/{id}/calls/{uniqueId}"),
    (apigwv2.HttpMethod.GET, "/chargers/{id}/charging-profiles"),
    (apigwv2.HttpMethod.GET, "/chargers/{id}/certificates"),
    (apigwv2.HttpMethod.POST, "/chargers/{id}/certificates/{serial}/revoke"),
    (apigwv2.HttpMethod.GET, "/ca"),
    (apigwv2.HttpMethod.GET, "/certificates"),
    (apigwv2.HttpMethod.GET, "/chargers/{id}/reservations"),
    (apigwv2.HttpMethod.POST, "/chargers/{id}/reservations"),
    (apigwv2.HttpMethod.GET, "/chargers/{id}/reservations/{reservationId}"),
    (apigwv2.HttpMethod.DELETE, "/chargers/{id}/reservations/{reservationId}"),
    (apigwv2.HttpMethod.GET, "/reservations/{reservationId}"),
    (apigwv2.HttpMethod.DELETE, "/reservations/{reservationId}"),
    (apigwv2.HttpMethod.GET, "/sites"),
    (apigwv2.HttpMethod.GET, "/sites/{siteId}"),
    (apigwv2.HttpMethod.PUT, "/sites/{siteId}"),
    # files (DESIGN §11): what chargers uploaded, the upload URLs asked for, firmware sent
    (apigwv2.HttpMethod.GET, "/chargers/{id}/files"),
    (apigwv2.HttpMethod.GET, "/chargers/{id}/files/{fileId}"),
    (apigwv2.HttpMethod.GET, "/chargers/{id}/uploads"),
    (apigwv2.HttpMethod.GET, "/chargers/{id}/firmware"),
    (apigwv2.HttpMethod.POST, "/firmware"),
    (apigwv2.HttpMethod.GET, "/firmware"),
    (apigwv2.HttpMethod.GET, "/firmware/{firmwareId}"),
)

#: (method, path) of the chargers' upload routes: unauthenticated, served by ``lambdas.uploads``
#: (the paths ``lambdas.files.receive.upload_path`` parses; locally the file server's).
UPLOAD_ROUTES: tuple[tuple[apigwv2.HttpMethod, str], ...] = tuple(
    (method, path)
    for path in ("/upload/{token}", "/upload/{token}/{name}")
    for method in (apigwv2.HttpMethod.POST, apigwv2.HttpMethod.PUT)
)

# HTTP APIs accept only their own $context variables (not the REST API standard set).
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "time": "$context.requestTime",
        "ip": "$context.identity.sourceIp",
        "caller": "$context.identity.caller",
        "userArn": "$context.identity.userArn",
        "route": "$context.routeKey",
        "path": "$context.path",
        "status": "$context.status",
        "latencyMs": "$context.responseLatency",
        "integrationStatus": "$context.integrationStatus",
        "integrationError": "$context.integrationErrorMessage",
        "authorizerError": "$context.authorizer.error",
        "responseLength": "$context.responseLength",
    },
    separators=(",", ":"),
)


@jsii.implements(apigwv2.IAccessLogSettings)
class _AccessLogSettings:
    """``IAccessLogSettings`` is an interface, not a struct: Python implements it with a class."""

    def __init__(self, destination: apigwv2.IAccessLogDestination, log_format: apigw.AccessLogFormat) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigw.AccessLogFormat:
        return self._format


class OperatorApi(Construct):
    """Every operator route requires a SigV4-signed request from a principal allowed
    ``execute-api:Invoke``; the upload routes (``uploads_handler``) require their token only."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler: lambda_.IFunction,
        uploads_handler: lambda_.IFunction | None = None,
        api_name: str,
        log_retention: logs.RetentionDays,
        removal_policy: cdk.RemovalPolicy,
        throttle_rate: int = 50,
        throttle_burst: int = 100,
    ) -> None:
        super().__init__(scope, construct_id)
        authorizer = authorizers.HttpIamAuthorizer()
        self.http_api = apigwv2.HttpApi(
            self,
            "HttpApi",
            # Names need not be unique, but two stages' "HttpApi" side by side is a trap in the console.
            api_name=api_name,
            description="OCPP CSMS operator API",
            # The stage below carries the access log settings the default stage cannot.
            create_default_stage=False,
            default_authorizer=authorizer,
        )
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=log_retention, removal_policy=removal_policy)
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            access_log_settings=_AccessLogSettings(
                apigwv2.LogGroupLogDestination(self.access_logs), apigw.AccessLogFormat.custom(ACCESS_LOG_FORMAT)
            ),
            # An operator script gone wrong must not be able to flood the chargers with calls.
            throttle=apigwv2.ThrottleSettings(rate_limit=throttle_rate, burst_limit=throttle_burst),
        )
        integration = integrations.HttpLambdaIntegration(
            "OperatorLambda", handler, payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0
        )
        self.routes: list[apigwv2.HttpRoute] = []
        for method, path in ROUTES:
            self.routes.extend(
                self.http_api.add_routes(path=path, methods=[method], integration=integration, authorizer=authorizer)
            )
        #: the unauthenticated upload routes (empty without ``uploads_handler``)
        self.upload_routes: list[apigwv2.HttpRoute] = []
        if uploads_handler is not None:
            uploads = integrations.HttpLambdaIntegration(
                "UploadsLambda", uploads_handler, payload_format_version=apigwv2.PayloadFormatVersion.VERSION_2_0
            )
            none = apigwv2.HttpNoneAuthorizer()
            for method, path in UPLOAD_ROUTES:
                self.upload_routes.extend(
                    self.http_api.add_routes(path=path, methods=[method], integration=uploads, authorizer=none)
                )
            for route in self.upload_routes:
                acknowledge(
                    route,
                    "AwsSolutions-APIG4",
                    "A charger's upload route: chargers have no AWS credentials, so the URL's token is the "
                    "credential, an upload id with 128 random bits (lambdas.files.host.new_file_id) the "
                    "operator API made for one GetDiagnostics / GetLog, good for one file (a conditional "
                    "claim) and until it expires (OCPP_UPLOAD_URL_TTL_S); unknown, used or expired tokens "
                    "store nothing.",
                )
        self.url: str = self.stage.url
