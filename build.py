#!/usr/bin/env python3
"""Render a Lambda handler template with its sealed ciphertexts and write a deterministic zip.

    python build.py [--template=PATH] [--output=PATH] [--runtime=python3.13] [--architecture=x86_64|arm64]
                    [--ciphertext=NAME=BASE64]... [--ciphertext-file=NAME=PATH]... [--cache-dir=DIR]
                    [--key-arn=ARN]

The template's folder is the function's source: every file in it, at any depth, goes into the zip except
what the ``exclude`` rule of ``build_rules.json`` drops; the template itself is replaced by the rendered
``<stem>.py``; the runtime helper package ``lambda_src/sealed_secrets/`` goes in at the root. A ``requirements.txt`` there (a full
``==`` lock) is installed for ``--runtime``/``--architecture`` with pip's manylinux wheels, cached by content.

``--key-arn`` is the ARN of the KMS key the ciphertexts are sealed under, rendered in place of
``__SEALED_KEY_ARN__``: the package then opens only with that key. With no ciphertext flags the ciphertexts
come from this module's Terraform output ``ciphertexts`` (and the key from ``kms_key_arn``). The
zip's base64 SHA-256 (Lambda's ``CodeSha256``) is the last line printed. Same inputs give the same bytes
whatever the directory, umask, clock or timezone. Bad input: one ``error:`` line on stderr, exit 2, and
nothing written (no output, no temporary file, no cache entry).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import csv
import functools
import hashlib
import io
import json
import keyword
import os
import re
import stat
import subprocess
import sys
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
RULES_FILE = HERE / "build_rules.json"  # the one place the file rule and the secret-name rule are written
DEFAULT_TEMPLATE = HERE / "lambda_src" / "handler.py.tmpl"
HELPER = HERE / "lambda_src" / "sealed_secrets"  # the runtime helper: a package, copied whole into every zip
HELPER_NAME = "sealed_secrets"  # its module name and its folder in the zip
DEFAULT_OUTPUT = Path("dist") / "lambda.zip"
PLACEHOLDER = "__SEALED_CIPHERTEXTS__"
KEY_PLACEHOLDER = "__SEALED_KEY_ARN__"
# A key's ARN, never an alias's (an alias follows whichever key it is pointed at); as loose as AWS's key IDs.
KEY_ARN = re.compile(r"arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]{1,128}")
TEMPLATE_SUFFIX = ".py.tmpl"
REQUIREMENTS = "requirements.txt"

MAX_CIPHERTEXT_BYTES = 6144  # KMS's own limit on a CiphertextBlob
MAX_TEXT_BYTES = 1 << 20  # template, helper, requirements.txt, build_rules.json: far above any real one
MAX_ZIPPED_BYTES = 50 * 2**20  # Lambda: 50 MB zipped for a direct upload
MAX_UNZIPPED_BYTES = 250 * 2**20  # Lambda: 262144000 bytes unzipped
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # earliest time a zip can hold; never the clock
FILE_MODE, EXECUTABLE_MODE = 0o644, 0o755

# Amazon Linux of each runtime: AL2 has glibc 2.26, AL2023 glibc 2.34. A wheel for an older glibc runs too.
RUNTIMES = {"python3.9": 26, "python3.10": 26, "python3.11": 26, "python3.12": 34, "python3.13": 34}
ARCHITECTURES = {"x86_64": "x86_64", "arm64": "aarch64"}  # Lambda's name -> the wheel tags' and uname's
LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}  # aliases of manylinux_2_N
CACHE_FORMAT = 1  # bump when what a cached dependency tree holds changes
PIP_TIMEOUT_SECONDS = 900
SOURCE = "the source folder"  # owner of the handler's own files, in size reports

# The variables pip may see: where packages come from (a mirror, proxy, CA, credentials) and pip's own
# cache. Nothing that changes what gets installed (PIP_CONSTRAINT, PIP_NO_BINARY, PIP_PRE, PYTHONPATH,
# a pip.conf that sets them, ...) gets through, so a build means the same on every machine.
PASSED_TO_PIP = frozenset({
    "PATH", "HOME", "USERPROFILE", "SYSTEMROOT", "COMSPEC", "APPDATA", "LOCALAPPDATA", "TMPDIR", "TEMP", "TMP",
    "LANG", "LC_ALL", "LC_CTYPE", "XDG_CACHE_HOME", "NETRC", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy",
    "no_proxy", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "PIP_FIND_LINKS", "PIP_TRUSTED_HOST",
    "PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_TIMEOUT", "PIP_DEFAULT_TIMEOUT", "PIP_RETRIES",
    "PIP_CACHE_DIR", "PIP_NO_CACHE_DIR", "PIP_KEYRING_PROVIDER",
})
PIP_SETTINGS = {"PIP_CONFIG_FILE": os.devnull,  # devnull: pip reads no pip.conf at all
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1", "PYTHONDONTWRITEBYTECODE": "1"}

# pip evaluates environment markers (python_version, sys_platform, ...) for the host, not for the
# --python-version/--platform target; this runs pip with the target's marker values instead.
PIP_RUNNER = """\
import json, runpy, sys
from pip._vendor.packaging import markers
target = json.loads(sys.argv.pop(1))
markers.default_environment = lambda: dict(target)
sys.argv[0] = "pip"
runpy.run_module("pip", run_name="__main__", alter_sys=True)
"""


class BuildError(Exception):
    """Bad input; the message says what is wrong and how to fix it."""


class Rules(NamedTuple):
    exclude: re.Pattern[str]
    secret_name: re.Pattern[str]


class Tree(NamedTuple):
    """Files of (part of) a package by posix path, which of them are executable, and who brought them."""

    files: dict[str, bytes]
    executables: frozenset[str]
    owners: dict[str, str]  # top-level path component -> "name==version" or SOURCE


class _Found(NamedTuple):
    path: str
    size: int
    executable: bool


# --- reading, always bounded ------------------------------------------------------------------

def read_regular_file(path: Path, limit: int, what: str, *, follow_symlinks: bool = True) -> bytes:
    """At most ``limit`` bytes of a regular file; never blocks on a FIFO, never reads a device."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        if not stat.S_ISREG(os.stat(path, follow_symlinks=follow_symlinks).st_mode):  # don't even open a device
            raise BuildError(f"{what} {str(path)!r} is not a regular file; give a file")
        fd = os.open(path, flags)
    except OSError as error:
        raise BuildError(f"cannot read {what} {str(path)!r} ({error.strerror})") from None
    try:
        info = os.fstat(fd)  # again on what was opened: the path may have changed since
        if not stat.S_ISREG(info.st_mode):
            raise BuildError(f"{what} {str(path)!r} is not a regular file; give a file")
        if info.st_size > limit:
            raise BuildError(f"{what} {str(path)!r} is {info.st_size} bytes, over the {limit} this build accepts")
        chunks, remaining = [], limit + 1  # one byte more than allowed shows a file that grew
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as error:
        raise BuildError(f"cannot read {what} {str(path)!r} ({error.strerror})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise BuildError(f"{what} {str(path)!r} grew past {limit} bytes while being read; build again")
    return data


@functools.cache
def rules() -> Rules:
    """``build_rules.json``, beside this file: read by build.py and by the Terraform module."""
    try:
        raw = json.loads(read_regular_file(RULES_FILE, MAX_TEXT_BYTES, "rules file"))
        return Rules(re.compile(raw["exclude"]), re.compile(raw["secret_name"]))
    except (ValueError, KeyError, TypeError, re.error) as error:
        raise BuildError(f"{RULES_FILE} is not a valid rules file ({type(error).__name__}); restore it") from None


# --- the source folder ------------------------------------------------------------------------

def _check_path(path: str, what: str) -> None:
    """A zip entry name every unzip and Terraform agree on: UTF-8, no control characters, no backslash."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise BuildError(f"{what}: file name {path!a} is not UTF-8; rename it") from None
    if any(ord(char) < 32 or char in "\x7f\\" for char in path):
        raise BuildError(f"{what}: file name {path!a} holds a control character or a backslash; rename it")


def _walk(root: Path, skip: Callable[[str], bool], what: str) -> list[_Found]:
    """Regular files under ``root`` whose path ``skip`` keeps, sorted. A symbolic link that ``skip`` keeps
    is refused, never followed, so nothing outside ``root`` is read. A directory is left out whole when
    ``skip`` matches its path with a trailing ``/`` (so .git or .venv is not even listed)."""
    found: list[_Found] = []
    pending = [""]
    while pending:
        prefix = pending.pop()
        try:
            with os.scandir(root / prefix) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as error:
            raise BuildError(f"cannot list {what} {str(root / prefix)!r} ({error.strerror})") from None
        for entry in entries:
            path = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if not skip(path + "/"):
                    pending.append(path + "/")
                continue
            link = entry.is_symlink()  # never followed, not even to ask what it points to
            if skip(path) or (link and skip(path + "/")):
                continue
            _check_path(path, what)
            if link:
                raise BuildError(f"{what}: {path!r} is a symbolic link; build.py reads nothing outside the "
                                 "source folder, so put a copy of the file there instead")
            info = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(info.st_mode):
                raise BuildError(f"{what}: {path!r} is not a regular file (a FIFO, socket or device); remove it")
            found.append(_Found(path, info.st_size, bool(info.st_mode & stat.S_IXUSR)))
    return sorted(found)


def _excluded(path: str) -> bool:
    return rules().exclude.search(path) is not None


def source_files(source_dir: Path) -> list[str]:
    """The files the package takes from ``source_dir`` (the template included), as sorted posix paths:
    the same list as Terraform's ``[for f in fileset(dir, "**") : f if !can(regex(exclude, f))]``."""
    return [found.path for found in _walk(Path(source_dir), _excluded, "source folder")]


def handler_module(template_path: Path) -> str:
    """The module name the rendered template gets; Lambda's handler setting is ``<module>.handler``."""
    name = template_path.name
    if not name.endswith(TEMPLATE_SUFFIX):
        raise BuildError(f"template {str(template_path)!r} must end in {TEMPLATE_SUFFIX} (e.g. handler.py.tmpl)")
    module = name[: -len(TEMPLATE_SUFFIX)]
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", module) or keyword.iskeyword(module):
        raise BuildError(f"template name {name!a} gives a module Python cannot import; name it like "
                         "handler.py.tmpl (ASCII letters, digits and _, no leading digit, not a keyword)")
    if module == HELPER_NAME:
        raise BuildError(f"template name {name!r} would replace the runtime helper {HELPER_NAME}; rename it")
    return module


def _module_of(component: str, is_dir: bool) -> str | None:
    """The importable name a top-level file or directory provides (``x.py``, ``x.cpython-313-....so``, ``x/``)."""
    if is_dir:
        return component
    stem, dot, suffix = component.partition(".")
    return stem if dot and suffix.rsplit(".", 1)[-1] in ("py", "so", "pyd", "pyc") else None


def _top_level(paths: Iterable[str]) -> dict[str, str | None]:
    """Top-level component -> the module name it provides (or None)."""
    top: dict[str, str | None] = {}
    for path in paths:
        component, slash, _ = path.partition("/")
        top[component] = _module_of(component, bool(slash))
    return top


# --- rendering --------------------------------------------------------------------------------

def parse_name(name: str, flag: str) -> str:
    if not rules().secret_name.fullmatch(name):  # an invalid "name" may be a blob: never echoed
        raise BuildError(f"{flag}: the text before '=' is not a valid secret name; use a letter then letters, "
                         "digits or _ (at most 64), as in NAME=VALUE")
    return name


def split_pair(argument: str, flag: str) -> tuple[str, str]:
    """Split ``NAME=VALUE``; neither part is echoed back unless it is a valid name."""
    name, sep, value = argument.partition("=")
    if not sep or not value.strip("="):  # "BLOB" or "BLOB==": base64 padding is not a NAME= separator
        raise BuildError(f"{flag} takes NAME=VALUE (got no '=' or an empty value); write it as {flag}=NAME=VALUE")
    return parse_name(name, flag), value


def check_blob(name: str, blob: bytes) -> bytes:
    if not blob:
        raise BuildError(f"ciphertext {name!r} is empty; pass the CiphertextBlob that KMS Encrypt returned")
    if len(blob) > MAX_CIPHERTEXT_BYTES:
        raise BuildError(
            f"ciphertext {name!r} is {len(blob)} bytes, over KMS's {MAX_CIPHERTEXT_BYTES}; is it a KMS CiphertextBlob?"
        )
    return blob


def decode_base64(name: str, text: str) -> bytes:
    try:
        return check_blob(name, base64.b64decode(text.strip(), validate=True))
    except (binascii.Error, ValueError):
        raise BuildError(f"ciphertext {name!r} is not valid base64; pass KMS's CiphertextBlob as base64") from None


def collect_ciphertexts(inline: Iterable[str], files: Iterable[str]) -> dict[str, str]:
    """Parse the CLI's NAME=BASE64 and NAME=PATH pairs into canonical base64 by name."""
    blobs: dict[str, bytes] = {}

    def add(name: str, blob: bytes) -> None:
        if name in blobs:
            raise BuildError(f"secret {name!r} is given twice; give each name once")
        blobs[name] = blob

    for argument in inline:
        name, value = split_pair(argument, "--ciphertext")
        add(name, decode_base64(name, value))
    for argument in files:
        name, path = split_pair(argument, "--ciphertext-file")
        add(name, check_blob(name, read_regular_file(Path(path), MAX_CIPHERTEXT_BYTES, f"--ciphertext-file {name}")))
    return {name: base64.b64encode(blob).decode("ascii") for name, blob in blobs.items()}


def render_handler(template: str, ciphertexts: Mapping[str, str], key_arn: str | None = None) -> str:
    """Substitute the ciphertexts, as a sorted Python dict literal, for their one placeholder, and the key's
    ARN, as a string literal, for its own (present exactly when ``key_arn`` is given)."""
    if not ciphertexts:
        raise BuildError("no ciphertexts to seal; pass --ciphertext NAME=BASE64 or apply the Terraform module first")
    count = template.count(PLACEHOLDER)
    if count != 1:
        raise BuildError(f"the handler template must contain {PLACEHOLDER} exactly once (found {count})")
    keys = template.count(KEY_PLACEHOLDER)
    if key_arn is None and keys:
        raise BuildError(f"the handler template holds {KEY_PLACEHOLDER} but no key was given; pass --key-arn=ARN "
                         "(the module's kms_key_arn output)")
    if key_arn is not None and keys != 1:
        raise BuildError(f"--key-arn is given, so the handler template must contain {KEY_PLACEHOLDER} exactly once "
                         f"(found {keys}); add SEALED_KEY_ARN = {KEY_PLACEHOLDER} and pass key_id=SEALED_KEY_ARN "
                         "to sealed_secrets.register")
    if key_arn is not None:  # first: a secret's name in the dict literal may contain the key's placeholder
        if not KEY_ARN.fullmatch(key_arn):
            raise BuildError("--key-arn is not a KMS key ARN (arn:PARTITION:kms:REGION:ACCOUNT:key/KEY_ID); pass the "
                             "key's ARN, the module's kms_key_arn output, never an alias")
        template = template.replace(KEY_PLACEHOLDER, repr(key_arn))
    body = "".join(f"    {name!r}: {ciphertexts[name]!r},\n" for name in sorted(ciphertexts))
    return template.replace(PLACEHOLDER, "{\n" + body + "}")


def helper_files() -> dict[str, bytes]:
    """The runtime helper's files by their path in the zip (``sealed_secrets/...``), the whole folder as
    the ``exclude`` rule leaves it (Terraform's fingerprint lists it the same way)."""
    return {f"{HELPER_NAME}/{path}": read_regular_file(HELPER / path, MAX_TEXT_BYTES, "runtime helper")
            for path in source_files(HELPER)}


def _is_helper(folder: Path, files: Mapping[str, bytes]) -> bool:
    """A ``sealed_secrets/`` folder in the source folder is fine when it IS the helper (the folder is
    lambda_src) or an exact copy of it."""
    try:
        if folder.samefile(HELPER):
            return True
    except OSError:
        return False
    return {path: data for path, data in files.items() if path.startswith(HELPER_NAME + "/")} == helper_files()


def source_tree(template_path: Path, ciphertexts: Mapping[str, str], key_arn: str | None = None) -> Tree:
    """The source folder's files, with the template rendered as ``<stem>.py``, plus the helper."""
    module = handler_module(template_path)
    source_dir = template_path.parent
    if template_path.is_symlink():
        raise BuildError(f"handler template {str(template_path)!r} is a symbolic link; build.py reads nothing "
                         "outside the source folder, so put the template itself there")
    raw = read_regular_file(template_path, MAX_TEXT_BYTES, "handler template", follow_symlinks=False)
    try:
        template = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BuildError(f"handler template {str(template_path)!r} is not UTF-8 (byte {error.start}); "
                         "save it as UTF-8") from None
    found = _walk(source_dir, _excluded, "source folder")
    if template_path.name not in {item.path for item in found}:
        raise BuildError(f"handler template {str(template_path)!r} is left out by build_rules.json; rename it")
    total = sum(item.size for item in found)
    if total > MAX_UNZIPPED_BYTES:
        largest = ", ".join(f"{item.path} ({_mb(item.size)})" for item in sorted(found, key=lambda i: -i.size)[:3])
        raise BuildError(f"{SOURCE} {str(source_dir)!r} holds {total} bytes, over Lambda's unzipped limit of "
                         f"{MAX_UNZIPPED_BYTES} (largest: {largest}); move large files out of it")
    files: dict[str, bytes] = {}
    for item in found:
        if item.path != template_path.name:  # read up to the listed size: a file that grew is caught
            limit = MAX_TEXT_BYTES if item.path == REQUIREMENTS else item.size
            files[item.path] = read_regular_file(source_dir / item.path, limit, f"{SOURCE} file", follow_symlinks=False)
    rendered = module + ".py"
    for path, kind in _top_level(files).items():
        if path == rendered or kind == module:
            raise BuildError(f"{SOURCE} has {path!r}, which would shadow the handler {rendered} rendered from "
                             f"{template_path.name}; rename one of them")
        if path == f"{HELPER_NAME}.py":
            raise BuildError(f"{SOURCE} has its own {path}, which would replace the runtime helper; "
                             "delete or rename it (build.py adds the helper)")
        if kind == HELPER_NAME and not (path == HELPER_NAME and _is_helper(source_dir / path, files)):
            raise BuildError(f"{SOURCE} has {path!r}, which would shadow the runtime helper; rename it")
    files[rendered] = render_handler(template, ciphertexts, key_arn).encode("utf-8")
    files.update(helper_files())
    return Tree(files, frozenset(), {component: SOURCE for component in _top_level(files)})


def package_entries(template_path: Path, ciphertexts: Mapping[str, str],
                    key_arn: str | None = None) -> dict[str, bytes]:
    """The files of a package without dependencies (see ``build_package`` for the whole)."""
    return source_tree(template_path, ciphertexts, key_arn).files


# --- dependencies -----------------------------------------------------------------------------

def canonical_name(name: str) -> str:
    """PEP 503: the name an index and pip compare."""
    return re.sub(r"[-_.]+", "-", name).lower()


_PINNED = re.compile(
    r"(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(?:\[[A-Za-z0-9._,\s-]*\])?\s*"
    r"==\s*(?P<version>[A-Za-z0-9._+!-]+)\s*(?:;[^;]*?)?(?:\s+--hash[=\s]\s*[A-Za-z0-9]+:[A-Fa-f0-9]+)*\s*"
)


def parse_requirements(text: str) -> dict[str, str]:
    """Canonical name -> pinned version of each line. Only ``name[extras]==version [; marker] [--hash=...]``
    lines are accepted, so the file is a lock and never points pip at another file, index or URL."""
    pins: dict[str, str] = {}
    lines = text.replace("\\\r\n", "").replace("\\\n", "").splitlines()
    for number, line in enumerate(lines, start=1):
        line = re.sub(r"(?:^|\s)#.*", "", line).strip()
        if not line:
            continue
        if line.startswith("-"):
            option = re.match(r"-{1,2}[A-Za-z-]*", line).group(0)  # type: ignore[union-attr]
            raise BuildError(f"{REQUIREMENTS} line {number}: option {option} is not accepted, only "
                             "name==version lines (with --hash); put a mirror in PIP_INDEX_URL instead")
        pinned = _PINNED.fullmatch(line)
        if not pinned and re.search(r"[/\\:@]", line):
            raise BuildError(f"{REQUIREMENTS} line {number}: URLs and paths are not accepted; pin a release "
                             "from the index as name==version")
        if not pinned:
            name = re.match(r"[A-Za-z0-9._-]*", line).group(0) or "this line"  # type: ignore[union-attr]
            raise BuildError(f"{REQUIREMENTS} line {number}: {name} is not pinned; write {name}==VERSION "
                             "(one exact version per line, as pip-compile or pip freeze writes it)")
        pins[canonical_name(pinned["name"])] = pinned["version"]
    return pins


def platform_tags(runtime: str, architecture: str) -> list[str]:
    """The manylinux tags the runtime's glibc runs, newest first (pip prefers earlier tags)."""
    machine, newest = ARCHITECTURES[architecture], RUNTIMES[runtime]
    tags = []
    for minor in range(newest, 4 if machine == "x86_64" else 16, -1):
        tags.append(f"manylinux_2_{minor}_{machine}")
        if minor in LEGACY_MANYLINUX:
            tags.append(f"{LEGACY_MANYLINUX[minor]}_{machine}")
    return tags


def marker_environment(runtime: str, architecture: str) -> dict[str, str]:
    """PEP 508 marker values of the Lambda runtime (not of the host that builds)."""
    version = runtime[len("python"):]
    return {"implementation_name": "cpython", "implementation_version": f"{version}.0", "os_name": "posix",
            "platform_machine": ARCHITECTURES[architecture], "platform_python_implementation": "CPython",
            "platform_release": "", "platform_system": "Linux", "platform_version": "",
            "python_full_version": f"{version}.0", "python_version": version, "sys_platform": "linux"}


def pip_command(python: str, requirements: Path, target: Path, runtime: str, architecture: str) -> list[str]:
    """pip install for the function's platform: wheels only, no bytecode, an argument list (no shell)."""
    version = runtime[len("python"):]
    return [python, "-c", PIP_RUNNER, json.dumps(marker_environment(runtime, architecture), sort_keys=True),
            "install", f"--target={target}", "--only-binary=:all:", f"--python-version={version}",
            "--implementation=cp", f"--abi=cp{version.replace('.', '')}",  # not a debug/free-threaded host's
            *(f"--platform={tag}" for tag in platform_tags(runtime, architecture)),
            "--no-compile", "--no-input", "--no-color", "--progress-bar=off", "--disable-pip-version-check",
            f"--requirement={requirements}"]


def pip_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {**{key: value for key, value in environ.items() if key in PASSED_TO_PIP}, **PIP_SETTINGS}


_UNREACHABLE = re.compile(r"NewConnectionError|Failed to establish a new connection|ConnectTimeoutError|"
                          r"ReadTimeoutError|ProxyError|SSLError|Name or service not known|name resolution")


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pip_failure(output: str, runtime: str, architecture: str) -> BuildError:
    """pip's failure (its stdout and stderr) as one line that names the package and what to do."""
    target = f"{runtime} on {architecture} (manylinux, glibc 2.{RUNTIMES[runtime]})"
    missing = re.search(r"No matching distribution found for (\S+)", output)
    versions = re.search(r"satisfies the requirement \S+ \(from versions: ([^)]*)\)", output)
    if re.search(r"No module named '?pip'?", output):
        return BuildError(f"{sys.executable} has no pip, and {REQUIREMENTS} needs it; install pip for it "
                          "(python -m ensurepip) or run build.py with a Python that has pip")
    if _UNREACHABLE.search(output):
        what = f" to fetch {missing[1]}" if missing else ""
        return BuildError(f"pip could not reach the package index{what}; check the network, "
                          "PIP_INDEX_URL, HTTPS_PROXY or PIP_CERT (a warm cache builds offline)")
    if missing:
        if not versions or versions[1].strip() == "none":
            return BuildError(f"no wheel of {missing[1]} for {target}; the package may publish only a source "
                              "distribution: pin a version that has such a wheel, or build one and serve it "
                              "with PIP_FIND_LINKS")
        choices = ", ".join(versions[1].split(", ")[-5:])
        return BuildError(f"{missing[1]} has no wheel for {target} at that version; versions with one "
                          f"include {choices}: pin one of them")
    if "DO NOT MATCH THE HASHES" in output:
        names = ", ".join(sorted(set(re.findall(r"^\s+(\S+==\S+) from ", output, re.MULTILINE)))) or "a package"
        return BuildError(f"{names}: the downloaded file does not match the --hash in {REQUIREMENTS}; "
                          "regenerate the hashes (pip-compile --generate-hashes) or check your index")
    unhashed = re.search(r"Hashes are required in --require-hashes mode|must have their versions pinned", output)
    if unhashed:  # pip lists each package with the URL of the wheel it chose
        wheels = re.findall(r"/([A-Za-z0-9_.]+)-([A-Za-z0-9_.!+]+)-[^/\s]*\.whl", output[unhashed.end():])
        names = " ".join(sorted({f"{canonical_name(name)}=={version}" for name, version in wheels})) or "them"
        return BuildError(f"{REQUIREMENTS} uses --hash, so every package pip installs needs a pinned line with "
                          f"its hash; add {names} with their hashes (pip-compile --generate-hashes writes them)")
    if "ResolutionImpossible" in output or "conflicting dependencies" in output:
        cause = re.search(r"The conflict is caused by:\n((?:[ \t]+\S.*\n?)+)", output)
        detail = "; ".join(line.strip() for line in cause[1].splitlines()) if cause else "see pip's resolver"
        return BuildError(_one_line(f"the pins in {REQUIREMENTS} conflict: {detail}; change the pins so "
                                    "they agree (regenerate the lock with pip-compile)", 600))
    python = re.search(r"Package '([^']+)' requires a different Python", output)
    if python:
        return BuildError(f"{python[1]} does not support {runtime}; pin a version that does, or change --runtime")
    errors = [line for line in output.splitlines() if line.startswith("ERROR:")]
    last = _one_line(errors[-1] if errors else (output.strip().splitlines() or ["no output"])[-1])
    return BuildError(f"pip could not install {REQUIREMENTS} for {target}: {last}")


def _keep_installed(path: str) -> bool:
    """What pip writes that records a path, a time or the installer, and bytecode, are not packaged."""
    parts = path.split("/")
    return not (parts[0] == "bin" or "__pycache__" in parts or path.endswith(".pyc")
                or (len(parts) == 2 and parts[0].endswith(".dist-info")
                    and parts[1] in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")))


def _mb(size: int) -> str:
    return f"{size / 2**20:.2f} MB"


def _distributions(target: Path, files: Collection[str]) -> tuple[dict[str, str], dict[str, str]]:
    """From pip's metadata: canonical name -> "name==version", and top-level component -> that owner."""
    installed: dict[str, str] = {}
    owners: dict[str, str] = {}
    for info in sorted(path for path in files if re.fullmatch(r"[^/]+\.dist-info/METADATA", path)):
        headers = read_regular_file(target / info, MAX_TEXT_BYTES, "metadata").decode("utf-8", "replace")
        fields = dict(re.findall(r"^(Name|Version): *(\S+)", headers.split("\n\n", 1)[0], re.MULTILINE))
        label = f"{canonical_name(fields.get('Name', info))}=={fields.get('Version', '?')}"
        installed[canonical_name(fields.get("Name", info))] = label
        dist_info = info.split("/", 1)[0]
        owners[dist_info] = label
        record = target / dist_info / "RECORD"
        if record.is_file():
            lines = read_regular_file(record, 64 * MAX_TEXT_BYTES, "RECORD").decode("utf-8", "replace")
            for row in csv.reader(io.StringIO(lines)):
                if row and not row[0].startswith(".."):
                    owners.setdefault(row[0].split("/", 1)[0], label)
    return installed, owners


def install_dependencies(requirements: bytes, pins: Mapping[str, str], runtime: str, architecture: str) -> Tree:
    """pip install of the full lock into a temporary folder, checked, stripped and read into memory."""
    with tempfile.TemporaryDirectory(prefix="sealed-build-") as work:
        lock, target = Path(work) / REQUIREMENTS, Path(work) / "target"
        lock.write_bytes(requirements)  # exactly the bytes checked above and hashed for the cache key
        try:
            result = subprocess.run(pip_command(sys.executable, lock, target, runtime, architecture), check=False,
                                    cwd=work, env=pip_environment(os.environ), stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT,  # pip explains on both
                                    text=True, errors="replace", timeout=PIP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise BuildError(f"pip did not finish installing {REQUIREMENTS} within {PIP_TIMEOUT_SECONDS} s; "
                             "check the network or the index") from None
        except OSError as error:
            raise BuildError(f"cannot run {sys.executable} -m pip ({error.strerror})") from None
        if result.returncode != 0:
            raise pip_failure(result.stdout, runtime, architecture)
        everything = _walk(target, lambda path: False, "installed dependencies") if target.is_dir() else []
        installed, owners = _distributions(target, [item.path for item in everything])
        unpinned = [label for name, label in sorted(installed.items()) if name not in pins]
        if unpinned:
            raise BuildError(f"{REQUIREMENTS} must pin every package pip installs (a full lock); "
                             f"add {' '.join(unpinned)} (the versions pip chose)")
        found = [item for item in everything if _keep_installed(item.path)]
        total = sum(item.size for item in found)
        if total > MAX_UNZIPPED_BYTES:
            raise BuildError(_over_limit(f"{REQUIREMENTS} installs {total} bytes", MAX_UNZIPPED_BYTES, "unzipped",
                                         {item.path: item.size for item in found}, owners))
        files = {item.path: read_regular_file(target / item.path, item.size, "installed file") for item in found}
        executables = frozenset(item.path for item in found if item.executable)
        return Tree(files, executables, {component: owners.get(component, component) for component in
                                         _top_level(files)})


# --- the dependency cache ---------------------------------------------------------------------

def default_cache_dir(environ: Mapping[str, str]) -> Path:
    if environ.get("SEALED_BUILD_CACHE_DIR"):
        return Path(environ["SEALED_BUILD_CACHE_DIR"])
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]) / "sealed-lambda-build"
    try:
        return Path.home() / ".cache" / "sealed-lambda-build"
    except RuntimeError:
        raise BuildError("no home folder for the dependency cache; pass --cache-dir=DIR") from None


def cache_key(requirements: bytes, runtime: str, architecture: str) -> str:
    """Names what an install depends on: the lock's bytes, the target, and how build.py installs."""
    material = {"format": CACHE_FORMAT, "runtime": runtime, "architecture": architecture,
                "platforms": platform_tags(runtime, architecture),
                "requirements": hashlib.sha256(requirements).hexdigest()}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def load_cached(path: Path, key: str) -> Tree | None:
    """A cached tree, or None when there is none or it is not one build.py wrote for ``key``."""
    if not path.is_file():
        return None
    try:
        data = read_regular_file(path, 2 * MAX_UNZIPPED_BYTES, "cache entry")
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            meta = json.loads(archive.read("meta.json"))
            infos = [info for info in archive.infolist() if info.filename.startswith("files/")]
            if meta.get("key") != key or sum(info.file_size for info in infos) > MAX_UNZIPPED_BYTES:
                return None
            files = {info.filename[len("files/"):]: archive.read(info) for info in infos}
            executables = frozenset(info.filename[len("files/"):] for info in infos
                                    if (info.external_attr >> 16) & stat.S_IXUSR)
        if any(name.startswith("/") or ".." in name.split("/") for name in files):
            return None
        return Tree(files, executables, dict(meta["owners"]))
    except (BuildError, zipfile.BadZipFile, KeyError, ValueError, TypeError, OSError, EOFError, zlib.error,
            NotImplementedError):
        return None  # a damaged entry is rebuilt and replaced


def store_cached(path: Path, key: str, tree: Tree) -> None:
    meta = json.dumps({"format": CACHE_FORMAT, "key": key, "owners": tree.owners}, sort_keys=True).encode()
    entries = {"meta.json": meta, **{f"files/{name}": data for name, data in tree.files.items()}}
    data = build_zip(entries, {f"files/{name}" for name in tree.executables}, compresslevel=1)
    write_atomically(path, data, what=f"the dependency cache {str(path.parent)!r}", fix="pass --cache-dir=DIR")


def dependencies(requirements: bytes, runtime: str, architecture: str,
                 cache_dir: Path) -> tuple[Tree, Callable[[], None]]:
    """The installed requirements, from the cache when it has them; and how to cache a fresh install
    (called only once the whole package is good, so a failed build writes nothing)."""
    try:
        pins = parse_requirements(requirements.decode("utf-8"))
    except UnicodeDecodeError:
        raise BuildError(f"{REQUIREMENTS} is not UTF-8; save it as UTF-8") from None
    if not pins:
        return Tree({}, frozenset(), {}), lambda: None
    key = cache_key(requirements, runtime, architecture)
    entry = cache_dir / f"deps-{key}.zip"
    cached = load_cached(entry, key)
    if cached is not None:
        return cached, lambda: None
    tree = install_dependencies(requirements, pins, runtime, architecture)
    return tree, lambda: store_cached(entry, key, tree)


# --- the package ------------------------------------------------------------------------------

def merge(source: Tree, deps: Tree) -> Tree:
    """Source and dependencies side by side; neither may shadow the other."""
    source_top, deps_top = _top_level(source.files), _top_level(deps.files)
    source_modules = {module: path for path, module in source_top.items() if module}
    for path, module in deps_top.items():
        clash = path if path in source_top else source_modules.get(module or "")
        if clash:
            raise BuildError(f"{REQUIREMENTS} installs {path!r} ({deps.owners.get(path, path)}), which collides "
                             f"with {clash!r} from {SOURCE} or build.py; rename yours or drop the package")
    return Tree({**source.files, **deps.files}, deps.executables, {**deps.owners, **source.owners})


def _over_limit(what: str, limit: int, kind: str, sizes: Mapping[str, int], owners: Mapping[str, str]) -> str:
    by_owner: dict[str, int] = {}
    for path, size in sizes.items():
        owner = owners.get(path.split("/", 1)[0], SOURCE)
        by_owner[owner] = by_owner.get(owner, 0) + size
    largest = ", ".join(f"{owner} {_mb(size)}" for owner, size in sorted(by_owner.items(), key=lambda i: -i[1])[:3])
    return (f"{what}, over Lambda's {kind} limit of {limit} bytes (largest: {largest}); drop packages from "
            f"{REQUIREMENTS}, move them to a Lambda layer, or shrink {SOURCE}")


def build_zip(entries: Mapping[str, bytes], executables: Collection[str] = (), *, compresslevel: int = 6) -> bytes:
    """A zip of ``entries`` whose bytes depend on nothing but the entries: sorted, no directory entries,
    1980-01-01 times, mode 0644 (0755 for ``executables``), deflate level 6 (9 is ~6x slower on
    dependencies for ~4% smaller)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so the mode bits below are honoured
            info.external_attr = (0o100000 | (EXECUTABLE_MODE if name in executables else FILE_MODE)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name], compresslevel=compresslevel)
    return buffer.getvalue()


def build_package(template_path: Path, ciphertexts: Mapping[str, str], runtime: str = "python3.13",
                  architecture: str = "x86_64", cache_dir: Path | None = None,
                  key_arn: str | None = None) -> tuple[bytes, Callable[[], None]]:
    """The zip's bytes, and what to call once they are written (caches a fresh dependency install)."""
    source = source_tree(template_path, ciphertexts, key_arn)
    deps, commit = Tree({}, frozenset(), {}), (lambda: None)
    if REQUIREMENTS in source.files:
        deps, commit = dependencies(source.files[REQUIREMENTS], runtime, architecture,
                                    cache_dir or default_cache_dir(os.environ))
    package = merge(source, deps)
    sizes = {name: len(data) for name, data in package.files.items()}
    if sum(sizes.values()) > MAX_UNZIPPED_BYTES:
        raise BuildError(_over_limit(f"the package is {sum(sizes.values())} bytes unzipped", MAX_UNZIPPED_BYTES,
                                     "unzipped", sizes, package.owners))
    data = build_zip(package.files, package.executables)
    if len(data) > MAX_ZIPPED_BYTES:
        raise BuildError(_over_limit(f"the zip is {len(data)} bytes", MAX_ZIPPED_BYTES, "zipped (direct upload)",
                                     sizes, package.owners))
    return data, commit


def code_sha256(data: bytes) -> str:
    """Base64 SHA-256, the form of Lambda's CodeSha256 and Terraform's filebase64sha256()."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def write_atomically(path: Path, data: bytes, *, what: str = "", fix: str = "choose another --output") -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    label = what or repr(str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:
        raise BuildError(f"cannot write {label} ({error.strerror}); {fix}") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except BaseException as error:  # an interrupt too: never leave the temporary file behind
        os.unlink(temporary)
        if isinstance(error, OSError):
            raise BuildError(f"cannot write {label} ({error.strerror}); {fix}") from None
        raise


def _would_be_packaged(path: Path, source_dir: Path, *, is_dir: bool) -> bool:
    """Whether ``path`` lies in the source folder where the exclude rule would not leave it out."""
    try:
        relative = Path(os.path.realpath(path)).relative_to(os.path.realpath(source_dir)).as_posix()
    except ValueError:
        return False
    return relative == "." or not _excluded(relative + "/" if is_dir else relative)


def terraform_ciphertexts(module_dir: Path) -> dict[str, str]:
    """Read the ``ciphertexts`` output of the applied Terraform module in ``module_dir``."""
    value = _terraform_output(module_dir, "ciphertexts")
    if not isinstance(value, dict) or not all(isinstance(text, str) for text in value.values()):
        raise BuildError("no ciphertexts given and no Terraform output 'ciphertexts' found; "
                         "run terraform apply first or pass --ciphertext=NAME=BASE64")
    return collect_ciphertexts([f"{name}={text}" for name, text in value.items()], [])


def terraform_key_arn(module_dir: Path) -> str:
    """Read the ``kms_key_arn`` output of the applied Terraform module in ``module_dir``."""
    value = _terraform_output(module_dir, "kms_key_arn")
    if not isinstance(value, str):
        raise BuildError("no --key-arn given and no Terraform output 'kms_key_arn' found; "
                         "run terraform apply first or pass --key-arn=ARN")
    return value


def _terraform_output(module_dir: Path, name: str) -> object:
    """One output of the applied module, as JSON; None when there is none (or no Terraform)."""
    import logging  # only this path needs these

    try:
        from python_terraform import IsFlagged, Terraform
    except ImportError:
        return None

    quiet = logging.getLogger("python_terraform")  # it logs terraform's stderr; we say one line instead
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False
    try:
        code, stdout, _ = Terraform(working_dir=str(module_dir)).output_cmd(name, json=IsFlagged)
        return json.loads(stdout) if code == 0 else None
    except (OSError, ValueError):
        return None


# --- the CLI ----------------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # one line, not argparse's usage block
        raise BuildError(f"{message}; see python build.py --help")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(description=(__doc__ or "").splitlines()[0], allow_abbrev=False)
    parser.add_argument("--ciphertext", action="append", default=[], metavar="NAME=BASE64",
                        help="a KMS CiphertextBlob, base64 (repeatable)")
    parser.add_argument("--ciphertext-file", action="append", default=[], metavar="NAME=PATH",
                        help="a file holding the raw CiphertextBlob bytes (repeatable)")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE,
                        help="handler template NAME.py.tmpl; its folder is the function's source")
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="zip to write (default dist/lambda.zip)")
    parser.add_argument("--key-arn", default=None, metavar="ARN",
                        help=f"ARN of the KMS key the ciphertexts are sealed under (the template's {KEY_PLACEHOLDER})")
    parser.add_argument("--runtime", default="python3.13", help=f"one of {', '.join(RUNTIMES)}")
    parser.add_argument("--architecture", default="x86_64", help=f"one of {', '.join(ARCHITECTURES)}")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="dependency cache (default $SEALED_BUILD_CACHE_DIR, $XDG_CACHE_HOME/sealed-lambda-build "
                             "or ~/.cache/sealed-lambda-build)")
    args, extras = parser.parse_known_args(argv)
    if extras:  # argparse would echo them, and a stray value may be a blob
        shown = [re.match(r"-{1,2}[A-Za-z0-9-]+", extra) for extra in extras]
        names = ", ".join(match.group(0) if match else "a value (not shown)" for match in shown)
        raise BuildError(f"unrecognized arguments: {names}; options are written --flag=value; see --help")
    for option, allowed in (("runtime", RUNTIMES), ("architecture", ARCHITECTURES)):
        if getattr(args, option) not in allowed:
            raise BuildError(f"--{option} must be one of {', '.join(allowed)}")
    if not args.output:
        raise BuildError("--output is empty; give the zip's path")
    args.output = Path(args.output)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        source_dir = args.template.parent
        for option, path, is_dir in (("--output", args.output, False), ("--cache-dir", args.cache_dir, True)):
            # (a missing template is reported as such by the build below)
            if path is not None and args.template.is_file() and _would_be_packaged(path, source_dir, is_dir=is_dir):
                raise BuildError(f"{option} is inside the template's folder, which is the function's source, "
                                 "so the next build would package it; choose a path outside it")
        key_arn = args.key_arn
        if args.ciphertext or args.ciphertext_file:
            ciphertexts = collect_ciphertexts(args.ciphertext, args.ciphertext_file)
        else:
            ciphertexts = terraform_ciphertexts(HERE)
            key_arn = key_arn or terraform_key_arn(HERE)
        data, commit = build_package(args.template, ciphertexts, args.runtime, args.architecture, args.cache_dir,
                                     key_arn)
        commit()
        write_atomically(args.output, data)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(code_sha256(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
