"""Helpers shared by the test tiers."""

from __future__ import annotations

import shutil
from pathlib import Path

MODULE_FILES = ("versions.tf", "variables.tf", "main.tf", "outputs.tf", "build.py")


def copy_module(root: Path, destination: Path) -> Path:
    """A working copy of the module (its .tf files, build.py, lambda_src and tftests) to run Terraform in."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in MODULE_FILES:
        shutil.copy2(root / name, destination / name)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(root / "lambda_src", destination / "lambda_src", ignore=ignore, dirs_exist_ok=True)
    (destination / "tests").mkdir(exist_ok=True)
    for tftest in (root / "tests").glob("*.tftest.hcl"):
        shutil.copy2(tftest, destination / "tests" / tftest.name)
    return destination
