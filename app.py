#!/usr/bin/env python3
"""CDK app: the OCPP Central System on AWS, one stack per stage.

    source .venv/bin/activate
    cdk deploy -c stage=dev                       # or: -c stage=prod -c alarm_email=ops@example.com

Stage settings come from ``cdk.json`` (``context.stages``), each overridable with ``-c key=value``;
``infra/config.py`` validates them. ``python app.py`` synthesizes into ``cdk.out`` without the CLI.
Nothing is built at import: tests call :func:`build_app`.
"""

from __future__ import annotations

import sys

# Before any import that needs a newer Python: one line saying what is needed, not a traceback.
# infra/bundling.py picks the Lambda runtime from this interpreter (3.11 and newer).
if sys.version_info < (3, 11):  # noqa: UP036 (the check is for the interpreters pyproject refuses)
    sys.exit(
        "error: Python 3.11 or newer is needed to synthesize "
        f"(this is Python {sys.version_info[0]}.{sys.version_info[1]})"
    )

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from infra.config import ConfigError, StageConfig
from infra.stack import CsmsStack, stack_name

REPO_ROOT = Path(__file__).resolve().parent


def load_cdk_json_context(path: Path | None = None) -> dict[str, Any]:
    """The ``context`` block of ``cdk.json``: the CLI passes it on its own, ``python app.py`` does not."""
    path = path or REPO_ROOT / "cdk.json"
    return dict(json.loads(path.read_text(encoding="utf-8")).get("context", {}))


def build_app(
    context: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    repo_root: Path | None = None,
    outdir: str | None = None,
) -> cdk.App:
    """The app for ``context``; raises :class:`ConfigError` on a bad value, before any construct exists.

    Context the CDK CLI passes (``cdk.json`` and ``-c``, through ``CDK_CONTEXT_JSON``) overrides
    ``context``; ``environ`` supplies ``CDK_DEFAULT_ACCOUNT`` / ``CDK_DEFAULT_REGION``.
    """
    app = cdk.App(context=dict(context), outdir=outdir)
    config = StageConfig.from_context(app.node.get_all_context(), environ or {})
    env = cdk.Environment(account=config.account, region=config.region) if config.account or config.region else None
    CsmsStack(
        app,
        stack_name(config.stage),
        config=config,
        repo_root=repo_root or REPO_ROOT,
        env=env,
        description=f"OCPP Central System ({config.stage}): bridge, IoT Core rules, Lambda, DynamoDB, API, monitoring",
    )
    cdk.Tags.of(app).add("project", "ocpp-csms")
    cdk.Tags.of(app).add("stage", config.stage)
    return app


def main() -> int:
    # The CLI says where with CDK_OUTDIR; run alone, CDK would pick a temporary directory.
    outdir = os.environ.get("CDK_OUTDIR") or str(REPO_ROOT / "cdk.out")
    try:
        app = build_app(load_cdk_json_context(), environ=os.environ, outdir=outdir)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    app.synth()
    return 0


if __name__ == "__main__":
    sys.exit(main())
