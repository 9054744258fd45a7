"""``python -m simulator site``: the balancing of a site, to watch (DESIGN §10).

Registers ``--chargers`` stations (versions round-robin), makes them a site of ``--limit-amps``
through the operator API, and starts a session on each, ``--stagger`` seconds apart; then ends them
one by one the same way. Every ``--every`` seconds it prints what each station draws (the limit the
CSMS's profiles put in force, as the station applies it) and the sum, and at the end the highest
sum seen, which never exceeds the limit. ``csms sites show <site>`` shows the CSMS's side meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, TextIO

from ocpp_core.versions import OcppVersion

from .station import DEFAULT_ID_TAG, DEFAULT_URL, Station

DEFAULT_API = "http://127.0.0.1:9001"


@dataclass(frozen=True, slots=True)
class SiteDemo:
    site_id: str = "S1"
    chargers: int = 3
    versions: tuple[OcppVersion, ...] = (OcppVersion.V16, OcppVersion.V201)
    limit_amps: float = 32.0
    min_amps: float = 6.0
    phases: int = 3
    stagger_s: float = 5.0
    every_s: float = 1.0
    url: str = DEFAULT_URL
    api: str = DEFAULT_API
    id_prefix: str = "SITE-"
    id_tag: str = DEFAULT_ID_TAG
    call_timeout: float = 30.0


class ApiFailed(Exception):
    pass


def _api(base: str, method: str, path: str, body: Any = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        base + path, data=data, method=method, headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        raise ApiFailed(f"{method} {path}: HTTP {error.code}: {error.read()[:300].decode(errors='replace')}") from None
    except urllib.error.URLError as error:
        raise ApiFailed(f"{method} {path}: the operator API at {base} is not reachable ({error.reason})") from None


async def run_site_demo(demo: SiteDemo, out: TextIO) -> float:
    """Run the demo; the highest sum of draws seen (A per phase)."""
    ids = [f"{demo.id_prefix}{n:02d}" for n in range(1, demo.chargers + 1)]
    for cp in ids:
        await asyncio.to_thread(_api, demo.api, "PUT", f"/chargers/{cp}", {})
    site = {
        "limitAmps": demo.limit_amps,
        "phases": demo.phases,
        "minAmps": demo.min_amps,
        "chargers": ids,
    }
    stations = [
        Station(cp, demo.versions[i % len(demo.versions)], url=demo.url, call_timeout=demo.call_timeout)
        for i, cp in enumerate(ids)
    ]
    highest = 0.0
    async with contextlib.AsyncExitStack() as stack:
        for station in stations:
            await stack.enter_async_context(station)
            await station.boot()
            await station.status(1, "Available")
        await asyncio.to_thread(_api, demo.api, "PUT", f"/sites/{demo.site_id}", site)
        print(f"site {demo.site_id}: {demo.limit_amps:g} A per phase, minimum {demo.min_amps:g} A, {ids}", file=out)
        print("  t(s)  " + "  ".join(f"{cp:>10}" for cp in ids) + "       sum", file=out)
        started = asyncio.get_running_loop().time()

        def line() -> float:
            draws = [s.draw(s.connectors[1]).amps for s in stations]
            total = sum(draws)
            elapsed = asyncio.get_running_loop().time() - started
            cells = "  ".join(f"{d:>10.1f}" for d in draws)
            print(f"{elapsed:6.1f}  {cells}  {total:8.1f}", file=out, flush=True)
            return total

        async def watch(seconds: float) -> None:
            nonlocal highest
            end = asyncio.get_running_loop().time() + seconds
            while asyncio.get_running_loop().time() < end:
                highest = max(highest, line())
                await asyncio.sleep(min(demo.every_s, max(0.0, end - asyncio.get_running_loop().time())))

        for station in stations:
            await station.authorize(demo.id_tag)
            await station.start_transaction(1, demo.id_tag)
            await watch(demo.stagger_s)
        for station in stations:
            await station.stop_transaction(1)
            await watch(demo.stagger_s)
    print(f"highest sum seen: {highest:.1f} A (site limit {demo.limit_amps:g} A)", file=out)
    return highest
