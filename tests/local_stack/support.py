"""``python -m local_stack`` as a user runs it, watched from outside: its exit, its output, its children.

Every run gets a unique marker in its environment. The processes the stack starts (mosquitto,
moto, the bridge) inherit the environment, so a process still carrying the marker after the
stack has exited is a stray, wherever it was reparented to. The children seen while the stack
ran are recorded too (pid and start time), and the ports must be free again afterwards.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from local_stack.ports import free_listen_port, port_free

ROOT = Path(__file__).resolve().parents[2]
MARKER = "OCPP_TEST_LOCAL_STACK_RUN"
#: A line the stack's logging writes (``__main__.py``'s format).
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) +[\w.]+: ")
PORT_VARIABLES = {
    "bridge": "OCPP_BRIDGE_PORT",
    "api": "OCPP_API_PORT",
    "moto": "OCPP_MOTO_PORT",
    "tls": "OCPP_BRIDGE_TLS_PORT",
    "files": "OCPP_FILES_PORT",
}


def _key(process: psutil.Process) -> tuple[int, float]:
    return process.pid, process.create_time()


def _running(pid: int, created: float) -> psutil.Process | None:
    try:
        process = psutil.Process(pid)
        if process.create_time() != created or process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process
    except psutil.Error:
        return None


def marked_processes(marker: str) -> list[psutil.Process]:
    """Running processes (not zombies) whose environment carries ``MARKER=marker``."""
    found = []
    for process in psutil.process_iter(["pid"]):
        try:
            if process.environ().get(MARKER) == marker and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.Error:
            continue
    return found


@dataclass
class StackRun:
    """One ``python -m local_stack`` in a session of its own, as a terminal would run it."""

    tmp_path: Path
    overrides: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    marker: str = field(default_factory=lambda: uuid.uuid4().hex)
    process: subprocess.Popen[bytes] | None = None
    #: (pid, create time) -> command line of every descendant seen while the stack ran
    children: dict[tuple[int, float], list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Not ephemeral ports (local_stack/ports.py): an outgoing connection of this or another
        # test run could take one before the stack binds it, or while the test checks it is free.
        for name in ("bridge", "api", "moto", "mqtt", "tls", "files"):
            self.ports.setdefault(name, free_listen_port())
        self.state_dir = self.tmp_path / "state"
        #: TMPDIR of the stack: its mosquitto's config directory goes here
        self.tmp_dir = self.tmp_path / "tmp"
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = self.tmp_path / "stdout"
        self.stderr_path = self.tmp_path / "stderr"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OCPP_", "BRIDGE_"))}
        env.update(
            {
                "OCPP_LOCAL_HOST": "127.0.0.1",
                "OCPP_BRIDGE_PORT": str(self.ports["bridge"]),
                "OCPP_API_PORT": str(self.ports["api"]),
                "OCPP_MOTO_PORT": str(self.ports["moto"]),
                "OCPP_BRIDGE_TLS_PORT": str(self.ports["tls"]),
                "OCPP_FILES_PORT": str(self.ports["files"]),
                "OCPP_MQTT_HOST": "127.0.0.1",
                "OCPP_MQTT_PORT": str(self.ports["mqtt"]),
                "OCPP_LOCAL_STATE_DIR": str(self.state_dir),
                "OCPP_TABLE_NAME": "ocpp-local-stack-test",
                "OCPP_LOG_LEVEL": "INFO",
                "TMPDIR": str(self.tmp_dir),
                MARKER: self.marker,
            }
        )
        env.update(self.overrides)
        return env

    def start(self) -> StackRun:
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "local_stack"],
                cwd=ROOT,
                env=self.env(),
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        return self

    def _record_children(self) -> None:
        assert self.process is not None
        try:
            for child in psutil.Process(self.process.pid).children(recursive=True):
                try:
                    # Overwritten on every look: a child caught between fork and exec still shows
                    # the stack's own command line the first time. But never with an empty one: a
                    # child that exited and is not reaped yet (a zombie) has none, and would hide
                    # what it was.
                    cmdline = child.cmdline()
                except psutil.Error:
                    continue
                if cmdline:
                    self.children[_key(child)] = cmdline
                else:
                    self.children.setdefault(_key(child), cmdline)
        except psutil.Error:
            pass

    def wait(self, timeout: float, *, until: Callable[[], bool] | None = None) -> int | None:
        """Record children until the stack exits (its code) or ``until()`` holds (None); fail after ``timeout``."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._record_children()
            code = self.process.poll()
            if code is not None:
                return code
            if until is not None and until():
                return None
            time.sleep(0.05)
        raise AssertionError(
            f"the stack did not {'get there' if until else 'exit'} within {timeout} s:\n{self.output_tail()}"
        )

    def ready(self) -> bool:
        return "ready:" in self.stdout

    def part_names(self) -> set[str]:
        """Which of the stack's parts were seen among its children."""
        commands = [" ".join(cmdline) for cmdline in self.children.values()]
        return {part for part in ("mosquitto", "moto_server", "fargate_bridge") if any(part in c for c in commands)}

    def interrupt(self) -> None:
        """Ctrl-C in the terminal: SIGINT to the foreground process group."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGINT)

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output_tail(self, lines: int = 30) -> str:
        return "\n".join((self.stdout + self.stderr).splitlines()[-lines:])

    def error_line(self, *also: str) -> str:
        """The one ``local stack:`` line, last on stderr; every other line a log line (or starts with ``also``)."""
        out = self.stdout + self.stderr
        assert "Traceback" not in out, out
        lines = self.stderr.strip().splitlines()
        errors = [line for line in lines if line.startswith("local stack:")]
        assert len(errors) == 1, f"expected one 'local stack:' line in stderr:\n{self.stderr}"
        assert lines[-1] == errors[0], f"the error is not the last line of stderr:\n{self.stderr}"
        others = [line for line in lines[:-1] if not LOG_LINE.match(line) and not line.startswith(also or ("\0",))]
        assert others == [], f"stray lines on stderr besides the logs and the error:\n{self.stderr}"
        return errors[0]

    def strays(self) -> list[str]:
        """Processes of this run still running: children seen during the run, or carrying the marker."""
        found: dict[int, str] = {}
        for (pid, created), cmdline in self.children.items():
            if _running(pid, created) is not None:
                found[pid] = " ".join(cmdline)
        for process in marked_processes(self.marker):
            try:
                found[process.pid] = " ".join(process.cmdline())
            except psutil.Error:
                continue
        return [f"{pid}: {cmdline}" for pid, cmdline in sorted(found.items())]

    def busy_ports(self, *names: str) -> list[str]:
        return [f"{name} {self.ports[name]}" for name in names if not port_free("127.0.0.1", self.ports[name])]

    def leftover_broker_dirs(self) -> list[str]:
        return sorted(path.name for path in self.tmp_dir.glob("mosquitto-*"))

    def cleanup(self) -> None:
        """Kill what this run left behind (by pid: only processes it started), so one failure stays one."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        victims = [p for key in self.children if (p := _running(*key)) is not None]
        victims += marked_processes(self.marker)
        for process in victims:
            try:
                process.kill()
            except psutil.Error:
                continue
        psutil.wait_procs(victims, timeout=5)
