"""Registration (BootNotification), heartbeats, presence: the registry decides, per version."""

from __future__ import annotations

import pytest

from ocpp_core.config import ProcessorConfig, UnknownChargerPolicy
from tests.fakes import START_MS

from .support import START_ISO, V2X, V16, VERSIONS, Charger, boot_payload

CONFIG = ProcessorConfig(heartbeat_interval_s=123, boot_retry_interval_s=45)


def _config(policy: UnknownChargerPolicy) -> ProcessorConfig:
    return ProcessorConfig(heartbeat_interval_s=123, boot_retry_interval_s=45, unknown_chargers=policy)


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_charger_accepted_on_the_fly(make_charger, version) -> None:
    charger: Charger = make_charger(version, config=_config(UnknownChargerPolicy.ACCEPT))
    response = charger.result("BootNotification", boot_payload(version))
    assert response == {"status": "Accepted", "currentTime": START_ISO, "interval": 123}
    record = charger.store.get_charger("CP1")
    assert record is not None
    assert record["registered"] is True and record["autoRegistered"] is True
    assert record["bootStatus"] == "Accepted"
    assert record["protocol"] == version.value
    assert record["heartbeatInterval"] == 123
    assert record["lastSeen"] == START_MS and record["bootAt"] == START_MS
    if version is V16:
        assert record["boot"]["chargePointVendor"] == "Acme"
        assert record["boot"]["firmwareVersion"] == "1.2.3"
    else:
        assert record["boot"]["vendorName"] == "Acme" and record["boot"]["reason"] == "PowerUp"


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_charger_pending(make_charger, version) -> None:
    charger: Charger = make_charger(version, config=_config(UnknownChargerPolicy.PENDING))
    response = charger.result("BootNotification", boot_payload(version))
    assert response == {"status": "Pending", "currentTime": START_ISO, "interval": 45}
    record = charger.store.get_charger("CP1")
    assert record["bootStatus"] == "Pending"
    assert not record.get("registered")
    # Still pending at the next boot: an operator has to register it.
    assert charger.result("BootNotification", boot_payload(version))["status"] == "Pending"


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_charger_rejected_leaves_no_trace(make_charger, version) -> None:
    charger: Charger = make_charger(version, config=_config(UnknownChargerPolicy.REJECT))
    response = charger.result("BootNotification", boot_payload(version))
    assert response == {"status": "Rejected", "currentTime": START_ISO, "interval": 45}
    assert charger.store.get_charger("CP1") is None
    assert charger.store.list_chargers() == []


def test_default_policy_is_reject(make_charger) -> None:
    charger: Charger = make_charger(V16, config=ProcessorConfig())
    assert charger.result("BootNotification", boot_payload(V16))["status"] == "Rejected"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("status", ["Accepted", "Pending", "Rejected"])
@pytest.mark.parametrize("policy", list(UnknownChargerPolicy))
def test_the_registry_decides_for_registered_chargers(make_charger, version, status, policy) -> None:
    charger: Charger = make_charger(version, config=_config(policy))
    charger.store.update_charger("CP1", {"registered": True, "registrationStatus": status})
    response = charger.result("BootNotification", boot_payload(version))
    assert response["status"] == status
    assert response["interval"] == (123 if status == "Accepted" else 45)
    record = charger.store.get_charger("CP1")
    assert record["bootStatus"] == status
    assert record.get("autoRegistered") is None  # registered by the operator, not on the fly


def test_registered_without_a_valid_status_is_accepted(make_charger) -> None:
    charger: Charger = make_charger(V16, config=_config(UnknownChargerPolicy.REJECT))
    charger.store.update_charger("CP1", {"registered": True, "registrationStatus": "Bogus"})
    assert charger.result("BootNotification", boot_payload(V16))["status"] == "Accepted"


