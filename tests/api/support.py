"""Test helpers for the operator API: a fake clock, sequential ids, a request helper, a charger."""

from __future__ import annotations

import io
import json
import pathlib
from dataclasses import dataclass, field
from typing import Any

from csms_cli.main import main as cli_main
from lambdas import lifecycle, message_processor
from lambdas.operator_api import handle
from lambdas.publisher import RecordingPublisher
from lambdas.runtime import Dependencies
from lambdas.settings import Settings
from ocpp_core.config import ProcessorConfig, UnknownChargerPolicy
from ocpp_core.extensions import Extensions
from ocpp_core.memory_store import InMemoryStore
from ocpp_core.ports import StateStore
from tests.fakes import FakeClock, SeqIds

EVENTS = pathlib.Path(__file__).parent / "events"


def load_event(name: str) -> dict[str, Any]:
    """An API Gateway v2 event fixture from ``tests/api/events``."""
    return json.loads((EVENTS / f"{name}.json").read_text())


def make_deps(
    store: StateStore | None = None,
    *,
    clock: FakeClock | None = None,
    settings: Settings | None = None,
    publisher: RecordingPublisher | None = None,
) -> Dependencies:
    settings = settings or Settings(call_timeout_s=30, max_wait_s=5, unknown_chargers=UnknownChargerPolicy.ACCEPT)
    return Dependencies(
        settings=settings,
        store=store or InMemoryStore(),
        publisher=publisher or RecordingPublisher(),
        clock=clock or FakeClock(),
        ids=SeqIds("call"),
        config=ProcessorConfig(unknown_chargers=settings.unknown_chargers),
        extensions=Extensions(),
    )


def event(
    method: str,
    path: str,
    body: Any = None,
    query: dict[str, str] | None = None,
    *,
    raw_body: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API v2 event, as API Gateway sends it."""
    ev: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "&".join(f"{k}={v}" for k, v in (query or {}).items()),
        "headers": {"content-type": "application/json"},
        "requestContext": {"http": {"method": method, "path": path}, "stage": "$default"},
        "isBase64Encoded": False,
    }
    if query:
        ev["queryStringParameters"] = dict(query)
    if raw_body is not None:
        ev["body"] = raw_body
    elif body is not None:
        ev["body"] = json.dumps(body)
    return ev


@dataclass
class Answer:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def request(method: str, path: str, body: Any = None, query: dict[str, str] | None = None, **kw: Any) -> Answer:
    response = handle(event(method, path, body, query, **kw))
    assert response["headers"]["content-type"] == "application/json"
    return Answer(response["statusCode"], json.loads(response["body"]), response["headers"])


def connect(deps: Dependencies, cp: str, protocol: str, connection_id: str = "conn-1") -> None:
    """A charger the bridge saw connect with ``protocol``, recorded by the lifecycle handler."""
    event = {
        "event": "connected",
        "chargePointId": cp,
        "protocol": protocol,
        "connectionId": connection_id,
        "at": deps.clock.now_ms(),
    }
    assert lifecycle.handle(event) == "connected"


def disconnect(deps: Dependencies, cp: str, connection_id: str = "conn-1") -> None:
    event = {"event": "disconnected", "chargePointId": cp, "connectionId": connection_id, "at": deps.clock.now_ms()}
    assert lifecycle.handle(event) == "disconnected"


def from_charger(deps: Dependencies, cp: str, protocol: str, frame: list[Any]) -> Any:
    """The charger sends ``frame`` (CALL, CALLRESULT or CALLERROR) through the message processor."""
    return message_processor.handle(
        {
            "chargePointId": cp,
            "protocol": protocol,
            "connectionId": "conn-1",
            "receivedAt": deps.clock.now_ms(),
            "frame": json.dumps(frame),
        }
    )


def run_cli(api_url: str, *args: str) -> tuple[int, str, str]:
    """The CLI in process against ``api_url`` (quicker than a subprocess for the many small cases):
    exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = cli_main(["--api-url", api_url, *args], out, err)
    return code, out.getvalue(), err.getvalue()
