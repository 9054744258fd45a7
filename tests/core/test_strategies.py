"""The schema strategy and the oracle of ``tests.strategies`` are themselves right."""

from __future__ import annotations

from decimal import Decimal

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ocpp_core import schemas
from ocpp_core.schemas import SchemaKind
from ocpp_core.versions import CSMS_INITIATED
from tests.strategies import date_times, from_schema, is_rfc3339, payloads, schema_validator, validator

from .support import VERSIONS

FAST = settings(
    max_examples=60, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
)

SCHEMA = {
    "$schema": "http://json-schema.org/draft-06/schema#",
    "definitions": {
        "Kind": {"type": "string", "enum": ["A", "B"]},
        "Item": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"n": {"type": "integer", "minimum": 2, "maximum": 5}},
            "required": ["n"],
        },
    },
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "kind": {"$ref": "#/definitions/Kind"},
        "when": {"type": "string", "format": "date-time"},
        "name": {"type": "string", "maxLength": 3},
        "limit": {"type": "number", "multipleOf": 0.1, "minimum": -1.0, "maximum": 1000.0},
        "items": {"type": "array", "items": {"$ref": "#/definitions/Item"}, "minItems": 2, "maxItems": 4},
        "flag": {"type": "boolean"},
        "free": {"description": "anything"},
    },
    "required": ["kind", "when", "items"],
}


@FAST
@given(from_schema(SCHEMA))
def test_instances_meet_every_constraint(value) -> None:
    assert set(value) <= set(SCHEMA["properties"]) and {"kind", "when", "items"} <= set(value)
    assert value["kind"] in ("A", "B")
    assert is_rfc3339(value["when"])
    assert len(value.get("name", "")) <= 3
    if "limit" in value:
        assert -1 <= value["limit"] <= 1000
        assert Decimal(repr(value["limit"])) % Decimal("0.1") == 0
    assert 2 <= len(value["items"]) <= 4
    assert all(set(item) == {"n"} and 2 <= item["n"] <= 5 and type(item["n"]) is int for item in value["items"])
    validator(SCHEMA)(value)


@FAST
@given(date_times())
def test_date_times_are_rfc3339_for_both_validators(value: str) -> None:
    assert is_rfc3339(value)
    schemas.validate(VERSIONS[1], "Heartbeat", SchemaKind.RESPONSE, {"currentTime": value})


@pytest.mark.parametrize(
    "value",
    [
        {"kind": "C", "when": "2025-01-01T00:00:00Z", "items": [{"n": 2}, {"n": 2}]},
        {"kind": "A", "when": "2025-02-30T00:00:00Z", "items": [{"n": 2}, {"n": 2}]},
        {"kind": "A", "when": "2025-01-01 00:00:00", "items": [{"n": 2}, {"n": 2}]},
        {"kind": "A", "when": "2025-01-01T00:00:00Z", "items": [{"n": 2}]},
        {"kind": "A", "when": "2025-01-01T00:00:00Z", "items": [{"n": 6}, {"n": 2}]},
        {"kind": "A", "when": "2025-01-01T00:00:00Z", "items": [{"n": 2.5}, {"n": 2}]},
        {"kind": "A", "when": "2025-01-01T00:00:00Z", "items": [{"n": 2}, {"n": 2}], "limit": 10.35},
        {"kind": "A", "when": "2025-01-01T00:00:00Z", "items": [{"n": 2}, {"n": 2}], "name": "abcd"},
        {"kind": "A", "when": "2025-01-01T00:00:00Z", "items": [{"n": 2}, {"n": 2}], "extra": 1},
        {"when": "2025-01-01T00:00:00Z", "items": [{"n": 2}, {"n": 2}]},
    ],
)
def test_the_oracle_rejects(value) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validator(SCHEMA)(value)


def test_the_oracle_accepts_decimal_multiples() -> None:
    # 10.3 / 0.1 is not an integer in binary floating point; it is a multiple of 0.1 all the same.
    validator(SCHEMA)(
        {"kind": "A", "when": "2025-01-01T00:00:00.5+01:00", "items": [{"n": 2}, {"n": 5}], "limit": 10.3}
    )


CSMS_CASES = [(v, a) for v in VERSIONS for a in sorted(CSMS_INITIATED[v])]


@pytest.mark.parametrize(("version", "action"), CSMS_CASES, ids=[f"{v.value}-{a}" for v, a in CSMS_CASES])
def test_csms_requests_and_responses_validate(version, action) -> None:
    # The charger-initiated schemas are covered by test_every_action; these are the other half.
    @settings(max_examples=3, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.tuples(payloads(version, action), payloads(version, action, SchemaKind.RESPONSE)))
    def run(pair) -> None:
        request, response = pair
        schema_validator(version, action, SchemaKind.REQUEST)(request)
        schemas.validate_request(version, action, request)
        schema_validator(version, action, SchemaKind.RESPONSE)(response)
        schemas.validate_response(version, action, response)

    run()
