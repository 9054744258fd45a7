"""The command line: argparse sub-commands, each one request to the operator API.

Exit codes: 0 success; 1 the API refused the request (the reason is printed); 2 usage or
local configuration error; 3 the API cannot be reached; 4 the OCPP call of ``call``,
``call-status``, ``reservations create`` or ``reservations cancel`` ended in ``error`` or
``timeout`` (the record is still printed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from . import output
from .client import API_URL_ENV, DEFAULT_API_URL, ApiClient, CliError, segment
from .files import cmd_files_download, cmd_files_list, cmd_firmware_list, cmd_firmware_show, cmd_firmware_upload

EXIT_CALL_FAILED = 4
CHARGER_COLUMNS = ("CHARGER", "PROTOCOL", "CONNECTED", "REGISTRATION", "LAST SEEN", "MODEL", "CONNECTORS")
RESERVATION_COLUMNS = ("RESERVATION", "CHARGER", "CONNECTOR", "ID TAG", "STATUS", "EXPIRES", "CREATED")
CALL_COLUMNS = ("UNIQUE ID", "ACTION", "STATUS", "CREATED", "COMPLETED")
SITE_COLUMNS = ("SITE", "LIMIT", "PHASES", "MIN A", "CHARGERS", "UPDATED")
PROFILE_COLUMNS = ("CONNECTOR/EVSE", "ID", "PURPOSE", "STACK", "KIND", "TRANSACTION", "SOURCE", "LIMITS", "SINCE")
SCHEDULE_COLUMNS = ("CONNECTOR/EVSE", "START", "DURATION", "UNIT", "LIMITS", "RECEIVED")
#: the ``status`` values of a reservation (docs/operator_api.md#reservations)
RESERVATION_STATES = (
    "Requested",
    "Accepted",
    "Faulted",
    "Occupied",
    "Rejected",
    "Unavailable",
    "Used",
    "Expired",
    "Cancelled",
)
_DURATION = re.compile(r"^([0-9]+)([smhd])$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _connectors(view: dict[str, Any]) -> str:
    parts = []
    for item in view.get("connectors") or []:
        label = str(item.get("connectorId", "?"))
        if "evseId" in item:
            label = f"{item['evseId']}/{label}"
        parts.append(f"{label}:{item.get('status', '?')}")
    return " ".join(parts)


def _model(view: dict[str, Any]) -> str:
    boot = view.get("boot") or {}
    vendor = boot.get("chargePointVendor") or boot.get("vendorName")
    model = boot.get("chargePointModel") or boot.get("model")
    return " ".join(str(x) for x in (vendor, model) if x)


def _charger_row(view: dict[str, Any]) -> list[Any]:
    return [
        view.get("chargePointId"),
        view.get("protocol"),
        view.get("connected"),
        view.get("registrationStatus") if view.get("registered") else "(unregistered)",
        view.get("lastSeen"),
        _model(view),
        _connectors(view),
    ]


def _print_charger(view: dict[str, Any], out: TextIO) -> None:
    big = ("connectors", "configuration", "variables", "boot")
    output.key_values(((k, v) for k, v in view.items() if k not in big), out)
    if view.get("boot"):
        out.write("\nboot:\n")
        output.key_values(view["boot"].items(), out)
    if view.get("connectors"):
        out.write("\nconnectors:\n")
        output.table(
            ("EVSE", "CONNECTOR", "STATUS", "ERROR", "SINCE"),
            (
                [c.get("evseId"), c.get("connectorId"), c.get("status"), c.get("errorCode"), c.get("timestamp")]
                for c in view["connectors"]
            ),
            out,
        )
    if view.get("configuration"):
        out.write("\nconfiguration (1.6):\n")
        output.table(
            ("KEY", "VALUE", "READONLY"),
            (
                [k, v.get("value") if isinstance(v, dict) else v, v.get("readonly") if isinstance(v, dict) else None]
                for k, v in sorted(view["configuration"].items())
            ),
            out,
        )
    if view.get("variables"):
        out.write("\nvariables (2.x):\n")
        output.table(("VARIABLE", "VALUE"), sorted(view["variables"].items()), out)


def _print_record(view: dict[str, Any], out: TextIO) -> None:
    output.key_values(view.items(), out)


def _connector_label(view: dict[str, Any]) -> Any:
    """``connectorId`` (1.6), ``evseId/connectorId`` (2.x, ``-`` for a connector left out)."""
    if "evseId" not in view:
        return view.get("connectorId")
    return f"{view.get('evseId')}/{view.get('connectorId', '-')}"


def _reservation_row(view: dict[str, Any]) -> list[Any]:
    return [
        view.get("reservationId"),
        view.get("chargePointId"),
        _connector_label(view),
        view.get("idTag"),
        view.get("status"),
        view.get("expiryDate"),
        view.get("createdAt"),
    ]


def _print_reservation_call(answer: dict[str, Any], out: TextIO) -> None:
    """``{"reservation": ..., "call": ...}``: the reservation, then the OCPP call that carries it."""
    output.key_values((answer.get("reservation") or {}).items(), out)
    if answer.get("call"):
        out.write("\ncall:\n")
        output.key_values(answer["call"].items(), out)


_show = output.show


# --- commands ------------------------------------------------------------------------------


def cmd_chargers_list(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    """Every charger (or the first ``--limit``), following the API's pages."""
    chargers: list[Any] = []
    after = None
    while args.limit is None or len(chargers) < args.limit:
        size = PAGE if args.limit is None else min(PAGE, args.limit - len(chargers))
        page = api.request("GET", "/chargers", query={"limit": size, "after": after})
        chargers.extend(page.get("chargers", []))
        after = page.get("next")
        if not after:
            break
    answer = {"chargers": chargers, "count": len(chargers)}
    if args.json:
        output.as_json(answer, out)
    else:
        output.table(CHARGER_COLUMNS, (_charger_row(v) for v in answer.get("chargers", [])), out)
    return 0


