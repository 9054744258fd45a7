"""What the bridge decides about one frame from a charger before it reaches MQTT. Pure.

IoT Core refuses a PUBLISH whose payload is over 128 KB (“Message size”, AWS IoT Core message
broker quotas, https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits).
The envelope JSON-escapes the frame, so a frame under ``BRIDGE_MAX_FRAME_BYTES`` can still grow
past it (a ``"`` becomes ``\\"``, a control character ``\\u0001``: up to six times). Published
anyway, it would fail at the broker and the charger would wait for an answer that never comes;
instead a CALL gets an OCPP CALLERROR from the bridge (the version's "format" error code).
"""

from __future__ import annotations

from ocpp_core.errors import FormatViolation
from ocpp_core.framing import Call, FrameError, parse_frame, serialize_error
from ocpp_core.versions import OcppVersion

#: IoT Core's PUBLISH payload limit (128 KB, not adjustable).
MAX_MQTT_PAYLOAD = 128 * 1024


def oversize_reply(frame: str, protocol: OcppVersion, envelope_bytes: int) -> str | None:
    """The CALLERROR for a frame whose envelope is too big to publish, or None if none is due.

    Only a CALL (or a frame an OCPP handler would answer) whose unique id can be read gets one;
    a CALLRESULT or CALLERROR is never answered (that could loop), as in ``ocpp_core.framing``.
    """
    try:
        parsed = parse_frame(frame, protocol)
    except FrameError as failure:
        unique_id = failure.unique_id if failure.answerable else None
    else:
        unique_id = parsed.unique_id if isinstance(parsed, Call) else None
    if unique_id is None:
        return None
    refusal = FormatViolation(
        f"Frame too large to forward: {envelope_bytes} bytes once wrapped, the limit is {MAX_MQTT_PAYLOAD}"
    )
    return serialize_error(unique_id, refusal, protocol)
