"""build.py without the network: rendering, the source folder rule (and Terraform's agreement with it),
template names, determinism, and every bad input (one error line, exit 2, nothing written, no blob echoed).
Dependencies with real pip and PyPI are in test_build_dependencies.py."""

from __future__ import annotations

import ast
import base64
import hashlib
import io
import json
import keyword
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

import build

BLOB = bytes(range(256)) * 2  # stands in for a KMS CiphertextBlob
BLOB_B64 = base64.b64encode(BLOB).decode()
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"  # AWS's documented example
KEY = f"--key-arn={KEY_ARN}"  # as package.tf passes it
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TREE = FIXTURES / "source_tree"
# What the fixture folder packages: everything but dotfiles and dot-directories, at any depth.
TREE_FILES = ["README.md", "app/__init__.py", "app/core.py", "app/data/config.json", "app/data/données [1].txt",
              "app/sub/__init__.py", "app/sub/deep/__init__.py", "app/sub/deep/leaf.py", "handler.py.tmpl"]


def run_build(*args: str, cwd: Path, env: dict[str, str] | None = None, umask: int | None = None,
              script: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(script or build.HERE / "build.py"), *args], check=False,
        cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )


def copy_tree(destination: Path) -> Path:
    """The fixture source folder, plus the bytecode that a local run leaves (never committed)."""
    shutil.copytree(TREE, destination)
    (destination / "app" / "__pycache__").mkdir()
    (destination / "app" / "__pycache__" / "core.cpython-313.pyc").write_bytes(b"\x00bytecode")
    (destination / "stray.pyc").write_bytes(b"\x00bytecode")
    return destination


