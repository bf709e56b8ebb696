"""build.py: rendering, determinism, and every bad input (one error line, exit 2, nothing written)."""

from __future__ import annotations

import ast
import base64
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import build

BLOB = bytes(range(256)) * 2  # stands in for a KMS CiphertextBlob
BLOB_B64 = base64.b64encode(BLOB).decode()


def run_build(*args: str, cwd: Path, env: dict[str, str] | None = None, umask: int | None = None,
              script: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script or build.HERE / "build.py"), *args],
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )


# --- pure functions ------------------------------------------------------------------------

def test_render_substitutes_a_sorted_dict_literal_for_the_one_placeholder():
    rendered = build.render_handler("X = __SEALED_CIPHERTEXTS__\n", {"b": "Qg==", "a": "QQ=="})
    assert rendered == "X = {\n    'a': 'QQ==',\n    'b': 'Qg==',\n}\n"
    assert ast.literal_eval(rendered.split("=", 1)[1].strip()) == {"a": "QQ==", "b": "Qg=="}


@pytest.mark.parametrize("template", ["no placeholder here", "__SEALED_CIPHERTEXTS__ __SEALED_CIPHERTEXTS__"])
def test_render_requires_exactly_one_placeholder(template):
    with pytest.raises(build.BuildError, match="exactly once"):
        build.render_handler(template, {"a": "QQ=="})


def test_shipped_template_renders_to_valid_python_that_registers_the_ciphertexts(root):
    entries = build.package_entries(root / "lambda_src" / "handler.py.tmpl", {"credential": BLOB_B64})
    assert sorted(entries) == ["handler.py", "sealed_secrets.py"]
    tree = ast.parse(entries["handler.py"])
    literal = next(node.value for node in tree.body
                   if isinstance(node, ast.Assign) and node.targets[0].id == "SEALED_CIPHERTEXTS")
    assert ast.literal_eval(literal) == {"credential": BLOB_B64}


def test_collect_canonicalises_base64_and_reads_raw_blob_files(tmp_path):
    blob_file = tmp_path / "blob.bin"
    blob_file.write_bytes(BLOB)
    got = build.collect_ciphertexts([f"a={BLOB_B64}\n"], [f"b={blob_file}"])
    assert got == {"a": BLOB_B64, "b": BLOB_B64}


def test_zip_has_fixed_order_times_and_modes():
    data = build.build_zip({"z.py": b"z", "a.py": b"a"})
    with zipfile.ZipFile(__import__("io").BytesIO(data)) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == ["a.py", "z.py"]
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}
    assert build.build_zip({"a.py": b"a", "z.py": b"z"}) == data


def test_code_sha256_is_lambdas_base64_form():
    assert build.code_sha256(b"") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


# --- the CLI -------------------------------------------------------------------------------

def copy_project(destination: Path, root: Path) -> Path:
    shutil.copy2(root / "build.py", destination / "build.py")
    shutil.copytree(root / "lambda_src", destination / "lambda_src", ignore=shutil.ignore_patterns("__pycache__"))
    return destination / "build.py"


