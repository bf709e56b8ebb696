#!/usr/bin/env python3
"""Render a Lambda handler template with its sealed ciphertexts and write a deterministic zip.

    python build.py [--template=PATH] [--output=PATH] [--runtime=python3.13] [--architecture=x86_64|arm64]
                    [--ciphertext=NAME=BASE64]... [--ciphertext-file=NAME=PATH]... [--cache-dir=DIR]
                    [--key-arn=ARN]

The template's folder is the function's source: every file in it, at any depth, goes into the zip except
what the ``exclude`` rule of ``build_rules.json`` drops; the template itself is replaced by the rendered
``<stem>.py``; the runtime helper package ``lambda_src/sealed_secrets/`` goes in at the root. A
``requirements.txt`` there (a full ``==`` lock) is parsed, its wheels for ``--runtime``/``--architecture``
fetched by an isolated ``pip download --only-binary=:all:`` and unpacked by build.py (no package code runs);
cached wheels are checked on every read.

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
import functools
import errno
import hashlib
import hmac
import io
import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import types
import zipfile
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
RULES_FILE = HERE / "build_rules.json"  # the one place the file rule and the secret-name rule are written
DEFAULT_TEMPLATE = HERE / "lambda_src" / "handler.py.tmpl"
HELPER = HERE / "lambda_src" / "sealed_secrets"  # the runtime helper: a package, copied whole into every zip
HELPER_NAME = "sealed_secrets"  # its module name and its folder in the zip
# The helper's bytecode for each runtime, committed (scripts/compile-helper writes and checks it): Lambda's
# /var/task is read-only, so without it every cold start compiles the helper (~10 ms on a full core).
HELPER_BYTECODE = HERE / "helper_bytecode"
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

LEGACY_MANYLINUX = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}  # aliases of manylinux_2_N
CACHE_FORMAT = 2  # bump when what a cache entry holds changes (2: the wheels, and a digest beside)
PIP_TIMEOUT_SECONDS = 900
SOURCE = "the source folder"  # owner of the handler's own files, in size reports

# The variables pip's process may see: how it reaches the network (proxies, CAs) and where it may write.
# pip itself runs --isolated with PIP_CONFIG_FILE=/dev/null: it reads no PIP_* variable and no pip.conf,
# so nothing (PIP_NO_BINARY, PIP_CONSTRAINT, PIP_PRE, a pip.conf that sets them, ...) can change what
# gets installed or undo --only-binary=:all:; PYTHON* variables are ignored too (python -I).
PASSED_TO_PIP = frozenset({
    "PATH", "HOME", "USERPROFILE", "SYSTEMROOT", "COMSPEC", "APPDATA", "LOCALAPPDATA", "TMPDIR", "TEMP", "TMP",
    "LANG", "LC_ALL", "LC_CTYPE", "NETRC", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "all_proxy", "no_proxy",
})
PIP_SETTINGS = {"PIP_CONFIG_FILE": os.devnull,  # devnull: pip reads no pip.conf at all, not even the global one
                "PYTHONDONTWRITEBYTECODE": "1"}
# Where packages come from: the only PIP_* settings build.py reads, handed to pip as the options they name.
PIP_SOURCES = {"PIP_INDEX_URL": "--index-url", "PIP_EXTRA_INDEX_URL": "--extra-index-url",
               "PIP_FIND_LINKS": "--find-links", "PIP_NO_INDEX": "--no-index", "PIP_TRUSTED_HOST": "--trusted-host",
               "PIP_CERT": "--cert", "PIP_CLIENT_CERT": "--client-cert", "PIP_PROXY": "--proxy",
               "PIP_DEFAULT_TIMEOUT": "--timeout", "PIP_TIMEOUT": "--timeout", "PIP_RETRIES": "--retries"}

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
    """build_rules.json: what build.py and the Terraform module both check."""

    exclude: re.Pattern[str]
    secret_name: re.Pattern[str]
    terraform_files: re.Pattern[str]
    module_name: re.Pattern[str]
    python_keywords: frozenset[str]
    runtimes: dict[str, int]  # Lambda runtime -> N of the glibc 2.N of its Amazon Linux (wheels for older run too)
    architectures: dict[str, str]  # Lambda's name -> the machine name of wheel tags and uname


class Tree(NamedTuple):
    """Files of (part of) a package by posix path, which of them are executable, and who brought them."""

    files: dict[str, bytes]
    executables: frozenset[str]
    owners: dict[str, str]  # top-level path component -> "name==version" of the dependency that brought it


class _Found(NamedTuple):
    path: str
    size: int
    executable: bool
    device: int  # st_dev and st_ino as listed: reading checks it opened this very file
    inode: int


# --- reading, always bounded ------------------------------------------------------------------

_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def _read_fd(fd: int, limit: int, label: str) -> bytes:
    """At most ``limit`` bytes of the regular file open on ``fd`` (closed here)."""
    try:
        info = os.fstat(fd)  # on what was opened: the path may have changed since
        if not stat.S_ISREG(info.st_mode):
            raise BuildError(f"{label} is not a regular file; give a file")
        if info.st_size > limit:
            raise BuildError(f"{label} is {info.st_size} bytes, over the {limit} this build accepts")
        chunks, remaining = [], limit + 1  # one byte more than allowed shows a file that grew
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
    except OSError as error:
        raise BuildError(f"cannot read {label} ({error.strerror})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:
        raise BuildError(f"{label} grew past {limit} bytes while being read; build again")
    return data


def read_regular_file(path: Path, limit: int, what: str, *, follow_symlinks: bool = True) -> bytes:
    """At most ``limit`` bytes of a regular file; never blocks on a FIFO, never reads a device."""
    label = f"{what} {str(path)!r}"
    try:
        if not stat.S_ISREG(os.stat(path, follow_symlinks=follow_symlinks).st_mode):  # don't even open a device
            raise BuildError(f"{label} is not a regular file; give a file")
        fd = os.open(path, _READ_FLAGS | (0 if follow_symlinks else _NOFOLLOW))
    except OSError as error:
        raise BuildError(f"cannot read {label} ({error.strerror})") from None
    return _read_fd(fd, limit, label)


def _open_below(root_fd: int, relative: str, *, directory: bool) -> int:
    """Open ``relative`` under the folder open on ``root_fd``, following no link on the way."""
    parts = [part for part in relative.split("/") if part]
    fd = os.dup(root_fd)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            flags = (_DIRECTORY_FLAGS if directory or not last else _READ_FLAGS) | _NOFOLLOW
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_root(root: Path, what: str) -> int:
    try:
        return os.open(root, _DIRECTORY_FLAGS)  # the folder as named (the path to it may hold links)
    except OSError as error:
        raise BuildError(f"cannot list {what} {str(root)!r} ({error.strerror})") from None


def _read_listed(root: Path, found: Iterable[_Found], limit: int, what: str) -> dict[str, bytes]:
    """The listed files, each opened below ``root`` with no link followed and checked to be the very file
    listed (st_dev, st_ino), so swapping a folder for a link mid-build reads nothing outside ``root``."""
    files: dict[str, bytes] = {}
    root_fd = _open_root(root, what)
    try:
        for item in found:
            label = f"{what} {item.path!r}"
            try:
                fd = _open_below(root_fd, item.path, directory=False)
                info = os.fstat(fd)
            except OSError as error:
                if error.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                    raise BuildError(f"{label} changed while it was read (a folder became a link, or it moved); "
                                     "build again once nothing changes the folder") from None
                raise BuildError(f"cannot read {label} ({error.strerror})") from None
            if (info.st_dev, info.st_ino) != (item.device, item.inode):
                os.close(fd)
                raise BuildError(f"{label} changed while it was read (another file is there now); "
                                 "build again once nothing changes the folder")
            files[item.path] = _read_fd(fd, min(limit, item.size), label)  # up to the listed size: growth shows
    finally:
        os.close(root_fd)
    return files


@functools.cache
def rules() -> Rules:
    """``build_rules.json``, beside this file: read by build.py and by the Terraform module."""
    try:
        raw = json.loads(read_regular_file(RULES_FILE, MAX_TEXT_BYTES, "rules file"))
        patterns = {field: re.compile(raw[field]) for field in ("exclude", "secret_name", "terraform_files",
                                                                  "module_name")}
        return Rules(**patterns, python_keywords=frozenset(raw["python_keywords"]),
                     runtimes={name: int(value["glibc"].split(".")[1]) for name, value in raw["runtimes"].items()},
                     architectures={name: value["machine"] for name, value in raw["architectures"].items()})
    except (ValueError, KeyError, TypeError, AttributeError, IndexError, re.error) as error:
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


def _walk(root: Path, skip: Callable[[str], bool], what: str,
          refuse: Callable[[str], bool] = lambda path: False) -> list[_Found]:
    """Regular files under ``root`` whose path ``skip`` keeps, sorted. A symbolic link that ``skip`` keeps
    is refused, never followed, so nothing outside ``root`` is read. A directory is left out whole when
    ``skip`` matches its path with a trailing ``/`` (so .git or .venv is not even listed). Each folder is
    opened below ``root`` with no link followed. Paths ``refuse`` matches (folders with a trailing ``/``),
    kept or not, are refused."""
    found: list[_Found] = []
    refused: list[str] = []
    pending = [""]
    root_fd = _open_root(root, what)
    try:
        while pending:
            prefix = pending.pop()
            try:
                fd = _open_below(root_fd, prefix, directory=True)
            except OSError as error:
                raise BuildError(f"cannot list {what} {str(root / prefix)!r} ({error.strerror}); if it changed "
                                 "while being listed, build again") from None
            try:
                with os.scandir(fd) as listing:
                    entries = sorted(listing, key=lambda entry: entry.name)
                for entry in entries:
                    path = prefix + entry.name
                    if entry.is_dir(follow_symlinks=False):
                        if refuse(path + "/"):
                            refused.append(path + "/")
                        elif not skip(path + "/"):
                            pending.append(path + "/")
                        continue
                    link = entry.is_symlink()  # never followed, not even to ask what it points to
                    if refuse(path):
                        refused.append(path)
                        continue
                    if skip(path) or (link and skip(path + "/")):
                        continue
                    _check_path(path, what)
                    if link:
                        raise BuildError(f"{what}: {path!r} is a symbolic link; build.py reads nothing outside "
                                         "the source folder, so put a copy of the file there instead")
                    info = entry.stat(follow_symlinks=False)
                    if not stat.S_ISREG(info.st_mode):
                        raise BuildError(f"{what}: {path!r} is not a regular file (a FIFO, socket or device); "
                                         "remove it")
                    found.append(_Found(path, info.st_size, bool(info.st_mode & stat.S_IXUSR), info.st_dev,
                                        info.st_ino))
            except OSError as error:
                raise BuildError(f"cannot list {what} {str(root / prefix)!r} ({error.strerror})") from None
            finally:
                os.close(fd)
    finally:
        os.close(root_fd)
    if refused:
        raise BuildError(f"{what} {str(root)!r} holds Terraform's working files ({', '.join(sorted(refused)[:3])}): "
                         "the source folder is packaged whole, so state, variable values or saved plans, plaintexts "
                         "included, would go into the package; keep the template's folder apart from the "
                         "Terraform configuration")
    return sorted(found)


def _excluded(path: str) -> bool:
    return rules().exclude.search(path) is not None


def _terraform_file(path: str) -> bool:
    return rules().terraform_files.search(path) is not None


def source_files(source_dir: Path) -> list[str]:
    """The files the package takes from ``source_dir`` (the template included), as sorted posix paths:
    the same list as Terraform's ``[for f in fileset(dir, "**") : f if !can(regex(exclude, f))]``."""
    return [found.path for found in _walk(Path(source_dir), _excluded, "source folder", _terraform_file)]


