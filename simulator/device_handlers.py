"""Handlers of the device-management calls: configuration and variables, reports, customer
information, the local list version, and TriggerMessage.

The contract is that of :mod:`simulator.handlers` (which routes to these): the station as a
:class:`~simulator.ports.StationPort`, the validated request, a :class:`~simulator.ports.Reply`.
"""

from __future__ import annotations

from . import messages
from .connectors import Connector
from .files import status_follow_up
from .ports import FollowUp, Payload, Reply, StationPort
from .ports import status_reply as _status
from .security import sign_certificate_follow_up

#: NotifyReport items per message (the ItemsPerMessage.GetReport the device model reports).
REPORT_CHUNK = 20


# ---------------------------------------------------------------------- configuration


def get_configuration(st: StationPort, p: Payload) -> Reply:
    return Reply(st.model.get_configuration(p.get("key")))


def change_configuration(st: StationPort, p: Payload) -> Reply:
    status = st.model.change_configuration(p["key"], p["value"])
    if status == "Accepted":
        st.settings_changed()
    return _status(status)


def get_variables(st: StationPort, p: Payload) -> Reply:
    return Reply({"getVariableResult": [st.model.get_variable(item) for item in p["getVariableData"]]})


def set_variables(st: StationPort, p: Payload) -> Reply:
    results = [st.model.set_variable(item) for item in p["setVariableData"]]
    if any(r["attributeStatus"] == "Accepted" for r in results):
        st.settings_changed()
    return Reply({"setVariableResult": results})


def get_base_report(st: StationPort, p: Payload) -> Reply:
    items = st.model.report(base=p["reportBase"])
    if not items:
        return _status("EmptyResultSet")
    request_id = p["requestId"]
    return _status("Accepted", lambda: send_report(st, request_id, items))


def get_report(st: StationPort, p: Payload) -> Reply:
    if p.get("componentCriteria"):
        # Criteria select components by their Active/Available/Enabled/Problem variables,
        # which this flat model does not have: nothing matches.
        return _status("EmptyResultSet")
    items = st.model.report(selection=p.get("componentVariable"))
    if not items:
        return _status("EmptyResultSet")
    request_id = p["requestId"]
    return _status("Accepted", lambda: send_report(st, request_id, items))


async def send_report(st: StationPort, request_id: int, items: list[Payload]) -> None:
    """NotifyReport frames for a report request (2.0.1 B07/B08), ``tbc`` on all but the last."""
    generated_at = messages.timestamp()
    chunks = [items[i : i + REPORT_CHUNK] for i in range(0, len(items), REPORT_CHUNK)]
    for seq_no, chunk in enumerate(chunks):
        await st.call(
            "NotifyReport",
            {
                "requestId": request_id,
                "generatedAt": generated_at,
                "seqNo": seq_no,
                "tbc": seq_no < len(chunks) - 1,
                "reportData": chunk,
            },
        )


def customer_information(st: StationPort, p: Payload) -> Reply:
    # N09/N10: the answer, then at least one NotifyCustomerInformation; nothing is stored here.
    request_id = p["requestId"]

    async def notify() -> None:
        await st.call(
            "NotifyCustomerInformation",
            {
                "data": "No customer information stored",
                "seqNo": 0,
                "generatedAt": messages.timestamp(),
                "requestId": request_id,
                "tbc": False,
            },
        )

    return _status("Accepted", notify)


def send_local_list_v16(st: StationPort, p: Payload) -> Reply:
    st.local_list_version = p["listVersion"]
    return _status("Accepted")


def get_local_list_version_v16(st: StationPort, p: Payload) -> Reply:
    return Reply({"listVersion": st.local_list_version})


def send_local_list_v2(st: StationPort, p: Payload) -> Reply:
    st.local_list_version = p["versionNumber"]
    return _status("Accepted")


def get_local_list_version_v2(st: StationPort, p: Payload) -> Reply:
    return Reply({"versionNumber": st.local_list_version})


# ---------------------------------------------------------------------- trigger message


def _trigger(st: StationPort, message: str, connector_id: int | None) -> Reply:
    """TriggerMessage (1.6 §5.17, 1.6 security ExtendedTriggerMessage, 2.0.1 F06)."""
    if connector_id is not None and connector_id != 0 and connector_id not in st.connectors:
        return _status("Rejected")
    selected = [st.connectors[connector_id]] if connector_id else list(st.connectors.values())
    follow: FollowUp
    if message == "BootNotification":
        follow = _boot_triggered(st)
    elif message == "Heartbeat":
        follow = _heartbeat(st)
    elif message == "StatusNotification":
        follow = _statuses(st, selected)
    elif message == "MeterValues":
        follow = _meter_values(st, selected, in_transaction=False)
    elif message == "TransactionEvent":
        busy = [c for c in selected if c.transaction is not None and c.transaction.transaction_id is not None]
        if not busy:
            return _status("Rejected")  # F06.FR.06: no transaction to report on
        follow = _meter_values(st, busy, in_transaction=True)
    elif message in ("FirmwareStatusNotification", "DiagnosticsStatusNotification", "LogStatusNotification"):
        follow = status_follow_up(st, message)  # what is uploading / installing, else Idle
    elif message == "PublishFirmwareStatusNotification":
        follow = _idle_notification(st, message)
    elif message in ("SignChargingStationCertificate", "SignChargePointCertificate"):
        # 2.0.1 A02 (TriggerMessage), 1.6 security extension (ExtendedTriggerMessage's name for it).
        follow = sign_certificate_follow_up(st)
    else:
        return _status("NotImplemented")  # V2G / combined certificates, custom triggers
    return _status("Accepted", follow)


def _boot_triggered(st: StationPort) -> FollowUp:
    async def run() -> None:
        await st.boot(reason="Triggered")

    return run


def _heartbeat(st: StationPort) -> FollowUp:
    async def run() -> None:
        await st.heartbeat()

    return run


def _statuses(st: StationPort, selected: list[Connector]) -> FollowUp:
    async def run() -> None:
        for conn in selected:
            await st.status(conn.id, conn.status if conn.operative else "Unavailable")

    return run


def _meter_values(st: StationPort, selected: list[Connector], *, in_transaction: bool) -> FollowUp:
    async def run() -> None:
        for conn in selected:
            await st.meter_values(conn.id, context="Trigger", in_transaction=in_transaction)

    return run


def _idle_notification(st: StationPort, action: str) -> FollowUp:
    # Nothing uploading or installing: every such notification reports Idle.
    async def run() -> None:
        await st.call(action, {"status": "Idle"})

    return run


def trigger_message_v16(st: StationPort, p: Payload) -> Reply:
    return _trigger(st, p["requestedMessage"], p.get("connectorId"))


def trigger_message_v2(st: StationPort, p: Payload) -> Reply:
    evse = p.get("evse")
    if evse is not None and evse.get("connectorId", 1) != 1:
        return _status("Rejected")
    return _trigger(st, p["requestedMessage"], evse["id"] if evse is not None else None)
