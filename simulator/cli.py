"""``python -m simulator``: scenario and load modes on the command line.

Exit codes: 0 success; 1 the CSMS did not play along (CALLERROR, Rejected boot, refused id
tag, timeout, lost connection; in load mode: any error or failed connection); 2 bad usage;
3 could not connect at all (nothing listening, handshake refused, subprotocol refused);
130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence

from ocpp_core.versions import OcppVersion

from .errors import ConnectFailed, SimulatorError
from .files import UPLOAD_METHODS
from .load import ALL_VERSIONS, LoadConfig, LoadSummary, run_load
from .scenario import ScenarioOptions, run_scenario
from .site_demo import DEFAULT_API, ApiFailed, SiteDemo, run_site_demo
from .station import DEFAULT_ID_TAG, DEFAULT_URL, parse_version

#: Environment variables that give defaults to options (an explicit option wins).
ENV_URL = "SIMULATOR_URL"
ENV_PASSWORD = "SIMULATOR_PASSWORD"

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_INTERRUPTED = 130

_MAX_ID = 48  # DESIGN §2: charger ids are 1 to 48 characters

_DESCRIPTION = """\
An OCPP charging station simulator (OCPP-J over WebSocket: ocpp1.6, ocpp2.0.1, ocpp2.1).

It connects to ws://HOST:PORT/<prefix>/<chargePointId>, negotiates exactly one subprotocol,
sends schema-valid messages and answers the CSMS's calls like a real station (Reset,
remote start/stop, configuration and variables, TriggerMessage, reports...).

modes:
  scenario   one station, one full charging session, every frame printed
  load       many stations sending a realistic mix of calls, with a summary at the end

Run 'python -m simulator MODE --help' for the options of a mode.
"""

_SCENARIO_EPILOG = """\
Frames go to stdout ('-> ' sent, '<- ' received); messages to stderr.

examples:
  python -m simulator scenario --id CP1 --version 2.0.1
  python -m simulator scenario --id CP1 --version 1.6 --password secret --stay
  python -m simulator scenario --id CP2 --version 2.1 --no-session --stay   # a station to command
  python -m simulator scenario --id CP3 --version 2.0.1 --password secret --security-profile 3 \
      --tls-url wss://127.0.0.1:9443/ocpp --ca-file .local-stack/ca.pem   # SignCertificate, then mTLS

exit codes: 0 session completed; 1 the CSMS refused something (CALLERROR, Rejected boot,
id tag not Accepted, timeout, connection lost); 3 could not connect; 130 interrupted.
"""

_LOAD_EPILOG = """\
Each station connects (ramped), boots, reports its connector, then sends calls at the given
rate: ~70 % Heartbeat, StatusNotification and MeterValues, and charging sessions (Authorize,
start, meter values, stop). Latency is measured from sending a CALL to its answer.

examples:
  python -m simulator load --chargers 200 --rate-per-charger 0.5 --duration 60 --ramp-up 10
  python -m simulator load --chargers 1000 --version mixed --duration 120 --json > summary.json

exit codes: 0 no errors; 1 some errors or failed connections; 3 no station could connect.
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError("must not be negative")
    return value


def _existing_file(text: str) -> str:
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(f"no such file: {text}")
    return text


