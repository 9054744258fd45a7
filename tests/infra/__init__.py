"""Tests of the CDK app (``app.py``, ``infra/``): configuration, bundling, synthesized templates."""
