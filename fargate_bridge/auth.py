"""Security profiles 1 and 2: HTTP Basic auth against the registry's salted hash (DESIGN §3).

Policy, in order:

* unknown charger: refused under ``BRIDGE_UNKNOWN_CHARGERS=reject``; under ``accept`` let in,
  unless ``BRIDGE_REQUIRE_PASSWORD=true`` (then there is no hash to check against: refused);
* known charger with a ``passwordHash``: must present the right password;
* known charger without one: let in, unless ``BRIDGE_REQUIRE_PASSWORD=true``.

PBKDF2 costs ~13 ms of CPU, so it runs in a worker thread and successes are cached, keyed by
the id, the stored hash and a SHA-256 of the presented password: a reconnect storm of
thousands of chargers then costs one hash each. Failures are not cached; instead each
failure of an id delays that id's next attempt (exponential, bounded).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
from dataclasses import dataclass

from ocpp_core.passwords import verify_password

from .errors import RegistryUnavailable
from .registry import ChargerCredentials, RegistryReader
from .settings import UnknownChargers
from .throttle import FailureBackoff, TtlCache

logger = logging.getLogger(__name__)


class Verdict(enum.Enum):
    ACCEPTED = "accepted"
    UNKNOWN = "unknown charger"
    MISSING_PASSWORD = "missing credentials"
    WRONG_PASSWORD = "invalid credentials"
    NO_PASSWORD_SET = "no password registered for this charger"
    UNAVAILABLE = "registry unavailable"

    @property
    def ok(self) -> bool:
        return self is Verdict.ACCEPTED


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    unknown_chargers: UnknownChargers = UnknownChargers.ACCEPT
    require_password: bool = False


def decide(
    credentials: ChargerCredentials | None, password: str | None, policy: AuthPolicy
) -> Verdict | ChargerCredentials:
    """Everything but the hash check: a final verdict, or the credentials whose hash must be checked."""
    if credentials is None:
        if policy.unknown_chargers is UnknownChargers.REJECT:
            return Verdict.UNKNOWN
        return Verdict.NO_PASSWORD_SET if policy.require_password else Verdict.ACCEPTED
    if credentials.password_hash is None:
        return Verdict.NO_PASSWORD_SET if policy.require_password else Verdict.ACCEPTED
    if password is None:
        return Verdict.MISSING_PASSWORD
    return credentials


class Authenticator:
    def __init__(
        self,
        reader: RegistryReader,
        policy: AuthPolicy,
        *,
        backoff: FailureBackoff[str] | None = None,
        verified_ttl: float = 600.0,
        verified_max: int = 50_000,
    ):
        self.reader = reader
        self.policy = policy
        self.backoff: FailureBackoff[str] = backoff or FailureBackoff()
        self._verified: TtlCache[tuple[str, str, bytes], bool] = TtlCache(verified_ttl, verified_max)

    async def authenticate(self, charge_point_id: str, password: str | None) -> Verdict:
        delay = self.backoff.delay(charge_point_id)
        if delay > 0:
            # Slow down guessing: this id failed recently. The socket just waits (cheap).
            await asyncio.sleep(delay)
        try:
            credentials = await self.reader.lookup(charge_point_id)
        except RegistryUnavailable as exc:
            logger.warning("registry lookup failed for %s: %s", charge_point_id, exc)
            return Verdict.UNAVAILABLE
        step = decide(credentials, password, self.policy)
        if isinstance(step, Verdict):
            verdict = step
        else:
            assert password is not None and step.password_hash is not None
            verdict = (
                Verdict.ACCEPTED
                if await self._check(charge_point_id, password, step.password_hash)
                else Verdict.WRONG_PASSWORD
            )
        if verdict.ok:
            self.backoff.succeeded(charge_point_id)
        elif verdict is not Verdict.UNAVAILABLE:
            self.backoff.failed(charge_point_id)
        return verdict

    async def _check(self, charge_point_id: str, password: str, password_hash: str) -> bool:
        key = (charge_point_id, password_hash, hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest())
        hit, _ = self._verified.get(key)
        if hit:
            return True
        ok = await asyncio.to_thread(verify_password, password, password_hash)
        if ok:
            self._verified.put(key, True)
        return ok
