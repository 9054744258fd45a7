"""Transactions (OCPP 1.6 Core; 2.0.1 / 2.1 block E) and meter values (1.6 Core; block J).

Written for delivery in any order, twice, or late (DESIGN §7), with no read before a write:

* **1.6 StartTransaction** creates its transaction once: the start's content (connector, id tag,
  meter start, timestamp) is digested into a ``TXSTART#`` key written atomically with the
  transaction, so a redelivery, or the same start sent again on a new connection, gets the same
  transaction id back however late it comes; a *different* start that reuses a unique id after a
  reboot is a new transaction. The id comes from an atomic counter (a lost race only skips a number).
* **1.6 StopTransaction** and **MeterValues** set attributes (``meterStop``; ``meterLast`` only if its
  sample is newer), so repeating them changes nothing; the energy is derived when read
  (``transaction_view``), never stored from a read.
* **2.x TransactionEvent** is ordered by ``seqNo``: one write, conditional on ``lastSeqNo`` being
  older, sets what the newest event says; an older event arriving later is applied field by field,
  each only where the field's own ``...SeqNo`` is older (rare: only out-of-order deliveries pay the
  extra writes). ``Ended`` sets ``Completed``; nothing else ever sets ``status`` over an existing
  one, so a late ``Updated`` never reopens an ended transaction. Offline events are a set of seqNos.
* Meter values samples are kept under the frame's digest: a redelivery rewrites the same record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..context import CallContext
from ..keys import content_digest
from ..ports import ItemUpdate, Newer, StateStore, TransactionStatus
from ..smart_charging import balancer
from .authorization import id_tag_info, id_token_info
from .common import ORDER_SUFFIX, energy_register_wh, energy_used, latest_sample_ms, routes, whole
from .reservations import used_by_transaction

# --- OCPP 1.6 ------------------------------------------------------------------------------


def start_transaction(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    info = id_tag_info(ctx, payload["idTag"])
    # Even a refused id tag gets a transaction id: the charger needs one to stop it (1.6 §5.19).
    start_key = content_digest(
        payload["connectorId"],
        payload["idTag"],
        payload["meterStart"],
        payload["timestamp"],
        payload.get("reservationId"),
    )
    candidate = str(ctx.store.next_transaction_id())
    record: dict[str, Any] = {
        "chargePointId": ctx.charge_point_id,
        "transactionId": candidate,
        "protocol": ctx.version.value,
        "connectorId": payload["connectorId"],
        "idTag": payload["idTag"],
        "authorizationStatus": info["status"],
        "meterStart": payload["meterStart"],
        "startTimestamp": payload["timestamp"],
        "startedAt": ctx.received_at_ms,
        "status": TransactionStatus.ACTIVE.value,
    }
    if "reservationId" in payload:
        record["reservationId"] = payload["reservationId"]
    transaction_id = int(ctx.store.start_transaction(ctx.charge_point_id, start_key, candidate, record))
    ctx.notes["transactionId"] = transaction_id
    used_by_transaction(ctx, payload.get("reservationId"), transaction_id)
    balancer.transaction_started(ctx, str(transaction_id), {"connectorId": payload["connectorId"]})
    return {"transactionId": transaction_id, "idTagInfo": info}


def meter_values(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """1.6 MeterValues and 2.x MeterValues (the latter outside any transaction)."""
    if ctx.version.is_2x:
        keep_meter_values(ctx, None, payload["meterValue"], evseId=payload["evseId"])
        return {}
    transaction_id = payload.get("transactionId")
    tx_key = str(transaction_id) if transaction_id is not None else None
    keep_meter_values(ctx, tx_key, payload["meterValue"], connectorId=payload["connectorId"])
    reading = energy_register_wh(payload["meterValue"], v16=True)
    if tx_key is not None and reading is not None:
        sampled_at = latest_sample_ms(ctx, payload["meterValue"])
        ctx.store.update_transaction(
            ctx.charge_point_id,
            tx_key,
            ItemUpdate(
                set={"meterLast": whole(reading), "meterLastAt": sampled_at, "meterLastReceivedAt": ctx.received_at_ms},
                # ordered by the sample's time, then by the frame's place: equal times never tie
                newer=Newer("meterLastOrder", f"{sampled_at:015d}#{ctx.order_key}"),
                must_exist=True,
            ),
        )
    if tx_key is not None:
        balancer.meter_values(ctx, tx_key, payload["meterValue"])
    return {}


def stop_transaction(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    tx_key = str(payload["transactionId"])
    changes: dict[str, Any] = {
        "meterStop": payload["meterStop"],
        "stopTimestamp": payload["timestamp"],
        "stoppedAt": ctx.received_at_ms,
        "status": TransactionStatus.COMPLETED.value,
    }
    for source, target in (("reason", "stopReason"), ("idTag", "stopIdTag")):
        if source in payload:
            changes[target] = payload[source]
    if payload.get("transactionData"):
        keep_meter_values(ctx, tx_key, payload["transactionData"])
    if not ctx.store.update_transaction(ctx.charge_point_id, tx_key, ItemUpdate(set=changes, must_exist=True)):
        # Accepted all the same: a charger that gets an error retries forever (1.6 §4.10),
        # so the stop is kept, marked as belonging to no transaction we know.
        changes.update(
            chargePointId=ctx.charge_point_id, transactionId=tx_key, protocol=ctx.version.value, unknownTransaction=True
        )
        ctx.store.update_transaction(ctx.charge_point_id, tx_key, ItemUpdate(set=changes))
    balancer.transaction_ended(ctx, tx_key)
    response: dict[str, Any] = {}
    if "idTag" in payload:
        response["idTagInfo"] = id_tag_info(ctx, payload["idTag"])
    return response


def keep_meter_values(ctx: CallContext, transaction_id: str | None, meter_value: Any, **extra: Any) -> None:
    ctx.store.put_meter_values(
        ctx.charge_point_id,
        ctx.frame_digest,
        {
            "chargePointId": ctx.charge_point_id,
            "transactionId": transaction_id,
            **extra,
            "meterValue": meter_value,
            "uniqueId": ctx.unique_id,
            "receivedAt": ctx.received_at_ms,
        },
    )


# --- OCPP 2.0.1 / 2.1 ----------------------------------------------------------------------

#: fields a TransactionEvent carries now and then, each kept with its own ``<name>SeqNo``
_ORDERED_OPTIONAL = ("chargingState", "remoteStartId", "timeSpentCharging", "evseId", "connectorId", "meterLast")
_ORDERED_TOKEN = ("idToken", "idTokenType", "authorizationStatus")


def transaction_event(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """TransactionEvent Started / Updated / Ended (E01-E15), keyed by the station's transaction id."""
    info = payload["transactionInfo"]
    tx_key = info["transactionId"]
    event = payload["eventType"]
    seq = payload["seqNo"]
    cp = ctx.charge_point_id

    latest: dict[str, Any] = {
        "lastEventType": event,
        "lastTriggerReason": payload["triggerReason"],
        "lastEventAt": payload["timestamp"],
        "lastEventReceivedAt": ctx.received_at_ms,
    }
    used_by_transaction(ctx, payload.get("reservationId"), tx_key)
    optional: dict[str, Any] = {source: info[source] for source in _ORDERED_OPTIONAL[:3] if source in info}
    evse = payload.get("evse")
    if isinstance(evse, Mapping):
        optional["evseId"] = evse.get("id")
        if "connectorId" in evse:
            optional["connectorId"] = evse["connectorId"]

    response: dict[str, Any] = {}
    token: dict[str, Any] = {}
    id_token = payload.get("idToken")
    if isinstance(id_token, Mapping):
        token_info = id_token_info(ctx, id_token)
        token = {
            "idToken": id_token.get("idToken"),
            "idTokenType": id_token.get("type"),
            "authorizationStatus": token_info["status"],
        }
        # idTokenInfo "SHALL be sent when the request contained an idToken" (E01, E03).
        response["idTokenInfo"] = token_info

    meter = payload.get("meterValue")
    reading = whole(energy_register_wh(meter, v16=False)) if meter else None
    if meter:
        keep_meter_values(ctx, tx_key, meter, evseId=optional.get("evseId"))
    if reading is not None:
        optional["meterLast"] = reading

    always: dict[str, Any] = {}
    if event == "Started":
        always.update(startTimestamp=payload["timestamp"], startedAt=ctx.received_at_ms)
        if reading is not None:
            # Started has the lowest seqNo of its transaction: its reading is the start.
            always.update(meterStart=reading, meterStartSeqNo=seq)
    if event == "Ended":
        always.update(
            status=TransactionStatus.COMPLETED.value,
            stopTimestamp=payload["timestamp"],
            stoppedAt=ctx.received_at_ms,
            stopReason=info.get("stoppedReason", "Local"),  # "Local" is the spec's default
        )
        if reading is not None:
            always["meterStop"] = reading
    identity = {
        "chargePointId": cp,
        "transactionId": tx_key,
        "protocol": ctx.version.value,
        "status": TransactionStatus.ACTIVE.value,
    }
    sets = {"offlineSeqNos": frozenset({seq})} if payload.get("offline") else {}

    newest = {**latest, **optional, **token}
    seq_marks = {f"{name}SeqNo": seq for name in (*optional, *(["idToken"] if token else []))}
    first_reading = (
        {"meterStart": reading, "meterStartSeqNo": seq} if reading is not None and event != "Started" else {}
    )
    primary = ItemUpdate(
        set={**newest, **seq_marks, **always},
        set_if_absent={**identity, **first_reading},
        add_to_set=sets,
        newer=Newer("lastSeqNo", seq),
    )
    if ctx.store.update_transaction(cp, tx_key, primary):
        _balance(ctx, payload, tx_key, optional.get("evseId"))
        return response

    # An older event than one already applied (delivered late or out of order): what it says
    # still counts where nothing newer said otherwise, field by field.
    store = ctx.store
    store.update_transaction(cp, tx_key, ItemUpdate(set=always, set_if_absent=identity, add_to_set=sets))
    for name, value in optional.items():
        store.update_transaction(cp, tx_key, ItemUpdate(set={name: value}, newer=Newer(f"{name}SeqNo", seq)))
    if token:
        store.update_transaction(cp, tx_key, ItemUpdate(set=token, newer=Newer("idTokenSeqNo", seq)))
    if first_reading:
        store.update_transaction(
            cp, tx_key, ItemUpdate(set={"meterStart": reading}, newer=Newer("meterStartSeqNo", seq, earliest_wins=True))
        )
    _balance(ctx, payload, tx_key, optional.get("evseId"))
    return response


