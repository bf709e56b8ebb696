"""build.py's dependencies with real pip against PyPI (reachable here and in CI; these tests never skip):
wheels for the function's platform whatever the host, a full lock, byte-identical builds from fresh caches,
a warm cache that builds offline and without pip, and one error line for each way pip can fail."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

import build

BUILD = build.HERE / "build.py"
APP = Path(__file__).resolve().parent / "fixtures" / "markupsafe_app"  # markupsafe==3.0.2 and idna==3.10
CIPHERTEXT = f"--ciphertext=token={base64.b64encode(bytes(range(200))).decode()}"
KEY = "--key-arn=arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"  # as package.tf passes it
TEMPLATE = ("import sealed_secrets\nsealed_secrets.register(__SEALED_CIPHERTEXTS__, key_id=__SEALED_KEY_ARN__)\n\n\n"
            "def handler(event, context):\n    return None\n")
EM_X86_64, EM_AARCH64 = 62, 183  # ELF e_machine values
INSTALL_RECORDS = ("/RECORD", "/INSTALLER", "/REQUESTED", "/direct_url.json")
# idna 3.10 as `pip-compile --generate-hashes` writes it: its sdist and its wheel.
IDNA_HASHES = ("--hash=sha256:12f65c9b470abda6dc35cf8e63cc574b1c52b11df2c86030af0ac09b01b13ea9 "
               "--hash=sha256:946d195a0d259cbba61165e88e65941f16e9b36ea6ddb97f00452bae8b1287d3")


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One dependency cache for the tests that are not about a cold one."""
    return tmp_path_factory.mktemp("warm-cache")


def fresh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The caller's environment with its own empty pip cache and temporary folder."""
    for name in ("pip-cache", "tmp"):
        (tmp_path / name).mkdir(parents=True, exist_ok=True)
    return {**os.environ, "PIP_CACHE_DIR": str(tmp_path / "pip-cache"), "TMPDIR": str(tmp_path / "tmp"), **extra}


def run_build(template: Path, output: Path, cache: Path, *flags: str, env: dict[str, str],
              python: str = sys.executable, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, str(BUILD), CIPHERTEXT, KEY, f"--template={template}", f"--output={output}", f"--cache-dir={cache}",
         *flags],
        check=False, env=env, capture_output=True, text=True, timeout=600,
        cwd=output.parent if output.parent.is_dir() else None,
        preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
    )


def source_with(folder: Path, requirements: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "handler.py.tmpl").write_text(TEMPLATE)
    (folder / "requirements.txt").write_text(requirements)
    return folder / "handler.py.tmpl"


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def elf_machine(data: bytes) -> int:
    assert data[:4] == b"\x7fELF", "not an ELF file"
    assert (data[4], data[5]) == (2, 1), "not 64-bit little-endian"  # EI_CLASS, EI_DATA
    return int.from_bytes(data[18:20], "little")


def assert_one_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def assert_nothing_written(tmp_path: Path, output: Path, cache: Path) -> None:
    assert not output.exists()
    assert not cache.exists() or not any(cache.iterdir()), "a failed build wrote the cache"
    assert not any((tmp_path / "tmp").iterdir()), "a temporary folder was left behind"


def assert_no_install_records(names: list[str]) -> None:
    """Nothing that records a path, a time or the installer; no bytecode but the helper's own (committed,
    helper_bytecode/); no scripts with a shebang path."""
    names = [name for name in names if not name.startswith("sealed_secrets/__pycache__/")]
    assert not [name for name in names if name.endswith(INSTALL_RECORDS) or name.endswith(".pyc")
                or "__pycache__/" in name or name.startswith("bin/")]


# --- the proofs of issue 10 -------------------------------------------------------------------