def _version(text: str) -> OcppVersion:
    try:
        return parse_version(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _versions(text: str) -> tuple[OcppVersion, ...]:
    if text.strip().lower() == "mixed":
        return ALL_VERSIONS
    return tuple(_version(part) for part in text.split(","))


def _common(parser: argparse.ArgumentParser, env: Mapping[str, str]) -> None:
    parser.add_argument(
        "--url",
        default=env.get(ENV_URL, DEFAULT_URL),
        help=f"WebSocket URL prefix; the charger id is appended as the last path segment "
        f"(default: ${ENV_URL} or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--password",
        default=env.get(ENV_PASSWORD),
        help=f"HTTP Basic auth password (user = charger id; security profile 1/2); default: ${ENV_PASSWORD}, "
        "else no Authorization header",
    )
    parser.add_argument(
        "--ca-file",
        type=_existing_file,
        default=None,
        help="for wss:// URLs: CA bundle (PEM) that signs the CSMS certificate, when it is not a public CA",
    )
    parser.add_argument(
        "--timeout", type=_positive_float, default=30.0, help="seconds to wait for the answer to a call (default 30)"
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level on stderr (default WARNING; DEBUG logs every frame)",
    )


def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", metavar="MODE", required=True)

    sc = modes.add_parser(
        "scenario",
        help="one station, one full charging session, frames printed",
        description="Connect one station and run a full session: BootNotification, StatusNotification "
        "Available, Authorize, start (StartTransaction / TransactionEvent Started), meter values, stop, "
        "StatusNotification Available.",
        epilog=_SCENARIO_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sc.add_argument("--id", required=True, dest="charge_point_id", help="charger id (chargePointId), 1-48 characters")
    sc.add_argument(
        "--version", type=_version, default=OcppVersion.V201, help="OCPP version: 1.6, 2.0.1 or 2.1 (default 2.0.1)"
    )
    _common(sc, env)
    sc.add_argument(
        "--id-tag", default=DEFAULT_ID_TAG, help=f"id tag / idToken of the session (default {DEFAULT_ID_TAG})"
    )
    sc.add_argument("--connectors", type=_positive_int, default=1, help="connectors (1.6) or EVSEs (2.x) (default 1)")
    sc.add_argument("--connector", type=_positive_int, default=1, help="connector / EVSE of the session (default 1)")
    sc.add_argument("--samples", type=_non_negative_int, default=3, help="meter samples during the session (default 3)")
    sc.add_argument(
        "--sample-interval",
        type=_non_negative_float,
        default=1.0,
        help="seconds between meter samples (default 1)",
    )
    sc.add_argument("--vendor", default="OCPP-Sim", help="vendor name in BootNotification (default OCPP-Sim)")
    sc.add_argument("--model", default="Simulator", help="model in BootNotification (default Simulator)")
    sc.add_argument("--no-session", action="store_true", help="only boot and report status (no charging session)")
    sc.add_argument(
        "--stay",
        action="store_true",
        help="after the session, stay connected: heartbeats at the interval the CSMS gave, answers to the "
        "CSMS's calls, reconnection after a lost connection; until Ctrl-C",
    )
    sc.add_argument(
        "--meter-interval",
        type=_non_negative_int,
        default=0,
        help="while staying, seconds between meter samples of a remotely started transaction (default 0: none; "
        "the CSMS can set MeterValueSampleInterval / SampledDataCtrlr.TxUpdatedInterval)",
    )
    sc.add_argument(
        "--reconnect-attempts",
        type=_positive_int,
        default=10,
        help="while staying, reconnection attempts after a lost connection before giving up (default 10; "
        "backoff 1 s doubling to 30 s, with jitter)",
    )
    sc.add_argument(
        "--security-profile",
        type=int,
        choices=[1, 2, 3],
        default=None,
        help="3: after the first boot on --url (Basic auth with --password, profile 1/2), send SignCertificate, "
        "install the certificate, reconnect to --tls-url with it as client certificate and boot again; "
        "1 or 2: --url and --password as given (the default)",
    )
    sc.add_argument(
        "--tls-url",
        default=None,
        help="with --security-profile 3: the wss:// URL prefix of the client-certificate endpoint "
        "(locally wss://127.0.0.1:9443/ocpp); --ca-file is the CA its server certificate chains to",
    )
    sc.add_argument(
        "--upload-method",
        choices=UPLOAD_METHODS,
        default="post",
        help="how GetDiagnostics / GetLog files are uploaded: post (multipart/form-data, the default) or put "
        "(the raw body, e.g. to an S3 presigned PUT URL)",
    )
    sc.add_argument("--quiet", action="store_true", help="do not print frames")

    ld = modes.add_parser(
        "load",
        help="many stations sending calls at a given rate, with a latency summary",
        description="Connect many stations in one process and send a realistic mix of calls for a while, then "
        "print a summary: stations connected/failed, calls, errors, latency p50/p95/p99/max, calls/s.",
        epilog=_LOAD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ld.add_argument("--chargers", type=_positive_int, default=10, help="number of stations (default 10)")
    ld.add_argument(
        "--rate-per-charger", type=_positive_float, default=0.1, help="calls per second per station (default 0.1)"
    )
    ld.add_argument(
        "--duration", type=_positive_float, default=60.0, help="seconds of traffic after the ramp-up (default 60)"
    )
    ld.add_argument(
        "--version",
        type=_versions,
        default=(OcppVersion.V16,),
        dest="versions",
        help="1.6, 2.0.1, 2.1, a comma-separated list, or 'mixed' (all three, round-robin) (default 1.6)",
    )
    _common(ld, env)
    ld.add_argument(
        "--ramp-up", type=_non_negative_float, default=0.0, help="seconds over which stations connect (default 0)"
    )
    ld.add_argument("--id-prefix", default="LOAD-", help="charger id prefix; ids are PREFIX00001... (default LOAD-)")
    ld.add_argument(
        "--connect-concurrency", type=_positive_int, default=200, help="handshakes in flight at most (default 200)"
    )
    ld.add_argument("--id-tag", default="LOAD-TAG", help="id tag of the sessions (default LOAD-TAG)")
    ld.add_argument(
        "--no-authorize",
        action="store_true",
        help="start sessions without Authorize (a refused id tag then ends the transaction at once)",
    )
    ld.add_argument("--seed", type=int, default=None, help="random seed, for a repeatable mix")
    ld.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    ld.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    st = modes.add_parser(
        "site",
        help="stations on one site: watch the CSMS share its limit as sessions start and end",
        description="Register stations, make them a site through the operator API, start a session on each "
        "(staggered), then end them; print what each station draws (its charging limit in force) and the sum.",
    )
    st.add_argument("--site", default="S1", dest="site_id", help="site id (default S1)")
    st.add_argument("--chargers", type=_positive_int, default=3, help="stations on the site (default 3)")
    st.add_argument(
        "--version",
        type=_versions,
        default=(OcppVersion.V16, OcppVersion.V201),
        dest="versions",
        help="versions round-robin: 1.6, 2.0.1, 2.1, a list, or 'mixed' (default 1.6,2.0.1)",
    )
    st.add_argument("--limit-amps", type=_positive_float, default=32.0, help="site limit, A per phase (default 32)")
    st.add_argument("--min-amps", type=_positive_float, default=6.0, help="minimum current of a session (default 6)")
    st.add_argument("--stagger", type=_non_negative_float, default=5.0, help="seconds between starts/stops (default 5)")
    st.add_argument("--every", type=_positive_float, default=1.0, help="seconds between two lines (default 1)")
    st.add_argument(
        "--api",
        default=env.get("OCPP_API_URL", DEFAULT_API),
        help=f"operator API (default $OCPP_API_URL or {DEFAULT_API})",
    )
    st.add_argument("--id-prefix", default="SITE-", help="charger id prefix (default SITE-)")
    st.add_argument("--id-tag", default=DEFAULT_ID_TAG, help=f"id tag of the sessions (default {DEFAULT_ID_TAG})")
    _common(st, env)
    return parser


def _print_frame(direction: str, text: str) -> None:
    print(f"{direction} {text}", flush=True)


async def _scenario(args: argparse.Namespace) -> int:
    options = ScenarioOptions(
        charge_point_id=args.charge_point_id,
        version=args.version,
        url=args.url,
        password=args.password,
        id_tag=args.id_tag,
        connectors=args.connectors,
        connector=args.connector,
        samples=args.samples,
        sample_interval=args.sample_interval,
        call_timeout=args.timeout,
        session=not args.no_session,
        stay=args.stay,
        meter_interval=args.meter_interval,
        reconnect_attempts=args.reconnect_attempts,
        ca_file=args.ca_file,
        vendor=args.vendor,
        model=args.model,
        security_profile=args.security_profile,
        tls_url=args.tls_url,
        upload_method=args.upload_method,
    )
    stop = asyncio.Event()
    if args.stay:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        print(f"{args.charge_point_id}: staying connected, Ctrl-C to stop", file=sys.stderr, flush=True)
    station = await run_scenario(options, on_frame=None if args.quiet else _print_frame, stop=stop)
    what = "session completed" if options.session else "boot completed"
    print(f"{station.id} ({station.version.value}): {what}", file=sys.stderr, flush=True)
    return EXIT_OK


async def _load(args: argparse.Namespace) -> int:
    width = max(5, len(str(args.chargers)))
    if not 1 <= len(args.id_prefix) + width <= _MAX_ID:
        print(f"error: --id-prefix is too long (ids are at most {_MAX_ID} characters)", file=sys.stderr)
        return EXIT_USAGE
    config = LoadConfig(
        chargers=args.chargers,
        rate_per_charger=args.rate_per_charger,
        duration=args.duration,
        url=args.url,
        versions=args.versions,
        ramp_up=args.ramp_up,
        id_prefix=args.id_prefix,
        connect_concurrency=args.connect_concurrency,
        password=args.password,
        call_timeout=args.timeout,
        id_tag=args.id_tag,
        authorize=not args.no_authorize,
        ca_file=args.ca_file,
        seed=args.seed,
        progress=not args.no_progress,
    )
    summary = await run_load(config)
    _report(summary, as_json=args.json)
    if summary.connected == 0:
        reasons = "; ".join(summary.connect_errors) or "no station connected"
        print(f"error: no station could connect: {reasons}", file=sys.stderr)
        return EXIT_CONNECT
    return EXIT_FAILED if summary.errors or summary.failed else EXIT_OK


async def _site(args: argparse.Namespace) -> int:
    demo = SiteDemo(
        site_id=args.site_id,
        chargers=args.chargers,
        versions=args.versions,
        limit_amps=args.limit_amps,
        min_amps=args.min_amps,
        stagger_s=args.stagger,
        every_s=args.every,
        url=args.url,
        api=args.api.rstrip("/"),
        id_prefix=args.id_prefix,
        id_tag=args.id_tag,
        call_timeout=args.timeout,
    )
    try:
        highest = await run_site_demo(demo, sys.stdout)
    except ApiFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK if highest <= demo.limit_amps + 1e-6 else EXIT_FAILED


def _report(summary: LoadSummary, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary.to_dict(), indent=2, sort_keys=True))
    else:
        print(summary.format_text())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.mode == "scenario":
        if not 1 <= len(args.charge_point_id) <= _MAX_ID:
            parser.error(f"--id must be 1 to {_MAX_ID} characters")
        if args.security_profile == 3 and not args.tls_url:
            parser.error("--security-profile 3 needs --tls-url (the wss:// client-certificate endpoint)")
        if args.tls_url and args.security_profile != 3:
            parser.error("--tls-url is for --security-profile 3")
        if args.tls_url and not args.tls_url.startswith("wss://"):
            parser.error("--tls-url must be a wss:// URL")
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runner = {"scenario": _scenario, "load": _load, "site": _site}[args.mode]
    try:
        return asyncio.run(runner(args))
    except ConnectFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONNECT
    except SimulatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
