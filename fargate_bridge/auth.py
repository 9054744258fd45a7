"""Security profiles 1 and 2: HTTP Basic auth against the registry's salted hash (DESIGN §3).

Policy, in order:

* unknown charger: refused under ``BRIDGE_UNKNOWN_CHARGERS=reject``; under ``accept`` let in,
  unless ``BRIDGE_REQUIRE_PASSWORD=true`` (then there is no hash to check against: refused);
* known charger with a ``passwordHash``: must present the right password;
* known charger without one: let in, unless ``BRIDGE_REQUIRE_PASSWORD=true``;
* a charger whose registry item says ``securityProfile`` 3 is refused here whatever its
  password: only a valid client certificate admits it (``client_certs``, checked before this).

PBKDF2 costs ~13 ms of CPU, so it runs in a worker thread and successes are cached, keyed by
the id, the stored hash and a SHA-256 of the presented password: a reconnect storm of
thousands of chargers then costs one hash each. Failures are not cached; instead each
failure of an id delays that id's next attempt (exponential, bounded).

Guessing is throttled per id *whatever the concurrency*: the attempts of one id that are not
settled by the cache take turns (one at a time, each after the id's backoff delay), and at most
``max_waiting`` wait for a turn; more are refused at once, unchecked. A password already verified
is accepted from the cache without waiting its turn, so a flood of wrong guesses for an id does
not lock the real charger out (a cache hit is no oracle: only the right password hits it).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
from concurrent.futures import Executor
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
    CERTIFICATE_REQUIRED = "security profile 3: a client certificate is required"
    THROTTLED = "too many attempts for this charger at once"
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
    if credentials.requires_certificate:
        return Verdict.CERTIFICATE_REQUIRED
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
        max_waiting: int = 2,
        executor: Executor | None = None,
    ):
        self.reader = reader
        self.policy = policy
        self.backoff: FailureBackoff[str] = backoff or FailureBackoff()
        self.max_waiting = max_waiting
        self._executor = executor
        self._verified: TtlCache[tuple[str, str, bytes], bool] = TtlCache(verified_ttl, verified_max)
        # Per id with attempts under way: its turn lock and how many attempts hold or want it.
        # An entry lives only while attempts do, so memory follows concurrent handshakes.
        self._turns: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    async def authenticate(self, charge_point_id: str, password: str | None) -> Verdict:
        try:
            credentials = await self.reader.lookup(charge_point_id)
        except RegistryUnavailable as exc:
            logger.warning("registry lookup failed for %s: %s", charge_point_id, exc)
            return Verdict.UNAVAILABLE
        step = decide(credentials, password, self.policy)
        key: tuple[str, str, bytes] | None = None
        if not isinstance(step, Verdict):
            assert password is not None and step.password_hash is not None
            key = (
                charge_point_id,
                step.password_hash,
                hashlib.sha256(password.encode("utf-8", "surrogatepass")).digest(),
            )
            if self._verified.get(key)[0]:
                self.backoff.succeeded(charge_point_id)
                return Verdict.ACCEPTED  # verified before: no turn to wait for
        if step is Verdict.ACCEPTED and self.backoff.delay(charge_point_id) == 0.0:
            return step  # nothing to guess and no failures to slow down
        lock, users = self._turns.setdefault(charge_point_id, (asyncio.Lock(), [0]))
        if users[0] > self.max_waiting:
            return Verdict.THROTTLED
        users[0] += 1
        try:
            async with lock:
                return await self._attempt(charge_point_id, step, password, key)
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._turns[charge_point_id]

    async def _attempt(
        self,
        charge_point_id: str,
        step: Verdict | ChargerCredentials,
        password: str | None,
        key: tuple[str, str, bytes] | None,
    ) -> Verdict:
        """One attempt, holding the id's turn: wait out its backoff, then decide."""
        delay = self.backoff.delay(charge_point_id)
        if delay > 0:
            # Slow down guessing: this id failed recently. The socket just waits (cheap).
            await asyncio.sleep(delay)
        if isinstance(step, Verdict):
            verdict = step
        else:
            assert password is not None and step.password_hash is not None and key is not None
            verdict = (
                Verdict.ACCEPTED if await self._check(key, password, step.password_hash) else Verdict.WRONG_PASSWORD
            )
        if verdict.ok:
            self.backoff.succeeded(charge_point_id)
        else:
            self.backoff.failed(charge_point_id)
        return verdict

    async def _check(self, key: tuple[str, str, bytes], password: str, password_hash: str) -> bool:
        if self._verified.get(key)[0]:
            return True
        loop = asyncio.get_running_loop()
        ok = await loop.run_in_executor(self._executor, verify_password, password, password_hash)
        if ok:
            self._verified.put(key, True)
        return ok
