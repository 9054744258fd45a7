"""Powertools logger and EMF metrics, shared by the handlers (namespace ``OCPP/CSMS``)."""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics

SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME", "ocpp-csms")
NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "OCPP/CSMS")

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
