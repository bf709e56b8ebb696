"""SnapStart (issue 16): with a stand-in ``snapshot_restore_py`` (the API of AWS's package: register_*,
get_* registries the runtime runs), the helper registers its hooks; after the before-snapshot hook a heap
scan finds no plaintext; the first read after restore decrypts again, with fresh container credentials.

The end-to-end test runs a fresh interpreter (the hooks register at import, and the scan must not see this
test's own constants) and steps it through init, snapshot and restore, one stage per line on its stdin."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import sealed_secrets
from credentials_fake_server import FakeCredentials, Issued
from kms_fake_server import FakeKms
from sealed_secrets import SealedSecrets, credentials, snapstart
from sigv4_reference import botocore_authorization

LAMBDA_DIR = Path(__file__).resolve().parents[2] / "lambda_src"
PLAINTEXT = b"snapstart-plaintext-marker-4e1b"
CIPHERTEXT = base64.b64encode(b"\x01\x02snapstart-ciphertext").decode()
BEFORE = Issued("ASIABEFORESNAPSHOT", "before-secret-key", "before-session-token")
AFTER = Issued("ASIAAFTERRESTORE", "after-secret-key", "after-session-token")

# The API of AWS's snapshot-restore-py 1.0.0, which the Python 3.12+ runtimes carry.
STAND_IN = '''
_before_snapshot_registry = []
_after_restore_registry = []
def register_before_snapshot(func, *args, **kwargs):
    _before_snapshot_registry.append((func, args, kwargs))
    return func
def register_after_restore(func, *args, **kwargs):
    _after_restore_registry.append((func, args, kwargs))
    return func
def get_before_snapshot():
    return _before_snapshot_registry
def get_after_restore():
    return _after_restore_registry
'''

# The function's init, the snapshot and the restore, as Lambda runs them; one JSON line per stage.
SCRIPT = r'''
import base64, gc, hashlib, json, sys, threading
needle = open(sys.argv[1], "rb").read()
needles = [needle, needle.decode(), base64.b64encode(needle), base64.b64encode(needle).decode()]
skip = {id(thing) for thing in needles}
expected = hashlib.sha256(needle).hexdigest()

def plaintexts_on_the_heap():
    """Every str, bytes and bytearray that a tracked object refers to (str and bytes are not tracked
    themselves), in any of the plaintext's forms."""
    gc.collect()
    hits = 0
    for thing in gc.get_objects():
        for ref in (thing, *gc.get_referents(thing)):
            if id(ref) in skip:
                continue
            if type(ref) is str and (needles[1] in ref or needles[3] in ref):
                hits += 1
            elif type(ref) in (bytes, bytearray) and (needles[0] in ref or needles[2] in ref):
                hits += 1
    return hits

def stage(name, **facts):
    facts["prefetch_threads"] = sum(t.name == "sealed-secrets-prefetch" for t in threading.enumerate())
    print(json.dumps({"stage": name, **facts}), flush=True)
    sys.stdin.readline()

import snapshot_restore_py
import sealed_secrets
sealed_secrets.register({"db": sys.argv[2]})
stage("registered", hooks=[len(snapshot_restore_py.get_before_snapshot()), len(snapshot_restore_py.get_after_restore())])
served = hashlib.sha256(sealed_secrets.get_secret("db").encode()).hexdigest() == expected
stage("init-read", served=served, on_heap=plaintexts_on_the_heap())
for func, args, kwargs in snapshot_restore_py.get_before_snapshot():
    func(*args, **kwargs)
stage("snapshot", on_heap=plaintexts_on_the_heap())
for func, args, kwargs in snapshot_restore_py.get_after_restore():
    func(*args, **kwargs)