def handler_module(template_path: Path) -> str:
    """The module name the rendered template gets; Lambda's handler setting is ``<module>.handler``."""
    name = template_path.name
    if not name.endswith(TEMPLATE_SUFFIX):
        raise BuildError(f"template {str(template_path)!r} must be a path to <module>{TEMPLATE_SUFFIX} "
                         "(e.g. handler.py.tmpl)")
    module = name[: -len(TEMPLATE_SUFFIX)]
    if not rules().module_name.fullmatch(module) or module in rules().python_keywords:
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
        raise BuildError(f"{flag}: the text before '=' is not a valid secret name: a letter followed by letters, "
                         "digits or _ (at most 64 characters), as in NAME=VALUE")
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
        raise BuildError(f"ciphertext {name!r} is {len(blob)} bytes, over KMS's {MAX_CIPHERTEXT_BYTES}: it must be a "
                         f"base64 CiphertextBlob of at most {MAX_CIPHERTEXT_BYTES} bytes, as KMS Encrypt returns it")
    return blob


def decode_base64(name: str, text: str) -> bytes:
    try:
        return check_blob(name, base64.b64decode(text.strip(), validate=True))
    except (binascii.Error, ValueError):
        raise BuildError(f"ciphertext {name!r} is not valid base64: it must be a base64 CiphertextBlob of at most "
                         f"{MAX_CIPHERTEXT_BYTES} bytes, as KMS Encrypt returns it") from None


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


