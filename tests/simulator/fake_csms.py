"""A tiny CSMS for the simulator's tests: a websockets server that answers every CALL.

It answers charger calls with hand-written schema-valid responses (a schema-built minimal
one for the rest), records every frame, checks each frame the simulator sends against the
official schemas (``violations`` lists the failures), and can send CSMS-initiated calls or
raw text to a connected charger. Runnable on its own for load runs:
``python -m tests.simulator.fake_csms --port 9000``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from local_stack.ports import free_port
from ocpp_core.errors import OcppError
from ocpp_core.framing import Call, CallError, CallResult, FrameError, parse_frame, serialize_call, serialize_result
from ocpp_core.schemas import SchemaKind, validate_request, validate_response
from ocpp_core.timefmt import format_ms
from ocpp_core.versions import OcppVersion

from .schema_samples import minimal

#: ``responder(cp, version, unique_id, payload)``: a dict to answer with, raw text to send
#: instead, or None to leave the call unanswered.
Responder = Callable[[str, OcppVersion, str, dict[str, Any]], dict[str, Any] | str | None]


def _now() -> str:
    return format_ms(time.time_ns() // 1_000_000)


@dataclass
class Received:
    cp: str
    version: OcppVersion
    text: str
    frame: Any = None


@dataclass
class _Link:
    ws: ServerConnection
    version: OcppVersion
    pending: dict[str, tuple[str | None, asyncio.Future[Any]]] = field(default_factory=dict)


class FakeCsms:
    def __init__(
        self,
        *,
        password: str | None = None,
        refuse_status: int | None = None,
        boot_status: str = "Accepted",
        heartbeat_interval: int = 300,
        auth_status: str = "Accepted",
        responders: dict[str, Responder] | None = None,
        record: bool = True,
        port: int | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.password = password
        self.refuse_status = refuse_status
        self.boot_status = boot_status
        self.heartbeat_interval = heartbeat_interval
        self.auth_status = auth_status
        self.responders: dict[str, Responder] = dict(responders or {})
        self.record = record
        self.port = port or free_port()
        self.ssl_context = ssl_context
        self.url = f"{'wss' if ssl_context else 'ws'}://127.0.0.1:{self.port}/ocpp"
        self.received: list[Received] = []
        self.violations: list[str] = []
        self.connections_seen: list[tuple[str, str]] = []
        self.calls_answered = 0
        self._links: dict[str, _Link] = {}
        self._changed = asyncio.Condition()
        self._tx_ids = itertools.count(1)
        self._server: Server | None = None

    # -- lifecycle

    async def start(self) -> FakeCsms:
        self._server = await serve(
            self._handle,
            "127.0.0.1",
            self.port,
            subprotocols=[Subprotocol(v.value) for v in (OcppVersion.V21, OcppVersion.V201, OcppVersion.V16)],
            process_request=self._process_request,
            compression=None,
            ssl=self.ssl_context,
        )
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> FakeCsms:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        if self.refuse_status is not None:
            return connection.respond(self.refuse_status, "refused by the fake CSMS\n")
        if self.password is not None:
            cp = unquote(request.path.rsplit("/", 1)[-1])
            expected = "Basic " + base64.b64encode(f"{cp}:{self.password}".encode()).decode()
            if request.headers.get("Authorization") != expected:
                response = connection.respond(401, "unauthorized\n")
                response.headers["WWW-Authenticate"] = 'Basic realm="ocpp"'
                return response
        return None

    # -- connections

    async def _handle(self, ws: ServerConnection) -> None:
        cp = unquote(ws.request.path.rsplit("/", 1)[-1]) if ws.request else "?"
        version = OcppVersion(str(ws.subprotocol))
        link = _Link(ws, version)
        async with self._changed:
            self._links[cp] = link
            self.connections_seen.append((cp, version.value))
            self._changed.notify_all()
        try:
            async for text in ws:
                if isinstance(text, bytes):
                    self.violations.append(f"{cp}: binary frame")
                    continue
                await self._on_text(cp, link, text)
        except ConnectionClosed:
            pass
        finally:
            async with self._changed:
                if self._links.get(cp) is link:
                    del self._links[cp]
                for _, future in link.pending.values():
                    if not future.done():
                        future.set_exception(ConnectionError("charger disconnected"))
                self._changed.notify_all()

    async def _on_text(self, cp: str, link: _Link, text: str) -> None:
        version = link.version
        try:
            frame = parse_frame(text, version)
        except FrameError as exc:
            self.violations.append(f"{cp}: unparsable frame {text[:200]}: {exc.error.description}")
            return
        if self.record:
            async with self._changed:
                self.received.append(Received(cp, version, text, frame))
                self._changed.notify_all()
        if isinstance(frame, Call):
            await self._answer(cp, link, frame)
        elif isinstance(frame, (CallResult, CallError)):
            entry = link.pending.pop(frame.unique_id, None)
            if entry is None:
                self.violations.append(f"{cp}: answer to no call: {text[:200]}")
                return
            action, future = entry
            if isinstance(frame, CallResult) and action is not None:
                try:
                    validate_response(version, action, frame.payload)
                except OcppError as exc:
                    self.violations.append(f"{cp}: {action} response fails the schema: {exc.description}: {text}")
            if not future.done():
                future.set_result(frame)

    async def _answer(self, cp: str, link: _Link, call: Call) -> None:
        version = link.version
        try:
            validate_request(version, call.action, call.payload)
        except OcppError as exc:
            self.violations.append(f"{cp}: {call.action} request fails the schema: {exc.description}")
        responder = self.responders.get(call.action)
        answer: dict[str, Any] | str | None
        if responder is not None:
            answer = responder(cp, version, call.unique_id, call.payload)
        else:
            answer = self._default_answer(version, call.action, call.payload)
        if answer is None:
            return
        text = answer if isinstance(answer, str) else serialize_result(call.unique_id, answer)
        self.calls_answered += 1
        try:
            await link.ws.send(text)
        except ConnectionClosed:
            pass

    def _default_answer(self, version: OcppVersion, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        v16 = version is OcppVersion.V16
        if action == "BootNotification":
            return {"status": self.boot_status, "currentTime": _now(), "interval": self.heartbeat_interval}
        if action == "Heartbeat":
            return {"currentTime": _now()}
        if action == "Authorize":
            return {"idTagInfo": {"status": self.auth_status}} if v16 else {"idTokenInfo": {"status": self.auth_status}}
        if action == "StartTransaction":
            return {"transactionId": next(self._tx_ids), "idTagInfo": {"status": self.auth_status}}
        if action == "TransactionEvent" and "idToken" in payload:
            return {"idTokenInfo": {"status": self.auth_status}}
        if action in ("StatusNotification", "MeterValues", "StopTransaction", "TransactionEvent", "NotifyReport"):
            return {}
        return minimal(version, action, SchemaKind.RESPONSE)

    # -- what a test drives

    async def wait_connected(self, cp: str, timeout: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: cp in self._links), timeout)

    async def wait_disconnected(self, cp: str, timeout: float = 5.0) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: cp not in self._links), timeout)

    def is_connected(self, cp: str) -> bool:
        return cp in self._links

    async def call(self, cp: str, action: str, payload: Any, timeout: float = 5.0) -> CallResult | CallError:
        """Send a CSMS CALL to ``cp`` (waiting for its connection) and return the answer frame."""
        await self.wait_connected(cp, timeout)
        link = self._links[cp]
        unique_id = str(uuid.uuid4())
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        link.pending[unique_id] = (action, future)
        await link.ws.send(serialize_call(unique_id, action, payload))
        return await asyncio.wait_for(future, timeout)

    async def call_raw(
        self, cp: str, text: str, unique_id: str, action: str | None = None, timeout: float = 5.0
    ) -> CallResult | CallError:
        """Send arbitrary text and wait for the answer carrying ``unique_id``."""
        await self.wait_connected(cp, timeout)
        link = self._links[cp]
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        link.pending[unique_id] = (action, future)
        await link.ws.send(text)
        return await asyncio.wait_for(future, timeout)

    async def send_raw(self, cp: str, text: str) -> None:
        await self.wait_connected(cp)
        await self._links[cp].ws.send(text)

    async def close_connection(self, cp: str, code: int = 1011, reason: str = "fake CSMS closing") -> None:
        link = self._links.get(cp)
        if link is not None:
            await link.ws.close(code, reason)

    def frames(self, cp: str) -> list[Any]:
        return [r.frame for r in self.received if r.cp == cp]

    def actions(self, cp: str) -> list[str]:
        """The actions of the CALLs ``cp`` sent, in order."""
        return [r.frame.action for r in self.received if r.cp == cp and isinstance(r.frame, Call)]

    def calls_of(self, cp: str, action: str) -> list[dict[str, Any]]:
        return [
            r.frame.payload
            for r in self.received
            if r.cp == cp and isinstance(r.frame, Call) and r.frame.action == action
        ]

    async def wait_for_call(self, cp: str, action: str, count: int = 1, timeout: float = 5.0) -> dict[str, Any]:
        """The ``count``-th CALL of ``action`` from ``cp``, once it arrived."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.calls_of(cp, action)) >= count), timeout)
        return self.calls_of(cp, action)[count - 1]


async def _serve_forever(port: int) -> None:
    csms = FakeCsms(port=port, record=False)
    await csms.start()
    print(f"fake CSMS on {csms.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await csms.stop()
        print(json.dumps({"answered": csms.calls_answered, "violations": len(csms.violations)}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="A fake CSMS that answers every CALL (for simulator tests and load runs)"
    )
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    try:
        asyncio.run(_serve_forever(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
