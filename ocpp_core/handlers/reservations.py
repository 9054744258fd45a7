"""Reservations (OCPP 1.6 Reservation profile; 2.0.1 / 2.1 block H).

The CSMS allocates each reservation id (an atomic counter, so ids are unique across chargers)
and keeps a record per reservation. Its state is never written as one ``status`` that later
writes could overwrite in the wrong order; it is derived when read (``reservation_view``) from
facts that each arrive once and commute:

* ``answer``: the charger's ``ReserveNow`` answer (``Accepted``, ``Faulted``, ``Occupied``,
  ``Rejected``, ``Unavailable``), set when the call completes;
* ``end``: how it ended (``Used`` when a transaction started with it, ``Cancelled`` after an
  accepted ``CancelReservation`` or a 2.x ``ReservationStatusUpdate`` ``Removed``, ``Expired``
  when the 2.x charger says so), with ``endedAt``. A reservation ends once: the earliest end
  wins (a conditional write on ``endedAt``), so a late ``StartTransaction`` or
  ``ReservationStatusUpdate`` never replaces an earlier end, and a late ``ReserveNow`` answer
  changes the answer only, never the end;
* ``expiryDate``: past it, an accepted reservation that did not end is ``Expired`` (checked in
  code: 1.6 chargers say nothing when a reservation expires).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from ..context import CallContext
from ..ports import ItemUpdate, Newer, StateStore
from ..timefmt import parse_ms
from .common import record_event, routes


class ReservationStatus(enum.StrEnum):
    REQUESTED = "Requested"  # ReserveNow sent, not answered yet
    ACCEPTED = "Accepted"
    FAULTED = "Faulted"
    OCCUPIED = "Occupied"
    REJECTED = "Rejected"
    UNAVAILABLE = "Unavailable"
    USED = "Used"
    EXPIRED = "Expired"
    CANCELLED = "Cancelled"


#: the states a reservation does not leave
ENDED = frozenset({ReservationStatus.USED, ReservationStatus.EXPIRED, ReservationStatus.CANCELLED})


def reservation_status(record: Mapping[str, Any], now_ms: int) -> ReservationStatus:
    end = record.get("end")
    if end in ENDED:
        return ReservationStatus(end)
    answer = record.get("answer")
    expiry = parse_ms(record.get("expiryDate"))
    if answer is not None and answer != ReservationStatus.ACCEPTED:
        try:
            return ReservationStatus(answer)
        except ValueError:  # not an answer OCPP has: the charger did not reserve
            return ReservationStatus.REJECTED
    if expiry is not None and expiry <= now_ms:
        return ReservationStatus.EXPIRED
    return ReservationStatus.ACCEPTED if answer is not None else ReservationStatus.REQUESTED


def reservation_view(record: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """The record with its derived ``status``; ``answer`` / ``end`` stay as the facts behind it, and
    what the winning end said (``endDetail``: the transaction that used it...) is shown flat."""
    view = {key: value for key, value in record.items() if key != "endDetail"}
    detail = record.get("endDetail")
    if isinstance(detail, Mapping):
        view.update(detail)
    view["status"] = reservation_status(record, now_ms).value
    return view


def end_reservation(
    store: StateStore, charge_point_id: str, reservation_id: Any, end: ReservationStatus, at_ms: int, **facts: Any
) -> bool:
    """Record how the reservation ended, unless it ended earlier; nothing for an unknown id.

    What the end says (``facts``) is one attribute written with it, so an earlier end that wins
    later replaces it whole: nothing of a losing end lingers.
    """
    if not isinstance(reservation_id, int) or isinstance(reservation_id, bool):
        return False
    return store.update_reservation(
        charge_point_id,
        reservation_id,
        ItemUpdate(
            set={"end": end.value, "endDetail": facts},
            newer=Newer("endedAt", at_ms, earliest_wins=True),
            must_exist=True,
        ),
    )


def used_by_transaction(ctx: CallContext, reservation_id: Any, transaction_id: Any) -> None:
    """A transaction started with the reservation (1.6 StartTransaction, 2.x TransactionEvent)."""
    if reservation_id is not None:
        end_reservation(
            ctx.store,
            ctx.charge_point_id,
            reservation_id,
            ReservationStatus.USED,
            ctx.received_at_ms,
            transactionId=str(transaction_id),
        )


# --- what the charger sends ------------------------------------------------------------------

#: 2.x ReservationUpdateStatusEnumType -> how the reservation ended. 2.1 adds ``NoTransaction``:
#: the reservation was taken (its id token presented) but no transaction followed; it is over, so
#: ``Used`` (``endReportedAs`` keeps what the station said).
_UPDATE_ENDS = {
    "Expired": ReservationStatus.EXPIRED,
    "Removed": ReservationStatus.CANCELLED,
    "NoTransaction": ReservationStatus.USED,
}


def reservation_status_update(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """H05: the station reports that a reservation expired or was removed; kept as reported too."""
    record_event(ctx, "ReservationStatusUpdate", payload)
    end = _UPDATE_ENDS.get(payload.get("reservationUpdateStatus", ""))
    if end is not None:
        end_reservation(
            ctx.store,
            ctx.charge_point_id,
            payload.get("reservationId"),
            end,
            ctx.received_at_ms,
            endReportedAs=payload["reservationUpdateStatus"],
        )
    return {}


ROUTES = routes(v2={"ReservationStatusUpdate": reservation_status_update})


# --- what the CSMS sends: the ReserveNow payload, and what the answers do ---------------------


def reserve_now_payload(v16: bool, reservation_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
    """``ReserveNow`` for the charger's version from the operator's fields (already checked)."""
    if v16:
        payload: dict[str, Any] = {
            "connectorId": fields["connectorId"],
            "expiryDate": fields["expiryDate"],
            "idTag": fields["idTag"],
            "reservationId": reservation_id,
        }
        if fields.get("parentIdTag"):
            payload["parentIdTag"] = fields["parentIdTag"]
        return payload
    token_type = fields.get("idTokenType") or "Central"
    payload = {
        "id": reservation_id,
        "expiryDateTime": fields["expiryDate"],
        "idToken": {"idToken": fields["idTag"], "type": token_type},
    }
    if fields.get("evseId") is not None:
        payload["evseId"] = fields["evseId"]
    if fields.get("connectorType"):
        payload["connectorType"] = fields["connectorType"]
    if fields.get("parentIdTag"):
        payload["groupIdToken"] = {"idToken": fields["parentIdTag"], "type": token_type}
    return payload


def _reserved_fields(request: Mapping[str, Any]) -> dict[str, Any]:
    """What a ReserveNow asks the charger to hold, in the record's names (1.6 or 2.x request)."""
    token, group = request.get("idToken"), request.get("groupIdToken")
    fields = {
        "idTag": request.get("idTag", token.get("idToken") if isinstance(token, Mapping) else None),
        "expiryDate": request.get("expiryDate", request.get("expiryDateTime")),
        "parentIdTag": request.get("parentIdTag", group.get("idToken") if isinstance(group, Mapping) else None),
    }
    for name in ("connectorId", "evseId", "connectorType"):
        fields[name] = request.get(name)
    return {name: value for name, value in fields.items() if value is not None}


