"""The OCPP-J calls of one station: the ones it sends, matched to their answers, and the
ones it receives, answered through the handlers.

The station sends CALLs one at a time, as OCPP-J requires (1.6 §4.1.1, 2.0.1 part 4 §4.1.1:
"a Charging Station SHALL NOT send a CALL until the previous one was answered"):
:meth:`Calls.call` takes a lock, so concurrent callers wait their turn, and the answer is the
CALLRESULT / CALLERROR with the call's unique id. Each frame read from the CSMS comes to
:meth:`Calls.receive`, which answers a CSMS CALL at once, independently of our outstanding
call, with the handler of :mod:`simulator.handlers`; what the request makes the station do
afterwards (start a transaction, reboot, send a report) runs as a follow-up once the answer
is out.

Every payload is validated against the official schema before it is sent (a frame the
simulator emits that the CSMS refuses is the CSMS's problem, never ours), and every answer
the CSMS gives is validated as it comes.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

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
from ocpp_core.versions import CHARGER_INITIATED, CSMS_INITIATED

from .errors import CallErrorReceived, CallTimeout, ConnectionLost, InvalidRequest, InvalidResponse, NotConnected
from .handlers import handler_for
from .ports import FollowUp, Payload, StationPort
from .transport import EventCallback, Reply, Transport

logger = logging.getLogger(__name__)

#: ``on_call(action, seconds, outcome)``, outcome one of :data:`CALL_OUTCOMES`.
CallCallback = Callable[[str, float, str], None]

CALL_OUTCOMES = ("ok", "callerror", "timeout", "disconnected", "invalid_response", "not_connected")


@dataclass(slots=True)
class _Pending:
    unique_id: str
    action: str
    future: asyncio.Future[Payload]


class Calls:
    """The calls ``station`` sends and receives over ``transport``.

    ``stopped`` is set once the station stopped for good: a call waiting for the connection
    gives up then. ``on_event`` hears of the frames that are not answers to our calls.
    """

    def __init__(
        self,
        station: StationPort,
        transport: Transport,
        stopped: asyncio.Event,
        *,
        call_timeout: float = 30.0,
        on_call: CallCallback | None = None,
        on_event: EventCallback | None = None,
    ):
        self.station = station
        self.transport = transport
        self.call_timeout = call_timeout
        self.on_call = on_call
        self.on_event = on_event
        #: CSMS calls answered, by action (what the CSMS asked of us).
        self.answered: dict[str, int] = {}
        self._stopped = stopped
        self._lock = asyncio.Lock()
        self._pending: _Pending | None = None

    # ------------------------------------------------------------------ ours

    async def call(self, action: str, payload: Payload, timeout: float | None = None) -> Payload:
        """Send one CALL and return the CALLRESULT payload.

        Raises :class:`InvalidRequest` before sending if ``payload`` fails the schema, and
        :class:`CallErrorReceived`, :class:`CallTimeout`, :class:`ConnectionLost`,
        :class:`NotConnected` or :class:`InvalidResponse` when the call does not succeed.
        Calls wait their turn: only one is outstanding at a time.
        """
        st = self.station
        version = st.version
        if action not in CHARGER_INITIATED[version]:
            raise InvalidRequest(action, f"not a message a charging station sends in {version.value}")
        try:
            # On a copy: the compiled validators fill in schema defaults (fastjsonschema's
            # use_default), and the frame should carry exactly what the caller built.
            validate_request(version, action, copy.deepcopy(payload))
        except OcppError as exc:
            raise InvalidRequest(action, exc.description) from None
        timeout = self.call_timeout if timeout is None else timeout
        async with self._lock:
            if not self.transport.connected and not st.closing:
                # Across a reconnect or a reboot, wait for the connection like a station that
                # queues its messages; give up after the call timeout.
                await self.transport.wait_connected(timeout, unless=self._stopped)
            if not self.transport.connected or st.closing:
                self._record(action, 0.0, "not_connected")
                raise NotConnected(st.id, action)
            unique_id = str(uuid.uuid4())
            future: asyncio.Future[Payload] = asyncio.get_running_loop().create_future()
            self._pending = _Pending(unique_id, action, future)
            started = time.perf_counter()
            try:
                # A connection found closed is dropped, which fails the future (dropped()).
                await self.transport.send(serialize_call(unique_id, action, payload))
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
                # arrives as the future completes, and close() relies on cancelling us.
                async with asyncio.timeout(timeout):
                    result = await future
            except TimeoutError:
                self._record(action, time.perf_counter() - started, "timeout")
                raise CallTimeout(st.id, action, timeout) from None
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
            validate_response(version, action, result)
        except OcppError as exc:
            self._record(action, elapsed, "invalid_response")
            raise InvalidResponse(action, exc.description) from None
        self._record(action, elapsed, "ok")
        return result

    def dropped(self, detail: str) -> None:
        """The connection is gone: fail our outstanding call."""
        pending = self._pending
        if pending is not None and not pending.future.done():
            pending.future.set_exception(ConnectionLost(self.station.id, pending.action, detail))

    def _complete(self, frame: CallResult | CallError) -> None:
        pending = self._pending
        if pending is None or pending.unique_id != frame.unique_id or pending.future.done():
            # Typically the late answer to a call that already timed out.
            logger.warning("%s: answer to no outstanding call (id %s) ignored", self.station.id, frame.unique_id)
            self._event("unmatched", frame.unique_id)
            return
        if isinstance(frame, CallResult):
            pending.future.set_result(frame.payload)
        else:
            pending.future.set_exception(
                CallErrorReceived(pending.action, frame.error_code, frame.error_description, frame.error_details)
            )

    # ------------------------------------------------------------------ theirs

    async def receive(self, text: str, reply: Reply) -> None:
        """One text frame from the CSMS; ``reply`` sends on the connection it came on."""
        st = self.station
        try:
            frame = parse_frame(text, st.version)
        except FrameError as exc:
            logger.warning("%s: bad frame from the CSMS (%s): %.200s", st.id, exc.error.description, text)
            self._event("bad_frame", exc.error.description)
            if exc.unique_id is not None and exc.answerable:
                await reply(serialize_error(exc.unique_id, exc.error, st.version))
            return
        if isinstance(frame, Call):
            await self._answer(frame, reply)
        elif isinstance(frame, (CallResult, CallError)):
            self._complete(frame)
        elif isinstance(frame, Send):
            logger.info("%s: SEND %s from the CSMS ignored", st.id, frame.action)

    async def _answer(self, call: Call, reply: Reply) -> None:
        """Answer one CSMS CALL: CALLRESULT (then its follow-up) or CALLERROR."""
        st = self.station
        version, action = st.version, call.action
        self._event("csms_call", action)
        then: FollowUp | None = None
        try:
            if action not in CSMS_INITIATED[version]:
                if action in CHARGER_INITIATED[version]:
                    raise NotSupportedAction(f"{action} is sent by a charging station, not to one")
                raise NotImplementedAction(f"Unknown action {action}")
            validate_request(version, action, call.payload)
            answer = handler_for(version, action)(st, call.payload)
            try:
                validate_response(version, action, copy.deepcopy(answer.response))
            except OcppError as exc:
                # Our bug: never put an invalid frame on the wire.
                logger.error("%s: our answer to %s fails the schema: %s", st.id, action, exc.description)
                raise InternalError(f"Station could not build a valid {action} response") from None
            text = serialize_result(call.unique_id, answer.response)
            then = answer.then
        except OcppError as exc:
            logger.info("%s: CALLERROR %s to %s: %s", st.id, exc.code(version), action, exc.description)
            text = serialize_error(call.unique_id, exc, version)
        except Exception:
            logger.exception("%s: handler for %s failed", st.id, action)
            text = serialize_error(call.unique_id, InternalError(), version)
        self.answered[action] = self.answered.get(action, 0) + 1
        await reply(text)
        if then is not None:
            st.run_soon(action, then)

    # ------------------------------------------------------------------ callbacks

    def _record(self, action: str, seconds: float, outcome: str) -> None:
        if self.on_call is not None:
            self.on_call(action, seconds, outcome)

    def _event(self, kind: str, detail: str) -> None:
        if self.on_event is not None:
            self.on_event(kind, detail)
