"""ocpp_core: the stateless, single-message OCPP-J processor (OCPP 1.6, 2.0.1, 2.1).

Pure: no boto3, no asyncio, no environment variables, no clock or random ids of its own.
``process(envelope, store=..., clock=..., ids=...)`` handles one inbound envelope and returns
an :class:`Outcome` with the reply frame (or none) and what was decided.
"""

from .config import ProcessorConfig, UnknownChargerPolicy
from .context import CallContext
from .errors import OcppError
from .extensions import Extensions
from .memory_store import InMemoryStore
from .ports import Clock, IdSource, StateStore
from .processor import Outcome, OutcomeKind, process
from .versions import OcppVersion

__all__ = [
    "CallContext",
    "Clock",
    "Extensions",
    "IdSource",
    "InMemoryStore",
    "OcppError",
    "OcppVersion",
    "Outcome",
    "OutcomeKind",
    "ProcessorConfig",
    "StateStore",
    "UnknownChargerPolicy",
    "process",
]