#: Chargers asked for per request (the API's bound is 1000).
PAGE = 500


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return int(text)


def cmd_chargers_show(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    answer = api.request("GET", f"/chargers/{segment(args.charger)}")
    _show(args, answer, out, _print_charger)
    return 0


def cmd_chargers_register(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {}
    password = args.password
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    if password is not None:
        body["password"] = password
    if args.status:
        body["registrationStatus"] = args.status
    if args.description is not None:
        body["description"] = args.description
    answer = api.request("PUT", f"/chargers/{segment(args.charger)}", body)
    _show(args, answer, out, _print_charger)
    return 0


def _payload(text: str) -> Any:
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as handle:
                text = handle.read()
        except OSError as error:
            raise CliError(f"cannot read the payload file {text[1:]}: {error.strerror}", exit_code=2) from None
    try:
        return json.loads(text)
    except ValueError as error:
        raise CliError(f'the payload is not valid JSON ({error}); quote it, e.g. \'{{"type":"Soft"}}\'', 2) from None


def _call_exit(answer: dict[str, Any]) -> int:
    return EXIT_CALL_FAILED if answer.get("status") in ("error", "timeout") else 0


def _wait_query(api: ApiClient, args: argparse.Namespace) -> dict[str, str] | None:
    """``?wait=`` for ``--wait``, with an HTTP timeout long enough for it."""
    if not args.wait:
        return None
    api.timeout_s = max(api.timeout_s, args.wait + 15)
    return {"wait": f"{args.wait:g}"}


def _duration(text: str) -> timedelta:
    """``90s``, ``30m``, ``2h``, ``1d``."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 30m, 2h or 1d")
    return timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _non_negative(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")
    return int(text)


def cmd_call(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    body = {"action": args.action, "payload": _payload(args.payload)}
    query = _wait_query(api, args)
    answer = api.request("POST", f"/chargers/{segment(args.charger)}/calls", body, query)
    _show(args, answer, out, _print_record)
    return _call_exit(answer)


def cmd_call_status(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    answer = api.request("GET", f"/chargers/{segment(args.charger)}/calls/{segment(args.unique_id)}")
    _show(args, answer, out, _print_record)
    return _call_exit(answer)


def cmd_id_tags_put(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {"status": args.status}
    if args.expiry:
        body["expiryDate"] = args.expiry
    if args.parent:
        body["parentIdTag"] = args.parent
    answer = api.request("PUT", f"/id-tags/{segment(args.tag)}", body)
    _show(args, answer, out, _print_record)
    return 0


def cmd_calls_list(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    """One page of the charger's calls, newest first; the cursor of the next page after the table."""
    query = {"limit": args.limit, "after": args.after}
    answer = api.request("GET", f"/chargers/{segment(args.charger)}/calls", query=query)
    if args.json:
        output.as_json(answer, out)
        return 0
    output.table(
        CALL_COLUMNS,
        (
            [c.get("uniqueId"), c.get("action"), c.get("status"), c.get("createdAt"), c.get("completedAt")]
            for c in answer.get("calls", [])
        ),
        out,
    )
    if answer.get("next"):
        out.write(f"more: --after {answer['next']}\n")
    return 0


def cmd_id_tags_show(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    answer = api.request("GET", f"/id-tags/{segment(args.tag)}")
    _show(args, answer, out, _print_record)
    return 0


def cmd_id_tags_delete(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    api.request("DELETE", f"/id-tags/{segment(args.tag)}")  # 204: no body
    if args.json:
        output.as_json({"idTag": args.tag, "deleted": True}, out)
    else:
        out.write(f"deleted {args.tag}\n")
    return 0


def cmd_reservations_create(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    expiry = args.expires if args.expires is not None else _rfc3339(datetime.now(UTC) + args.expires_in)
    body: dict[str, Any] = {"idTag": args.id_tag, "expiryDate": expiry}
    if args.connector is not None:
        body["connectorId"] = args.connector
    if args.evse is not None:
        body["evseId"] = args.evse
    if args.parent_id_tag is not None:
        body["parentIdTag"] = args.parent_id_tag
    query = _wait_query(api, args)
    answer = api.request("POST", f"/chargers/{segment(args.charger)}/reservations", body, query)
    _show(args, answer, out, _print_reservation_call)
    return _call_exit(answer.get("call") or {})


def cmd_reservations_list(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    path = f"/chargers/{segment(args.charger)}/reservations"
    answer = api.request("GET", path, query={"status": args.status})
    if args.json:
        output.as_json(answer, out)
    else:
        output.table(RESERVATION_COLUMNS, (_reservation_row(r) for r in answer.get("reservations", [])), out)
    return 0


def cmd_reservations_show(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    answer = api.request("GET", f"/reservations/{args.reservation_id}")
    _show(args, answer, out, _print_record)
    return 0


def cmd_reservations_cancel(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    query = _wait_query(api, args)
    answer = api.request("DELETE", f"/reservations/{args.reservation_id}", query=query)
    _show(args, answer, out, _print_reservation_call)
    return _call_exit(answer.get("call") or {})


def cmd_transactions_close(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {"reason": args.reason}
    if args.charger is not None:
        body["chargePointId"] = args.charger
    answer = api.request("POST", f"/transactions/{segment(args.transaction_id)}/close", body)
    _show(args, answer, out, _print_record)
    return 0


def cmd_transactions_list(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    query = {"chargePointId": args.charger, "status": args.status, "olderThan": args.older_than}
    answer = api.request("GET", "/transactions", query=query)
    if args.json:
        output.as_json(answer, out)
        return 0
    output.table(
        (
            "TRANSACTION",
            "CHARGER",
            "CONNECTOR",
            "ID TAG",
            "STATUS",
            "STARTED",
            "STOPPED",
            "LAST ACTIVITY",
            "START Wh",
            "STOP Wh",
            "ENERGY Wh",
        ),
        (
            [
                t.get("transactionId"),
                t.get("chargePointId"),
                _connector_label(t),
                t.get("idTag") or t.get("idToken"),
                t.get("status"),
                t.get("startTimestamp") or t.get("startedAt"),
                t.get("stopTimestamp") or t.get("stoppedAt"),
                t.get("lastActivityAt"),
                t.get("meterStart"),
                t.get("meterStop"),
                t.get("energyWh"),
            ]
            for t in answer.get("transactions", [])
        ),
        out,
    )
    return 0


def _limit(view: dict[str, Any]) -> str:
    if view.get("limitAmps") is not None:
        return f"{view['limitAmps']:g} A"
    if view.get("limitWatts") is not None:
        return f"{view['limitWatts']:g} W"
    return "-"


def _site_row(view: dict[str, Any]) -> list[Any]:
    chargers = view.get("chargers") or []
    return [
        view.get("siteId"),
        _limit(view),
        view.get("phases"),
        view.get("minAmps"),
        " ".join(chargers),
        view.get("updatedAt"),
    ]


def _print_site(view: dict[str, Any], out: TextIO) -> None:
    big = ("chargers", "activeTransactions")
    output.key_values(((k, v) for k, v in view.items() if k not in big), out)
    output.key_values([("chargers", " ".join(view.get("chargers") or []))], out)
    out.write("\nactive transactions:\n")
    unit = view.get("shareUnit", "")
    output.table(
        ("CHARGER", "TRANSACTION", "STARTED", f"SHARE {unit}", f"LIMIT {unit}", "PROFILE"),
        (
            [
                t.get("chargePointId"),
                t.get("transactionId"),
                t.get("startedAt"),
                t.get("share"),
                t.get("limit", "-"),
                t.get("profileStatus", "-") + (f" ({t['lastError']})" if t.get("lastError") else ""),
            ]
            for t in view.get("activeTransactions") or []
        ),
        out,
    )


def _positive_number(text: str) -> int | float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number above 0")
    return int(value) if value.is_integer() else value


def cmd_sites_put(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    body: dict[str, Any] = {"phases": args.phases, "minAmps": args.min_amps, "chargers": args.charger or []}
    if args.limit_amps is not None:
        body["limitAmps"] = args.limit_amps
    else:
        body["limitWatts"] = args.limit_watts
    answer = api.request("PUT", f"/sites/{segment(args.site)}", body)
    _show(args, answer, out, _print_site)
    return 0


def cmd_sites_show(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    answer = api.request("GET", f"/sites/{segment(args.site)}")
    _show(args, answer, out, _print_site)
    return 0


def cmd_sites_list(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    answer = api.request("GET", "/sites")
    if args.json:
        output.as_json(answer, out)
    else:
        output.table(SITE_COLUMNS, (_site_row(v) for v in answer.get("sites", [])), out)
    return 0


def _scope(view: dict[str, Any]) -> Any:
    """``1`` (1.6 connector 1), ``evse 1`` (2.x EVSE 1)."""
    return view.get("connectorId") if "evseId" not in view else f"evse {view['evseId']}"


def _periods(schedule: Any) -> str:
    """``0s:16A 3600s:10A``: when each period starts and its limit."""
    if not isinstance(schedule, dict):
        return ""
    unit = schedule.get("chargingRateUnit", "")
    return " ".join(
        f"{p.get('startPeriod')}s:{p.get('limit'):g}{unit}"
        for p in schedule.get("chargingSchedulePeriod") or []
        if isinstance(p, dict) and isinstance(p.get("limit"), (int, float))
    )


def _profile_row(view: dict[str, Any]) -> list[Any]:
    schedules = (view.get("chargingProfile") or {}).get("chargingSchedule")
    # 1.6: one chargingSchedule object; 2.x: a list of them (1 to 3)
    limits = " | ".join(_periods(s) for s in (schedules if isinstance(schedules, list) else [schedules]))
    return [
        _scope(view),
        view.get("chargingProfileId"),
        view.get("chargingProfilePurpose"),
        view.get("stackLevel"),
        view.get("chargingProfileKind"),
        view.get("transactionId"),
        view.get("source"),
        limits,
        view.get("installedAt") or view.get("reportedAt"),
    ]


def _schedule_row(view: dict[str, Any]) -> list[Any]:
    request, response = view.get("request") or {}, view.get("response") or {}
    # 1.6: {connectorId, scheduleStart, chargingSchedule}; 2.x: {schedule: {evseId, scheduleStart, ...}}
    schedule = response.get("schedule") or response.get("chargingSchedule") or {}
    start = response.get("scheduleStart") or schedule.get("scheduleStart")
    return [
        _scope(request),
        start,
        schedule.get("duration"),
        schedule.get("chargingRateUnit"),
        _periods(schedule),
        view.get("receivedAt"),
    ]


def cmd_profiles(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    """The charging profiles the CSMS believes the charger has, then its composite schedules."""
    answer = api.request("GET", f"/chargers/{segment(args.charger)}/charging-profiles")
    if args.json:
        output.as_json(answer, out)
        return 0
    output.table(PROFILE_COLUMNS, (_profile_row(p) for p in answer.get("profiles", [])), out)
    out.write("\ncomposite schedules:\n")
    output.table(SCHEDULE_COLUMNS, (_schedule_row(s) for s in answer.get("compositeSchedules", [])), out)
    return 0


CERTIFICATE_COLUMNS = ("SERIAL", "CHARGER", "STATUS", "INSTALLED", "NOT AFTER", "TYPE")


def _certificate_row(c: dict[str, Any]) -> list[Any]:
    return [
        c.get("serial"),
        c.get("chargePointId"),
        c.get("status"),
        c.get("installStatus", "-"),
        c.get("notAfter"),
        c.get("certificateType", "-"),
    ]


def _print_certificates(answer: dict[str, Any], args: argparse.Namespace, out: TextIO) -> int:
    if args.json:
        output.as_json(answer, out)
    else:
        output.table(CERTIFICATE_COLUMNS, (_certificate_row(c) for c in answer.get("certificates", [])), out)
    return 0


def cmd_certificates_list(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    """What the CA issued to the charger, newest first."""
    return _print_certificates(api.request("GET", f"/chargers/{segment(args.charger)}/certificates"), args, out)


def cmd_certificates_expiring(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    answer = api.request("GET", "/certificates", query={"expiringWithinDays": str(args.days)})
    return _print_certificates(answer, args, out)


def cmd_certificates_revoke(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    body = {"reason": args.reason} if args.reason else {}
    answer = api.request("POST", f"/chargers/{segment(args.charger)}/certificates/{segment(args.serial)}/revoke", body)
    _show(args, answer, out, _print_record)
    return 0


def cmd_ca(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    """The CA certificate, PEM (to give chargers, or a TLS client, to trust)."""
    answer = api.request("GET", "/ca")
    if args.json:
        output.as_json(answer, out)
    else:
        out.write(str(answer.get("certificate", "")))
    return 0


# --- the parser ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--api-url",
        default=argparse.SUPPRESS,
        help=f"operator API base URL (default: ${API_URL_ENV} or {DEFAULT_API_URL})",
    )
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="print the API's JSON answer")
    common.add_argument(
        "--region", default=argparse.SUPPRESS, help="AWS region for SigV4 (default: from the URL or AWS_REGION)"
    )
    common.add_argument(
        "--auth",
        choices=("auto", "sigv4", "none"),
        default=argparse.SUPPRESS,
        help="sign requests with SigV4: auto (https URLs not on this machine), sigv4 or none",
    )
    common.add_argument("--timeout", type=float, default=argparse.SUPPRESS, help="HTTP timeout in seconds (default 30)")

    parser = argparse.ArgumentParser(
        prog="python -m csms_cli", description="Operate the OCPP CSMS through its operator API.", parents=[common]
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    chargers = commands.add_parser("chargers", help="the charger registry", parents=[common])
    charger_cmds = chargers.add_subparsers(dest="sub", metavar="SUBCOMMAND", required=True)
    p = charger_cmds.add_parser(
        "list", help="all chargers with protocol, presence and connector status", parents=[common]
    )
    p.add_argument("--limit", type=_positive, help="only the first N chargers, in id order")
    p.set_defaults(run=cmd_chargers_list)
    p = charger_cmds.add_parser("show", help="one charger, with its configuration / variables", parents=[common])
    p.add_argument("charger")
    p.set_defaults(run=cmd_chargers_show)
    p = charger_cmds.add_parser("register", help="register or update a charger", parents=[common])
    p.add_argument("charger")
    secret = p.add_mutually_exclusive_group()
    secret.add_argument("--password", help="HTTP Basic auth password (stored hashed)")
    secret.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.add_argument("--status", choices=("Accepted", "Pending", "Rejected"), help="registration status")
    p.add_argument("--description")
    p.set_defaults(run=cmd_chargers_register)

    p = commands.add_parser("call", help="send a CSMS-initiated OCPP call to a charger", parents=[common])
    p.add_argument("charger")
    p.add_argument("action", help="OCPP action, e.g. Reset, GetConfiguration, RequestStartTransaction")
    p.add_argument("payload", nargs="?", default="{}", help="JSON payload, or @file.json (default {})")
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="wait up to SECONDS for the answer")
    p.set_defaults(run=cmd_call)

    p = commands.add_parser(
        "call-status", help="the state of a call: pending, accepted, error or timeout", parents=[common]
    )
    p.add_argument("charger")
    p.add_argument("unique_id", metavar="uniqueId")
    p.set_defaults(run=cmd_call_status)

    tags = commands.add_parser("id-tags", help="the authorization list", parents=[common])
    tag_cmds = tags.add_subparsers(dest="sub", metavar="SUBCOMMAND", required=True)
    p = tag_cmds.add_parser("put", help="create or replace an id tag", parents=[common])
    p.add_argument("tag")
    p.add_argument("--status", default="Accepted", help="authorization status (default Accepted)")
    p.add_argument("--expiry", help="expiry date-time, RFC 3339 (e.g. 2030-12-31T23:59:59Z)")
    p.add_argument("--parent", help="parent id tag (group)")
    p.set_defaults(run=cmd_id_tags_put)
    p = tag_cmds.add_parser("show", help="one id tag", parents=[common])
    p.add_argument("tag")
    p.set_defaults(run=cmd_id_tags_show)
    p = tag_cmds.add_parser("delete", help="remove an id tag (it becomes unknown: Invalid)", parents=[common])
    p.add_argument("tag")
    p.set_defaults(run=cmd_id_tags_delete)

    calls = commands.add_parser("calls", help="the calls sent to a charger", parents=[common])
    call_cmds = calls.add_subparsers(dest="sub", metavar="SUBCOMMAND", required=True)
    p = call_cmds.add_parser("list", help="one page of a charger's calls, newest first", parents=[common])
    p.add_argument("charger")
    p.add_argument("--limit", type=_positive, help="calls per page (the API takes 1 to 500, default 50)")
    p.add_argument("--after", metavar="UNIQUEID", help="the page after this call (the 'more:' cursor)")
    p.set_defaults(run=cmd_calls_list)

    reservations = commands.add_parser("reservations", help="reserve a connector (ReserveNow)", parents=[common])
    res_cmds = reservations.add_subparsers(dest="sub", metavar="SUBCOMMAND", required=True)
    p = res_cmds.add_parser("create", help="reserve a connector for an id tag: sends ReserveNow", parents=[common])
    p.add_argument("charger")
    p.add_argument("--id-tag", required=True, help="the id tag the reservation is for")
    expiry = p.add_mutually_exclusive_group(required=True)
    expiry.add_argument("--expires", metavar="RFC3339", help="expiry date-time, e.g. 2030-12-31T23:59:59Z")
    expiry.add_argument("--expires-in", type=_duration, metavar="DURATION", help="expiry from now: 90s, 30m, 2h or 1d")
    p.add_argument(
        "--connector",
        type=_non_negative,
        metavar="N",
        help="connector id (1.6 only, required; 0 = the whole charger; 2.x: use --evse)",
    )
    p.add_argument("--evse", type=_non_negative, metavar="N", help="EVSE id (2.x only)")
    p.add_argument("--parent-id-tag", metavar="TAG", help="parent id tag (1.6) / group id token (2.x)")
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="wait up to SECONDS for the answer")
    p.set_defaults(run=cmd_reservations_create)
    p = res_cmds.add_parser("list", help="a charger's reservations, newest first", parents=[common])
    p.add_argument("charger")
    p.add_argument("--status", choices=RESERVATION_STATES)
    p.set_defaults(run=cmd_reservations_list)
    p = res_cmds.add_parser("show", help="one reservation", parents=[common])
    p.add_argument("reservation_id", metavar="reservationId", type=_non_negative)
    p.set_defaults(run=cmd_reservations_show)
    p = res_cmds.add_parser("cancel", help="cancel a reservation: sends CancelReservation", parents=[common])
    p.add_argument("reservation_id", metavar="reservationId", type=_non_negative)
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="wait up to SECONDS for the answer")
    p.set_defaults(run=cmd_reservations_cancel)

    txs = commands.add_parser("transactions", help="charging sessions", parents=[common])
    tx_cmds = txs.add_subparsers(dest="sub", metavar="SUBCOMMAND", required=True)
    p = tx_cmds.add_parser("list", help="transactions with meter readings and energy", parents=[common])
    p.add_argument("--charger", help="only this charger's transactions")
    p.add_argument("--status", choices=("Active", "Completed"))
    p.add_argument(
        "--older-than",
        metavar="WHEN",
        help="only transactions with no activity since WHEN: RFC 3339, or a duration ago (90s, 30m, 48h, 2d)",
    )
    p.set_defaults(run=cmd_transactions_list)
    p = tx_cmds.add_parser(
        "close", help="close a transaction the charger never ended (no OCPP message)", parents=[common]
    )
    p.add_argument("transaction_id", metavar="transactionId")
    p.add_argument("--reason", required=True, help="why it is closed (1 to 255 characters)")
    p.add_argument("--charger", help="the charger, when the id is used by more than one")
    p.set_defaults(run=cmd_transactions_close)

    sites = commands.add_parser("sites", help="sites for smart charging: a limit shared by chargers", parents=[common])
    site_cmds = sites.add_subparsers(dest="sub", metavar="SUBCOMMAND", required=True)
    p = site_cmds.add_parser("put", help="create or replace a site (the whole site each time)", parents=[common])
    p.add_argument("site")
    limit = p.add_mutually_exclusive_group(required=True)
    limit.add_argument("--limit-amps", type=_positive_number, metavar="N", help="site limit in amperes per phase")
    limit.add_argument("--limit-watts", type=_positive_number, metavar="N", help="site limit in watts")
    p.add_argument("--phases", type=int, choices=(1, 3), required=True, help="1 or 3")
    p.add_argument(
        "--min-amps", type=_positive_number, required=True, metavar="N", help="the least an EV charges at (else 0)"
    )
    p.add_argument(
        "--charger",
        action="append",
        metavar="CP",
        help="a charger of the site (repeat it; none: a site without chargers)",
    )
    p.set_defaults(run=cmd_sites_put)
    p = site_cmds.add_parser("show", help="one site, with the active transactions of its chargers", parents=[common])
    p.add_argument("site")
    p.set_defaults(run=cmd_sites_show)
    p = site_cmds.add_parser("list", help="all sites, in id order", parents=[common])
    p.set_defaults(run=cmd_sites_list)

    p = commands.add_parser(
        "profiles", help="the charging profiles the CSMS believes a charger has installed", parents=[common]
    )
    p.add_argument("charger")
    p.set_defaults(run=cmd_profiles)

    certs = commands.add_parser("certificates", help="charger certificates the CSMS CA issued", parents=[common])
    cert_cmds = certs.add_subparsers(dest="subcommand", required=True)
    p = cert_cmds.add_parser("list", help="a charger's certificates, newest first", parents=[common])
    p.add_argument("charger")
    p.set_defaults(run=cmd_certificates_list)
    p = cert_cmds.add_parser("expiring", help="valid certificates that end within --days", parents=[common])
    p.add_argument("--days", type=int, default=30, help="days ahead (default 30)")
    p.set_defaults(run=cmd_certificates_expiring)
    p = cert_cmds.add_parser("revoke", help="revoke one: the bridge refuses it from then on", parents=[common])
    p.add_argument("charger")
    p.add_argument("serial")
    p.add_argument("--reason", default=None, help="why (kept on the record)")
    p.set_defaults(run=cmd_certificates_revoke)
    p = commands.add_parser("ca", help="print the CSMS CA certificate (PEM)", parents=[common])
    p.set_defaults(run=cmd_ca)

    file_parser = commands.add_parser("files", help="files chargers uploaded (diagnostics, logs)", parents=[common])
    file_cmds = file_parser.add_subparsers(dest="sub", metavar="SUBCOMMAND", required=True)
    p = file_cmds.add_parser("list", help="a charger's received files, newest first", parents=[common])
    p.add_argument("charger")
    p.set_defaults(run=cmd_files_list)
    p = file_cmds.add_parser("download", help="fetch one received file", parents=[common])
    p.add_argument("charger")
    p.add_argument("file_id", metavar="fileId")
    p.add_argument("-o", "--output", metavar="PATH", help="where to write it (default: its name, here)")
    p.set_defaults(run=cmd_files_download)

    firmware = commands.add_parser("firmware", help="firmware images for UpdateFirmware", parents=[common])
    firmware_cmds = firmware.add_subparsers(dest="sub", metavar="SUBCOMMAND", required=True)
    p = firmware_cmds.add_parser("upload", help="store an image: prints its downloadUrl", parents=[common])
    p.add_argument("path")
    p.add_argument("--name", help="the file name to keep (default: the file's own)")
    p.set_defaults(run=cmd_firmware_upload)
    p = firmware_cmds.add_parser("list", help="the stored images, newest first", parents=[common])
    p.set_defaults(run=cmd_firmware_list)
    p = firmware_cmds.add_parser("show", help="one image, with a fresh downloadUrl", parents=[common])
    p.add_argument("firmware_id", metavar="firmwareId")
    p.set_defaults(run=cmd_firmware_show)
    return parser


def main(argv: list[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        api = ApiClient(
            getattr(args, "api_url", None) or os.environ.get(API_URL_ENV) or DEFAULT_API_URL,
            auth=getattr(args, "auth", "auto"),
            region=getattr(args, "region", None),
            timeout_s=getattr(args, "timeout", 30.0),
        )
        args.json = getattr(args, "json", False)
        return int(args.run(api, args, out))
    except CliError as error:
        err.write(f"error: {error.message}\n")
        return error.exit_code
    except KeyboardInterrupt:
        err.write("interrupted\n")
        return 130
    except BrokenPipeError:
        return 0
