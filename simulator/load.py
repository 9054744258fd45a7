"""Load mode: many stations in one process, each sending a realistic mix of calls.

Each station connects (ramped over ``ramp_up`` seconds, at most ``connect_concurrency``
handshakes at a time), boots, reports its connectors, then sends calls at ``rate_per_charger``
per second with +-50 % jitter until the end of the run: mostly Heartbeat, some
StatusNotification and MeterValues, and charging sessions (Authorize, start, meter values,
stop). Stations answer the CSMS's calls and reconnect after a disconnect, as in scenario mode.

Per-station overhead is kept small (no compression, a lazily built device model, one reader
task and one traffic task), so a thousand stations fit in one process on two cores.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import resource
import ssl
import sys
import time
from array import array
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import process_gc
from ocpp_core.schemas import compile_ahead
from ocpp_core.versions import FREQUENT_ACTIONS, OcppVersion

from . import messages
from .errors import ConnectFailed, SimulatorError
from .station import DEFAULT_URL, Station

logger = logging.getLogger(__name__)

ALL_VERSIONS: tuple[OcppVersion, ...] = (OcppVersion.V16, OcppVersion.V201, OcppVersion.V21)


@dataclass(frozen=True, slots=True)
class LoadConfig:
    chargers: int = 10
    #: Calls per second per charger (on average; each gap is jittered by +-50 %).
    rate_per_charger: float = 0.1
    #: Seconds of traffic after the ramp-up.
    duration: float = 60.0
    url: str = DEFAULT_URL
    #: Versions, assigned round-robin (all three for a "mixed" run).
    versions: tuple[OcppVersion, ...] = (OcppVersion.V16,)
    #: Seconds over which the chargers are started, evenly spaced.
    ramp_up: float = 0.0
    id_prefix: str = "LOAD-"
    connect_concurrency: int = 200
    password: str | None = None
    call_timeout: float = 30.0
    id_tag: str = "LOAD-TAG"
    #: Authorize before each session. Without it, sessions start directly (free vend) and a
    #: refused id tag ends the transaction at once, so the transaction path is exercised even
    #: when the CSMS does not know the tag.
    authorize: bool = True
    #: Reconnect after a lost connection (with backoff), like a real station.
    reconnect: bool = True
    #: WebSocket ping interval of each station (None: no pings from our side).
    ping_interval: float | None = 30.0
    #: CA bundle that signs the CSMS's certificate, for wss:// with a private CA.
    ca_file: str | None = None
    seed: int | None = None
    #: A tqdm progress bar on stderr.
    progress: bool = False


@dataclass(slots=True)
class LoadSummary:
    chargers: int
    connected: int
    failed: int
    calls: int
    responses: int
    errors: int
    call_errors: int
    timeouts: int
    disconnects: int
    invalid_responses: int
    not_connected: int
    bad_frames: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    #: the calls sent once every station had started (after the ramp-up): the steady load alone
    steady_calls: int
    steady_p50_ms: float
    steady_p99_ms: float
    calls_per_s: float
    elapsed_s: float
    sessions: int
    auth_refused: int
    csms_calls: int
    per_action: dict[str, int] = field(default_factory=dict)
    per_action_errors: dict[str, int] = field(default_factory=dict)
    connect_errors: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format_text(self) -> str:
        lines = [
            f"chargers        {self.connected} connected / {self.chargers} ({self.failed} failed)",
            f"calls           {self.calls} sent, {self.responses} answered, {self.calls_per_s:.1f} calls/s "
            f"over {self.elapsed_s:.1f} s",
            f"errors          {self.errors} (CALLERROR {self.call_errors}, timeouts {self.timeouts}, "
            f"disconnects {self.disconnects}, invalid responses {self.invalid_responses}, "
            f"not connected {self.not_connected}, bad frames {self.bad_frames})",
            f"latency ms      p50 {self.p50_ms:.1f}  p95 {self.p95_ms:.1f}  p99 {self.p99_ms:.1f}  "
            f"max {self.max_ms:.1f}",
            f"after ramp-up   {self.steady_calls} calls: p50 {self.steady_p50_ms:.1f}  p99 {self.steady_p99_ms:.1f}",
            f"sessions        {self.sessions} started, {self.auth_refused} refused authorizations",
            f"CSMS calls      {self.csms_calls} answered",
        ]
        if self.per_action:
            per = ", ".join(
                f"{action} {count}"
                + (f" ({self.per_action_errors[action]} failed)" if action in self.per_action_errors else "")
                for action, count in sorted(self.per_action.items(), key=lambda kv: -kv[1])
            )
            lines.append(f"per action      {per}")
        for reason, count in sorted(self.connect_errors.items(), key=lambda kv: -kv[1]):
            lines.append(f"connect failed  {count} x {reason}")
        return "\n".join(lines)


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of already sorted values (0.0 when there are none)."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


class _Stats:
    """Counters shared by every station of a run (one event loop: no locking needed)."""

    def __init__(self) -> None:
        self.latencies = array("d")
        #: when each answered call was sent (monotonic seconds), in the order of ``latencies``
        self.sent_at = array("d")
        self.sent: Counter[str] = Counter()
        self.failed_by_action: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()
        self.events: Counter[str] = Counter()
        self.connect_errors: Counter[str] = Counter()
        self.connected = 0
        self.failed = 0
        self.sessions = 0
        self.auth_refused = 0

    def on_call(self, action: str, seconds: float, outcome: str) -> None:
        self.sent[action] += 1
        self.outcomes[outcome] += 1
        if outcome in ("ok", "callerror", "invalid_response"):
            # The CSMS answered: that is a latency, whatever the answer was.
            self.latencies.append(seconds)
            self.sent_at.append(time.monotonic() - seconds)
        if outcome != "ok":
            self.failed_by_action[action] += 1

    def on_event(self, kind: str, detail: str) -> None:
        self.events[kind] += 1

    @property
    def calls(self) -> int:
        return sum(self.sent.values())

    @property
    def errors(self) -> int:
        failed_calls = sum(n for outcome, n in self.outcomes.items() if outcome != "ok")
        return failed_calls + self.events["bad_frame"] + self.events["disconnect"]


def raise_open_file_limit(needed: int) -> None:
    """Raise RLIMIT_NOFILE's soft limit towards ``needed`` (one socket per station)."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:
        logger.warning("could not raise the open file limit to %d: %s", target, exc)
    if target < needed:
        logger.warning("open file limit is %d, below the %d this run needs", target, needed)


