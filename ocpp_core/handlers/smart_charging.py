"""Smart charging (2.0.1 / 2.1 block K) and 2.1 DER control: limits and needs, kept."""

from __future__ import annotations

from .common import recorder, routes

ROUTES = routes(
    v2={
        "ClearedChargingLimit": recorder("ClearedChargingLimit"),
        "NotifyChargingLimit": recorder("NotifyChargingLimit"),
        # No smart-charging engine computes schedules here, so the needs are kept, no profile promised.
        "NotifyEVChargingNeeds": recorder("NotifyEVChargingNeeds", {"status": "Rejected"}),
        "NotifyEVChargingSchedule": recorder("NotifyEVChargingSchedule", {"status": "Accepted"}),
        "ReportChargingProfiles": recorder("ReportChargingProfiles"),
    },
    v21={
        "NotifyEVChargingNeeds": recorder("NotifyEVChargingNeeds", {"status": "NoChargingProfile"}),
        "NotifyPriorityCharging": recorder("NotifyPriorityCharging"),
        # No dynamic schedule is kept here (K28): nothing newer to hand out.
        "PullDynamicScheduleUpdate": recorder("PullDynamicScheduleUpdate", {"status": "Rejected"}),
        "NotifyDERAlarm": recorder("NotifyDERAlarm"),
        "NotifyDERStartStop": recorder("NotifyDERStartStop"),
        "ReportDERControl": recorder("ReportDERControl"),
    },
)
