"""Reservations a station holds (1.6 Reservation profile §5.13 / §5.1, 2.0.1 and 2.1 block H).

:class:`Reservations` is owned by a :class:`~simulator.station.Station`: it decides ReserveNow
and CancelReservation, tells whether reservations keep a connector from a transaction, which
connectors show ``Reserved``, which reservation a transaction uses, and expires reservations
(a timer each, and lazily whenever they are looked at). The station reports the statuses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ocpp_core.versions import OcppVersion

from . import messages
from .connectors import Connector
from .device_model import DeviceModel

logger = logging.getLogger(__name__)

#: The statuses of a connector that nothing occupies: it may be reserved, or stop being so.
IDLE_STATUSES = ("Available", "Reserved")


@dataclass(slots=True)
class Reservation:
    """A reservation the station holds (1.6 §5.13 ReserveNow, 2.0.1 H01)."""

    id: int
    id_tag: str
    #: Epoch ms of ``expiryDate`` / ``expiryDateTime``.
    expiry_ms: int
    #: The reserved connector / EVSE; 0: any one of the station (1.6 connector 0, 2.x no evseId).
    connector_id: int
    #: Fires at the expiry (None while the station is closed: checked lazily then).
    timer: asyncio.TimerHandle | None = None

    def matches(self, id_tag: str | None) -> bool:
        # Id tags are case insensitive (1.6 IdToken, 2.0.1 IdTokenType).
        return id_tag is not None and id_tag.casefold() == self.id_tag.casefold()


class ReservationHost(Protocol):
    """What the reservations read of the station that owns them, and ask it to do."""

    @property
    def id(self) -> str: ...
    @property
    def version(self) -> OcppVersion: ...
    @property
    def connectors(self) -> dict[int, Connector]: ...
    @property
    def model(self) -> DeviceModel: ...
    @property
    def closing(self) -> bool: ...
    def current_status(self, connector: Connector) -> str: ...
    def run_soon(self, what: str, then: Callable[[], Awaitable[None]]) -> None: ...
    async def status(self, connector: int, status: str) -> dict[str, Any]: ...
    async def call(self, action: str, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]: ...


class Reservations:
    """The reservations of one station, by id (``held``, also ``Station.reservations``)."""

    def __init__(self, station: ReservationHost):
        self.station = station
        self.held: dict[int, Reservation] = {}

    def __bool__(self) -> bool:
        return bool(self.held)

    # ------------------------------------------------------------------ decisions

    def reserve(self, reservation_id: int, connector_id: int, id_tag: str, expiry_ms: int) -> str:
        """Decide a ReserveNow (1.6 §5.13, 2.0.1 H01); keep the reservation when ``Accepted``.

        ``connector_id`` 0 reserves any connector of the station (if the configuration allows:
        1.6 ReserveConnectorZeroSupported, 2.x ReservationCtrlr.NonEvseSpecific): one connector
        then stays free for ``id_tag``. A reservation with the id of one the station holds
        replaces it (a refused one leaves it as it was). Answers Accepted, Occupied (a
        transaction, another reservation, or no connector left), Faulted, Unavailable, or
        Rejected (reservations off, unknown connector, already expired). The connector
        statuses are the caller's to report (:meth:`sync_statuses`).
        """
        st = self.station
        live = self.live()
        if not st.model.reservations_enabled or expiry_ms <= messages.now_ms():
            return "Rejected"
        others = [r for r in live if r.id != reservation_id]
        held = {r.connector_id for r in others if r.connector_id}
        whole = sum(1 for r in others if not r.connector_id)
        answers = {c.id: self._reservable(c, held) for c in st.connectors.values()}
        free = sum(1 for answer in answers.values() if answer == "Accepted")
        if connector_id == 0:
            if not st.model.reserve_whole_station:
                return "Rejected"
            if free > whole:
                status = "Accepted"
            elif free == 0 and set(answers.values()) == {"Faulted"}:
                status = "Faulted"
            elif free == 0 and set(answers.values()) <= {"Faulted", "Unavailable"}:
                status = "Unavailable"
            else:
                status = "Occupied"
        elif connector_id in answers:
            status = answers[connector_id]
            if status == "Accepted" and free - 1 < whole:
                status = "Occupied"  # the last free connector is kept for a whole-station reservation
        else:
            return "Rejected"
        if status != "Accepted":
            return status
        replaced = self.held.pop(reservation_id, None)
        if replaced is not None:
            self._disarm(replaced)
        reservation = Reservation(reservation_id, id_tag, expiry_ms, connector_id)
        self.held[reservation_id] = reservation
        self._arm(reservation)
        return status

    def cancel(self, reservation_id: int) -> bool:
        """CancelReservation (1.6 §5.1, 2.0.1 H02): True if the station held it (now dropped)."""
        self.live()
        reservation = self.held.get(reservation_id)
        if reservation is None:
            return False
        self._forget(reservation)
        return True

    def blocks(self, conn: Connector, id_tag: str | None) -> bool:
        """Whether reservations for others keep ``conn`` from a transaction for ``id_tag``:
        ``conn`` is reserved for another tag, or it is one of the connectors that whole-station
        reservations of other tags need (1.6 §5.13: one stays available for each)."""
        live = self.live()
        if not live:
            return False
        for reservation in live:
            if reservation.connector_id == conn.id:
                return not reservation.matches(id_tag)
        whole = [r for r in live if not r.connector_id]
        others = len(whole) - (1 if any(r.matches(id_tag) for r in whole) else 0)
        if others <= 0:
            return False
        held = {r.connector_id for r in live if r.connector_id}
        free_elsewhere = sum(
            1 for c in self.station.connectors.values() if c is not conn and self._reservable(c, held) == "Accepted"
        )
        return free_elsewhere < others

    def reserved_for(self, conn: Connector, id_tag: str | None) -> bool:
        """Whether ``conn`` has a reservation of its own for ``id_tag``."""
        return any(r.connector_id == conn.id and r.matches(id_tag) for r in self.held.values())

    def holds(self, conn: Connector) -> bool:
        """Whether ``conn`` is reserved: for a reservation of its own, or because whole-station
        reservations need every free connector left (2.0.1 H01: they show Reserved then)."""
        live = self.live()
        held = {r.connector_id for r in live if r.connector_id}
        if conn.id in held:
            return True
        whole = sum(1 for r in live if not r.connector_id)
        if not whole:
            return False
        free = [
            c
            for c in self.station.connectors.values()
            if c.operative and not c.busy and c.id not in held and c.status != "Faulted"
        ]
        return conn in free and len(free) <= whole

    def claim(self, conn: Connector, id_tag: str) -> Reservation | None:
        """The reservation a transaction of ``id_tag`` on ``conn`` uses (it ends), if any."""
        live = self.live()
        if not live:
            return None
        chosen = next((r for r in live if r.connector_id == conn.id and r.matches(id_tag)), None)
        if chosen is None:
            chosen = next((r for r in live if not r.connector_id and r.matches(id_tag)), None)
        if chosen is not None:
            self._forget(chosen)
        return chosen

    def live(self) -> list[Reservation]:
        """The reservations, once the expired ones are dropped (lazily, in case the timer of one
        has not fired yet; the timer is what normally expires them)."""
        if not self.held:
            return []
        now = messages.now_ms()
        for reservation in [r for r in self.held.values() if r.expiry_ms <= now]:
            self._expire(reservation)
        return list(self.held.values())

    def _reservable(self, conn: Connector, held: set[int]) -> str:
        """The ReserveNow answer for ``conn`` alone; ``held``: connectors reserved already."""
        if conn.status == "Faulted":
            return "Faulted"
        if not conn.operative or conn.status == "Unavailable":
            return "Unavailable"
        if conn.busy or conn.id in held or conn.status not in IDLE_STATUSES:
            return "Occupied"
        return "Accepted"

    # ------------------------------------------------------------------ statuses

    async def sync_statuses(self) -> None:
        """StatusNotification for each idle connector that became Reserved or stopped being so."""
        st = self.station
        for conn in list(st.connectors.values()):
            if conn.status not in IDLE_STATUSES or not conn.operative or conn.busy:
                continue  # occupied, unavailable, faulted: a reservation does not show
            wanted = st.current_status(conn)
            if wanted != conn.status and wanted in IDLE_STATUSES:
                await st.status(conn.id, wanted)

    def changed(self) -> None:
        """Report the statuses that the reservations now call for, in the background."""
        self.station.run_soon("reservation statuses", self.sync_statuses)

    # ------------------------------------------------------------------ timers

    def arm_all(self) -> None:
        for reservation in self.held.values():
            self._arm(reservation)

    def disarm_all(self) -> None:
        for reservation in self.held.values():
            self._disarm(reservation)

    def _arm(self, reservation: Reservation) -> None:
        if reservation.timer is None:
            delay = max(0.0, (reservation.expiry_ms - messages.now_ms()) / 1000)
            reservation.timer = asyncio.get_running_loop().call_later(delay, self._on_expiry, reservation)

    def _disarm(self, reservation: Reservation) -> None:
        if reservation.timer is not None:
            reservation.timer.cancel()
            reservation.timer = None

    def _forget(self, reservation: Reservation) -> None:
        self._disarm(reservation)
        if self.held.get(reservation.id) is reservation:
            del self.held[reservation.id]

    def _on_expiry(self, reservation: Reservation) -> None:
        reservation.timer = None
        if self.held.get(reservation.id) is reservation and not self.station.closing:
            self._expire(reservation)

    def _expire(self, reservation: Reservation) -> None:
        """Past its expiry: dropped, the connector back to Available; a 2.x station tells the
        CSMS (ReservationStatusUpdate Expired, 2.0.1 H04)."""
        st = self.station
        self._forget(reservation)
        logger.info("%s: reservation %d expired", st.id, reservation.id)

        async def notify() -> None:
            if st.version.is_2x:
                update = messages.reservation_status_update(reservation.id, "Expired")
                await st.call("ReservationStatusUpdate", update)
            await self.sync_statuses()

        st.run_soon("ReservationStatusUpdate", notify)
