"""One simulated charging station: an OCPP-J client over WebSocket.

The station owns one connection at a time and a small state (connectors, transactions, a
device model), and composes its parts:

* :mod:`simulator.transport`: the WebSocket (open, read, send, close, reconnect with backoff);
* :mod:`simulator.calls`: the calls it sends, one at a time, matched to their answers, and
  the CSMS's calls, answered through :mod:`simulator.handlers`;
* :mod:`simulator.charging`: transactions, meter values and charging limits, with
  :mod:`simulator.reservations` and :mod:`simulator.charging_profiles`;
* :mod:`simulator.security`: its key and certificate (SignCertificate, profile 3);
* :mod:`simulator.files`: diagnostics / log uploads and firmware downloads over HTTP(S).

What is left here is the behaviour that ties them together: boot, statuses, heartbeats,
remote start and stop, reboot, and the lifecycle (connect, lost connection, close).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar, overload

from ocpp_core.versions import OcppVersion

from . import messages
from .calls import CALL_OUTCOMES, CallCallback, Calls
from .charging import DEFAULT_ID_TAG, Charging
from .charging_profiles import ChargingProfiles, Draw, Profile
from .connectors import Connector, Transaction
from .device_model import DeviceModel
from .errors import ConnectFailed, SimulatorError
from .files import StationFiles
from .reservations import Reservation, Reservations
from .security import Security
from .transport import EventCallback, FrameCallback, Transport
from .versions import parse_version

logger = logging.getLogger(__name__)

Payload = dict[str, Any]

#: ``on_event(kind, detail)``, kind one of :data:`EVENT_KINDS`: what happened besides our calls
#: (a bad frame from the CSMS, an answer to no call, a lost connection, a CSMS call answered...).
EVENT_KINDS = ("bad_frame", "unmatched", "disconnect", "reconnect_failed", "followup_failed", "csms_call")

DEFAULT_URL = "ws://127.0.0.1:9000/ocpp"

__all__ = [
    "CALL_OUTCOMES",
    "DEFAULT_ID_TAG",
    "DEFAULT_URL",
    "EVENT_KINDS",
    "CallCallback",
    "Connector",
    "EventCallback",
    "FrameCallback",
    "Station",
    "Transaction",
    "parse_version",
]

T = TypeVar("T")


class _Kept(Generic[T]):
    """A station setting that one of its parts keeps: ``station.url`` is ``station.transport.url``."""

    def __init__(self, part: str):
        self.part = part
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _Kept[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> T | _Kept[T]:
        if obj is None:
            return self
        value: T = getattr(getattr(obj, self.part), self.name)
        return value

    def __set__(self, obj: object, value: T) -> None:
        setattr(getattr(obj, self.part), self.name, value)


class Station:
    """One charging station. ``async with Station(...) as st:`` connects and closes."""

    # Connection settings, kept by the transport; call settings, kept by the calls.
    url = _Kept[str]("transport")
    password = _Kept[str | None]("transport")
    ssl_context = _Kept[ssl.SSLContext | None]("transport")
    client_cert = _Kept[str | None]("transport")
    client_key = _Kept[str | None]("transport")
    open_timeout = _Kept[float]("transport")
    ping_interval = _Kept[float | None]("transport")
    reconnect_attempts = _Kept[int]("transport")
    reconnect_delay = _Kept[float]("transport")
    on_frame = _Kept[FrameCallback | None]("transport")
    call_timeout = _Kept[float]("calls")
    on_call = _Kept[CallCallback | None]("calls")

    def __init__(
        self,
        charge_point_id: str,
        version: OcppVersion | str,
        url: str = DEFAULT_URL,
        *,
        password: str | None = None,
        connectors: int = 1,
        vendor: str = "OCPP-Sim",
        model: str = "Simulator",
        serial_number: str | None = None,
        firmware_version: str | None = "sim-0.1",
        call_timeout: float = 30.0,
        open_timeout: float = 10.0,
        ping_interval: float | None = 30.0,
        reset_delay: float = 1.0,
        auto_reconnect: bool = False,
        reconnect_attempts: int = 10,
        reconnect_delay: float = 1.0,
        energy_step_wh: int = 250,
        max_current: float = 32.0,
        ssl_context: ssl.SSLContext | None = None,
        client_cert: str | None = None,
        client_key: str | None = None,
        upload_method: str = "post",
        on_frame: FrameCallback | None = None,
        on_call: CallCallback | None = None,
        on_event: EventCallback | None = None,
    ):
        if connectors < 1:
            raise ValueError("a station has at least one connector")
        self.id = charge_point_id
        self.version = parse_version(version)
        self.vendor = vendor
        self.model_name = model
        self.serial_number = serial_number
        self.firmware_version = firmware_version
        self.reset_delay = reset_delay
        self.auto_reconnect = auto_reconnect
        #: Wh a periodic sample adds at full draw (``max_current`` on 3 phases); less when limited.
        self.energy_step_wh = energy_step_wh
        #: Amps per phase the EV (and the connector) can take at most.
        self.max_current = max_current
        self.on_event = on_event

        self.connectors: dict[int, Connector] = {i: Connector(i) for i in range(1, connectors + 1)}
        #: Last BootNotification status from the CSMS (None before the first answer).
        self.registration: str | None = None
        self.local_list_version = 0
        #: A 2.x Reset OnIdle answered Scheduled: reboot once the last transaction ends.
        self.reset_when_idle = False
        #: Reservations held (see :meth:`reserve`); ``reservations`` is their dict, by id.
        self._reservations = Reservations(self)
        #: Charging profiles installed (see :meth:`draw`).
        self.profiles = ChargingProfiles(self)

        self._model: DeviceModel | None = None
        self._stopped = asyncio.Event()
        self._stopped.set()  # not running until connect()
        self._settings_changed = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._rebooting = False
        self._reconnecting = False
        self._heartbeats: asyncio.Task[None] | None = None

        self.transport = Transport(
            charge_point_id,
            self.version.value,
            url,
            receive=lambda text, reply: self.calls.receive(text, reply),
            dropped=lambda detail: self.calls.dropped(detail),
            lost=self._lost,
            spawn=self._spawn,
            password=password,
            ssl_context=ssl_context,
            client_cert=client_cert,
            client_key=client_key,
            open_timeout=open_timeout,
            ping_interval=ping_interval,
            reconnect_attempts=reconnect_attempts,
            reconnect_delay=reconnect_delay,
            on_frame=on_frame,
            on_event=self._event,
        )
        self.calls = Calls(
            self, self.transport, self._stopped, call_timeout=call_timeout, on_call=on_call, on_event=self._event
        )
        self._charging = Charging(self, self._reservations, self.profiles, spawn=self._spawn, on_event=self._event)
        #: Its key and certificate (security profile 3); ``security.directory``: where they are written.
        self.security = Security(self)
        #: Uploads made and the last firmware image downloaded; ``upload_method`` "post" or "put".
        self.files = StationFiles(self, upload_method=upload_method)

    # ------------------------------------------------------------------ properties

    @property
    def endpoint(self) -> str:
        """The WebSocket URL: the prefix, then the percent-encoded charger id (DESIGN §3)."""
        return self.transport.endpoint

    @property
    def connected(self) -> bool:
        return self.transport.connected

    @property
    def closing(self) -> bool:
        """True from :meth:`close` on (until the next :meth:`connect`)."""
        return self._closing

    @property
    def answered(self) -> dict[str, int]:
        """CSMS calls answered, by action (what the CSMS asked of us)."""
        return self.calls.answered

    @property
    def reservations(self) -> dict[int, Reservation]:
        """The reservations the station holds, by id (:mod:`simulator.reservations`)."""
        return self._reservations.held

    @property
    def stopped(self) -> bool:
        """True once the station stopped for good (closed, or gave up reconnecting)."""
        return self._stopped.is_set()

    @property
    def model(self) -> DeviceModel:
        # Built on first use: a load run of a thousand stations that never gets a
        # configuration request never pays for it.
        if self._model is None:
            self._model = DeviceModel(
                self.version,
                charge_point_id=self.id,
                connectors=len(self.connectors),
                vendor=self.vendor,
                model=self.model_name,
                security_profile=1 if self.password else 0,
            )
        return self._model

    @property
    def configured_model(self) -> DeviceModel | None:
        """The device model if anything used it yet (None: every setting at its default)."""
        return self._model

    def transactions(self) -> list[Transaction]:
        return [c.transaction for c in self.connectors.values() if c.transaction is not None]

    def connector_with_transaction(self, transaction_id: int | str) -> Connector | None:
        for connector in self.connectors.values():
            if connector.transaction is not None and connector.transaction.transaction_id == transaction_id:
                return connector
        return None

    def free_connector(self, preferred: int | None = None, id_tag: str | None = None) -> Connector | None:
        """The connector a new transaction for ``id_tag`` may use (``preferred``, or a free one).

        A connector reserved for another id tag is not free (1.6 §5.13, 2.0.1 H01); without
        ``preferred``, one reserved for ``id_tag`` comes first.
        """

        def usable(connector: Connector) -> bool:
            return not connector.busy and connector.operative and not self.reservation_blocks(connector, id_tag)

        if preferred is not None:
            connector = self.connectors.get(preferred)
            return connector if connector is not None and usable(connector) else None
        free = [c for c in self.connectors.values() if usable(c)]
        for connector in free:
            if self._reservations.reserved_for(connector, id_tag):
                return connector
        return free[0] if free else None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Station:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def connect(self) -> None:
        """Open the WebSocket. Raises :class:`ConnectFailed` (or a subclass) with a clear reason."""
        self._closing = False
        self._stopped.clear()
        self._reservations.arm_all()  # disarmed by a previous close()
        self._charging.arm_limit_timer()
        await self.transport.open()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and stop every background task. Idempotent."""
        self._closing = True
        self._reservations.disarm_all()
        self.profiles.disarm()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        await self.transport.close(code, reason, "closed by the station")
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._stopped.set()

    async def wait_closed(self) -> None:
        """Wait until the station stops for good: :meth:`close`, or reconnection gave up."""
        await self._stopped.wait()

    def _lost(self, detail: str) -> None:
        """The CSMS (or the network) dropped the connection: reconnect, or stop."""
        if self._closing or self._rebooting:
            return
        logger.warning("%s: connection lost (%s)", self.id, detail)
        self._event("disconnect", detail)
        if self.auto_reconnect:
            self._spawn(self._reconnect(), "reconnect")
        else:
            self._stopped.set()

    async def _reconnect(self) -> None:
        if self._reconnecting:
            return
        self._reconnecting = True
        try:
            if await self.transport.reconnect(self._keep_trying):
                # A station that never got Accepted must boot before anything else (B02/B03).
                if self.registration != "Accepted":
                    with contextlib.suppress(SimulatorError):
                        await self.boot()
            else:
                self._stopped.set()
        finally:
            self._reconnecting = False

    def _keep_trying(self) -> bool:
        return not self._closing

    # ------------------------------------------------------------------ tasks and events

    def _event(self, kind: str, detail: str) -> None:
        if self.on_event is not None:
            self.on_event(kind, detail)

    def run_soon(self, what: str, then: Callable[[], Awaitable[None]]) -> None:
        """Run ``then`` in the background, logging (not raising) a failure."""
        self._spawn(self._follow_up(what, then), what)

    async def _follow_up(self, action: str, then: Callable[[], Awaitable[None]]) -> None:
        try:
            await then()
        except (SimulatorError, ValueError) as exc:  # ValueError: the state moved on meanwhile
            if self._closing:
                return  # the station is shutting down: nothing failed that anyone waits for
            logger.warning("%s: follow-up of %s failed: %s", self.id, action, exc)
            self._event("followup_failed", f"{action}: {exc}")

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.id} {name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("%s: task %s failed", self.id, task.get_name(), exc_info=task.exception())

    # ------------------------------------------------------------------ steps

    async def call(self, action: str, payload: Payload, timeout: float | None = None) -> Payload:
        """Send one CALL and return the CALLRESULT payload (see :meth:`Calls.call`)."""
        return await self.calls.call(action, payload, timeout)

    async def boot(self, reason: str = "PowerUp") -> Payload:
        """BootNotification; remembers the registration status and the heartbeat interval."""
        payload = messages.boot_notification(
            self.version,
            self.vendor,
            self.model_name,
            reason=reason,
            serial_number=self.serial_number,
            firmware_version=self.firmware_version,
        )
        response = await self.call("BootNotification", payload)
        self.registration = str(response["status"])
        interval = response.get("interval")
        # 1.6 §4.2 / 2.0.1 B01: when Accepted, interval is the heartbeat interval (0: our choice).
        if self.registration == "Accepted" and isinstance(interval, int) and interval > 0:
            self.model.heartbeat_interval = interval
            self.settings_changed()
        return response

    async def heartbeat(self) -> Payload:
        return await self.call("Heartbeat", {})

    async def sign_certificate(self, timeout: float | None = None) -> Payload:
        """SignCertificate, then the CertificateSigned that follows: see :meth:`Security.sign_certificate`."""
        return await self.security.sign_certificate(timeout)

    async def use_certificate(self, url: str, *, ca_file: str | None = None) -> None:
        """Reconnect to ``url`` (wss://) with the installed certificate: see :meth:`Security.reconnect`."""
        await self.security.reconnect(self.transport, url, ca_file=ca_file)
        if self.version.is_2x:
            self.model.force("SecurityProfile", "3", "SecurityCtrlr")

    async def status(self, connector: int, status: str) -> Payload:
        """StatusNotification; ``status`` in either version's vocabulary (mapped as needed)."""
        payload = messages.status_notification(self.version, connector, status, messages.timestamp())
        if connector in self.connectors:
            self.connectors[connector].status = messages.connector_status(self.version, status)
        return await self.call("StatusNotification", payload)

    async def send_status_all(self) -> None:
        """StatusNotification for every connector, from its current state (after a boot)."""
        for connector in self.connectors.values():
            await self.status(connector.id, self.current_status(connector))

    def current_status(self, connector: Connector) -> str:
        """The status the connector's state calls for (1.6 vocabulary, mapped when sent)."""
        if not connector.operative:
            return "Unavailable"
        if connector.transaction is not None:
            return connector.transaction.charging_state  # Charging / SuspendedEVSE: Occupied in 2.x
        if self._reservations and self._reservations.holds(connector):
            return "Reserved"
        return "Available"

    async def authorize(self, id_tag: str = DEFAULT_ID_TAG) -> Payload:
        return await self.call("Authorize", messages.authorize(self.version, id_tag))

    # ------------------------------------------------------------------ transactions
    # The steps are in :mod:`simulator.charging`; these are the station's entry points.

    async def start_transaction(
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
        """StartTransaction (1.6) or TransactionEvent Started (2.x): see :meth:`Charging.start`."""
        return await self._charging.start(
            connector,
            id_tag,
            meter_start,
            remote_start_id=remote_start_id,
            trigger_reason=trigger_reason,
            token_type=token_type,
            charging_profile=charging_profile,
        )

    async def meter_values(
        self,
        connector: int = 1,
        energy_wh: int | None = None,
        *,
        context: str = "Sample.Periodic",
        in_transaction: bool = True,
    ) -> Payload:
        """A meter sample of the energy register: see :meth:`Charging.meter_values`."""
        return await self._charging.meter_values(connector, energy_wh, context=context, in_transaction=in_transaction)

    async def stop_transaction(
        self,
        connector: int = 1,
        meter_stop: int | None = None,
        *,
        reason: str = "Local",
        trigger_reason: str | None = None,
    ) -> Payload:
        """StopTransaction (1.6) or TransactionEvent Ended (2.x): see :meth:`Charging.stop`."""
        return await self._charging.stop(connector, meter_stop, reason=reason, trigger_reason=trigger_reason)

    def draw(self, conn: Connector) -> Draw:
        """What ``conn`` draws now: see :meth:`Charging.draw`."""
        return self._charging.draw(conn)

    async def apply_charging_limits(self) -> None:
        """Report the charging states the profiles changed: see :meth:`Charging.apply_limits`."""
        await self._charging.apply_limits()

    # ------------------------------------------------------------------ reservations
    # The logic is in :mod:`simulator.reservations`; these are the station's entry points.

    def reserve(self, reservation_id: int, connector_id: int, id_tag: str, expiry_ms: int) -> str:
        """Decide a ReserveNow (1.6 §5.13, 2.0.1 H01): see :meth:`Reservations.reserve`."""
        return self._reservations.reserve(reservation_id, connector_id, id_tag, expiry_ms)

    def cancel_reservation(self, reservation_id: int) -> bool:
        """CancelReservation (1.6 §5.1, 2.0.1 H02): True if the station held it (now dropped)."""
        return self._reservations.cancel(reservation_id)

    def reservation_blocks(self, conn: Connector, id_tag: str | None) -> bool:
        """Whether reservations for others keep ``conn`` from a transaction for ``id_tag``."""
        return self._reservations.blocks(conn, id_tag)

    async def sync_reserved_statuses(self) -> None:
        """StatusNotification for each idle connector that became Reserved or stopped being so."""
        await self._reservations.sync_statuses()

    # ------------------------------------------------------------------ behaviours

    async def remote_start(
        self,
        connector: int,
        id_tag: str,
        *,
        remote_start_id: int | None = None,
        token_type: str = "ISO14443",
        charging_profile: Profile | None = None,
    ) -> None:
        """What follows an accepted RemoteStartTransaction / RequestStartTransaction
        (``charging_profile``: the TxProfile it carried, checked already)."""
        conn = self._charging.connector(connector)
        try:
            if self.model.authorize_remote_start:
                response = await self.authorize(id_tag)
                if messages.authorization_status(self.version, response) != "Accepted":
                    return
            if not self.version.is_2x:
                await self.status(connector, "Preparing")
            tx = await self.start_transaction(
                connector,
                id_tag,
                remote_start_id=remote_start_id,
                trigger_reason="RemoteStart",
                token_type=token_type,
                charging_profile=charging_profile,
            )
        finally:
            conn.starting = False
        if tx.authorization not in (None, "Accepted"):
            await self.stop_transaction(connector, reason="DeAuthorized")
            await self.status(connector, "Available")
            return
        await self.status(connector, self.current_status(conn))  # Charging / SuspendedEVSE; Occupied in 2.x

    async def remote_stop(self, connector: int) -> None:
        """What follows an accepted RemoteStopTransaction / RequestStopTransaction."""
        await self.stop_transaction(connector, reason="Remote")
        await self.status(connector, self.current_status(self.connectors[connector]))

    async def reboot(self, *, stop_reason: str = "Reboot", boot_reason: str = "RemoteReset") -> None:
        """Stop the transactions, drop the connection, come back after ``reset_delay``, boot.

        This is what a Reset does (1.6 §5.14, 2.0.1 B11/B12): the CSMS sees the socket close,
        a new connection, a BootNotification and the connector statuses.
        """
        if self._rebooting:
            return
        self._rebooting = True
        try:
            for conn in list(self.connectors.values()):
                if conn.transaction is not None:
                    try:
                        await self.stop_transaction(conn.id, reason=stop_reason)
                    except (SimulatorError, ValueError) as exc:
                        logger.warning("%s: could not stop transaction before reset: %s", self.id, exc)
                conn.starting = False
            await self.transport.close(1000, "reset")
            logger.info("%s rebooting (back in %.1f s)", self.id, self.reset_delay)
            await asyncio.sleep(self.reset_delay)
            if self._closing:
                return
            if not await self._reopen_now():
                self._stopped.set()
                return
            await self.boot(reason=boot_reason)
            await self.send_status_all()
        finally:
            self._rebooting = False

    async def _reopen_now(self) -> bool:
        """Reconnect at once after a reset, then with backoff."""
        try:
            await self.transport.open()
            return True
        except ConnectFailed as exc:
            logger.warning("%s: reconnect after reset failed: %s", self.id, exc.reason)
            self._event("reconnect_failed", exc.reason)
        return await self.transport.reconnect(self._keep_trying)

    def settings_changed(self) -> None:
        """Wake the heartbeat loop so a new HeartbeatInterval applies at once."""
        self._settings_changed.set()

    def start_heartbeats(self) -> None:
        """Send Heartbeat every HeartbeatInterval (from BootNotification or the CSMS) until closed."""
        if self._heartbeats is None or self._heartbeats.done():
            self._heartbeats = self._spawn(self._heartbeat_loop(), "heartbeats")

    async def _heartbeat_loop(self) -> None:
        while not self._closing:
            interval = self.model.heartbeat_interval
            if interval <= 0:
                interval = 300
            self._settings_changed.clear()
            try:
                async with asyncio.timeout(interval):
                    await self._settings_changed.wait()
                continue  # the interval changed: start over with the new one
            except TimeoutError:
                pass
            if not self.connected or self.registration != "Accepted":
                continue  # only an accepted station heartbeats (1.6 §4.2, 2.0.1 B02.FR.01)
            try:
                await self.heartbeat()
            except SimulatorError as exc:
                logger.warning("%s: heartbeat failed: %s", self.id, exc)
