"""DynamoDB requests per frame, counted at the boto3 client on moto (issue: at most 1.5 on the day
mix of docs/deployment.md, a Heartbeat at most 1). Counts, not timings: deterministic."""

from __future__ import annotations

from benchmarks.bench_store_ops import day_mix_requests, heartbeat_requests
from ocpp_core.versions import OcppVersion


def test_a_heartbeat_is_one_request(moto) -> None:
    assert heartbeat_requests("hb") == 1


def test_the_day_mix_costs_at_most_one_and_a_half_requests_per_frame(moto) -> None:
    for i, version in enumerate((OcppVersion.V16, OcppVersion.V201)):
        per_frame, frames = day_mix_requests(version, f"day-{i}")
        assert frames == 375
        assert per_frame <= 1.5, (version, per_frame)
