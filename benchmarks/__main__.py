"""``make bench``: every benchmark, each printing its ``bench ...:`` line(s).

Figures are ratios against a baseline measured in the same run where the issue asks for one
(the ``ocpp`` library's ``route_message``, a raw websockets echo server), so they can be
compared across machines. Run one alone with ``python -m benchmarks.bench_<name> --help``.
"""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = ("bench_processor", "bench_store_ops", "bench_bridge", "bench_bridge_tls", "bench_storm", "bench_e2e")

#: Names of one line of a module, to run that part alone: name -> (module, its arguments).
PARTS: dict[str, tuple[str, list[str]]] = {
    "e2e-aws-order": ("bench_e2e", ["--delivery", "aws", "--state", "moto"]),
}


def main(argv: list[str] | None = None) -> int:
    selected = (argv if argv is not None else sys.argv[1:]) or list(BENCHMARKS)
    failed = []
    for name in selected:
        module_name, args = PARTS.get(name, (name if name.startswith("bench_") else f"bench_{name}", []))
        started = time.monotonic()
        print(f"# {module_name} ...", flush=True)
        try:
            module = importlib.import_module(f"benchmarks.{module_name}")
            code = module.main(args)
        except Exception as error:  # noqa: BLE001 - one broken benchmark must not hide the others
            print(f"# {module_name} failed: {error!r}", flush=True)
            code = 1
        if code:
            failed.append(module_name)
        print(f"# {module_name} took {time.monotonic() - started:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
