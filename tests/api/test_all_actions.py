"""Every CSMS-initiated action of every version goes out when its payload is valid."""

from __future__ import annotations

import json

import pytest

from lambdas.runtime import Dependencies
from ocpp_core.versions import CSMS_INITIATED, OcppVersion

from .payloads import minimal_request
from .support import connect, request


def _contains(big: object, small: object) -> bool:
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _contains(big[k], v) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(big) == len(small) and all(map(_contains, big, small))
    return big == small


CASES = [(version, action) for version in OcppVersion for action in sorted(CSMS_INITIATED[version])]


def test_every_version_has_csms_actions() -> None:
    assert {v for v, _ in CASES} == set(OcppVersion)


@pytest.mark.parametrize(("version", "action"), CASES, ids=[f"{v.value}-{a}" for v, a in CASES])
def test_action_is_accepted_with_a_minimal_valid_payload(deps: Dependencies, version: OcppVersion, action: str) -> None:
    connect(deps, "CP1", version.value)
    payload = minimal_request(version, action)
    answer = request("POST", "/chargers/CP1/calls", {"action": action, "payload": payload})
    assert answer.status == 202, answer.body
    assert answer.body["status"] == "pending"
    topic, frame, expiry = deps.publisher.messages[-1]  # type: ignore[attr-defined]
    assert topic == "ocpp/CP1/out"
    sent = json.loads(frame)
    assert sent[:3] == [2, answer.body["uniqueId"], action]
    # Schema validation fills in defaults (e.g. SetVariableMonitoring "transaction": false),
    # so the frame holds at least what the operator sent.
    assert _contains(sent[3], payload)
    assert expiry == deps.settings.call_timeout_s
