"""The local event sinks against a real loopback webhook (``http.server`` on a free port).

Every wait is bounded; the deliverers use short backoffs and windows so the file runs in seconds.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from local_stack.event_sinks import (
    EVENTS_FILE_NAME,
    EventEncodingError,
    JsonLinesSink,
    LocalEventSink,
    WebhookDeliverer,
)
from local_stack.ports import free_listen_port

WAIT_S = 5.0
FAST = {"initial_backoff_s": 0.01, "max_backoff_s": 0.05, "timeout_s": 2.0}


def event(n: int, **detail: Any) -> dict[str, Any]:
    return {
        "type": "TransactionEnded",
        "id": f"ev-{n}",
        "chargePointId": "CP1",
        "at": "2026-12-02T06:00:00.000Z",
        "detail": {"n": n, "note": "ünïcode ⚡", **detail},
    }


def wait_until(condition: Callable[[], bool], timeout_s: float = WAIT_S) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.005)
    return condition()


class Webhook:
    """A webhook on a loopback port: ``mode`` is "ok" (200), "error" (500) or "slow" (blocks on
    ``release``, then 200). ``down()`` closes the port; ``up()`` opens it again on the same port."""

    def __init__(self, mode: str = "ok", port: int | None = None) -> None:
        self.mode = mode
        self.port = port or free_listen_port()
        self.release = threading.Event()
        self.entered = threading.Event()  # a request reached the handler
        self.batches: list[list[dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def ids(self) -> list[str]:
        with self._lock:
            return [item["id"] for batch in self.batches for item in batch]

    def up(self) -> None:
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.entered.set()
                if hook.mode == "slow":
                    hook.release.wait(WAIT_S)
                if hook.mode == "error":
                    self.send_response(500)
                else:
                    with hook._lock:
                        hook.batches.append(json.loads(body))
                        hook.headers.append(dict(self.headers))
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = False
        server.handle_error = lambda *args: None  # type: ignore[method-assign]  # the client hung up
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def down(self) -> None:
        self.release.set()
        if self._server is not None and self._thread is not None:
            self._server.shutdown()
            self._server.server_close()  # joins the request threads
            self._thread.join(WAIT_S)
        self._server = self._thread = None
        self.release.clear()


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    hook.up()
    try:
        yield hook
    finally:
        hook.down()


@pytest.fixture
def deliverers() -> Iterator[Callable[..., WebhookDeliverer]]:
    """Makes started deliverers and stops them all, checking that no thread is left."""
    made: list[WebhookDeliverer] = []

    def make(url: str, start: bool = True, **options: Any) -> WebhookDeliverer:
        deliverer = WebhookDeliverer(url, **{**FAST, **options})
        made.append(deliverer)
        if start:
            deliverer.start()
        return deliverer

    yield make
    for deliverer in made:
        deliverer.stop(timeout_s=0.5)
    assert not [t for t in threading.enumerate() if t.name == "events-webhook"]


def test_events_are_delivered_once_in_order_as_json_arrays(webhook: Webhook, deliverers: Any) -> None:
    deliverer = deliverers(webhook.url, batch_size=3)
    for n in range(10):
        deliverer.publish([event(n)])
    deliverer.publish([event(10), event(11)])

    assert wait_until(lambda: deliverer.delivered == 12)
    assert webhook.ids() == [f"ev-{n}" for n in range(12)]
    assert all(1 <= len(batch) <= 3 for batch in webhook.batches)
    assert webhook.batches[0][0] == event(0)
    assert webhook.headers[0]["Content-Type"] == "application/json"
    assert "ocpp-serverless-csms" in webhook.headers[0]["User-Agent"]
    assert deliverer.stats() == {"delivered": 12, "dropped": 0, "retries": 0}


def test_a_down_webhook_gets_the_events_when_it_comes_back(deliverers: Any) -> None:
    hook = Webhook()  # not up: its port refuses connections
    deliverer = deliverers(hook.url, retry_window_s=30.0)
    deliverer.publish([event(1), event(2)])
    deliverer.publish([event(3)])
    try:
        assert wait_until(lambda: deliverer.retries >= 3)
        assert deliverer.delivered == 0
        hook.up()
        assert wait_until(lambda: deliverer.delivered == 3)
        assert hook.ids() == ["ev-1", "ev-2", "ev-3"]
        assert deliverer.dropped == 0
    finally:
        hook.down()


def test_an_erroring_webhook_is_retried_until_it_answers_2xx(webhook: Webhook, deliverers: Any) -> None:
    webhook.mode = "error"
    deliverer = deliverers(webhook.url, retry_window_s=30.0)
    deliverer.publish([event(1)])
    assert wait_until(lambda: deliverer.retries >= 2)
    webhook.mode = "ok"
    assert wait_until(lambda: deliverer.delivered == 1)
    assert webhook.ids() == ["ev-1"]


def test_publish_returns_at_once_while_the_webhook_is_blocked(webhook: Webhook, deliverers: Any) -> None:
    webhook.mode = "slow"
    deliverer = deliverers(webhook.url)
    deliverer.publish([event(0)])
    assert webhook.entered.wait(WAIT_S)
    for n in range(1, 50):
        deliverer.publish([event(n)])
    # publish() came back while the webhook still holds the first request
    assert not webhook.release.is_set()
    assert deliverer.delivered == 0
    webhook.release.set()
    assert wait_until(lambda: deliverer.delivered == 50)
    assert webhook.ids() == [f"ev-{n}" for n in range(50)]


def test_a_batch_older_than_the_retry_window_is_dropped_and_logged(
    webhook: Webhook, deliverers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.mode = "error"
    caplog.set_level(logging.WARNING, logger="local_stack.event_sinks")
    deliverer = deliverers(webhook.url, retry_window_s=0.2, batch_size=2)
    deliverer.publish([event(1), event(2), event(3)])

    assert wait_until(lambda: deliverer.dropped == 3)
    assert deliverer.delivered == 0 and deliverer.retries >= 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("ev-1, ev-2" in message and "HTTP 500" in message for message in errors)
    assert any("ev-3" in message for message in errors)
    # the deliverer goes on with later events
    webhook.mode = "ok"
    deliverer.publish([event(4)])
    assert wait_until(lambda: deliverer.delivered == 1)
    assert webhook.ids() == ["ev-4"]


def test_overflow_drops_the_oldest_queued_events(
    webhook: Webhook, deliverers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="local_stack.event_sinks")
    deliverer = deliverers(webhook.url, start=False, max_queue=3)
    deliverer.publish([event(1), event(2)])
    deliverer.publish([event(3), event(4), event(5)])
    assert deliverer.dropped == 2
    assert any("ev-1, ev-2" in r.getMessage() and "2 oldest" in r.getMessage() for r in caplog.records)

    deliverer.start()
    assert wait_until(lambda: deliverer.delivered == 3)
    assert webhook.ids() == ["ev-3", "ev-4", "ev-5"]


def test_stop_is_bounded_while_the_webhook_is_blocked(
    webhook: Webhook, deliverers: Any, caplog: pytest.LogCaptureFixture
) -> None:
    webhook.mode = "slow"
    deliverer = deliverers(webhook.url, timeout_s=30.0)
    deliverer.publish([event(1)])
    assert webhook.entered.wait(WAIT_S)
    deliverer.publish([event(2), event(3)])

    started = time.monotonic()
    deliverer.stop(timeout_s=0.3)
    assert time.monotonic() - started < 2.0  # 0.3 s plus the grace to cut the request
    assert not [t for t in threading.enumerate() if t.name == "events-webhook"]
    assert not webhook.release.is_set()  # the webhook never answered
    assert deliverer.dropped == 3 and deliverer.delivered == 0
    assert any("3 events not delivered" in r.getMessage() and "ev-1" in r.getMessage() for r in caplog.records)


def test_stop_delivers_what_is_queued_when_the_webhook_answers(webhook: Webhook) -> None:
    deliverer = WebhookDeliverer(webhook.url, **FAST)
    deliverer.publish([event(n) for n in range(5)])  # queued before the thread runs
    deliverer.start()
    deliverer.stop(timeout_s=WAIT_S)
    assert webhook.ids() == [f"ev-{n}" for n in range(5)]
    assert deliverer.dropped == 0


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/hook", "http://", "example.com/hook", "", "https:///path", "http://host/a b"],
)
def test_a_bad_webhook_url_is_refused_with_a_clear_message(url: str) -> None:
    with pytest.raises(ValueError, match="events webhook URL"):
        WebhookDeliverer(url)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        WebhookDeliverer("http://127.0.0.1:1/", batch_size=0)


def test_jsonl_lines_parse_back_to_the_same_events(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / "state" / "nested" / EVENTS_FILE_NAME)  # the directory is created
    sink.publish([event(1), event(2)])
    sink.publish([])
    sink.publish([event(3, energyWh=1234.5)])

    raw = sink.path.read_bytes()
    assert raw.endswith(b"\n") and b"\r" not in raw
    lines = raw.decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [event(1), event(2), event(3, energyWh=1234.5)]
    assert ", " not in lines[0] and "⚡" in lines[0]  # compact, UTF-8


def test_a_bad_event_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / EVENTS_FILE_NAME)
    sink.publish([event(1)])
    before = sink.path.read_bytes()
    with pytest.raises(EventEncodingError, match=r"event 1 \(id ev-2\)"):
        sink.publish([event(3), event(2, when=object())])
    with pytest.raises(EventEncodingError, match="not a JSON object"):
        sink.publish(["nope"])  # type: ignore[list-item]
    assert sink.path.read_bytes() == before


def test_concurrent_publishes_give_whole_lines(tmp_path: Path) -> None:
    sink = JsonLinesSink(tmp_path / EVENTS_FILE_NAME)
    padding = "x" * 5000  # beyond PIPE_BUF, so whole lines are the sink's doing

    def writer(w: int) -> None:
        for b in range(40):
            sink.publish([event(w * 1000 + b * 10 + i, pad=padding) for i in range(3)])

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_S)
    assert not any(thread.is_alive() for thread in threads)

    ns = [json.loads(line)["detail"]["n"] for line in sink.path.read_text("utf-8").splitlines()]
    assert len(ns) == 8 * 40 * 3 and len(set(ns)) == len(ns)
    for start in range(0, len(ns), 3):  # a batch's lines stay together, in order
        assert ns[start + 1] == ns[start] + 1 and ns[start + 2] == ns[start] + 2


def test_local_sink_writes_the_file_then_posts(tmp_path: Path, webhook: Webhook) -> None:
    sink = LocalEventSink(tmp_path, webhook.url)
    sink.start()
    try:
        sink.publish([event(1), event(2)])
        lines = (tmp_path / EVENTS_FILE_NAME).read_text("utf-8").splitlines()
        assert [json.loads(line)["id"] for line in lines] == ["ev-1", "ev-2"]
        assert sink.webhook is not None
        assert wait_until(lambda: webhook.ids() == ["ev-1", "ev-2"])
    finally:
        sink.stop()


def test_local_sink_without_webhook_only_writes_the_file(tmp_path: Path) -> None:
    sink = LocalEventSink(tmp_path)
    sink.start()
    sink.publish([event(1)])
    sink.stop()
    assert sink.webhook is None
    assert json.loads((tmp_path / EVENTS_FILE_NAME).read_text("utf-8")) == event(1)


def test_stop_with_the_webhook_down_gives_up_at_its_deadline(deliverers: Any) -> None:
    hook = Webhook()  # never up
    deliverer = deliverers(hook.url, retry_window_s=30.0, initial_backoff_s=0.05, max_backoff_s=0.05)
    deliverer.publish([event(1), event(2)])
    assert wait_until(lambda: deliverer.retries >= 1)
    started = time.monotonic()
    deliverer.stop(timeout_s=0.3)
    assert time.monotonic() - started < 2.0
    assert deliverer.dropped == 2 and deliverer.delivered == 0
    deliverer.publish([event(3)])  # after stop: counted as dropped, never raises
    assert deliverer.dropped == 3
