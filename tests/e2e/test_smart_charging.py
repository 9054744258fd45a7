"""Site load balancing through the whole stack (DESIGN §10): a 1.6 and a 2.0.1 simulated station on
one site of 32 A. The CSMS installs its default profile (0 A: a new session starts paused), gives
the first session all of the limit, halves it when the second one starts (lowering the first
before raising the second), and gives the whole limit back when one ends. A sampler reads what the
two stations draw every 10 ms: their sum never exceeds the limit, in either delivery mode."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from ocpp_core.versions import OcppVersion
from simulator.site_demo import SiteDemo, run_site_demo
from simulator.station import Station

from .conftest import E2EStack, wait_for
from .test_operator_calls import _api, _http

TAG = "DEMO-TAG"
LIMIT = 32.0
SITE = "SITE-E2E"
CP16, CP201 = "SITE-V16", "SITE-V201"


async def _until(predicate: Any, timeout: float = 20.0) -> Any:
    return await asyncio.to_thread(wait_for, predicate, timeout)


def _defaults_in_force(stack: E2EStack) -> bool:
    balance = stack.store().get_balance(SITE) or {}
    chargers = balance.get("chargers") or {}
    return all((chargers.get(cp) or {}).get("granted") == 0 for cp in (CP16, CP201))


def _all_applied(stack: E2EStack, sessions: int) -> dict[str, Any] | None:
    status, view = _http("GET", f"{stack.api_url}/sites/{SITE}")
    active = view.get("activeTransactions") or []
    if status == 200 and len(active) == sessions and all(t["profileStatus"] == "applied" for t in active):
        return dict(view)
    return None


def test_two_sessions_share_the_site_limit(stack: E2EStack) -> None:
    for cp in (CP16, CP201):
        assert _http("PUT", f"{stack.api_url}/chargers/{cp}", {})[0] in (200, 201)

    async def run() -> dict[str, Any]:
        out: dict[str, Any] = {"max_sum": 0.0}
        async with (
            Station(CP16, OcppVersion.V16, url=stack.ws_url, call_timeout=20) as a,
            Station(CP201, OcppVersion.V201, url=stack.ws_url, call_timeout=20) as b,
        ):
            for station in (a, b):
                await station.boot()
                await station.status(1, "Available")
            await _until(lambda: all(stack.store().get_charger(cp).get("protocol") for cp in (CP16, CP201)))
            site = {"limitAmps": LIMIT, "phases": 3, "minAmps": 6, "chargers": [CP16, CP201]}
            status, body = await _api("PUT", f"{stack.api_url}/sites/{SITE}", site)
            assert status == 201, body
            out["defaults"] = await _until(lambda: _defaults_in_force(stack))

            def amps() -> tuple[float, float]:
                return a.draw(a.connectors[1]).amps, b.draw(b.connectors[1]).amps

            stopping = asyncio.Event()

            async def sample() -> None:
                while not stopping.is_set():
                    out["max_sum"] = max(out["max_sum"], sum(amps()))
                    await asyncio.sleep(0.01)

            sampler = asyncio.create_task(sample())
            await a.authorize(TAG)
            await a.start_transaction(1, TAG)
            out["alone"] = await _until(lambda: amps() == (LIMIT, 0.0))
            await b.authorize(TAG)
            await b.start_transaction(1, TAG)
            out["shared"] = await _until(lambda: amps() == (LIMIT / 2, LIMIT / 2))
            # The stations apply a profile before the CSMS processes their answer (later still
            # under aws delivery): the site shows it applied once the answers are in.
            out["view"] = await _until(lambda: _all_applied(stack, 2))
            await a.stop_transaction(1)
            out["back"] = await _until(lambda: amps() == (0.0, LIMIT))
            stopping.set()
            await sampler
            stack.settle()
            out["final"] = await _until(lambda: _all_applied(stack, 1))
            status, out["profiles"] = await _api("GET", f"{stack.api_url}/chargers/{CP201}/charging-profiles")
            await b.stop_transaction(1)
        return out

    out = asyncio.run(run())
    assert out["defaults"] and out["alone"] and out["shared"] and out["back"]
    assert out["max_sum"] <= LIMIT, out["max_sum"]
    shared = {t["chargePointId"]: t for t in out["view"]["activeTransactions"]}
    assert {cp: (t["share"], t["limit"], t["profileStatus"]) for cp, t in shared.items()} == {
        CP16: (16, 16, "applied"),
        CP201: (16, 16, "applied"),
    }
    final = out["final"]["activeTransactions"]
    assert [(t["chargePointId"], t["share"], t["profileStatus"]) for t in final] == [(CP201, 32, "applied")]
    installed = {(p["chargingProfilePurpose"], p["source"]) for p in out["profiles"]["profiles"]}
    assert ("TxProfile", "balancing") in installed and ("TxDefaultProfile", "balancing") in installed


def test_the_site_demo_of_the_readme(stack: E2EStack) -> None:
    """``python -m simulator site`` as the README runs it (shorter): three stations, 1.6 and 2.0.1."""
    demo = SiteDemo(site_id="DEMO", chargers=3, stagger_s=1.5, every_s=0.2, url=stack.ws_url, api=stack.api_url)
    out = io.StringIO()
    highest = asyncio.run(run_site_demo(demo, out))
    text = out.getvalue()
    assert 0 < highest <= demo.limit_amps, text
    assert "highest sum seen" in text and "SITE-03" in text
    # With three sessions on 32 A, each had its third (10.6 A, rounded down to 0.1 A) at some point.
    assert "10.6" in text, text
