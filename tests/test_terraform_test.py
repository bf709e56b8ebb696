"""The Terraform tier's `terraform test`: every run block of tests/*.tftest.hcl runs and passes (mocked AWS
provider), and the policies tests/policies.tftest.hcl renders with the real provider, offline, evaluated by
tests/iam_eval.py: who can Decrypt, under which context.

A file of its own: the slowest of make check's files, so pytest-xdist (--dist loadfile) gives it a worker
while the rest of the Terraform tier (tests/test_terraform.py) runs in another."""

from __future__ import annotations

import json
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from localdeploy import ROOT
from terraform_cli import initialised_module, terraform

import iam_eval

pytestmark = pytest.mark.terraform


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
    return initialised_module(tmp_path_factory)


POLICIES = "tests/policies.tftest.hcl"  # the policies as rendered: its apply runs' states are evaluated
RUN_BLOCK = re.compile(r'^run\s+"([^"]+)"\s*\{', re.MULTILINE)


def run_blocks(directory: Path) -> dict[str, list[str]]:
    """The run blocks of every tests/*.tftest.hcl, by file, as the files declare them."""
    return {f"tests/{path.name}": RUN_BLOCK.findall(path.read_text())
            for path in sorted((directory / "tests").glob("*.tftest.hcl"))}


@dataclass
class TerraformTestReport:
    abstract: dict[str, list[str]]  # file => its runs, as terraform test lists them
    summary: dict[str, int]  # passed, failed, errored, skipped
    statuses: dict[tuple[str, str], str]  # (file, run) => pass, fail, error or skip
    states: dict[tuple[str, str], dict[str, Any]]  # (file, run) => the state after that apply run (-verbose)


def terraform_test_report(directory: Path, files: list[str], *, verbose: bool) -> TerraformTestReport:
    """`terraform test -json` of ``files``. -verbose adds each apply run's state, and each plan run's plan with
    the provider's whole schema, hundreds of MB over the mocked file: so only the files whose states are read."""
    result = terraform(directory, "test", "-json", *(["-verbose"] if verbose else []),
                       *[f"-filter={name}" for name in files], timeout=900)
    messages = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    failures = [f"{m.get('@testfile')} {m.get('@testrun')}: {m['@message']} {m.get('diagnostic', {}).get('detail', '')}"
                for m in messages if m["type"] == "diagnostic" and m["@level"] == "error"]
    summaries = [m["test_summary"] for m in messages if m["type"] == "test_summary"]
    assert result.returncode == 0 and len(summaries) == 1, "\n".join(failures) or result.stdout[-3000:] + result.stderr
    return TerraformTestReport(
        abstract=next(m["test_abstract"] for m in messages if m["type"] == "test_abstract"),
        summary={key: summaries[0][key] for key in ("passed", "failed", "errored", "skipped")},
        statuses={(m["test_run"]["path"], m["test_run"]["run"]): m["test_run"].get("status", "")
                  for m in messages if m["type"] == "test_run" and m["test_run"].get("progress") == "complete"},
        states={(m["@testfile"], m["@testrun"]): m["test_state"] for m in messages if m["type"] == "test_state"},
    )


@pytest.fixture(scope="module")
def terraform_test(module_dir) -> TerraformTestReport:
    """Every tests/*.tftest.hcl once: the policy file verbosely (its states are evaluated below), the rest not.
    One command per file, side by side (each is mostly one core's work, and the files take 8-28 s of CPU
    each); none writes to the directory: `terraform test` keeps its runs' states in memory, and the
    policies' build step runs `true`."""
    files = sorted(run_blocks(module_dir))
    assert POLICIES in files, files
    with ThreadPoolExecutor(max_workers=len(files)) as pool:
        reports = list(pool.map(lambda name: terraform_test_report(module_dir, [name], verbose=name == POLICIES), files))
    return TerraformTestReport(
        abstract={file: runs for report in reports for file, runs in report.abstract.items()},
        summary={key: sum(report.summary[key] for report in reports) for key in reports[0].summary},
        statuses={run: status for report in reports for run, status in report.statuses.items()},
        states={run: state for report in reports for run, state in report.states.items()},
    )


def test_terraform_test_runs_every_run_block_and_each_passes(module_dir, terraform_test):
    declared = run_blocks(module_dir)
    assert declared.keys() == {f"tests/{path.name}" for path in (ROOT / "tests").glob("*.tftest.hcl")}
    assert terraform_test.abstract == declared
    expected = sum(len(runs) for runs in declared.values())
    assert expected > 0
    assert terraform_test.summary == {"passed": expected, "failed": 0, "errored": 0, "skipped": 0}, \
        terraform_test.summary
    assert terraform_test.statuses == {(path, run): "pass" for path, runs in declared.items() for run in runs}


# --- The policies as rendered, evaluated: who can Decrypt, under which context -------------------------
# tests/policies.tftest.hcl renders them with the real provider, offline; tests/iam_eval.py evaluates them.

ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/orders-api-lambda"
ROLE_ID = "AROAORDERSAPILAMBDA01"  # the role's unique ID in tests/policies.tftest.hcl
FUNCTION = f"arn:aws:lambda:eu-west-1:{ACCOUNT}:function:orders-api"
ADMIN = f"arn:aws:iam::{ACCOUNT}:role/admin"
ENDPOINT = "vpce-0123456789abcdef0"
ANYTHING_KMS = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*"}]}
DECRYPT_ANYWHERE = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"}]}


@dataclass
class Rendered:
    key_arn: str
    key_policy: dict[str, Any] | None
    role_policies: list[dict[str, Any]]
    outputs: dict[str, Any]


