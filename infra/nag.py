"""cdk-nag acknowledgments (cdk-nag 3 uses CDK's native ``Validations`` API).

Each acknowledgment names one rule, or one finding of a rule (``AwsSolutions-IAM5[Resource::*]``),
on one construct and everything below it, with the reason it does not apply here.
"""

from __future__ import annotations

import aws_cdk as cdk
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule_id: str, reason: str) -> None:
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id, reason=reason))
