"""DataTransfer (1.6 Core; 2.0.1 / 2.1 block P) and 2.1 payments (block I: settlement, VAT)."""

from __future__ import annotations

from typing import Any

from ..context import CallContext
from .common import record_event, recorder, routes


def data_transfer(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """Recorded; Accepted for a vendor in ``config.data_transfer_vendors`` (an extension's hook or
    handler, ``@extensions.on("DataTransfer")``, acts on it), else UnknownVendorId."""
    record_event(ctx, "DataTransfer", payload)
    accepted = payload["vendorId"] in ctx.config.data_transfer_vendors
    return {"status": "Accepted" if accepted else "UnknownVendorId"}


def vat_number_validation(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    record_event(ctx, "VatNumberValidation", payload)
    # No VAT registry is wired in: refuse rather than vouch for a number we cannot check.
    response: dict[str, Any] = {"vatNumber": payload["vatNumber"], "status": "Rejected"}
    if "evseId" in payload:
        response["evseId"] = payload["evseId"]
    return response


ROUTES = routes(
    every={"DataTransfer": data_transfer},
    v21={
        "VatNumberValidation": vat_number_validation,
        "NotifySettlement": recorder("NotifySettlement"),
        "BatterySwap": recorder("BatterySwap"),
    },
)