served = hashlib.sha256(sealed_secrets.get_secret("db").encode()).hexdigest() == expected
stage("restored", served=served)
'''


def signed_with(received, issued: Issued) -> bool:
    return received.header("Authorization") == botocore_authorization(
        received, access_key=issued.access_key, secret_key=issued.secret_key, token=issued.token, region="us-east-1")


@pytest.mark.parametrize("prefetch", ["0", "1"])
def test_no_snapshot_holds_a_plaintext_and_a_restore_decrypts_with_fresh_credentials(tmp_path, prefetch):
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "snapshot_restore_py.py").write_text(STAND_IN)
    (tmp_path / "needle").write_bytes(PLAINTEXT)
    (tmp_path / "init.py").write_text(SCRIPT)
    with FakeCredentials(BEFORE) as creds, FakeKms(plaintext=PLAINTEXT) as kms:
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": f"{tmp_path / 'hooks'}{os.pathsep}{LAMBDA_DIR}",
               "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": kms.url, "AWS_LAMBDA_FUNCTION_NAME": "orders-api",
               "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start", "SEALED_SECRETS_PREFETCH": prefetch,
               "AWS_CONTAINER_CREDENTIALS_FULL_URI": creds.url, "AWS_CONTAINER_AUTHORIZATION_TOKEN": "auth-token",
               "HOME": str(tmp_path)}
        process = subprocess.Popen([sys.executable, str(tmp_path / "init.py"), str(tmp_path / "needle"), CIPHERTEXT],
                                   env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stages = {}
        try:
            for _ in range(4):
                line = process.stdout.readline()
                assert line, process.stderr.read()
                facts = json.loads(line)
                facts["kms_requests"], facts["credential_fetches"] = len(kms.requests), len(creds.requests)
                stages[facts.pop("stage")] = facts
                if "snapshot" in stages and "restored" not in stages:
                    creds.rotate(AFTER)  # a restored environment's credentials endpoint serves new ones
                process.stdin.write("next\n")
                process.stdin.flush()
            assert process.wait(30) == 0, process.stderr.read()
        finally:
            process.kill()
    assert stages["registered"] == {"hooks": [1, 1], "prefetch_threads": 0, "kms_requests": 0, "credential_fetches": 0}
    # read during init: served, and on the heap (the scan sees it)
    assert stages["init-read"]["served"] is True and stages["init-read"]["on_heap"] > 0
    assert stages["init-read"]["kms_requests"] == 1 and stages["init-read"]["prefetch_threads"] == 0
    # the before-snapshot hook dropped it
    assert stages["snapshot"]["on_heap"] == 0
    # the first read after restore: a new Decrypt, signed with the new credentials
    assert stages["restored"]["served"] is True and stages["restored"]["kms_requests"] == 2
    assert stages["restored"]["credential_fetches"] == 2
    assert signed_with(kms.requests[0], BEFORE) and signed_with(kms.requests[1], AFTER)


# ------------------------------------------------------------------------------ in process: a Decrypt in flight


class GatedKms:
    """A boto3-style client whose Decrypt starts, signals, and waits for ``gate``."""

    def __init__(self) -> None:
        self.started, self.gate, self.calls = threading.Event(), threading.Event(), 0

    def decrypt(self, *, CiphertextBlob: bytes, EncryptionContext: dict) -> dict:  # noqa: N803 - boto3's names
        self.calls += 1
        self.started.set()
        self.gate.wait(30)
        return {"Plaintext": PLAINTEXT}


class SignallingClock(sealed_secrets.Clock):
    """Tells when the hook starts waiting for a flight."""

    def __init__(self) -> None:
        self.hook_waits = threading.Event()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if threading.current_thread().name == "snapshot-hook":
            self.hook_waits.set()
        return event.wait(timeout)


@pytest.fixture
def fresh_snapstart(monkeypatch):
    monkeypatch.setattr(snapstart, "_restored", False)
    monkeypatch.setattr(snapstart, "_deferred", snapstart.weakref.WeakSet())
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-api")
    credentials.forget()


def test_the_hook_waits_out_a_decrypt_in_flight_and_keeps_none_of_it(fresh_snapstart):
    clock, client = SignallingClock(), GatedKms()
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client, clock=clock)
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(secrets.get_bytes("db")))
    reader.start()
    assert client.started.wait(10)
    hook = threading.Thread(target=snapstart.before_snapshot, name="snapshot-hook")
    hook.start()
    assert clock.hook_waits.wait(10)  # the hook waits for the flight...
    assert hook.is_alive()
    client.gate.set()  # ...until KMS answers
    hook.join(10)
    reader.join(10)
    assert not hook.is_alive() and read == [PLAINTEXT]  # the reader was served
    assert secrets._opened == {} and secrets._texts == {}  # and nothing was kept
    assert secrets.get_bytes("db") == PLAINTEXT and client.calls == 2  # the next read decrypts again


class ExpiredClock(sealed_secrets.Clock):
    """For the hook, the budget is already spent: it abandons the flight at once."""

    def wait(self, event: threading.Event, timeout: float) -> bool:
        return event.is_set() if threading.current_thread().name == "snapshot-hook" else event.wait(timeout)


def test_a_decrypt_that_outlives_the_hooks_wait_is_abandoned_served_but_never_cached(fresh_snapstart):
    client = GatedKms()
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client, clock=ExpiredClock())
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(secrets.get_bytes("db")))
    reader.start()
    assert client.started.wait(10)
    hook = threading.Thread(target=snapstart.before_snapshot, name="snapshot-hook")
    hook.start()
    hook.join(10)
    assert not hook.is_alive()  # it did not wait for KMS
    client.gate.set()
    reader.join(10)
    assert read == [PLAINTEXT] and secrets._opened == {} and secrets._texts == {}


def test_the_hook_drops_cached_plaintexts_and_credentials(fresh_snapstart):
    client = GatedKms()
    client.gate.set()
    secrets = SealedSecrets({"db": CIPHERTEXT, "api": CIPHERTEXT}, client=client)
    assert secrets.get_bytes("db") == PLAINTEXT and secrets.get("api") == PLAINTEXT.decode()
    credentials._cache["http://127.0.0.1:1/creds"] = credentials.Credentials("a", "b", "c")
    snapstart.before_snapshot()
    assert secrets._opened == {} and secrets._texts == {} and credentials._cache == {}


def test_without_snapshot_restore_py_no_hook_is_needed(monkeypatch):
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", None)  # import raises ImportError
    assert snapstart.install() is False
