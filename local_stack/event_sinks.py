"""Where the local stack's domain events go (DESIGN §11): a JSON-lines file and an optional webhook.

On AWS the events publisher puts events on the stage's EventBridge bus. Locally they are appended
to ``<state dir>/events.jsonl`` (:class:`JsonLinesSink`) and, when ``OCPP_EVENTS_WEBHOOK`` is set,
POSTed to it (:class:`WebhookDeliverer`); :class:`LocalEventSink` does both.

The webhook is best effort but careful: ``publish()`` only enqueues (a slow or dead webhook never
slows the caller), one thread POSTs batches in order, failures are retried with capped, jittered
exponential backoff for ``retry_window_s`` (counted from the batch's first attempt; the head batch
holds the later ones back, so consumers see the order of publication), then the batch is dropped
and its ids logged at ERROR. A full queue drops its oldest events, logged with their ids. Both
sinks snapshot events as JSON when published; an event that is not JSON refuses the whole call
with :class:`EventEncodingError` and nothing is written or queued.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The file of the events in the stack's state directory.
EVENTS_FILE_NAME = "events.jsonl"
USER_AGENT = "ocpp-serverless-csms-events/0.1"


class EventEncodingError(ValueError):
    """An event is not a JSON object (a mapping of JSON values); the message names which one."""


def _event_id(event: Any) -> str:
    return str(event.get("id", "?")) if isinstance(event, Mapping) else "?"


def encode_events(events: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(id, compact JSON) for each event, or :class:`EventEncodingError` for the first that is not JSON."""
    encoded = []
    for index, event in enumerate(events):
        if not isinstance(event, Mapping):
            raise EventEncodingError(f"event {index} is a {type(event).__name__}, not a JSON object")
        try:
            text = json.dumps(event, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise EventEncodingError(f"event {index} (id {_event_id(event)}) is not JSON: {exc}") from exc
        encoded.append((_event_id(event), text))
    return encoded


class JsonLinesSink:
    """Appends events to a file, one compact JSON object per line; thread-safe, one write per publish."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        data = "".join(text + "\n" for _, text in encode_events(events)).encode("utf-8")
        if not data:
            return
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # O_APPEND and one unbuffered write: lines of concurrent writers (even other processes)
            # never interleave, and nothing stays in a userspace buffer.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                while view:  # a regular file only writes short when the disk is full
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)


def validate_webhook_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"events webhook URL must be http:// or https:// with a host, got {url!r}")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise ValueError(f"events webhook URL must not contain spaces or control characters, got {url!r}")
    return url


class _Sockets:
    """The sockets of the attempt under way, so that ``stop()`` can cut it short (shutdown wakes a
    blocked connect or recv on Linux and macOS; a socket timeout alone only bounds each recv)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.aborted = False

    def add(self, sock: socket.socket) -> None:
        with self._lock:
            if self.aborted:
                raise OSError("the events webhook deliverer is stopping")
            self._open.add(sock)

    def clear(self) -> None:
        with self._lock:
            self._open.clear()

    def abort(self) -> None:
        with self._lock:
            self.aborted = True
            sockets = list(self._open)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:  # not connected yet or already closed: nothing to wake
                pass

    def connect(self, address: tuple[str, int], timeout: Any = None, source: Any = None) -> socket.socket:
        """``socket.create_connection`` that registers each socket before it connects."""
        host, port = address
        error = OSError(f"cannot resolve {host!r}")
        for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            sock = socket.socket(family, kind, proto)
            try:
                self.add(sock)
                if isinstance(timeout, int | float):
                    sock.settimeout(timeout)
                if source:
                    sock.bind(source)
                sock.connect(sockaddr)
                return sock
            except OSError as exc:
                sock.close()
                error = exc
        raise error

    def opener(self) -> urllib.request.OpenerDirector:
        sockets = self

        def tracked(base: type[http.client.HTTPConnection]) -> type[http.client.HTTPConnection]:
            class Tracked(base):  # type: ignore[valid-type,misc]
                def connect(self) -> None:
                    self._create_connection = sockets.connect
                    super().connect()
                    # https: the TLS socket replaces the plain one (a handshake under way is
                    # only bounded by the attempt's timeout)
                    sockets.add(self.sock)

            return Tracked

        class Http(urllib.request.HTTPHandler):
            def http_open(self, req: Any) -> Any:
                return self.do_open(tracked(http.client.HTTPConnection), req)

        class Https(urllib.request.HTTPSHandler):
            def https_open(self, req: Any) -> Any:
                return self.do_open(tracked(http.client.HTTPSConnection), req, context=self._context)  # type: ignore[attr-defined]

        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args: Any, **kwargs: Any) -> None:
                return None  # a 3xx is not a delivery: retried like any non-2xx

        return urllib.request.build_opener(Http, Https, NoRedirect)


