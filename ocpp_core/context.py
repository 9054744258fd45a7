"""What a handler gets besides the payload."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import ProcessorConfig
from .ports import CertificateSigner, IdSource, Record, StateStore
from .timefmt import format_ms
from .versions import OcppVersion

if TYPE_CHECKING:
    from .extensions import Handler


@dataclass(slots=True)
class CallContext:
    charge_point_id: str
    version: OcppVersion
    unique_id: str
    action: str
    connection_id: str
    received_at_ms: int
    now_ms: int
    store: StateStore
    ids: IdSource
    config: ProcessorConfig
    #: names this frame: connection, unique id and bytes (``keys.message_digest``); records the
    #: frame creates are keyed by it, so a redelivery rewrites them instead of adding more
    frame_digest: str = ""
    #: the charger record as the pipeline's ``touch_charger`` returned it (None: not registered)
    charger: Record | None = None
    #: the built-in handler, for an extension that wants to fall back to it
    builtin: Handler | None = None
    #: facts a handler wants reported in the outcome (logged, available to hooks)
    notes: dict[str, Any] = field(default_factory=dict)
    #: chargers whose outbox has new calls (DESIGN §10): drained once this frame's reply is out
    drain: set[str] = field(default_factory=set)
    #: the chargers' certificate authority (None: SignCertificate is Rejected)
    ca: CertificateSigner | None = None

    @property
    def received_iso(self) -> str:
        """The time the bridge received the frame: ``currentTime`` in replies, so that every
        delivery of one frame gets the same reply, byte for byte."""
        return format_ms(self.received_at_ms)

    @property
    def order_key(self) -> str:
        """This frame's place among the charger's frames: receive time, then digest. Distinct frames
        never tie (even within one millisecond); the same frame delivered again ties, and loses."""
        return f"{self.received_at_ms:015d}#{self.frame_digest}"

    @property
    def now_iso(self) -> str:
        return format_ms(self.now_ms)

    def default(self, payload: Any) -> dict[str, Any]:
        """Run the built-in handler (from an extension that replaced it)."""
        if self.builtin is None:
            from .errors import NotImplementedAction

            raise NotImplementedAction(f"No built-in handler for {self.action}")
        return self.builtin(self, payload)

    def event_expiry_s(self) -> int | None:
        ttl = self.config.event_ttl_s
        return None if ttl is None else self.now_ms // 1000 + ttl
