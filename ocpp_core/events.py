"""Domain events for integrations (DESIGN §11), derived from the table's change stream.

An event is what a *state change* means to a billing, CRM or alerting system: a transaction ended
with its energy, a connector went ``Faulted``. Rather than having each handler publish what it
believes it changed (a crash between the write and the publish would lose the event; a
redelivered frame would publish it twice), events are read off the stored state itself: DynamoDB
Streams carries one record per item write that changed the item, in order per item, exactly once
("DynamoDB Streams ... guarantees ... each stream record appears exactly once in the stream",
https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Streams.html). :func:`derive`
compares a record's old and new images and says which events the change makes.

So the state-write rules (``ports``: ordered conditional writes, records keyed by the frame) are
the events' rules too. A duplicated frame changes nothing, so it makes no event. A late, older
StatusNotification loses its conditional write, so it makes none either: per item, each event
describes a newer state than the one before it, and an intermediate state that was superseded
before it could be applied is not reported. Reports that are facts of their own (a security event,
each firmware progress step, a received file) are kept under the frame's digest and make one event
when first written.

Each event's ``id`` is a UUID named by what changed (the transaction, the status's order key...),
not by the delivery: the events Lambda retried on the same stream records sends the same ids, and
consumers deduplicate on them.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from . import keys
from .handlers.transactions import transaction_view
from .ports import Record
from .timefmt import format_ms, parse_ms

#: ``source`` of every event on the EventBridge bus
EVENT_SOURCE = "ocpp.csms"


class EventType(enum.StrEnum):
    CHARGER_CONNECTED = "ChargerConnected"
    CHARGER_DISCONNECTED = "ChargerDisconnected"
    CHARGER_BOOTED = "ChargerBooted"
    CONNECTOR_STATUS_CHANGED = "ConnectorStatusChanged"
    TRANSACTION_STARTED = "TransactionStarted"
    TRANSACTION_ENDED = "TransactionEnded"
    SECURITY_EVENT_RECEIVED = "SecurityEventReceived"
    FIRMWARE_STATUS_CHANGED = "FirmwareStatusChanged"
    CERTIFICATE_ISSUED = "CertificateIssued"
    CALL_COMPLETED = "CallCompleted"
    FILE_RECEIVED = "FileReceived"


#: The sort keys (exact, or prefixes ending in ``#``) of the items whose changes can make an event:
#: the stream's event source mapping filters on them (infra), so the other writes of every frame
#: (meter values, idempotency records, outbox...) never invoke the events Lambda.
EVENT_SOURCE_SORT_KEYS: tuple[str, ...] = ("CHARGER", "CONN#", "STATUS#", "TX#", "EVT#", "CALL#", "CERT#", "FILE#")


def is_event_source(sort_key: str) -> bool:
    """Whether the item's changes can make an event (the filter of :data:`EVENT_SOURCE_SORT_KEYS`:
    an exact key, or a prefix for those ending in ``#``)."""
    return any(sort_key == key or (key.endswith("#") and sort_key.startswith(key)) for key in EVENT_SOURCE_SORT_KEYS)


def passes_stream_filter(event_name: str, sort_key: str, write_kind: Any) -> bool:
    """What the stream's event source mapping lets through (infra/events.py): inserts and changes
    of the items that can make an event, except a charger item's ``lastSeen`` touches, which never
    do (``write_kind``: the new image's ``keys.WRITE_KIND``; a charger record without it is dropped
    too, as the mapping's ``anything-but`` drops a missing value)."""
    if event_name not in ("INSERT", "MODIFY") or not is_event_source(sort_key):
        return False
    return sort_key != keys.CHARGER_SK or (isinstance(write_kind, str) and write_kind != keys.TOUCH_WRITE)


#: the ``EVT#`` kinds that are events of their own, and the event each makes
_REPORTS = {
    "SecurityEventNotification": EventType.SECURITY_EVENT_RECEIVED,
    "FirmwareStatusNotification": EventType.FIRMWARE_STATUS_CHANGED,
    "SignedFirmwareStatusNotification": EventType.FIRMWARE_STATUS_CHANGED,
}
#: a call's response is carried in ``CallCompleted`` up to this size (EventBridge takes 256 KB)
MAX_RESPONSE_CHARS = 8_000
#: names the ids of this system's events (their digests never meet other systems' name-based ids)
_NAMESPACE = "ocpp.csms/events/1"

Event = dict[str, Any]
#: the id of the charger's current connection, read when a connection ends (None: unknown)
CurrentConnection = Callable[[str], "str | None"]


