"""The OCPP versions a user may name: ``1.6``, ``2.0.1``, ``2.1``, with or without ``ocpp``."""

from __future__ import annotations

from ocpp_core.versions import OcppVersion

_VERSION_ALIASES = {
    "1.6": OcppVersion.V16,
    "16": OcppVersion.V16,
    "2.0.1": OcppVersion.V201,
    "201": OcppVersion.V201,
    "2.0": OcppVersion.V201,
    "2.1": OcppVersion.V21,
    "21": OcppVersion.V21,
}


def parse_version(value: str | OcppVersion) -> OcppVersion:
    """``1.6`` / ``2.0.1`` / ``2.1`` (with or without the ``ocpp`` prefix) to a version."""
    if isinstance(value, OcppVersion):
        return value
    text = value.strip().lower()
    version = OcppVersion.parse(text) or _VERSION_ALIASES.get(text.removeprefix("ocpp"))
    if version is None:
        raise ValueError(f"unknown OCPP version {value!r} (use 1.6, 2.0.1 or 2.1)")
    return version
