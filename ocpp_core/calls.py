"""CSMS-initiated calls: created by the operator API, completed by the charger's answer.

A call record (``CALL#<uniqueId>``) goes ``pending`` -> ``accepted`` (the charger answered
with a CALLRESULT that validates), ``error`` (a CALLERROR, or a CALLRESULT that does not
validate) or ``timeout`` (no answer by ``timeoutAt``; applied by whoever reads it first or
by a late answer). OCPP-J allows one outstanding call per direction, so creating a call
takes the charger's ``OUTSTANDING`` slot, which completion releases.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import outbox, schemas
from .certificates import certificate_signed_finished
from .errors import CoreError, OcppError
from .framing import CallError, CallResult, MessageType, serialize_call, serialize_error
from .handlers.provisioning import variable_key
from .handlers.reservations import cancel_reservation_result, reserve_now_result
from .ports import IdSource, ItemUpdate, Record, StateStore
from .presence import current_connection_key, is_connected
from .smart_charging.balancer import profile_finished
from .smart_charging.profiles import (
    clear_charging_profile_result,
    composite_schedule_result,
    set_charging_profile_result,
)
from .timefmt import format_ms
from .versions import CSMS_INITIATED, OcppVersion

logger = logging.getLogger(__name__)


class CallStatus(enum.StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    ERROR = "error"
    TIMEOUT = "timeout"


PENDING, ACCEPTED, ERROR, TIMEOUT = CallStatus.PENDING, CallStatus.ACCEPTED, CallStatus.ERROR, CallStatus.TIMEOUT
FINAL_STATES = frozenset({ACCEPTED, ERROR, TIMEOUT})


class RefusalKind(enum.StrEnum):
    """Why an operator's call cannot be sent; the operator API maps each to its HTTP status."""

    UNKNOWN_CHARGER = "unknown_charger"
    NEVER_CONNECTED = "never_connected"
    INVALID = "invalid"  # an action the charger's protocol does not have, or an invalid payload
    NOT_CONNECTED = "not_connected"
    BUSY = "busy"  # another CSMS call is still pending for the charger (one outstanding per direction)


class CallRefused(CoreError):
    """The operator's call cannot be sent, for ``kind``."""

    def __init__(self, kind: RefusalKind, reason: str, **extra: Any):
        self.kind = kind
        self.reason = reason
        self.extra = extra
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class NewCall:
    record: Record
    frame: str
    #: how long the message may wait in the broker before it is stale (MQTT5 message expiry)
    expiry_s: int


def start_call(
    store: StateStore,
    ids: IdSource,
    now_ms: int,
    charge_point_id: str,
    action: Any,
    payload: Any,
    *,
    timeout_s: int,
    record_ttl_s: int = 7 * 24 * 3600,
) -> NewCall:
    """Validate and record a CSMS call; the caller publishes ``frame`` to ``ocpp/{cp}/out``."""
    charger = store.get_charger(charge_point_id)
    if charger is None:
        raise CallRefused(RefusalKind.UNKNOWN_CHARGER, f"Unknown charger {charge_point_id}")
    version = OcppVersion.parse(charger.get("protocol"))
    if version is None:
        raise CallRefused(
            RefusalKind.NEVER_CONNECTED,
            f"Charger {charge_point_id} has never connected, so its OCPP version is unknown",
        )
    if not isinstance(action, str) or action not in CSMS_INITIATED[version]:
        raise CallRefused(
            RefusalKind.INVALID,
            f"{action!r} is not an action the CSMS can send in {version.value}",
            protocol=version.value,
        )
    try:
        schemas.validate_request(version, action, payload)
    except OcppError as error:
        raise CallRefused(
            RefusalKind.INVALID, f"Invalid {action} payload: {error.description}", protocol=version.value
        ) from None
    if not is_connected(charger, _current_connection(store, charger)):
        raise CallRefused(RefusalKind.NOT_CONNECTED, f"Charger {charge_point_id} is not connected")

    unique_id = ids.new_id()
    timeout_at = now_ms + timeout_s * 1000
    holder = store.acquire_outstanding(charge_point_id, unique_id, now_ms, timeout_at)
    if holder is not None:
        raise CallRefused(
            RefusalKind.BUSY,
            f"Charger {charge_point_id} already has a CSMS call pending ({holder.get('uniqueId')})",
            pendingUniqueId=holder.get("uniqueId"),
        )
    record = _call_record(charge_point_id, unique_id, action, payload, version, now_ms, timeout_s, record_ttl_s)
    try:
        store.put_call(charge_point_id, unique_id, record)
    except Exception:
        store.release_outstanding(charge_point_id, unique_id)
        raise
    return NewCall(record=record, frame=serialize_call(unique_id, action, payload), expiry_s=timeout_s)


