"""RFC 3339 timestamps as OCPP writes them (UTC, ``Z``), from and to epoch milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def format_ms(epoch_ms: int) -> str:
    """``1700000000123`` -> ``2023-11-14T22:13:20.123Z``."""
    t = time.gmtime(epoch_ms // 1000)  # a conversion of the given instant, not a clock read
    return (
        f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}.{epoch_ms % 1000:03d}Z"
    )


def parse_ms(value: object) -> int | None:
    """Epoch ms of an RFC 3339 date-time, or None if it is not one (never raises)."""
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # OCPP times are UTC; a missing offset means UTC
    try:
        return int(dt.timestamp() * 1000)
    except (OverflowError, OSError, ValueError):
        return None