def reserve_now_result(store: StateStore, now: int, cp: str, request: Mapping[str, Any], response: Any) -> None:
    """The answer to a ReserveNow, on a reservation the CSMS allocated (``POST .../reservations``).

    A raw ``ReserveNow`` sent through ``POST .../calls`` chose its own id: with an id nobody
    allocated it makes no record (one made then could collide with the id the counter hands out
    next); with a tracked reservation's id, an accepted one replaced that reservation on the
    charger (1.6 §5.13, H01), so the record takes what it asked for.
    """
    reservation_id = request.get("reservationId", request.get("id"))
    status = response.get("status")
    if isinstance(reservation_id, int) and isinstance(status, str):
        changes: dict[str, Any] = {"answer": status, "answeredAt": now}
        if status == ReservationStatus.ACCEPTED:
            changes.update(_reserved_fields(request))
        store.update_reservation(cp, reservation_id, ItemUpdate(set=changes, must_exist=True))


def cancel_reservation_result(store: StateStore, now: int, cp: str, request: Mapping[str, Any], response: Any) -> None:
    status = response.get("status")
    reservation_id = request.get("reservationId")
    if status == "Accepted":
        end_reservation(store, cp, reservation_id, ReservationStatus.CANCELLED, now)
    elif isinstance(reservation_id, int) and isinstance(status, str):
        store.update_reservation(
            cp, reservation_id, ItemUpdate(set={"cancelAnswer": status, "cancelAnsweredAt": now}, must_exist=True)
        )
