"""Ctrl-C stops everything ``make run`` started: exit 0, "stopped" logged, no process left, ports free."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from .support import StackRun

pytestmark = pytest.mark.timeout(120)

ALL_PORTS = ("bridge", "api", "moto", "mqtt")


def assert_stopped_cleanly(run: StackRun) -> None:
    output = run.stdout + run.stderr
    assert "Traceback" not in output, output
    assert "killing it" not in output, output  # every part stopped on SIGTERM, none had to be killed
    log = run.stderr.strip().splitlines()
    assert log and log[-1].endswith("local_stack: stopped"), run.output_tail()
    assert any(line.endswith("local_stack: stopping...") for line in log)
    assert run.strays() == [], "processes left running"
    assert run.busy_ports(*ALL_PORTS) == [], "ports still in use"
    assert run.leftover_broker_dirs() == [], "the mosquitto config directory was left behind"


def test_ctrl_c_stops_everything_and_exits_0(stack_run: StackRun) -> None:
    assert stack_run.start().wait(90, until=stack_run.ready) is None, stack_run.output_tail()
    assert stack_run.part_names() == {"mosquitto", "moto_server", "fargate_bridge"}
    for url in (f"http://127.0.0.1:{stack_run.ports['bridge']}/health", f"http://127.0.0.1:{stack_run.ports['api']}/"):
        try:
            urllib.request.urlopen(url, timeout=5).close()
        except urllib.error.HTTPError:
            pass  # an HTTP answer of any status: the part is up
    assert stack_run.busy_ports(*ALL_PORTS) == [f"{name} {stack_run.ports[name]}" for name in ALL_PORTS]

    stack_run.interrupt()
    started = time.monotonic()
    code = stack_run.wait(30)
    assert code == 0, stack_run.output_tail()
    assert time.monotonic() - started < 30
    assert_stopped_cleanly(stack_run)


def test_ctrl_c_while_starting_still_stops_everything(stack_run: StackRun) -> None:
    # Half-way: mosquitto and moto are running, the rule emulator and the bridge not yet.
    assert stack_run.start().wait(60, until=lambda: "moto_server" in stack_run.part_names()) is None, (
        stack_run.output_tail()
    )
    assert not stack_run.ready()
    stack_run.interrupt()
    code = stack_run.wait(60)
    assert code == 0, stack_run.output_tail()
    assert not stack_run.ready()  # nobody is told to connect to a stack that is stopping
    assert_stopped_cleanly(stack_run)
