"""Reservations: ``POST / GET /chargers/{id}/reservations``, ``GET / DELETE /reservations/{id}``
(and the same under ``/chargers/{id}/reservations/{id}``).

Creating one allocates the reservation id (``next_reservation_id``: unique across chargers, so
``/reservations/{id}`` needs no charger), sends ``ReserveNow`` through the one call path of the
API (``calls.send_call``) and keeps the record; the charger's answer, a transaction started with
it, an accepted ``CancelReservation`` or a 2.x ``ReservationStatusUpdate`` each add a fact to it,
and its status is derived from them when read (``ocpp_core.handlers.reservations``).
"""

from __future__ import annotations

from typing import Any

from ocpp_core.handlers.reservations import ENDED, ReservationStatus, reservation_view, reserve_now_payload
from ocpp_core.ports import ItemUpdate, Newer, Record
from ocpp_core.timefmt import format_ms, parse_ms
from ocpp_core.versions import OcppVersion

from .bodies import json_object, optional_string
from .calls import parse_wait, send_call
from .context import ApiContext
from .errors import BadRequest, Conflict, NotFound
from .http import Request, Response
from .routes import MAX_ID_TAG_LENGTH
from .views import present

FIELDS = ("idTag", "expiryDate", "connectorId", "evseId", "parentIdTag", "idTokenType", "connectorType")
STATES = tuple(status.value for status in ReservationStatus)
#: OCPP integers are 32-bit; a connector or EVSE id beyond a few hundred is a typo
MAX_CONNECTOR_ID = 1000


def _integer(body: dict[str, Any], key: str, *, minimum: int) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_CONNECTOR_ID:
        raise BadRequest(f"{key} must be a whole number from {minimum} to {MAX_CONNECTOR_ID}.", **{key: value})
    return value


def _known(statuses: list[Record], key: str) -> set[int]:
    return {s[key] for s in statuses if isinstance(s.get(key), int)}


def _checked_fields(ctx: ApiContext, cp: str, version: OcppVersion, body: dict[str, Any]) -> dict[str, Any]:
    """The operator's fields, each checked: 400 with the reason, nothing sent."""
    tag = optional_string(body, "idTag", max_length=MAX_ID_TAG_LENGTH)
    if tag is None:
        raise BadRequest('The body needs "idTag": the id tag the connector is reserved for.')
    expiry_ms = parse_ms(body.get("expiryDate"))
    if expiry_ms is None:
        raise BadRequest('The body needs "expiryDate": an RFC 3339 date-time, e.g. 2030-12-31T23:59:59Z.')
    if expiry_ms <= ctx.now_ms():
        raise BadRequest(f"expiryDate {body['expiryDate']} is in the past: a reservation must end later than now.")
    fields: dict[str, Any] = {
        "idTag": tag,
        "expiryDate": format_ms(expiry_ms),
        "parentIdTag": optional_string(body, "parentIdTag", max_length=MAX_ID_TAG_LENGTH),
    }
    statuses = ctx.deps.store.list_statuses(cp)
    if version is OcppVersion.V16:
        for key in ("evseId", "idTokenType", "connectorType"):
            if key in body:
                raise BadRequest(f"{key} is an OCPP 2.x field; {cp} speaks OCPP 1.6: use connectorId.")
        connector = _integer(body, "connectorId", minimum=0)
        if connector is None:
            raise BadRequest('The body needs "connectorId" (0 reserves the whole charger).')
        known = _known(statuses, "connectorId")
        if connector != 0 and known and connector not in known:
            raise BadRequest(
                f"Unknown connector {connector} of {cp}: it reported {', '.join(map(str, sorted(known)))}.",
                knownConnectors=sorted(known),
            )
        fields["connectorId"] = connector
        return fields
    if "connectorId" in body:
        raise BadRequest(f"{cp} speaks {version.value}: a reservation names an EVSE (evseId), not a connector.")
    evse = _integer(body, "evseId", minimum=1)
    known = _known(statuses, "evseId")
    if evse is not None and known and evse not in known:
        raise BadRequest(
            f"Unknown EVSE {evse} of {cp}: it reported {', '.join(map(str, sorted(known)))}.",
            knownEvses=sorted(known),
        )
    for key in ("idTokenType", "connectorType"):
        fields[key] = optional_string(body, key, max_length=50)
    fields["evseId"] = evse
    return fields


