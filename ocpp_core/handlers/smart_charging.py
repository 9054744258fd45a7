"""Smart charging (2.0.1 / 2.1 block K) and 2.1 DER control: limits, needs and reported profiles, kept."""

from __future__ import annotations

from typing import Any

from ..context import CallContext
from ..smart_charging.profiles import report_charging_profiles
from .common import recorder, routes

_record_report = recorder("ReportChargingProfiles")


def handle_report_charging_profiles(ctx: CallContext, payload: dict[str, Any]) -> dict[str, Any]:
    """2.x K09: the report is kept as an event, and each profile in it as installed (idempotent)."""
    answer = _record_report(ctx, payload)
    report_charging_profiles(ctx, payload)
    return answer


ROUTES = routes(
    v2={
        "ClearedChargingLimit": recorder("ClearedChargingLimit"),
        "NotifyChargingLimit": recorder("NotifyChargingLimit"),
        # No smart-charging engine computes schedules here, so the needs are kept, no profile promised.
        "NotifyEVChargingNeeds": recorder("NotifyEVChargingNeeds", {"status": "Rejected"}),
        "NotifyEVChargingSchedule": recorder("NotifyEVChargingSchedule", {"status": "Accepted"}),
        "ReportChargingProfiles": handle_report_charging_profiles,
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
