"""Errors of the operator API: one root exception, each carrying its HTTP status.

Hierarchy::

    ApiError                     an answer other than success; ``status`` + one sentence
    ├── BadRequest               400: malformed body, query or path parameter
    ├── NotFound                 404: no such route, charger, id tag or call
    ├── MethodNotAllowed         405: the route exists, not with this method (``allow``)
    ├── Conflict                 409: charger not connected, or busy with another call
    ├── PayloadTooLarge          413: body over the limit
    └── BackendFailure           500, 502 or 503: the state store or the broker failed

Endpoints raise these; ``lambdas.api.app`` is the one place that turns any exception into
a response, so an error body always has the same shape: ``{"error": "<sentence>", ...}``.
"""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    status = 400

    def __init__(
        self, message: str, *, status: int | None = None, headers: dict[str, str] | None = None, **fields: Any
    ):
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        self.headers = headers or {}
        #: extra keys of the error body (``pendingUniqueId``, ``protocol``, ...)
        self.fields = fields

    def body(self) -> dict[str, Any]:
        return {"error": self.message, **self.fields}


class BadRequest(ApiError):
    status = 400


class NotFound(ApiError):
    status = 404


class MethodNotAllowed(ApiError):
    status = 405

    def __init__(self, message: str, allow: list[str]):
        super().__init__(message, headers={"allow": ", ".join(allow)}, allowedMethods=allow)


class Conflict(ApiError):
    status = 409


class PayloadTooLarge(ApiError):
    status = 413


class BackendFailure(ApiError):
    status = 503
