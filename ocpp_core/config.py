"""Processor settings: a frozen value, built once at the edge (``lambdas.settings``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class UnknownChargerPolicy(enum.StrEnum):
    """What a BootNotification from a charger that is not in the registry gets."""

    ACCEPT = "accept"  # local mode default: register it on the fly
    PENDING = "pending"  # let it in, but keep it waiting for an operator
    REJECT = "reject"  # AWS default


@dataclass(frozen=True, slots=True)
class ProcessorConfig:
    heartbeat_interval_s: int = 300
    #: ``interval`` in a Pending or Rejected BootNotification response: when to retry.
    boot_retry_interval_s: int = 60
    unknown_chargers: UnknownChargerPolicy = UnknownChargerPolicy.REJECT
    #: How long a processed message is remembered for idempotency.
    idempotency_ttl_s: int = 24 * 3600
    #: How long a claimed message stays "in progress" without being completed: a redelivery within
    #: it is not answered twice; after it (the first attempt died, e.g. a Lambda timeout) the
    #: message is processed again instead of being ignored until ``idempotency_ttl_s`` runs out.
    #: Keep it above the processor Lambda's timeout (infra/processing.py: 15 s).
    claim_lease_s: int = 60
    #: How long event records (reports, security events, firmware status...) are kept; None = forever.
    event_ttl_s: int | None = 90 * 24 * 3600
    #: DataTransfer vendor ids the CSMS accepts: recorded and answered Accepted (an extension's
    #: handler or after-hook acts on them); the other vendors get UnknownVendorId.
    data_transfer_vendors: frozenset[str] = field(default_factory=frozenset)
