"""The charger registry as the bridge sees it: a port and two adapters.

The bridge only reads what it needs for security profiles 1 and 2 (the password hash),
whether the charger is known at all and its ``securityProfile`` (3: a client certificate is
required). The operator API and the processor write the item (``ocpp_core.keys.charger_key``);
``passwordHash``, ``registrationStatus`` and ``securityProfile`` are optional. For profile 3 it
also reads the record of the certificate a charger presents (``CP#<id>`` / ``CERT#<serial>``,
written by the CSMS when it issues one, ``ocpp_core.certificates``).

:class:`ChargerRegistry` is synchronous (boto3 is); :class:`RegistryReader` is what the
server awaits: it runs lookups in a worker thread, caches them for a short TTL and merges
concurrent lookups of one id, so a reconnect storm costs one read per charger. Certificate
records are cached for at most :data:`CERTIFICATE_CACHE_TTL` seconds: a revocation takes effect
within that, without a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Hashable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ocpp_core.certificates import CertificateStatus
from ocpp_core.keys import PK, SK, certificate_sk, charger_key, charger_pk

from .errors import RegistryUnavailable
from .throttle import TtlCache

logger = logging.getLogger(__name__)
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: Longest a certificate record is reused: "the bridge reads revocations without a restart".
CERTIFICATE_CACHE_TTL = 2.0
#: OCPP security profiles the registry may name (DESIGN §9).
SECURITY_PROFILES = frozenset({1, 2, 3})


@dataclass(frozen=True, slots=True)
class ChargerCredentials:
    password_hash: str | None = None
    registration_status: str | None = None
    registered: bool = True
    #: 1, 2 or 3 as set by ``PUT /chargers/{id}``; None: not set (Basic auth rules apply).
    security_profile: int | None = None

    @property
    def requires_certificate(self) -> bool:
        return self.security_profile == 3


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    """What the bridge needs of a certificate record: whose it is and whether it still holds."""

    charge_point_id: str | None
    status: str | None
    not_after_ms: int | None = None

    @property
    def valid(self) -> bool:
        return self.status == CertificateStatus.VALID.value


class ChargerRegistry(Protocol):
    def lookup(self, charge_point_id: str) -> ChargerCredentials | None:
        """The charger's credentials, or None when it is not in the registry.

        May block; raises :class:`RegistryUnavailable` when the backend fails.
        """
        ...

    def certificate(self, charge_point_id: str, serial: str) -> CertificateRecord | None:
        """The record of certificate ``serial`` (lower-case hex) of the charger, or None.

        May block; raises :class:`RegistryUnavailable` when the backend fails.
        """
        ...


class InMemoryChargerRegistry:
    """Tests and the local stack: a dict, empty unless told otherwise."""

    def __init__(self, chargers: Mapping[str, ChargerCredentials] | None = None):
        self._chargers: dict[str, ChargerCredentials] = dict(chargers or {})
        self._certificates: dict[tuple[str, str], CertificateRecord] = {}

    def put(self, charge_point_id: str, credentials: ChargerCredentials) -> None:
        self._chargers[charge_point_id] = credentials

    def remove(self, charge_point_id: str) -> None:
        self._chargers.pop(charge_point_id, None)

    def lookup(self, charge_point_id: str) -> ChargerCredentials | None:
        return self._chargers.get(charge_point_id)

    def put_certificate(self, charge_point_id: str, serial: str, record: CertificateRecord) -> None:
        self._certificates[(charge_point_id, serial)] = record

    def certificate(self, charge_point_id: str, serial: str) -> CertificateRecord | None:
        return self._certificates.get((charge_point_id, serial))


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
    profile = _security_profile(item.get("securityProfile"))
    if not registered and password_hash is None and status is None and profile is None:
        return None
    return ChargerCredentials(
        password_hash=password_hash, registration_status=status, registered=registered, security_profile=profile
    )


def _security_profile(value: Any) -> int | None:
    """1, 2 or 3 from a stored number (DynamoDB's ``N`` arrives as a string); anything else: not set."""
    if isinstance(value, bool):
        return None
    try:
        profile = int(value)
    except (TypeError, ValueError):
        return None
    return profile if profile in SECURITY_PROFILES else None


def certificate_from_item(item: Mapping[str, Any] | None) -> CertificateRecord | None:
    if not item:
        return None
    cp, status, not_after = item.get("chargePointId"), item.get("status"), item.get("notAfter")
    try:
        not_after_ms = int(not_after) if not_after is not None and not isinstance(not_after, bool) else None
    except (TypeError, ValueError):
        not_after_ms = None
    return CertificateRecord(
        charge_point_id=cp if isinstance(cp, str) else None,
        status=status if isinstance(status, str) else None,
        not_after_ms=not_after_ms,
    )


class DynamoChargerRegistry:
    """Reads the charger item from the single DynamoDB table (``BRIDGE_REGISTRY_TABLE``)."""

    # Names through placeholders: no attribute can collide with a DynamoDB reserved word.
    _PROJECTION = "#h, #s, #r, #p"
    _NAMES = {"#h": "passwordHash", "#s": "registrationStatus", "#r": "registered", "#p": "securityProfile"}
    _CERT_PROJECTION = "#c, #s, #n"
    _CERT_NAMES = {"#c": "chargePointId", "#s": "status", "#n": "notAfter"}

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

    def certificate(self, charge_point_id: str, serial: str) -> CertificateRecord | None:
        from botocore.exceptions import BotoCoreError, ClientError

        key = {PK: {"S": charger_pk(charge_point_id)}, SK: {"S": certificate_sk(serial)}}
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key=key,
                ProjectionExpression=self._CERT_PROJECTION,
                ExpressionAttributeNames=self._CERT_NAMES,
                # A revocation written a moment ago must be seen: a strongly consistent read
                # costs one read unit instead of half, once per certificate handshake.
                ConsistentRead=True,
            )
        except (BotoCoreError, ClientError) as exc:
            raise RegistryUnavailable(f"certificate read failed for {charge_point_id}/{serial}: {exc}") from exc
        return certificate_from_item(_plain(response.get("Item")))


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
        self._chargers: _SingleFlight[str, ChargerCredentials | None] = _SingleFlight(TtlCache(ttl, max_entries))
        self._certificates: _SingleFlight[tuple[str, str], CertificateRecord | None] = _SingleFlight(
            TtlCache(min(ttl, CERTIFICATE_CACHE_TTL), max_entries)
        )

    def forget(self, charge_point_id: str) -> None:
        self._chargers.cache.discard(charge_point_id)

    async def lookup(self, charge_point_id: str) -> ChargerCredentials | None:
        return await self._chargers.get(
            charge_point_id, lambda: self._run(self.registry.lookup, charge_point_id), charge_point_id
        )

    async def certificate(self, charge_point_id: str, serial: str) -> CertificateRecord | None:
        """The certificate record, read at most every :data:`CERTIFICATE_CACHE_TTL` seconds."""
        return await self._certificates.get(
            (charge_point_id, serial),
            lambda: self._run(self.registry.certificate, charge_point_id, serial),
            f"{charge_point_id}/{serial}",
        )

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)


class _SingleFlight(Generic[K, V]):
    """A TTL cache in front of an async read, with concurrent reads of one key merged."""

    def __init__(self, cache: TtlCache[K, V]):
        self.cache = cache
        self._pending: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]], what: str) -> V:
        hit, value = self.cache.get(key)
        if hit:
            return value  # type: ignore[return-value]  # a hit may hold None when V allows it
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await read()
        except Exception as exc:
            if not isinstance(exc, RegistryUnavailable):
                exc = RegistryUnavailable(f"registry read failed for {what}: {exc!r}")
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters, if any, get it through shield
            raise exc from None
        else:
            self.cache.put(key, value)
            future.set_result(value)
            return value
        finally:
            del self._pending[key]
            if not future.done():  # this read was cancelled: do not leave the others hanging
                future.cancel()