def create(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp = params["chargePointId"]
    store = ctx.deps.store
    wait_s = parse_wait(request.query.get("wait"), ctx.deps.settings.max_wait_s)
    body = json_object(request, FIELDS, required=True)
    charger = store.get_charger(cp)
    if charger is None:
        raise NotFound(f"Unknown charger {cp}.", chargePointId=cp)
    version = OcppVersion.parse(charger.get("protocol"))
    if version is None:
        raise Conflict(f"Charger {cp} has never connected, so its OCPP version is unknown.", chargePointId=cp)
    fields = _checked_fields(ctx, cp, version, body)
    reservation_id = store.next_reservation_id()
    payload = reserve_now_payload(version is OcppVersion.V16, reservation_id, fields)
    # Refused (not connected, busy, invalid for the schema): nothing kept, the id is skipped.
    sent = _send_reserve_now(ctx, cp, reservation_id, payload, fields, wait_s)
    record = store.get_reservation(cp, reservation_id) or {}
    answer = {"reservation": _view(ctx, record), "call": sent.view()}
    return Response(sent.http_status, answer, {"location": f"/reservations/{reservation_id}"})


def _send_reserve_now(
    ctx: ApiContext, cp: str, reservation_id: int, payload: dict[str, Any], fields: dict[str, Any], wait_s: float | None
) -> Any:
    """Record first, then send (so that the answer always finds the record); the call's id is kept."""
    store = ctx.deps.store
    record: dict[str, Any] = {
        "chargePointId": cp,
        "reservationId": reservation_id,
        **{k: v for k, v in fields.items() if v is not None},
        "createdAt": ctx.now_ms(),
    }
    store.create_reservation(cp, reservation_id, record)
    try:
        sent = send_call(ctx, cp, "ReserveNow", payload, wait_s)
    except Exception:
        # Not sent (refused, or the publish failed): the charger never heard of it; hidden.
        never = ItemUpdate(
            set={"end": ReservationStatus.CANCELLED.value, "notSent": True},
            newer=Newer("endedAt", ctx.now_ms(), earliest_wins=True),
        )
        store.update_reservation(cp, reservation_id, never)
        raise
    store.update_reservation(cp, reservation_id, ItemUpdate(set={"uniqueId": sent.record["uniqueId"]}))
    ctx.count("ReservationsCreated")
    return sent


def _view(ctx: ApiContext, record: Record) -> dict[str, Any]:
    return present(reservation_view(record, ctx.now_ms()), drop=frozenset({"notSent"}))


def _reservation_id(params: dict[str, str]) -> int:
    raw = params["reservationId"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 10 or int(raw) > 2**31 - 1:
        raise BadRequest(f"Invalid reservation id {raw[:20]!r}: a whole number (OCPP integer).")
    return int(raw)


def _find(ctx: ApiContext, params: dict[str, str]) -> Record:
    rid = _reservation_id(params)
    cp = params.get("chargePointId")
    store = ctx.deps.store
    record = store.get_reservation(cp, rid) if cp is not None else store.find_reservation(rid)
    if record is None or record.get("notSent"):
        where = f" of charger {cp}" if cp is not None else ""
        raise NotFound(f"No reservation {rid}{where}.", reservationId=rid)
    return record


def get(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    return Response(200, _view(ctx, _find(ctx, params)))


def list_for_charger(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    cp = params["chargePointId"]
    status = request.query.get("status")
    if status is not None and status not in STATES:
        raise BadRequest(f"status must be one of {', '.join(STATES)}.", allowedValues=STATES)
    store = ctx.deps.store
    if store.get_charger(cp) is None:
        raise NotFound(f"Unknown charger {cp}.", chargePointId=cp)
    views = [_view(ctx, r) for r in store.list_reservations(cp) if not r.get("notSent")]
    if status is not None:
        views = [v for v in views if v["status"] == status]
    return Response(200, {"reservations": views, "count": len(views)})


def cancel(ctx: ApiContext, request: Request, params: dict[str, str]) -> Response:
    """Send ``CancelReservation``; the reservation is ``Cancelled`` once the charger accepts it."""
    wait_s = parse_wait(request.query.get("wait"), ctx.deps.settings.max_wait_s)
    record = _find(ctx, params)
    cp, rid = str(record["chargePointId"]), int(record["reservationId"])
    status = reservation_view(record, ctx.now_ms())["status"]
    if status in ENDED:
        raise Conflict(
            f"Reservation {rid} is already {status}: there is nothing to cancel.",
            reservationId=rid,
            reservationStatus=status,
        )
    if status != ReservationStatus.ACCEPTED and status != ReservationStatus.REQUESTED:
        raise Conflict(
            f"Reservation {rid} was not accepted by the charger ({status}): there is nothing to cancel.",
            reservationId=rid,
            reservationStatus=status,
        )
    sent = send_call(ctx, cp, "CancelReservation", {"reservationId": rid}, wait_s)
    ctx.deps.store.update_reservation(cp, rid, ItemUpdate(set={"cancelUniqueId": sent.record["uniqueId"]}))
    record = ctx.deps.store.get_reservation(cp, rid) or record
    return Response(sent.http_status, {"reservation": _view(ctx, record), "call": sent.view()}, sent.location)
