"""Shared by every tier: import paths, the project's Terraform CLI config, and the repo root."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "lambda_src"), str(ROOT / "scripts")]

from localdeploy import use_project_terraform_config  # noqa: E402

use_project_terraform_config()


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
