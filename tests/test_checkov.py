"""checkov is a gate: 0 failed checks and 0 parsing errors, over the module and over examples/.

checkov 3.3.30 needs Python <= 3.12, so it runs from its own environment, .tools/checkov-venv, which
scripts/bootstrap makes from requirements-checkov.txt. A skip lives only inline in the .tf
(``#checkov:skip=ID:reason``), never on the command line.

checkov silently leaves out what it cannot evaluate: a resource whose ``count`` it misreads, a policy
it cannot render. So "0 failed" is only worth something if the checks ran, and these tests also
assert that the checks that matter were evaluated on every resource that carries them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from localdeploy import ROOT, copy_module

pytestmark = pytest.mark.terraform

CHECKOV = ROOT / ".tools" / "checkov-venv" / "bin" / "checkov"
CUSTOM_CHECKS = ROOT / "tests" / "checkov_checks"  # CKV_SEALED_1: checkov could read the key policy
EXAMPLES = ROOT / "examples"
# Never copied into the scan: local state, caches, build output, tflocal's generated override.
SCRATCH = (".terraform", ".terraform.lock.hcl", "*.tfstate", "*.tfstate.*", "*.tfplan", "terraform.tfvars*",
           "localstack_providers_override.tf", "__pycache__", "dist", ".checkov.yaml", ".checkov.yml")
# Options that would hide or soften findings. Skips belong inline in the .tf, with their reason.
FORBIDDEN_OPTIONS = ("--skip-check", "--check", "-c", "--soft-fail", "--soft-fail-on", "--hard-fail-on",
                     "--baseline", "--skip-resources-without-violations", "--config-file")

# The checks that must have been evaluated (passed, failed or skipped inline) on every resource of
# these types that checkov reports. A missing one means checkov could not read that resource.
MUST_EVALUATE = {
    "aws_kms_key": {"CKV_AWS_7", "CKV_AWS_33", "CKV_AWS_227", "CKV_SEALED_1"},
    "aws_iam_role": {"CKV_AWS_60", "CKV_AWS_61", "CKV_AWS_274"},
    "aws_cloudwatch_log_group": {"CKV_AWS_66", "CKV_AWS_158", "CKV_AWS_338"},
    "aws_lambda_function": {"CKV_AWS_45", "CKV_AWS_50", "CKV_AWS_115", "CKV_AWS_116", "CKV_AWS_117",
                            "CKV_AWS_272", "CKV_AWS_363"},
}
# The IAM analysis (cloudsplaining) of a policy: it reports nothing when it cannot render the policy.
IAM_ANALYSIS = {
    "aws_iam_role_policy": {"CKV_AWS_286", "CKV_AWS_287", "CKV_AWS_288", "CKV_AWS_289", "CKV_AWS_290",
                            "CKV_AWS_355"},
    "aws_iam_policy_document": {"CKV_AWS_107", "CKV_AWS_108", "CKV_AWS_109", "CKV_AWS_110", "CKV_AWS_111",
                                "CKV_AWS_356"},
}
# Every optional input that a checkov check asks for, turned on: the module must pass with them too.
EVERY_OPTION = {
    "vpc_subnet_ids": ["subnet-0123456789abcdef0"],
    "vpc_security_group_ids": ["sg-0123456789abcdef0"],
    "tracing_mode": "Active",
    "reserved_concurrent_executions": 10,
    "dead_letter_target_arn": "arn:aws:sqs:eu-west-1:123456789012:orders-dlq",
    "code_signing_config_arn": "arn:aws:lambda:eu-west-1:123456789012:code-signing-config:csc-0123456789abcdef0",
    "log_kms_key_arn": "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-44cd-86ef-1234567890ab",
    "log_retention_in_days": 731,
    "environment_variables": {"STAGE": "prod"},
    "decrypt_vpc_endpoint_ids": ["vpce-0123456789abcdef0"],
}
INLINE_SKIP = re.compile(r"#\s*checkov:skip=([A-Za-z0-9_]+)(?::(.*))?")


@pytest.fixture(scope="module")
def checkov() -> Path:
    """The pinned checkov; a missing environment is a failure, never a skip (CI must run the gate)."""
    if not os.access(CHECKOV, os.X_OK):
        pytest.fail(f"{CHECKOV.relative_to(ROOT)} is missing: run scripts/bootstrap (it needs a Python 3.9-3.12)")
    return CHECKOV


REGISTERED = """
import json, sys
from checkov.terraform.checks.resource.registry import resource_registry
import checkov.terraform.checks.resource.aws  # registers checkov's own AWS checks
print(json.dumps({kind: sorted(check.id for check in resource_registry.checks.get(kind, []))
                  for kind in sys.argv[1:]}))
