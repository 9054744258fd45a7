"""Fixtures for running ``python -m local_stack`` and brokers that will not have it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from local_stack.broker import MosquittoProcess

from .support import StackRun


@pytest.fixture
def stack_run(tmp_path: Path) -> Iterator[StackRun]:
    """A stack run on free ports (set ``ports``/``overrides`` before ``start()``); whatever it leaves is killed."""
    run = StackRun(tmp_path)
    try:
        yield run
    finally:
        run.cleanup()


class FakeBroker:
    """A TCP server on a free loopback port that is not an MQTT broker: closes at once or answers garbage."""

    def __init__(self, behaviour: str):
        self.behaviour = behaviour
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.1)
        self.port: int = self._server.getsockname()[1]
        self.accepted = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"fake-broker-{behaviour}", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.settimeout(1)
                if self.behaviour == "garbage":
                    try:
                        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                        conn.recv(1024)
                    except OSError:
                        pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()


@pytest.fixture(params=["closes", "garbage"])
def fake_broker(request: pytest.FixtureRequest) -> Iterator[FakeBroker]:
    server = FakeBroker(request.param)
    try:
        yield server
    finally:
        server.close()


class PasswordMosquitto(MosquittoProcess):
    """A mosquitto that refuses anonymous clients (a password file with one user), as on a shared machine."""

    def _write_config(self) -> Path:
        config = super()._write_config()
        passwords = self._dir / "passwords"
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        lines = ["allow_anonymous false"]
        if Path(tool).exists():
            subprocess.run([tool, "-c", "-b", str(passwords), "operator", "secret"], check=True, timeout=10)
            # Started as root, mosquitto drops to its own user before reading the file.
            self._dir.chmod(0o755)
            passwords.chmod(0o644)
            lines.append(f"password_file {passwords}")
        text = config.read_text().replace("allow_anonymous true", "\n".join(lines))
        assert "allow_anonymous false" in text
        config.write_text(text)
        return config


@pytest.fixture
def password_mosquitto() -> Iterator[MosquittoProcess]:
    with PasswordMosquitto() as broker:
        yield broker
