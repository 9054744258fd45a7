"""What can go wrong when a simulated station talks to a CSMS.

Hierarchy (one root, so a caller can catch everything the simulator raises)::

    SimulatorError
    ├── ConnectFailed              the WebSocket could not be opened (refused, DNS, timeout)
    │   ├── HandshakeRejected      the server answered the upgrade with an HTTP status
    │   └── SubprotocolRefused     the server did not select the subprotocol we offered
    ├── NotConnected               a call was made while the station had no connection
    ├── ConnectionLost             the socket closed while our call was outstanding
    ├── CallTimeout                no answer to our call within the timeout
    ├── CallErrorReceived          the CSMS answered our call with a CALLERROR
    ├── InvalidResponse            the CSMS answered with a payload that fails the schema
    ├── InvalidRequest             a payload we were about to send fails the schema
    ├── CertificateFailed          no certificate came of a SignCertificate (none, or not ours)
    └── ScenarioFailed             a step of a scenario got an answer that ends the session

Every message is one line that says what happened and, where it helps, what to do.
"""

from __future__ import annotations

from typing import Any


class SimulatorError(Exception):
    """Root of every error the simulator raises."""


class ConnectFailed(SimulatorError):
    def __init__(self, url: str, reason: str):
        self.url = url
        self.reason = reason
        super().__init__(f"could not connect to {url}: {reason}")


class HandshakeRejected(ConnectFailed):
    def __init__(self, url: str, status: int, reason_phrase: str = ""):
        self.status = status
        text = f"HTTP {status}" + (f" {reason_phrase}" if reason_phrase else "")
        hint = {
            400: " (bad charger id or no common OCPP subprotocol?)",
            401: " (unknown charger or wrong --password?)",
            403: " (charger not allowed?)",
            404: " (wrong --url prefix?)",
        }.get(status, "")
        super().__init__(url, f"the server refused the WebSocket handshake with {text}{hint}")


class SubprotocolRefused(ConnectFailed):
    def __init__(self, url: str, offered: str, selected: str | None):
        self.offered = offered
        self.selected = selected
        super().__init__(url, f"the server did not accept subprotocol {offered} (it selected {selected or 'none'})")


class NotConnected(SimulatorError):
    def __init__(self, charge_point_id: str, action: str):
        super().__init__(f"{charge_point_id}: cannot send {action}: not connected")


class ConnectionLost(SimulatorError):
    def __init__(self, charge_point_id: str, action: str, detail: str = ""):
        suffix = f" ({detail})" if detail else ""
        super().__init__(f"{charge_point_id}: connection closed while waiting for the answer to {action}{suffix}")


class CallTimeout(SimulatorError):
    def __init__(self, charge_point_id: str, action: str, timeout: float):
        self.action = action
        self.timeout = timeout
        super().__init__(f"{charge_point_id}: no answer to {action} within {timeout:g} s")


class CallErrorReceived(SimulatorError):
    def __init__(self, action: str, code: str, description: str, details: Any):
        self.action = action
        self.code = code
        self.description = description
        self.details = details
        super().__init__(f"the CSMS answered {action} with CALLERROR {code}: {description}")


class InvalidResponse(SimulatorError):
    def __init__(self, action: str, reason: str):
        self.action = action
        self.reason = reason
        super().__init__(f"the CSMS answered {action} with a payload that fails the schema: {reason}")


class InvalidRequest(SimulatorError):
    def __init__(self, action: str, reason: str):
        self.action = action
        self.reason = reason
        super().__init__(f"{action} payload fails the schema, not sent: {reason}")


class CertificateFailed(SimulatorError):
    """SignCertificate was accepted but no usable certificate followed (``reason`` says why)."""

    def __init__(self, charge_point_id: str, reason: str):
        self.reason = reason
        super().__init__(f"{charge_point_id}: {reason}")


class ScenarioFailed(SimulatorError):
    pass
