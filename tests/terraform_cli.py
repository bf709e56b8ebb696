"""The Terraform CLI as the Terraform tier runs it (tests/test_terraform.py, tests/test_terraform_test.py):
one command in a folder, its output captured; an initialised copy of the module."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from localdeploy import copy_module


def terraform(directory: Path, *args: str, env: dict[str, str] | None = None,
              stdin: str | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["terraform", *args, "-no-color"], cwd=directory, capture_output=True, text=True,
                          input=stdin, env={**os.environ, **(env or {})}, timeout=timeout)


def init(directory: Path) -> Path:
    result = terraform(directory, "init", "-backend=false", "-input=false")
    assert result.returncode == 0, result.stdout + result.stderr
    return directory


def initialised_module(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return init(copy_module(tmp_path_factory.mktemp("module")))
