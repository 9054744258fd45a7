"""Firmware management and log / diagnostics upload status (1.6 Firmware Management and
Security extension; 2.0.1 / 2.1 blocks L and N01): kept, and the status set on the charger."""

from __future__ import annotations

from .common import recorder, routes

ROUTES = routes(
    every={
        "FirmwareStatusNotification": recorder("FirmwareStatusNotification", charger_field="firmwareStatus"),
        "LogStatusNotification": recorder("LogStatusNotification", charger_field="logStatus"),
    },
    v16={
        "DiagnosticsStatusNotification": recorder("DiagnosticsStatusNotification", charger_field="diagnosticsStatus"),
        "SignedFirmwareStatusNotification": recorder(
            "SignedFirmwareStatusNotification", charger_field="firmwareStatus"
        ),
    },
    v2={"PublishFirmwareStatusNotification": recorder("PublishFirmwareStatusNotification")},
)