class WebhookDeliverer:
    """POSTs events to a webhook as JSON arrays from one background thread, in order, with retries."""

    def __init__(
        self,
        url: str,
        *,
        max_queue: int = 10_000,
        batch_size: int = 100,
        retry_window_s: float = 600.0,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        timeout_s: float = 5.0,
    ) -> None:
        self.url = validate_webhook_url(url)
        limits = {
            "max_queue": max_queue >= 1,
            "batch_size": batch_size >= 1,
            "retry_window_s": retry_window_s > 0,
            "timeout_s": timeout_s > 0,
            "initial_backoff_s": 0 <= initial_backoff_s <= max_backoff_s,
        }
        if bad := [name for name, ok in limits.items() if not ok]:
            raise ValueError(f"events webhook: {', '.join(bad)} out of range (sizes >= 1, times > 0, 0 <= backoffs)")
        self.max_queue, self.batch_size = max_queue, batch_size
        self.retry_window_s, self.timeout_s = retry_window_s, timeout_s
        self.initial_backoff_s, self.max_backoff_s = initial_backoff_s, max_backoff_s
        self._cond = threading.Condition()
        self._queue: deque[tuple[str, str]] = deque()
        self._inflight: list[tuple[str, str]] = []
        self._thread: threading.Thread | None = None
        self._deadline: float | None = None  # set by stop()
        self._wakeups = 0  # stop() cuts a backoff short once
        self._sockets = _Sockets()
        self._opener = self._sockets.opener()
        self.delivered = 0
        self.dropped = 0
        self.retries = 0

    def stats(self) -> dict[str, int]:
        with self._cond:
            return {"delivered": self.delivered, "dropped": self.dropped, "retries": self.retries}

    def start(self) -> None:
        with self._cond:
            if self._thread is not None:
                raise RuntimeError("the events webhook deliverer can only be started once")
            self._thread = threading.Thread(target=self._run, name="events-webhook", daemon=True)
        self._thread.start()

    def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Enqueues the events and returns at once; a full queue drops its oldest events."""
        encoded = encode_events(events)
        with self._cond:
            if self._deadline is not None:
                self.dropped += len(encoded)
                logger.warning("events webhook stopped: %d events not sent: %s", len(encoded), _ids(encoded))
                return
            self._queue.extend(encoded)
            overflow = [self._queue.popleft() for _ in range(len(self._queue) - self.max_queue)]
            self.dropped += len(overflow)
            self._cond.notify_all()
        if overflow:
            logger.warning(
                "events webhook queue full (%d): dropped the %d oldest: %s",
                self.max_queue,
                len(overflow),
                _ids(overflow),
            )

    def stop(self, timeout_s: float = 2.0) -> None:
        """Delivers what is queued within ``timeout_s`` (plus a short grace to cut an attempt), then stops."""
        with self._cond:
            if self._deadline is None:
                self._deadline = time.monotonic() + max(timeout_s, 0.0)
                self._wakeups += 1
                self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(max(timeout_s, 0.0))
            if thread.is_alive():
                self._sockets.abort()
                with self._cond:
                    self._cond.notify_all()
                thread.join(1.0)
            if thread.is_alive():
                logger.error("events webhook thread did not stop within %.1fs", timeout_s + 1.0)
        with self._cond:
            left = [*self._inflight, *self._queue]
            self._inflight, self._queue = [], deque()
            self.dropped += len(left)
        if left:
            logger.warning("events webhook stopped with %d events not delivered: %s", len(left), _ids(left))

    # The delivery thread.

    def _remaining(self) -> float | None:
        """Seconds left before the stop deadline (None: not stopping)."""
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            if not self._deliver(batch):
                return

    def _next_batch(self) -> list[tuple[str, str]] | None:
        with self._cond:
            while not self._queue:
                if self._deadline is not None or self._sockets.aborted:
                    return None
                self._cond.wait()
            remaining = self._remaining()
            if self._sockets.aborted or (remaining is not None and remaining <= 0):
                return None
            count = min(self.batch_size, len(self._queue))
            self._inflight = [self._queue.popleft() for _ in range(count)]
            return self._inflight

    def _deliver(self, batch: list[tuple[str, str]]) -> bool:
        """Tries the batch until delivered or too old (True), or until stopped (False, left in flight)."""
        body = ("[" + ",".join(text for _, text in batch) + "]").encode("utf-8")
        first_attempt = time.monotonic()
        attempt = 0
        while True:
            remaining = self._remaining()
            if self._sockets.aborted or (remaining is not None and remaining <= 0):
                return False
            timeout = self.timeout_s if remaining is None else max(min(self.timeout_s, remaining), 0.001)
            failure = self._post(body, timeout)
            with self._cond:
                if failure is None:
                    self.delivered += len(batch)
                    self._inflight = []
                    return True
                if self._sockets.aborted:
                    return False
                if time.monotonic() - first_attempt >= self.retry_window_s:
                    self.dropped += len(batch)
                    self._inflight = []
                    logger.error(
                        "events webhook %s: dropped %d events after %d attempts within %gs (%s): %s",
                        self.url, len(batch), attempt + 1, self.retry_window_s, failure, _ids(batch),
                    )  # fmt: skip
                    return True
                self.retries += 1
                attempt += 1
                delay = self._backoff(attempt)
                delay = min(delay, max(first_attempt + self.retry_window_s - time.monotonic(), 0.0))
                (logger.warning if attempt == 1 else logger.debug)(
                    "events webhook %s: %d events not delivered (%s); retry %d in %.2fs",
                    self.url, len(batch), failure, attempt, delay,
                )  # fmt: skip
                self._wait(delay)

    def _backoff(self, attempt: int) -> float:
        """Capped exponential backoff with "equal jitter": half fixed, half random, so retries of
        several stacks spread out but never come back at once."""
        ceiling = min(self.max_backoff_s, self.initial_backoff_s * 2.0 ** min(attempt - 1, 60))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _wait(self, delay: float) -> None:
        """Sleeps ``delay`` (the condition's lock held), woken early once by stop() and never past its deadline."""
        wakeups = self._wakeups
        end = time.monotonic() + delay
        while not self._sockets.aborted and self._wakeups == wakeups:
            remaining = self._remaining()
            left = end - time.monotonic() if remaining is None else min(end - time.monotonic(), remaining)
            if left <= 0:
                return
            self._cond.wait(left)

    def _post(self, body: bytes, timeout: float) -> str | None:
        """One attempt: None when the webhook answered 2xx, else why not."""
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read(65536)
                status = response.status
        except urllib.error.HTTPError as exc:
            exc.close()
            return f"HTTP {exc.code}"
        except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, bad answer
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            return f"{type(reason).__name__}: {reason}"
        finally:
            self._sockets.clear()
        return None if 200 <= status < 300 else f"HTTP {status}"


def _ids(encoded: Sequence[tuple[str, str]]) -> str:
    return ", ".join(event_id for event_id, _ in encoded)


class LocalEventSink:
    """The local stack's events: ``<state_dir>/events.jsonl``, then the webhook if one is configured.

    A file error propagates before the webhook sees the events, so a caller that retries the
    batch loses nothing (consumers dedupe by ``id``)."""

    def __init__(self, state_dir: Path, webhook_url: str | None = None) -> None:
        self.file = JsonLinesSink(Path(state_dir) / EVENTS_FILE_NAME)
        self.webhook = WebhookDeliverer(webhook_url) if webhook_url else None

    def start(self) -> None:
        if self.webhook is not None:
            self.webhook.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        if self.webhook is not None:
            self.webhook.stop(timeout_s)

    def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        self.file.publish(events)
        if self.webhook is not None:
            self.webhook.publish(events)
