"""How the station answers the CSMS: one handler per CSMS-initiated action that has an effect.

A handler takes the station (as a :class:`~simulator.ports.StationPort`) and the (already
schema-validated) request, decides the answer from the station's state, and may return a
follow-up to run once the answer is out: OCPP wants the CALLRESULT first, then what it causes
(1.6 §5.11 RemoteStartTransaction, 2.0.1 F01: the response, then TransactionEvent Started).
This module holds the handlers of transactions, resets, reservations, charging profiles and
availability, and the route tables; configuration, reports and TriggerMessage are in
:mod:`simulator.device_handlers`, CertificateSigned in :mod:`simulator.security`. Actions
without a handler get the default answer from :mod:`simulator.responses`.
"""

from __future__ import annotations

from typing import Any

from ocpp_core.errors import NotImplementedAction
from ocpp_core.timefmt import parse_ms
from ocpp_core.versions import OcppVersion

from . import messages
from .charging_profiles import CSMS_SOURCE, Profile, ProfileRefused
from .connectors import Connector
from .device_handlers import (
    change_configuration,
    customer_information,
    get_base_report,
    get_configuration,
    get_local_list_version_v2,
    get_local_list_version_v16,
    get_report,
    get_variables,
    send_local_list_v2,
    send_local_list_v16,
    set_variables,
    trigger_message_v2,
    trigger_message_v16,
)
from .files import FILE_HANDLERS
from .ports import Handler, Payload, Reply, StationPort
from .ports import status_reply as _status
from .responses import default_response
from .security import certificate_signed

# ---------------------------------------------------------------------- reset


def reset_v16(st: StationPort, p: Payload) -> Reply:
    # 1.6 §5.14: both kinds reboot; a soft one first stops transactions gracefully.
    reason = "HardReset" if p["type"] == "Hard" else "SoftReset"
    return _status("Accepted", lambda: st.reboot(stop_reason=reason))


def reset_v2(st: StationPort, p: Payload) -> Reply:
    evse_id = p.get("evseId")
    if evse_id:
        # B11.FR.08/B12: resetting one EVSE ends its transaction; the station stays up.
        conn = st.connectors.get(evse_id)
        if conn is None:
            return _status("Rejected")
        if conn.transaction is None:
            return _status("Accepted")
        return _status("Accepted", lambda: _stop_and_notify(st, conn, "ImmediateReset"))
    if p["type"] == "OnIdle" and any(c.busy for c in st.connectors.values()):
        st.reset_when_idle = True  # B12.FR.02: reset once the transactions are over
        return _status("Scheduled")
    # Immediate (and 2.1 ImmediateAndResume, simulated as Immediate).
    return _status("Accepted", lambda: st.reboot(stop_reason="ImmediateReset"))


async def _stop_and_notify(st: StationPort, conn: Connector, reason: str) -> None:
    if conn.transaction is not None:
        await st.stop_transaction(conn.id, reason=reason)
    await st.status(conn.id, st.current_status(conn))


# ---------------------------------------------------------------------- remote start / stop


def _start_profile(st: StationPort, connector_id: int, p: Payload) -> tuple[bool, Profile | None]:
    """The TxProfile a remote start carries (1.6 §5.11, 2.0.1 F01 / K05): (usable, profile)."""
    raw = p.get("chargingProfile")
    if raw is None:
        return True, None
    try:
        return True, st.profiles.check(connector_id, raw, for_remote_start=True)
    except ProfileRefused:
        return False, None


def remote_start_v16(st: StationPort, p: Payload) -> Reply:
    wanted = p.get("connectorId")
    if wanted is not None and wanted <= 0:
        return _status("Rejected")  # 1.6 §6.33: connectorId SHALL be > 0
    id_tag = p["idTag"]
    conn = st.free_connector(wanted, id_tag)  # a connector reserved for another tag is not free
    if conn is None:
        return _status("Rejected")
    usable, profile = _start_profile(st, conn.id, p)
    if not usable:
        return _status("Rejected")  # not a TxProfile, or one the station cannot honour
    conn.starting = True  # hold it now: a second remote start must not pick it
    return _status("Accepted", lambda: st.remote_start(conn.id, id_tag, charging_profile=profile))


