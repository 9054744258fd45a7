"""Diagnostics and monitoring (2.0.1 / 2.1 block N, 2.1 periodic event streams), display messages
(block O) and customer information: kept as reported (reservations: ``reservations.py``)."""

from __future__ import annotations

from .common import recorder, routes

ROUTES = routes(
    v2={
        "NotifyEvent": recorder("NotifyEvent"),
        "NotifyMonitoringReport": recorder("NotifyMonitoringReport"),
        "NotifyCustomerInformation": recorder("NotifyCustomerInformation"),
        "NotifyDisplayMessages": recorder("NotifyDisplayMessages"),
    },
    v21={
        "OpenPeriodicEventStream": recorder("OpenPeriodicEventStream", {"status": "Accepted"}),
        "ClosePeriodicEventStream": recorder("ClosePeriodicEventStream"),
        "NotifyPeriodicEventStream": recorder("NotifyPeriodicEventStream"),  # SEND: the answer is not sent
    },
)
