"""OCPP-J RPC errors.

Every exception ``ocpp_core`` raises derives from :class:`CoreError`::

    CoreError
    ├── OcppError                  an OCPP-J RPC error, answered as a CALLERROR (below)
    ├── ports.StoreError           a state store operation failed (adapters raise it)
    │   └── ports.ConditionFailed  a conditional write lost
    ├── calls.CallRefused          an operator's CSMS call cannot be sent (a RefusalKind)
    └── topics.TopicRootError      a topic root that is not a valid topic prefix

OCPP errors (all carry a semantic :class:`ErrorKind`; the wire code depends on the version)::

    OcppError
    ├── FormatViolation            payload or frame not conforming to the PDU structure
    ├── OccurrenceViolation        a required field missing, too many/few array items
    ├── PropertyConstraintViolation a field with an invalid value (enum, length, range)
    ├── TypeConstraintViolation    a field of the wrong JSON type
    ├── ProtocolError              payload incomplete
    ├── RpcFrameworkError          not a valid RPC frame (wrong element count or types)
    ├── MessageTypeNotSupported    unknown message type id
    ├── NotImplementedAction       unknown action
    ├── NotSupportedAction         known action that this side does not accept
    ├── SecurityError
    ├── GenericError
    └── InternalError

OCPP-J 1.6 §4.2.3 and OCPP 2.0.1/2.1 part 4 §4.3 spell the codes differently (1.6 has the
famous ``OccurenceConstraintViolation`` typo and ``FormationViolation``), so the code is chosen
when the error is serialized, by :func:`error_code`.
"""

from __future__ import annotations

import enum
from typing import Any

from .versions import OcppVersion


class ErrorKind(enum.Enum):
    FORMAT = "format"
    OCCURRENCE = "occurrence"
    PROPERTY = "property"
    TYPE = "type"
    PROTOCOL = "protocol"
    RPC_FRAMEWORK = "rpc_framework"
    MESSAGE_TYPE_NOT_SUPPORTED = "message_type_not_supported"
    NOT_IMPLEMENTED = "not_implemented"
    NOT_SUPPORTED = "not_supported"
    SECURITY = "security"
    GENERIC = "generic"
    INTERNAL = "internal"


_V16_CODES: dict[ErrorKind, str] = {
    ErrorKind.FORMAT: "FormationViolation",
    ErrorKind.OCCURRENCE: "OccurenceConstraintViolation",  # sic, OCPP-J 1.6 §4.2.3
    ErrorKind.PROPERTY: "PropertyConstraintViolation",
    ErrorKind.TYPE: "TypeConstraintViolation",
    ErrorKind.PROTOCOL: "ProtocolError",
    # 1.6 has no RpcFrameworkError / MessageTypeNotSupported: a frame that is not a valid
    # RPC message does "not conform the PDU structure" (FormationViolation).
    ErrorKind.RPC_FRAMEWORK: "FormationViolation",
    ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED: "FormationViolation",
    ErrorKind.NOT_IMPLEMENTED: "NotImplemented",
    ErrorKind.NOT_SUPPORTED: "NotSupported",
    ErrorKind.SECURITY: "SecurityError",
    ErrorKind.GENERIC: "GenericError",
    ErrorKind.INTERNAL: "InternalError",
}
_V2_CODES: dict[ErrorKind, str] = {
    ErrorKind.FORMAT: "FormatViolation",
    ErrorKind.OCCURRENCE: "OccurrenceConstraintViolation",
    ErrorKind.PROPERTY: "PropertyConstraintViolation",
    ErrorKind.TYPE: "TypeConstraintViolation",
    ErrorKind.PROTOCOL: "ProtocolError",
    ErrorKind.RPC_FRAMEWORK: "RpcFrameworkError",
    ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED: "MessageTypeNotSupported",
    ErrorKind.NOT_IMPLEMENTED: "NotImplemented",
    ErrorKind.NOT_SUPPORTED: "NotSupported",
    ErrorKind.SECURITY: "SecurityError",
    ErrorKind.GENERIC: "GenericError",
    ErrorKind.INTERNAL: "InternalError",
}

#: Every error code each version defines.
ERROR_CODES: dict[OcppVersion, frozenset[str]] = {
    OcppVersion.V16: frozenset(_V16_CODES.values()),
    OcppVersion.V201: frozenset(_V2_CODES.values()),
    OcppVersion.V21: frozenset(_V2_CODES.values()),
}


def error_code(kind: ErrorKind, version: OcppVersion) -> str:
    """The wire error code for ``kind`` in ``version``."""
    return (_V16_CODES if version is OcppVersion.V16 else _V2_CODES)[kind]


class CoreError(Exception):
    """The root of every exception ``ocpp_core`` raises."""


class OcppError(CoreError):
    """Root of the RPC errors a handler may raise; becomes a CALLERROR."""

    kind: ErrorKind = ErrorKind.GENERIC
    default_description: str = "An error occurred"

    def __init__(self, description: str | None = None, details: dict[str, Any] | None = None):
        self.description = description if description is not None else self.default_description
        self.details: dict[str, Any] = details if details is not None else {}
        super().__init__(self.description)

    def code(self, version: OcppVersion) -> str:
        return error_code(self.kind, version)


class FormatViolation(OcppError):
    kind = ErrorKind.FORMAT
    default_description = "Payload is syntactically incorrect or does not conform to the PDU structure"


class OccurrenceViolation(OcppError):
    kind = ErrorKind.OCCURRENCE
    default_description = "A field violates occurrence constraints"


class PropertyConstraintViolation(OcppError):
    kind = ErrorKind.PROPERTY
    default_description = "A field contains an invalid value"


class TypeConstraintViolation(OcppError):
    kind = ErrorKind.TYPE
    default_description = "A field violates data type constraints"


class ProtocolError(OcppError):
    kind = ErrorKind.PROTOCOL
    default_description = "Payload for action is incomplete"


class RpcFrameworkError(OcppError):
    kind = ErrorKind.RPC_FRAMEWORK
    default_description = "Content of the call is not a valid RPC request"


class MessageTypeNotSupported(OcppError):
    kind = ErrorKind.MESSAGE_TYPE_NOT_SUPPORTED
    default_description = "Message type id is not supported"


class NotImplementedAction(OcppError):
    kind = ErrorKind.NOT_IMPLEMENTED
    default_description = "Requested action is not known by the receiver"


class NotSupportedAction(OcppError):
    kind = ErrorKind.NOT_SUPPORTED
    default_description = "Requested action is recognized but not supported by the receiver"


class SecurityError(OcppError):
    kind = ErrorKind.SECURITY
    default_description = "A security issue occurred while processing the request"


class GenericError(OcppError):
    kind = ErrorKind.GENERIC
    default_description = "An error occurred"


class InternalError(OcppError):
    kind = ErrorKind.INTERNAL
    default_description = "An internal error occurred and the receiver could not process the request"


_BY_KIND: dict[ErrorKind, type[OcppError]] = {
    cls.kind: cls
    for cls in (
        FormatViolation,
        OccurrenceViolation,
        PropertyConstraintViolation,
        TypeConstraintViolation,
        ProtocolError,
        RpcFrameworkError,
        MessageTypeNotSupported,
        NotImplementedAction,
        NotSupportedAction,
        SecurityError,
        GenericError,
        InternalError,
    )
}


def error_for_kind(kind: ErrorKind, description: str | None = None) -> OcppError:
    return _BY_KIND[kind](description)
