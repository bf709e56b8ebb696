"""Prefetch (issue 16): opt in with SEALED_SECRETS_PREFETCH or register(..., prefetch=True); a daemon thread
starts every Decrypt at register; the first read joins the flight in progress; never before a SnapStart
snapshot; a failure surfaces on the first read exactly as without prefetch, and the prefetch thread never
raises or logs. Synchronised with events only."""

from __future__ import annotations

import base64
import logging
import os
import threading

import boto3
import pytest
from debug_logging import every_logger_at_debug
from botocore.exceptions import ClientError

import sealed_secrets
from kms_fake_server import Captured, FakeKms, Reply, decrypted
from sealed_secrets import SealedSecrets, SecretDecryptionError, snapstart

PLAINTEXT = b"prefetch-plaintext-marker-9d2c"
CIPHERTEXT = base64.b64encode(b"\x01\x02prefetch-ciphertext").decode()


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_") or name == "SEALED_SECRETS_PREFETCH":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-api")
    monkeypatch.setattr(sealed_secrets, "_default", None)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    monkeypatch.setattr(snapstart, "_restored", False)
    monkeypatch.setattr(snapstart, "_deferred", snapstart.weakref.WeakSet())


class GatedKms:
    """A boto3-style client: each Decrypt signals ``started``, waits for ``gate``, then answers or raises."""

    def __init__(self, error: Exception | None = None) -> None:
        self.started, self.gate, self.finished = threading.Event(), threading.Event(), threading.Event()
        self.error, self.calls = error, 0

    def decrypt(self, *, CiphertextBlob: bytes, EncryptionContext: dict) -> dict:  # noqa: N803 - boto3's names
        self.calls += 1
        self.started.set()
        self.gate.wait(30)
        try:
            if self.error is not None:
                raise self.error
            return {"Plaintext": PLAINTEXT}
        finally:
            self.finished.set()


class JoinClock(sealed_secrets.Clock):
    """Tells when a reader (not the prefetch thread) waits on a flight in progress."""

    def __init__(self) -> None:
        self.reader_joined = threading.Event()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if threading.current_thread().name == "reader":
            self.reader_joined.set()
        return event.wait(timeout)


def prefetch_threads(earlier: frozenset[threading.Thread] = frozenset()) -> set[threading.Thread]:
    """The prefetch threads alive now, but for ``earlier`` ones (an earlier test's may still be ending)."""
    return {thread for thread in threading.enumerate() if thread.name == "sealed-secrets-prefetch"} - earlier


def test_the_first_read_joins_the_decrypt_the_prefetch_started():
    clock, client = JoinClock(), GatedKms()
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client, clock=clock)
    secrets.prefetch()
    assert client.started.wait(10)  # the Decrypt started before anyone read
    read: list[bytes] = []
    reader = threading.Thread(target=lambda: read.append(secrets.get_bytes("db")), name="reader")
    reader.start()
    assert clock.reader_joined.wait(10)  # the reader waits for that Decrypt...
    client.gate.set()
    reader.join(10)
    assert read == [PLAINTEXT] and client.calls == 1  # ...and there was only that one


def test_a_failed_prefetch_surfaces_on_the_first_read_exactly_as_without(monkeypatch):
    hooked: list[object] = []
    monkeypatch.setattr(threading, "excepthook", hooked.append)
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, "Decrypt")
    prefetched = GatedKms(denied)
    prefetched.gate.set()
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=prefetched)
    secrets.prefetch()
    assert prefetched.finished.wait(10)
    for thread in prefetch_threads():
        thread.join(10)
    with_prefetch = raised(lambda: secrets.get("db"))
    plain = GatedKms(denied)
    plain.gate.set()
    without = raised(lambda: SealedSecrets({"db": CIPHERTEXT}, client=plain).get("db"))
    assert (type(with_prefetch), with_prefetch.code, str(with_prefetch)) == (type(without), without.code, str(without))
    assert isinstance(without, SecretDecryptionError) and without.code == "AccessDeniedException"
    assert prefetched.calls == 2  # the failure was kept for no one: the read asked KMS again
    assert hooked == []  # the prefetch thread raised nothing


