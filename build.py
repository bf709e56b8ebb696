#!/usr/bin/env python3
"""Render the Lambda handler with its sealed ciphertexts and write a deterministic zip.

    python build.py --ciphertext NAME=BASE64 [--ciphertext-file NAME=PATH] [--output dist/lambda.zip]

With no ciphertext flags the ciphertexts come from this module's Terraform output
``ciphertexts``. The zip's base64 SHA-256 (Lambda's ``CodeSha256``) is the last line
printed. Same inputs give the same bytes whatever the directory, umask, clock or
timezone. Bad input: one ``error:`` line on stderr, exit 2, no output written.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import io
import json
import logging
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_TEMPLATE = HERE / "lambda_src" / "handler.py.tmpl"
HELPER = HERE / "lambda_src" / "sealed_secrets.py"  # packaged with every template
DEFAULT_OUTPUT = Path("dist") / "lambda.zip"
PLACEHOLDER = "__SEALED_CIPHERTEXTS__"
TEMPLATE_SUFFIX = ".tmpl"
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
MAX_CIPHERTEXT_BYTES = 6144  # KMS's own limit on a CiphertextBlob
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # earliest time a zip can hold; never the clock
FILE_MODE = 0o644


class BuildError(Exception):
    """Bad input; the message says what is wrong and how to fix it."""


def parse_name(name: str, flag: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise BuildError(
            f"{flag}: secret name {name!r} is invalid; use a letter then letters, digits or _ (at most 64)"
        )
    return name


def split_pair(argument: str, flag: str) -> tuple[str, str]:
    """Split ``NAME=VALUE``; the value is never echoed back."""
    name, sep, value = argument.partition("=")
    if not sep or not value:
        raise BuildError(f"{flag} takes NAME=VALUE (got no '=' or an empty value); write it as {flag} NAME=VALUE")
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
        try:
            blob = Path(path).read_bytes()
        except OSError as error:
            raise BuildError(f"--ciphertext-file {name}: cannot read {path!r} ({error.strerror})") from None
        add(name, check_blob(name, blob))
    return {name: base64.b64encode(blob).decode("ascii") for name, blob in blobs.items()}


def render_handler(template: str, ciphertexts: Mapping[str, str]) -> str:
    """Substitute the ciphertexts, as a sorted Python dict literal, for the one placeholder."""
    if not ciphertexts:
        raise BuildError("no ciphertexts to seal; pass --ciphertext NAME=BASE64 or apply the Terraform module first")
    count = template.count(PLACEHOLDER)
    if count != 1:
        raise BuildError(f"the handler template must contain {PLACEHOLDER} exactly once (found {count})")
    body = "".join(f"    {name!r}: {ciphertexts[name]!r},\n" for name in sorted(ciphertexts))
    return template.replace(PLACEHOLDER, "{\n" + body + "}")


def package_entries(template_path: Path, ciphertexts: Mapping[str, str]) -> dict[str, bytes]:
    """The files of the package: the rendered template, the Python modules beside it, and the helper."""
    if template_path.suffix != TEMPLATE_SUFFIX:
        raise BuildError(f"template {str(template_path)!r} must end in {TEMPLATE_SUFFIX} (e.g. handler.py.tmpl)")
    try:
        template = template_path.read_text(encoding="utf-8")
    except OSError as error:
        raise BuildError(f"cannot read handler template {str(template_path)!r} ({error.strerror})") from None
    modules = [HELPER, *(module for module in template_path.parent.glob("*.py") if module.is_file())]
    entries = {module.name: module.read_bytes() for module in modules}  # a copy beside the template wins
    entries[template_path.stem] = render_handler(template, ciphertexts).encode("utf-8")
    return entries


def build_zip(entries: Mapping[str, bytes]) -> bytes:
    """A zip of ``entries`` whose bytes depend on nothing but the entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=ZIP_EPOCH)
            info.create_system = 3  # Unix, so the mode bits below are honoured
            info.external_attr = (0o100000 | FILE_MODE) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, entries[name], compresslevel=9)
    return buffer.getvalue()


def code_sha256(data: bytes) -> str:
    """Base64 SHA-256, the form of Lambda's CodeSha256 and Terraform's filebase64sha256()."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:
        raise BuildError(f"cannot write {str(path)!r} ({error.strerror}); choose another --output") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, FILE_MODE)
        os.replace(temporary, path)
    except OSError as error:
        os.unlink(temporary)
        raise BuildError(f"cannot write {str(path)!r} ({error.strerror}); choose another --output") from None


def terraform_ciphertexts(module_dir: Path) -> dict[str, str]:
    """Read the ``ciphertexts`` output of the applied Terraform module in ``module_dir``."""
    from python_terraform import IsFlagged, Terraform  # only this path needs it

    quiet = logging.getLogger("python_terraform")  # it logs terraform's stderr; we say one line instead
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False

    code, stdout, _ = Terraform(working_dir=str(module_dir)).output_cmd("ciphertexts", json=IsFlagged)
    try:
        value = json.loads(stdout) if code == 0 else None
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise BuildError(
            "no ciphertexts given and no Terraform output 'ciphertexts' found; "
            "run terraform apply first or pass --ciphertext NAME=BASE64"
        )
    return collect_ciphertexts([f"{name}={text}" for name, text in value.items()], [])


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        raise BuildError(f"{message}; see python build.py --help")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--ciphertext", action="append", default=[], metavar="NAME=BASE64",
                        help="a KMS CiphertextBlob, base64 (repeatable)")
    parser.add_argument("--ciphertext-file", action="append", default=[], metavar="NAME=PATH",
                        help="a file holding the raw CiphertextBlob bytes (repeatable)")
    parser.add_argument("--template", type=Path, default=DEFAULT_TEMPLATE,
                        help="handler template; Python modules beside it are packaged too")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="zip to write (default dist/lambda.zip)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        if args.ciphertext or args.ciphertext_file:
            ciphertexts = collect_ciphertexts(args.ciphertext, args.ciphertext_file)
        else:
            ciphertexts = terraform_ciphertexts(HERE)
        data = build_zip(package_entries(args.template, ciphertexts))
        write_atomically(args.output, data)
    except BuildError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(code_sha256(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
