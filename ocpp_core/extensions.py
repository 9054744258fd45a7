"""User extensions: replace the handler of an action, add hooks that run after the reply.

In the spirit of the ``ocpp`` library's ``@on`` / ``@after``, but explicit and stateless:
a user's module builds an :class:`Extensions` object and the Lambda loads it by module name
(``OCPP_EXTENSIONS=my_module``, which must define ``extensions``)::

    from ocpp_core import Extensions

    extensions = Extensions()

    @extensions.on("DataTransfer", versions=["ocpp1.6"])
    def data_transfer(ctx, payload):
        if payload["vendorId"] == "com.example":
            return {"status": "Accepted"}
        return ctx.default(payload)          # fall back to the built-in handler

    @extensions.after("BootNotification")
    def tell_crm(ctx, request, response):
        ...                                  # runs once the reply is published

A failing hook is logged with the charger id and counted; it never changes the reply.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .versions import OcppVersion

if TYPE_CHECKING:
    from .context import CallContext

Handler = Callable[["CallContext", Any], dict[str, Any]]
Hook = Callable[["CallContext", Any, Any], None]


def _versions(versions: Iterable[OcppVersion | str] | None) -> tuple[OcppVersion, ...]:
    if versions is None:
        return tuple(OcppVersion)
    out = []
    for v in versions:
        parsed = v if isinstance(v, OcppVersion) else OcppVersion.parse(v)
        if parsed is None:
            raise ValueError(f"unknown OCPP version {v!r}: use one of {[x.value for x in OcppVersion]}")
        out.append(parsed)
    return tuple(out)


class Extensions:
    """Handlers and hooks a user adds, keyed by (version, action)."""

    def __init__(self) -> None:
        self._handlers: dict[tuple[OcppVersion, str], Handler] = {}
        self._hooks: dict[tuple[OcppVersion, str | None], list[Hook]] = {}

    def on(self, action: str, *, versions: Iterable[OcppVersion | str] | None = None) -> Callable[[Handler], Handler]:
        """Replace the handler of a charger-initiated ``action`` (for all versions by default)."""

        def register(func: Handler) -> Handler:
            for version in _versions(versions):
                self._handlers[(version, action)] = func
            return func

        return register

    def after(
        self, action: str | None = None, *, versions: Iterable[OcppVersion | str] | None = None
    ) -> Callable[[Hook], Hook]:
        """Run ``func(ctx, request, response)`` after the reply to ``action`` (every action if None)."""

        def register(func: Hook) -> Hook:
            for version in _versions(versions):
                self._hooks.setdefault((version, action), []).append(func)
            return func

        return register

    def handler_for(self, version: OcppVersion, action: str) -> Handler | None:
        return self._handlers.get((version, action))

    def hooks_for(self, version: OcppVersion, action: str) -> list[Hook]:
        return self._hooks.get((version, action), []) + self._hooks.get((version, None), [])

    def merge(self, other: Extensions) -> Extensions:
        """A new registry with ``other``'s entries on top of ours (later modules win)."""
        merged = Extensions()
        merged._handlers = {**self._handlers, **other._handlers}
        for source in (self._hooks, other._hooks):
            for key, hooks in source.items():
                merged._hooks.setdefault(key, []).extend(hooks)
        return merged


NO_EXTENSIONS = Extensions()