def zip_names(data: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return archive.namelist()


# --- pure functions ------------------------------------------------------------------------

def test_render_substitutes_a_sorted_dict_literal_for_the_one_placeholder():
    rendered = build.render_handler("X = __SEALED_CIPHERTEXTS__\n", {"b": "Qg==", "a": "QQ=="})
    assert rendered == "X = {\n    'a': 'QQ==',\n    'b': 'Qg==',\n}\n"
    assert ast.literal_eval(rendered.split("=", 1)[1].strip()) == {"a": "QQ==", "b": "Qg=="}


@pytest.mark.parametrize("template", ["no placeholder here", "__SEALED_CIPHERTEXTS__ __SEALED_CIPHERTEXTS__"])
def test_render_requires_exactly_one_placeholder(template):
    with pytest.raises(build.BuildError, match="exactly once"):
        build.render_handler(template, {"a": "QQ=="})


def test_the_key_arn_is_rendered_as_a_string_literal_in_place_of_its_one_placeholder():
    template = "K = __SEALED_KEY_ARN__\nX = __SEALED_CIPHERTEXTS__\n"
    rendered = build.render_handler(template, {"x__SEALED_KEY_ARN__": "QQ=="}, KEY_ARN)  # a name holding it stays
    assert rendered == f"K = {KEY_ARN!r}\nX = {{\n    'x__SEALED_KEY_ARN__': 'QQ==',\n}}\n"


@pytest.mark.parametrize(("template", "key_arn", "message"), [
    ("X = __SEALED_CIPHERTEXTS__", KEY_ARN, "must contain __SEALED_KEY_ARN__ exactly once (found 0)"),
    ("K = [__SEALED_KEY_ARN__, __SEALED_KEY_ARN__]\nX = __SEALED_CIPHERTEXTS__", KEY_ARN, "exactly once (found 2)"),
    ("K = __SEALED_KEY_ARN__\nX = __SEALED_CIPHERTEXTS__", None, "holds __SEALED_KEY_ARN__ but no key was given"),
])
def test_the_key_placeholder_is_there_exactly_when_a_key_is_given(template, key_arn, message):
    with pytest.raises(build.BuildError, match=re.escape(message)):
        build.render_handler(template, {"a": "QQ=="}, key_arn)


@pytest.mark.parametrize("key_arn", [
    "arn:aws:kms:us-east-1:111122223333:alias/orders-api-secrets",  # an alias follows whichever key it names
    "1234abcd-12ab-34cd-56ef-1234567890ab", "alias/orders-api-secrets", "",
    f"{KEY_ARN}'; import os; '", f"{KEY_ARN}\n",
])
def test_the_key_must_be_a_key_arn(key_arn):
    with pytest.raises(build.BuildError, match="--key-arn is not a KMS key ARN"):
        build.render_handler("K = __SEALED_KEY_ARN__\nX = __SEALED_CIPHERTEXTS__", {"a": "QQ=="}, key_arn)


@pytest.mark.parametrize("key_arn", [
    KEY_ARN, "arn:aws-cn:kms:cn-north-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab",  # multi-Region
])
def test_key_arns_of_every_partition_and_form_are_accepted(key_arn):
    rendered = build.render_handler("K = __SEALED_KEY_ARN__\nX = __SEALED_CIPHERTEXTS__", {"a": "QQ=="}, key_arn)
    assert ast.literal_eval(rendered.splitlines()[0].split("=", 1)[1].strip()) == key_arn


def test_a_template_with_the_key_placeholder_and_no_key_arn_is_one_error_line(tmp_path):
    result = run_build(f"--ciphertext=credential={BLOB_B64}", f"--output={tmp_path / 'fn.zip'}", cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == "" and not (tmp_path / "fn.zip").exists()
    assert result.stderr == ("error: the handler template holds __SEALED_KEY_ARN__ but no key was given; pass "
                             "--key-arn=ARN (the module's kms_key_arn output)\n")


def test_shipped_template_renders_to_valid_python_that_registers_the_ciphertexts(root):
    # lambda_src is the default source folder: its sealed_secrets/ IS the helper, not a conflict.
    entries = build.source_tree(root / "lambda_src" / "handler.py.tmpl", {"credential": BLOB_B64}, KEY_ARN).files
    assert "handler.py.tmpl" not in entries
    assert {"handler.py", "sealed_secrets/__init__.py"} <= set(entries)
    assert {path: data for path, data in entries.items() if path.startswith("sealed_secrets")} == helper_files(root)
    tree = ast.parse(entries["handler.py"])
    literal = next(node.value for node in tree.body
                   if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SEALED_CIPHERTEXTS")
    assert ast.literal_eval(literal) == {"credential": BLOB_B64}
    key = next(node.value for node in tree.body
               if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "SEALED_KEY_ARN")
    assert ast.literal_eval(key) == KEY_ARN and b"key_id=SEALED_KEY_ARN" in entries["handler.py"]


def test_collect_canonicalises_base64_and_reads_raw_blob_files(tmp_path):
    blob_file = tmp_path / "blob.bin"
    blob_file.write_bytes(BLOB)
    got = build.collect_ciphertexts([f"a={BLOB_B64}\n"], [f"b={blob_file}"])
    assert got == {"a": BLOB_B64, "b": BLOB_B64}


def test_zip_has_fixed_order_times_and_modes():
    data = build.build_zip({"z.py": b"z", "a.py": b"a", "bin/tool": b"#!"}, {"bin/tool"})
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == ["a.py", "bin/tool", "z.py"]  # files only, no directory entries
    assert {info.date_time for info in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {info.filename: info.external_attr >> 16 for info in infos} == {
        "a.py": 0o100644, "bin/tool": 0o100755, "z.py": 0o100644}
    assert {info.compress_type for info in infos} == {zipfile.ZIP_DEFLATED}
    assert build.build_zip({"bin/tool": b"#!", "a.py": b"a", "z.py": b"z"}, {"bin/tool"}) == data


def test_code_sha256_is_lambdas_base64_form():
    assert build.code_sha256(b"") == "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


# --- build_rules.json: the one place the rules are written ------------------------------------

def test_the_rules_come_from_build_rules_json_and_nowhere_else(root):
    raw = json.loads((root / "build_rules.json").read_text())
    source = (root / "build.py").read_text()
    for field in ("exclude", "secret_name", "terraform_files"):
        assert getattr(build.rules(), field).pattern == raw[field]
        assert raw[field] not in source and raw[field] not in (root / "package.tf").read_text()  # written once


@pytest.mark.parametrize("path, excluded", [
    (".env", True), (".git/config", True), ("app/.hidden/x.py", True), ("a/b/.DS_Store", True),
    ("__pycache__/m.cpython-313.pyc", True), ("app/__pycache__/notes.txt", True), ("stray.pyc", True),
    ("app/deep/m.pyc", True), ("handler.py", False), ("app/data/config.json", False), ("a.b/c.py", False),
    ("my__pycache__/x.py", False), ("app/x.pyc.txt", False), ("app/x.pyco", False)
])
def test_the_exclude_rule(path, excluded):
    assert (build.rules().exclude.search(path) is not None) is excluded


@pytest.mark.parametrize("folder", [".git/", "a/.venv/", "__pycache__/", "x/y/__pycache__/", "a/.b.c/"])
def test_a_folder_the_rule_leaves_out_leaves_out_everything_in_it(folder):
    """build.py does not descend into such a folder; Terraform lists it and drops each file: the same."""
    exclude = build.rules().exclude
    assert exclude.search(folder)
    assert all(exclude.search(folder + rest) for rest in ["a", "b/c.py", "keep.txt", "d/e/f.json"])


def test_source_files_is_the_whole_folder_less_dotfiles_bytecode_and_nothing_else(tmp_path):
    source = copy_tree(tmp_path / "src")
    assert build.source_files(source) == TREE_FILES


@pytest.mark.terraform
def test_terraform_computes_the_same_file_list_from_the_same_rule(tmp_path, root):
    """The module's fingerprint uses fileset() filtered by the rule; it must list what build.py packages."""
    source = copy_tree(tmp_path / "src")
    expression = (f'jsonencode([for f in fileset("{source}", "**") : f '
                  f'if !can(regex(jsondecode(file("{root / "build_rules.json"}")).exclude, f))])\n')
    result = subprocess.run(["terraform", "console"], check=False, input=expression, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(json.loads(json.loads(result.stdout.strip()))) == build.source_files(source) == TREE_FILES


def test_links_are_refused_not_followed_unless_the_rule_leaves_them_out(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(TREE, source)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("outside the source folder")
    (source / ".venv" / "bin").mkdir(parents=True)
    (source / ".venv" / "bin" / "python").symlink_to(sys.executable)  # left out by the rule: fine
    (source / ".venv" / "lib64").symlink_to(outside)
    os.mkfifo(source / ".venv" / "pipe")
    assert build.source_files(source) == TREE_FILES
    for name, target in [("app/linked.txt", outside / "secret.txt"), ("app/linked_dir", outside),
                         ("dangling.py", tmp_path / "nowhere")]:
        (source / name).symlink_to(target)
        with pytest.raises(build.BuildError, match="symbolic link"):
            build.source_files(source)
        (source / name).unlink()


def test_special_files_and_odd_names_are_refused(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(TREE, source)
    os.mkfifo(source / "app" / "pipe")
    with pytest.raises(build.BuildError, match="not a regular file"):
        build.source_files(source)
    (source / "app" / "pipe").unlink()
    for name in ["new\nline.txt", "back\\slash.txt", os.fsdecode(b"latin1-\xe9.txt")]:
        (source / name).write_text("x")
        with pytest.raises(build.BuildError, match="rename it"):
            build.source_files(source)
        (source / name).unlink()


@pytest.mark.parametrize("name, module", [("handler.py.tmpl", "handler"), ("api_v2.py.tmpl", "api_v2"),
                                          ("_private.py.tmpl", "_private"), ("match.py.tmpl", "match")])
def test_template_names_give_an_importable_module(name, module):
    assert build.handler_module(Path(name)) == module


@pytest.mark.parametrize("name", ["a.b.py.tmpl", "1x.py.tmpl", "class.py.tmpl", "my-handler.py.tmpl",
                                  "héllo.py.tmpl", "handler.tmpl", "handler.py", ".py.tmpl",
                                  "sealed_secrets.py.tmpl"])
def test_template_names_that_lambda_cannot_import_or_that_shadow_the_helper_are_refused(name):
    with pytest.raises(build.BuildError, match="cannot import|a path to <module>.py.tmpl|runtime helper"):
        build.handler_module(Path(name))


def test_a_whole_source_folder_is_packaged_with_the_rendered_handler_and_the_helper(tmp_path, root):
    source = copy_tree(tmp_path / "src")
    entries = build.source_tree(source / "handler.py.tmpl", {"token": BLOB_B64}, KEY_ARN).files
    expected = [name for name in TREE_FILES if name != "handler.py.tmpl"] + ["handler.py", *helper_files(root)]
    assert sorted(entries) == sorted(expected)
    assert entries["app/data/données [1].txt"] == "donnée\n".encode()
    assert {path: entries[path] for path in helper_files(root)} == helper_files(root)
    assert "Grüße" in entries["handler.py"].decode("utf-8")  # a UTF-8 template with non-ASCII comments


def test_the_unzipped_package_imports_its_subpackages_and_reads_its_data(tmp_path):
    source = copy_tree(tmp_path / "src")
    unpacked = tmp_path / "task"
    package, _ = build.build_package(source / "handler.py.tmpl", {"token": BLOB_B64}, key_arn=KEY_ARN)
    with zipfile.ZipFile(io.BytesIO(package)) as z:
        z.extractall(unpacked)
    probe = "import json, handler; print(json.dumps(handler.handler({}, None), sort_keys=True))"
    result = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(unpacked)!r}); {probe}"],
                            check=False, capture_output=True, text=True, cwd=unpacked, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"names": ["token"], "core": "core", "leaf": 3,
                                         "config": {"greeting": "hello"}}


@pytest.mark.parametrize("name, content, message", [
    ("handler.py", "x = 1\n", "shadow the handler"),
    ("handler/__init__.py", "", "shadow the handler"),
    ("handler.cpython-313-x86_64-linux-gnu.so", "", "shadow the handler"),
    ("sealed_secrets.py", "def get_secret(name): return 'pwned'\n", "replace the runtime helper"),
    ("sealed_secrets/__init__.py", "", "shadow the runtime helper"),
])
def test_nothing_in_the_source_folder_may_shadow_the_handler_or_the_helper(tmp_path, name, content, message):
    source = tmp_path / "src"
    shutil.copytree(TREE, source)
    (source / name).parent.mkdir(parents=True, exist_ok=True)
    (source / name).write_text(content)
    with pytest.raises(build.BuildError, match=message):
        build.source_tree(source / "handler.py.tmpl", {"token": BLOB_B64}, KEY_ARN).files


def test_a_copy_of_the_helper_in_the_source_folder_is_the_helper(tmp_path, root):
    source = tmp_path / "src"
    shutil.copytree(TREE, source)
    shutil.copytree(root / "lambda_src" / "sealed_secrets", source / "sealed_secrets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    entries = build.source_tree(source / "handler.py.tmpl", {"token": BLOB_B64}, KEY_ARN).files
    assert {path: entries[path] for path in helper_files(root)} == helper_files(root)


def test_a_changed_copy_of_the_helper_in_the_source_folder_is_refused(tmp_path, root):
    source = tmp_path / "src"
    shutil.copytree(TREE, source)
    shutil.copytree(root / "lambda_src" / "sealed_secrets", source / "sealed_secrets",
                    ignore=shutil.ignore_patterns("__pycache__"))
    (source / "sealed_secrets" / "cache.py").write_text("def get_secret(name): return 'pwned'\n")
    with pytest.raises(build.BuildError, match="'sealed_secrets', which would shadow the runtime helper"):
        build.source_tree(source / "handler.py.tmpl", {"token": BLOB_B64}, KEY_ARN).files


def helper_files(root: Path) -> dict[str, bytes]:
    """The runtime helper as it is on disk: every file of lambda_src/sealed_secrets/ but bytecode."""
    folder = root / "lambda_src" / "sealed_secrets"
    return {f"sealed_secrets/{path.relative_to(folder).as_posix()}": path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file() and "__pycache__" not in path.parts}


def test_dependencies_may_not_collide_with_the_source():
    source = build.Tree({"util.py": b"", "handler.py": b"", "sealed_secrets.py": b""}, frozenset(), {})
    for dependency in ["util.py", "util/__init__.py", "handler/__init__.py", "sealed_secrets.cpython-313.so"]:
        deps = build.Tree({dependency: b""}, frozenset(), {dependency.split("/")[0]: "evil==1.0"})
        with pytest.raises(build.BuildError, match="evil==1.0.*collides"):
            build.merge(source, deps)
    merged = build.merge(source, build.Tree({"idna/__init__.py": b"x"}, frozenset({"idna/__init__.py"}), {}))
    assert sorted(merged.files) == ["handler.py", "idna/__init__.py", "sealed_secrets.py", "util.py"]
    assert merged.executables == {"idna/__init__.py"}


# --- requirements.txt and the pip command (no network here) ----------------------------------

def test_requirements_must_be_a_full_lock_of_exact_pins():
    text = ("# a pip-compile lock\n"
            "Jinja2==3.1.4 \\\n    --hash=sha256:" + "ab" * 32 + " \\\n    --hash SHA256:" + "CD" * 32 + "\n"
            "    # via -r requirements.in\n"
            "markupsafe == 3.0.2  # inline comment\n"
            "requests[socks]==2.32.3\n"
            'exceptiongroup==1.2.2 ; python_version < "3.11"\n'
            "zope.interface==7.1.1\n\n")
    pins = build.parse_requirements(text)
    assert {pin.name: pin.version for pin in pins} == {"jinja2": "3.1.4", "markupsafe": "3.0.2", "requests": "2.32.3",
                                                       "exceptiongroup": "1.2.2", "zope-interface": "7.1.1"}
    assert pins[0].hashes == ("sha256:" + "ab" * 32, "sha256:" + "cd" * 32)
    assert pins[2].extras == ("socks",) and pins[3].marker == 'python_version < "3.11"'
    # what pip reads is written from these fields: no marker (decided for the runtime), no other option
    active = build.active_pins(pins, "python3.13", "x86_64")
    assert "exceptiongroup" not in active
    assert build.lock_text(active) == ("jinja2==3.1.4 --hash=sha256:" + "ab" * 32 + " --hash=sha256:" + "cd" * 32 +
                                       "\nmarkupsafe==3.0.2\nrequests[socks]==2.32.3\nzope-interface==7.1.1\n")
    assert "exceptiongroup" in build.active_pins(pins, "python3.10", "arm64")


@pytest.mark.parametrize("line, message", [
    ("requests", "requests is not pinned"), ("requests>=2.0", "requests is not pinned"),
    ("requests==2.*", "requests is not pinned"), ("requests~=2.32", "requests is not pinned"),
    ("requests===2.32.3", "requests is not pinned"), ("requests==2.32.3,<3", "requests is not pinned"),
    ("-r other.txt", "option -r is not accepted (includes)"), ("-c constraints.txt", "option -c is not accepted"),
    ("--index-url https://user:token@mirror/simple", "option --index-url"),
    ("-e .", "option -e is not accepted (editables)"), ("pkg @ https://user:token@host/pkg.whl", "URLs and paths"),
    ("./local", "URLs and paths"), ("pkg @ file:///tmp/token/pkg.whl", "URLs and paths"),
    ("/tmp/token/pkg-1.0-py3-none-any.whl", "URLs and paths"),
    ("idna==${TOKEN}", "environment-variable references"),
    ("idna==3.10 --no-binary=:all:", "option --no-binary is not accepted"),
    ('idna==3.10 ; python_version >= "3" --only-binary=:none:', "option --only-binary is not accepted"),
    ("idna==3.10 --hash=md5:0123", "--hash takes sha256:"), ("--hash=sha256:" + "0" * 64, "needs a name==version"),
    ("idna==3.10 --pre", "option --pre is not accepted"),
])
def test_unpinned_lines_and_options_are_refused_by_line_without_echoing_them(line, message):
    with pytest.raises(build.BuildError, match=re.escape(message)) as raised:
        build.parse_requirements(f"idna==3.10\n{line}\n")
    assert "line 2" in str(raised.value)
    assert "token" not in str(raised.value).lower()


def test_a_line_is_numbered_by_its_first_physical_line_as_pip_numbers_it():
    text = "idna==3.10 \\\n    --hash=sha256:" + "ab" * 32 + "\n# comment\n\njinja2==3.1.4 \\\n  --no-deps\n"
    with pytest.raises(build.BuildError, match=r"line 5: option --no-deps is not accepted"):
        build.parse_requirements(text)
    assert [pin.line for pin in build.parse_requirements("a==1 \\\n --hash=sha256:" + "0" * 64 + "\nb==2")] == [1, 3]


def test_a_name_pinned_twice_for_the_runtime_is_refused_and_markers_may_split_it():
    pins = build.parse_requirements('idna==3.7 ; python_version < "3.12"\nidna==3.10 ; python_version >= "3.12"\n')
    assert build.active_pins(pins, "python3.11", "x86_64")["idna"].version == "3.7"
    assert build.active_pins(pins, "python3.13", "x86_64")["idna"].version == "3.10"
    with pytest.raises(build.BuildError, match="line 2: idna is pinned twice"):
        build.active_pins(build.parse_requirements("idna==3.7\nIDNA==3.10\n"), "python3.13", "x86_64")


def test_platform_tags_follow_the_runtimes_amazon_linux():
    al2023 = build.platform_tags("python3.12", "x86_64")
    assert al2023[0] == "manylinux_2_34_x86_64" and al2023[-1] == "manylinux1_x86_64"
    assert {"manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux2010_x86_64"} <= set(al2023)
    al2 = build.platform_tags("python3.11", "arm64")
    assert al2[0] == "manylinux_2_26_aarch64" and al2[-1] == "manylinux2014_aarch64"
    assert not any("2_27" in tag or "2_34" in tag or "x86_64" in tag for tag in al2)
    assert build.platform_tags("python3.10", "x86_64")[0] == "manylinux_2_26_x86_64"


def test_pip_runs_isolated_as_an_argument_list_for_the_target_not_the_host(tmp_path):
    command = build.pip_command("/py", tmp_path / "req s.txt", tmp_path / "t", "python3.12", "arm64",
                                ["--index-url=https://mirror/simple"])
    assert command[:3] == ["/py", "-I", "-c"]
    assert {"download", "--isolated", "--only-binary=:all:", "--python-version=3.12", "--implementation=cp",
            "--abi=cp312", "--no-cache-dir", "--platform=manylinux_2_34_aarch64",
            f"--requirement={tmp_path / 'req s.txt'}", "--index-url=https://mirror/simple"} <= set(command)
    assert not [arg for arg in command if "binary" in arg and arg != "--only-binary=:all:"]
    markers = json.loads(command[4])
    assert markers["python_version"] == "3.12" and markers["platform_machine"] == "aarch64"
    assert markers["sys_platform"] == "linux"


def test_pip_sees_no_pip_variable_and_is_told_only_where_packages_come_from():
    environ = {"PATH": "/bin", "PIP_INDEX_URL": "https://mirror/simple", "HTTPS_PROXY": "http://p",
               "PIP_EXTRA_INDEX_URL": "https://a/simple https://b/simple", "PIP_NO_INDEX": "0", "PIP_RETRIES": "1",
               "PIP_CONSTRAINT": "/etc/c.txt", "PIP_NO_BINARY": ":all:", "PIP_ONLY_BINARY": ":none:", "PIP_PRE": "1",
               "PIP_NO_DEPS": "1", "PYTHONPATH": "/evil", "PIP_TARGET": "/x", "AWS_SECRET": "s",
               "PIP_CONFIG_FILE": "/evil/pip.conf", "PIP_REQUIRE_VIRTUALENV": "1"}
    assert build.pip_environment(environ) == {"PATH": "/bin", "HTTPS_PROXY": "http://p", "PIP_CONFIG_FILE": os.devnull,
                                              "PYTHONDONTWRITEBYTECODE": "1"}
    assert build.pip_sources(environ) == ["--index-url=https://mirror/simple", "--extra-index-url=https://a/simple",
                                          "--extra-index-url=https://b/simple", "--retries=1"]
    assert build.pip_sources({"PIP_NO_INDEX": "true", "PIP_FIND_LINKS": ""}) == ["--no-index"]


def test_the_cache_folder_follows_the_documented_order(tmp_path):
    assert build.default_cache_dir({"SEALED_BUILD_CACHE_DIR": "/a", "XDG_CACHE_HOME": "/b"}) == Path("/a")
    assert build.default_cache_dir({"XDG_CACHE_HOME": "/b"}) == Path("/b/sealed-lambda-build")
    assert build.default_cache_dir({}) == Path.home() / ".cache" / "sealed-lambda-build"


def test_the_cache_key_names_the_lock_the_runtime_and_the_architecture():
    key = build.cache_key(b"idna==3.10\n", "python3.13", "x86_64")
    assert key == build.cache_key(b"idna==3.10\n", "python3.13", "x86_64")
    assert len({key, build.cache_key(b"idna==3.9\n", "python3.13", "x86_64"),
                build.cache_key(b"idna==3.10\n", "python3.12", "x86_64"),
                build.cache_key(b"idna==3.10\n", "python3.13", "arm64")}) == 4


def make_wheel(name: str, version: str, files: dict[str, bytes], executables: frozenset[str] = frozenset()) -> bytes:
    """A wheel as a build backend writes one (never installed by pip here: build.py unpacks it)."""
    members = {**files, f"{name}-{version}.dist-info/METADATA": f"Name: {name}\nVersion: {version}\n".encode(),
               f"{name}-{version}.dist-info/RECORD": b"", f"{name}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\n"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data in members.items():
            info = zipfile.ZipInfo(member)
            info.external_attr = (0o100755 if member in executables else 0o100644) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


PKG_WHEEL = make_wheel("pkg", "1.0", {"pkg/__init__.py": b"x", "pkg-1.0.data/purelib/pkg/extra.py": b"y",
                                      "pkg-1.0.data/scripts/tool": b"#!", "pkg/run.sh": b"#!"},
                       frozenset({"pkg/run.sh", "pkg-1.0.data/scripts/tool"}))


def pins_of(text: str) -> dict[str, build.Pin]:
    return build.active_pins(build.parse_requirements(text), "python3.13", "x86_64")


def test_wheels_are_unpacked_as_pip_installs_them_and_only_at_their_pinned_version():
    tree = build.wheels_tree({"pkg-1.0-py3-none-any.whl": PKG_WHEEL}, pins_of("pkg==1.0\n"))
    assert sorted(tree.files) == ["pkg-1.0.dist-info/METADATA", "pkg-1.0.dist-info/WHEEL", "pkg/__init__.py",
                                  "pkg/extra.py", "pkg/run.sh"]
    assert tree.executables == {"pkg/run.sh"} and tree.owners["pkg"] == "pkg==1.0"
    for lock in ["pkg==1.1\n", "other==1.0\n", 'pkg==1.0 ; python_version < "3"\n']:
        with pytest.raises(build.BuildError, match="must pin every package pip installs.*add pkg==1.0"):
            build.wheels_tree({"pkg-1.0-py3-none-any.whl": PKG_WHEEL}, pins_of(lock))
    evil = make_wheel("pkg", "1.0", {"../escape.py": b""})
    with pytest.raises(build.BuildError, match="outside its folder"):
        build.wheels_tree({"pkg-1.0-py3-none-any.whl": evil}, pins_of("pkg==1.0\n"))


def test_a_wheel_that_does_not_match_its_hash_is_refused():
    digest = hashlib.sha256(PKG_WHEEL).hexdigest()
    good = pins_of(f"pkg==1.0 --hash=sha256:{digest}\n")
    assert build.hashes_match({"pkg-1.0-py3-none-any.whl": PKG_WHEEL}, good)
    bad = pins_of(f"pkg==1.0 --hash=sha256:{'0' * 64}\n")
    assert not build.hashes_match({"pkg-1.0-py3-none-any.whl": PKG_WHEEL}, bad)
    with pytest.raises(build.BuildError, match="pkg==1.0: the downloaded file does not match the --hash"):
        build.wheels_tree({"pkg-1.0-py3-none-any.whl": PKG_WHEEL}, bad)


def test_a_cache_entry_round_trips_and_a_damaged_tampered_or_foreign_one_is_a_miss(tmp_path):
    wheels = {"pkg-1.0-py3-none-any.whl": PKG_WHEEL}
    entry = tmp_path / "cache" / "deps-k.zip"
    build.store_cached(entry, "k", wheels)
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert build.load_cached(entry, "k") == wheels
    assert build.load_cached(entry, "other key") is None
    digest = entry.with_name(entry.name + ".sha256")
    good = entry.read_bytes()
    entry.write_bytes(good.replace(b"pkg/__init__.py", b"pkg/__init__.pz"))  # same size, another file
    assert build.load_cached(entry, "k") is None
    entry.write_bytes(good)
    digest.unlink()
    assert build.load_cached(entry, "k") is None
    build.store_cached(entry, "k", wheels)
    entry.write_bytes(entry.read_bytes()[:100])
    assert build.load_cached(entry, "k") is None
    assert build.load_cached(tmp_path / "absent.zip", "k") is None


@pytest.mark.parametrize("mode, message", [(0o770, "writable by others"), (0o707, "writable by others")])
def test_a_cache_folder_others_can_write_is_refused(tmp_path, mode, message):
    folder = tmp_path / "cache"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(build.BuildError, match=f"the dependency cache .* is {message} .*chmod go-w"):
        build.check_cache_dir(folder)
    folder.chmod(0o755)
    build.check_cache_dir(folder)


def test_a_cache_folder_of_another_user_is_refused(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(os, "geteuid", lambda: folder.stat().st_uid + 1)
    with pytest.raises(build.BuildError, match="belongs to another user"):
        build.check_cache_dir(folder)


def installed_source(tmp_path: Path, monkeypatch, wheels: dict[str, bytes], lock: str = "pkg==1.0\n") -> Path:
    """A source folder with a requirements.txt whose download (pip, stubbed here) gives ``wheels``."""
    source = tmp_path / "src"
    shutil.copytree(TREE, source)
    (source / "requirements.txt").write_text(lock)
    monkeypatch.setattr(build, "download_wheels", lambda *args: wheels)
    return source / "handler.py.tmpl"


def test_a_fresh_download_is_cached_only_once_the_whole_package_is_good(tmp_path, monkeypatch, capsys):
    clash = {"app-1.0-py3-none-any.whl": make_wheel("app", "1.0", {"app/__init__.py": b"evil"})}
    template, cache = installed_source(tmp_path, monkeypatch, clash, "app==1.0\n"), tmp_path / "cache"
    args = [f"--ciphertext=credential={BLOB_B64}", KEY, f"--template={template}", f"--output={tmp_path / 'fn.zip'}"]
    assert build.main([*args, f"--cache-dir={cache}"]) == 2
    assert "app==1.0" in capsys.readouterr().err
    assert not cache.exists() and not (tmp_path / "fn.zip").exists()
    (template.parent / "requirements.txt").write_text("pkg==1.0\n")
    monkeypatch.setattr(build, "download_wheels", lambda *args: {"pkg-1.0-py3-none-any.whl": PKG_WHEEL})
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    assert build.main([*args, f"--cache-dir={not_a_folder / 'cache'}"]) == 2
    assert capsys.readouterr().err.startswith("error: cannot write the dependency cache")
    assert not (tmp_path / "fn.zip").exists()
    assert build.main([*args, f"--cache-dir={cache}"]) == 0
    key = build.cache_key(b"pkg==1.0\n", "python3.13", "x86_64")
    assert sorted(path.name for path in cache.iterdir()) == [f"deps-{key}.zip", f"deps-{key}.zip.sha256"]
    assert "pkg/__init__.py" in zip_names((tmp_path / "fn.zip").read_bytes())


def test_every_size_limit_is_reported_by_one_path_naming_the_largest_parts(monkeypatch, tmp_path):
    mb = 2**20
    sizes = {"numpy/core.so": 200 * mb, "numpy/x.py": 10 * mb, "idna/__init__.py": 5 * mb, "app.py": mb}
    with pytest.raises(build.BuildError, match=re.escape(
            "the package unzips to 226492416 bytes, over Lambda's unzipped limit of 104857600 bytes (largest: "
            "numpy==2.1.3 210.00 MB, idna==3.10 5.00 MB, app.py 1.00 MB); drop packages from requirements.txt, move "
            "them to a Lambda layer, or move large files out of the source folder")):
        build.check_size("the package unzips to", sum(sizes.values()), 100 * mb, "unzipped", sizes,
                         {"numpy": "numpy==2.1.3", "idna": "idna==3.10"})
    build.check_size("at the limit", 100 * mb, 100 * mb, "unzipped", sizes, {})  # the limit itself is allowed
    source = tmp_path / "src"
    shutil.copytree(TREE, source)
    (source / "app" / "data" / "noise.bin").write_bytes(os.urandom(300_000))
    monkeypatch.setattr(build, "MAX_ZIPPED_BYTES", 200_000)
    with pytest.raises(build.BuildError, match=r"the zip is 3\d{5} bytes, over Lambda's zipped \(direct upload\) "
                                               r"limit of 200000 bytes \(largest: app/data/noise\.bin 0\.29 MB"):
        build.build_package(source / "handler.py.tmpl", {"token": BLOB_B64}, key_arn=KEY_ARN)
    monkeypatch.setattr(build, "MAX_UNZIPPED_BYTES", 250_000)
    with pytest.raises(build.BuildError, match=r"holds 3\d{5} bytes, over Lambda's unzipped limit of 250000 bytes "
                                               r"\(largest: app/data/noise\.bin"):
        build.build_package(source / "handler.py.tmpl", {"token": BLOB_B64}, key_arn=KEY_ARN)
    big = {"big-1.0-py3-none-any.whl": make_wheel("big", "1.0", {"big/blob.bin": b"\0" * 300_000})}
    with pytest.raises(build.BuildError, match=r"requirements.txt installs 3\d{5} bytes, over Lambda's unzipped "
                                               r"limit of 250000 bytes \(largest: big==1.0 0\.29 MB"):
        build.wheels_tree(big, pins_of("big==1.0\n"))


def test_no_function_of_build_py_is_used_only_by_the_tests(root):
    """Every top-level function build.py defines is called by build.py itself (source_files too: it lists
    the helper's folder, and Terraform's fileset() must agree with it, as tests/test_terraform.py proves)."""
    source = (root / "build.py").read_text()
    tree = ast.parse(source)
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)} | {
        node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert defined - used == set(), sorted(defined - used)


# --- the CLI -------------------------------------------------------------------------------

def copy_project(destination: Path, root: Path) -> Path:
    shutil.copy2(root / "build.py", destination / "build.py")
    shutil.copy2(root / "build_rules.json", destination / "build_rules.json")
    shutil.copytree(root / "lambda_src", destination / "lambda_src", ignore=shutil.ignore_patterns("__pycache__"))
    return destination / "build.py"


def test_cli_writes_the_zip_and_prints_its_hash_last(tmp_path, root):
    result = run_build(f"--ciphertext=credential={BLOB_B64}", KEY, "--output=out/fn.zip", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    data = (tmp_path / "out" / "fn.zip").read_bytes()
    assert result.stdout.splitlines()[-1] == build.code_sha256(data)
    assert result.stderr == ""
    assert oct((tmp_path / "out" / "fn.zip").stat().st_mode & 0o777) == oct(0o644)


def test_same_inputs_give_the_same_bytes_across_directories_umasks_timezones_and_mtimes(tmp_path, root):
    first, second = tmp_path / "first", tmp_path / "second dir"
    first.mkdir(), second.mkdir()
    script_a, script_b = copy_project(first, root), copy_project(second, root)
    copy_tree(first / "src")
    tree_b = copy_tree(second / "src")
    for path in [*(second / "lambda_src").iterdir(), *tree_b.rglob("*")]:
        os.utime(path, (1_000_000_000, 1_000_000_000), follow_symlinks=False)
        path.chmod(0o700 if path.is_dir() else 0o600)  # what a checkout under umask 077 gives
    for args in [(), ("--template=src/handler.py.tmpl",)]:
        common = (f"--ciphertext=credential={BLOB_B64}", KEY, "--output=dist/lambda.zip", *args)
        a = run_build(*common, cwd=first, script=script_a, env={"TZ": "UTC"}, umask=0o022)
        b = run_build(*common, cwd=second, script=script_b, env={"TZ": "Pacific/Kiritimati"}, umask=0o077)
        assert a.returncode == b.returncode == 0, (a.stderr, b.stderr)
        assert (first / "dist/lambda.zip").read_bytes() == (second / "dist/lambda.zip").read_bytes()
        assert a.stdout == b.stdout


def test_every_supported_python_builds_the_same_bytes(tmp_path, runtime_pythons):
    """Terraform runs build.py with the user's python3: one per Lambda runtime (3.10 to 3.13) must agree."""
    source = copy_tree(tmp_path / "src")
    digests = {}
    for version, python in runtime_pythons.items():
        output = tmp_path / f"{version}.zip"
        result = subprocess.run([python, str(build.HERE / "build.py"), f"--ciphertext=credential={BLOB_B64}", KEY,
                                 f"--template={source / 'handler.py.tmpl'}", f"--output={output}"],
                                check=False, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, (python, result.stderr)
        digests[version] = result.stdout.splitlines()[-1]
    assert sorted(digests) == ["3.10", "3.11", "3.12", "3.13"]
    assert len(set(digests.values())) == 1, digests


def test_the_runtimes_and_architectures_are_listed_once(root):
    """build_rules.json is their one home: no list of them in build.py or the module's Terraform files."""
    raw = json.loads((root / "build_rules.json").read_text())
    assert list(raw["runtimes"]) == ["python3.10", "python3.11", "python3.12", "python3.13"]
    assert {name: value["glibc"] for name, value in raw["runtimes"].items()} == {
        "python3.10": "2.26", "python3.11": "2.26", "python3.12": "2.34", "python3.13": "2.34"}
    assert build.rules().architectures == {"arm64": "aarch64", "x86_64": "x86_64"}
    for name in ["build.py", *sorted(path.name for path in root.glob("*.tf"))]:
        text = (root / name).read_text()
        runtimes = set(re.findall(r"python3\.\d+", text))
        assert len(runtimes) <= 1, f"{name} names runtimes {sorted(runtimes)}: read them from build_rules.json"
        assert "aarch64" not in text, f"{name} names a machine: read it from build_rules.json"


def test_the_python_keywords_rule_is_pythons_own_list():
    assert build.rules().python_keywords == frozenset(keyword.kwlist)


def test_a_changed_data_file_rebuilds_and_touched_bytecode_does_not(tmp_path):
    source = copy_tree(tmp_path / "src")
    template, ciphertexts = source / "handler.py.tmpl", {"token": BLOB_B64}
    before, _ = build.build_package(template, ciphertexts, key_arn=KEY_ARN)
    (source / "app" / "__pycache__" / "core.cpython-313.pyc").write_bytes(b"\x00other bytecode")
    (source / "app" / "__pycache__" / "leaf.cpython-313.pyc").write_bytes(b"\x00new bytecode")
    os.utime(source / "stray.pyc", (2_000_000_000, 2_000_000_000))
    (source / ".env").write_text("CHANGED=1\n")
    assert build.build_package(template, ciphertexts, key_arn=KEY_ARN)[0] == before
    (source / "app" / "data" / "config.json").write_text('{"greeting": "changed"}\n')
    assert build.build_package(template, ciphertexts, key_arn=KEY_ARN)[0] != before


def test_a_different_ciphertext_gives_a_different_package(tmp_path):
    a = run_build(f"--ciphertext=credential={BLOB_B64}", KEY, "--output=a.zip", cwd=tmp_path)
    b = run_build(f"--ciphertext=credential={base64.b64encode(BLOB[::-1]).decode()}", KEY, "--output=b.zip", cwd=tmp_path)
    assert a.returncode == b.returncode == 0
    assert a.stdout != b.stdout


def test_space_separated_options_still_work(tmp_path):
    result = run_build("--ciphertext", f"credential={BLOB_B64}", "--key-arn", KEY_ARN, "--output", "x.zip", cwd=tmp_path)
    assert result.returncode == 0, result.stderr


def bad_inputs(tmp_path: Path) -> dict[str, Callable[[], tuple[list[str], str]]]:
    """Each bad input, made on demand: its arguments, and what its one error line must say."""
    empty, huge, fifo = tmp_path / "empty.bin", tmp_path / "huge.bin", tmp_path / "blob.fifo"
    empty.write_bytes(b"")
    huge.write_bytes(b"x" * (build.MAX_CIPHERTEXT_BYTES + 1))
    os.mkfifo(fifo)  # nobody writes to it: reading it blocking would hang forever
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("")

    def source(name: str, edit: Callable[[Path], object] | None = None, template: str = "handler.py.tmpl") -> str:
        """--template= for a copy of the fixture folder, edited."""
        folder = tmp_path / name
        shutil.copytree(TREE, folder)
        (folder / "handler.py.tmpl").rename(folder / template)
        if edit:
            edit(folder)
        return f"--template={folder / template}"

    def write(name: str, content: str | bytes) -> Callable[[Path], object]:
        data = content if isinstance(content, bytes) else content.encode()
        return lambda folder: (folder / name).write_bytes(data)

    def fifo_template(folder: Path) -> None:
        (folder / "handler.py.tmpl").unlink()
        os.mkfifo(folder / "handler.py.tmpl")

    def linked_template(folder: Path) -> None:
        (folder / "handler.py.tmpl").rename(tmp_path / "real.py.tmpl")
        (folder / "handler.py.tmpl").symlink_to(tmp_path / "real.py.tmpl")

    def huge_file(folder: Path) -> None:
        os.truncate(folder / "app" / "data" / "config.json", build.MAX_UNZIPPED_BYTES + 1)  # sparse: nothing read

    ok = f"--ciphertext=credential={BLOB_B64}"
    unimportable = "gives a module Python cannot import"
    latin1_template = "# Grüße\nX = __SEALED_CIPHERTEXTS__\n".encode("latin-1")
    latin1_lock = "idna==3.10  # é\n".encode("latin-1")
    return {
        "unknown flag": lambda: ([ok, "--frobnicate=1"], "unrecognized arguments: --frobnicate;"),
        "abbreviated flag": lambda: ([f"--cipher=credential={BLOB_B64}"], "unrecognized arguments: --cipher;"),
        "stray value": lambda: ([ok, BLOB_B64], "unrecognized arguments: a value (not shown)"),
        "missing value": lambda: ([ok, "--template"], "argument --template: expected one argument"),
        "malformed pair": lambda: ([f"--ciphertext={BLOB_B64.replace('=', '')}"], "--ciphertext takes NAME=VALUE"),
        "bare blob": lambda: (["--ciphertext", BLOB_B64.replace("=", "")], "--ciphertext takes NAME=VALUE"),
        "bare padded blob": lambda: ([f"--ciphertext={base64.b64encode(BLOB[:100]).decode()}"],  # ends in "=="
                                     "--ciphertext takes NAME=VALUE"),
        "blob as name": lambda: ([f"--ciphertext={BLOB_B64}=x"], "the text before '=' is not a valid secret name"),
        "bad name": lambda: ([f"--ciphertext=9lives={BLOB_B64}"], "the text before '=' is not a valid secret name"),
        "invalid base64": lambda: (["--ciphertext=credential=not*base64!"], "'credential' is not valid base64"),
        "duplicate name": lambda: ([ok, ok], "'credential' is given twice"),
        "empty blob": lambda: ([f"--ciphertext-file=credential={empty}"], "'credential' is empty"),
        "oversized blob": lambda: ([f"--ciphertext-file=credential={huge}"], "is 6145 bytes, over the 6144"),
        "missing blob file": lambda: ([f"--ciphertext-file=credential={tmp_path / 'nope.bin'}"], "No such file"),
        "blob file is a FIFO": lambda: ([f"--ciphertext-file=credential={fifo}"], "is not a regular file"),
        "blob file is /dev/zero": lambda: (["--ciphertext-file=credential=/dev/zero"], "is not a regular file"),
        "blob file is a folder": lambda: ([f"--ciphertext-file=credential={tmp_path}"], "is not a regular file"),
        "unknown runtime": lambda: ([ok, "--runtime=python3.9"], "runtime must be one of python3.10, python3.11,"),
        "unknown architecture": lambda: ([ok, "--architecture=amd64"], "architecture must be one of arm64, x86_64"),
        "empty output": lambda: ([ok, "--output="], "--output is empty"),
        "missing template": lambda: ([ok, f"--template={tmp_path / 'gone.py.tmpl'}"], "handler template"),
        "template without placeholder": lambda: ([ok, source("plain", write("handler.py.tmpl", "x = 1\n"))],
                                                 "exactly once (found 0)"),
        "template without key placeholder": lambda: (
            [ok, source("nokey", write("handler.py.tmpl", "X = __SEALED_CIPHERTEXTS__\n"))],
            "must contain __SEALED_KEY_ARN__ exactly once (found 0)"),
        "key given as an alias": lambda: ([ok, "--key-arn=arn:aws:kms:us-east-1:111122223333:alias/orders-api-secrets"],
                                          "--key-arn is not a KMS key ARN"),
        "template not UTF-8": lambda: ([ok, source("latin1", write("handler.py.tmpl", latin1_template))],
                                       "is not UTF-8 (byte 4)"),
        "template is a FIFO": lambda: ([ok, source("fifo", fifo_template)], "not a regular file"),
        "template is a link": lambda: ([ok, source("link", linked_template)], "is a symbolic link"),
        "template named like the helper": lambda: ([ok, source("helper", template="sealed_secrets.py.tmpl")],
                                                   "would replace the runtime helper"),
        "template a.b": lambda: ([ok, source("ab", template="a.b.py.tmpl")], unimportable),
        "template 1x": lambda: ([ok, source("digit", template="1x.py.tmpl")], unimportable),
        "template keyword": lambda: ([ok, source("keyword", template="class.py.tmpl")], unimportable),
        "template without .py": lambda: ([ok, source("nopy", template="handler.tmpl")], "a path to <module>.py.tmpl"),
        "handler.py beside the template": lambda: ([ok, source("beside", write("handler.py", "x = 1\n"))],
                                                   "'handler.py', which would shadow the handler"),
        "foreign helper in source": lambda: ([ok, source("foreign", write("sealed_secrets.py", "x = 1\n"))],
                                             "its own sealed_secrets.py"),
        "link in source": lambda: ([ok, source("symlink", lambda f: (f / "app" / "passwd").symlink_to("/etc/passwd"))],
                                   "'app/passwd' is a symbolic link"),
        "FIFO in source": lambda: ([ok, source("fifo_src", lambda f: os.mkfifo(f / "app" / "pipe"))],
                                   "'app/pipe' is not a regular file"),
        "source over 250 MB": lambda: ([ok, source("huge", huge_file)], "over Lambda's unzipped limit of 262144000 "
                                                                        "bytes (largest: app/data/config.json"),
        "output inside source": lambda: ([ok, source("inside"), f"--output={tmp_path / 'inside' / 'dist' / 'fn.zip'}"],
                                         "--output is inside the template's folder"),
        "cache inside source": lambda: ([ok, source("cache", write("requirements.txt", "idna==3.10\n")),
                                         f"--cache-dir={tmp_path / 'cache' / 'deps'}"], "--cache-dir is inside"),
        "unpinned requirement": lambda: ([ok, source("unpinned", write("requirements.txt", "idna>=3\n"))],
                                         "line 1: idna is not pinned"),
        "requirements option": lambda: ([ok, source("option", write("requirements.txt", "--extra-index-url "
                                                                    "https://user:token@evil/simple\nidna==3.10\n"))],
                                        "option --extra-index-url"),
        "requirements not UTF-8": lambda: ([ok, source("latin1_lock", write("requirements.txt", latin1_lock))],
                                           "requirements.txt is not UTF-8"),
        "unwritable output": lambda: ([ok, f"--output={not_a_dir / 'lambda.zip'}"], "cannot write"),
    }


@pytest.fixture
def bad_input(request, tmp_path):
    return bad_inputs(tmp_path)[request.param]()


def _bad_input_names() -> list[str]:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        return list(bad_inputs(Path(folder)))


@pytest.mark.parametrize("bad_input", _bad_input_names(), indirect=True)
def test_bad_input_is_one_error_line_exit_2_and_nothing_written(bad_input, tmp_path):
    args, expected = bad_input
    output = tmp_path / "out" / "lambda.zip"
    output.parent.mkdir()
    output.write_bytes(b"previous package")
    if not any(arg.startswith("--output") for arg in args):
        args = [*args, f"--output={output}"]
    if not any(arg.startswith("--cache-dir") for arg in args):
        args = [*args, f"--cache-dir={tmp_path / 'cache'}"]
    if not any(arg.startswith("--key-arn") for arg in args):
        args = [*args, KEY]
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    result = run_build(*args, cwd=tmp_path, env={"TMPDIR": str(temporary)}, timeout=30)  # a FIFO must not hang it
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert expected in lines[0]
    for blob in (BLOB_B64, base64.b64encode(BLOB[:100]).decode()):
        assert blob.rstrip("=")[:24] not in result.stderr  # ciphertexts are not echoed, not even a part
    assert "token" not in result.stderr
    assert output.read_bytes() == b"previous package"
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no stray temporary files, no cache entry


def test_without_flags_it_reads_the_terraform_output_and_fails_clearly_when_there_is_none(tmp_path, root):
    script = copy_project(tmp_path, root)
    result = run_build(cwd=tmp_path, script=script)
    assert result.returncode == 2
    assert result.stderr.startswith("error: no ciphertexts given and no Terraform output 'ciphertexts'")
    assert len(result.stderr.splitlines()) == 1


def test_help_is_not_an_error(tmp_path):
    result = run_build("--help", cwd=tmp_path)
    assert result.returncode == 0 and "--architecture" in result.stdout and "--cache-dir" in result.stdout


# --- attacks of issue 14 (each failed on the code before the fix) ------------------------------

def test_a_marker_cannot_swallow_an_option_that_would_build_a_source_distribution():
    """`; marker --no-binary=:all:` once passed the lock check, and pip then ran the sdist's build code."""
    with pytest.raises(build.BuildError, match=r"line 1: option --no-binary is not accepted"):
        build.parse_requirements('idna==3.10 ; python_version >= "3" --no-binary=:all:\n')


def test_a_folder_swapped_for_a_link_between_listing_and_reading_is_refused(tmp_path, monkeypatch):
    """The walk lists app/data/; an attacker then swaps it for a link to a folder outside the source."""
    source = tmp_path / "src"
    shutil.copytree(TREE, source)
    outside = tmp_path / "outside"
    outside.mkdir()
    for original in (source / "app" / "data").iterdir():  # the same sizes: only the content differs
        (outside / original.name).write_bytes(b"X" * original.stat().st_size)
    listed = build._walk

    def walk_then_swap(*args, **kwargs):
        found = listed(*args, **kwargs)
        if Path(args[0]) == source:
            shutil.rmtree(source / "app" / "data")
            (source / "app" / "data").symlink_to(outside)
        return found

    monkeypatch.setattr(build, "_walk", walk_then_swap)
    with pytest.raises(build.BuildError, match="changed while it was read"):
        build.build_package(source / "handler.py.tmpl", {"token": BLOB_B64})


# --- Terraform's working files (issue 14 must-show 2) -----------------------------------------

@pytest.mark.parametrize("name", ["terraform.tfstate", "terraform.tfstate.backup", "prod.tfstate",
                                  ".terraform.tfstate.lock.info", "terraform.tfvars", "prod.auto.tfvars",
                                  "secrets.tfvars.json", "release.tfplan", "tfplan", ".terraform/providers/x",
                                  "terraform.tfstate.d/dev/terraform.tfstate", "app/nested.tfvars"])
def test_a_source_folder_holding_terraform_working_files_is_refused(tmp_path, name):
    source = tmp_path / "src"
    shutil.copytree(TREE, source)
    assert build.source_files(source) == TREE_FILES
    (source / name).parent.mkdir(parents=True, exist_ok=True)
    (source / name).write_text('db_password = "hunter2"\n')
    with pytest.raises(build.BuildError, match=r"holds Terraform's working files \(.*\): the source folder is "
                                               r"packaged whole, so state, variable values or saved plans"):
        build.source_files(source)
    with pytest.raises(build.BuildError, match="holds Terraform's working files"):
        build.build_package(source / "handler.py.tmpl", {"token": BLOB_B64})


@pytest.mark.parametrize("name", ["main.tf", "variables.tf", "tfstate.md", "app/plan.py", "terraform.md",
                                  "tfvars_reader.py", "my_tfplan.txt"])
def test_terraform_sources_and_lookalikes_are_not_working_files(tmp_path, name):
    source = tmp_path / "src"
    shutil.copytree(TREE, source)
    (source / name).parent.mkdir(parents=True, exist_ok=True)
    (source / name).write_text("x\n")
    assert name in build.source_files(source)


# --- pip's failures: one table, tested on what two pip versions really print -------------------

PIP_OUTPUT = FIXTURES / "pip_output"
TARGET = "python3.13 on x86_64 (manylinux, glibc 2.34)"
PIP_CASES = {  # recorded by tests/unit/fixtures/pip_output/record.py -> the one line build.py must say
    "no_wheel": f"no wheel of docopt==0.6.2 for {TARGET}; the package may publish only a source distribution",
    "no_such_version": f"dep==9.9 has no wheel for {TARGET} at that version; versions with one include 1.0, 2.0",
    "hash_mismatch": "dep==2.0: the downloaded file does not match the --hash in requirements.txt",
    "unhashed_dependency": "requirements.txt uses --hash, so every package pip installs needs a pinned line with "
                           "its hash; add dep==2.0 with its hash",
    "conflict": "the pins in requirements.txt conflict: The user requested dep==1.0; app 1.0 depends on dep>=2;",
    "requires_another_python": "future does not support python3.13; pin a version that does",
    "unreachable": "pip could not reach the package index",
}


def test_pip_output_was_recorded_from_two_pip_versions():
    versions = sorted(path.name for path in PIP_OUTPUT.glob("pip-*"))
    assert len(versions) >= 2, versions
    for version in versions:
        assert sorted(path.stem for path in (PIP_OUTPUT / version).glob("*.txt")) == sorted(PIP_CASES), version


@pytest.mark.parametrize("version", sorted(path.name for path in PIP_OUTPUT.glob("pip-*")))
@pytest.mark.parametrize("case", sorted(PIP_CASES))
def test_each_recorded_pip_failure_is_one_line_that_says_what_to_do(version, case):
    output = (PIP_OUTPUT / version / f"{case}.txt").read_text()
    message = str(build.pip_failure(output, "python3.13", "x86_64"))
    assert PIP_CASES[case] in message
    assert "\n" not in message and len(message) <= 600


def test_a_pip_failure_no_pattern_knows_passes_pips_last_lines_through():
    output = "Looking in indexes: https://mirror/simple\nCollecting x\nERROR: a failure pip has never printed before\n"
    message = str(build.pip_failure(output, "python3.12", "arm64"))
    assert message == ("pip could not fetch requirements.txt for python3.12 on arm64 (manylinux, glibc 2.34); pip "
                       "said: Looking in indexes: https://mirror/simple / Collecting x / ERROR: a failure pip has "
                       "never printed before")
