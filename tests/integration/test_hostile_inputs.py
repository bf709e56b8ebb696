"""No input runs code, and the largest load builds: a real tflocal apply on LocalStack.

One deployment carries every hostile value that reaches the build step and is legal there (the
template's folder and the interpreter's path, full of shell syntax), and the most secrets the module
takes at KMS's largest sizes: 50 plaintexts of 4096 bytes sealed by Terraform and 50 ciphertexts of
6144 bytes given pre-encrypted. Canary files show that no command in those values ran. Values that
are not legal (function and secret names, blobs, runtimes, tags, a leading dash) are refused at plan
time, each by its variable with its message: tests/test_terraform.py proves that offline.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
import string
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
from localdeploy import DeployError, Stack, invoke

pytestmark = pytest.mark.localstack

SEALED_COUNT = PREENCRYPTED_COUNT = 50

# Reports a digest of the secret, never the secret, so even this test's function leaks nothing.
DIGEST_TEMPLATE = '''import hashlib

import sealed_secrets

SEALED_CIPHERTEXTS = __SEALED_CIPHERTEXTS__
SEALED_KEY_ARN = __SEALED_KEY_ARN__
sealed_secrets.register(SEALED_CIPHERTEXTS, key_id=SEALED_KEY_ARN)


def handler(event, context):
    value = sealed_secrets.get_secret_bytes(event["secret"])
    return {"sealed": len(SEALED_CIPHERTEXTS), "bytes": len(value), "sha256": hashlib.sha256(value).hexdigest()}
'''


def hostile(canary: Path) -> str:
    """A name that runs `touch canary` if anything ever hands it to a shell, in every way one could."""
    return f"x $(touch {canary}) `touch {canary}`; touch {canary} && '\"\n-rf {{a,b}} [*] ~ $HOME"


@pytest.fixture(scope="module")
def canaries(tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("canaries")
    return [folder / "absolute-canary", Path("relative-canary")]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, localstack, canaries):
    rng = random.Random(20261129)
    scratch = tmp_path_factory.mktemp("hostile")
    source = scratch / hostile(canaries[0]) / hostile(canaries[1])
    source.mkdir(parents=True)
    (source / "handler.py.tmpl").write_text(DIGEST_TEMPLATE)
    interpreter = scratch / f"bin {hostile(canaries[0])}".replace("\n", " ") / f"-python; touch {canaries[1]}"
    interpreter.parent.mkdir(parents=True)
    interpreter.symlink_to(sys.executable)

    plaintexts = {f"sealed_{i:02d}": "".join(rng.choices(string.printable, k=4096)) for i in range(SEALED_COUNT)}
    blobs = {f"preencrypted_{i:02d}": base64.b64encode(rng.randbytes(6144)).decode()
             for i in range(PREENCRYPTED_COUNT)}
    variables = {"secrets": plaintexts, "encrypted_secrets": blobs,
                 "handler_template": str(source / "handler.py.tmpl"), "python_executable": str(interpreter)}
    stack = Stack(f"hostile-{uuid.uuid4().hex[:8]}", workdir=scratch / "module", extra_vars=variables)
    stack.init().apply()
    yield stack, variables
    stack.set_variables(**variables)  # a test may have left a refused value behind
    if stack.has_resources():
        stack.destroy()


def assert_no_canary(canaries: list[Path], *folders: Path) -> None:
    for canary in canaries:
        assert not canary.exists() and not canary.is_symlink(), f"{canary} exists: a command in a value ran"
        for folder in folders:
            assert not list(folder.rglob(canary.name)), f"{canary.name} under {folder}: a command in a value ran"


def test_hostile_paths_are_taken_literally_and_100_largest_secrets_deploy(deployment, aws, canaries):
    stack, variables = deployment
    plaintexts, blobs = variables["secrets"], variables["encrypted_secrets"]
    assert_no_canary(canaries, stack.workdir, Path.cwd())
    # The package holds every sealed ciphertext, and the largest one opens inside the function.
    with zipfile.ZipFile(io.BytesIO(stack.package())) as archive:
        handler = archive.read("handler.py").decode()
    for name, blob in blobs.items():
        assert f"{name!r}: {blob!r}" in handler
    name, plaintext = "sealed_49", plaintexts["sealed_49"].encode()
    error, payload, _ = invoke(aws("lambda"), stack.function_name, {"secret": name})
    assert error is None, payload
    assert payload == {"sealed": 100, "bytes": 4096, "sha256": hashlib.sha256(plaintext).hexdigest()}
    assert stack.plan_exit_code() == 0


def test_a_leading_dash_is_refused_at_plan_time_and_runs_nothing(deployment, canaries):
    stack, variables = deployment
    stack.set_variables(**{**variables, "python_executable": f"-c;touch {canaries[0]}"})
    try:
        with pytest.raises(DeployError, match=r"python_executable\s+must\s+name\s+a\s+Python\s+interpreter"):
            stack.plan_exit_code()  # Terraform wraps its messages: any whitespace between the words
    finally:
        stack.set_variables(**variables)  # the shared deployment as the other tests expect it, in any order
    assert_no_canary(canaries, stack.workdir, Path.cwd())