def warm_up_schemas(versions: tuple[OcppVersion, ...]) -> None:
    """Compile the validators the run needs before the clock starts: compiled on first use, they
    would block the event loop in the middle of the ramp-up and show as latency."""
    for version in versions:
        compile_ahead(version, FREQUENT_ACTIONS[version])


async def _sleep_until(when: float) -> None:
    delay = when - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


class _Charger:
    """The traffic of one station: a small state machine, one call per tick."""

    def __init__(self, station: Station, config: LoadConfig, stats: _Stats, rng: random.Random):
        self.station = station
        self.config = config
        self.stats = stats
        self.rng = rng
        self.next_call: str | None = None  # a step that must follow the previous one

    async def tick(self) -> None:
        st = self.station
        conn = st.connectors[1]
        if self.next_call == "start":
            self.next_call = None
            if conn.busy or st.reservation_blocks(conn, self.config.id_tag):
                return
            tx = await st.start_transaction(1, self.config.id_tag)
            self.stats.sessions += 1
            if tx.authorization not in (None, "Accepted"):
                self.stats.auth_refused += 1
                self.next_call = "deauthorized"
            else:
                self.next_call = "charging"
            return
        if self.next_call == "deauthorized":
            self.next_call = "available"
            if conn.transaction is not None:
                await st.stop_transaction(1, reason="DeAuthorized")
            return
        if self.next_call in ("charging", "available"):
            status = "Charging" if self.next_call == "charging" and conn.transaction is not None else "Available"
            self.next_call = None
            await st.status(1, status)
            return
        r = self.rng.random()
        if conn.transaction is not None:
            if r < 0.25:
                await st.heartbeat()
            elif r < 0.85:
                await st.meter_values(1)
            else:
                self.next_call = "available"
                await st.stop_transaction(1, reason="Local")
            return
        if r < 0.70 or conn.starting or not conn.operative or st.reservation_blocks(conn, self.config.id_tag):
            await st.heartbeat()
        elif r < 0.80:
            await st.status(1, "Available")
        elif r < 0.85:
            await st.meter_values(1)
        elif self.config.authorize:
            response = await st.authorize(self.config.id_tag)
            if messages.authorization_status(st.version, response) == "Accepted":
                self.next_call = "start"
            else:
                self.stats.auth_refused += 1
        else:
            self.next_call = "start"
            await self.tick()

    async def traffic(self, deadline: float) -> None:
        mean_gap = 1.0 / self.config.rate_per_charger
        # A random phase, so stations started together do not call in step.
        next_at = time.monotonic() + self.rng.uniform(0, mean_gap)
        while next_at < deadline and not self.station.stopped:
            await _sleep_until(next_at)
            try:
                await self.tick()
            except SimulatorError:
                pass  # counted by the station's on_call
            except ValueError as exc:  # the CSMS changed our state meanwhile (remote start/stop)
                logger.debug("%s: %s", self.station.id, exc)
                self.next_call = None
            # Absolute schedule: a slow answer does not lower the rate.
            next_at = max(next_at + self.rng.uniform(0.5, 1.5) * mean_gap, time.monotonic())