def helper_bytecode(runtime: str) -> dict[str, bytes]:
    """The helper's compiled modules for ``runtime`` by their path in the zip
    (``sealed_secrets/__pycache__/cache.cpython-313.pyc``), where that runtime's import finds them. They are
    checked-hash pycs: Python uses one only while its source's hash matches, else it compiles the source."""
    folder = HELPER_BYTECODE / runtime
    tag = "cpython-" + runtime.removeprefix("python").replace(".", "")
    names = sorted(name for name in os.listdir(folder) if name.endswith(".pyc")) if folder.is_dir() else []
    return {f"{HELPER_NAME}/__pycache__/{name.removesuffix('.pyc')}.{tag}.pyc":
            read_regular_file(folder / name, MAX_TEXT_BYTES, "runtime helper's bytecode", follow_symlinks=False)
            for name in names}


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
    found = _walk(source_dir, _excluded, "source folder", _terraform_file)
    if template_path.name not in {item.path for item in found}:
        raise BuildError(f"handler template {str(template_path)!r} is left out by build_rules.json; rename it")
    check_size(f"{SOURCE} {str(source_dir)!r} holds", sum(item.size for item in found), MAX_UNZIPPED_BYTES,
               "unzipped", {item.path: item.size for item in found}, {})
    files = _read_listed(source_dir, [item for item in found if item.path != template_path.name],
                         MAX_UNZIPPED_BYTES, f"{SOURCE} file")
    if len(files.get(REQUIREMENTS, b"")) > MAX_TEXT_BYTES:
        raise BuildError(f"{REQUIREMENTS} is over {MAX_TEXT_BYTES} bytes; is it a lock?")
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
    return Tree(files, frozenset(), {})  # a source file is reported by its own path


# --- dependencies -----------------------------------------------------------------------------

