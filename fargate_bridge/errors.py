"""Exceptions of the bridge, all under one root.

Hierarchy::

    BridgeError
    ├── SettingsError        an environment variable has an invalid value (fails at start)
    └── RegistryUnavailable  the charger registry could not be read (handshake answers 503)
"""

from __future__ import annotations


class BridgeError(Exception):
    """Root of the bridge's exceptions."""


class SettingsError(BridgeError):
    """A configuration value is invalid; the message names the variable."""

    def __init__(self, variable: str, problem: str):
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class RegistryUnavailable(BridgeError):
    """The registry backend failed; the charger is refused with 503 rather than let in unchecked."""