"""


@pytest.fixture(scope="module")
def must_evaluate(checkov: Path) -> dict[str, set[str]]:
    """Per resource type: every check checkov itself registers for it, plus our own. A check left off
    checkov's command line (--skip-check) is left out of its report too, so the report alone cannot show
    it was skipped: only the registry can say what should have run."""
    proc = subprocess.run([str(checkov.parent / "python"), "-c", REGISTERED, *sorted(MUST_EVALUATE)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={"PATH": os.environ.get("PATH", os.defpath), "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    registered = {kind: set(ids) for kind, ids in json.loads(proc.stdout).items()}
    assert all(registered.values()), f"checkov registers no check for some of these types: {registered}"
    return {kind: MUST_EVALUATE[kind] | registered[kind] for kind in MUST_EVALUATE}


def checkov_argv(checkov: Path, directory: Path, *options: str) -> list[str]:
    argv = [str(checkov), "--directory", str(directory), "--framework", "terraform", "--output", "json",
            "--skip-download",  # no network: no Prisma Cloud guidelines or severities
            "--external-checks-dir", str(CUSTOM_CHECKS), *options]
    hiding = [arg for arg in argv if arg.split("=")[0] in FORBIDDEN_OPTIONS]
    assert not hiding, f"the gate's command line hides findings: {hiding}"
    return argv


def run_checkov(checkov: Path, directory: Path, *options: str) -> dict[str, Any]:
    """checkov's Terraform report for ``directory``. Hermetic: no CKV_*/BC_* variables, no ~/.checkov.yaml
    (HOME is a scratch folder), no .checkov.yaml in the scanned tree; a fixed hash seed, because which
    expressions checkov 3.3.30 manages to render depends on set order."""
    assert not list(directory.rglob(".checkov.y*ml")), "a .checkov.yaml would configure the gate outside this test"
    home = directory.parent / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", os.defpath), "HOME": str(home), "LANG": "C.UTF-8",
           "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run(checkov_argv(checkov, directory, *options), cwd=home, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    try:
        output = json.loads(proc.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov printed no JSON report (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    reports = [report for report in (output if isinstance(output, list) else [output])
               if report.get("check_type") == "terraform"]
    assert reports, f"checkov found no Terraform in {directory}: {proc.stdout[:500]}"
    return reports[0]


def where(result: dict[str, Any]) -> str:
    lines = result.get("file_line_range") or [0, 0]
    return f"{result['resource']} ({result['file_path']}:{lines[0]}-{lines[1]})"


def evaluated(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per resource: the checks that ran on it (passed, failed or skipped) and its code."""
    resources: dict[str, dict[str, Any]] = defaultdict(lambda: {"checks": set(), "code": ""})
    for kind in ("passed_checks", "failed_checks", "skipped_checks"):
        for result in report["results"][kind]:
            entry = resources[where(result)]
            entry["checks"].add(result["check_id"])
            entry["code"] = "".join(line for _, line in result.get("code_block") or []) or entry["code"]
    return resources


def resource_type(address: str) -> str:
    """aws_kms_key from 'module.orders.aws_kms_key.secrets[0] (/main.tf:1-9)'."""
    parts = re.sub(r"\[[^\]]*\]", "", address.split(" ")[0]).split(".")
    return parts[-2] if len(parts) >= 2 else ""


def grants_decrypt(code: str) -> bool:
    """A policy that names kms:Decrypt in a statement that is not a Deny (a document's default effect is Allow).
    A Deny-only document (open-only-through-endpoints) grants nothing; the every-option run checks it is read."""
    statements = len(re.findall(r"^\s*statement\s*\{", code, re.MULTILINE))
    denies = len(re.findall(r'^\s*effect\s*=\s*"Deny"', code, re.MULTILINE))
    return "kms:Decrypt" in code and not (statements and statements == denies)


def assert_gate(report: dict[str, Any], must_evaluate: dict[str, set[str]]) -> None:
    failed = [f"{r['check_id']} {where(r)}: {r['check_name']}" for r in report["results"]["failed_checks"]]
    parsing = report["results"].get("parsing_errors", [])
    assert not failed and not parsing, (
        f"checkov: {len(failed)} failed checks, {len(parsing)} parsing errors. Fix the Terraform, or skip inline "
        "(#checkov:skip=ID:reason) where a reviewer would accept the reason:\n  " + "\n  ".join(failed + parsing))
    assert report["summary"]["resource_count"] > 0 and report["summary"]["passed"] > 0, report["summary"]

    resources = evaluated(report)
    unread = [f"{address}: {', '.join(sorted(must_evaluate[kind] - entry['checks']))}"
              for address, entry in sorted(resources.items())
              if (kind := resource_type(address)) in must_evaluate and must_evaluate[kind] - entry["checks"]]
    decrypt_policies = {address: entry for address, entry in resources.items()
                        if resource_type(address) in IAM_ANALYSIS and grants_decrypt(entry["code"])}
    unread += [f"{address}: {', '.join(sorted(IAM_ANALYSIS[resource_type(address)] - entry['checks']))}"
               for address, entry in sorted(decrypt_policies.items())
               if IAM_ANALYSIS[resource_type(address)] - entry["checks"]]
    assert not unread, (
        "checkov passed these resources without evaluating these checks (it could not read them: a count it "
        "misreads, or a policy it cannot render; see the README's checkov section):\n  " + "\n  ".join(unread))
    assert decrypt_policies, "checkov saw no IAM policy that grants kms:Decrypt: the role's policy went unread"


def copy_examples(module: Path) -> Path:
    """examples/ inside a copy of the module, so that each example's source = "../.." resolves."""
    return Path(shutil.copytree(EXAMPLES, module / "examples", ignore=shutil.ignore_patterns(*SCRATCH)))


@pytest.fixture(scope="module")
def defaults_report(checkov: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return run_checkov(checkov, copy_module(tmp_path_factory.mktemp("defaults") / "module", ROOT))


def test_module_at_its_defaults_passes_checkov(defaults_report: dict[str, Any],
                                              must_evaluate: dict[str, set[str]]) -> None:
    assert_gate(defaults_report, must_evaluate)


def test_checkov_skipped_exactly_the_inline_skips_with_their_reasons(defaults_report: dict[str, Any]) -> None:
    """From checkov's own report: what it skipped, and why, is what the module's .tf files say inline."""
    inline = sorted((match[1], match[2].strip()) for path in sorted(ROOT.glob("*.tf"))
                    for match in INLINE_SKIP.finditer(path.read_text()))
    reported = sorted((result["check_id"], (result["check_result"].get("suppress_comment") or "").strip())
                      for result in defaults_report["results"]["skipped_checks"])
    assert inline and reported == inline
    assert defaults_report["summary"]["skipped"] == len(inline)


def test_module_with_every_option_on_passes_checkov(checkov: Path, tmp_path: Path,
                                                   must_evaluate: dict[str, set[str]]) -> None:
    module = copy_module(tmp_path / "module", ROOT)
    declared = set(re.findall(r'^variable\s+"(\w+)"', (module / "variables.tf").read_text(), re.MULTILINE))
    assert set(EVERY_OPTION) <= declared, f"inputs this test sets that the module lacks: {set(EVERY_OPTION) - declared}"
    var_file = tmp_path / "every-option.tfvars.json"
    var_file.write_text(json.dumps(EVERY_OPTION))
    report = run_checkov(checkov, module, "--var-file", str(var_file))
    assert_gate(report, must_evaluate)
    # The role's Deny policies (the function's own document holds one too) were read, not passed unread.
    read = {resource_type(address): entry["checks"] for address, entry in evaluated(report).items()
            if address.startswith("aws_iam_policy_document.decrypt_endpoints ")}
    assert read and IAM_ANALYSIS["aws_iam_policy_document"] <= read["aws_iam_policy_document"], read


def test_examples_pass_checkov(checkov: Path, tmp_path: Path, must_evaluate: dict[str, set[str]]) -> None:
    assert list(EXAMPLES.glob("*/main.tf")), "no example under examples/ to scan"
    examples = copy_examples(copy_module(tmp_path / "module", ROOT))
    assert_gate(run_checkov(checkov, examples), must_evaluate)


def test_the_command_line_skips_nothing(checkov: Path, tmp_path: Path) -> None:
    argv = checkov_argv(checkov, tmp_path)
    assert not [arg for arg in argv if arg.startswith(("--skip", "--soft", "--check", "-c"))
                and arg != "--skip-download"], argv
    with pytest.raises(AssertionError, match="the gate's command line hides findings"):
        checkov_argv(checkov, tmp_path, "--soft-fail")


def test_every_inline_skip_gives_its_reason() -> None:
    """checkov accepts a bare #checkov:skip=ID; the gate does not."""
    terraform = sorted(ROOT.glob("*.tf")) + sorted(EXAMPLES.glob("**/*.tf"))
    skips = [(path.relative_to(ROOT), match) for path in terraform
             for match in INLINE_SKIP.finditer(path.read_text())]
    bare = [f"{path}: {match.group(0)}" for path, match in skips if len((match.group(2) or "").strip()) < 20]
    assert not bare, "each inline skip needs a reason a reviewer can judge (20+ characters):\n  " + "\n  ".join(bare)