def test_markupsafe_for_x86_64_python313_is_an_x86_64_extension_that_cpython_313_loads(tmp_path, warm_cache,
                                                                                      runtime_pythons):
    output = tmp_path / "fn.zip"
    result = run_build(APP / "handler.py.tmpl", output, warm_cache, "--runtime=python3.13",
                       "--architecture=x86_64", env=fresh_env(tmp_path))
    assert result.returncode == 0, result.stderr
    files = members(output)
    speedups = [name for name in files if name.startswith("markupsafe/_speedups.") and name.endswith(".so")]
    assert speedups == ["markupsafe/_speedups.cpython-313-x86_64-linux-gnu.so"]
    assert elf_machine(files[speedups[0]]) == EM_X86_64
    assert_no_install_records(list(files))
    assert "markupsafe-3.0.2.dist-info/metadata" in {name.lower() for name in files}

    task = tmp_path / "task"
    with zipfile.ZipFile(output) as archive:
        archive.extractall(task)
    probe = (f"import sys; sys.path.insert(0, {str(task)!r}); import importlib.machinery as m, markupsafe, handler; "
             "s = markupsafe._speedups; "
             "print(type(s.__spec__.loader).__name__, s.__file__.startswith(sys.path[0]), "
             "markupsafe._escape_inner is s._escape_inner, handler.handler({'text': '<b>'}, None))")
    loaded = subprocess.run([runtime_pythons["3.13"], "-I", "-c", probe], check=False, capture_output=True,
                            text=True, cwd=task,
                            timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["ExtensionFileLoader", "True", "True", "&lt;b&gt;"]


def test_markupsafe_for_arm64_python312_is_an_aarch64_extension_named_for_312(tmp_path, warm_cache):
    output = tmp_path / "fn.zip"
    result = run_build(APP / "handler.py.tmpl", output, warm_cache, "--runtime=python3.12", "--architecture=arm64",
                       env=fresh_env(tmp_path))
    assert result.returncode == 0, result.stderr
    files = members(output)
    speedups = [name for name in files if name.startswith("markupsafe/_speedups.") and name.endswith(".so")]
    assert speedups == ["markupsafe/_speedups.cpython-312-aarch64-linux-gnu.so"]
    assert elf_machine(files[speedups[0]]) == EM_AARCH64
    assert_no_install_records(list(files))


def test_a_pure_python_package_lands_at_the_zip_root(tmp_path, warm_cache):
    output = tmp_path / "fn.zip"
    result = run_build(source_with(tmp_path / "src", "idna==3.10\n"), output, warm_cache, env=fresh_env(tmp_path))
    assert result.returncode == 0, result.stderr
    names = list(members(output))
    assert "idna/__init__.py" in names and "idna/core.py" in names
    assert "idna-3.10.dist-info/METADATA" in names
    assert {name.split("/")[0] for name in names} == {"idna", "idna-3.10.dist-info", "handler.py",
                                                      "requirements.txt", "sealed_secrets"}
    assert_no_install_records(names)


def test_a_package_with_only_an_sdist_is_refused_and_nothing_is_written(tmp_path):
    output, cache = tmp_path / "fn.zip", tmp_path / "cache"
    result = run_build(source_with(tmp_path / "src", "docopt==0.6.2\n"), output, cache, env=fresh_env(tmp_path))
    line = assert_one_error(result, "no wheel of docopt==0.6.2 for python3.13 on x86_64",
                            "only a source distribution")
    assert "pin a version" in line
    assert_nothing_written(tmp_path, output, cache)


# --- the lock -----------------------------------------------------------------------------------

def test_an_unpinned_dependency_is_named_with_the_version_pip_chose(tmp_path):
    output, cache = tmp_path / "fn.zip", tmp_path / "cache"
    result = run_build(source_with(tmp_path / "src", "jinja2==3.1.4\n"), output, cache, env=fresh_env(tmp_path))
    line = assert_one_error(result, "must pin every package pip installs", "add markupsafe==")
    assert "jinja2==" not in line.split("add ", 1)[1]  # only what is missing
    assert_nothing_written(tmp_path, output, cache)


def test_conflicting_pins_are_a_resolver_error_that_names_them(tmp_path):
    output, cache = tmp_path / "fn.zip", tmp_path / "cache"
    result = run_build(source_with(tmp_path / "src", "pytest==8.3.3\npluggy==1.0.0\n"), output, cache,
                       env=fresh_env(tmp_path))
    assert_one_error(result, "the pins in requirements.txt conflict", "pluggy==1.0.0", "pytest 8.3.3 depends on pluggy")
    assert_nothing_written(tmp_path, output, cache)


def test_hashes_are_honoured(tmp_path, warm_cache):
    good = run_build(source_with(tmp_path / "good", f"idna==3.10 {IDNA_HASHES}\n"), tmp_path / "good.zip",
                     warm_cache, env=fresh_env(tmp_path))
    assert good.returncode == 0, good.stderr
    output, cache = tmp_path / "bad.zip", tmp_path / "cache"
    bad = run_build(source_with(tmp_path / "bad", f"idna==3.10 --hash=sha256:{'0' * 64}\n"), output, cache,
                    env=fresh_env(tmp_path))
    assert_one_error(bad, "idna==3.10: the downloaded file does not match the --hash")
    unhashed = run_build(source_with(tmp_path / "partial", "jinja2==3.1.4 --hash=sha256:bc5dd2abb727a5319567b7a813e6a2"
                                     "e7318c39f4f487cfe6c89c6f9c7d25197d\n"), output, cache, env=fresh_env(tmp_path))
    assert_one_error(unhashed, "uses --hash", "add markupsafe==")
    assert_nothing_written(tmp_path, output, cache)


def test_markers_are_evaluated_for_the_runtime_not_for_the_host(tmp_path, warm_cache):
    template = source_with(tmp_path / "src", 'idna==3.10 ; python_version < "3.11"\n')
    for runtime, expected in [("python3.10", True), ("python3.13", False)]:
        output = tmp_path / f"{runtime}.zip"
        result = run_build(template, output, warm_cache, f"--runtime={runtime}", env=fresh_env(tmp_path))
        assert result.returncode == 0, result.stderr
        assert ("idna/__init__.py" in members(output)) is expected, runtime


def test_dependencies_over_lambdas_limit_name_the_package(tmp_path, warm_cache, monkeypatch, capsys):
    template = source_with(tmp_path / "src", "idna==3.10\n")
    monkeypatch.setattr(build, "MAX_UNZIPPED_BYTES", 100_000)  # idna unzips to about 0.3 MB
    code = build.main([CIPHERTEXT, KEY, f"--template={template}", f"--output={tmp_path / 'fn.zip'}",
                       f"--cache-dir={warm_cache}"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and len(captured.err.splitlines()) == 1
    assert "over Lambda's unzipped limit of 100000 bytes (largest: idna==3.10 0." in captured.err
    assert "Lambda layer" in captured.err
    assert not (tmp_path / "fn.zip").exists()


# --- determinism and the cache ------------------------------------------------------------------

def test_two_directories_with_fresh_caches_umasks_timezones_and_mtimes_give_the_same_bytes(tmp_path):
    outputs = []
    for index, (umask, zone) in enumerate([(0o022, "UTC"), (0o077, "Pacific/Kiritimati")]):
        work = tmp_path / f"checkout {index}"
        shutil.copytree(APP, work / "app")
        for path in (work / "app").iterdir():
            os.utime(path, (1_000_000_000 * (index + 1),) * 2)
        cache = work / "cache"
        result = run_build(work / "app" / "handler.py.tmpl", work / "fn.zip", cache, "--architecture=arm64",
                           "--runtime=python3.12", env=fresh_env(work, TZ=zone), umask=umask)
        assert result.returncode == 0, result.stderr
        key = build.cache_key((APP / "requirements.txt").read_bytes(), "python3.12", "arm64")
        # the entry and its digest, and no temporary file
        assert sorted(entry.name for entry in cache.iterdir()) == [f"deps-{key}.zip", f"deps-{key}.zip.sha256"]
        outputs.append((work / "fn.zip").read_bytes())
    assert outputs[0] == outputs[1]
    # and a rebuild from the now warm cache gives the same bytes as the cold build
    again = run_build(tmp_path / "checkout 0" / "app" / "handler.py.tmpl", tmp_path / "again.zip",
                      tmp_path / "checkout 0" / "cache", "--architecture=arm64", "--runtime=python3.12",
                      env=fresh_env(tmp_path))
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.zip").read_bytes() == outputs[0]


def test_another_host_python_and_pip_give_the_same_bytes(tmp_path, runtime_pythons):
    """Terraform runs build.py with the user's python3: an older Python with an older pip agrees."""
    older = runtime_pythons["3.10"]  # the oldest host Python a Lambda runtime has, with its own older pip
    digests = []
    for index, python in enumerate([sys.executable, older]):
        result = run_build(APP / "handler.py.tmpl", tmp_path / f"{index}.zip", tmp_path / f"cache{index}",
                           "--runtime=python3.12", "--architecture=arm64", env=fresh_env(tmp_path / f"h{index}"),
                           python=python)
        assert result.returncode == 0, (python, result.stderr)
        digests.append(result.stdout.splitlines()[-1])
    assert digests[0] == digests[1]


def dead_index() -> str:
    """A loopback URL where nothing listens: pip, if it ran, could fetch nothing."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple"


def test_a_warm_cache_builds_offline_without_running_pip(tmp_path, warm_cache):
    template, output = APP / "handler.py.tmpl", tmp_path / "warm.zip"
    first = run_build(template, tmp_path / "first.zip", warm_cache, env=fresh_env(tmp_path))
    assert first.returncode == 0, first.stderr
    # pip, if it ran, would fail: the only index it may use is dead. One retry: pip says why it failed only
    # when it retries (the default is 5), and the first is immediate.
    offline = fresh_env(tmp_path, PIP_INDEX_URL=dead_index(), PIP_FIND_LINKS="", PIP_EXTRA_INDEX_URL="",
                        PIP_RETRIES="1", PIP_TIMEOUT="2")
    warm = run_build(template, output, warm_cache, env=offline)
    assert warm.returncode == 0, warm.stderr
    assert output.read_bytes() == (tmp_path / "first.zip").read_bytes()
    # The control: the same offline environment with a cold cache cannot build.
    cold = run_build(template, tmp_path / "cold.zip", tmp_path / "cold-cache", env=offline)
    assert_one_error(cold, "could not reach the package index")


def test_a_python_without_pip_is_told_to_get_one_even_with_a_warm_cache(tmp_path, warm_cache):
    """The lock is parsed (with pip's packaging) and every cached wheel re-checked on every build."""
    bare = tmp_path / "no-pip"
    venv.EnvBuilder(with_pip=False).create(bare)
    python = str(bare / "bin" / "python")
    assert subprocess.run([python, "-c", "import pip"], check=False, capture_output=True).returncode != 0
    template = APP / "handler.py.tmpl"
    reference = run_build(template, tmp_path / "ref.zip", warm_cache, env=fresh_env(tmp_path))
    assert reference.returncode == 0, reference.stderr
    for cache in (warm_cache, tmp_path / "cold-cache"):
        result = run_build(template, tmp_path / "out.zip", cache, env=fresh_env(tmp_path), python=python)
        assert_one_error(result, "has no pip", "ensurepip")
    without_requirements = run_build(source_with(tmp_path / "plain", "# nothing to install\n"),
                                     tmp_path / "plain.zip", tmp_path / "cache", env=fresh_env(tmp_path), python=python)
    assert without_requirements.returncode == 0, without_requirements.stderr


def test_a_damaged_cache_entry_is_rebuilt(tmp_path, warm_cache):
    template = source_with(tmp_path / "src", "idna==3.10\n")
    first = run_build(template, tmp_path / "a.zip", warm_cache, env=fresh_env(tmp_path))
    assert first.returncode == 0, first.stderr
    key = build.cache_key(b"idna==3.10\n", "python3.13", "x86_64")
    cache = tmp_path / "cache"
    cache.mkdir()
    entry = cache / f"deps-{key}.zip"
    shutil.copy(warm_cache / entry.name, entry)
    shutil.copy(warm_cache / f"{entry.name}.sha256", cache)
    assert list(json.loads(zipfile.ZipFile(entry).read("meta.json"))["wheels"]) == ["idna-3.10-py3-none-any.whl"]
    entry.write_bytes(entry.read_bytes()[:-100])  # truncated: not a zip any more
    second = run_build(template, tmp_path / "b.zip", cache, env=fresh_env(tmp_path))
    assert second.returncode == 0, second.stderr
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert sorted(path.name for path in cache.iterdir()) == [entry.name, f"{entry.name}.sha256"]  # replaced in place
    assert zipfile.ZipFile(entry).testzip() is None


# --- attacks of issue 14 (each failed on the code before the fix) ------------------------------

def tamper_cache(cache: Path, *, fix_digests: bool) -> None:
    """What someone who can write the cache does: put other bytes in idna/core.py, wherever the entry
    keeps it (an installed tree or a wheel inside the entry), and, with ``fix_digests``, update every
    digest the cache records so that only the lock's --hash can tell."""
    for entry in cache.glob("deps-*.zip"):
        with zipfile.ZipFile(entry) as archive:
            members = {info.filename: archive.read(info) for info in archive.infolist()}
        for name, data in list(members.items()):
            if name.endswith("idna/core.py"):
                members[name] = b"TAMPERED = True\n"
            elif name.endswith(".whl") and "idna" in name:
                with zipfile.ZipFile(io.BytesIO(data)) as wheel:
                    inner = {info.filename: wheel.read(info) for info in wheel.infolist()}
                inner["idna/core.py"] = b"TAMPERED = True\n"
                buffer = io.BytesIO()
                with zipfile.ZipFile(buffer, "w") as rewritten:
                    for inner_name, inner_data in inner.items():
                        rewritten.writestr(inner_name, inner_data)
                members[name] = buffer.getvalue()
        if fix_digests and "meta.json" in members:
            meta = json.loads(members["meta.json"])
            for name in meta.get("wheels", {}):
                meta["wheels"][name] = hashlib.sha256(members[f"wheels/{name}"]).hexdigest()
            members["meta.json"] = json.dumps(meta).encode()
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as rewritten:
            for name, data in members.items():
                rewritten.writestr(name, data)
        entry.write_bytes(buffer.getvalue())
        sidecar = entry.with_name(entry.name + ".sha256")
        if fix_digests and sidecar.exists():
            sidecar.write_text(hashlib.sha256(buffer.getvalue()).hexdigest())


@pytest.mark.parametrize("lock, fix_digests", [("idna==3.10\n", False), (f"idna==3.10 {IDNA_HASHES}\n", True)],
                         ids=["digest-recorded-when-written", "wheel-rechecked-against-hash"])
def test_a_tampered_cache_entry_never_reaches_the_package(tmp_path, lock, fix_digests):
    template, cache = source_with(tmp_path / "src", lock), tmp_path / "cache"
    first = run_build(template, tmp_path / "first.zip", cache, env=fresh_env(tmp_path))
    assert first.returncode == 0, first.stderr
    tamper_cache(cache, fix_digests=fix_digests)
    again = run_build(template, tmp_path / "again.zip", cache, env=fresh_env(tmp_path))
    assert again.returncode == 0, again.stderr
    assert b"TAMPERED" not in members(tmp_path / "again.zip")["idna/core.py"]
    assert (tmp_path / "again.zip").read_bytes() == (tmp_path / "first.zip").read_bytes()


def test_a_pin_its_marker_switches_off_does_not_pin_and_the_dependency_may_not_float(tmp_path):
    lock = 'jinja2==3.1.4\nmarkupsafe==2.1.5 ; python_version < "3"\n'
    output, cache = tmp_path / "fn.zip", tmp_path / "cache"
    result = run_build(source_with(tmp_path / "src", lock), output, cache, env=fresh_env(tmp_path))
    assert_one_error(result, "must pin every package pip installs", "add markupsafe==")
    assert_nothing_written(tmp_path, output, cache)


def test_nothing_on_the_machine_undoes_only_binary_or_changes_what_is_installed(tmp_path, warm_cache):
    """A pip.conf and PIP_* variables that would build sdists, add a constraint or another index are ignored."""
    reference = run_build(source_with(tmp_path / "ref", "idna==3.10\n"), tmp_path / "ref.zip", warm_cache,
                          env=fresh_env(tmp_path))
    assert reference.returncode == 0, reference.stderr
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nno-binary = :all:\nindex-url = http://127.0.0.1:9/simple\n")
    constraints = tmp_path / "constraints.txt"
    constraints.write_text("idna==3.7\n")
    hostile = fresh_env(tmp_path, PIP_CONFIG_FILE=str(conf), PIP_NO_BINARY=":all:", PIP_ONLY_BINARY=":none:",
                        PIP_CONSTRAINT=str(constraints), PIP_PRE="1", PIP_NO_DEPS="1")
    output, cache = tmp_path / "fn.zip", tmp_path / "cold-cache"
    result = run_build(source_with(tmp_path / "src", "idna==3.10\n"), output, cache, env=hostile)
    assert result.returncode == 0, result.stderr
    assert output.read_bytes() == (tmp_path / "ref.zip").read_bytes()
