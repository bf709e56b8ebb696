"""The Terraform CLI as the Terraform tier runs it (tests/test_terraform.py, tests/test_terraform_test.py,
tests/test_plan_and_build_agree.py): one command in a folder, its output captured; an initialised copy of the
module."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest
from localdeploy import ROOT, copy_module

# `terraform init` of a folder with no lock file installs hashicorp/aws into the plugin cache again (removes
# the cache's entry, then links it anew): two at once, in make check's two workers, fail with "file exists".
# So the tests' inits take turns, under this lock (next to the cache scripts/bootstrap configures).
INIT_LOCK = ROOT / ".tools" / "terraform-init.lock"


def terraform(directory: Path, *args: str, env: dict[str, str] | None = None,
              stdin: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["terraform", *args, "-no-color"], cwd=directory, capture_output=True, text=True,
                          input=stdin, env={**os.environ, **(env or {})}, timeout=timeout)


def init(directory: Path, *options: str) -> Path:
    INIT_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with INIT_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        result = terraform(directory, "init", "-backend=false", "-input=false", *options)
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


def initialised_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init(copy_module(tmp_path_factory.mktemp("module")))
