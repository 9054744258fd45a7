"""Stored records as the operator API shows them.

Records are shown as stored (camelCase, as OCPP spells things) with three changes:
secrets and storage internals are dropped (``passwordHash``, ``expiresAt``), epoch-ms
timestamps (``lastSeen`` and ``...At`` fields) become RFC 3339 UTC strings, and a charger
gets its connector / EVSE statuses. Fields are kept generically rather than listed, so what
a new handler stores shows up without touching the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ocpp_core.calls import public_view
from ocpp_core.handlers import transactions
from ocpp_core.handlers.common import ORDER_SUFFIX
from ocpp_core.timefmt import format_ms, parse_ms

#: never shown: the password hash, and storage internals (TTL in epoch seconds, table keys)
HIDDEN = frozenset({"passwordHash", "expiresAt", "pk", "sk", "connectionAt"})
#: the charger list leaves out the large maps that ``GET /chargers/{id}`` shows
DETAIL_ONLY = frozenset({"configuration", "variables", "installedCertificates", "unknownConfigurationKeys"})
_MS_FIELDS = frozenset({"lastSeen", "notBefore", "notAfter"})
# Plausible epoch milliseconds (2001 to 2286): anything else is left as stored.
_MS_RANGE = (10**12, 10**13)


def is_epoch_ms_field(name: str) -> bool:
    return name in _MS_FIELDS or (name.endswith("At") and name not in HIDDEN)


def _time(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and _MS_RANGE[0] <= value < _MS_RANGE[1]:
        return format_ms(value)
    return value


def present(record: Mapping[str, Any], *, drop: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A stored record with secrets dropped and epoch-ms fields as RFC 3339 strings."""
    return {
        key: (_time(value) if is_epoch_ms_field(key) else value)
        for key, value in record.items()
        if key not in HIDDEN and key not in drop and not _orders_writes(key)
    }


def _orders_writes(name: str) -> bool:
    """Attributes that only order conditional writes (``bootOrder``, a status's ``order``)."""
    return name == "order" or name.endswith(ORDER_SUFFIX)


def connector_view(status: Mapping[str, Any]) -> dict[str, Any]:
    return present(status, drop=frozenset({"chargePointId"}))


def _connector_order(status: Mapping[str, Any]) -> tuple[int, int]:
    evse, connector = status.get("evseId", 0), status.get("connectorId", 0)
    return (evse if isinstance(evse, int) else 0, connector if isinstance(connector, int) else 0)


def charger_view(record: Mapping[str, Any], statuses: list[dict[str, Any]], *, detail: bool) -> dict[str, Any]:
    """``GET /chargers`` (``detail=False``) and ``GET /chargers/{id}`` (``detail=True``)."""
    view: dict[str, Any] = {
        "chargePointId": record.get("chargePointId"),
        "registered": bool(record.get("registered", False)),
        "registrationStatus": record.get("registrationStatus"),
        "protocol": record.get("protocol"),
        "connected": bool(record.get("connected", False)),
        "lastSeen": None,
        "hasPassword": bool(record.get("passwordHash")),
    }
    view.update(present(record, drop=frozenset() if detail else DETAIL_ONLY))
    if view["registered"] and not view.get("registrationStatus"):
        # Auto-registered chargers have none stored; the processor treats them as Accepted.
        view["registrationStatus"] = "Accepted"
    view["connectors"] = [connector_view(s) for s in sorted(statuses, key=_connector_order)]
    if detail:
        view.setdefault("configuration", {})
        view.setdefault("variables", {})
    return view


def id_tag_view(id_tag: str, record: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """The stored authorization, plus ``effectiveStatus``: what a charger would be told now."""
    view = {"idTag": id_tag, **present(record)}
    status = record.get("status") or "Accepted"
    expiry = parse_ms(record.get("expiryDate"))
    view["effectiveStatus"] = "Expired" if status == "Accepted" and expiry is not None and expiry <= now_ms else status
    return view


def transaction_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """Energy derived from the readings (``ocpp_core``'s view), times as RFC 3339."""
    return present(transactions.transaction_view(record))


def call_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """``ocpp_core.calls.public_view`` plus what the operator sent and when it times out."""
    view = public_view(record)
    for key in ("protocol", "payload"):
        if key in record:
            view[key] = record[key]
    view["timeoutAt"] = _time(record.get("timeoutAt"))
    return view