def canonical_name(name: str) -> str:
    """PEP 503: the name an index and pip compare."""
    return re.sub(r"[-_.]+", "-", name).lower()


class Pin(NamedTuple):
    """One line of requirements.txt, as parsed: all that build.py hands on to pip."""

    line: int
    name: str  # canonical
    extras: tuple[str, ...]
    version: str  # normalised
    marker: str | None
    hashes: tuple[str, ...]  # "sha256:<hex>", lower case


@functools.cache
def _packaging() -> Any:
    """pip's own copy of ``packaging`` (every Python that can install has it), else a standalone one."""
    try:
        from pip._vendor.packaging import markers, requirements, version
    except ImportError:
        try:
            from packaging import markers, requirements, version  # type: ignore[no-redef]
        except ImportError:
            raise BuildError(f"{sys.executable} has no pip, and {REQUIREMENTS} needs it; install pip for it "
                             "(python -m ensurepip) or run build.py with a Python that has pip") from None
    return types.SimpleNamespace(Marker=markers.Marker, Requirement=requirements.Requirement,
                                 InvalidRequirement=requirements.InvalidRequirement, Version=version.Version,
                                 InvalidVersion=version.InvalidVersion)


_HASH = re.compile(r"(sha256:[0-9a-f]{64}|sha384:[0-9a-f]{96}|sha512:[0-9a-f]{128})")
_REFUSED_OPTIONS = {"-r": "includes", "--requirement": "includes", "-c": "includes", "--constraint": "includes",
                    "-e": "editables", "--editable": "editables"}


def _parse_line(number: int, line: str) -> Pin:
    """``name[extras]==version [; marker] [--hash=alg:hex]...``, or BuildError naming the line."""
    where = f"{REQUIREMENTS} line {number}"
    if "${" in line:
        raise BuildError(f"{where}: environment-variable references (${{...}}) are not accepted; write the value")
    tokens = line.split()  # as pip splits: the first token that starts with "-" starts the options
    first_option = next((index for index, token in enumerate(tokens) if token.startswith("-")), len(tokens))
    spec, options, hashes = " ".join(tokens[:first_option]), tokens[first_option:], []
    while options:
        option = options.pop(0)
        value = options.pop(0) if option == "--hash" and options else option.partition("=")[2]
        if option != "--hash" and not option.startswith("--hash="):
            name = re.match(r"-{1,2}[A-Za-z-]*", option).group(0)  # type: ignore[union-attr]
            kind = _REFUSED_OPTIONS.get(name, "only --hash is")
            raise BuildError(f"{where}: option {name} is not accepted ({kind}); write name==version lines with "
                             "--hash only, and put a mirror in PIP_INDEX_URL instead")
        if not _HASH.fullmatch(value.lower()):
            raise BuildError(f"{where}: --hash takes sha256:<64 hex digits> (or sha384/sha512), as pip-compile "
                             "--generate-hashes writes it")
        hashes.append(value.lower())
    if not spec:
        raise BuildError(f"{where}: --hash needs a name==version before it")
    packaging = _packaging()
    try:
        requirement = packaging.Requirement(spec)
    except packaging.InvalidRequirement:
        requirement = None
    if requirement is None or requirement.url:
        if requirement is not None or re.search(r"[/\\:@]", spec):
            raise BuildError(f"{where}: URLs and paths are not accepted; pin a release from the index as "
                             "name==version")
        name = re.match(r"[A-Za-z0-9._-]*", spec).group(0) or "this line"  # type: ignore[union-attr]
        raise BuildError(f"{where}: {name} is not pinned; write {name}==VERSION (one exact version per line, "
                         "as pip-compile or pip freeze writes it)")
    specifiers = list(requirement.specifier)
    version = specifiers[0].version if len(specifiers) == 1 and specifiers[0].operator == "==" else "*"
    try:
        pinned = str(packaging.Version(version))
    except packaging.InvalidVersion:
        raise BuildError(f"{where}: {requirement.name} is not pinned; write {requirement.name}==VERSION (one "
                         "exact version per line, as pip-compile or pip freeze writes it)") from None
    return Pin(number, canonical_name(requirement.name), tuple(sorted(requirement.extras)), pinned,
               str(requirement.marker) if requirement.marker else None, tuple(hashes))


def parse_requirements(text: str) -> list[Pin]:
    """Every line of the lock, parsed; comments, blank lines and ``\\`` continuations as pip reads them. A
    line is numbered by its first physical line, as pip numbers it."""
    pins, logical, first = [], "", 1
    for number, physical in enumerate([*text.splitlines(), ""], start=1):
        if not logical:
            first = number
        if physical.endswith("\\"):
            logical += physical[:-1]
            continue
        line, logical = re.sub(r"(?:^|\s)#.*", "", logical + physical).strip(), ""
        if line:
            pins.append(_parse_line(first, line))
    return pins


