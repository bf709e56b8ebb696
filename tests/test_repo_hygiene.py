""".gitignore hides nothing that belongs in the repo, and still hides what must never be committed."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from localdeploy import ROOT

pytestmark = pytest.mark.skipif(not (ROOT / ".git").exists() or shutil.which("git") is None,
                                reason="needs a git checkout and the git CLI")


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=60, check=False)


def ignored(path: str) -> bool:
    """Whether .gitignore matches ``path`` (which need not exist)."""
    result = git("check-ignore", "--quiet", "--no-index", "--", path)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def test_no_tracked_file_is_ignored() -> None:
    result = git("ls-files", "--cached", "--ignored", "--exclude-standard")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "", f".gitignore matches tracked files:\n{result.stdout}"


@pytest.mark.parametrize("path", [
    "examples/with-dependencies/src/build/__init__.py",  # a function's own package named build
    "examples/with-dependencies/src/dist/data.json",
    "lambda_src/handler.py.tmpl",
    "examples/seed/main.tf",
])
def test_source_files_are_not_ignored(path: str) -> None:
    assert not ignored(path)


@pytest.mark.parametrize("path", [
    ".venv/bin/python", ".tools/checkov-venv/bin/checkov", "dist/orders-api.zip",
    "localstack-process-executor/build/lib/x.py", "devtools/sealed_lambda_devtools.egg-info/PKG-INFO",
    "examples/seed/.terraform/modules/modules.json", "examples/seed/.terraform.lock.hcl",
    "examples/seed/terraform.tfstate", "examples/seed/terraform.tfstate.backup", "examples/seed/plan.tfplan",
    "examples/seed/terraform.tfvars.json", "examples/seed/secrets.auto.tfvars",
    "examples/seed/localstack_providers_override.tf", "lambda_src/__pycache__/sealed_secrets.cpython-313.pyc",
])
def test_local_state_and_output_are_ignored(path: str) -> None:
    assert ignored(path)
