"""Scenario mode: one station, one full charging session, every frame shown.

boot -> StatusNotification Available -> Authorize -> start -> StatusNotification Charging
(Occupied in 2.x) -> a few meter samples -> stop -> StatusNotification Available. With
``security_profile`` 3, between the boot and the statuses: SignCertificate, the certificate
installed, a reconnection to ``tls_url`` with it, boot again. With ``stay``, the station then
stays connected (heartbeats, answers to the CSMS, reconnects) until told to stop. Any step that fails raises a :class:`SimulatorError` whose message is
what the user reads.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass

from ocpp_core.versions import OcppVersion

from . import messages
from .errors import ScenarioFailed
from .station import DEFAULT_ID_TAG, DEFAULT_URL, FrameCallback, Station

logger = logging.getLogger(__name__)

#: How often a Pending BootNotification is retried before the scenario gives up.
BOOT_ATTEMPTS = 3
#: Longest wait between two boot attempts, whatever interval the CSMS asks for.
MAX_BOOT_RETRY_S = 10.0


@dataclass(frozen=True, slots=True)
class ScenarioOptions:
    charge_point_id: str
    version: OcppVersion
    url: str = DEFAULT_URL
    password: str | None = None
    id_tag: str = DEFAULT_ID_TAG
    connectors: int = 1
    connector: int = 1
    samples: int = 3
    sample_interval: float = 1.0
    call_timeout: float = 30.0
    session: bool = True
    stay: bool = False
    meter_interval: int = 0
    #: While staying: reconnection attempts after a lost connection (exponential backoff from
    #: ``reconnect_delay`` seconds, capped at 30 s) before giving up.
    reconnect_attempts: int = 10
    reconnect_delay: float = 1.0
    vendor: str = "OCPP-Sim"
    model: str = "Simulator"
    #: CA bundle that signs the CSMS's certificate, for wss:// with a private CA.
    ca_file: str | None = None
    #: 3: after the first boot on ``url``, get a certificate and go on at ``tls_url`` with it
    #: (None, 1 or 2: ``url`` with ``password`` as given).
    security_profile: int | None = None
    #: The profile-3 endpoint (wss://, client certificates), e.g. wss://127.0.0.1:9443/ocpp.
    tls_url: str | None = None
    #: How diagnostics / logs are uploaded: "post" (multipart/form-data) or "put" (raw body).
    upload_method: str = "post"


async def run_scenario(
    options: ScenarioOptions,
    *,
    on_frame: FrameCallback | None = None,
    stop: asyncio.Event | None = None,
) -> Station:
    """Run the scenario; returns the (closed) station. ``stop`` ends a ``stay``."""
    station = Station(
        options.charge_point_id,
        options.version,
        options.url,
        password=options.password,
        connectors=options.connectors,
        vendor=options.vendor,
        model=options.model,
        call_timeout=options.call_timeout,
        reconnect_attempts=options.reconnect_attempts,
        reconnect_delay=options.reconnect_delay,
        ssl_context=ssl.create_default_context(cafile=options.ca_file) if options.ca_file else None,
        upload_method=options.upload_method,
        on_frame=on_frame,
    )
    if options.connector not in station.connectors:
        raise ScenarioFailed(f"connector {options.connector} does not exist (the station has {options.connectors})")
    if options.security_profile == 3 and not options.tls_url:
        raise ScenarioFailed("security profile 3 needs the URL of the TLS endpoint (tls_url, --tls-url)")
    await station.connect()
    try:
        await _boot(station)
        if options.security_profile == 3:
            await _profile3(station, options)
        if options.meter_interval > 0:
            station.model.meter_interval = options.meter_interval
        await station.send_status_all()
        if options.session:
            await _session(station, options)
        if options.stay:
            await _stay(station, stop)
    finally:
        await station.close(1000, "scenario finished")
    return station


async def _boot(station: Station) -> None:
    for attempt in range(1, BOOT_ATTEMPTS + 1):
        response = await station.boot()
        status = response["status"]
        if status == "Accepted":
            return
        if status == "Rejected":
            raise ScenarioFailed(
                f"the CSMS rejected BootNotification of {station.id} (is the charger registered and allowed?)"
            )
        # Pending (1.6 §4.2, 2.0.1 B02): the CSMS may configure us, then we boot again.
        if attempt < BOOT_ATTEMPTS:
            wait = min(float(response.get("interval") or MAX_BOOT_RETRY_S), MAX_BOOT_RETRY_S)
            logger.info("%s: BootNotification Pending, retrying in %.0f s", station.id, wait)
            await asyncio.sleep(wait)
    raise ScenarioFailed(f"BootNotification of {station.id} still Pending after {BOOT_ATTEMPTS} attempts")


async def _profile3(station: Station, options: ScenarioOptions) -> None:
    """SignCertificate, CertificateSigned installed, reconnect with the certificate, boot again."""
    response = await station.sign_certificate()
    if response["status"] != "Accepted":
        info = response.get("statusInfo") or {}
        why = info.get("additionalInfo") or info.get("reasonCode") or "no reason given"
        raise ScenarioFailed(f"the CSMS rejected SignCertificate of {station.id}: {why}")
    assert options.tls_url is not None  # checked by run_scenario
    logger.info(
        "%s: certificate %s installed, reconnecting to %s", station.id, station.security.keys.serial, options.tls_url
    )
    await station.use_certificate(options.tls_url, ca_file=options.ca_file)
    await _boot(station)


async def _session(station: Station, options: ScenarioOptions) -> None:
    connector = options.connector
    response = await station.authorize(options.id_tag)
    status = messages.authorization_status(station.version, response)
    if status != "Accepted":
        raise ScenarioFailed(
            f"the CSMS answered Authorize for id tag {options.id_tag} with {status} "
            f"(register it, e.g. PUT /id-tags/{options.id_tag} on the operator API, or pass --id-tag)"
        )
    tx = await station.start_transaction(connector, options.id_tag)
    if tx.authorization not in (None, "Accepted"):
        # 1.6 §5.11 / 2.0.1 E05: a refused id tag ends the transaction at once.
        await station.stop_transaction(connector, reason="DeAuthorized")
        await station.status(connector, "Available")
        raise ScenarioFailed(
            f"the CSMS refused id tag {options.id_tag} when the transaction started ({tx.authorization})"
        )
    await station.status(connector, station.current_status(station.connectors[connector]))  # Charging, or SuspendedEVSE
    for _ in range(options.samples):
        if options.sample_interval > 0:
            await asyncio.sleep(options.sample_interval)
        await station.meter_values(connector)
    await station.stop_transaction(connector, reason="Local")
    await station.status(connector, "Available")


async def _stay(station: Station, stop: asyncio.Event | None) -> None:
    station.auto_reconnect = True
    station.start_heartbeats()
    waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(station.wait_closed())]
    if stop is not None:
        waiters.append(asyncio.ensure_future(stop.wait()))
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    if station.stopped and (stop is None or not stop.is_set()):
        raise ScenarioFailed(f"{station.id} lost its connection and could not reconnect")