def active_pins(pins: Iterable[Pin], runtime: str, architecture: str) -> dict[str, Pin]:
    """The pins whose marker holds on the Lambda runtime, by name. A pin its marker switches off pins nothing."""
    environment = {**marker_environment(runtime, architecture), "extra": ""}
    active: dict[str, Pin] = {}
    for pin in pins:
        if pin.marker and not _packaging().Marker(pin.marker).evaluate(environment):
            continue
        if pin.name in active:
            raise BuildError(f"{REQUIREMENTS} line {pin.line}: {pin.name} is pinned twice for {runtime} (also "
                             f"line {active[pin.name].line}); keep one line, or markers that exclude each other")
        active[pin.name] = pin
    return active


def lock_text(pins: Mapping[str, Pin]) -> str:
    """The lock pip reads, written from the parsed fields only: no markers (already decided), no options."""
    lines = []
    for pin in pins.values():
        extras = f"[{','.join(pin.extras)}]" if pin.extras else ""
        lines.append(" ".join([f"{pin.name}{extras}=={pin.version}", *(f"--hash={h}" for h in pin.hashes)]))
    return "".join(line + "\n" for line in lines)


def platform_tags(runtime: str, architecture: str) -> list[str]:
    """The manylinux tags the runtime's glibc runs, newest first (pip prefers earlier tags)."""
    machine, newest = rules().architectures[architecture], rules().runtimes[runtime]
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
            "platform_machine": rules().architectures[architecture], "platform_python_implementation": "CPython",
            "platform_release": "", "platform_system": "Linux", "platform_version": "",
            "python_full_version": f"{version}.0", "python_version": version, "sys_platform": "linux"}


def pip_sources(environ: Mapping[str, str]) -> list[str]:
    """Where packages come from, from the PIP_* names of PIP_SOURCES only, as options pip is given."""
    options = []
    for name, option in PIP_SOURCES.items():
        value = environ.get(name, "").strip()
        if option == "--no-index":
            options += [option] if value.lower() in ("1", "true", "yes", "on") else []
        elif option in ("--extra-index-url", "--find-links", "--trusted-host"):  # pip splits these on spaces
            options += [f"{option}={item}" for item in value.split()]
        elif value:
            options.append(f"{option}={value}")
    return options


def pip_command(python: str, lock: Path, dest: Path, runtime: str, architecture: str,
                sources: Sequence[str] = ()) -> list[str]:
    """pip download of the lock's wheels for the function's platform: isolated (no config file, no PIP_*
    variable), wheels only, no cache of pip's own, an argument list (no shell)."""
    version = runtime[len("python"):]
    return [python, "-I", "-c", PIP_RUNNER, json.dumps(marker_environment(runtime, architecture), sort_keys=True),
            "download", "--isolated", f"--dest={dest}", "--only-binary=:all:", f"--python-version={version}",
            "--implementation=cp", f"--abi=cp{version.replace('.', '')}",  # not a debug/free-threaded host's
            *(f"--platform={tag}" for tag in platform_tags(runtime, architecture)),
            "--no-cache-dir", "--no-input", "--no-color", "--progress-bar=off", "--disable-pip-version-check",
            *sources, f"--requirement={lock}"]


def pip_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {**{key: value for key, value in environ.items() if key in PASSED_TO_PIP}, **PIP_SETTINGS}


# pip's failures, recognised by their text (recorded from pip 23.0.1 and 24.2 in
# tests/unit/fixtures/pip_output/): the first pattern that matches gives the message, with its named groups
# and {target}/{runtime}. Anything else is reported with pip's own last lines.
PIP_FAILURES: tuple[tuple[str, str], ...] = (
    (r"NewConnectionError|Failed to establish a new connection|ConnectTimeoutError|ReadTimeoutError|ProxyError|"
     r"SSLError|Name or service not known|name resolution",
     "pip could not reach the package index; check the network, PIP_INDEX_URL, HTTPS_PROXY or PIP_CERT "
     "(a warm cache builds offline)"),
    (r"DO NOT MATCH THE HASHES(?s:.*?)\n\s+(?P<package>\S+==\S+) from",
     "{package}: the downloaded file does not match the --hash in requirements.txt; regenerate the hashes "
     "(pip-compile --generate-hashes) or check your index"),
    (r"(?:must have their versions pinned with ==|Hashes are required in --require-hashes mode)(?s:.*?)\n\s+\S+"
     r" from \S*/(?P<name>[A-Za-z0-9_.]+)-(?P<version>[^-/\s]+)-\S*\.whl",
     "requirements.txt uses --hash, so every package pip installs needs a pinned line with its hash; add "
     "{name}=={version} with its hash (pip-compile --generate-hashes writes them)"),
    (r"The conflict is caused by:\n(?P<detail>(?:[ \t]+\S.*\n?)+)",
     "the pins in requirements.txt conflict: {detail}; change the pins so they agree (regenerate the lock with "
     "pip-compile)"),
    (r"Package '(?P<package>[^']+)' requires a different Python",
     "{package} does not support {runtime}; pin a version that does, or change --runtime"),
    (r"satisfies the requirement (?P<package>\S+) \(from versions: none\)",
     "no wheel of {package} for {target}; the package may publish only a source distribution: pin a version "
     "that has such a wheel, or build one and serve it with PIP_FIND_LINKS"),
    (r"satisfies the requirement (?P<package>\S+) \(from versions: (?:[^)]*?, )??"  # the last five at most:
     r"(?P<versions>(?:[^,)]+, ){0,4}[^,)]+)\)",
     "{package} has no wheel for {target} at that version; versions with one include {versions}: pin one of them"),
)


