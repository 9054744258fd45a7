"""Rate limits and small bounded caches. Pure: time comes in as an argument or an injected clock.

* :class:`TokenBucket` paces MQTT CONNECTs: IoT Core allows 500 per second per account and
  one per second per client id (DESIGN §7), so a task restarting with 10,000 chargers must
  not open all their MQTT sessions at once.
* :class:`FailureBackoff` slows down repeated authentication failures of one charger id.
* :class:`TtlCache` is an LRU with expiry, used for registry reads and verified passwords.
"""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Clock = Callable[[], float]


class TokenBucket:
    """A token bucket that hands out reservations: ``reserve()`` returns how long to wait.

    Tokens may go negative, so callers that reserve while the bucket is empty queue up in
    order, each ``1/rate`` seconds after the previous one. ``jitter`` (0..1 of one token's
    interval) is added to throttled reservations only, so a burst of reconnects does not
    land on the broker in lockstep.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Clock = time.monotonic,
        jitter: float = 0.5,
        rng: Callable[[], float] = random.random,
    ):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._clock = clock
        self._jitter = jitter
        self._rng = rng
        self._tokens = float(burst)
        self._last = clock()

    @property
    def tokens(self) -> float:
        return self._tokens

    def reserve(self, now: float | None = None) -> float:
        """Take one token; seconds to wait before using it (0.0 when one is available now)."""
        now = self._clock() if now is None else now
        elapsed = max(0.0, now - self._last)
        self._last = max(self._last, now)
        self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
        self._tokens -= 1.0
        if self._tokens >= 0.0:
            return 0.0
        return -self._tokens / self.rate + self._jitter * self._rng() / self.rate


class FrameRate:
    """A charger's frames per second: a token bucket that refuses rather than queues.

    One per session, so it is slotted and takes the time as an argument (no clock object).
    """

    __slots__ = ("_last", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = now

    def allow(self, now: float) -> bool:
        """Take one token if there is one; False when the charger is over its rate."""
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._last) * self.rate)
        self._last = max(self._last, now)
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class MinInterval(Generic[K]):
    """At most one event per key every ``interval`` seconds (IoT Core: 1 CONNECT/s per client id).

    Remembers at most ``max_keys`` keys (oldest forgotten first), so memory stays bounded.
    """

    def __init__(self, interval: float, *, max_keys: int = 100_000, clock: Clock = time.monotonic):
        self.interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._next: OrderedDict[K, float] = OrderedDict()

    def reserve(self, key: K, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        start = max(now, self._next.pop(key, now))
        self._next[key] = start + self.interval
        self._trim()
        return start - now

    def wait(self, key: K, now: float | None = None) -> float:
        """Seconds until ``key`` may go, without reserving (see :meth:`mark`)."""
        now = self._clock() if now is None else now
        return max(0.0, self._next.get(key, now) - now)

    def mark(self, key: K, now: float | None = None) -> None:
        """``key`` goes now. Waiters that give up never push the next turn back, unlike reserve()."""
        now = self._clock() if now is None else now
        self._next.pop(key, None)
        self._next[key] = now + self.interval
        self._trim()

    def _trim(self) -> None:
        while len(self._next) > self._max_keys:
            self._next.popitem(last=False)


class FailureBackoff(Generic[K]):
    """Exponential delay per key after failures: ``base * 2**(n-1)``, at most ``cap`` seconds.

    A key's failures are forgotten ``window`` seconds after its last one, or when it
    succeeds; at most ``max_keys`` keys are kept (least recently failed dropped first), so an
    attacker cycling through random ids cannot grow memory.
    """

    def __init__(
        self,
        *,
        base: float = 0.25,
        cap: float = 4.0,
        window: float = 300.0,
        max_keys: int = 10_000,
        clock: Clock = time.monotonic,
    ):
        self.base = base
        self.cap = cap
        self.window = window
        self._max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[K, tuple[int, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def delay(self, key: K, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        entry = self._failures.get(key)
        if entry is None:
            return 0.0
        count, last = entry
        if now - last > self.window:
            del self._failures[key]
            return 0.0
        return float(min(self.cap, self.base * 2.0 ** min(count - 1, 30)))

    def failed(self, key: K, now: float | None = None) -> None:
        now = self._clock() if now is None else now
        count, last = self._failures.pop(key, (0, now))
        if now - last > self.window:
            count = 0
        self._failures[key] = (count + 1, now)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)

    def succeeded(self, key: K) -> None:
        self._failures.pop(key, None)


class TtlCache(Generic[K, V]):
    """A small LRU cache whose entries expire ``ttl`` seconds after being stored."""

    def __init__(self, ttl: float, max_entries: int, *, clock: Clock = time.monotonic):
        self.ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> tuple[bool, V | None]:
        """``(True, value)`` on a fresh hit, ``(False, None)`` otherwise (values may be None)."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        expires, value = entry
        if self._clock() >= expires:
            del self._entries[key]
            return False, None
        self._entries.move_to_end(key)
        return True, value

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0:
            return
        self._entries[key] = (self._clock() + self.ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def discard(self, key: K) -> None:
        self._entries.pop(key, None)
