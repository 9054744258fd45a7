"""Loopback port helpers."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free on ``host`` a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


#: Linux's range for outgoing connections' local ports; elsewhere IANA's dynamic range (macOS).
_EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_DYNAMIC_RANGE = (49152, 65535)


def ephemeral_range() -> tuple[int, int]:
    try:
        low, high = (int(part) for part in _EPHEMERAL_RANGE_FILE.read_text().split())
        return low, high
    except (OSError, ValueError):
        return _DYNAMIC_RANGE


def free_listen_port(host: str = "127.0.0.1") -> int:
    """A free port for a server started later, outside the ephemeral range.

    A port from :func:`free_port` is an ephemeral one: until the server binds it, any outgoing
    connection on the machine (boto3 to moto, MQTT clients, other test runs) may get it as its
    local port, and the server then fails with "port in use". Ports below the ephemeral range
    are only ever taken by an explicit bind.
    """
    low, high = ephemeral_range()
    first, last = (10000, low - 1) if low > 11000 else (high + 1, 65535)
    chooser = random.SystemRandom()
    for _ in range(100):
        port = chooser.randint(first, last)
        if port_free(host, port):
            return port
    return free_port(host)


def port_free(host: str, port: int) -> bool:
    """Whether something could listen on ``host:port`` now (a bind, as a server would do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float = 10.0, *, cancelled: Callable[[], bool] | None = None) -> bool:
    """Whether something listens on ``host:port`` within ``timeout``; False at once when ``cancelled()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cancelled is not None and cancelled():
            return False
        if port_open(host, port):
            return True
        time.sleep(0.05)
    return False
