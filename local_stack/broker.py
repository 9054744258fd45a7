"""A mosquitto process of our own, on a port of our choosing.

Used by the local stack when no broker is reachable, and by the tests and benchmarks, which
always start their own on a free port (the one on 1883 belongs to the machine).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from .children import spawn, stop_process
from .ports import free_port, wait_for_port

logger = logging.getLogger(__name__)

INSTALL_HINT = "mosquitto is not installed: install it with 'sudo apt-get install mosquitto' (Debian/Ubuntu) or 'brew install mosquitto' (macOS)"


class BrokerError(RuntimeError):
    pass


class BrokerCancelled(BrokerError):
    """:meth:`MosquittoProcess.start` gave up waiting because its caller is stopping."""


#: The mosquitto to run: a path, or a name looked up on PATH only. Unset: ``mosquitto`` on PATH,
#: else in the usual sbin directories (often not on a user's PATH).
BINARY_VARIABLE = "OCPP_MOSQUITTO_BINARY"


def find_mosquitto() -> str | None:
    override = os.environ.get(BINARY_VARIABLE, "").strip()
    if override:
        return shutil.which(override)
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto", "/opt/homebrew/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def not_found_message() -> str:
    """The one line to show when :func:`find_mosquitto` finds nothing."""
    override = os.environ.get(BINARY_VARIABLE, "").strip()
    return INSTALL_HINT + (f" ({BINARY_VARIABLE}={override!r} names no executable)" if override else "")


class MosquittoProcess:
    """Start, stop and restart (same port) a private mosquitto."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int | None = None,
        max_connections: int = -1,
        *,
        die_with_parent: bool = False,
    ):
        """``die_with_parent``: in our process group with a parent-death signal, as the stack's part
        (start it from the main thread then: the signal comes when the forking *thread* exits).
        Otherwise in a session of its own, as the tests' brokers, which tests restart from threads."""
        self.host = host
        self.die_with_parent = die_with_parent
        self.port = port or free_port(host)
        self.max_connections = max_connections
        self._dir = Path(tempfile.mkdtemp(prefix="mosquitto-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self.log_path = self._dir / "mosquitto.log"

    def _write_config(self) -> Path:
        config = self._dir / "mosquitto.conf"
        config.write_text(
            "\n".join(
                [
                    "per_listener_settings false",
                    f"listener {self.port} {self.host}",
                    "allow_anonymous true",
                    f"max_connections {self.max_connections}",
                    "persistence false",
                    # Small MQTT packets (PUBACKs, single frames) go out at once: without this,
                    # Nagle and delayed ACKs add ~40 ms to each hop.
                    "set_tcp_nodelay true",
                    # Queued QoS 1 messages for an offline persistent session (none by default).
                    "max_queued_messages 10000",
                    "log_dest stderr",
                    "log_type error",
                    "log_type warning",
                    "",
                ]
            )
        )
        return config

    def start(self, timeout: float = 10.0, *, cancelled: Callable[[], bool] | None = None) -> MosquittoProcess:
        """Start and wait until it listens; stops waiting early (and stops it) once ``cancelled()`` holds."""
        binary = find_mosquitto()
        if binary is None:
            raise BrokerError(not_found_message())
        config = self._write_config()
        log = open(self.log_path, "ab")
        argv = [binary, "-c", str(config)]
        if self.die_with_parent:
            # Started as root, mosquitto drops to its own user, and a change of user clears the
            # parent-death signal (prctl(2), PR_SET_PDEATHSIG): then a watchdog (children.py) kills it.
            watchdog = True if os.geteuid() == 0 else None
            self._proc = spawn(argv, stdout=log, stderr=log, watchdog=watchdog)
        else:
            self._proc = subprocess.Popen(argv, stdout=log, stderr=log, start_new_session=True)
        log.close()
        if not wait_for_port(self.host, self.port, timeout, cancelled=cancelled):
            self.stop()
            if cancelled is not None and cancelled():
                raise BrokerCancelled("mosquitto start cancelled")
            raise BrokerError(f"mosquitto did not start listening on {self.host}:{self.port}: {self.tail_log()}")
        logger.info("mosquitto listening on %s:%s (pid %s)", self.host, self.port, self._proc.pid)
        return self

    def tail_log(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def kill(self) -> None:
        """Kill it hard, as a crash would (SIGKILL)."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(timeout=10)
        self._proc = None

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, and SIGKILL if it is still there after ``timeout`` seconds."""
        if self._proc is not None:
            stop_process(self._proc, "mosquitto", timeout)
        self._proc = None

    def restart(self, timeout: float = 10.0) -> None:
        self.stop()
        self.start(timeout)

    def __enter__(self) -> MosquittoProcess:
        try:
            return self.start()
        except BaseException:
            shutil.rmtree(self._dir, ignore_errors=True)  # __exit__ will not run
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)