def _call_record(
    cp: str, unique_id: str, action: str, payload: Any, version: OcppVersion, now_ms: int, timeout_s: int, ttl_s: int
) -> Record:
    return {
        "chargePointId": cp,
        "uniqueId": unique_id,
        "action": action,
        "payload": payload,
        "protocol": version.value,
        "status": PENDING,
        "createdAt": now_ms,
        "timeoutAt": now_ms + timeout_s * 1000,
        "expiresAt": now_ms // 1000 + ttl_s,
    }


@dataclass(frozen=True, slots=True)
class OutboxStart:
    """What ``start_outbox_call`` did: the call to publish (None: nothing could be sent now) and the
    chargers whose outbox the origins of expired calls queued something for."""

    call: NewCall | None
    drain: frozenset[str] = frozenset()


def start_outbox_call(
    store: StateStore,
    ids: IdSource,
    now_ms: int,
    charge_point_id: str,
    *,
    timeout_s: int,
    record_ttl_s: int = 7 * 24 * 3600,
) -> OutboxStart:
    """Take the charger's oldest queued call and its slot, if it is connected and not busy.

    The caller publishes the frame (``fail_call`` if that fails). Expired queued calls are dropped
    (their origins told); an overdue call holding the slot gets its timeout applied first.
    """
    items = store.list_outbox(charge_point_id)
    if not items:
        return OutboxStart(None)
    live, expired = outbox.split_expired(items, now_ms)
    drain: set[str] = set()
    for item in expired:
        if store.remove_outbox(charge_point_id, str(item["slot"]), int(item["seq"])):
            logger.info("outbox: %s for %s expired unsent", item.get("action"), charge_point_id)
            drain |= _tell_origin(store, now_ms, charge_point_id, item, "expired", "not sent before it expired", None)
    if not live:
        return OutboxStart(None, frozenset(drain))
    charger = store.get_charger(charge_point_id)
    version = OcppVersion.parse((charger or {}).get("protocol"))
    if charger is None or version is None or not is_connected(charger, _current_connection(store, charger)):
        return OutboxStart(None, frozenset(drain))  # sent when it connects again
    holder = store.get_outstanding(charge_point_id)
    if holder is not None:
        if int(holder.get("untilMs") or 0) > now_ms:
            return OutboxStart(None, frozenset(drain))  # busy: sent when that call completes
        view_call(store, now_ms, charge_point_id, str(holder.get("uniqueId")))  # applies its timeout
    item = live[0]
    slot, seq, action, payload = str(item["slot"]), int(item["seq"]), str(item["action"]), item.get("payload") or {}
    try:
        schemas.validate_request(version, action, payload)
    except OcppError as error:
        if store.remove_outbox(charge_point_id, slot, seq):
            logger.error("outbox: dropped an invalid %s for %s: %s", action, charge_point_id, error.description)
            drain |= _tell_origin(store, now_ms, charge_point_id, item, ERROR, error.description, None)
        return OutboxStart(None, frozenset(drain))
    unique_id = ids.new_id()
    if store.acquire_outstanding(charge_point_id, unique_id, now_ms, now_ms + timeout_s * 1000) is not None:
        return OutboxStart(None, frozenset(drain))  # another call took the slot first
    if not store.remove_outbox(charge_point_id, slot, seq):
        # Sent by a concurrent drain, or replaced by a newer call (its queuer drains it again).
        store.release_outstanding(charge_point_id, unique_id)
        return OutboxStart(None, frozenset(drain))
    record = _call_record(charge_point_id, unique_id, action, payload, version, now_ms, timeout_s, record_ttl_s)
    record.update(origin=item.get("origin") or {}, outboxSlot=slot, queuedAt=item.get("queuedAt"))
    try:
        store.put_call(charge_point_id, unique_id, record)
    except Exception:
        store.release_outstanding(charge_point_id, unique_id)
        _tell_origin(store, now_ms, charge_point_id, item, ERROR, "the call could not be recorded", None)
        raise
    frame = serialize_call(unique_id, action, payload)
    return OutboxStart(NewCall(record=record, frame=frame, expiry_s=timeout_s), frozenset(drain))