def _balance(ctx: CallContext, payload: Mapping[str, Any], transaction_id: str, evse_id: Any) -> None:
    """The site's balancing (if the charger is in one): a start, an end, what the EV draws. In any
    order: an Ended seen first leaves a tombstone that a late Started does not revive."""
    event = payload["eventType"]
    if event == "Ended":
        balancer.transaction_ended(ctx, transaction_id)
        return
    if isinstance(evse_id, int) and (event == "Started" or isinstance(payload.get("evse"), Mapping)):
        balancer.transaction_started(ctx, transaction_id, {"evseId": evse_id})
    if payload.get("meterValue") and event == "Updated":
        balancer.meter_values(ctx, transaction_id, payload["meterValue"])


# --- the operator ----------------------------------------------------------------------------

#: who closed a transaction the charger never ended (``closedBy``)
CLOSED_BY_OPERATOR = "operator"


def close_transaction(store: StateStore, charge_point_id: str, transaction_id: str, reason: str, now_ms: int) -> bool:
    """Close a transaction left open (its charger died): ``Completed`` without an OCPP message.

    Only a transaction the charger has not stopped (no ``stoppedAt``); the energy stays derived
    from the last reading. If the charger's own stop arrives later, its values are kept too (the
    charger knows best), and ``closedBy`` still says the operator closed it first.
    """
    return store.update_transaction(
        charge_point_id,
        transaction_id,
        ItemUpdate(
            set={
                "status": TransactionStatus.COMPLETED.value,
                "closedBy": CLOSED_BY_OPERATOR,
                "closeReason": reason,
                "closedAt": now_ms,
                "stoppedAt": now_ms,
            },
            must_exist=True,
            require_absent=("stoppedAt",),
        ),
    )


