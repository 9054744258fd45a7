"""The station's connectors and their transactions: plain state, no behaviour and no I/O.

Kept apart from :mod:`simulator.station` so that what reads this state (the handlers, the
reservations, the charging profiles) needs no import of the station itself.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Transaction:
    connector_id: int
    id_tag: str
    token_type: str
    meter_start: int
    #: 1.6: the integer the CSMS assigned (None until StartTransaction is answered);
    #: 2.x: the string the station generated.
    transaction_id: int | str | None = None
    seq_no: int = 0
    remote_start_id: int | None = None
    #: The authorization status the CSMS gave the id tag when the transaction started, if any.
    authorization: str | None = None
    #: A remote stop was accepted: a second one is refused.
    stopping: bool = False
    #: The reservation the transaction used (sent in StartTransaction / TransactionEvent Started).
    reservation_id: int | None = None
    #: Epoch ms of the start (where Relative charging schedules start).
    started_ms: int = 0
    #: ``Charging``, or ``SuspendedEVSE`` while the limit in force is 0 (1.6 status, 2.x chargingState).
    charging_state: str = "Charging"

    def next_seq_no(self) -> int:
        # 2.0.1 E01.FR.16 (and 2.1): seqNo starts at 0 and increases by one per event.
        seq_no = self.seq_no
        self.seq_no += 1
        return seq_no


@dataclass(slots=True)
class Connector:
    """A 1.6 connector, or a 2.x EVSE with a single connector (connectorId 1)."""

    id: int
    status: str = "Available"
    operative: bool = True
    #: A ChangeAvailability that answered Scheduled: applied when the transaction ends.
    pending_operative: bool | None = None
    meter_wh: int = 0
    transaction: Transaction | None = None
    #: A remote start was accepted and its transaction is not open yet.
    starting: bool = False

    @property
    def busy(self) -> bool:
        return self.transaction is not None or self.starting