#: origin kind -> what to do when a call from the outbox is final
Origin = Callable[[StateStore, int, str, Mapping[str, Any], str, str, Any], set[str]]


def _tell_origin(
    store: StateStore, now_ms: int, cp: str, record: Mapping[str, Any], status: str, detail: str, response: Any
) -> set[str]:
    """Tell a final call's origin (if it has one) how it ended; the chargers it queued calls for."""
    origin = record.get("origin")
    if not isinstance(origin, Mapping) or not origin:
        return set()
    handler = ORIGINS.get(str(origin.get("kind")))
    if handler is None:
        logger.warning("call for %s has an origin of unknown kind %r", cp, origin.get("kind"))
        return set()
    try:
        return handler(store, now_ms, cp, origin, status, detail, response)
    except Exception:
        logger.exception("the %s origin failed on the result of a call to %s", origin.get("kind"), cp)
        return set()


def _current_connection(store: StateStore, charger: Mapping[str, Any]) -> Record | None:
    key = current_connection_key(charger)
    return store.get_connections([key]).get(key) if key is not None else None


def fail_call(store: StateStore, now_ms: int, charge_point_id: str, unique_id: str, reason: str) -> None:
    """The call could not be sent (publish failed): an ``error`` record, the slot freed."""
    changes = {"status": ERROR, "completedAt": now_ms, "error": {"errorCode": "NotSent", "errorDescription": reason}}
    if store.complete_call(charge_point_id, unique_id, changes):
        record = store.get_call(charge_point_id, unique_id)
        if record is not None:
            _tell_origin(store, now_ms, charge_point_id, record, ERROR, reason, None)
    store.release_outstanding(charge_point_id, unique_id)


def is_overdue(record: Mapping[str, Any], now_ms: int) -> bool:
    """A call still ``pending`` at or after its ``timeoutAt``: it reads as ``timeout``."""
    return record.get("status") == PENDING and now_ms >= int(record.get("timeoutAt", 0))


def view_call(store: StateStore, now_ms: int, charge_point_id: str, unique_id: str) -> Record | None:
    """The call record as the API shows it, with an overdue ``pending`` turned into ``timeout``."""
    record = store.get_call(charge_point_id, unique_id)
    if record is None:
        return None
    if is_overdue(record, now_ms):
        changes = {"status": TIMEOUT, "completedAt": now_ms}
        if store.complete_call(charge_point_id, unique_id, changes):
            _tell_origin(store, now_ms, charge_point_id, record, TIMEOUT, "no answer in time", None)
            store.release_outstanding(charge_point_id, unique_id)
            record = {**record, **changes}
        else:
            record = store.get_call(charge_point_id, unique_id) or record
    return record


def public_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """``{"status", "response" | "error", ...}`` for ``GET /chargers/{id}/calls/{uniqueId}``."""
    view: dict[str, Any] = {
        "uniqueId": record.get("uniqueId"),
        "chargePointId": record.get("chargePointId"),
        "action": record.get("action"),
        "status": record.get("status"),
        "createdAt": format_ms(int(record.get("createdAt", 0))),
    }
    if record.get("completedAt") is not None:
        view["completedAt"] = format_ms(int(record["completedAt"]))
    if "response" in record:
        view["response"] = record["response"]
    if "error" in record:
        view["error"] = record["error"]
    return view


@dataclass(frozen=True, slots=True)
class Completion:
    matched: bool
    action: str | None = None
    reply: str | None = None
    detail: str = ""
    #: chargers whose outbox may now send (this one's slot is free; an origin queued calls)
    drain: frozenset[str] = frozenset()