def request_start_v2(st: StationPort, p: Payload) -> Reply:
    token = p["idToken"]
    conn = st.free_connector(p.get("evseId"), token["idToken"])
    if conn is None:
        return _status("Rejected")
    usable, profile = _start_profile(st, conn.id, p)
    if not usable:
        return _status("Rejected")
    conn.starting = True
    return _status(
        "Accepted",
        lambda: st.remote_start(
            conn.id,
            token["idToken"],
            remote_start_id=p["remoteStartId"],
            token_type=str(token["type"]),
            charging_profile=profile,
        ),
    )


def _remote_stop(st: StationPort, transaction_id: int | str) -> Reply:
    conn = st.connector_with_transaction(transaction_id)
    if conn is None or conn.transaction is None or conn.transaction.stopping:
        return _status("Rejected")
    conn.transaction.stopping = True
    return _status("Accepted", lambda: st.remote_stop(conn.id))


def remote_stop_v16(st: StationPort, p: Payload) -> Reply:
    return _remote_stop(st, p["transactionId"])


def request_stop_v2(st: StationPort, p: Payload) -> Reply:
    return _remote_stop(st, p["transactionId"])


def get_transaction_status(st: StationPort, p: Payload) -> Reply:
    response: Payload = {"messagesInQueue": False}  # nothing is ever queued offline here
    if "transactionId" in p:
        response["ongoingIndicator"] = st.connector_with_transaction(p["transactionId"]) is not None
    return Reply(response)


# ---------------------------------------------------------------------- reservations


def _reserve(st: StationPort, reservation_id: int, connector_id: int, id_tag: str, expiry: str) -> Reply:
    expiry_ms = parse_ms(expiry)
    if expiry_ms is None:
        return _status("Rejected")  # a date-time the schema let through but we cannot read
    status = st.reserve(reservation_id, connector_id, id_tag, expiry_ms)
    # Accepted: the connector goes Reserved (1.6 §4.9, 2.0.1 H01), reported after the answer.
    return _status(status, st.sync_reserved_statuses if status == "Accepted" else None)


def reserve_now_v16(st: StationPort, p: Payload) -> Reply:
    # parentIdTag is not kept: the station learns no parent of the tags it is presented.
    return _reserve(st, p["reservationId"], p["connectorId"], p["idTag"], p["expiryDate"])


def reserve_now_v2(st: StationPort, p: Payload) -> Reply:
    # No evseId (or 0): any EVSE. connectorType is not checked: every simulated connector fits.
    return _reserve(st, p["id"], p.get("evseId") or 0, p["idToken"]["idToken"], p["expiryDateTime"])


def cancel_reservation(st: StationPort, p: Payload) -> Reply:
    if st.cancel_reservation(p["reservationId"]):
        return _status("Accepted", st.sync_reserved_statuses)  # the connector back to Available
    return _status("Rejected")  # 1.6 §5.1, 2.0.1 H02: no such reservation


# ---------------------------------------------------------------------- charging profiles


def _set_profile(st: StationPort, connector_id: int, raw: Payload) -> Reply:
    status = st.profiles.set(connector_id, raw)
    # Accepted: the limit applies at once; a change of charging state is reported after the answer.
    return _status(status, st.apply_charging_limits if status == "Accepted" else None)


def set_charging_profile_v16(st: StationPort, p: Payload) -> Reply:
    return _set_profile(st, p["connectorId"], p["csChargingProfiles"])


def set_charging_profile_v2(st: StationPort, p: Payload) -> Reply:
    return _set_profile(st, p["evseId"], p["chargingProfile"])


def _clear_profiles(st: StationPort, **criteria: Any) -> Reply:
    if st.profiles.clear(**criteria):
        return _status("Accepted", st.apply_charging_limits)
    return _status("Unknown")


def clear_charging_profile_v16(st: StationPort, p: Payload) -> Reply:
    # 1.6 §5.5: by id, else every profile matching the fields given (none: all of them).
    return _clear_profiles(
        st,
        profile_id=p.get("id"),
        connector_id=p.get("connectorId"),
        purpose=p.get("chargingProfilePurpose"),
        stack_level=p.get("stackLevel"),
    )


def clear_charging_profile_v2(st: StationPort, p: Payload) -> Reply:
    criteria = p.get("chargingProfileCriteria") or {}
    return _clear_profiles(
        st,
        profile_id=p.get("chargingProfileId"),
        connector_id=criteria.get("evseId"),
        purpose=criteria.get("chargingProfilePurpose"),
        stack_level=criteria.get("stackLevel"),
    )


def _composite(st: StationPort, connector_id: int, duration: int, unit: str | None) -> tuple[str, Payload | None]:
    """(status, schedule) of a GetCompositeSchedule (1.6 §5.7, 2.0.1 K08)."""
    allowed = st.profiles.allowed_units()
    if unit is None:
        unit = "A" if "A" in allowed else "W"
    if (connector_id != 0 and connector_id not in st.connectors) or duration < 0 or unit not in allowed:
        return "Rejected", None
    start = messages.now_ms()
    periods = st.profiles.composite(connector_id, duration, unit, start)
    return "Accepted", {"start": messages.timestamp(start), "unit": unit, "periods": periods}


def get_composite_schedule_v16(st: StationPort, p: Payload) -> Reply:
    connector_id, duration = p["connectorId"], p["duration"]
    status, schedule = _composite(st, connector_id, duration, p.get("chargingRateUnit"))
    if schedule is None:
        return _status(status)
    return Reply(
        {
            "status": status,
            "connectorId": connector_id,
            "scheduleStart": schedule["start"],
            "chargingSchedule": {
                "duration": duration,
                "startSchedule": schedule["start"],
                "chargingRateUnit": schedule["unit"],
                "chargingSchedulePeriod": schedule["periods"],
            },
        }
    )


def get_composite_schedule_v2(st: StationPort, p: Payload) -> Reply:
    evse_id, duration = p["evseId"], p["duration"]
    status, schedule = _composite(st, evse_id, duration, p.get("chargingRateUnit"))
    if schedule is None:
        return _status(status)
    return Reply(
        {
            "status": status,
            "schedule": {
                "evseId": evse_id,
                "duration": duration,
                "scheduleStart": schedule["start"],
                "chargingRateUnit": schedule["unit"],
                "chargingSchedulePeriod": schedule["periods"],
            },
        }
    )


def get_charging_profiles_v2(st: StationPort, p: Payload) -> Reply:
    """2.0.1 K09: Accepted, then ReportChargingProfiles per EVSE (``tbc`` on all but the last)."""
    found = st.profiles.select(p.get("evseId"), p["chargingProfile"])
    if not found:
        return _status("NoProfiles")
    request_id = p["requestId"]

    async def report() -> None:
        evses = sorted(found)
        for index, evse_id in enumerate(evses):
            await st.call(
                "ReportChargingProfiles",
                {
                    "requestId": request_id,
                    "chargingLimitSource": CSMS_SOURCE,
                    "evseId": evse_id,
                    "chargingProfile": found[evse_id],
                    "tbc": index < len(evses) - 1,
                },
            )

    return _status("Accepted", report)


# ---------------------------------------------------------------------- availability, unlock


def _change_availability(st: StationPort, targets: list[Connector], operative: bool) -> Reply:
    scheduled = False
    changed: list[int] = []
    for conn in targets:
        if not operative and conn.operative and conn.busy:
            conn.pending_operative = False  # 1.6 §5.2 / G03.FR.05: after the transaction
            scheduled = True
        elif conn.operative != operative:
            conn.operative = operative
            conn.pending_operative = None
            changed.append(conn.id)
        else:
            conn.pending_operative = None

    async def notify() -> None:
        for connector_id in changed:
            await st.status(connector_id, st.current_status(st.connectors[connector_id]))

    return _status("Scheduled" if scheduled else "Accepted", notify if changed else None)


def change_availability_v16(st: StationPort, p: Payload) -> Reply:
    connector_id = p["connectorId"]
    if connector_id == 0:
        targets = list(st.connectors.values())
    elif connector_id in st.connectors:
        targets = [st.connectors[connector_id]]
    else:
        return _status("Rejected")
    return _change_availability(st, targets, p["type"] == "Operative")


def change_availability_v2(st: StationPort, p: Payload) -> Reply:
    evse = p.get("evse")
    if evse is None or evse["id"] == 0:
        targets = list(st.connectors.values())
    elif evse["id"] in st.connectors and evse.get("connectorId", 1) == 1:
        targets = [st.connectors[evse["id"]]]
    else:
        return _status("Rejected")
    return _change_availability(st, targets, p["operationalStatus"] == "Operative")


def unlock_connector_v16(st: StationPort, p: Payload) -> Reply:
    conn = st.connectors.get(p["connectorId"])
    if conn is None:
        return _status("UnlockFailed")
    if conn.transaction is not None:
        # 1.6 §5.17: an ongoing transaction is stopped first (reason UnlockCommand).
        return _status("Unlocked", lambda: _stop_and_notify(st, conn, "UnlockCommand"))
    return _status("Unlocked")


def unlock_connector_v2(st: StationPort, p: Payload) -> Reply:
    conn = st.connectors.get(p["evseId"])
    if conn is None or p["connectorId"] != 1:
        return _status("UnknownConnector")
    if conn.transaction is not None:
        return _status("OngoingAuthorizedTransaction")  # F05.FR.02
    return _status("Unlocked")


# ---------------------------------------------------------------------- tables

_V16: dict[str, Handler] = {
    "CancelReservation": cancel_reservation,
    "CertificateSigned": certificate_signed,
    "ChangeAvailability": change_availability_v16,
    "ChangeConfiguration": change_configuration,
    "ClearChargingProfile": clear_charging_profile_v16,
    "ExtendedTriggerMessage": trigger_message_v16,
    "GetCompositeSchedule": get_composite_schedule_v16,
    "GetConfiguration": get_configuration,
    "GetLocalListVersion": get_local_list_version_v16,
    "RemoteStartTransaction": remote_start_v16,
    "RemoteStopTransaction": remote_stop_v16,
    "ReserveNow": reserve_now_v16,
    "Reset": reset_v16,
    "SendLocalList": send_local_list_v16,
    "SetChargingProfile": set_charging_profile_v16,
    "TriggerMessage": trigger_message_v16,
    "UnlockConnector": unlock_connector_v16,
}

_V2: dict[str, Handler] = {
    "CancelReservation": cancel_reservation,
    "CertificateSigned": certificate_signed,
    "ChangeAvailability": change_availability_v2,
    "ClearChargingProfile": clear_charging_profile_v2,
    "CustomerInformation": customer_information,
    "GetBaseReport": get_base_report,
    "GetChargingProfiles": get_charging_profiles_v2,
    "GetCompositeSchedule": get_composite_schedule_v2,
    "GetLocalListVersion": get_local_list_version_v2,
    "GetReport": get_report,
    "GetTransactionStatus": get_transaction_status,
    "GetVariables": get_variables,
    "RequestStartTransaction": request_start_v2,
    "RequestStopTransaction": request_stop_v2,
    "ReserveNow": reserve_now_v2,
    "Reset": reset_v2,
    "SendLocalList": send_local_list_v2,
    "SetChargingProfile": set_charging_profile_v2,
    "SetVariables": set_variables,
    "TriggerMessage": trigger_message_v2,
    "UnlockConnector": unlock_connector_v2,
}

# GetDiagnostics, GetLog, (Signed)UpdateFirmware: uploads and downloads, :mod:`simulator.files`
HANDLERS: dict[OcppVersion, dict[str, Handler]] = {
    version: {**table, **FILE_HANDLERS[version]}
    for version, table in ((OcppVersion.V16, _V16), (OcppVersion.V201, _V2), (OcppVersion.V21, _V2))
}


def handler_for(version: OcppVersion, action: str) -> Handler:
    """The stateful handler of ``action``, else one that gives the default answer."""
    handler = HANDLERS[version].get(action)
    if handler is not None:
        return handler

    def default(st: StationPort, p: Payload) -> Reply:
        response = default_response(version, action, p)
        if response is None:
            raise NotImplementedAction(f"No answer for {action} in {version.value}")
        return Reply(response)

    return default
