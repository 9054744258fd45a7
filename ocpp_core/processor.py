"""The entry point: one inbound envelope in, the reply frame (or none) and the decision out.

``process`` never raises. Pipeline for a CALL (OCPP-J request from the charger):

1. parse the frame (``framing``): unreadable id -> dropped; otherwise errors are CALLERRORs
2. action known for the version and sent in the right direction, payload valid (schemas)
3. ``touch_charger``: one conditional write that moves ``lastSeen`` forward and returns the record
4. the handler (a user's extension first, else the built-in one)
5. the response validated against the response schema: a reply that would not validate is
   our bug and becomes an InternalError rather than an invalid frame

Built-in handlers are idempotent by construction (``ocpp_core.ports``: ordered conditional writes,
records keyed by the frame's digest), so a redelivered frame runs again and changes nothing, and
its reply is the same (replies depend on the frame and the state only: ``currentTime`` is the
bridge's receive time). They need no idempotency record: a Heartbeat is one write in all.

An extension's handler or ``after`` hook is not known to be idempotent, so a frame that reaches one
is claimed first (``MSG#<frame digest>``, a short lease, completed with the reply): a redelivery
gets the stored reply and the hooks run once.

CALLRESULT / CALLERROR frames complete the CSMS call they answer (``calls``).
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import calls, schemas
from .config import ProcessorConfig
from .context import CallContext
from .errors import (
    InternalError,
    NotImplementedAction,
    NotSupportedAction,
    OcppError,
    SecurityError,
)
from .extensions import NO_EXTENSIONS, Extensions, Handler, Hook
from .framing import (
    Call,
    CallError,
    CallResult,
    FrameError,
    MessageType,
    Send,
    parse_frame,
    serialize_error,
    serialize_result,
)
from .handlers import builtin_handler
from .ids import is_valid_charge_point_id
from .keys import message_digest
from .ports import CertificateSigner, Clock, IdSource, MessageStatus, StateStore
from .schemas import SchemaKind
from .versions import CHARGER_INITIATED, CSMS_INITIATED, SEND_ACTIONS, OcppVersion

logger = logging.getLogger(__name__)


class OutcomeKind(enum.StrEnum):
    """What the processor decided (wire-independent strings, used in logs and metrics)."""

    REPLIED = "replied"  # CALL answered with a CALLRESULT
    CALL_ERROR = "call_error"  # CALL answered with a CALLERROR
    DUPLICATE = "duplicate"  # redelivered CALL: the stored reply again
    IN_PROGRESS = "in_progress"  # redelivered while the first delivery is still being handled
    SEND = "send"  # 2.1 SEND processed (never answered)
    RESULT = "result"  # answer to a CSMS call, matched
    RESULT_UNMATCHED = "result_unmatched"  # answer to no call we know (logged, ignored)
    DROPPED = "dropped"  # unreadable frame or envelope: logged, nothing sent


@dataclass(slots=True)
class Outcome:
    kind: OutcomeKind
    reply: str | None = None
    charge_point_id: str | None = None
    unique_id: str | None = None
    action: str | None = None
    error_code: str | None = None
    detail: str | None = None
    #: chargers whose outbox has calls to send once the reply is out (DESIGN §10)
    drain: frozenset[str] = frozenset()
    _hooks: list[Callable[[], None]] = field(default_factory=list, repr=False)
    _hook_names: list[str] = field(default_factory=list, repr=False)

    def run_after_hooks(self) -> list[tuple[str, BaseException]]:
        """Run the ``after`` hooks (call once the reply is out). Returns the failures, logged."""
        failures: list[tuple[str, BaseException]] = []
        for name, run in zip(self._hook_names, self._hooks, strict=True):
            try:
                run()
            except Exception as exc:  # a hook must never break the pipeline
                logger.exception(
                    "after hook %s failed for %s %s (charger %s)",
                    name,
                    self.action,
                    self.unique_id,
                    self.charge_point_id,
                )
                failures.append((name, exc))
        self._hooks.clear()
        self._hook_names.clear()
        return failures


def _envelope_fields(envelope: Any) -> tuple[str, OcppVersion, str, str, int | None] | str:
    """(charge point id, version, frame, connection id, receivedAt) or a reason to drop."""
    if not isinstance(envelope, Mapping):
        return "envelope is not an object"
    cp = envelope.get("chargePointId")
    if not isinstance(cp, str) or not is_valid_charge_point_id(cp):
        return "envelope has no valid chargePointId"
    topic_cp = envelope.get("topicChargePointId")
    if topic_cp is not None and topic_cp != cp:
        # The topic is what the IoT policy vouches for; a body claiming another id is spoofed.
        return f"chargePointId {cp!r} does not match the topic's {topic_cp!r}"
    version = OcppVersion.parse(envelope.get("protocol"))
    if version is None:
        return f"unsupported protocol {envelope.get('protocol')!r}"
    frame = envelope.get("frame")
    if not isinstance(frame, str):
        return "envelope has no frame text"
    connection_id = envelope.get("connectionId")
    received_at = envelope.get("receivedAt")
    if isinstance(received_at, bool) or not isinstance(received_at, int):
        received_at = None
    return cp, version, frame, connection_id if isinstance(connection_id, str) else "", received_at


def process(
    envelope: Mapping[str, Any],
    *,
    store: StateStore,
    clock: Clock,
    ids: IdSource,
    config: ProcessorConfig | None = None,
    extensions: Extensions = NO_EXTENSIONS,
    ca: CertificateSigner | None = None,
) -> Outcome:
    """Handle one inbound envelope (DESIGN §2). Never raises."""
    try:
        return _process(envelope, store, clock, ids, config or ProcessorConfig(), extensions, ca)
    except Exception:  # last line of defence: the contract is that nothing raises
        logger.exception("processor failed on an envelope")
        return Outcome(OutcomeKind.DROPPED, detail="internal failure before a reply could be built")


def _process(
    envelope: Mapping[str, Any],
    store: StateStore,
    clock: Clock,
    ids: IdSource,
    config: ProcessorConfig,
    extensions: Extensions,
    ca: CertificateSigner | None = None,
) -> Outcome:
    fields = _envelope_fields(envelope)
    if isinstance(fields, str):
        logger.warning("dropped envelope: %s", fields)
        return Outcome(OutcomeKind.DROPPED, detail=fields)
    cp, version, text, connection_id, received_at = fields
    now = clock.now_ms()
    try:
        frame = parse_frame(text, version)
    except FrameError as err:
        if not err.answerable or err.unique_id is None:
            logger.warning("dropped frame from %s: %s", cp, err.error.description)
            return Outcome(
                OutcomeKind.DROPPED, charge_point_id=cp, unique_id=err.unique_id, detail=err.error.description
            )
        logger.info("CALLERROR to %s %s: %s", cp, err.unique_id, err.error.description)
        return Outcome(
            OutcomeKind.CALL_ERROR,
            reply=serialize_error(err.unique_id, err.error, version),
            charge_point_id=cp,
            unique_id=err.unique_id,
            error_code=err.error.code(version),
            detail=err.error.description,
        )

    if isinstance(frame, (CallResult, CallError)):
        result = calls.complete_from_charger(store, now, cp, version, frame)
        kind = OutcomeKind.RESULT if result.matched else OutcomeKind.RESULT_UNMATCHED
        return Outcome(
            kind,
            reply=result.reply,
            charge_point_id=cp,
            unique_id=frame.unique_id,
            action=result.action,
            detail=result.detail,
            drain=result.drain,
        )

    ctx = CallContext(
        charge_point_id=cp,
        version=version,
        unique_id=frame.unique_id,
        action=frame.action,
        connection_id=connection_id,
        received_at_ms=received_at if received_at is not None else now,
        now_ms=now,
        store=store,
        ids=ids,
        config=config,
        frame_digest=message_digest(connection_id, frame.unique_id, text),
        ca=ca,
    )
    if isinstance(frame, Send):
        return _process_send(ctx, frame, extensions)
    return _process_call(ctx, frame, extensions)


def _error_outcome(ctx: CallContext, error: OcppError) -> Outcome:
    return Outcome(
        OutcomeKind.CALL_ERROR,
        reply=serialize_error(ctx.unique_id, error, ctx.version),
        charge_point_id=ctx.charge_point_id,
        unique_id=ctx.unique_id,
        action=ctx.action,
        error_code=error.code(ctx.version),
        detail=error.description,
    )


def _check_action(version: OcppVersion, action: str) -> None:
    if action in CHARGER_INITIATED[version] and action not in SEND_ACTIONS[version]:
        return
    if action in CSMS_INITIATED[version] or action in SEND_ACTIONS[version]:
        raise NotSupportedAction(f"{action} is not sent by a charging station as a CALL in {version.value}")
    raise NotImplementedAction(f"Unknown action {action!r} for {version.value}")


def _select_handler(ctx: CallContext, extensions: Extensions) -> Handler | None:
    builtin = builtin_handler(ctx.version, ctx.action)
    ctx.builtin = builtin
    return extensions.handler_for(ctx.version, ctx.action) or builtin


def _process_call(ctx: CallContext, frame: Call, extensions: Extensions) -> Outcome:
    cp, uid, version = ctx.charge_point_id, ctx.unique_id, ctx.version
    try:
        _check_action(version, frame.action)
        schemas.validate_request(version, frame.action, frame.payload)
    except OcppError as error:
        # Deterministic answers that change nothing: no idempotency record needed.
        logger.info("CALLERROR to %s %s %s: %s", cp, uid, frame.action, error.description)
        return _error_outcome(ctx, error)

    hooks = extensions.hooks_for(version, frame.action)
    claimed = extensions.handler_for(version, frame.action) is not None or bool(hooks)
    if claimed:
        previous = _claim(ctx, ctx.frame_digest)
        if isinstance(previous, Outcome):
            return previous
    outcome, response, failed = _run_handler(ctx, frame, extensions)
    if failed:
        # Nothing is remembered for a failure we may recover from: the retry runs again.
        if claimed:
            _release(ctx.store, cp, ctx.frame_digest)
        return outcome
    if claimed:
        _complete(ctx, ctx.frame_digest, outcome.reply)
    if response is not None:
        _attach_hooks(outcome, ctx, hooks, frame.payload, response)
    return outcome


def _claim(ctx: CallContext, key: str) -> Outcome | None:
    """Claim the frame for a non-idempotent extension. An Outcome if it is already handled."""
    cp, uid = ctx.charge_point_id, ctx.unique_id
    try:
        previous = ctx.store.claim_message(cp, key, ctx.now_ms, _lease_end(ctx))
    except Exception:
        logger.exception("idempotency claim failed for %s %s", cp, uid)
        return _error_outcome(ctx, InternalError("State store unavailable, retry later"))
    if previous is None:
        return None
    if previous.status == MessageStatus.COMPLETED:
        logger.info("duplicate %s %s from %s: stored reply sent again", ctx.action, uid, cp)
        return Outcome(
            OutcomeKind.DUPLICATE, reply=previous.reply, charge_point_id=cp, unique_id=uid, action=ctx.action
        )
    logger.info("duplicate %s %s from %s while the first is in progress: not answered twice", ctx.action, uid, cp)
    return Outcome(OutcomeKind.IN_PROGRESS, charge_point_id=cp, unique_id=uid, action=ctx.action)


def _complete(ctx: CallContext, key: str, reply: str | None) -> None:
    expires = ctx.now_ms // 1000 + ctx.config.idempotency_ttl_s
    try:
        ctx.store.complete_message(ctx.charge_point_id, key, reply, expires)
    except Exception:
        # The state change happened; the reply still goes out. A redelivery after the lease
        # runs the extension again: its own writes must tolerate that.
        logger.exception("could not store the idempotency record for %s %s", ctx.charge_point_id, ctx.unique_id)


def _run_handler(ctx: CallContext, frame: Call, extensions: Extensions) -> tuple[Outcome, dict[str, Any] | None, bool]:
    """The outcome, the response (None for a CALLERROR) and whether it failed in a way a retry may
    not (an InternalError: the store or our code, not the frame)."""
    cp, uid, version = ctx.charge_point_id, ctx.unique_id, ctx.version
    try:
        ctx.charger = ctx.store.touch_charger(cp, ctx.received_at_ms, {"protocol": version.value})
        handler = _select_handler(ctx, extensions)
        if handler is None:
            raise NotImplementedAction(f"No handler for {frame.action} in {version.value}")
        _reject_if_blocked(ctx, ctx.charger)
        response = handler(ctx, frame.payload)
        try:
            schemas.validate(version, frame.action, SchemaKind.RESPONSE, response)
        except OcppError as invalid:
            logger.error(
                "handler for %s returned a response that does not validate (%s): %r",
                frame.action,
                invalid.description,
                response,
            )
            raise InternalError("The CSMS produced an invalid response") from None
    except OcppError as error:
        return _error_outcome(ctx, error), None, isinstance(error, InternalError)
    except Exception:
        logger.exception("handler for %s failed on %s %s", frame.action, cp, uid)
        return _error_outcome(ctx, InternalError("The CSMS could not process the request")), None, True
    outcome = Outcome(
        OutcomeKind.REPLIED,
        reply=serialize_result(uid, response),
        charge_point_id=cp,
        unique_id=uid,
        action=frame.action,
        drain=frozenset(ctx.drain),
    )
    return outcome, response, False


def _reject_if_blocked(ctx: CallContext, charger: Mapping[str, Any] | None) -> None:
    """OCPP 2.x B02/B03: a station the CSMS rejected may only send BootNotification."""
    if ctx.action == "BootNotification" or not ctx.version.is_2x:
        return
    if charger is not None and charger.get("bootStatus") == "Rejected":
        raise SecurityError("The charging station was rejected at boot: only BootNotification is accepted")


def _lease_end(ctx: CallContext) -> int:
    """When an uncompleted claim lapses (epoch s); completing the message sets the full TTL."""
    return ctx.now_ms // 1000 + min(ctx.config.claim_lease_s, ctx.config.idempotency_ttl_s)


def _release(store: StateStore, cp: str, uid: str) -> None:
    try:
        store.release_message(cp, uid)
    except Exception:
        logger.exception("could not release the idempotency claim for %s %s", cp, uid)


def _attach_hooks(outcome: Outcome, ctx: CallContext, hooks: list[Hook], request: Any, response: Any) -> None:
    for hook in hooks:
        outcome._hook_names.append(getattr(hook, "__qualname__", repr(hook)))
        outcome._hooks.append(lambda hook=hook: hook(ctx, request, response))  # type: ignore[misc]


def _process_send(ctx: CallContext, frame: Send, extensions: Extensions) -> Outcome:
    """OCPP 2.1 SEND (message type 6): processed, never answered, not even with an error."""
    cp, version = ctx.charge_point_id, ctx.version
    base = Outcome(OutcomeKind.SEND, charge_point_id=cp, unique_id=ctx.unique_id, action=frame.action)
    if frame.action not in SEND_ACTIONS[version]:
        logger.warning("dropped SEND %s from %s: not a SEND action in %s", frame.action, cp, version.value)
        base.kind, base.detail = OutcomeKind.DROPPED, "not a SEND action"
        return base
    try:
        schemas.validate(version, frame.action, SchemaKind.SEND, frame.payload)
    except OcppError as error:
        logger.warning("dropped invalid SEND %s from %s: %s", frame.action, cp, error.description)
        base.kind, base.detail = OutcomeKind.DROPPED, error.description
        return base
    hooks = extensions.hooks_for(version, frame.action)
    claimed = extensions.handler_for(version, frame.action) is not None or bool(hooks)
    # A SEND and a CALL can share a unique id (a charger's SEND and CALL ids need not be unique
    # across the two): the digest covers the frame's bytes, so their claims never meet.
    if claimed:
        previous = _claim(ctx, ctx.frame_digest)
        if previous is not None:
            base.kind = OutcomeKind.DUPLICATE if previous.kind is not OutcomeKind.CALL_ERROR else OutcomeKind.DROPPED
            return base
    try:
        handler = _select_handler(ctx, extensions)
        if handler is not None:
            handler(ctx, frame.payload)
    except Exception:
        logger.exception("SEND %s from %s failed", frame.action, cp)
        if claimed:
            _release(ctx.store, cp, ctx.frame_digest)
        base.detail = "handler failed"
        return base
    if claimed:
        _complete(ctx, ctx.frame_digest, None)
    _attach_hooks(base, ctx, hooks, frame.payload, None)
    return base


__all__ = ["MessageType", "Outcome", "OutcomeKind", "process"]