def test_a_read_that_joins_a_failing_prefetch_gets_the_same_error():
    clock, client = JoinClock(), GatedKms(ClientError({"Error": {"Code": "DisabledException", "Message": "x"}}, "Decrypt"))
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client, clock=clock)
    secrets.prefetch()
    assert client.started.wait(10)
    errors: list[BaseException] = []
    reader = threading.Thread(target=lambda: errors.append(raised(lambda: secrets.get("db"))), name="reader")
    reader.start()
    assert clock.reader_joined.wait(10)
    client.gate.set()
    reader.join(10)
    assert [(type(error), error.code) for error in errors] == [(SecretDecryptionError, "DisabledException")]
    assert client.calls == 1


def opened_by(requests: list[Captured], arrived: threading.Event):
    def answer(received: Captured) -> Reply:
        requests.append(received)
        arrived.set()
        return decrypted(PLAINTEXT)
    return answer


@pytest.mark.parametrize(("value", "prefetched"), [("1", True), ("true", True), ("TRUE", True), ("0", False), ("", False)])
def test_the_environment_variable_turns_it_on_for_register(monkeypatch, value, prefetched):
    requests: list[Captured] = []
    arrived = threading.Event()
    with FakeKms(default=opened_by(requests, arrived)) as kms:
        for name, setting in {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "us-east-1",
                              "AWS_ENDPOINT_URL": kms.url, "SEALED_SECRETS_PREFETCH": value}.items():
            monkeypatch.setenv(name, setting)
        earlier = frozenset(prefetch_threads())
        sealed_secrets.register({"db": CIPHERTEXT})
        assert bool(prefetch_threads(earlier)) is prefetched  # started by register, before any read
        if prefetched:
            assert arrived.wait(10)  # KMS was asked before anyone read
        assert sealed_secrets.get_secret_bytes("db") == PLAINTEXT
    assert len(kms.requests) == 1


def test_the_python_switch_overrides_the_variable(monkeypatch):
    monkeypatch.setenv("SEALED_SECRETS_PREFETCH", "1")
    client = GatedKms()
    client.gate.set()
    monkeypatch.setattr(sealed_secrets.cache, "opener", lambda *args, **kwargs: sealed_secrets.boto.BotoKms(client))
    earlier = frozenset(prefetch_threads())
    sealed_secrets.register({"db": CIPHERTEXT}, prefetch=False)
    assert prefetch_threads(earlier) == set() and client.calls == 0
    sealed_secrets.register({"api": CIPHERTEXT}, prefetch=True)
    assert client.started.wait(10)


def test_never_before_a_snapstart_snapshot_and_right_after_the_restore(monkeypatch):
    monkeypatch.setenv("AWS_LAMBDA_INITIALIZATION_TYPE", "snap-start")
    client = GatedKms()
    client.gate.set()
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client)
    earlier = frozenset(prefetch_threads())
    secrets.prefetch()
    assert prefetch_threads(earlier) == set() and client.calls == 0  # nothing started during init
    snapstart.before_snapshot()
    assert client.calls == 0
    snapstart.after_restore()  # the variable is still "snap-start" after a restore
    assert client.started.wait(10)
    assert secrets.get_bytes("db") == PLAINTEXT and client.calls == 1


def test_the_prefetch_logs_nothing(monkeypatch):
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.DEBUG)
    root = logging.getLogger()
    with every_logger_at_debug():
        root.addHandler(handler)
        try:
            client = GatedKms(ClientError({"Error": {"Code": "AccessDeniedException", "Message": "x"}}, "Decrypt"))
            client.gate.set()
            SealedSecrets({"db": CIPHERTEXT}, client=client).prefetch()
            assert client.finished.wait(10)
            for thread in prefetch_threads():
                thread.join(10)
        finally:
            root.removeHandler(handler)
    assert [record for record in records if record.threadName == "sealed-secrets-prefetch"] == []


def raised(action) -> BaseException:
    try:
        action()
    except BaseException as error:  # noqa: BLE001
        return error
    raise AssertionError("nothing was raised")
