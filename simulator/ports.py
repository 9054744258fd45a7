"""What the CSMS-call handlers need of a station, and what they hand back.

:class:`StationPort` is the station as the handlers (:mod:`simulator.handlers`,
:mod:`simulator.device_handlers`) see it: its state and the steps it can take. The station
(:class:`simulator.station.Station`) satisfies it structurally, so the handlers never import
the station and the station imports the handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ocpp_core.versions import OcppVersion

from .charging_profiles import ChargingProfiles, Profile
from .connectors import Connector
from .device_model import DeviceModel

if TYPE_CHECKING:
    from .files import StationFiles
    from .security import Security

Payload = dict[str, Any]
FollowUp = Callable[[], Awaitable[None]]


@dataclass(slots=True)
class Reply:
    """A handler's answer: the CALLRESULT payload, and what to do once it is sent."""

    response: Payload
    then: FollowUp | None = None


def status_reply(status: str, then: FollowUp | None = None) -> Reply:
    """The answer ``{"status": status}``, with what follows it."""
    return Reply({"status": status}, then)


class StationPort(Protocol):
    """The station, as a handler of CSMS calls uses it."""

    id: str
    version: OcppVersion
    connectors: dict[int, Connector]
    profiles: ChargingProfiles
    local_list_version: int
    reset_when_idle: bool
    security: Security
    files: StationFiles

    @property
    def model(self) -> DeviceModel: ...

    @property
    def closing(self) -> bool: ...

    # state
    def free_connector(self, preferred: int | None = None, id_tag: str | None = None) -> Connector | None: ...
    def connector_with_transaction(self, transaction_id: int | str) -> Connector | None: ...
    def current_status(self, connector: Connector) -> str: ...
    def reserve(self, reservation_id: int, connector_id: int, id_tag: str, expiry_ms: int) -> str: ...
    def cancel_reservation(self, reservation_id: int) -> bool: ...
    def settings_changed(self) -> None: ...
    def run_soon(self, what: str, then: FollowUp) -> None: ...

    # steps (each sends what it takes)
    async def call(self, action: str, payload: Payload, timeout: float | None = None) -> Payload: ...
    async def boot(self, reason: str = "PowerUp") -> Payload: ...
    async def heartbeat(self) -> Payload: ...
    async def sign_certificate(self, timeout: float | None = None) -> Payload: ...
    async def status(self, connector: int, status: str) -> Payload: ...
    async def meter_values(
        self,
        connector: int = 1,
        energy_wh: int | None = None,
        *,
        context: str = "Sample.Periodic",
        in_transaction: bool = True,
    ) -> Payload: ...
    async def stop_transaction(
        self,
        connector: int = 1,
        meter_stop: int | None = None,
        *,
        reason: str = "Local",
        trigger_reason: str | None = None,
    ) -> Payload: ...
    async def remote_start(
        self,
        connector: int,
        id_tag: str,
        *,
        remote_start_id: int | None = None,
        token_type: str = "ISO14443",
        charging_profile: Profile | None = None,
    ) -> None: ...
    async def remote_stop(self, connector: int) -> None: ...
    async def reboot(self, *, stop_reason: str = "Reboot", boot_reason: str = "RemoteReset") -> None: ...
    async def sync_reserved_statuses(self) -> None: ...
    async def apply_charging_limits(self) -> None: ...


Handler = Callable[[StationPort, Payload], Reply]
