"""The default answers: one per CSMS-initiated action of each version, each schema-valid."""

from __future__ import annotations

import pytest

from ocpp_core.schemas import validate_request, validate_response
from ocpp_core.versions import CSMS_INITIATED, OcppVersion
from simulator.responses import DEFAULT_RESPONSES, default_response

from .schema_samples import minimal


@pytest.mark.parametrize("version", list(OcppVersion))
def test_every_csms_action_has_a_default(version: OcppVersion) -> None:
    assert set(DEFAULT_RESPONSES[version]) == set(CSMS_INITIATED[version])


@pytest.mark.parametrize("version", list(OcppVersion))
def test_every_default_validates(version: OcppVersion) -> None:
    for action in sorted(CSMS_INITIATED[version]):
        request = minimal(version, action)
        validate_request(version, action, request)  # the sample itself is valid
        response = default_response(version, action, request)
        assert response is not None, action
        validate_response(version, action, response)


def test_echoing_defaults_answer_each_item() -> None:
    request = {
        "getVariableData": [
            {"component": {"name": "A"}, "variable": {"name": "X"}},
            {"component": {"name": "B"}, "variable": {"name": "Y", "instance": "1"}},
        ]
    }
    response = default_response(OcppVersion.V201, "GetVariables", request)
    assert response is not None
    assert [r["attributeStatus"] for r in response["getVariableResult"]] == ["UnknownComponent"] * 2
    assert response["getVariableResult"][1]["variable"] == {"name": "Y", "instance": "1"}
    tariffs = default_response(OcppVersion.V21, "ClearTariffs", {"tariffIds": ["t1", "t2"]})
    assert tariffs == {
        "clearTariffsResult": [{"tariffId": "t1", "status": "NoTariff"}, {"tariffId": "t2", "status": "NoTariff"}]
    }


def test_unknown_action_has_no_default() -> None:
    assert default_response(OcppVersion.V16, "RequestStartTransaction", {}) is None
