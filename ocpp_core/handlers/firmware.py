"""Firmware management and log / diagnostics upload status (1.6 Firmware Management and
Security extension; 2.0.1 / 2.1 blocks L and N01): kept, and the status set on the charger.

Upload notifications also move the status of the upload request they are about
(``ocpp_core.files.record_upload_status``: by ``requestId``, or the latest 1.6 diagnostics request).
"""

from __future__ import annotations

from typing import Any

from ..context import CallContext
from ..extensions import Handler
from ..files import record_upload_status
from .common import recorder, routes


def upload_status(kind: str, charger_field: str) -> Handler:
    """Like :func:`recorder` with ``charger_field``, and the matching upload request's status."""
    record = recorder(kind, charger_field=charger_field)

    def handle(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
        answer = record(ctx, payload)
        record_upload_status(ctx, kind, payload)
        return answer

    handle.__name__ = handle.__qualname__ = f"record_{kind}"
    return handle


ROUTES = routes(
    every={
        "FirmwareStatusNotification": recorder("FirmwareStatusNotification", charger_field="firmwareStatus"),
        "LogStatusNotification": upload_status("LogStatusNotification", "logStatus"),
    },
    v16={
        "DiagnosticsStatusNotification": upload_status("DiagnosticsStatusNotification", "diagnosticsStatus"),
        "SignedFirmwareStatusNotification": recorder(
            "SignedFirmwareStatusNotification", charger_field="firmwareStatus"
        ),
    },
    v2={"PublishFirmwareStatusNotification": recorder("PublishFirmwareStatusNotification")},
)
