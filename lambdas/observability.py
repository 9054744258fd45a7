"""Powertools logger and EMF metrics, shared by the handlers (namespace ``OCPP/CSMS``).

Every metric carries the dimensions ``service`` (the function) and ``Stage`` (``OCPP_STAGE``):
two stages in one account share the namespace, so without ``Stage`` the dashboard and alarms of
one would count the other's invocations (DESIGN §8).
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

from .settings import DEFAULT_STAGE
from .settings import STAGE as STAGE_ENV

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ocpp-csms")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "OCPP/CSMS")
STAGE = os.environ.get(STAGE_ENV, "").strip() or DEFAULT_STAGE
#: the dimension name infra/monitoring.py searches and alarms on
STAGE_DIMENSION = "Stage"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
# Default dimensions outlive each flush (log_metrics clears the metrics, not these).
metrics.set_default_dimensions(**{STAGE_DIMENSION: STAGE})
