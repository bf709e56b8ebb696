"""Plan and build agree (issue 14, must-show 6): every value build.py refuses that Terraform can also see is
refused by `terraform plan` (mocked AWS provider, offline) with the same reason, and a good value passes both.
One table drives both: build.py's CLI, and one `terraform test` file per case (a failed run would skip the
runs after it in the same file)."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest
from localdeploy import ROOT, copy_module
from terraform_cli import init

import build

pytestmark = pytest.mark.terraform

BLOB = base64.b64encode(bytes(range(200))).decode()
TEMPLATE = ("import sealed_secrets\nsealed_secrets.register(__SEALED_CIPHERTEXTS__)\n\n\n"
            "def handler(event, context):\n    return None\n")


class Case(NamedTuple):
    """One value: the Terraform variables that carry it, the build.py flags that carry it, the reason both
    give (None: a good value both accept), and the files of the source folder."""

    variables: dict[str, str]  # name -> HCL expression
    flags: list[str]
    reason: str | None
    template: str = "handler.py.tmpl"
    files: tuple[str, ...] = ()
    content: bytes = TEMPLATE.encode()


def case(reason: str | None, *, name: str = "token", blob: str = BLOB, runtime: str = "python3.13",
         architecture: str = "x86_64", template: str = "handler.py.tmpl", files: tuple[str, ...] = (),
         content: bytes = TEMPLATE.encode()) -> Case:
    variables = {"encrypted_secrets": f'{{ "{name}" = "{blob}" }}', "runtime": f'"{runtime}"',
                 "architectures": f'["{architecture}"]'}
    flags = [f"--ciphertext={name}={blob}", f"--runtime={runtime}", f"--architecture={architecture}"]
    return Case(variables, flags, reason, template, files, content)


NAME = "a letter followed by letters, digits or _ (at most 64 characters)"
IMPORTABLE = "(ASCII letters, digits and _, no leading digit, not a keyword)"
CIPHERTEXT = "a base64 CiphertextBlob of at most 6144 bytes"
TERRAFORM_FILES = ("holds Terraform's working files", "the source folder is packaged whole, so state, variable "
                   "values or saved plans, plaintexts included, would go into the package")
RUNTIMES = ", ".join(build.rules().runtimes)
ARCHITECTURES = ", ".join(build.rules().architectures)

CASES = {
    "good": case(None),
    "good arm64 python3.10 with a data file named like Terraform": case(
        None, runtime="python3.10", architecture="arm64", files=("main.tf", "notes/tfstate.md")),
    "secret name starting with a digit": case(NAME, name="9lives"),
    "secret name with a dash": case(NAME, name="db-password"),
    "secret name of 65 characters": case(NAME, name="a" * 65),
    "ciphertext not base64": case(CIPHERTEXT, blob="not*base64!"),
    "ciphertext over 6144 bytes": case(CIPHERTEXT, blob=base64.b64encode(b"x" * 6145).decode()),
    "template named like a keyword": case(IMPORTABLE, template="class.py.tmpl"),
    "template with a dot in its module": case(IMPORTABLE, template="a.b.py.tmpl"),
    "template starting with a digit": case(IMPORTABLE, template="1x.py.tmpl"),
    "template with a dash": case(IMPORTABLE, template="my-handler.py.tmpl"),
    "template named like the helper": case("would replace the runtime helper", template="sealed_secrets.py.tmpl"),
    "template without .py": case("a path to <module>.py.tmpl", template="handler.tmpl"),
    "template without the placeholder": case("must contain __SEALED_CIPHERTEXTS__ exactly once (found 0)",
                                             content=b"def handler(event, context):\n    return None\n"),
    "template with the placeholder twice": case("must contain __SEALED_CIPHERTEXTS__ exactly once (found 2)",
                                                content=(TEMPLATE + "# __SEALED_CIPHERTEXTS__\n").encode()),
    "template not UTF-8": case("is not UTF-8", content="# Grüße\n".encode("latin-1") + TEMPLATE.encode()),
    "runtime python3.9 (deprecated by Lambda)": case(f"runtime must be one of {RUNTIMES} (build_rules.json)",
                                                     runtime="python3.9"),
    "runtime python3.14 (not in the rules)": case(f"runtime must be one of {RUNTIMES} (build_rules.json)",
                                                  runtime="python3.14"),
    "architecture amd64": case(f"architecture must be one of {ARCHITECTURES} (build_rules.json)",
                               architecture="amd64"),
    **{f"source folder holding {name}": case(TERRAFORM_FILES[0], files=(name,)) for name in (
        "terraform.tfstate", "terraform.tfstate.backup", "prod.auto.tfvars", "terraform.tfvars",
        "secrets.tfvars.json", "release.tfplan", "tfplan", ".terraform/terraform.tfstate",
        "terraform.tfstate.d/dev/terraform.tfstate", "app/nested.tfvars")},
}


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def source_folder(base: Path, name: str, item: Case) -> Path:
    folder = base / slug(name)
    folder.mkdir(parents=True)
    (folder / item.template).write_bytes(item.content)
    for file in item.files:
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / file).write_text('db_password = "hunter2"\n')
    return folder / item.template


def mock_provider() -> str:
    """The mocked AWS provider of the module's own Terraform tests: no credentials, no network."""
    text = (ROOT / "tests" / "module.tftest.hcl").read_text()
    return re.search(r'^mock_provider "aws" \{.*?^\}\n', text, re.DOTALL | re.MULTILINE).group(0)


def one_line(text: str) -> str:
    """Terraform's output with its box-drawing and wrapping undone."""
    return " ".join(text.replace("│", " ").split())


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> dict[str, str]:
    """Each case's `terraform test` output, from one run over one file per case."""
    base = tmp_path_factory.mktemp("agree")
    module = copy_module(base / "module")
    tests = module / "agree"
    tests.mkdir()
    for name, item in CASES.items():
        template = source_folder(base / "sources", name, item)
        variables = {"function_name": '"orders-api"', "handler_template": f'"{template}"', **item.variables}
        body = "\n".join(f"    {key} = {value}" for key, value in variables.items())
        (tests / f"{slug(name)}.tftest.hcl").write_text(
            f'{mock_provider()}\nrun "{slug(name)}" {{\n  command = plan\n  variables {{\n{body}\n  }}\n}}\n')
    env = {**os.environ, "TF_IN_AUTOMATION": "1"}
    init(module, "-test-directory=agree")
    result = subprocess.run(["terraform", "test", "-test-directory=agree", "-no-color"], cwd=module,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,  # each error beside its run
                            text=True, env=env, timeout=900)
    output = result.stdout
    parts = re.split(r"^agree/([a-z0-9_]+)\.tftest\.hcl\.\.\. in progress$", output, flags=re.MULTILINE)
    found = {parts[index]: parts[index + 1] for index in range(1, len(parts) - 1, 2)}
    assert sorted(found) == sorted(slug(name) for name in CASES), output
    return found


@pytest.mark.parametrize("name", list(CASES))
def test_plan_and_build_refuse_the_same_values_for_the_same_reason(name, plans, tmp_path):
    item = CASES[name]
    template = source_folder(tmp_path, name, item)
    built = subprocess.run([sys.executable, str(ROOT / "build.py"), *item.flags, f"--template={template}",
                            f"--output={tmp_path / 'fn.zip'}", f"--cache-dir={tmp_path / 'cache'}"],
                           capture_output=True, text=True, timeout=120, check=False)
    plan = plans[slug(name)]
    verdict = re.search(r'run "[a-z0-9_]+"\.\.\. (pass|fail)', plan)
    assert verdict, plan
    if item.reason is None:
        assert built.returncode == 0, built.stderr
        assert verdict[1] == "pass", plan
        return
    assert built.returncode == 2 and built.stderr.startswith("error: "), built.stderr
    assert len(built.stderr.splitlines()) == 1, built.stderr
    assert verdict[1] == "fail", plan
    assert item.reason in one_line(built.stderr), built.stderr
    assert item.reason in one_line(plan), plan
    if item.reason == TERRAFORM_FILES[0]:
        assert TERRAFORM_FILES[1] in one_line(built.stderr) and TERRAFORM_FILES[1] in one_line(plan)
