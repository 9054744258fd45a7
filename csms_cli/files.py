"""``files`` and ``firmware``: what chargers uploaded (GetDiagnostics / GetLog sent without a
location) and the firmware images the CSMS hosts for UpdateFirmware (docs/operator_api.md)."""

from __future__ import annotations

import argparse
import os
from typing import Any, TextIO

from . import output
from .client import ApiClient, CliError, download, segment

FILE_COLUMNS = ("FILE ID", "NAME", "SIZE", "KIND", "STATUS", "RECEIVED")
FIRMWARE_COLUMNS = ("FIRMWARE ID", "NAME", "SIZE", "SHA-256", "CREATED")


def cmd_files_list(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    """The files a charger uploaded (GetDiagnostics / GetLog sent without a location), newest first."""
    answer = api.request("GET", f"/chargers/{segment(args.charger)}/files")
    if args.json:
        output.as_json(answer, out)
    else:
        rows = (
            [f.get("fileId"), f.get("name"), f.get("size"), f.get("kind"), f.get("status"), f.get("receivedAt")]
            for f in answer.get("files", [])
        )
        output.table(FILE_COLUMNS, rows, out)
    return 0


def cmd_files_download(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    """Fetch one received file to ``-o`` (default: its name, in the current directory)."""
    view = api.request("GET", f"/chargers/{segment(args.charger)}/files/{segment(args.file_id)}")
    url = view.get("downloadUrl")
    if not isinstance(url, str):
        raise CliError("the API gives no download URL for this file (file hosting is not configured)")
    name = str(view.get("name") or args.file_id)
    target = args.output or os.path.basename(name) or args.file_id
    partial = f"{target}.part"
    try:
        with open(partial, "wb") as destination:
            size = download(url, destination, api.timeout_s)
        os.replace(partial, target)
    except OSError as error:
        raise CliError(f"cannot write {target}: {error.strerror or error}", exit_code=2) from None
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
    out.write(f"{target}  {size} bytes\n")
    return 0


def _firmware_view(view: dict[str, Any], out: TextIO) -> None:
    output.key_values(view.items(), out)


def cmd_firmware_upload(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    """Store a firmware image; prints its downloadUrl, the location to give UpdateFirmware."""
    try:
        with open(args.path, "rb") as source:
            data = source.read()
    except OSError as error:
        raise CliError(f"cannot read {args.path}: {error.strerror or error}", exit_code=2) from None
    name = args.name or os.path.basename(args.path)
    answer = api.request("POST", "/firmware", query={"name": name}, raw=data)
    output.show(args, answer, out, _firmware_view)
    return 0


def cmd_firmware_list(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    answer = api.request("GET", "/firmware")
    if args.json:
        output.as_json(answer, out)
    else:
        rows = (
            [f.get("firmwareId"), f.get("name"), f.get("size"), f.get("sha256"), f.get("createdAt")]
            for f in answer.get("firmware", [])
        )
        output.table(FIRMWARE_COLUMNS, rows, out)
    return 0


def cmd_firmware_show(api: ApiClient, args: argparse.Namespace, out: TextIO) -> int:
    output.show(args, api.request("GET", f"/firmware/{segment(args.firmware_id)}"), out, _firmware_view)
    return 0
