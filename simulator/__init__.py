"""An OCPP charging station simulator (OCPP 1.6, 2.0.1 and 2.1 over WebSocket).

* :class:`Station`: one station, as a library (``async with Station("CP1", "2.0.1") as st``).
* :func:`run_scenario`: one full charging session; :func:`run_load`: many stations.
* ``python -m simulator scenario|load``: the command line (:mod:`simulator.cli`).
"""

from .errors import (
    CallErrorReceived,
    CallTimeout,
    CertificateFailed,
    ConnectFailed,
    ConnectionLost,
    HandshakeRejected,
    InvalidRequest,
    InvalidResponse,
    NotConnected,
    ScenarioFailed,
    SimulatorError,
    SubprotocolRefused,
)
from .load import LoadConfig, LoadSummary, run_load
from .scenario import ScenarioOptions, run_scenario
from .station import DEFAULT_URL, Connector, Station, Transaction, parse_version

__all__ = [
    "DEFAULT_URL",
    "CallErrorReceived",
    "CallTimeout",
    "CertificateFailed",
    "ConnectFailed",
    "ConnectionLost",
    "Connector",
    "HandshakeRejected",
    "InvalidRequest",
    "InvalidResponse",
    "LoadConfig",
    "LoadSummary",
    "NotConnected",
    "ScenarioFailed",
    "ScenarioOptions",
    "SimulatorError",
    "Station",
    "SubprotocolRefused",
    "Transaction",
    "parse_version",
    "run_load",
    "run_scenario",
]