def test_registry_entry_without_registration_follows_the_policy(make_charger) -> None:
    charger: Charger = make_charger(V16, config=_config(UnknownChargerPolicy.PENDING))
    charger.store.update_charger("CP1", {"registrationStatus": "Accepted"})  # not "registered"
    assert charger.result("BootNotification", boot_payload(V16))["status"] == "Pending"


@pytest.mark.parametrize("version", V2X)
def test_v2_station_rejected_at_boot_may_only_boot_again(make_charger, version) -> None:
    # OCPP 2.x B02/B03: a station that was rejected may send nothing but BootNotification.
    charger: Charger = make_charger(version, config=_config(UnknownChargerPolicy.ACCEPT))
    charger.store.update_charger("CP1", {"registered": True, "registrationStatus": "Rejected"})
    assert charger.result("BootNotification", boot_payload(version))["status"] == "Rejected"
    assert charger.error("Heartbeat", {}) == "SecurityError"
    assert charger.error("DataTransfer", {"vendorId": "v"}) == "SecurityError"
    assert charger.store.list_events("CP1") == []
    # Once the operator accepts it, the next boot lets it in.
    charger.store.update_charger("CP1", {"registrationStatus": "Accepted"})
    charger.clock.advance(60)
    assert charger.result("BootNotification", boot_payload(version))["status"] == "Accepted"
    assert set(charger.result("Heartbeat", {})) == {"currentTime"}


def test_v16_rejected_charger_is_still_answered(make_charger) -> None:
    # 1.6 has no such rule: a rejected charger should only retry the boot, but is answered.
    charger: Charger = make_charger(V16)
    charger.store.update_charger("CP1", {"registered": True, "registrationStatus": "Rejected"})
    assert charger.result("BootNotification", boot_payload(V16))["status"] == "Rejected"
    assert set(charger.result("Heartbeat", {})) == {"currentTime"}


@pytest.mark.parametrize("version", VERSIONS)
def test_heartbeat_gives_the_time_and_keeps_last_seen(make_charger, version) -> None:
    charger: Charger = make_charger(version, config=_config(UnknownChargerPolicy.ACCEPT))
    charger.result("BootNotification", boot_payload(version))
    charger.clock.advance(90.5)
    assert charger.result("Heartbeat", {}) == {"currentTime": "2025-06-15T15:08:10.500Z"}
    record = charger.store.get_charger("CP1")
    assert record["lastSeen"] == START_MS + 90_500
    assert record["bootAt"] == START_MS  # the boot itself is not rewritten


@pytest.mark.parametrize("version", VERSIONS)
def test_any_message_updates_last_seen_and_protocol(make_charger, version) -> None:
    charger: Charger = make_charger(version)
    charger.store.update_charger("CP1", {"registered": True, "protocol": "ocpp1.6", "lastSeen": 1})
    charger.clock.advance(5)
    charger.result("DataTransfer", {"vendorId": "v"})
    record = charger.store.get_charger("CP1")
    assert record["lastSeen"] == START_MS + 5000
    assert record["protocol"] == version.value


def test_messages_from_an_unknown_charger_do_not_register_it(make_charger) -> None:
    charger: Charger = make_charger(V16)
    assert set(charger.result("Heartbeat", {})) == {"currentTime"}
    assert charger.store.get_charger("CP1") is None


def test_a_second_boot_updates_the_boot_info(make_charger) -> None:
    charger: Charger = make_charger(V16, config=_config(UnknownChargerPolicy.ACCEPT))
    charger.result("BootNotification", boot_payload(V16))
    charger.clock.advance(60)
    charger.result("BootNotification", {**boot_payload(V16), "firmwareVersion": "2.0"})
    record = charger.store.get_charger("CP1")
    assert record["boot"]["firmwareVersion"] == "2.0"
    assert record["bootAt"] == START_MS + 60_000
    assert record["registeredAt"] == START_MS  # registered once
    assert len(charger.store.list_chargers()) == 1