#: what counts as activity of a transaction, each the time the bridge received it (the charger's
#: clock may be far off): its start, its last reading, its last event
_ACTIVITY = ("startedAt", "meterLastReceivedAt", "lastEventReceivedAt")


def last_activity_ms(record: Mapping[str, Any]) -> int | None:
    times = [t for name in _ACTIVITY if isinstance(t := record.get(name), int) and not isinstance(t, bool)]
    return max(times) if times else None


# --- views -----------------------------------------------------------------------------------


def transaction_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """A transaction as read: the energy derived from the readings, internals dropped."""
    view = {
        key: value
        for key, value in record.items()
        if not (key.endswith("SeqNo") and key != "lastSeqNo") and not key.endswith(ORDER_SUFFIX)
    }
    offline = record.get("offlineSeqNos")
    view.pop("offlineSeqNos", None)
    if offline:
        view["offlineEvents"] = len(offline)
    end = record.get("meterStop", record.get("meterLast"))
    used = energy_used(record.get("meterStart"), end)
    if used is not None:
        view["energyWh"] = whole(used)
    activity = last_activity_ms(record)
    if activity is not None:
        view["lastActivityAt"] = activity
    return view


ROUTES = routes(
    every={"MeterValues": meter_values},
    v16={"StartTransaction": start_transaction, "StopTransaction": stop_transaction},
    v2={"TransactionEvent": transaction_event},
)
