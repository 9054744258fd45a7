"""Run the whole local stack as a child process (``python -m local_stack``), on free ports.

Used by the end-to-end tests and the end-to-end benchmark: the stack runs exactly as a user
starts it, with its own mosquitto, moto and state directory, and is stopped with SIGINT
(Ctrl-C) as a user would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .ports import free_listen_port

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    host: str
    bridge_port: int
    api_port: int
    moto_port: int
    mqtt_port: int
    table: str
    log: Path
    #: the bridge's security-profile-3 port (TLS with client certificates)
    tls_port: int = 0
    #: the file server's port (uploads, firmware downloads)
    files_port: int = 0

    @property
    def files_url(self) -> str:
        return f"http://{self.host}:{self.files_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.bridge_port}/ocpp"

    @property
    def tls_url(self) -> str:
        return f"wss://localhost:{self.tls_port}/ocpp"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.api_port}"

    def store(self) -> Any:
        """A ``DynamoStore`` on the stack's moto server, to check what was stored."""
        import boto3

        from lambdas.adapters.dynamo import DynamoStore

        client = boto3.client(
            "dynamodb",
            endpoint_url=f"http://{self.host}:{self.moto_port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
        return DynamoStore(client, self.table)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


def start_stack(state_dir: Path, extra_env: dict[str, str] | None = None) -> RunningStack:
    ports = {name: free_listen_port() for name in ("bridge", "api", "moto", "mqtt", "tls", "files")}
    log = state_dir / "stack.log"
    env = {
        **os.environ,
        "OCPP_LOCAL_HOST": "127.0.0.1",
        "OCPP_BRIDGE_PORT": str(ports["bridge"]),
        "OCPP_API_PORT": str(ports["api"]),
        "OCPP_MOTO_PORT": str(ports["moto"]),
        "OCPP_MQTT_PORT": str(ports["mqtt"]),
        "OCPP_BRIDGE_TLS_PORT": str(ports["tls"]),
        "OCPP_FILES_PORT": str(ports["files"]),
        "OCPP_LOCAL_STATE_DIR": str(state_dir),
        "OCPP_TABLE_NAME": "ocpp-e2e",
        "OCPP_LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "local_stack"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    stack = RunningStack(
        process,
        "127.0.0.1",
        ports["bridge"],
        ports["api"],
        ports["moto"],
        ports["mqtt"],
        "ocpp-e2e",
        log,
        ports["tls"],
        ports["files"],
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"local stack exited with {process.returncode}:\n{stack.log_tail()}")
        if "ready:" in log.read_text(errors="replace"):
            return stack
        time.sleep(0.2)
    stop_stack(stack)
    raise RuntimeError(f"local stack not ready within 60 s:\n{stack.log_tail()}")


def stop_stack(stack: RunningStack) -> None:
    if stack.process.poll() is None:
        stack.process.send_signal(signal.SIGINT)
        try:
            stack.process.wait(timeout=45)
        except subprocess.TimeoutExpired:
            stack.process.kill()
            stack.process.wait(timeout=10)