def event_id(*parts: object) -> str:
    """A UUID named by ``parts`` (RFC 9562 version 8, from SHA-256): the same change always gets
    the same id. (``uuid`` is not imported in the core: its other functions read clocks and
    random numbers.)"""
    name = "\x1f".join([_NAMESPACE, *(str(part) for part in parts)])
    digest = bytearray(hashlib.sha256(name.encode("utf-8", "surrogatepass")).digest()[:16])
    digest[6] = digest[6] & 0x0F | 0x80  # version 8
    digest[8] = digest[8] & 0x3F | 0x80  # the RFC 9562 variant
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _event(kind: EventType, cp: str, at_ms: int | None, detail: Mapping[str, Any], *id_parts: object) -> Event:
    return {
        "type": kind.value,
        "id": event_id(kind.value, cp, *id_parts),
        "chargePointId": cp,
        "at": format_ms(at_ms) if at_ms is not None else None,
        "detail": {name: value for name, value in detail.items() if value is not None},
    }


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _charger_time(reported: Any, fallback: Any) -> int | None:
    """A time the charger reported (its clock), else the bridge's receive time."""
    parsed = parse_ms(reported)
    return parsed if parsed is not None else _int(fallback)


def derive(
    old: Record | None,
    new: Record | None,
    *,
    current_connection: CurrentConnection | None = None,
) -> list[Event]:
    """The events one item change makes. ``old`` / ``new``: the item before and after the write
    (with ``pk`` and ``sk``; None for an insert / a removal). Never raises on unexpected items:
    an item it does not know makes no event."""
    if new is None:
        return []  # removals (TTL expiry, a deleted id tag) are housekeeping, not domain events
    pk, sk = str(new.get(keys.PK, "")), str(new.get(keys.SK, ""))
    if not pk.startswith("CP#"):
        return []
    cp = pk.removeprefix("CP#")
    before: Record = old or {}
    if sk == keys.CHARGER_SK:
        return _booted(cp, before, new)
    if sk.startswith(keys.CONNECTION_PREFIX):
        return _presence(cp, before, new, current_connection)
    if sk.startswith(keys.STATUS_PREFIX):
        return _status(cp, sk.removeprefix(keys.STATUS_PREFIX), before, new)
    if sk.startswith(keys.TRANSACTION_PREFIX):
        return _transaction(cp, before, new)
    if sk.startswith(keys.CALL_PREFIX):
        return _call(cp, before, new)
    if old is not None:
        return []  # the rest are made once: only their first write is an event
    if sk.startswith(keys.EVENT_PREFIX):
        return _report(cp, sk, new)
    if sk.startswith(keys.CERTIFICATE_PREFIX):
        return _certificate(cp, new)
    if sk.startswith("FILE#"):
        return _file(cp, new)
    return []


def _call(cp: str, old: Record, new: Record) -> list[Event]:
    """``CallCompleted``: a CSMS call that leaves ``pending`` (answered, refused, timed out)."""
    if old.get("status") != "pending" or new.get("status") in (None, "pending"):
        return []
    unique_id = str(new.get("uniqueId") or str(new.get(keys.SK, "")).removeprefix(keys.CALL_PREFIX))
    detail: dict[str, Any] = {
        "uniqueId": unique_id,
        "action": new.get("action"),
        "status": new.get("status"),
        "error": new.get("error"),
        "origin": _mapping(new.get("origin")).get("kind"),
    }
    response = new.get("response")
    if response is not None and len(json.dumps(response, default=str)) <= MAX_RESPONSE_CHARS:
        detail["response"] = response
    return [_event(EventType.CALL_COMPLETED, cp, _int(new.get("completedAt")), detail, unique_id)]


def _booted(cp: str, old: Record, new: Record) -> list[Event]:
    order = new.get("bootOrder")
    if order is None or order == old.get("bootOrder"):
        return []  # not a boot (lastSeen, presence, registry writes...)
    boot = _mapping(new.get("boot"))
    detail = {
        "bootStatus": new.get("bootStatus"),
        "protocol": new.get("protocol"),
        "reason": boot.get("reason"),
        "vendor": boot.get("chargePointVendor", boot.get("vendorName")),
        "model": boot.get("chargePointModel", boot.get("model")),
        "serialNumber": boot.get("chargePointSerialNumber", boot.get("serialNumber")),
        "firmwareVersion": boot.get("firmwareVersion"),
    }
    return [_event(EventType.CHARGER_BOOTED, cp, _int(new.get("bootAt")), detail, order)]


def _is_up(connection: Record) -> bool:
    connected, disconnected = _int(connection.get("connectedAt")), _int(connection.get("disconnectedAt"))
    return connected is not None and (disconnected is None or disconnected < connected)


def _presence(cp: str, old: Record, new: Record, current: CurrentConnection | None) -> list[Event]:
    was, now = _is_up(old), _is_up(new)
    if was == now:
        return []  # a stale event (older than what is kept) or a repeat
    connection_id = str(new.get("connectionId") or "")
    if now:
        at = _int(new.get("connectedAt"))
        return [_event(EventType.CHARGER_CONNECTED, cp, at, {"connectionId": connection_id}, connection_id, at)]
    at = _int(new.get("disconnectedAt"))
    if current is not None:
        latest = current(cp)
        if latest is not None and latest != connection_id:
            return []  # a newer socket took over: the charger is still connected, through it
    detail = {"connectionId": connection_id, "reason": new.get("disconnectReason")}
    return [_event(EventType.CHARGER_DISCONNECTED, cp, at, detail, connection_id, at)]


