"""Shared by every tier: the project's Terraform CLI config and the repo root (pyproject's pythonpath puts
the repo root and lambda_src/ on sys.path for `import build` and `import sealed_secrets`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from localdeploy import use_project_terraform_config

ROOT = Path(__file__).resolve().parent.parent

use_project_terraform_config()


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT
