"""The charging sessions of one station: transactions, meter values and charging limits.

:class:`Charging` is owned by a :class:`~simulator.station.Station`, whose public steps
(``start_transaction``, ``meter_values``, ``stop_transaction``, ``draw``,
``apply_charging_limits``) it carries out. It builds the payloads (:mod:`simulator.messages`),
keeps the connectors' transactions, asks the reservations (:mod:`simulator.reservations`)
which one a start uses and the charging profiles (:mod:`simulator.charging_profiles`) what a
connector may draw, and sends through its station (:class:`ChargingHost`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

from ocpp_core.versions import OcppVersion

from . import messages
from .charging_profiles import DEFAULT_PHASES, VOLTS, ChargingProfiles, Draw, Profile, amps_to_watts
from .connectors import Connector, Transaction
from .device_model import DeviceModel
from .errors import SimulatorError
from .reservations import Reservations

logger = logging.getLogger(__name__)

Payload = dict[str, Any]
DEFAULT_ID_TAG = "DEMO-TAG"


class ChargingHost(Protocol):
    """What the sessions read of their station, and ask it to do."""

    connectors: dict[int, Connector]
    reset_when_idle: bool

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> OcppVersion: ...
    @property
    def max_current(self) -> float: ...
    @property
    def energy_step_wh(self) -> int: ...
    @property
    def closing(self) -> bool: ...
    @property
    def model(self) -> DeviceModel: ...
    @property
    def configured_model(self) -> DeviceModel | None: ...
    def transactions(self) -> list[Transaction]: ...
    def current_status(self, connector: Connector) -> str: ...
    def run_soon(self, what: str, then: Callable[[], Awaitable[None]]) -> None: ...
    async def call(self, action: str, payload: Payload, timeout: float | None = None) -> Payload: ...
    async def status(self, connector: int, status: str) -> Payload: ...
    async def reboot(self, *, stop_reason: str = "Reboot", boot_reason: str = "RemoteReset") -> None: ...


class Charging:
    """The transactions of ``host``'s connectors, what they draw and what they report."""

    def __init__(
        self,
        host: ChargingHost,
        reservations: Reservations,
        profiles: ChargingProfiles,
        *,
        spawn: Callable[[Coroutine[Any, Any, Any], str], asyncio.Task[Any]],
        on_event: Callable[[str, str], None],
    ):
        self.host = host
        self._reservations = reservations
        self._profiles = profiles
        self._spawn = spawn
        self._event = on_event

    def connector(self, connector_id: int) -> Connector:
        """The connector with that id; ValueError if the station has none."""
        try:
            return self.host.connectors[connector_id]
        except KeyError:
            raise ValueError(f"{self.host.id} has no connector {connector_id}") from None

    # ------------------------------------------------------------------ transactions

    async def start(
        self,
        connector: int = 1,
        id_tag: str = DEFAULT_ID_TAG,
        meter_start: int | None = None,
        *,
        remote_start_id: int | None = None,
        trigger_reason: str = "Authorized",
        token_type: str = "ISO14443",
        charging_profile: Profile | None = None,
    ) -> Transaction:
        """StartTransaction (1.6) or TransactionEvent Started (2.x); returns the transaction.

        The CSMS's verdict on the id tag is in ``Transaction.authorization``; the caller
        decides what a refusal means (the scenario stops; a remote start stops the transaction
        with reason DeAuthorized, as 1.6 §5.11 and 2.0.1 E05 describe). ``charging_profile``:
        the TxProfile of a remote start (checked already), in force from the start.
        """
        conn = self.connector(connector)
        if conn.transaction is not None:
            raise ValueError(f"{self.host.id}: connector {connector} already has a transaction")
        if self._reservations.blocks(conn, id_tag):
            raise ValueError(f"{self.host.id}: connector {connector} is reserved for another id tag")
        if meter_start is not None:
            conn.meter_wh = meter_start
        # A reservation for this id tag (on the connector, else on the whole station) ends by
        # being used; its id goes with the start (1.6 §5.13, 2.0.1 H03).
        reservation = self._reservations.claim(conn, id_tag)
        tx = Transaction(
            connector,
            id_tag,
            token_type,
            conn.meter_wh,
            remote_start_id=remote_start_id,
            reservation_id=reservation.id if reservation is not None else None,
            started_ms=messages.now_ms(),
        )
        conn.transaction = tx  # the connector is busy from now on, whatever the CSMS says
        conn.starting = False
        if charging_profile is not None:
            self._profiles.bind(charging_profile, tx)
        if self._profiles:
            tx.charging_state = self._charging_state(conn)
            self.arm_limit_timer()
        if reservation is not None or self._reservations:
            self._reservations.changed()
        ts = messages.timestamp()
        try:
            if not self.host.version.is_2x:
                payload = messages.start_transaction_v16(
                    connector, id_tag, tx.meter_start, ts, reservation_id=tx.reservation_id
                )
                response = await self.host.call("StartTransaction", payload)
                tx.transaction_id = int(response["transactionId"])
            else:
                tx.transaction_id = str(uuid.uuid4())  # 36 characters: the schema maximum
                token = messages.id_token(id_tag)
                token["type"] = token_type
                payload = messages.transaction_event(
                    event_type="Started",
                    transaction_id=tx.transaction_id,
                    seq_no=tx.next_seq_no(),
                    trigger_reason=trigger_reason,
                    evse_id=connector,
                    ts=ts,
                    energy_wh=tx.meter_start,
                    context="Transaction.Begin",
                    token=id_tag,
                    charging_state=tx.charging_state,
                    remote_start_id=remote_start_id,
                    reservation_id=tx.reservation_id,
                )
                payload["idToken"] = token
                response = await self.host.call("TransactionEvent", payload)
        except BaseException:
            conn.transaction = None
            self._profiles.forget_transaction(tx)
            raise
        tx.authorization = messages.authorization_status(self.host.version, response)
        if self.host.model.meter_interval > 0:
            self._spawn(self._meter_loop(conn, tx), f"meter values {connector}")
        return tx

    async def meter_values(
        self,
        connector: int = 1,
        energy_wh: int | None = None,
        *,
        context: str = "Sample.Periodic",
        in_transaction: bool = True,
    ) -> Payload:
        """A meter sample of the energy register.

        During a transaction: 1.6 MeterValues with the transactionId, 2.x TransactionEvent
        Updated (unless ``in_transaction`` is False: then a plain 2.x MeterValues). Outside a
        transaction: MeterValues. ``energy_wh`` sets the register; by default a periodic sample
        advances it by what the connector draws now (:meth:`draw`: ``energy_step_wh`` at full
        draw, in proportion below it, nothing while the limit is 0) and a triggered one reads it
        as it is. The sample carries the other measurands the configuration asks for
        (MeterValuesSampledData / SampledDataCtrlr.TxUpdatedMeasurands: Current.Import,
        Power.Active.Import, Voltage).
        """
        conn = self.connector(connector)
        draw = self.draw(conn)
        if energy_wh is not None:
            conn.meter_wh = energy_wh
        elif context != "Trigger" and conn.transaction is not None:
            conn.meter_wh += self._energy_step(draw)
        tx = conn.transaction
        extra = self._sampled_extras(draw)
        ts = messages.timestamp()
        if self.host.version.is_2x and tx is not None and in_transaction and isinstance(tx.transaction_id, str):
            payload = messages.transaction_event(
                event_type="Updated",
                transaction_id=tx.transaction_id,
                seq_no=tx.next_seq_no(),
                trigger_reason="Trigger" if context == "Trigger" else "MeterValuePeriodic",
                evse_id=connector,
                ts=ts,
                energy_wh=conn.meter_wh,
                context=context,
                extra=extra,
            )
            return await self.host.call("TransactionEvent", payload)
        transaction_id = tx.transaction_id if tx is not None and isinstance(tx.transaction_id, int) else None
        payload = messages.meter_values(
            self.host.version, connector, conn.meter_wh, ts, transaction_id=transaction_id, context=context, extra=extra
        )
        return await self.host.call("MeterValues", payload)

    async def stop(
        self,
        connector: int = 1,
        meter_stop: int | None = None,
        *,
        reason: str = "Local",
        trigger_reason: str | None = None,
    ) -> Payload:
        """StopTransaction (1.6) or TransactionEvent Ended (2.x) for the connector's transaction.

        ``reason`` is a 1.6 Reason or a 2.x ReasonEnumType (1.6 names are mapped for 2.x).
        The transaction is over for the station even if the CSMS does not answer.
        """
        conn = self.connector(connector)
        tx = conn.transaction
        if tx is None:
            raise ValueError(f"{self.host.id}: no transaction on connector {connector}")
        if meter_stop is not None:
            conn.meter_wh = meter_stop
        ts = messages.timestamp()
        try:
            if not self.host.version.is_2x:
                if not isinstance(tx.transaction_id, int):
                    raise ValueError(f"{self.host.id}: transaction on connector {connector} has no id yet")
                payload = messages.stop_transaction_v16(
                    tx.transaction_id, conn.meter_wh, ts, reason, tx.id_tag if reason == "Local" else None
                )
                return await self.host.call("StopTransaction", payload)
            stopped = messages.stop_reason(self.host.version, reason)
            trigger = trigger_reason or messages.trigger_for_stop(stopped)
            payload = messages.transaction_event(
                event_type="Ended",
                transaction_id=str(tx.transaction_id),
                seq_no=tx.next_seq_no(),
                trigger_reason=trigger,
                evse_id=connector,
                ts=ts,
                energy_wh=conn.meter_wh,
                context="Transaction.End",
                token=tx.id_tag if trigger == "StopAuthorized" else None,
                stopped_reason=stopped,
            )
            if trigger == "StopAuthorized":
                payload["idToken"]["type"] = tx.token_type
            return await self.host.call("TransactionEvent", payload)
        finally:
            conn.transaction = None
            self._after_transaction(conn, tx)

    def _after_transaction(self, conn: Connector, tx: Transaction) -> None:
        if self._profiles:
            self._profiles.forget_transaction(tx)  # its TxProfiles end with it (1.6 §3.13.1, 2.0.1 K01)
            self.arm_limit_timer()
        if self._reservations:
            self._reservations.changed()  # a whole-station reservation may hold another connector now
        if conn.pending_operative is not None:
            conn.operative = conn.pending_operative
            conn.pending_operative = None
            self._spawn(self._notify_status(conn.id), f"status {conn.id}")
        if self.host.reset_when_idle and not self.host.transactions():
            self.host.reset_when_idle = False
            self.host.run_soon("Reset", lambda: self.host.reboot(stop_reason="ImmediateReset"))

    async def _notify_status(self, connector_id: int) -> None:
        try:
            await self.host.status(connector_id, self.host.current_status(self.host.connectors[connector_id]))
        except SimulatorError as exc:
            self._event("followup_failed", f"StatusNotification: {exc}")

    async def _meter_loop(self, conn: Connector, tx: Transaction) -> None:
        """Periodic samples while ``tx`` lasts, at the interval the device model says."""
        while not self.host.closing:
            interval = self.host.model.meter_interval
            if interval <= 0:
                return
            await asyncio.sleep(interval)
            if conn.transaction is not tx:
                return
            try:
                await self.meter_values(conn.id)
            except SimulatorError as exc:
                logger.warning("%s: periodic meter values failed: %s", self.host.id, exc)

    # ------------------------------------------------------------------ charging limits

    def draw(self, conn: Connector) -> Draw:
        """What ``conn`` draws now: the one place that says it (meter values, charging state).

        Without a transaction, nothing; with one, ``max_current`` (the EV's maximum) capped by
        the limit in force (:meth:`ChargingProfiles.draws`).
        """
        if conn.transaction is None:
            return Draw(0.0)
        if not self._profiles:
            return Draw(self.host.max_current)
        return self._profiles.draws(messages.now_ms()).get(conn.id, Draw(0.0))

    def _energy_step(self, draw: Draw) -> int:
        """Wh a periodic sample adds: ``energy_step_wh`` at full draw, in proportion below it."""
        full = amps_to_watts(self.host.max_current, DEFAULT_PHASES)
        return round(self.host.energy_step_wh * draw.watts / full) if full > 0 else 0

    def _sampled_extras(self, draw: Draw) -> dict[str, float]:
        if self.host.configured_model is None:
            return {}  # never configured: the default, the energy register alone
        values = {"Current.Import": draw.amps, "Power.Active.Import": draw.watts, "Voltage": VOLTS}
        return {m: values[m] for m in self.host.configured_model.sampled_measurands if m in values}

    def _charging_state(self, conn: Connector) -> str:
        return "SuspendedEVSE" if self.draw(conn).amps <= 0 else "Charging"

    async def apply_limits(self) -> None:
        """After the profiles changed (or a schedule moved on): report each transaction whose
        charging state changed (1.6 StatusNotification SuspendedEVSE / Charging; 2.x
        TransactionEvent Updated, ChargingStateChanged), and wait for the next change."""
        self.arm_limit_timer()
        for conn in list(self.host.connectors.values()):
            tx = conn.transaction
            if tx is None or (wanted := self._charging_state(conn)) == tx.charging_state:
                continue
            tx.charging_state = wanted
            if tx.transaction_id is None:
                continue  # 1.6, StartTransaction unanswered: the status after it says so
            if not self.host.version.is_2x:
                await self.host.status(conn.id, wanted)
                continue
            payload = messages.transaction_event(
                event_type="Updated",
                transaction_id=str(tx.transaction_id),
                seq_no=tx.next_seq_no(),
                trigger_reason="ChargingStateChanged",
                evse_id=conn.id,
                ts=messages.timestamp(),
                charging_state=wanted,
            )
            await self.host.call("TransactionEvent", payload)

    def arm_limit_timer(self) -> None:
        """At the next instant a schedule may change a running transaction's limit, apply it."""
        if self.host.closing or not self.host.transactions():
            self._profiles.disarm()
        else:
            self._profiles.arm(lambda: self.host.run_soon("charging limits", self.apply_limits))
