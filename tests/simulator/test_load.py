"""Load mode against the fake CSMS: a short run with a clean summary."""

from __future__ import annotations

import pytest

from ocpp_core.versions import OcppVersion
from simulator import LoadConfig, run_load
from simulator.load import ALL_VERSIONS, percentile

from .fake_csms import FakeCsms
from .helpers import run


def test_load_20_chargers_3_seconds() -> None:
    async def body() -> None:
        async with FakeCsms() as csms:
            config = LoadConfig(
                chargers=20,
                rate_per_charger=3.0,
                duration=3.0,
                ramp_up=0.5,
                url=csms.url,
                versions=ALL_VERSIONS,
                id_prefix="T-",
                seed=7,
                call_timeout=5.0,
            )
            summary = await run_load(config)
            assert csms.violations == []
            seen = {version for _, version in csms.connections_seen}
        assert seen == {v.value for v in OcppVersion}
        assert (summary.chargers, summary.connected, summary.failed) == (20, 20, 0)
        assert summary.errors == 0, summary.format_text()
        assert summary.responses == summary.calls
        # 20 boots + 20 statuses + about 3 calls/s for 3 s each.
        assert summary.calls >= 40 + 20 * 3 * 3 * 0.6
        assert summary.per_action["BootNotification"] == 20
        assert summary.per_action["Heartbeat"] > 0
        assert 0 < summary.p50_ms <= summary.p95_ms <= summary.p99_ms <= summary.max_ms
        assert summary.calls_per_s > 0
        assert summary.sessions > 0
        text = summary.format_text()
        assert "20 connected / 20" in text and "p95" in text

    run(body)


def test_load_counts_failed_connections() -> None:
    async def body() -> None:
        async with FakeCsms(refuse_status=401) as csms:
            summary = await run_load(LoadConfig(chargers=3, duration=0.5, url=csms.url))
        assert (summary.connected, summary.failed, summary.calls) == (0, 3, 0)
        [(reason, count)] = summary.connect_errors.items()
        assert count == 3 and "HTTP 401" in reason

    run(body)


def test_load_config_is_checked() -> None:
    with pytest.raises(ValueError, match="positive"):
        run(lambda: run_load(LoadConfig(chargers=0)))


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 95) == 95.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 50) == 0.0
    assert percentile([3.0], 99) == 3.0


def test_the_steady_figures_count_only_calls_sent_after_the_ramp_up() -> None:
    from simulator.load import _Stats, _summary

    stats = _Stats()
    for seconds in (5.0, 6.0):  # slow answers to calls sent during the ramp-up
        stats.on_call("BootNotification", seconds, "ok")
    steady_from = max(stats.sent_at) + 0.001
    stats.on_call("Heartbeat", 0.0, "timeout")  # no answer: no latency in either figure
    for seconds in (0.01, 0.02, 0.03):
        stats.on_call("Heartbeat", seconds, "ok")
    summary = _summary(LoadConfig(chargers=1), stats, 1.0, steady_from)
    assert summary.steady_calls == 3
    assert summary.steady_p50_ms == pytest.approx(20.0, abs=0.5)
    assert summary.steady_p99_ms == pytest.approx(30.0, abs=0.5)
    assert summary.p99_ms == pytest.approx(6000.0, abs=0.5)
    assert "after ramp-up   3 calls" in summary.format_text()