async def _run_charger(
    index: int,
    config: LoadConfig,
    stats: _Stats,
    start: float,
    deadline: float,
    connect_slots: asyncio.Semaphore,
    rng: random.Random,
    ssl_context: ssl.SSLContext | None,
) -> None:
    width = max(5, len(str(config.chargers)))
    version = config.versions[index % len(config.versions)]
    station = Station(
        f"{config.id_prefix}{index + 1:0{width}d}",
        version,
        config.url,
        password=config.password,
        call_timeout=config.call_timeout,
        ping_interval=config.ping_interval,
        auto_reconnect=config.reconnect,
        ssl_context=ssl_context,
        on_call=stats.on_call,
        on_event=stats.on_event,
    )
    if config.chargers > 1 and config.ramp_up > 0:
        await _sleep_until(start + config.ramp_up * index / config.chargers)
    if time.monotonic() >= deadline:
        return
    async with connect_slots:
        try:
            await station.connect()
        except ConnectFailed as exc:
            stats.failed += 1
            stats.connect_errors[exc.reason] += 1
            logger.debug("%s: %s", station.id, exc)
            return
    stats.connected += 1
    try:
        try:
            await station.boot()
            await station.send_status_all()
        except SimulatorError:
            pass  # counted; a station that could not boot keeps trying its traffic (and failing)
        await _Charger(station, config, stats, rng).traffic(deadline)
    finally:
        await station.close(1000, "load run finished")


async def _progress(stats: _Stats, start: float, total: float) -> None:
    from tqdm import tqdm  # type: ignore[import-untyped]  # imported here: only load runs with a bar need it

    bar_format = "load {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} s{postfix}"
    with tqdm(total=round(total), file=sys.stderr, dynamic_ncols=True, leave=False, bar_format=bar_format) as bar:
        while True:
            elapsed = min(time.monotonic() - start, total)
            bar.n = round(elapsed)
            bar.set_postfix(
                connected=stats.connected, failed=stats.failed, calls=stats.calls, errors=stats.errors, refresh=False
            )
            bar.refresh()
            await asyncio.sleep(0.5)


async def run_load(config: LoadConfig) -> LoadSummary:
    """Run a load test and return its summary. Bounded by ramp-up + duration + call timeout."""
    if config.chargers < 1 or config.rate_per_charger <= 0 or config.duration <= 0:
        raise ValueError("chargers, rate_per_charger and duration must be positive")
    if not config.versions:
        raise ValueError("at least one OCPP version is needed")
    raise_open_file_limit(config.chargers + 256)
    warm_up_schemas(config.versions)
    # a pause of this process shows as latency of every call in flight
    process_gc.install()
    # One TLS context for every station: it is shared safely and costly to build.
    ssl_context = ssl.create_default_context(cafile=config.ca_file) if config.ca_file else None
    stats = _Stats()
    rng = random.Random(config.seed)
    connect_slots = asyncio.Semaphore(max(1, config.connect_concurrency))
    start = time.monotonic()
    deadline = start + config.ramp_up + config.duration
    progress = asyncio.create_task(_progress(stats, start, deadline - start)) if config.progress else None
    tasks = [
        asyncio.create_task(
            _run_charger(i, config, stats, start, deadline, connect_slots, random.Random(rng.random()), ssl_context),
            name=f"charger {i}",
        )
        for i in range(config.chargers)
    ]
    try:
        # Everything ends at the deadline; allow the last calls their timeout, then the closes.
        done, pending = await asyncio.wait(tasks, timeout=deadline - start + config.call_timeout + 15)
        for task in pending:
            task.cancel()
        if pending:
            logger.warning("%d chargers did not finish in time and were cancelled", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                logger.error("charger task failed", exc_info=task.exception())
    finally:
        if progress is not None:
            progress.cancel()
            await asyncio.gather(progress, return_exceptions=True)
    elapsed = min(time.monotonic(), deadline) - start
    return _summary(config, stats, elapsed, start + config.ramp_up)


def _summary(config: LoadConfig, stats: _Stats, elapsed: float, steady_from: float) -> LoadSummary:
    latencies = sorted(stats.latencies)
    ms = [v * 1000.0 for v in latencies]
    steady = sorted(v * 1000.0 for v, sent in zip(stats.latencies, stats.sent_at, strict=True) if sent >= steady_from)
    outcomes = stats.outcomes
    return LoadSummary(
        chargers=config.chargers,
        connected=stats.connected,
        failed=stats.failed,
        calls=stats.calls,
        responses=outcomes["ok"],
        errors=stats.errors,
        call_errors=outcomes["callerror"],
        timeouts=outcomes["timeout"],
        disconnects=stats.events["disconnect"],
        invalid_responses=outcomes["invalid_response"],
        not_connected=outcomes["not_connected"],
        bad_frames=stats.events["bad_frame"],
        p50_ms=round(percentile(ms, 50), 2),
        p95_ms=round(percentile(ms, 95), 2),
        p99_ms=round(percentile(ms, 99), 2),
        max_ms=round(ms[-1], 2) if ms else 0.0,
        steady_calls=len(steady),
        steady_p50_ms=round(percentile(steady, 50), 2),
        steady_p99_ms=round(percentile(steady, 99), 2),
        calls_per_s=round(stats.calls / elapsed, 2) if elapsed > 0 else 0.0,
        elapsed_s=round(elapsed, 2),
        sessions=stats.sessions,
        auth_refused=stats.auth_refused,
        csms_calls=stats.events["csms_call"],
        per_action=dict(stats.sent),
        per_action_errors=dict(stats.failed_by_action),
        connect_errors=dict(stats.connect_errors),
    )
