"""The runtime helper's committed bytecode (helper_bytecode/, written by scripts/compile-helper).

Each runtime's pycs must be exactly what that runtime's Python compiles today's source to (so the bytecode
that runs is the source that was reviewed), every package must carry them where that runtime's import finds
them, and a pyc whose source changed must be ignored, never run.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import build

ROOT = Path(__file__).resolve().parents[2]
HELPER_MODULES = sorted(path.stem for path in (ROOT / "lambda_src" / "sealed_secrets").glob("*.py"))
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def compile_helper(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "scripts" / "compile-helper"), *args],
                          capture_output=True, text=True, check=False, timeout=300)


def test_the_committed_bytecode_is_what_each_runtime_compiles_the_source_to(runtime_pythons):
    result = compile_helper(ROOT, "--check")
    assert result.returncode == 0, result.stderr
    for runtime in json.loads((ROOT / "build_rules.json").read_text())["runtimes"]:
        assert sorted(path.stem for path in (ROOT / "helper_bytecode" / runtime).glob("*.pyc")) == HELPER_MODULES


def scratch_repo(tmp_path: Path) -> Path:
    """What scripts/compile-helper reads, copied: the script, the helper, its bytecode, the rules, the Pythons."""
    copy = tmp_path / "repo"
    for part in ("scripts/compile-helper", "build_rules.json", ".tools/pythons.json"):
        (copy / part).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / part, copy / part)
    shutil.copytree(ROOT / "lambda_src" / "sealed_secrets", copy / "lambda_src" / "sealed_secrets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "helper_bytecode", copy / "helper_bytecode")
    return copy


def test_a_tampered_pyc_a_changed_source_and_a_stray_pyc_are_each_named_then_rewritten(tmp_path, runtime_pythons):
    repo = scratch_repo(tmp_path)
    tampered = repo / "helper_bytecode" / "python3.12" / "errors.pyc"
    data = bytearray(tampered.read_bytes())
    at = data.index(b"never a value")  # in a constant of the code object, behind an intact header
    data[at] ^= 0x20
    tampered.write_bytes(bytes(data))
    with (repo / "lambda_src" / "sealed_secrets" / "budget.py").open("a") as source:
        source.write("\nEDITED = True\n")
    (repo / "helper_bytecode" / "python3.10" / "gone.pyc").write_bytes(b"")

    result = compile_helper(repo, "--check")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: ")
    assert result.stderr.rstrip().endswith("run scripts/compile-helper and commit helper_bytecode/")
    named = dict(part.split(": ", 1) for part in result.stderr.split(" (", 1)[1].split("): ")[0].split("; "))
    assert named == {"python3.10": "budget.pyc, gone.pyc (no such module)", "python3.11": "budget.pyc",
                     "python3.12": "budget.pyc, errors.pyc", "python3.13": "budget.pyc"}

    assert compile_helper(repo).returncode == 0
    assert compile_helper(repo, "--check").returncode == 0
    assert not (repo / "helper_bytecode" / "python3.10" / "gone.pyc").exists()


def unpacked(tmp_path: Path, runtime: str) -> Path:
    data, _ = build.build_package(ROOT / "lambda_src" / "handler.py.tmpl", {"db": "AQICAHhzZWFsZWQ="},
                                  runtime=runtime, key_arn=KEY_ARN)
    folder = tmp_path / runtime
    with zipfile.ZipFile(io.BytesIO(data)) as package:
        package.extractall(folder)
    return folder


def imported_from(python: Path, folder: Path, code: str = "import sealed_secrets") -> tuple[set[str], str]:
    """The helper modules ``python`` loaded from their pyc (``-v`` says "<pyc> matches <source>"), and stdout."""
    result = subprocess.run([str(python), "-I", "-v", "-c", f"import sys; sys.path.insert(0, {str(folder)!r}); {code}"],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    matched = {line.split("/__pycache__/")[1].split(".")[0] for line in result.stderr.splitlines()
               if line.startswith("# ") and " matches " in line and "/sealed_secrets/__pycache__/" in line}
    return matched, result.stdout


@pytest.mark.parametrize("version", ["3.10", "3.11", "3.12", "3.13"])
def test_each_runtime_imports_the_helper_from_the_bytecode_in_its_package(tmp_path, runtime_pythons, version):
    folder = unpacked(tmp_path, f"python{version}")
    tag = f"cpython-{version.replace('.', '')}"
    assert sorted(path.name for path in (folder / "sealed_secrets" / "__pycache__").iterdir()) == \
        [f"{module}.{tag}.pyc" for module in HELPER_MODULES]
    matched, _ = imported_from(runtime_pythons[version], folder)
    assert matched == set(HELPER_MODULES)


def test_a_pyc_whose_source_changed_is_ignored_and_the_source_runs(tmp_path, runtime_pythons):
    folder = unpacked(tmp_path, "python3.13")
    with (folder / "sealed_secrets" / "errors.py").open("a") as source:
        source.write("\nEDITED = 'from the source'\n")
    matched, stdout = imported_from(runtime_pythons["3.13"], folder,
                                    "import sealed_secrets.errors as e; print(e.EDITED)")
    assert matched == set(HELPER_MODULES) - {"errors"}
    assert stdout.strip() == "from the source"


def test_a_package_for_one_runtime_carries_no_other_runtimes_bytecode(tmp_path):
    folder = unpacked(tmp_path, "python3.11")
    assert {path.name.split(".")[1] for path in (folder / "sealed_secrets" / "__pycache__").iterdir()} == {"cpython-311"}