def complete_from_charger(
    store: StateStore, now_ms: int, charge_point_id: str, version: OcppVersion, frame: CallResult | CallError
) -> Completion:
    """Apply the charger's CALLRESULT / CALLERROR to the pending call it answers."""
    if isinstance(frame, CallError) and frame.message_type == MessageType.CALLRESULTERROR:
        # 2.1: the charger could not process one of OUR CALLRESULTs. Nothing to complete.
        logger.warning(
            "charger %s refused our CALLRESULT %s: %s %s",
            charge_point_id,
            frame.unique_id,
            frame.error_code,
            frame.error_description,
        )
        return Completion(False, detail=f"CALLRESULTERROR {frame.error_code}")
    record = store.get_call(charge_point_id, frame.unique_id)
    if record is None:
        logger.info("answer %s from %s matches no CSMS call: ignored", frame.unique_id, charge_point_id)
        return Completion(False, detail="no such call")
    action = str(record.get("action"))
    if record.get("status") != PENDING:
        logger.info(
            "answer %s from %s to %s arrived when the call was %s: ignored",
            frame.unique_id,
            charge_point_id,
            action,
            record.get("status"),
        )
        return Completion(False, action=action, detail=f"call already {record.get('status')}")
    if now_ms >= int(record.get("timeoutAt", 0)):
        drain: set[str] = set()
        if store.complete_call(
            charge_point_id, frame.unique_id, {"status": TIMEOUT, "completedAt": now_ms, "lateAnswerAt": now_ms}
        ):
            drain = _tell_origin(store, now_ms, charge_point_id, record, TIMEOUT, "answered after the timeout", None)
            store.release_outstanding(charge_point_id, frame.unique_id)
        return Completion(
            False, action=action, detail="answer arrived after the timeout", drain=frozenset({charge_point_id, *drain})
        )

    reply: str | None = None
    if isinstance(frame, CallError):
        changes: dict[str, Any] = {
            "status": ERROR,
            "completedAt": now_ms,
            "error": {
                "errorCode": frame.error_code,
                "errorDescription": frame.error_description,
                "errorDetails": frame.error_details if isinstance(frame.error_details, dict) else {},
            },
        }
        detail = f"CALLERROR {frame.error_code}"
    else:
        try:
            schemas.validate_response(version, action, frame.payload)
        except OcppError as error:
            changes = {
                "status": ERROR,
                "completedAt": now_ms,
                "error": {
                    "errorCode": error.code(version),
                    "errorDescription": f"Response does not validate: {error.description}",
                    "errorDetails": {},
                    "invalidResponse": frame.payload,
                },
            }
            detail = f"invalid response: {error.description}"
            if version is OcppVersion.V21:
                # 2.1 part 4 §4.2.4: a CALLRESULT that cannot be processed gets a CALLRESULTERROR.
                reply = serialize_error(frame.unique_id, error, version, MessageType.CALLRESULTERROR)
        else:
            changes = {"status": ACCEPTED, "completedAt": now_ms, "response": frame.payload}
            detail = "completed"
    if not store.complete_call(charge_point_id, frame.unique_id, changes):
        # A redelivered answer (or one racing a timeout): the first one applied its effect.
        return Completion(False, action=action, detail="call completed concurrently")
    drain = {charge_point_id}
    try:
        if changes["status"] == ACCEPTED and isinstance(frame, CallResult):
            effect = RESULT_EFFECTS.get(action)
            if effect is not None:
                try:
                    effect(store, now_ms, charge_point_id, record.get("payload") or {}, frame.payload)
                except Exception:
                    logger.exception(
                        "could not apply the %s result of %s to the charger state", action, charge_point_id
                    )
    finally:
        response = frame.payload if isinstance(frame, CallResult) else None
        drain |= _tell_origin(store, now_ms, charge_point_id, record, str(changes["status"]), detail, response)
        # Released only once the effect is written: the next CSMS call (OCPP allows one outstanding
        # per direction) cannot be answered and applied before this one, whatever the delivery order.
        store.release_outstanding(charge_point_id, frame.unique_id)
    return Completion(True, action=action, reply=reply, detail=detail, drain=frozenset(drain))


# --- results that feed state, as OCPP says they do -------------------------------------------

#: the charger maps that call results (and NotifyReport) fill, one key at a time
CHARGER_MAPS = ("configuration", "variables")

Effect = Callable[[StateStore, int, str, Mapping[str, Any], Any], None]


def _merge_charger_map(store: StateStore, cp: str, field: str, values: Mapping[str, Any], now_ms: int) -> None:
    """Key by key, never read, merged and written back (two results meeting would lose one)."""
    if values:
        store.set_charger_map_entries(cp, field, values)


def _get_configuration(store: StateStore, now: int, cp: str, request: Mapping[str, Any], response: Any) -> None:
    values = {
        item["key"]: {"value": item.get("value"), "readonly": item.get("readonly", False)}
        for item in response.get("configurationKey") or []
    }
    _merge_charger_map(store, cp, "configuration", values, now)
    if response.get("unknownKey"):
        store.update_charger(cp, {"unknownConfigurationKeys": response["unknownKey"]})


def _change_configuration(store: StateStore, now: int, cp: str, request: Mapping[str, Any], response: Any) -> None:
    if response.get("status") in ("Accepted", "RebootRequired"):
        _merge_charger_map(
            store, cp, "configuration", {request["key"]: {"value": request["value"], "readonly": False}}, now
        )


def _get_variables(store: StateStore, now: int, cp: str, request: Mapping[str, Any], response: Any) -> None:
    values = {
        variable_key(item.get("component") or {}, item.get("variable") or {}): item.get("attributeValue")
        for item in response.get("getVariableResult") or []
        if item.get("attributeStatus") == "Accepted" and item.get("attributeType", "Actual") == "Actual"
    }
    _merge_charger_map(store, cp, "variables", values, now)


def _set_variables(store: StateStore, now: int, cp: str, request: Mapping[str, Any], response: Any) -> None:
    accepted = {
        variable_key(item.get("component") or {}, item.get("variable") or {})
        for item in response.get("setVariableResult") or []
        if item.get("attributeStatus") in ("Accepted", "RebootRequired")
        and item.get("attributeType", "Actual") == "Actual"
    }
    values = {
        key: item.get("attributeValue")
        for item in request.get("setVariableData") or []
        if (key := variable_key(item.get("component") or {}, item.get("variable") or {})) in accepted
    }
    _merge_charger_map(store, cp, "variables", values, now)


def _get_local_list_version(store: StateStore, now: int, cp: str, request: Mapping[str, Any], response: Any) -> None:
    version = response.get("listVersion", response.get("versionNumber"))
    if isinstance(version, int):
        store.update_charger(cp, {"localListVersion": version})


def _send_local_list(store: StateStore, now: int, cp: str, request: Mapping[str, Any], response: Any) -> None:
    version = request.get("listVersion", request.get("versionNumber"))
    if response.get("status") == "Accepted" and isinstance(version, int):
        store.update_charger(cp, {"localListVersion": version})


def _installed_certificates(store: StateStore, now: int, cp: str, request: Mapping[str, Any], response: Any) -> None:
    if response.get("status") == "Accepted":
        hashes = response.get("certificateHashData") or response.get("certificateHashDataChain") or []
        store.update_charger(cp, {"installedCertificates": hashes, "installedCertificatesAt": now})


def _reset(store: StateStore, now: int, cp: str, request: Mapping[str, Any], response: Any) -> None:
    if response.get("status") in ("Accepted", "Scheduled"):
        store.update_charger(cp, {"resetRequestedAt": now, "resetType": request.get("type")})


def _request_start(store: StateStore, now: int, cp: str, request: Mapping[str, Any], response: Any) -> None:
    # F01/F02: the station may already have a transaction; link it to our remoteStartId.
    tx = response.get("transactionId")
    if response.get("status") == "Accepted" and isinstance(tx, str):
        store.update_transaction(
            cp,
            tx,
            ItemUpdate(
                set={"remoteStartId": request.get("remoteStartId")},
                set_if_absent={"chargePointId": cp, "transactionId": tx},
            ),
        )


RESULT_EFFECTS: dict[str, Effect] = {
    "GetConfiguration": _get_configuration,
    "ChangeConfiguration": _change_configuration,
    "GetVariables": _get_variables,
    "SetVariables": _set_variables,
    "GetLocalListVersion": _get_local_list_version,
    "SendLocalList": _send_local_list,
    "GetInstalledCertificateIds": _installed_certificates,
    "Reset": _reset,
    "RequestStartTransaction": _request_start,
    "ReserveNow": reserve_now_result,
    "CancelReservation": cancel_reservation_result,
    "SetChargingProfile": set_charging_profile_result,
    "ClearChargingProfile": clear_charging_profile_result,
    "GetCompositeSchedule": composite_schedule_result,
}


ORIGINS: dict[str, Origin] = {"balancing": profile_finished, "certificate": certificate_signed_finished}
