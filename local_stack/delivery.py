"""How the local rule emulator delivers rule events: in order, or as AWS does (DESIGN §7).

Pure settings and the per-message delivery plan (no threads, no I/O); ``local_stack.emulator``
carries the plan out. See that module's docstring for what the ``aws`` mode models and why.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

#: Environment variables of the delivery settings (README, configuration of the local stack).
DELIVERY_ENV = "OCPP_RULE_DELIVERY"
MAX_DELAY_ENV = "OCPP_RULE_MAX_DELAY_MS"
DUPLICATE_RATE_ENV = "OCPP_RULE_DUPLICATE_RATE"
LATE_RATE_ENV = "OCPP_RULE_LATE_RATE"
LATE_DELAY_ENV = "OCPP_RULE_LATE_DELAY_MS"
SEED_ENV = "OCPP_RULE_SEED"


class DeliveryMode(StrEnum):
    ORDERED = "ordered"
    AWS = "aws"


class DeliveryKind(StrEnum):
    ORIGINAL = "original"
    DUPLICATE = "duplicate"
    LATE = "late"


class Delivery(NamedTuple):
    """One invocation of a rule's handler for a message, ``delay_s`` after the message arrived."""

    delay_s: float
    kind: DeliveryKind


class DeliveryError(ValueError):
    """A delivery setting is out of range; the message names it."""


@dataclass(frozen=True)
class DeliverySettings:
    """How the emulator delivers rule events; the parameters only matter in ``aws`` mode."""

    mode: DeliveryMode = DeliveryMode.ORDERED
    #: each delivery waits uniformly 0 to this many seconds
    max_delay_s: float = 0.05
    #: fraction of messages delivered a second time (after their own random delay)
    duplicate_rate: float = 0.05
    #: fraction of messages delivered once more, ``late_delay_s`` later
    late_rate: float = 0.02
    #: bounds of the late redelivery's delay, in seconds
    late_delay_s: tuple[float, float] = (1.0, 3.0)
    #: None: a different random history every run
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.mode, DeliveryMode):
            object.__setattr__(self, "mode", _mode(str(self.mode)))
        if not (math.isfinite(self.max_delay_s) and self.max_delay_s >= 0):
            raise DeliveryError(f"maximum delay {self.max_delay_s!r} s is not a duration >= 0")
        for name, rate in (("duplicate", self.duplicate_rate), ("late", self.late_rate)):
            if not 0.0 <= rate <= 1.0:
                raise DeliveryError(f"{name} rate {rate!r} is not between 0 and 1")
        low, high = self.late_delay_s
        if not (math.isfinite(low) and math.isfinite(high) and 0 <= low <= high):
            raise DeliveryError(f"late delay {self.late_delay_s!r} is not a range 0 <= low <= high (seconds)")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeliverySettings:
        """Explicit environment, else ``os.environ``; unset variables keep the defaults."""
        env = os.environ if env is None else env
        default = cls()
        late = env.get(LATE_DELAY_ENV, "").strip()
        return cls(
            mode=_mode(env.get(DELIVERY_ENV, "") or DeliveryMode.ORDERED.value),
            max_delay_s=_number(env, MAX_DELAY_ENV, default.max_delay_s * 1000) / 1000,
            duplicate_rate=_number(env, DUPLICATE_RATE_ENV, default.duplicate_rate),
            late_rate=_number(env, LATE_RATE_ENV, default.late_rate),
            late_delay_s=_late_range(late) if late else default.late_delay_s,
            seed=int(_number(env, SEED_ENV, -1)) if env.get(SEED_ENV, "").strip() else None,
        )

    def plan(self, rng: random.Random) -> list[Delivery]:
        """Every delivery of one message, the original first.

        Always at least one: a message is never lost. Pure given ``rng``.
        """
        if self.mode is DeliveryMode.ORDERED:
            return [Delivery(0.0, DeliveryKind.ORIGINAL)]
        deliveries = [Delivery(rng.uniform(0.0, self.max_delay_s), DeliveryKind.ORIGINAL)]
        if rng.random() < self.duplicate_rate:
            deliveries.append(Delivery(rng.uniform(0.0, self.max_delay_s), DeliveryKind.DUPLICATE))
        if rng.random() < self.late_rate:
            deliveries.append(Delivery(rng.uniform(*self.late_delay_s), DeliveryKind.LATE))
        return deliveries

    def describe(self) -> str:
        if self.mode is DeliveryMode.ORDERED:
            return "ordered (one charger's messages one at a time, in order)"
        low, high = self.late_delay_s
        return (
            f"aws (unordered, delay 0-{self.max_delay_s * 1000:.0f} ms, {self.duplicate_rate:.0%} duplicated, "
            f"{self.late_rate:.0%} redelivered {low:g}-{high:g} s late, seed {self.seed})"
        )


def _mode(raw: str) -> DeliveryMode:
    try:
        return DeliveryMode(raw.strip().lower())
    except ValueError:
        choices = ", ".join(m.value for m in DeliveryMode)
        raise DeliveryError(f"{DELIVERY_ENV}={raw!r} is not one of {choices}") from None


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise DeliveryError(f"{name}={raw!r} is not a number") from None


def _late_range(raw: str) -> tuple[float, float]:
    low, sep, high = raw.partition("-")
    try:
        bounds = (float(low), float(high if sep else low))
    except ValueError:
        raise DeliveryError(f"{LATE_DELAY_ENV}={raw!r} is not '<ms>' or '<min ms>-<max ms>'") from None
    return bounds[0] / 1000, bounds[1] / 1000
