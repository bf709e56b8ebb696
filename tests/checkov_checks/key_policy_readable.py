"""CKV_SEALED_1: checkov can read the statements of a KMS key policy.

checkov 3.3.30 passes CKV_AWS_33 (no wildcard principal) on a key policy it cannot render, a
concat() of lists for example, without having read a single statement. This check fails then, so
that a pass of the key-policy checks means they read the policy: its Statement must be a list, with
at least one statement checkov could read, and every statement it rendered must name its Effect and
Principal. A list element that is a reference checkov cannot follow (a module output, say) stays
unread, as it would anyway. It runs inside checkov's own environment (.tools/checkov-venv), so it
may import checkov.
"""

from __future__ import annotations

from typing import Any

from checkov.common.models.enums import CheckCategories, CheckResult
from checkov.terraform.checks.resource.base_resource_check import BaseResourceCheck


class KeyPolicyReadable(BaseResourceCheck):
    def __init__(self) -> None:
        super().__init__(
            name="checkov can read the statements of the KMS key policy",
            id="CKV_SEALED_1",
            categories=(CheckCategories.ENCRYPTION,),
            supported_resources=("aws_kms_key", "aws_kms_key_policy"),
        )

    def scan_resource_conf(self, conf: dict[str, list[Any]]) -> CheckResult:
        if not conf.get("policy"):
            return CheckResult.PASSED  # no policy: CKV2_AWS_64 reports that
        policy = conf["policy"][0]
        statements = policy.get("Statement") if isinstance(policy, dict) else None
        if isinstance(statements, dict):
            statements = [statements]
        rendered = [statement for statement in statements if isinstance(statement, dict)] \
            if isinstance(statements, list) else []
        readable = bool(rendered) and all("Effect" in statement and "Principal" in statement for statement in rendered)
        return CheckResult.PASSED if readable else CheckResult.FAILED


check = KeyPolicyReadable()
