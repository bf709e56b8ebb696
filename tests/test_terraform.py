"""The Terraform tier: fmt, validate and `terraform test` (mocked AWS provider) on a copy of the module."""

from __future__ import annotations

import subprocess

import pytest

from localdeploy import copy_module

pytestmark = pytest.mark.terraform


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory, root):
    directory = copy_module(tmp_path_factory.mktemp("module"), root)
    subprocess.run(["terraform", "init", "-backend=false", "-input=false", "-no-color"], cwd=directory,
                   check=True, capture_output=True)
    return directory


def terraform(module_dir, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["terraform", *args, "-no-color"], cwd=module_dir, capture_output=True, text=True)


def test_fmt_check(module_dir):
    result = terraform(module_dir, "fmt", "-check", "-recursive", "-diff")
    assert result.returncode == 0, result.stdout + result.stderr


def test_validate(module_dir):
    result = terraform(module_dir, "validate")
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_test_with_mock_provider(module_dir):
    result = terraform(module_dir, "test")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 failed" in result.stdout and "skip" not in result.stdout, result.stdout
