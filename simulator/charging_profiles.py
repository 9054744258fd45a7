"""Charging profiles a station honours (1.6 Smart Charging profile §3.13 / §5.16; 2.0.1 and 2.1 block K).

:class:`ChargingProfiles` is owned by a :class:`~simulator.station.Station`. It decides
SetChargingProfile (and the profile of a remote start), ClearChargingProfile, answers
GetCompositeSchedule and selects the profiles of a 2.x GetChargingProfiles; :meth:`limit`
is the limit in force on a connector at an instant. What the station draws from it is the
station's business (:meth:`Station.draw`): one place, used by the meter values and the
charging state.

The rules, kept simple but as the specifications say:

* Purposes: ChargePointMaxProfile (1.6) / ChargingStationMaxProfile (2.x) on connector / EVSE
  0 caps the whole station; TxDefaultProfile (on 0: every connector, or on one connector, which
  then wins at an equal stack level) applies to a connector without a TxProfile in force;
  TxProfile applies to one transaction only and is forgotten when it ends.
* Within a purpose, the profile in force is the one with the highest ``stackLevel`` that is
  valid (``validFrom`` <= now < ``validTo``) and has a schedule period in force now (a schedule
  with a ``duration`` ends; a lower stack level takes over then).
* Schedules: ``Absolute`` from ``startSchedule``, ``Relative`` from the start of the transaction
  (from now without one), ``Recurring`` Daily / Weekly from ``startSchedule``. A limit in W is
  converted to amps per phase at 230 V per phase, with the period's ``numberPhases`` (3 if
  absent).
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ocpp_core.timefmt import parse_ms
from ocpp_core.versions import OcppVersion

from .connectors import Connector, Transaction
from .device_model import DeviceModel
from .messages import now_ms as _now

Payload = dict[str, Any]


class ProfileHost(Protocol):
    """What the profiles read of the station that owns them."""

    @property
    def version(self) -> OcppVersion: ...
    @property
    def connectors(self) -> dict[int, Connector]: ...
    @property
    def model(self) -> DeviceModel: ...
    @property
    def max_current(self) -> float: ...


#: Volts per phase, to convert a limit in W to amps (and a current to a power).
VOLTS = 230.0
DEFAULT_PHASES = 3
#: The source a 2.x station reports for profiles the CSMS set (ChargingLimitSourceEnumType).
CSMS_SOURCE = "CSO"

TX = "TxProfile"
TX_DEFAULT = "TxDefaultProfile"
MAX_PURPOSES = ("ChargePointMaxProfile", "ChargingStationMaxProfile")

_RECURRENCE_MS = {"Daily": 86_400_000, "Weekly": 7 * 86_400_000}
#: The units the rate-unit settings name: 1.6 ChargingScheduleAllowedChargingRateUnit says
#: Current / Power, 2.x SmartChargingCtrlr.RateUnit says A / W.
_UNIT_NAMES = {"Current": "A", "Power": "W", "A": "A", "W": "W"}


def watts_to_amps(watts: float, phases: int) -> float:
    return watts / (VOLTS * max(phases, 1))


def amps_to_watts(amps: float, phases: int) -> float:
    return amps * VOLTS * max(phases, 1)


def round_limit(value: float) -> float:
    """Down to one decimal (1.6 limits are multiples of 0.1; rounding down never exceeds a limit)."""
    return math.floor(value * 10 + 1e-6) / 10


@dataclass(slots=True)
class Period:
    start_s: int
    limit: float
    phases: int | None = None


@dataclass(slots=True)
class Schedule:
    unit: str  # "A" or "W"
    periods: list[Period]
    duration_s: int | None = None
    start_ms: int | None = None


@dataclass(slots=True, frozen=True)
class Draw:
    """What a connector draws: amps per phase on ``phases`` phases."""

    amps: float
    phases: int = DEFAULT_PHASES

    @property
    def watts(self) -> float:
        return amps_to_watts(self.amps, self.phases)


@dataclass(slots=True)
class Limit:
    """A limit in force: amps per phase, on ``phases`` phases (None: not said)."""

    amps: float
    phases: int | None = None


@dataclass(slots=True)
class Profile:
    """A charging profile the station holds."""

    id: int
    connector_id: int
    stack_level: int
    purpose: str
    kind: str
    schedule: Schedule
    recurrency: str | None = None
    valid_from_ms: int | None = None
    valid_to_ms: int | None = None
    #: The transaction a TxProfile applies to (set when the transaction exists).
    transaction: Transaction | None = None
    #: When it was installed (the start of an Absolute schedule without ``startSchedule``).
    installed_ms: int = 0
    #: The profile as the CSMS sent it (reported back by GetChargingProfiles).
    raw: Payload = field(default_factory=dict)

    @property
    def is_max(self) -> bool:
        return self.purpose in MAX_PURPOSES

    def valid_at(self, t_ms: int) -> bool:
        if self.valid_from_ms is not None and t_ms < self.valid_from_ms:
            return False
        return self.valid_to_ms is None or t_ms < self.valid_to_ms

    def relative_start(self, now_ms: int, tx: Transaction | None) -> int:
        """Where a Relative schedule starts: at the transaction (``tx``, on the connector looked
        at), else now (what the next transaction would get); a station-wide maximum, at its
        installation."""
        if self.is_max:
            return self.installed_ms
        return tx.started_ms if tx is not None else now_ms

    def schedule_start(self, t_ms: int, now_ms: int, tx: Transaction | None) -> int | None:
        """The start of the schedule occurrence that ``t_ms`` falls in (None: not started)."""
        if self.kind == "Relative":
            return self.relative_start(now_ms, tx)
        start = self.schedule.start_ms if self.schedule.start_ms is not None else self.installed_ms
        if self.kind == "Recurring" and self.recurrency in _RECURRENCE_MS and t_ms >= start:
            period = _RECURRENCE_MS[self.recurrency]
            start += (t_ms - start) // period * period
        return start if t_ms >= start else None

    def limit_at(self, t_ms: int, now_ms: int, tx: Transaction | None = None) -> Limit | None:
        """The limit of this profile at ``t_ms`` (None: not valid or no period in force then)."""
        if not self.valid_at(t_ms):
            return None
        start = self.schedule_start(t_ms, now_ms, tx)
        if start is None:
            return None
        offset_s = (t_ms - start) / 1000
        if self.schedule.duration_s is not None and offset_s >= self.schedule.duration_s:
            return None
        current: Period | None = None
        for period in self.schedule.periods:
            if period.start_s > offset_s:
                break
            current = period
        if current is None:
            return None
        phases = current.phases
        if self.schedule.unit == "W":
            return Limit(watts_to_amps(current.limit, phases or DEFAULT_PHASES), phases)
        return Limit(current.limit, phases)

    def boundaries(self, begin_ms: int, end_ms: int, now_ms: int, tx: Transaction | None = None) -> set[int]:
        """The instants in (begin, end) where this profile's limit may change."""
        points: set[int] = set()
        for edge in (self.valid_from_ms, self.valid_to_ms):
            if edge is not None:
                points.add(edge)
        if self.kind == "Relative":
            starts = [self.relative_start(now_ms, tx)]
        else:
            first = self.schedule.start_ms if self.schedule.start_ms is not None else self.installed_ms
            if self.kind == "Recurring" and self.recurrency in _RECURRENCE_MS:
                every = _RECURRENCE_MS[self.recurrency]
                k = max(0, (begin_ms - first) // every)
                starts = []
                while first + k * every < end_ms:
                    starts.append(first + k * every)
                    k += 1
            else:
                starts = [first]
        for start in starts:
            points.add(start)
            for period in self.schedule.periods:
                points.add(start + period.start_s * 1000)
            if self.schedule.duration_s is not None:
                points.add(start + self.schedule.duration_s * 1000)
        return {p for p in points if begin_ms < p < end_ms}


class ProfileRefused(Exception):
    """A profile the station cannot honour: the answer is ``Rejected``."""


def parse_profile(version: OcppVersion, connector_id: int, raw: Payload, installed_ms: int) -> Profile:
    """A :class:`Profile` from a 1.6 ``csChargingProfiles`` / 2.x ``chargingProfile``.

    Raises :class:`ProfileRefused` for what this station does not do (2.1 Dynamic profiles,
    schedules without a limit, periods out of order...).
    """
    if version.is_2x:
        schedules = raw["chargingSchedule"]
        raw_schedule = schedules[0]  # more than one is for ISO 15118 EVs to choose from
        profile_id = raw["id"]
    else:
        raw_schedule = raw["chargingSchedule"]
        profile_id = raw["chargingProfileId"]
    kind = raw["chargingProfileKind"]
    if kind not in ("Absolute", "Relative", "Recurring"):
        raise ProfileRefused(f"profile kind {kind} not supported")
    if kind == "Recurring" and (raw.get("recurrencyKind") not in _RECURRENCE_MS or "startSchedule" not in raw_schedule):
        raise ProfileRefused("a recurring profile needs recurrencyKind and startSchedule")
    if raw["stackLevel"] < 0:
        raise ProfileRefused("negative stackLevel")
    periods: list[Period] = []
    for item in raw_schedule["chargingSchedulePeriod"]:
        limit = item.get("limit")  # 2.1 makes it optional (setpoints): not simulated
        if not isinstance(limit, (int, float)) or limit < 0:
            raise ProfileRefused("a period without a limit >= 0")
        phases = item.get("numberPhases")
        if phases is not None and phases not in (1, 2, 3):
            raise ProfileRefused(f"numberPhases {phases}")
        periods.append(Period(int(item["startPeriod"]), float(limit), phases))
    if not periods or periods[0].start_s != 0 or any(b.start_s <= a.start_s for a, b in itertools.pairwise(periods)):
        raise ProfileRefused("the first period must start at 0 and the others follow in order")
    start_ms = parse_ms(raw_schedule["startSchedule"]) if "startSchedule" in raw_schedule else None
    valid_from = parse_ms(raw["validFrom"]) if "validFrom" in raw else None
    valid_to = parse_ms(raw["validTo"]) if "validTo" in raw else None
    duration = raw_schedule.get("duration")
    return Profile(
        id=int(profile_id),
        connector_id=connector_id,
        stack_level=int(raw["stackLevel"]),
        purpose=str(raw["chargingProfilePurpose"]),
        kind=kind,
        schedule=Schedule(str(raw_schedule["chargingRateUnit"]), periods, duration, start_ms),
        recurrency=raw.get("recurrencyKind"),
        valid_from_ms=valid_from,
        valid_to_ms=valid_to,
        installed_ms=installed_ms,
        raw=copy.deepcopy(raw),
    )


def _overlap(a: Profile, b: Profile) -> bool:
    """Whether the validity periods of ``a`` and ``b`` overlap (absent bounds: open)."""

    def span(p: Profile) -> tuple[float, float]:
        start = -math.inf if p.valid_from_ms is None else p.valid_from_ms
        end = math.inf if p.valid_to_ms is None else p.valid_to_ms
        return start, end

    (a_from, a_to), (b_from, b_to) = span(a), span(b)
    return a_from < b_to and b_from < a_to


class ChargingProfiles:
    """The charging profiles of one station (``installed``, in the order they came)."""

    def __init__(self, station: ProfileHost):
        self.station = station
        self.installed: list[Profile] = []
        self._timer: asyncio.TimerHandle | None = None

    def __bool__(self) -> bool:
        return bool(self.installed)

    # ------------------------------------------------------------------ settings

    def allowed_units(self) -> set[str]:
        """The rate units the station accepts (1.6 ChargingScheduleAllowedChargingRateUnit,
        2.x SmartChargingCtrlr.RateUnit)."""
        value = self.station.model.rate_units
        return {_UNIT_NAMES[u.strip()] for u in value.split(",") if u.strip() in _UNIT_NAMES}

    # ------------------------------------------------------------------ SetChargingProfile

    def check(self, connector_id: int, raw: Payload, *, for_remote_start: bool = False) -> Profile:
        """The profile, if the station can install it on ``connector_id``; else :class:`ProfileRefused`.

        ``for_remote_start``: the profile of a RemoteStartTransaction / RequestStartTransaction,
        for the transaction about to start (1.6 §5.11, 2.0.1 F01/K05): a TxProfile without a
        transactionId.
        """
        st = self.station
        model = st.model
        if not model.smart_charging_enabled:
            raise ProfileRefused("smart charging disabled")
        now = _now()
        profile = parse_profile(st.version, connector_id, raw, now)
        purpose = profile.purpose
        if purpose not in (TX, TX_DEFAULT, *MAX_PURPOSES):
            raise ProfileRefused(f"purpose {purpose} not supported")  # ExternalConstraints (K01), 2.1 ones
        if profile.schedule.unit not in self.allowed_units():
            raise ProfileRefused(f"rate unit {profile.schedule.unit} not supported")
        if profile.stack_level > model.max_stack_level:
            raise ProfileRefused(f"stackLevel above {model.max_stack_level}")
        if len(profile.schedule.periods) > model.max_periods:
            raise ProfileRefused(f"more than {model.max_periods} periods")
        if connector_id != 0 and connector_id not in st.connectors:
            raise ProfileRefused(f"no connector {connector_id}")
        if profile.is_max and connector_id != 0:
            raise ProfileRefused("a station-wide maximum goes on connector 0")
        tx_id = raw.get("transactionId")
        if for_remote_start:
            if purpose != TX or tx_id is not None:
                raise ProfileRefused("a remote start takes a TxProfile without transactionId")
            return profile
        if purpose == TX:
            if connector_id == 0:
                raise ProfileRefused("a TxProfile goes on a connector")
            tx = st.connectors[connector_id].transaction
            # 1.6 §5.16: discarded without a transaction (and 2.0.1 K01 likewise).
            if tx is None or (tx_id is not None and tx_id != tx.transaction_id):
                raise ProfileRefused("no such transaction on the connector")
            profile.transaction = tx
        if st.version.is_2x:
            # 2.0.1 K01: another id with the same stack level and purpose on the same EVSE and an
            # overlapping validity is refused (1.6 replaces it instead, see install()).
            for other in self.installed:
                if (
                    other.id != profile.id
                    and other.connector_id == connector_id
                    and other.purpose == purpose
                    and other.stack_level == profile.stack_level
                    and (purpose != TX or other.transaction is profile.transaction)
                    and _overlap(other, profile)
                ):
                    raise ProfileRefused(f"profile {other.id} has that stack level and purpose")
        replaced = sum(1 for other in self.installed if self._replaced_by(other, profile))
        if len(self.installed) - replaced >= model.max_profiles:
            raise ProfileRefused(f"{model.max_profiles} profiles installed already")
        return profile

    def _replaced_by(self, old: Profile, new: Profile) -> bool:
        if old.id == new.id:
            return True  # 1.6 §5.16, 2.0.1 K01
        # 1.6 §5.16: also the same stackLevel / purpose (on the same connector).
        return (
            not self.station.version.is_2x
            and old.connector_id == new.connector_id
            and old.purpose == new.purpose
            and old.stack_level == new.stack_level
            and (new.purpose != TX or old.transaction is new.transaction)
        )

    def install(self, profile: Profile) -> None:
        self.installed = [p for p in self.installed if not self._replaced_by(p, profile)]
        self.installed.append(profile)

    def set(self, connector_id: int, raw: Payload) -> str:
        """SetChargingProfile: ``Accepted`` (installed) or ``Rejected``."""
        try:
            profile = self.check(connector_id, raw)
        except ProfileRefused:
            return "Rejected"
        self.install(profile)
        return "Accepted"

    def bind(self, profile: Profile, tx: Transaction) -> None:
        """Install the profile of a remote start for the transaction it started."""
        profile.transaction = tx
        profile.installed_ms = tx.started_ms
        self.install(profile)

    def forget_transaction(self, tx: Transaction) -> None:
        """The transaction ended: its TxProfiles go with it (1.6 §3.13.1, 2.0.1 K01)."""
        self.installed = [p for p in self.installed if not (p.purpose == TX and p.transaction is tx)]

    # ------------------------------------------------------------------ ClearChargingProfile

    def clear(
        self,
        *,
        profile_id: int | None = None,
        connector_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> bool:
        """ClearChargingProfile (1.6 §5.5, 2.0.1 K10): by id, else by the given criteria
        (none: all). True (Accepted) if one was cleared, False (Unknown) otherwise."""

        def matches(p: Profile) -> bool:
            if profile_id is not None:
                return p.id == profile_id
            return (
                (connector_id is None or p.connector_id == connector_id)
                and (purpose is None or p.purpose == purpose)
                and (stack_level is None or p.stack_level == stack_level)
            )

        kept = [p for p in self.installed if not matches(p)]
        cleared = len(kept) != len(self.installed)
        self.installed = kept
        return cleared

    # ------------------------------------------------------------------ limits

    def _applicable(self, connector_id: int, purpose: str, tx: Transaction | None) -> list[Profile]:
        if purpose in MAX_PURPOSES:
            return [p for p in self.installed if p.is_max]
        if purpose == TX:
            if tx is None:
                return []
            return [p for p in self.installed if p.purpose == TX and p.transaction is tx]
        return [p for p in self.installed if p.purpose == TX_DEFAULT and p.connector_id in (0, connector_id)]

    @staticmethod
    def _best(profiles: list[Profile], t_ms: int, now_ms: int, tx: Transaction | None) -> Limit | None:
        # Highest stack level first; at an equal one, a connector's own profile before a
        # station-wide one.
        for profile in sorted(profiles, key=lambda p: (p.stack_level, p.connector_id != 0), reverse=True):
            limit = profile.limit_at(t_ms, now_ms, tx)
            if limit is not None:
                return limit
        return None

    def station_limit(self, t_ms: int, now_ms: int | None = None) -> Limit | None:
        """The station-wide maximum in force at ``t_ms`` (ChargePointMax / ChargingStationMax)."""
        return self._best(self._applicable(0, MAX_PURPOSES[0], None), t_ms, _now() if now_ms is None else now_ms, None)

    def connector_limit(
        self, connector_id: int, tx: Transaction | None, t_ms: int, now_ms: int | None = None
    ) -> Limit | None:
        """The TxProfile of ``tx`` in force at ``t_ms``, else the TxDefaultProfile (None: neither)."""
        now = _now() if now_ms is None else now_ms
        limit = self._best(self._applicable(connector_id, TX, tx), t_ms, now, tx)
        if limit is None:
            limit = self._best(self._applicable(connector_id, TX_DEFAULT, tx), t_ms, now, tx)
        return limit

    def limit(self, connector_id: int, tx: Transaction | None, t_ms: int, now_ms: int | None = None) -> Limit | None:
        """The limit in force on a connector (0: the station) at ``t_ms``: its own one, capped by
        the station-wide maximum (None: nothing limits)."""
        now = _now() if now_ms is None else now_ms
        station = self.station_limit(t_ms, now)
        if connector_id == 0:
            return station
        own = self.connector_limit(connector_id, tx, t_ms, now)
        if own is None:
            return station
        if station is not None and station.amps < own.amps:
            return Limit(station.amps, own.phases or station.phases)
        return own

    def next_change(self, after_ms: int, horizon_ms: int = 86_400_000) -> int | None:
        """The next instant after ``after_ms`` when the limit of a running transaction may change
        (None: none within ``horizon_ms``)."""
        end = after_ms + horizon_ms
        points: set[int] = set()
        for conn in self.station.connectors.values():
            tx = conn.transaction
            if tx is None:
                continue
            for profile in self.installed:
                if profile.is_max or profile.connector_id in (0, conn.id):
                    points |= profile.boundaries(after_ms, end, after_ms, tx)
        return min(points) if points else None

    def draws(self, now_ms: int) -> dict[int, Draw]:
        """What each connector with a transaction draws at ``now_ms``: the station's
        ``max_current`` (the EV's maximum) capped by the connector's own limit; the station-wide
        maximum is shared among them, each taking at most what its own limit allows
        (water-filling, the smallest first)."""
        st = self.station
        own: dict[int, Draw] = {}
        for conn in st.connectors.values():
            if conn.transaction is None:
                continue
            limit = self.connector_limit(conn.id, conn.transaction, now_ms, now_ms)
            if limit is None:
                own[conn.id] = Draw(st.max_current)
            else:
                own[conn.id] = Draw(min(st.max_current, limit.amps), limit.phases or DEFAULT_PHASES)
        station = self.station_limit(now_ms, now_ms)
        if station is None:
            return {cid: Draw(round_limit(d.amps), d.phases) for cid, d in own.items()}
        remaining = station.amps
        shared: dict[int, Draw] = {}
        ordered = sorted(own.items(), key=lambda item: item[1].amps)
        for index, (cid, wanted) in enumerate(ordered):
            share = min(wanted.amps, remaining / (len(ordered) - index))
            shared[cid] = Draw(round_limit(share), wanted.phases)
            remaining -= share
        return shared

    def arm(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` at the next instant a running transaction's limit may change
        (or in a day, to look again); replaces the previous timer."""
        self.disarm()
        if not self.installed:
            return
        now = _now()
        at = self.next_change(now)
        if at is None:
            at = now + 86_400_000
        delay = max(0.0, (at - now) / 1000) + 0.005

        def fire() -> None:
            self._timer = None
            callback()

        self._timer = asyncio.get_running_loop().call_later(delay, fire)

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ GetCompositeSchedule

    def composite(self, connector_id: int, duration_s: int, unit: str, start_ms: int | None = None) -> list[Payload]:
        """The composite schedule of a connector (0: the station) from ``start_ms`` (default now)
        for ``duration_s``: chargingSchedulePeriod items in ``unit``, merged where equal.

        Where no profile limits, the period says what the station can give (its maximum
        current, on every connector for the station).
        """
        st = self.station
        now = _now()
        begin = now if start_ms is None else start_ms
        end = begin + max(duration_s, 0) * 1000
        tx = st.connectors[connector_id].transaction if connector_id in st.connectors else None
        points = {begin}
        for profile in self.installed:
            points |= profile.boundaries(begin, end, now, tx)
        hardware = st.max_current * (len(st.connectors) if connector_id == 0 else 1)
        periods: list[Payload] = []
        for point in sorted(points):
            limit = self.limit(connector_id, tx, point, now)
            amps = hardware if limit is None else min(limit.amps, hardware)
            phases = (limit.phases if limit is not None else None) or DEFAULT_PHASES
            value = round_limit(amps_to_watts(amps, phases) if unit == "W" else amps)
            # startPeriod is in whole seconds: a change is put at the nearest one.
            period: Payload = {"startPeriod": round((point - begin) / 1000), "limit": value, "numberPhases": phases}
            if periods and periods[-1]["startPeriod"] == period["startPeriod"]:
                periods.pop()  # two changes within a second: the later one
            if periods and (periods[-1]["limit"], periods[-1]["numberPhases"]) == (value, phases):
                continue  # no change
            periods.append(period)
        return periods

    # ------------------------------------------------------------------ GetChargingProfiles (2.x)

    def select(self, evse_id: int | None, criteria: Payload) -> dict[int, list[Payload]]:
        """The profiles a 2.x GetChargingProfiles asks for (K09), as reported, by EVSE."""
        sources = criteria.get("chargingLimitSource")
        if sources is not None and CSMS_SOURCE not in sources:
            return {}  # every profile here was set by the CSMS
        ids = criteria.get("chargingProfileId")
        found: dict[int, list[Payload]] = {}
        for p in self.installed:
            if evse_id is not None and p.connector_id != evse_id:
                continue
            if ids is not None and p.id not in ids:
                continue
            if "chargingProfilePurpose" in criteria and p.purpose != criteria["chargingProfilePurpose"]:
                continue
            if "stackLevel" in criteria and p.stack_level != criteria["stackLevel"]:
                continue
            reported = copy.deepcopy(p.raw)
            if p.transaction is not None and isinstance(p.transaction.transaction_id, str):
                reported.setdefault("transactionId", p.transaction.transaction_id)
            found.setdefault(p.connector_id, []).append(reported)
        return found
