"""``make run`` that cannot start fails in one clear line, with a non-zero code, leaving nothing running.

A port in use, a broker that refuses us, a missing mosquitto, a part that dies half-way: the
stack is run as ``python -m local_stack`` and watched from outside (tests/local_stack/support.py).
"""

from __future__ import annotations

import socket

import pytest

from local_stack.broker import BINARY_VARIABLE, INSTALL_HINT, MosquittoProcess
from local_stack.environment import ENVIRONMENTS_VARIABLE

from .conftest import FakeBroker
from .support import PORT_VARIABLES, StackRun

pytestmark = pytest.mark.timeout(90)

#: Bound on how long a failing start may take (the broker probe alone waits up to 5 s).
FAIL_WITHIN = 30.0


def assert_nothing_left(run: StackRun, *ports: str) -> None:
    assert run.strays() == [], "processes left running"
    assert run.busy_ports(*ports) == [], "ports still in use"
    assert run.leftover_broker_dirs() == [], "the mosquitto config directory was left behind"


@pytest.mark.parametrize("part", ["bridge", "api", "moto"])
def test_a_port_in_use_fails_in_one_line_naming_the_port_and_its_variable(stack_run: StackRun, part: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as occupant:
        port = occupant.getsockname()[1]
        stack_run.ports[part] = port
        code = stack_run.start().wait(FAIL_WITHIN)
        line = stack_run.error_line()
    assert code == 1
    assert f"127.0.0.1:{port}" in line and "already in use" in line and PORT_VARIABLES[part] in line, line
    assert_nothing_left(stack_run, *(name for name in ("bridge", "api", "moto", "mqtt") if name != part))


def test_a_port_that_is_not_an_mqtt_broker_fails_in_one_line(stack_run: StackRun, fake_broker: FakeBroker) -> None:
    stack_run.ports["mqtt"] = fake_broker.port
    code = stack_run.start().wait(FAIL_WITHIN)
    line = stack_run.error_line()
    assert code == 1
    assert fake_broker.accepted >= 1  # the stack did talk to it
    assert line.startswith(f"local stack: the MQTT broker at 127.0.0.1:{fake_broker.port} refused us"), line
    assert "OCPP_MQTT_PORT" in line
    assert_nothing_left(stack_run, "bridge", "api", "moto")


def test_a_broker_that_refuses_anonymous_clients_fails_in_one_line(
    stack_run: StackRun, password_mosquitto: MosquittoProcess
) -> None:
    stack_run.ports["mqtt"] = password_mosquitto.port
    code = stack_run.start().wait(FAIL_WITHIN)
    line = stack_run.error_line()
    assert code == 1
    assert line.startswith(f"local stack: the MQTT broker at 127.0.0.1:{password_mosquitto.port} refused us"), line
    assert "NOT_AUTHORIZED" in line, line  # the CONNACK's reason: the user sees why
    assert "OCPP_MQTT_PORT" in line
    assert password_mosquitto.running  # the stack neither replaced nor stopped someone else's broker
    assert_nothing_left(stack_run, "bridge", "api", "moto")


@pytest.mark.parametrize("where", ["not on PATH", "a path to nothing"])
def test_a_missing_mosquitto_fails_in_one_line_saying_how_to_install_it(stack_run: StackRun, where: str) -> None:
    if where == "not on PATH":
        empty = stack_run.tmp_path / "bin"
        empty.mkdir()
        # Looked up on PATH only (no /usr/sbin fallback); the interpreter itself is started by absolute path.
        stack_run.overrides.update(PATH=str(empty), **{BINARY_VARIABLE: "mosquitto"})
    else:
        stack_run.overrides[BINARY_VARIABLE] = str(stack_run.tmp_path / "no-such" / "mosquitto")
    code = stack_run.start().wait(FAIL_WITHIN)
    line = stack_run.error_line()
    assert code == 1
    assert line.startswith(f"local stack: {INSTALL_HINT}"), line
    assert "sudo apt-get install mosquitto" in line and "brew install mosquitto" in line
    assert BINARY_VARIABLE in line
    assert_nothing_left(stack_run, "bridge", "api", "moto", "mqtt")


def test_a_part_failing_half_way_stops_the_parts_already_started(stack_run: StackRun) -> None:
    # The bridge (started after mosquitto, moto and the rule emulator) refuses its configuration.
    stack_run.overrides["BRIDGE_MQTT_CONNECT_RATE"] = "fast"
    code = stack_run.start().wait(FAIL_WITHIN)
    line = stack_run.error_line("fargate_bridge: invalid configuration: BRIDGE_MQTT_CONNECT_RATE")
    assert code == 1
    assert line == "local stack: the bridge exited at start (code 2); see its log above"
    assert "BRIDGE_MQTT_CONNECT_RATE" in stack_run.stderr  # the bridge's own line says what is wrong
    # The watcher saw the parts running, so an empty stray list below means they were stopped.
    assert {"mosquitto", "moto_server"} <= stack_run.part_names(), stack_run.children
    assert_nothing_left(stack_run, "bridge", "api", "moto", "mqtt")


@pytest.mark.parametrize("value", ["0", "17", "two", "-1"])
def test_a_wrong_number_of_lambda_environments_fails_in_one_line(stack_run: StackRun, value: str) -> None:
    stack_run.overrides[ENVIRONMENTS_VARIABLE] = value
    code = stack_run.start().wait(FAIL_WITHIN)
    line = stack_run.error_line()
    assert code == 1
    assert f"{ENVIRONMENTS_VARIABLE}={value!r}" in line and "from 1 to 16" in line, line
    assert_nothing_left(stack_run)
