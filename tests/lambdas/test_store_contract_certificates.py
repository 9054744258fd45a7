"""The certificate part of the StateStore contract (``CertificateStore``), on every implementation:
``InMemoryStore`` and ``DynamoStore`` over moto, as in ``test_store_contract.py``."""

from __future__ import annotations

from ocpp_core.ports import ItemUpdate, StateStore
from tests.fakes import START_MS

DAY_MS = 86_400_000


def _certificate(serial: str, cp: str = "CP1", days: int = 365, issued: int = START_MS) -> dict[str, object]:
    return {
        "serial": serial,
        "chargePointId": cp,
        "subject": f"Common Name: {cp}",
        "notBefore": issued,
        "notAfter": issued + days * DAY_MS,
        "status": "valid",
        "pem": "-----BEGIN CERTIFICATE-----\n...",
        "issuedAt": issued,
    }


def test_a_certificate_is_created_once(store: StateStore) -> None:
    first = _certificate("a1")
    assert store.create_certificate("CP1", "a1", first) == (first, True)
    stored, created = store.create_certificate("CP1", "a1", {**first, "pem": "another signature"})
    assert not created and stored["pem"] == first["pem"]
    assert store.get_certificate("CP1", "a1") == first
    assert store.get_certificate("CP2", "a1") is None


def test_certificates_list_newest_first_per_charger(store: StateStore) -> None:
    store.create_certificate("CP1", "a1", _certificate("a1", issued=START_MS))
    store.create_certificate("CP1", "b2", _certificate("b2", issued=START_MS + 1000))
    store.create_certificate("CP10", "c3", _certificate("c3", cp="CP10"))
    assert [c["serial"] for c in store.list_certificates("CP1")] == ["b2", "a1"]
    assert [c["serial"] for c in store.list_certificates("CP10")] == ["c3"]


def test_update_applies_its_conditions(store: StateStore) -> None:
    store.create_certificate("CP1", "a1", _certificate("a1"))
    revoke = ItemUpdate(
        set={"status": "revoked", "revokedAt": START_MS}, must_exist=True, require_absent=("revokedAt",)
    )
    assert store.update_certificate("CP1", "a1", revoke)
    assert not store.update_certificate("CP1", "a1", revoke)  # already revoked
    assert not store.update_certificate("CP1", "zz", revoke)  # no such certificate
    assert store.get_certificate("CP1", "zz") is None
    assert store.get_certificate("CP1", "a1")["status"] == "revoked"


def test_expiring_certificates_across_chargers_soonest_first(store: StateStore) -> None:
    store.create_certificate("CP1", "a1", _certificate("a1", days=10))
    store.create_certificate("CP2", "b2", _certificate("b2", cp="CP2", days=5))
    store.create_certificate("CP3", "c3", _certificate("c3", cp="CP3", days=100))
    soon = store.expiring_certificates(START_MS + 30 * DAY_MS)
    assert [(c["chargePointId"], c["serial"]) for c in soon] == [("CP2", "b2"), ("CP1", "a1")]
    assert store.expiring_certificates(START_MS + 5 * DAY_MS) == []  # strictly before
    assert len(store.expiring_certificates(START_MS + 1000 * DAY_MS, limit=2)) == 2
