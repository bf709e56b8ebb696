"""The CPythons the build tests run build.py with: one per Lambda runtime in build_rules.json, found under
pyenv. A test that needs one fails, never skips, when it is missing, saying how to get it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import build


def _pyenv_root() -> Path:
    if os.environ.get("PYENV_ROOT"):
        return Path(os.environ["PYENV_ROOT"])
    pyenv = shutil.which("pyenv")
    if pyenv:
        found = subprocess.run([pyenv, "root"], check=False, capture_output=True, text=True).stdout.strip()
        if found:
            return Path(found)
    return Path.home() / ".pyenv"


def python(version: str) -> str:
    """A CPython ``version`` ("3.12"): this one when it is that version, else pyenv's newest patch of it."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        return sys.executable
    found = sorted((path for path in _pyenv_root().glob(f"versions/{version}.*/bin/python3")
                    if path.parent.parent.name.split(".")[2].isdigit()),  # 3.13.0, not 3.13.0t or 3.13-dev
                   key=lambda path: int(path.parent.parent.name.split(".")[2]))
    if not found:
        raise AssertionError(f"this test needs a CPython {version} and pyenv has none under {_pyenv_root()}: "
                             f"install it (pyenv install {version}) or set PYENV_ROOT")
    return str(found[-1])


def lambda_pythons() -> dict[str, str]:
    """One CPython per Lambda runtime that build_rules.json lists, by version ("3.10": path)."""
    return {runtime[len("python"):]: python(runtime[len("python"):]) for runtime in build.rules().runtimes}