def rendered(report: TerraformTestReport, run: str) -> Rendered:
    state = report.states[(POLICIES, run)]
    resources = {r["address"]: r["values"] for r in state["root_module"]["resources"]}
    outputs = {name: output["value"] for name, output in state["outputs"].items()}
    key = resources.get("aws_kms_key.secrets[0]")
    return Rendered(
        key_arn=outputs["kms_key_arn"],
        key_policy=json.loads(key["policy"]) if key else None,
        role_policies=[json.loads(values["policy"]) for address, values in sorted(resources.items())
                       if address.startswith("aws_iam_role_policy.")],
        outputs=outputs,
    )


@dataclass(frozen=True)
class Caller:
    """Who calls kms:Decrypt (or ReEncryptFrom), from where, under which context."""
    who: str  # "role": the function's role; "recreated": a new role of the same name; "admin": kms:* on *
    source: str | None  # lambda:SourceFunctionArn: None outside Lambda
    context: str = "orders-api"
    vpce: str | None = None
    action: str = "kms:Decrypt"


CALLERS = [Caller(who, source, context, vpce, action)
           for who in ("role", "recreated", "admin")
           for source in (FUNCTION, f"{FUNCTION}:3", f"{FUNCTION}:live", f"{FUNCTION}-copy", None)
           for context in ("orders-api", "billing")
           for vpce in (None, ENDPOINT, "vpce-0fedcba9876543210")
           for action in ("kms:Decrypt", "kms:ReEncryptFrom")]


def request(caller: Caller, key_arn: str) -> iam_eval.Request:
    principal, user_id = {"role": (ROLE, ROLE_ID), "recreated": (ROLE, "AROARECREATEDROLE0002"),
                          "admin": (ADMIN, "AROAADMINROLEID000003")}[caller.who]
    context = {"aws:PrincipalArn": principal, "aws:userid": f"{user_id}:orders-api",
               "aws:PrincipalAccount": ACCOUNT, "kms:EncryptionContext:LambdaFunctionName": caller.context}
    if caller.source:
        context["lambda:SourceFunctionArn"] = caller.source
    if caller.vpce:
        context["aws:SourceVpce"] = caller.vpce
    return iam_eval.Request(principal=principal, action=caller.action, resource=key_arn, context=context)


def who_decrypts(policies: Rendered, key_policy: dict[str, Any], extra: list[dict[str, Any]] = ()) -> set[Caller]:
    """Every caller KMS lets through. The function's role holds the module's policies (plus ``extra``); a
    role recreated under its name holds whatever its new owner gives it, here kms:* on *; so does the admin."""
    identity = {"role": [*policies.role_policies, *extra], "recreated": [ANYTHING_KMS], "admin": [ANYTHING_KMS]}
    return {caller for caller in CALLERS
            if iam_eval.kms_allows(key_policy, identity[caller.who], request(caller, policies.key_arn))}


def the_function(vpces=(None, ENDPOINT, "vpce-0fedcba9876543210")) -> set[Caller]:
    return {Caller("role", source, "orders-api", vpce) for source in (FUNCTION, f"{FUNCTION}:3", f"{FUNCTION}:live")
            for vpce in vpces}


def test_only_the_function_under_its_context_opens_its_secrets(terraform_test):
    policies = rendered(terraform_test, "the_role_gets_exactly_this_policy_at_the_defaults")
    assert who_decrypts(policies, policies.key_policy) == the_function()


def test_nothing_else_attached_to_the_role_widens_who_opens_the_secrets(terraform_test):
    """An allow of kms:Decrypt (or kms:*) on "*" given to the role changes who can decrypt in no case: the role's
    own Deny stops another function given this role, and the role's credentials outside Lambda."""
    policies = rendered(terraform_test, "the_role_gets_exactly_this_policy_at_the_defaults")
    for extra in (DECRYPT_ANYWHERE, ANYTHING_KMS):
        assert who_decrypts(policies, policies.key_policy, [extra]) == the_function()


def test_a_role_recreated_under_the_same_name_opens_nothing(terraform_test):
    """The key policy pins the role's unique ID (aws:userid), not only its ARN, which a new role would share."""
    policies = rendered(terraform_test, "the_role_gets_exactly_this_policy_at_the_defaults")
    assert not {caller for caller in who_decrypts(policies, policies.key_policy) if caller.who == "recreated"}


def test_with_decrypt_vpc_endpoints_only_the_function_through_them_opens_even_with_more_allowed(terraform_test):
    policies = rendered(terraform_test, "every_optional_setting_attaches_exactly_its_own_policy")
    for extra in ((), [DECRYPT_ANYWHERE], [ANYTHING_KMS]):
        assert who_decrypts(policies, policies.key_policy, extra) == the_function(vpces=(ENDPOINT,))


def test_a_shared_key_with_the_statement_the_module_outputs_opens_only_for_the_function(terraform_test):
    """The shared key's owner adds key_policy_statements beside an administration statement: the same result,
    whatever else the role or an administrator is allowed."""
    policies = rendered(terraform_test, "a_shared_key_gets_the_statement_the_module_outputs")
    assert policies.key_policy is None  # no key of the module's own
    administration = {"Sid": "KeyAdministration", "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                      "Action": policies.outputs["key_administration_actions"], "Resource": "*"}
    shared = {"Version": "2012-10-17", "Statement": [administration, *policies.outputs["key_policy_statements"]]}
    for extra in ((), [DECRYPT_ANYWHERE], [ANYTHING_KMS]):
        assert who_decrypts(policies, shared, extra) == the_function()
