"""``python -m fargate_bridge``: read the environment, serve until SIGTERM/SIGINT, drain, exit 0."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import sys

import process_gc

from .errors import SettingsError
from .logs import configure_logging
from .server import serve
from .settings import Settings

logger = logging.getLogger("fargate_bridge")


def main(argv: list[str] | None = None) -> int:
    try:
        settings = Settings.from_env(os.environ)
    except SettingsError as exc:
        print(f"fargate_bridge: invalid configuration: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    _raise_file_limit()
    process_gc.install()
    try:
        asyncio.run(serve(settings))
    except OSError as exc:  # typically: the port is taken
        logger.error("bridge could not start: %s", exc)
        return 1
    return 0


def _raise_file_limit() -> None:
    """Two descriptors per charger (its socket and its MQTT connection): use all we may have."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:
        logger.warning("could not raise the open files limit: %s", exc)


if __name__ == "__main__":
    sys.exit(main())
