"""One simulated charging station: an OCPP-J client over WebSocket.

The station owns one connection at a time and a small state (connectors, transactions, a
device model). It sends CALLs one at a time, as OCPP-J requires (1.6 §4.1.1, 2.0.1 part 4
§4.1.1: "a Charging Station SHALL NOT send a CALL until the previous one was answered"):
:meth:`Station.call` takes a lock, so concurrent callers wait their turn. A reader task
answers the CSMS's CALLs as they come, independently of our outstanding call, using the
handlers in :mod:`simulator.handlers`; what a request makes the station do afterwards (start
a transaction, reboot, send a report) runs as a follow-up task once the answer is out.

Every payload is validated against the official schema before it is sent: a frame the
simulator emits that the CSMS refuses is the CSMS's problem, never ours.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import copy
import logging
import random
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI
from websockets.typing import Subprotocol

from ocpp_core.errors import InternalError, NotImplementedAction, NotSupportedAction, OcppError
from ocpp_core.framing import (
    Call,
    CallError,
    CallResult,
    FrameError,
    Send,
    parse_frame,
    serialize_call,
    serialize_error,
    serialize_result,
)
from ocpp_core.schemas import validate_request, validate_response
from ocpp_core.versions import CHARGER_INITIATED, CSMS_INITIATED, OcppVersion

from . import messages
from .charging_profiles import DEFAULT_PHASES, VOLTS, ChargingProfiles, Draw, Profile, amps_to_watts
from .device_model import DeviceModel
from .errors import (
    CallErrorReceived,
    CallTimeout,
    ConnectFailed,
    ConnectionLost,
    HandshakeRejected,
    InvalidRequest,
    InvalidResponse,
    NotConnected,
    SimulatorError,
    SubprotocolRefused,
)
from .handlers import handler_for
from .reservations import Reservation, Reservations

logger = logging.getLogger(__name__)

Payload = dict[str, Any]
#: ``on_frame(direction, text)``: direction is ``"->"`` (sent) or ``"<-"`` (received).
FrameCallback = Callable[[str, str], None]
#: ``on_call(action, seconds, outcome)``, outcome one of :data:`CALL_OUTCOMES`.
CallCallback = Callable[[str, float, str], None]
#: ``on_event(kind, detail)``, kind one of :data:`EVENT_KINDS`: what happened besides our calls
#: (a bad frame from the CSMS, an answer to no call, a lost connection, a CSMS call answered...).
EventCallback = Callable[[str, str], None]

CALL_OUTCOMES = ("ok", "callerror", "timeout", "disconnected", "invalid_response", "not_connected")
EVENT_KINDS = ("bad_frame", "unmatched", "disconnect", "reconnect_failed", "followup_failed", "csms_call")

DEFAULT_URL = "ws://127.0.0.1:9000/ocpp"
DEFAULT_ID_TAG = "DEMO-TAG"

_VERSION_ALIASES = {
    "1.6": OcppVersion.V16,
    "16": OcppVersion.V16,
    "2.0.1": OcppVersion.V201,
    "201": OcppVersion.V201,
    "2.0": OcppVersion.V201,
    "2.1": OcppVersion.V21,
    "21": OcppVersion.V21,
}


def parse_version(value: str | OcppVersion) -> OcppVersion:
    """``1.6`` / ``2.0.1`` / ``2.1`` (with or without the ``ocpp`` prefix) to a version."""
    if isinstance(value, OcppVersion):
        return value
    text = value.strip().lower()
    version = OcppVersion.parse(text) or _VERSION_ALIASES.get(text.removeprefix("ocpp"))
    if version is None:
        raise ValueError(f"unknown OCPP version {value!r} (use 1.6, 2.0.1 or 2.1)")
    return version


@dataclass(slots=True)
class Transaction:
    connector_id: int
    id_tag: str
    token_type: str
    meter_start: int
    #: 1.6: the integer the CSMS assigned (None until StartTransaction is answered);
    #: 2.x: the string the station generated.
    transaction_id: int | str | None = None
    seq_no: int = 0
    remote_start_id: int | None = None
    #: The authorization status the CSMS gave the id tag when the transaction started, if any.
    authorization: str | None = None
    #: A remote stop was accepted: a second one is refused.
    stopping: bool = False
    #: The reservation the transaction used (sent in StartTransaction / TransactionEvent Started).
    reservation_id: int | None = None
    #: Epoch ms of the start (where Relative charging schedules start).
    started_ms: int = 0
    #: ``Charging``, or ``SuspendedEVSE`` while the limit in force is 0 (1.6 status, 2.x chargingState).
    charging_state: str = "Charging"

    def next_seq_no(self) -> int:
        # 2.0.1 E01.FR.16 (and 2.1): seqNo starts at 0 and increases by one per event.
        seq_no = self.seq_no
        self.seq_no += 1
        return seq_no


@dataclass(slots=True)
class Connector:
    """A 1.6 connector, or a 2.x EVSE with a single connector (connectorId 1)."""

    id: int
    status: str = "Available"
    operative: bool = True
    #: A ChangeAvailability that answered Scheduled: applied when the transaction ends.
    pending_operative: bool | None = None
    meter_wh: int = 0
    transaction: Transaction | None = None
    #: A remote start was accepted and its transaction is not open yet.
    starting: bool = False

    @property
    def busy(self) -> bool:
        return self.transaction is not None or self.starting


@dataclass(slots=True)
class _Pending:
    unique_id: str
    action: str
    future: asyncio.Future[Payload]


class Station:
    """One charging station. ``async with Station(...) as st:`` connects and closes."""

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
        on_frame: FrameCallback | None = None,
        on_call: CallCallback | None = None,
        on_event: EventCallback | None = None,
    ):
        if connectors < 1:
            raise ValueError("a station has at least one connector")
        self.id = charge_point_id
        self.version = parse_version(version)
        self.url = url
        self.password = password
        self.vendor = vendor
        self.model_name = model
        self.serial_number = serial_number
        self.firmware_version = firmware_version
        self.call_timeout = call_timeout
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.reset_delay = reset_delay
        self.auto_reconnect = auto_reconnect
        self.reconnect_attempts = reconnect_attempts
        self.reconnect_delay = reconnect_delay
        #: Wh a periodic sample adds at full draw (``max_current`` on 3 phases); less when limited.
        self.energy_step_wh = energy_step_wh
        #: Amps per phase the EV (and the connector) can take at most.
        self.max_current = max_current
        self.ssl_context = ssl_context
        self.on_frame = on_frame
        self.on_call = on_call
        self.on_event = on_event

        self.connectors: dict[int, Connector] = {i: Connector(i) for i in range(1, connectors + 1)}
        #: Last BootNotification status from the CSMS (None before the first answer).
        self.registration: str | None = None
        self.local_list_version = 0
        #: CSMS calls answered, by action (what the CSMS asked of us).
        self.answered: dict[str, int] = {}
        #: A 2.x Reset OnIdle answered Scheduled: reboot once the last transaction ends.
        self.reset_when_idle = False
        #: Reservations held (see :meth:`reserve`); ``reservations`` is their dict, by id.
        self._reservations = Reservations(self)
        #: Charging profiles installed (see :meth:`draw`).
        self.profiles = ChargingProfiles(self)

        self._model: DeviceModel | None = None
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopped.set()  # not running until connect()
        self._settings_changed = asyncio.Event()
        self._call_lock = asyncio.Lock()
        self._pending: _Pending | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._rebooting = False
        self._reconnecting = False
        self._heartbeats: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ properties

    @property
    def endpoint(self) -> str:
        """The WebSocket URL: the prefix, then the percent-encoded charger id (DESIGN §3)."""
        return f"{self.url.rstrip('/')}/{quote(self.id, safe='')}"

    @property
    def connected(self) -> bool:
        return self._ws is not None

    @property
    def closing(self) -> bool:
        """True from :meth:`close` on (until the next :meth:`connect`)."""
        return self._closing

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

    def _connector(self, connector_id: int) -> Connector:
        try:
            return self.connectors[connector_id]
        except KeyError:
            raise ValueError(f"{self.id} has no connector {connector_id}") from None

    # ------------------------------------------------------------------ connection

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
        self._arm_limit_timer()
        await self._open()

    async def _open(self) -> None:
        headers: dict[str, str] = {}
        if self.password is not None:
            # Security profile 1/2: HTTP Basic, user = charger id (1.6 security whitepaper §2.1.1,
            # 2.0.1 part 2 A00.FR.203).
            token = base64.b64encode(f"{self.id}:{self.password}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        url = self.endpoint
        # wss:// (security profile 2): websockets verifies the server with the system CAs
        # unless given a context (say, one that trusts a local self-signed certificate).
        extra: dict[str, Any] = {"ssl": self.ssl_context} if self.ssl_context is not None else {}
        try:
            ws = await connect(
                url,
                subprotocols=[Subprotocol(self.version.value)],
                additional_headers=headers,
                # OCPP chargers do not negotiate permessage-deflate, and a zlib context per
                # connection would cost a thousand-station load run hundreds of MB.
                compression=None,
                open_timeout=self.open_timeout,
                ping_interval=self.ping_interval,
                ping_timeout=self.ping_interval,
                close_timeout=5,
                # A station talks to the CSMS it was given, not through an environment proxy.
                proxy=None,
                user_agent_header="ocpp-simulator",
                **extra,
            )
        except InvalidStatus as exc:
            raise HandshakeRejected(url, exc.response.status_code, exc.response.reason_phrase) from None
        except InvalidURI as exc:
            raise ConnectFailed(url, f"invalid URL ({exc})") from None
        except InvalidHandshake as exc:
            raise ConnectFailed(url, f"WebSocket handshake failed ({exc})") from None
        except TimeoutError:
            raise ConnectFailed(url, f"timed out after {self.open_timeout:g} s") from None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            if isinstance(exc, ConnectionRefusedError):
                reason = "connection refused (is the CSMS running?)"
            raise ConnectFailed(url, reason) from None
        if ws.subprotocol != self.version.value:
            # RFC 6455 §4.1: a server that selects none of our subprotocols did not agree to
            # speak OCPP with us; go no further.
            await ws.close(1002, "subprotocol not negotiated")
            raise SubprotocolRefused(url, self.version.value, ws.subprotocol)
        self._ws = ws
        self._connected.set()
        self._spawn(self._read(ws), "reader")
        logger.info("%s connected to %s (%s)", self.id, url, self.version.value)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and stop every background task. Idempotent."""
        self._closing = True
        self._reservations.disarm_all()
        self.profiles.disarm()
        current = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not current]
        for task in tasks:
            task.cancel()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close(code, reason)
        self._drop(ws, "closed by the station")
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._stopped.set()

    async def wait_closed(self) -> None:
        """Wait until the station stops for good: :meth:`close`, or reconnection gave up."""
        await self._stopped.wait()

    def _drop(self, ws: ClientConnection | None, detail: str) -> None:
        """Forget ``ws`` (if current) and fail our outstanding call."""
        if ws is None or self._ws is not ws:
            return
        self._ws = None
        self._connected.clear()
        pending = self._pending
        if pending is not None and not pending.future.done():
            pending.future.set_exception(ConnectionLost(self.id, pending.action, detail))

    async def _read(self, ws: ClientConnection) -> None:
        detail = "connection closed"
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    # OCPP-J is text only (1.6 §3, 2.0.1 part 4 §3.3).
                    self._event("bad_frame", f"binary frame of {len(message)} bytes ignored")
                    continue
                try:
                    await self._on_text(ws, message)
                except ConnectionClosed:
                    raise
                except Exception:  # a bug of ours: log it, keep reading (the CSMS is not at fault)
                    logger.exception("%s: could not process %.200s", self.id, message)
        except ConnectionClosed:
            pass
        finally:
            if ws.close_code is not None:
                detail = f"code {ws.close_code}" + (f" {ws.close_reason}" if ws.close_reason else "")
            lost = self._ws is ws
            self._drop(ws, detail)
            if lost and not self._closing and not self._rebooting:
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
            if await self._open_with_retries():
                # A station that never got Accepted must boot before anything else (B02/B03).
                if self.registration != "Accepted":
                    with contextlib.suppress(SimulatorError):
                        await self.boot()
            else:
                self._stopped.set()
        finally:
            self._reconnecting = False

    async def _open_with_retries(self) -> bool:
        """Reconnect with exponential backoff and jitter (many stations must not reconnect in step)."""
        delay = self.reconnect_delay
        for attempt in range(1, self.reconnect_attempts + 1):
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
            if self._closing:
                return False
            try:
                await self._open()
                return True
            except ConnectFailed as exc:
                logger.warning("%s: reconnect attempt %d failed: %s", self.id, attempt, exc.reason)
                self._event("reconnect_failed", exc.reason)
            delay = min(delay * 2, 30.0)
        logger.error("%s: giving up after %d reconnect attempts", self.id, self.reconnect_attempts)
        return False

    # ------------------------------------------------------------------ frames

    def _emit(self, direction: str, text: str) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s %s", self.id, direction, text)
        if self.on_frame is not None:
            self.on_frame(direction, text)

    def _event(self, kind: str, detail: str) -> None:
        if self.on_event is not None:
            self.on_event(kind, detail)

    async def _send_text(self, ws: ClientConnection, text: str) -> None:
        self._emit("->", text)
        with contextlib.suppress(ConnectionClosed):
            await ws.send(text)

    async def _on_text(self, ws: ClientConnection, text: str) -> None:
        self._emit("<-", text)
        try:
            frame = parse_frame(text, self.version)
        except FrameError as exc:
            logger.warning("%s: bad frame from the CSMS (%s): %.200s", self.id, exc.error.description, text)
            self._event("bad_frame", exc.error.description)
            if exc.unique_id is not None and exc.answerable:
                await self._send_text(ws, serialize_error(exc.unique_id, exc.error, self.version))
            return
        if isinstance(frame, Call):
            await self._answer(ws, frame)
        elif isinstance(frame, (CallResult, CallError)):
            self._complete(frame)
        elif isinstance(frame, Send):
            logger.info("%s: SEND %s from the CSMS ignored", self.id, frame.action)

    def _complete(self, frame: CallResult | CallError) -> None:
        pending = self._pending
        if pending is None or pending.unique_id != frame.unique_id or pending.future.done():
            # Typically the late answer to a call that already timed out.
            logger.warning("%s: answer to no outstanding call (id %s) ignored", self.id, frame.unique_id)
            self._event("unmatched", frame.unique_id)
            return
        if isinstance(frame, CallResult):
            pending.future.set_result(frame.payload)
        else:
            pending.future.set_exception(
                CallErrorReceived(pending.action, frame.error_code, frame.error_description, frame.error_details)
            )

    async def _answer(self, ws: ClientConnection, call: Call) -> None:
        """Answer one CSMS CALL: CALLRESULT (then its follow-up) or CALLERROR."""
        action = call.action
        self._event("csms_call", action)
        then: Callable[[], Awaitable[None]] | None = None
        try:
            if action not in CSMS_INITIATED[self.version]:
                if action in CHARGER_INITIATED[self.version]:
                    raise NotSupportedAction(f"{action} is sent by a charging station, not to one")
                raise NotImplementedAction(f"Unknown action {action}")
            validate_request(self.version, action, call.payload)
            reply = handler_for(self.version, action)(self, call.payload)
            try:
                validate_response(self.version, action, copy.deepcopy(reply.response))
            except OcppError as exc:
                # Our bug: never put an invalid frame on the wire.
                logger.error("%s: our answer to %s fails the schema: %s", self.id, action, exc.description)
                raise InternalError(f"Station could not build a valid {action} response") from None
            text = serialize_result(call.unique_id, reply.response)
            then = reply.then
        except OcppError as exc:
            logger.info("%s: CALLERROR %s to %s: %s", self.id, exc.code(self.version), action, exc.description)
            text = serialize_error(call.unique_id, exc, self.version)
        except Exception:
            logger.exception("%s: handler for %s failed", self.id, action)
            text = serialize_error(call.unique_id, InternalError(), self.version)
        self.answered[action] = self.answered.get(action, 0) + 1
        await self._send_text(ws, text)
        if then is not None:
            self._spawn(self._follow_up(action, then), f"after {action}")

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

    # ------------------------------------------------------------------ calls

    async def call(self, action: str, payload: Payload, timeout: float | None = None) -> Payload:
        """Send one CALL and return the CALLRESULT payload.

        Raises :class:`InvalidRequest` before sending if ``payload`` fails the schema, and
        :class:`CallErrorReceived`, :class:`CallTimeout`, :class:`ConnectionLost`,
        :class:`NotConnected` or :class:`InvalidResponse` when the call does not succeed.
        Calls wait their turn: only one is outstanding at a time.
        """
        if action not in CHARGER_INITIATED[self.version]:
            raise InvalidRequest(action, f"not a message a charging station sends in {self.version.value}")
        try:
            # On a copy: the compiled validators fill in schema defaults (fastjsonschema's
            # use_default), and the frame should carry exactly what the caller built.
            validate_request(self.version, action, copy.deepcopy(payload))
        except OcppError as exc:
            raise InvalidRequest(action, exc.description) from None
        timeout = self.call_timeout if timeout is None else timeout
        async with self._call_lock:
            ws = self._ws
            if ws is None and not self._closing:
                # Across a reconnect or a reboot, wait for the connection like a station that
                # queues its messages; give up after the call timeout.
                await self._wait_connected(timeout)
                ws = self._ws
            if ws is None or self._closing:
                self._record(action, 0.0, "not_connected")
                raise NotConnected(self.id, action)
            unique_id = str(uuid.uuid4())
            future: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
            self._pending = _Pending(unique_id, action, future)
            started = time.perf_counter()
            try:
                text = serialize_call(unique_id, action, payload)
                self._emit("->", text)
                try:
                    await ws.send(text)
                except ConnectionClosed:
                    self._drop(ws, "connection closed")
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
                # arrives as the future completes, and close() relies on cancelling us.
                async with asyncio.timeout(timeout):
                    result = await future
            except TimeoutError:
                self._record(action, time.perf_counter() - started, "timeout")
                raise CallTimeout(self.id, action, timeout) from None
            except CallErrorReceived:
                self._record(action, time.perf_counter() - started, "callerror")
                raise
            except ConnectionLost:
                self._record(action, time.perf_counter() - started, "disconnected")
                raise
            finally:
                self._pending = None
        elapsed = time.perf_counter() - started
        try:
            validate_response(self.version, action, result)
        except OcppError as exc:
            self._record(action, elapsed, "invalid_response")
            raise InvalidResponse(action, exc.description) from None
        self._record(action, elapsed, "ok")
        return result

    async def _wait_connected(self, timeout: float) -> None:
        """Until connected, stopped for good, or ``timeout``."""
        waiters = [asyncio.ensure_future(self._connected.wait()), asyncio.ensure_future(self._stopped.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def _record(self, action: str, seconds: float, outcome: str) -> None:
        if self.on_call is not None:
            self.on_call(action, seconds, outcome)

    # ------------------------------------------------------------------ steps

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
        """StartTransaction (1.6) or TransactionEvent Started (2.x); returns the transaction.

        The CSMS's verdict on the id tag is in ``Transaction.authorization``; the caller
        decides what a refusal means (the scenario stops; a remote start stops the transaction
        with reason DeAuthorized, as 1.6 §5.11 and 2.0.1 E05 describe). ``charging_profile``:
        the TxProfile of a remote start (checked already), in force from the start.
        """
        conn = self._connector(connector)
        if conn.transaction is not None:
            raise ValueError(f"{self.id}: connector {connector} already has a transaction")
        if self.reservation_blocks(conn, id_tag):
            raise ValueError(f"{self.id}: connector {connector} is reserved for another id tag")
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
            self.profiles.bind(charging_profile, tx)
        if self.profiles:
            tx.charging_state = self._charging_state(conn)
            self._arm_limit_timer()
        if reservation is not None or self._reservations:
            self._reservations.changed()
        ts = messages.timestamp()
        try:
            if not self.version.is_2x:
                payload = messages.start_transaction_v16(
                    connector, id_tag, tx.meter_start, ts, reservation_id=tx.reservation_id
                )
                response = await self.call("StartTransaction", payload)
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
                response = await self.call("TransactionEvent", payload)
        except BaseException:
            conn.transaction = None
            self.profiles.forget_transaction(tx)
            raise
        tx.authorization = messages.authorization_status(self.version, response)
        if self.model.meter_interval > 0:
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
        conn = self._connector(connector)
        draw = self.draw(conn)
        if energy_wh is not None:
            conn.meter_wh = energy_wh
        elif context != "Trigger" and conn.transaction is not None:
            conn.meter_wh += self._energy_step(draw)
        tx = conn.transaction
        extra = self._sampled_extras(draw)
        ts = messages.timestamp()
        if self.version.is_2x and tx is not None and in_transaction and isinstance(tx.transaction_id, str):
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
            return await self.call("TransactionEvent", payload)
        transaction_id = tx.transaction_id if tx is not None and isinstance(tx.transaction_id, int) else None
        payload = messages.meter_values(
            self.version, connector, conn.meter_wh, ts, transaction_id=transaction_id, context=context, extra=extra
        )
        return await self.call("MeterValues", payload)

    async def stop_transaction(
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
        conn = self._connector(connector)
        tx = conn.transaction
        if tx is None:
            raise ValueError(f"{self.id}: no transaction on connector {connector}")
        if meter_stop is not None:
            conn.meter_wh = meter_stop
        ts = messages.timestamp()
        try:
            if not self.version.is_2x:
                if not isinstance(tx.transaction_id, int):
                    raise ValueError(f"{self.id}: transaction on connector {connector} has no id yet")
                payload = messages.stop_transaction_v16(
                    tx.transaction_id, conn.meter_wh, ts, reason, tx.id_tag if reason == "Local" else None
                )
                return await self.call("StopTransaction", payload)
            stopped = messages.stop_reason(self.version, reason)
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
            return await self.call("TransactionEvent", payload)
        finally:
            conn.transaction = None
            self._after_transaction(conn, tx)

    def _after_transaction(self, conn: Connector, tx: Transaction) -> None:
        if self.profiles:
            self.profiles.forget_transaction(tx)  # its TxProfiles end with it (1.6 §3.13.1, 2.0.1 K01)
            self._arm_limit_timer()
        if self._reservations:
            self._reservations.changed()  # a whole-station reservation may hold another connector now
        if conn.pending_operative is not None:
            conn.operative = conn.pending_operative
            conn.pending_operative = None
            self._spawn(self._notify_status(conn.id), f"status {conn.id}")
        if self.reset_when_idle and not self.transactions():
            self.reset_when_idle = False
            self._spawn(self._follow_up("Reset", lambda: self.reboot(stop_reason="ImmediateReset")), "reset")

    async def _notify_status(self, connector_id: int) -> None:
        try:
            await self.status(connector_id, self.current_status(self.connectors[connector_id]))
        except SimulatorError as exc:
            self._event("followup_failed", f"StatusNotification: {exc}")

    async def _meter_loop(self, conn: Connector, tx: Transaction) -> None:
        """Periodic samples while ``tx`` lasts, at the interval the device model says."""
        while not self._closing:
            interval = self.model.meter_interval
            if interval <= 0:
                return
            await asyncio.sleep(interval)
            if conn.transaction is not tx:
                return
            try:
                await self.meter_values(conn.id)
            except SimulatorError as exc:
                logger.warning("%s: periodic meter values failed: %s", self.id, exc)

    # ------------------------------------------------------------------ charging limits
    # The rules are in :mod:`simulator.charging_profiles`; these are the station's entry points.

    def draw(self, conn: Connector) -> Draw:
        """What ``conn`` draws now: the one place that says it (meter values, charging state).

        Without a transaction, nothing; with one, ``max_current`` (the EV's maximum) capped by
        the limit in force (:meth:`ChargingProfiles.draws`).
        """
        if conn.transaction is None:
            return Draw(0.0)
        if not self.profiles:
            return Draw(self.max_current)
        return self.profiles.draws(messages.now_ms()).get(conn.id, Draw(0.0))

    def _energy_step(self, draw: Draw) -> int:
        """Wh a periodic sample adds: ``energy_step_wh`` at full draw, in proportion below it."""
        full = amps_to_watts(self.max_current, DEFAULT_PHASES)
        return round(self.energy_step_wh * draw.watts / full) if full > 0 else 0

    def _sampled_extras(self, draw: Draw) -> dict[str, float]:
        if self._model is None:
            return {}  # never configured: the default, the energy register alone
        values = {"Current.Import": draw.amps, "Power.Active.Import": draw.watts, "Voltage": VOLTS}
        return {m: values[m] for m in self._model.sampled_measurands if m in values}

    def _charging_state(self, conn: Connector) -> str:
        return "SuspendedEVSE" if self.draw(conn).amps <= 0 else "Charging"

    async def apply_charging_limits(self) -> None:
        """After the profiles changed (or a schedule moved on): report each transaction whose
        charging state changed (1.6 StatusNotification SuspendedEVSE / Charging; 2.x
        TransactionEvent Updated, ChargingStateChanged), and wait for the next change."""
        self._arm_limit_timer()
        for conn in list(self.connectors.values()):
            tx = conn.transaction
            if tx is None or (wanted := self._charging_state(conn)) == tx.charging_state:
                continue
            tx.charging_state = wanted
            if tx.transaction_id is None:
                continue  # 1.6, StartTransaction unanswered: the status after it says so
            if not self.version.is_2x:
                await self.status(conn.id, wanted)
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
            await self.call("TransactionEvent", payload)

    def _arm_limit_timer(self) -> None:
        """At the next instant a schedule may change a running transaction's limit, apply it."""
        if self._closing or not self.transactions():
            self.profiles.disarm()
        else:
            self.profiles.arm(lambda: self.run_soon("charging limits", self.apply_charging_limits))

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
        conn = self._connector(connector)
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
            ws = self._ws
            if ws is not None:
                with contextlib.suppress(Exception):
                    await ws.close(1000, "reset")
                self._drop(ws, "reset")
            logger.info("%s rebooting (back in %.1f s)", self.id, self.reset_delay)
            await asyncio.sleep(self.reset_delay)
            if self._closing:
                return
            if not await self._open_with_retries_now():
                self._stopped.set()
                return
            await self.boot(reason=boot_reason)
            await self.send_status_all()
        finally:
            self._rebooting = False

    async def _open_with_retries_now(self) -> bool:
        try:
            await self._open()
            return True
        except ConnectFailed as exc:
            logger.warning("%s: reconnect after reset failed: %s", self.id, exc.reason)
            self._event("reconnect_failed", exc.reason)
        return await self._open_with_retries()

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
            if self._ws is None or self.registration != "Accepted":
                continue  # only an accepted station heartbeats (1.6 §4.2, 2.0.1 B02.FR.01)
            try:
                await self.heartbeat()
            except SimulatorError as exc:
                logger.warning("%s: heartbeat failed: %s", self.id, exc)

    def run_soon(self, what: str, then: Callable[[], Awaitable[None]]) -> None:
        """Run ``then`` in the background, logging (not raising) a failure."""
        self._spawn(self._follow_up(what, then), what)