def test_cli_writes_the_zip_and_prints_its_hash_last(tmp_path, root):
    result = run_build("--ciphertext", f"credential={BLOB_B64}", "--output", "out/fn.zip", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = (tmp_path / "out" / "fn.zip").read_bytes()
    assert result.stdout.splitlines()[-1] == build.code_sha256(data)
    assert oct((tmp_path / "out" / "fn.zip").stat().st_mode & 0o777) == oct(0o644)


def test_same_inputs_give_the_same_bytes_across_directories_umasks_timezones_and_mtimes(tmp_path, root):
    first, second = tmp_path / "first", tmp_path / "second dir"
    first.mkdir(), second.mkdir()
    script_a, script_b = copy_project(first, root), copy_project(second, root)
    for path in (second / "lambda_src").iterdir():
        os.utime(path, (1_000_000_000, 1_000_000_000))
    args = ("--ciphertext", f"credential={BLOB_B64}", "--output", "dist/lambda.zip")
    a = run_build(*args, cwd=first, script=script_a, env={"TZ": "UTC"}, umask=0o022)
    b = run_build(*args, cwd=second, script=script_b, env={"TZ": "Pacific/Kiritimati"}, umask=0o077)
    assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
    zip_a, zip_b = (first / "dist/lambda.zip").read_bytes(), (second / "dist/lambda.zip").read_bytes()
    assert zip_a == zip_b
    assert a.stdout == b.stdout


def test_a_different_ciphertext_gives_a_different_package(tmp_path):
    a = run_build("--ciphertext", f"credential={BLOB_B64}", "--output", "a.zip", cwd=tmp_path)
    b = run_build("--ciphertext", f"credential={base64.b64encode(BLOB[::-1]).decode()}", "--output", "b.zip", cwd=tmp_path)
    assert a.stdout != b.stdout


BAD_INPUTS = ["unknown flag", "malformed pair", "bad name", "invalid base64", "duplicate name", "empty blob",
              "oversized blob", "missing blob file", "missing template", "template without placeholder",
              "unwritable output"]


def bad_inputs(tmp_path: Path) -> dict[str, list[str]]:
    empty, huge = tmp_path / "empty.bin", tmp_path / "huge.bin"
    empty.write_bytes(b"")
    huge.write_bytes(b"x" * (build.MAX_CIPHERTEXT_BYTES + 1))
    no_placeholder = tmp_path / "plain.py.tmpl"
    no_placeholder.write_text("def handler(event, context):\n    return 1\n")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")
    ok = f"credential={BLOB_B64}"
    return {
        "unknown flag": ["--ciphertext", ok, "--frobnicate"],
        "malformed pair": ["--ciphertext", BLOB_B64.replace("=", "")],
        "bad name": ["--ciphertext", f"9lives={BLOB_B64}"],
        "invalid base64": ["--ciphertext", "credential=not*base64!"],
        "duplicate name": ["--ciphertext", ok, "--ciphertext", ok],
        "empty blob": ["--ciphertext-file", f"credential={empty}"],
        "oversized blob": ["--ciphertext-file", f"credential={huge}"],
        "missing blob file": ["--ciphertext-file", f"credential={tmp_path / 'nope.bin'}"],
        "missing template": ["--ciphertext", ok, "--template", str(tmp_path / "gone.py.tmpl")],
        "template without placeholder": ["--ciphertext", ok, "--template", str(no_placeholder)],
        "unwritable output": ["--ciphertext", ok, "--output", str(not_a_dir / "lambda.zip")],
    }


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(case, tmp_path):
    args = bad_inputs(tmp_path)[case]
    output = tmp_path / "out" / "lambda.zip"
    output.parent.mkdir()
    output.write_bytes(b"previous package")
    if "--output" not in args:
        args = [*args, "--output", str(output)]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = run_build(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert BLOB_B64 not in result.stderr  # ciphertexts are not echoed
    assert output.read_bytes() == b"previous package"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # no stray temporary files


def test_without_flags_it_reads_the_terraform_output_and_fails_clearly_when_there_is_none(tmp_path, root):
    script = copy_project(tmp_path, root)
    result = run_build(cwd=tmp_path, script=script)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no ciphertexts given and no Terraform output 'ciphertexts'")


def test_a_custom_template_gets_its_neighbours_and_the_helper(tmp_path, root):
    template = tmp_path / "api.py.tmpl"
    template.write_text("import sealed_secrets, util\nsealed_secrets.register(__SEALED_CIPHERTEXTS__)\n")
    (tmp_path / "util.py").write_text("X = 1\n")
    entries = build.package_entries(template, {"token": BLOB_B64})
    assert sorted(entries) == ["api.py", "sealed_secrets.py", "util.py"]
    assert entries["sealed_secrets.py"] == (root / "lambda_src" / "sealed_secrets.py").read_bytes()
