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

# `terraform init` of a folder with no lock file (the tests' copies have none) installs hashicorp/aws into the
# plugin cache again: it removes the cache's entry and links it anew. In make check's two workers that broke
# an init at the same moment ("file exists") and a `terraform test` running meanwhile ("could not read package
# directory"). With this setting init uses the cache's entry as it is, and only the temporary copy's lock file
# records no more than the cache's checksum. The inits still take turns, under INIT_LOCK, for the first one to
# fill an empty cache (no local mirror: providers from the registry).
INIT_ENV = {"TF_PLUGIN_CACHE_MAY_BREAK_DEPENDENCY_LOCK_FILE": "1"}
INIT_LOCK = ROOT / ".tools" / "terraform-init.lock"


def terraform(directory: Path, *args: str, env: dict[str, str] | None = None,
              stdin: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["terraform", *args, "-no-color"], cwd=directory, capture_output=True, text=True,
                          input=stdin, env={**os.environ, **(env or {})}, timeout=timeout)


def init(directory: Path, *options: str) -> Path:
    INIT_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with INIT_LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        result = terraform(directory, "init", "-backend=false", "-input=false", *options, env=INIT_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


def initialised_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init(copy_module(tmp_path_factory.mktemp("module")))
