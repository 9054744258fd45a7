"""Salted password hashes for security profiles 1 and 2 (HTTP Basic auth).

Format: ``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``. The salt comes from the
caller (``ocpp_core`` has no random source of its own). OCPP asks chargers for 16 to 40
character machine passwords, which are not guessable the way people's passwords are, so a
modest iteration count keeps a reconnect storm of thousands of chargers cheap.
"""

from __future__ import annotations

import hashlib
import hmac

ALGORITHM = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 10_000
MAX_PASSWORD_LENGTH = 256


def hash_password(password: str, salt: bytes, iterations: int = DEFAULT_ITERATIONS) -> str:
    if not isinstance(password, str) or not password or len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"password must be 1 to {MAX_PASSWORD_LENGTH} characters")
    if len(salt) < 8:
        raise ValueError("salt must be at least 8 bytes")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{ALGORITHM}${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches ``encoded``; False for any malformed input."""
    if not isinstance(password, str) or not isinstance(encoded, str) or len(password) > MAX_PASSWORD_LENGTH:
        return False
    parts = encoded.split("$")
    if len(parts) != 4 or parts[0] != ALGORITHM:
        return False
    try:
        iterations = int(parts[1])
        salt = bytes.fromhex(parts[2])
        expected = bytes.fromhex(parts[3])
        candidate = password.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        return False
    if not 1 <= iterations <= 1_000_000:
        return False
    digest = hashlib.pbkdf2_hmac("sha256", candidate, salt, iterations)
    return hmac.compare_digest(digest, expected)