def _one_line(text: str, limit: int = 600) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pip_failure(output: str, runtime: str, architecture: str) -> BuildError:
    """pip's failure (its stdout and stderr) as one line: the table's message, or pip's own last lines."""
    target = f"{runtime} on {architecture} (manylinux, glibc 2.{rules().runtimes[runtime]})"
    for pattern, message in PIP_FAILURES:
        found = re.search(pattern, output)
        if found:
            fields = {key: "; ".join(line.strip() for line in value.splitlines() if line.strip())
                      for key, value in found.groupdict().items()}
            if "name" in fields:
                fields["name"] = canonical_name(fields["name"])
            return BuildError(_one_line(message.format(target=target, runtime=runtime, **fields)))
    last = [line.strip() for line in output.splitlines() if line.strip()][-3:] or ["(nothing)"]
    return BuildError(_one_line(f"pip could not fetch {REQUIREMENTS} for {target}; pip said: {' / '.join(last)}"))


def _keep_installed(path: str) -> bool:
    """What records a path, a time or the installer, bytecode and scripts are not packaged."""
    parts = path.split("/")
    return not (parts[0] == "bin" or "__pycache__" in parts or path.endswith(".pyc")
                or (len(parts) == 2 and parts[0].endswith(".dist-info")
                    and parts[1] in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")))


def _mb(size: int) -> str:
    return f"{size / 2**20:.2f} MB"


_WHEEL_NAME = re.compile(r"(?P<name>[^-]+)-(?P<version>[^-]+)(?:-\d[^-]*)?-[^-]+-[^-]+-[^-]+\.whl")


def _wheel_entries(filename: str, data: bytes) -> list[tuple[str, zipfile.ZipInfo]]:
    """What pip --target installs from a wheel: (path, the member that holds it). Its code is never run."""
    entries = []
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, EOFError):
        raise BuildError(f"{filename} is not a valid wheel; pin another version") from None
    for info in infos:
        parts = info.filename.split("/")
        if info.is_dir():
            continue
        if info.filename.startswith("/") or ".." in parts or "" in parts or "\\" in info.filename:
            raise BuildError(f"wheel {filename} holds the path {info.filename!a}, outside its folder; it is not "
                             "a valid wheel: pin another version")
        if parts[0].endswith(".data") and len(parts) > 2:
            if parts[1] not in ("purelib", "platlib", "data"):  # scripts, headers: not importable
                continue
            parts = parts[2:]
        path = "/".join(parts)
        if _keep_installed(path):
            _check_path(path, f"wheel {filename}")
            entries.append((path, info))
    return entries


def _is_executable(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return bool(mode and stat.S_ISREG(mode) and mode & 0o111)  # as pip decides


def _wheel_pin(filename: str, pins: Mapping[str, Pin]) -> tuple[str, Pin | None]:
    """The wheel's ``name==version``, and its pin when the lock pins exactly that version for the runtime."""
    match = _WHEEL_NAME.fullmatch(filename)
    if not match:
        raise BuildError(f"pip fetched {filename!a}, which is not a wheel; pin a version that has one")
    name, version = canonical_name(match["name"]), match["version"]
    pin = pins.get(name)
    try:
        exact = pin is not None and _packaging().Version(version) == _packaging().Version(pin.version)
    except _packaging().InvalidVersion:
        exact = False
    return f"{name}=={version}", pin if exact else None


def _hash_matches(data: bytes, hashes: Collection[str]) -> bool:
    return any(hashlib.new(algorithm, data).hexdigest() == digest
               for algorithm, _, digest in (value.partition(":") for value in hashes))


def hashes_match(wheels: Mapping[str, bytes], pins: Mapping[str, Pin]) -> bool:
    """With --hash in the lock, each wheel matches one of its pin's hashes (checked on every cache read)."""
    if not any(pin.hashes for pin in pins.values()):
        return True
    for filename, data in wheels.items():
        pin = _wheel_pin(filename, pins)[1]
        if pin is None or not _hash_matches(data, pin.hashes):
            return False
    return True


def wheels_tree(wheels: Mapping[str, bytes], pins: Mapping[str, Pin]) -> Tree:
    """The installed files of the wheels, each of exactly its pinned version, and nothing unpinned."""
    labels = {filename: _wheel_pin(filename, pins) for filename in wheels}
    unpinned = sorted(label for label, pin in labels.values() if pin is None)
    if unpinned:
        raise BuildError(f"{REQUIREMENTS} must pin every package pip installs (a full lock, each pin's marker "
                         f"true for the runtime); add {' '.join(unpinned)} (the versions pip chose)")
    if not hashes_match(wheels, pins):
        names = ", ".join(label for filename, (label, pin) in sorted(labels.items())
                          if pin is not None and not _hash_matches(wheels[filename], pin.hashes))
        raise BuildError(f"{names}: the downloaded file does not match the --hash in {REQUIREMENTS}; "
                         "regenerate the hashes (pip-compile --generate-hashes) or check your index")
    members = {filename: _wheel_entries(filename, wheels[filename]) for filename in sorted(wheels)}
    owners: dict[str, str] = {}
    sizes: dict[str, int] = {}
    for filename, entries in members.items():
        for path, info in entries:
            top = path.split("/", 1)[0]
            if path in sizes:
                raise BuildError(f"{labels[filename][0]} and {owners[top]} both install {path!r}; drop one from "
                                 f"{REQUIREMENTS}")
            owners.setdefault(top, labels[filename][0])
            sizes[path] = info.file_size
    check_size(f"{REQUIREMENTS} installs", sum(sizes.values()), MAX_UNZIPPED_BYTES, "unzipped", sizes, owners)
    files: dict[str, bytes] = {}
    executables = set()
    for filename, entries in members.items():
        try:
            with zipfile.ZipFile(io.BytesIO(wheels[filename])) as archive:
                for path, info in entries:
                    files[path] = archive.read(info)  # never more than the size checked above
                    if _is_executable(info):
                        executables.add(path)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError):
            raise BuildError(f"{filename} is not a valid wheel; pin another version") from None
    return Tree(files, frozenset(executables), owners)


def download_wheels(pins: Mapping[str, Pin], runtime: str, architecture: str) -> dict[str, bytes]:
    """pip download of the lock's wheels into a temporary folder, read into memory by file name."""
    with tempfile.TemporaryDirectory(prefix="sealed-build-") as work:
        lock, dest = Path(work) / REQUIREMENTS, Path(work) / "wheels"
        lock.write_text(lock_text(pins), encoding="utf-8")
        command = pip_command(sys.executable, lock, dest, runtime, architecture, pip_sources(os.environ))
        try:
            result = subprocess.run(command, check=False, cwd=work, env=pip_environment(os.environ),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT,  # pip explains on both
                                    text=True, errors="replace", timeout=PIP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            raise BuildError(f"pip did not finish fetching {REQUIREMENTS} within {PIP_TIMEOUT_SECONDS} s; "
                             "check the network or the index") from None
        except OSError as error:
            raise BuildError(f"cannot run {sys.executable} -m pip ({error.strerror})") from None
        if result.returncode != 0:
            raise pip_failure(result.stdout, runtime, architecture)
        found = _walk(dest, lambda path: False, "downloaded wheels") if dest.is_dir() else []
        return _read_listed(dest, found, MAX_UNZIPPED_BYTES, "downloaded wheel")


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


def check_cache_dir(folder: Path) -> None:
    """Refuse a cache someone else could write: its entries go into the package."""
    try:
        info = os.stat(folder)
    except (FileNotFoundError, NotADirectoryError):
        return  # nothing cached yet; writing it reports what is wrong
    except OSError as error:
        raise BuildError(f"cannot use the dependency cache {str(folder)!r} ({error.strerror}); "
                         "pass --cache-dir=DIR") from None
    if not stat.S_ISDIR(info.st_mode):
        raise BuildError(f"the dependency cache {str(folder)!r} is not a folder; pass --cache-dir=DIR")
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise BuildError(f"the dependency cache {str(folder)!r} belongs to another user (uid {info.st_uid}), who "
                         "could change what goes into the package; pass --cache-dir=DIR with a folder of yours")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise BuildError(f"the dependency cache {str(folder)!r} is writable by others "
                         f"(mode {stat.S_IMODE(info.st_mode):o}), who could change what goes into the package; "
                         "run chmod go-w on it or pass --cache-dir=DIR")


def cache_key(requirements: bytes, runtime: str, architecture: str) -> str:
    """Names what an install depends on: the lock's bytes, the target, and how build.py installs."""
    material = {"format": CACHE_FORMAT, "runtime": runtime, "architecture": architecture,
                "platforms": platform_tags(runtime, architecture),
                "requirements": hashlib.sha256(requirements).hexdigest()}
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()


def _digest_file(entry: Path) -> Path:
    return entry.with_name(entry.name + ".sha256")


def load_cached(entry: Path, key: str) -> dict[str, bytes] | None:
    """The wheels cached for ``key``, or None when there is no entry or it fails a check: its digest
    recorded when it was written, the key, or the digest of each wheel."""
    if not entry.is_file():
        return None
    try:
        data = read_regular_file(entry, 2 * MAX_UNZIPPED_BYTES, "cache entry")
        recorded = read_regular_file(_digest_file(entry), 256, "cache digest").decode("ascii").strip()
        if not hmac.compare_digest(hashlib.sha256(data).hexdigest(), recorded):
            return None
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            meta = json.loads(archive.read("meta.json"))
            if meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
                return None
            wheels = {name: archive.read(f"wheels/{name}") for name in meta["wheels"]}
        if any(hashlib.sha256(wheels[name]).hexdigest() != digest for name, digest in meta["wheels"].items()):
            return None
        return wheels
    except (BuildError, zipfile.BadZipFile, KeyError, ValueError, TypeError, AttributeError, OSError, EOFError,
            zlib.error, NotImplementedError):
        return None  # a damaged entry is fetched again and replaced


def store_cached(entry: Path, key: str, wheels: Mapping[str, bytes]) -> None:
    meta = {"format": CACHE_FORMAT, "key": key,
            "wheels": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(wheels.items())}}
    files = {"meta.json": json.dumps(meta, sort_keys=True).encode(), **{f"wheels/{n}": d for n, d in wheels.items()}}
    data = build_zip(files, compresslevel=0)
    where, fix = f"the dependency cache {str(entry.parent)!r}", "pass --cache-dir=DIR"
    try:
        entry.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as error:
        raise BuildError(f"cannot write {where} ({error.strerror}); {fix}") from None
    check_cache_dir(entry.parent)
    write_atomically(entry, data, what=where, fix=fix)
    write_atomically(_digest_file(entry), hashlib.sha256(data).hexdigest().encode(), what=where, fix=fix)


def dependencies(requirements: bytes, runtime: str, architecture: str,
                 cache_dir: Path) -> tuple[Tree, Callable[[], None]]:
    """The installed requirements, from the cache when it has them and they pass every check; and how to
    cache a fresh download (called only once the whole package is good, so a failed build writes nothing)."""
    try:
        pins = active_pins(parse_requirements(requirements.decode("utf-8")), runtime, architecture)
    except UnicodeDecodeError:
        raise BuildError(f"{REQUIREMENTS} is not UTF-8; save it as UTF-8") from None
    if not pins:
        return Tree({}, frozenset(), {}), lambda: None
    key = cache_key(requirements, runtime, architecture)
    entry = cache_dir / f"deps-{key}.zip"
    check_cache_dir(cache_dir)
    cached = load_cached(entry, key)
    if cached is not None and hashes_match(cached, pins):
        return wheels_tree(cached, pins), lambda: None
    wheels = download_wheels(pins, runtime, architecture)
    return wheels_tree(wheels, pins), lambda: store_cached(entry, key, wheels)


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


def check_size(what: str, total: int, limit: int, kind: str, sizes: Mapping[str, int],
               owners: Mapping[str, str]) -> None:
    """The one report of every size limit: the total, Lambda's limit, and the three largest parts (a
    dependency by its name==version, a source file by its path)."""
    if total <= limit:
        return
    by_owner: dict[str, int] = {}
    for path, size in sizes.items():
        owner = owners.get(path.split("/", 1)[0], path)
        by_owner[owner] = by_owner.get(owner, 0) + size
    largest = ", ".join(f"{owner} {_mb(size)}" for owner, size in sorted(by_owner.items(), key=lambda i: -i[1])[:3])
    raise BuildError(f"{what} {total} bytes, over Lambda's {kind} limit of {limit} bytes (largest: {largest}); "
                     f"drop packages from {REQUIREMENTS}, move them to a Lambda layer, or move large files out of "
                     f"{SOURCE}")


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
    source.files.update(helper_bytecode(runtime))  # the source folder's own __pycache__/ is never packaged
    deps, commit = Tree({}, frozenset(), {}), (lambda: None)
    if REQUIREMENTS in source.files:
        deps, commit = dependencies(source.files[REQUIREMENTS], runtime, architecture,
                                    cache_dir or default_cache_dir(os.environ))
    package = merge(source, deps)
    sizes = {name: len(data) for name, data in package.files.items()}
    check_size("the package unzips to", sum(sizes.values()), MAX_UNZIPPED_BYTES, "unzipped", sizes, package.owners)
    data = build_zip(package.files, package.executables)
    check_size("the zip is", len(data), MAX_ZIPPED_BYTES, "zipped (direct upload)", sizes, package.owners)
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
    parser.add_argument("--runtime", default="python3.13", help=f"one of {', '.join(rules().runtimes)}")
    parser.add_argument("--architecture", default="x86_64", help=f"one of {', '.join(rules().architectures)}")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="dependency cache (default $SEALED_BUILD_CACHE_DIR, $XDG_CACHE_HOME/sealed-lambda-build "
                             "or ~/.cache/sealed-lambda-build)")
    args, extras = parser.parse_known_args(argv)
    if extras:  # argparse would echo them, and a stray value may be a blob
        shown = [re.match(r"-{1,2}[A-Za-z0-9-]+", extra) for extra in extras]
        names = ", ".join(match.group(0) if match else "a value (not shown)" for match in shown)
        raise BuildError(f"unrecognized arguments: {names}; options are written --flag=value; see --help")
    for option, allowed in (("runtime", rules().runtimes), ("architecture", rules().architectures)):
        if getattr(args, option) not in allowed:
            raise BuildError(f"{option} must be one of {', '.join(allowed)} (build_rules.json); pass --{option}="
                             f"{next(iter(allowed))}, for example")
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
