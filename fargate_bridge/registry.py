"""The charger registry as the bridge sees it: a port and two adapters.

The bridge only reads what it needs for security profiles 1 and 2 (the password hash) and
whether the charger is known at all. The operator API and the processor write the item
(``ocpp_core.keys.charger_key``); ``passwordHash`` and ``registrationStatus`` are optional.

:class:`ChargerRegistry` is synchronous (boto3 is); :class:`RegistryReader` is what the
server awaits: it runs lookups in a worker thread, caches them for a short TTL and merges
concurrent lookups of one id, so a reconnect storm costs one read per charger.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol

from ocpp_core.keys import charger_key

from .errors import RegistryUnavailable
from .throttle import TtlCache

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChargerCredentials:
    password_hash: str | None = None
    registration_status: str | None = None
    registered: bool = True


class ChargerRegistry(Protocol):
    def lookup(self, charge_point_id: str) -> ChargerCredentials | None:
        """The charger's credentials, or None when it is not in the registry.

        May block; raises :class:`RegistryUnavailable` when the backend fails.
        """
        ...


class InMemoryChargerRegistry:
    """Tests and the local stack: a dict, empty unless told otherwise."""

    def __init__(self, chargers: Mapping[str, ChargerCredentials] | None = None):
        self._chargers: dict[str, ChargerCredentials] = dict(chargers or {})

    def put(self, charge_point_id: str, credentials: ChargerCredentials) -> None:
        self._chargers[charge_point_id] = credentials

    def remove(self, charge_point_id: str) -> None:
        self._chargers.pop(charge_point_id, None)

    def lookup(self, charge_point_id: str) -> ChargerCredentials | None:
        return self._chargers.get(charge_point_id)


def credentials_from_item(item: Mapping[str, Any] | None) -> ChargerCredentials | None:
    """Registry item (plain values) to credentials; None when it does not make a known charger.

    The table also holds presence records for chargers that were let in by the ``accept``
    policy without being registered; such an item has neither ``registered`` nor a password or
    status, and counts as unknown.
    """
    if not item:
        return None
    password_hash = item.get("passwordHash")
    status = item.get("registrationStatus")
    registered = bool(item.get("registered"))
    password_hash = password_hash if isinstance(password_hash, str) and password_hash else None
    status = status if isinstance(status, str) and status else None
    if not registered and password_hash is None and status is None:
        return None
    return ChargerCredentials(password_hash=password_hash, registration_status=status, registered=registered)


class DynamoChargerRegistry:
    """Reads the charger item from the single DynamoDB table (``BRIDGE_REGISTRY_TABLE``)."""

    # Names through placeholders: no attribute can collide with a DynamoDB reserved word.
    _PROJECTION = "#h, #s, #r"
    _NAMES = {"#h": "passwordHash", "#s": "registrationStatus", "#r": "registered"}

    def __init__(self, table_name: str, client: Any | None = None):
        if client is None:
            import boto3  # deferred: the local stack without a table never needs it

            # boto3 honours AWS_ENDPOINT_URL (moto locally) and AWS_REGION.
            client = boto3.client("dynamodb")
        self._client = client
        self._table = table_name

    def lookup(self, charge_point_id: str) -> ChargerCredentials | None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = {name: {"S": value} for name, value in charger_key(charge_point_id).items()}
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key=key,
                ProjectionExpression=self._PROJECTION,
                ExpressionAttributeNames=self._NAMES,
            )
        except (BotoCoreError, ClientError) as exc:
            raise RegistryUnavailable(f"registry read failed for {charge_point_id}: {exc}") from exc
        return credentials_from_item(_plain(response.get("Item")))


def _plain(item: Mapping[str, Mapping[str, Any]] | None) -> dict[str, Any] | None:
    """The few attribute types we read, from DynamoDB's typed JSON (no TypeDeserializer needed)."""
    if item is None:
        return None
    plain: dict[str, Any] = {}
    for name, typed in item.items():
        if "S" in typed:
            plain[name] = typed["S"]
        elif "BOOL" in typed:
            plain[name] = bool(typed["BOOL"])
        elif "N" in typed:
            plain[name] = typed["N"]
    return plain


class RegistryReader:
    """Async, cached, single-flight reads of a blocking :class:`ChargerRegistry`."""

    def __init__(
        self,
        registry: ChargerRegistry,
        *,
        ttl: float = 30.0,
        max_entries: int = 50_000,
        executor: Executor | None = None,
    ):
        self.registry = registry
        self._executor = executor  # None: the loop's default pool
        self._cache: TtlCache[str, ChargerCredentials | None] = TtlCache(ttl, max_entries)
        self._pending: dict[str, asyncio.Future[ChargerCredentials | None]] = {}

    def forget(self, charge_point_id: str) -> None:
        self._cache.discard(charge_point_id)

    async def lookup(self, charge_point_id: str) -> ChargerCredentials | None:
        hit, value = self._cache.get(charge_point_id)
        if hit:
            return value
        pending = self._pending.get(charge_point_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ChargerCredentials | None] = asyncio.get_running_loop().create_future()
        self._pending[charge_point_id] = future
        try:
            loop = asyncio.get_running_loop()
            value = await loop.run_in_executor(self._executor, self.registry.lookup, charge_point_id)
        except Exception as exc:
            if not isinstance(exc, RegistryUnavailable):
                exc = RegistryUnavailable(f"registry read failed for {charge_point_id}: {exc!r}")
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters, if any, get it through shield
            raise exc from None
        else:
            self._cache.put(charge_point_id, value)
            future.set_result(value)
            return value
        finally:
            del self._pending[charge_point_id]
            if not future.done():  # this lookup was cancelled: do not leave the others hanging
                future.cancel()
