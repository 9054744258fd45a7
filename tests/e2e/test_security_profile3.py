"""Security profile 2 to 3 through the local stack (DESIGN §9), with simulated 1.6 and 2.0.1 stations.

A station registered with a password boots on the plain port with Basic auth (profile 2's
credential), sends SignCertificate, installs the CertificateSigned the CSMS sends, and the
CSMS records the certificate as installed; the operator can trigger a renewal. Then the
charger is set to profile 3 and the station reconnects on the bridge's TLS port with the
certificate as its TLS client certificate, and boots again. (That Basic auth alone is then
refused is the bridge's to test: it reads the registry through a cache of up to 30 s.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ocpp_core.versions import OcppVersion
from simulator.station import Station

from .conftest import E2EStack
from .test_operator_calls import _api

VERSIONS = [OcppVersion.V16, OcppVersion.V201]
#: The renewal trigger: 1.6 security extension ExtendedTriggerMessage, 2.0.1 TriggerMessage (A02).
RENEWAL = {
    OcppVersion.V16: ("ExtendedTriggerMessage", {"requestedMessage": "SignChargePointCertificate"}),
    OcppVersion.V201: ("TriggerMessage", {"requestedMessage": "SignChargingStationCertificate"}),
}


async def _installed(stack: E2EStack, cp: str, serial: str, timeout: float = 15.0) -> dict[str, Any]:
    """The certificate record once the CSMS recorded the station's Accepted answer to CertificateSigned."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status, body = await _api("GET", f"{stack.api_url}/chargers/{cp}/certificates")
        assert status == 200, body
        record = next((c for c in body["certificates"] if c["serial"] == serial), None)
        if (record is not None and record.get("installStatus") == "Accepted") or (
            asyncio.get_running_loop().time() > deadline
        ):
            assert record is not None, body
            return record
        await asyncio.sleep(0.2)


def _ca_file(stack: E2EStack) -> str:
    """The development CA's certificate: ``ca.pem`` in the stack's state directory (DESIGN §9)."""
    return str(stack.log.parent / "ca.pem")


def _cp(prefix: str, version: OcppVersion) -> str:
    return f"{prefix}-{version.value.replace('ocpp', 'V').replace('.', '')}"


async def _certified(stack: E2EStack, station: Station, password: str) -> str:
    """Register with a password, boot on the plain port, get a certificate: its serial."""
    status, body = await _api("PUT", f"{stack.api_url}/chargers/{station.id}", {"password": password})
    assert status in (200, 201), body
    await station.connect()
    assert (await station.boot())["status"] == "Accepted"
    response = await station.sign_certificate(timeout=20)
    assert response["status"] == "Accepted", response
    assert station.security.installed
    serial = station.security.keys.serial
    assert serial is not None
    record = await _installed(stack, station.id, serial)
    assert record["installStatus"] == "Accepted", record
    assert record["status"] == "valid"
    assert record["subject"].endswith(station.id) or station.id in record["subject"], record
    return serial


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.value)
def test_station_gets_and_renews_its_certificate(stack: E2EStack, version: OcppVersion) -> None:
    cp = _cp("SEC-SIGN", version)

    async def run() -> None:
        station = Station(cp, version, url=stack.ws_url, password="profile-2-secret", call_timeout=20)
        try:
            first = await _certified(stack, station, "profile-2-secret")
            # The operator renews: Accepted, then SignCertificate with a new key, then CertificateSigned.
            action, payload = RENEWAL[version]
            status, record = await _api(
                "POST", f"{stack.api_url}/chargers/{cp}/calls?wait=20", {"action": action, "payload": payload}
            )
            assert status == 200 and record["status"] == "accepted", record
            assert record["response"]["status"] == "Accepted"
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 20
            while station.security.keys.serial == first and loop.time() < deadline:
                await asyncio.sleep(0.1)
            renewed = station.security.keys.serial
            assert renewed is not None and renewed != first
            await _installed(stack, cp, renewed)
        finally:
            await station.close()

    asyncio.run(asyncio.wait_for(run(), 90))


@pytest.mark.parametrize("version", VERSIONS, ids=lambda v: v.value)
def test_station_moves_to_profile_3_with_its_certificate(stack: E2EStack, version: OcppVersion) -> None:
    cp = _cp("SEC-TLS", version)
    password = "profile-2-secret"

    async def run() -> None:
        station = Station(cp, version, url=stack.ws_url, password=password, call_timeout=20)
        try:
            await _certified(stack, station, password)
            status, body = await _api("PUT", f"{stack.api_url}/chargers/{cp}", {"securityProfile": 3})
            assert status == 200, body
            await station.use_certificate(stack.tls_url, ca_file=_ca_file(stack))
            assert station.connected
            assert station.endpoint == f"{stack.tls_url}/{cp}"
            assert (await station.boot())["status"] == "Accepted"
            assert (await station.heartbeat())["currentTime"]
        finally:
            await station.close()

    asyncio.run(asyncio.wait_for(run(), 90))