def _status(cp: str, label: str, old: Record, new: Record) -> list[Event]:
    status = new.get("status")
    if status is None or new.get("order") == old.get("order") or status == old.get("status"):
        return []
    detail = {
        "connector": label,
        "evseId": new.get("evseId"),
        "connectorId": new.get("connectorId"),
        "status": status,
        "previousStatus": old.get("status"),
        "errorCode": new.get("errorCode"),
        "info": new.get("info"),
        "timestamp": new.get("timestamp"),
    }
    at = _charger_time(new.get("timestamp"), new.get("updatedAt"))
    return [_event(EventType.CONNECTOR_STATUS_CHANGED, cp, at, detail, label, new.get("order"))]


def _transaction(cp: str, old: Record, new: Record) -> list[Event]:
    """Started: the first write that knows the start. Ended: the first write that knows both the
    start and the stop (a 2.x Ended delivered before its Started waits for it, so the energy and
    the duration are the whole transaction's)."""
    events: list[Event] = []
    transaction_id = str(new.get("transactionId") or "")
    started = "startedAt" in new
    if started and "startedAt" not in old:
        events.append(_started(cp, transaction_id, new))
    if started and "stoppedAt" in new and not ("startedAt" in old and "stoppedAt" in old):
        events.append(_ended(cp, transaction_id, new))
    return events


def _token(record: Record) -> dict[str, Any]:
    return {
        "idToken": record.get("idTag", record.get("idToken")),
        "idTokenType": record.get("idTokenType"),
        "authorizationStatus": record.get("authorizationStatus"),
    }


def _started(cp: str, transaction_id: str, record: Record) -> Event:
    detail = {
        "transactionId": transaction_id,
        "protocol": record.get("protocol"),
        "evseId": record.get("evseId"),
        "connectorId": record.get("connectorId"),
        **_token(record),
        "meterStartWh": record.get("meterStart"),
        "reservationId": record.get("reservationId"),
        "startTimestamp": record.get("startTimestamp"),
    }
    at = _charger_time(record.get("startTimestamp"), record.get("startedAt"))
    return _event(EventType.TRANSACTION_STARTED, cp, at, detail, transaction_id)


def _ended(cp: str, transaction_id: str, record: Record) -> Event:
    view = transaction_view(record)
    start = _charger_time(record.get("startTimestamp"), record.get("startedAt"))
    stop = _charger_time(record.get("stopTimestamp"), record.get("stoppedAt"))
    duration = (stop - start) / 1000 if start is not None and stop is not None and stop >= start else None
    detail = {
        "transactionId": transaction_id,
        "protocol": record.get("protocol"),
        "evseId": record.get("evseId"),
        "connectorId": record.get("connectorId"),
        **_token(record),
        "energyWh": view.get("energyWh"),
        "meterStartWh": record.get("meterStart"),
        "meterStopWh": record.get("meterStop", record.get("meterLast")),
        "durationS": int(duration) if duration is not None and duration.is_integer() else duration,
        "stopReason": record.get("stopReason"),
        "stopIdToken": record.get("stopIdTag"),
        "closedBy": record.get("closedBy"),
        "startTimestamp": record.get("startTimestamp"),
        "stopTimestamp": record.get("stopTimestamp"),
    }
    return _event(EventType.TRANSACTION_ENDED, cp, stop, detail, transaction_id)


def _report(cp: str, sk: str, record: Record) -> list[Event]:
    kind = str(record.get("kind") or sk.removeprefix(keys.EVENT_PREFIX).split("#", 1)[0])
    event_type = _REPORTS.get(kind)
    if event_type is None:
        return []
    payload = _mapping(record.get("payload"))
    if event_type is EventType.SECURITY_EVENT_RECEIVED:
        detail = {
            "type": payload.get("type"),
            "techInfo": payload.get("techInfo"),
            "timestamp": payload.get("timestamp"),
        }
        at = _charger_time(payload.get("timestamp"), record.get("receivedAt"))
    else:
        detail = {"status": payload.get("status"), "requestId": payload.get("requestId"), "notification": kind}
        at = _int(record.get("receivedAt"))
    return [_event(event_type, cp, at, detail, sk)]


def _certificate(cp: str, record: Record) -> list[Event]:
    serial = record.get("serial")
    detail = {
        "serial": serial,
        "subject": record.get("subject"),
        "certificateType": record.get("certificateType"),
        "notBefore": format_ms(nb) if (nb := _int(record.get("notBefore"))) is not None else None,
        "notAfter": format_ms(na) if (na := _int(record.get("notAfter"))) is not None else None,
    }
    return [_event(EventType.CERTIFICATE_ISSUED, cp, _int(record.get("issuedAt")), detail, serial)]


def _file(cp: str, record: Record) -> list[Event]:
    detail = {
        name: record.get(name) for name in ("fileId", "name", "size", "kind", "uploadId", "requestId", "uniqueId")
    }
    return [_event(EventType.FILE_RECEIVED, cp, _int(record.get("receivedAt")), detail, record.get("fileId"))]
