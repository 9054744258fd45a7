"""Powertools output of the handlers: EMF metrics and structured JSON logs naming the charger.

Everything a Lambda writes to stdout ends up in CloudWatch Logs; EMF lines become metrics in
the ``OCPP/CSMS`` namespace that the dashboard (infra/monitoring.py) graphs.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from lambdas import lifecycle, message_processor
from lambdas.runtime import Dependencies
from ocpp_core import calls
from ocpp_core.errors import ErrorKind, error_code
from ocpp_core.extensions import Extensions
from ocpp_core.versions import OcppVersion
from tests.fakes import FakeClock, SeqIds, mark_connected

from .support import FakeLambdaContext, load_event

Output = Callable[[], list[dict[str, Any]]]
NAMESPACE = "OCPP/CSMS"


def emf_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "_aws" in line]


def log_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if "_aws" not in line]


def metrics_of(emf: dict[str, Any]) -> dict[str, Any]:
    """{metric name: value} of one EMF document, checked against its declaration."""
    [directive] = emf["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    assert directive["Dimensions"] == [["Stage", "service"]] and emf["service"] == "ocpp-csms"
    assert emf["Stage"] == "local"  # stages in one account never share metrics (DESIGN §8)
    assert isinstance(emf["_aws"]["Timestamp"], int)
    names = [m["Name"] for m in directive["Metrics"]]
    assert all(m["Unit"] == "Count" for m in directive["Metrics"])
    return {name: emf[name] for name in names}


def invoke_processor(event: Any) -> dict[str, Any]:
    result: dict[str, Any] = message_processor.handler(event, FakeLambdaContext())
    return result


def test_a_processed_frame_emits_one_emf_document_and_a_json_log_line_with_the_charger(
    deps: Dependencies, lambda_output: Output
) -> None:
    invoke_processor(load_event("boot_notification_16"))
    lines = lambda_output()
    [emf] = emf_lines(lines)
    assert metrics_of(emf) == {"MessagesProcessed": [1.0]}
    [log] = [line for line in log_lines(lines) if line["message"].startswith("frame from")]
    assert log["level"] == "INFO"
    assert log["service"] == "ocpp-csms"
    assert log["chargePointId"] == "CP-16"
    assert log["uniqueId"] == "boot-16-1" and log["outcome"] == "replied"
    assert log["message"] == "frame from CP-16: BootNotification boot-16-1 -> replied"
    # Lambda context injected by the decorator, so a log line leads to its invocation.
    assert log["function_request_id"] == FakeLambdaContext.aws_request_id
    assert log["function_name"] == FakeLambdaContext.function_name
    assert "timestamp" in log and "location" in log


def _scenario_garbage(deps: Dependencies) -> dict[str, Any]:
    return load_event("garbage_frame")


def _scenario_duplicate(deps: Dependencies) -> dict[str, Any]:
    # Built-in handlers are idempotent and need no record; a frame that reaches an extension's
    # hook is claimed, and its redelivery is the duplicate that is counted.
    extensions = Extensions()

    @extensions.after("BootNotification")
    def crm(ctx: Any, request: Any, response: Any) -> None:
        return None

    deps.extensions = extensions
    invoke_processor(load_event("boot_notification_16"))
    return load_event("boot_notification_16")


def _scenario_invalid(deps: Dependencies) -> dict[str, Any]:
    event = load_event("boot_notification_16")
    event["frame"] = json.dumps([2, "boot-bad", "BootNotification", {}])
    return event


def _scenario_unmatched(deps: Dependencies) -> dict[str, Any]:
    return load_event("call_result_16")


def _scenario_result(deps: Dependencies) -> dict[str, Any]:
    deps.store.update_charger("CP-16", {"registered": True, "protocol": "ocpp1.6"})
    mark_connected(deps.store, "CP-16", "conn-1", deps.clock.now_ms())
    calls.start_call(deps.store, SeqIds(), deps.clock.now_ms(), "CP-16", "Reset", {"type": "Soft"}, timeout_s=30)
    return load_event("call_result_16")


def _scenario_handler_failure(deps: Dependencies) -> dict[str, Any]:
    extensions = Extensions()

    @extensions.on("Heartbeat")
    def broken(ctx: Any, payload: Any) -> dict[str, Any]:
        raise RuntimeError("extension bug")

    deps.extensions = extensions
    return load_event("heartbeat_201")


def _scenario_hook_failure(deps: Dependencies) -> dict[str, Any]:
    extensions = Extensions()

    @extensions.after("BootNotification")
    def failing_hook(ctx: Any, request: Any, response: Any) -> None:
        raise RuntimeError("crm down")

    deps.extensions = extensions
    event = load_event("boot_notification_16")
    event["frame"] = event["frame"].replace("boot-16-1", "boot-hook")
    return event


@pytest.mark.parametrize(
    ("scenario", "counted"),
    [
        pytest.param(_scenario_garbage, "DroppedFrames", id="garbage"),
        pytest.param(_scenario_duplicate, "DuplicateMessages", id="duplicate"),
        pytest.param(_scenario_invalid, "CallErrors", id="invalid-payload"),
        pytest.param(_scenario_unmatched, "UnmatchedResults", id="unmatched-result"),
        pytest.param(_scenario_result, "CallsCompleted", id="result"),
        pytest.param(_scenario_handler_failure, "HandlerFailures", id="handler-failure"),
        pytest.param(_scenario_hook_failure, "HookFailures", id="hook-failure"),
    ],
)
def test_each_outcome_is_counted_by_its_metric(
    deps: Dependencies, lambda_output: Output, scenario: Callable[[Dependencies], dict[str, Any]], counted: str
) -> None:
    event = scenario(deps)
    already = len(emf_lines(lambda_output()))
    invoke_processor(event)
    [emf] = emf_lines(lambda_output())[already:]
    metrics = metrics_of(emf)
    assert metrics["MessagesProcessed"] == [1.0]
    assert metrics[counted] == [1.0]


def test_a_handler_failure_is_an_internal_error_callerror_and_counted_as_both(
    deps: Dependencies, lambda_output: Output
) -> None:
    event = _scenario_handler_failure(deps)
    assert invoke_processor(event)["outcome"] == "call_error"
    [emf] = emf_lines(lambda_output())
    assert metrics_of(emf) == {"MessagesProcessed": [1.0], "CallErrors": [1.0], "HandlerFailures": [1.0]}
    # "InternalError" is the code in every version, so one comparison covers them all.
    assert {error_code(ErrorKind.INTERNAL, v) for v in OcppVersion} == {"InternalError"}


def test_the_dashboards_processor_metrics_are_all_emitted(deps: Dependencies, lambda_output: Output) -> None:
    """Every processor metric infra/monitoring.py graphs is one the handler can emit."""
    monitoring = pytest.importorskip("infra.monitoring")
    emitted: set[str] = set()
    for scenario in (_scenario_duplicate, _scenario_invalid, _scenario_handler_failure, _scenario_hook_failure):
        invoke_processor(scenario(deps))
        deps.extensions = Extensions()
    for emf in emf_lines(lambda_output()):
        emitted.update(metrics_of(emf))
    assert set(monitoring.PROCESSOR_EMF_METRICS) <= emitted
    assert monitoring.CSMS_METRICS_NAMESPACE == NAMESPACE


def test_lifecycle_events_are_counted_and_logged_with_the_charger(
    deps: Dependencies, lambda_output: Output, clock: FakeClock
) -> None:
    lifecycle.handler(load_event("connected"), FakeLambdaContext())
    lifecycle.handler(load_event("connected"), FakeLambdaContext())  # applied again: idempotent
    lines = lambda_output()
    assert [metrics_of(emf) for emf in emf_lines(lines)] == [{"ConnectionEvents": [1.0]}] * 2
    logs = [line for line in log_lines(lines) if line.get("chargePointId") == "CP-16"]
    assert len(logs) == 2
    assert logs[0]["level"] == "INFO" and logs[0]["service"] == "ocpp-csms"
    assert logs[0]["message"] == f"charger CP-16 connected (connection {load_event('connected')['connectionId']})"


def test_the_service_and_namespace_default_to_the_documented_ones() -> None:
    from lambdas import observability

    assert observability.NAMESPACE == NAMESPACE
    assert observability.SERVICE == "ocpp-csms"
