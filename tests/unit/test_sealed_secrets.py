"""The runtime helper: caching, typed errors, arguments, the stdlib opener's transport and budget, the
boto3 fallback, per-secret single flight, and that no secret leaks into logs, output or tracebacks.

The SigV4 signatures themselves are proven in test_kms_sigv4.py.
"""

from __future__ import annotations

import base64
import gc
import http.client
import glob
import json
import logging
import os
import pickle
import re
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

import build
import sealed_secrets
from kms_fake_server import Captured, FakeKms, Reply, decrypted, kms_error, sealed_under, self_signed_certificate
from sealed_secrets import Budget, SealedSecrets, SecretDecryptionError, SecretError, SecretNotFoundError
from sealed_secrets.boto import BotoKms
from sealed_secrets.budget import clipped
from sealed_secrets.credentials import Credentials
from sealed_secrets.transport import StdlibKms

PLAINTEXT = "correct-horse-battery-staple-é-42"
BLOB = b"\x01\x02\x03sealed-ciphertext-marker\x00" + bytes(range(128, 256))
CIPHERTEXT = base64.b64encode(BLOB).decode()
CONTEXT = {"LambdaFunctionName": "orders-api"}
KEY_ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"  # the package's key
OTHER_KEY_ARN = "arn:aws:kms:us-east-1:444455556666:key/0987dcba-09fe-87dc-65ba-ab0987654321"  # someone else's
LAMBDA_DIR = Path(__file__).resolve().parents[2] / "lambda_src"


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    """No AWS settings from the machine, the function's name set, a fresh registry for get_secret."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-api")
    monkeypatch.setattr(sealed_secrets, "_default", None)
    # boto3's default session caches the credentials it first found (an integration test's, say).
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)


def lambda_environment(monkeypatch, kms: FakeKms, **extra: str) -> None:
    """What Lambda (here, LocalStack) gives the function: credentials, region, endpoint."""
    for name, value in {"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret-key-example",
                        "AWS_SESSION_TOKEN": "session-token-example", "AWS_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL": kms.url, **extra}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def kms():
    client = boto3.client("kms", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_decrypt(stubber: Stubber, plaintext: bytes | str = PLAINTEXT) -> None:
    data = plaintext.encode() if isinstance(plaintext, str) else plaintext
    stubber.add_response("decrypt", {"Plaintext": data, "KeyId": "k"},
                         {"CiphertextBlob": BLOB, "EncryptionContext": CONTEXT})


CEILING = 30.0  # seconds: how long a test waits for an event that must come (never reached when all is well)


class FakeClock(sealed_secrets.Clock):
    """Time as the test decides it: ``now`` is the monotonic clock, a pause only moves it on, and a wait
    for another thread is a real wait for its event, up to a generous ceiling.

    With ``expire_after=n`` every wait gives up (as if its timeout had passed, moving ``now`` on by it)
    as soon as ``n`` waits are in progress: a hung Decrypt without waiting for one. ``jitter`` draws the
    longest pause allowed, so the backoff is checked at its worst."""

    def __init__(self, *, expire_after: int | None = None) -> None:
        self.now = 100.0
        self.expire_after = expire_after
        self.pauses: list[float] = []
        self.waits: list[float] = []  # the timeout of each wait, in the order they began
        self._changed = threading.Condition()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds

    def jitter(self, upper: float) -> float:
        return upper

    def wait(self, event: threading.Event, timeout: float) -> bool:
        with self._changed:
            self.waits.append(timeout)
            self._changed.notify_all()
            if self.expire_after is not None:
                assert self._changed.wait_for(lambda: len(self.waits) >= self.expire_after, CEILING)
                self.now += timeout
                return event.is_set()
        return event.wait(CEILING)

    def until_waiting(self, count: int) -> bool:
        """Whether ``count`` waits began (within the ceiling)."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self.waits) >= count, CEILING)


class CountingKms:
    """A boto3-style client that counts its Decrypts. A blob in ``gates`` sets ``entered[blob]`` when its
    Decrypt begins, then waits for its gate."""

    def __init__(self, plaintext: bytes = PLAINTEXT.encode(), *, error: BaseException | None = None,
                 gates: dict[bytes, threading.Event] | None = None) -> None:
        self.calls: list[bytes] = []
        self._lock = threading.Lock()
        self.plaintext, self.error, self.gates = plaintext, error, gates or {}
        self.entered = {blob: threading.Event() for blob in self.gates}

    def decrypt(self, *, CiphertextBlob: bytes, EncryptionContext: dict) -> dict:  # noqa: N803 - boto3's names
        with self._lock:
            self.calls.append(CiphertextBlob)
        if CiphertextBlob in self.gates:
            self.entered[CiphertextBlob].set()
            assert self.gates[CiphertextBlob].wait(CEILING)
        if self.error is not None:
            raise self.error
        return {"Plaintext": self.plaintext}


def with_client(secrets: SealedSecrets, client: object) -> None:
    """Make the registered set open through a handler's own client (register() takes none)."""
    secrets._opener = BotoKms(client)


def raised(action: Callable[[], object]) -> BaseException:
    try:
        action()
    except BaseException as error:  # noqa: BLE001
        return error
    raise AssertionError("nothing was raised")


# ------------------------------------------------------------------------------ reads and the cache


def test_many_reads_make_one_decrypt_with_the_functions_context(kms):
    client, stubber = kms
    expect_decrypt(stubber)  # exactly one response: a second Decrypt would fail the stub
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client)
    assert [secrets.get("db") for _ in range(50)] == [PLAINTEXT] * 50
    assert secrets.get_bytes("db") == PLAINTEXT.encode()


def test_max_age_reopens_a_stale_plaintext(kms):
    client, stubber = kms
    clock = FakeClock()
    expect_decrypt(stubber, "v1")
    expect_decrypt(stubber, "v2")
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client, function_name="orders-api", clock=clock)
    assert secrets.get("db", max_age=60) == "v1"
    clock.now += 59.9
    assert secrets.get("db", max_age=60) == "v1"
    clock.now += 0.1
    assert secrets.get("db", max_age=60) == "v2"
    clock.now += 10_000
    assert secrets.get("db") == "v2"  # no max_age: kept for the container's life


def test_clear_cache_forgets_every_plaintext():
    client = CountingKms()
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client)
    secrets.get("db")
    secrets.clear_cache()
    secrets.get("db")
    assert len(client.calls) == 2


@pytest.mark.parametrize("code", ["InvalidCiphertextException", "AccessDeniedException", "DisabledException",
                                  "KMSInvalidStateException", "IncorrectKeyException"])
def test_kms_errors_through_a_client_become_typed_errors(kms, code):
    client, stubber = kms
    stubber.add_client_error("decrypt", service_error_code=code, service_message=f"echo {CIPHERTEXT} {PLAINTEXT}")
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client, function_name="orders-api")
    error = raised(lambda: secrets.get("db"))
    assert isinstance(error, SecretDecryptionError)
    assert (error.secret_name, error.code) == ("db", code)
    assert str(error) == f"could not decrypt sealed secret 'db': KMS {code}"
    assert error.__cause__ is None and error.__context__ is None


def test_a_failed_decrypt_is_not_cached(kms):
    client, stubber = kms
    stubber.add_client_error("decrypt", service_error_code="DisabledException")
    expect_decrypt(stubber)
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client, function_name="orders-api")
    with pytest.raises(SecretDecryptionError, match="KMS DisabledException$"):
        secrets.get("db")
    assert secrets.get("db") == PLAINTEXT


def test_unknown_names_are_a_typed_error_listing_what_is_sealed():
    secrets = SealedSecrets({"db": CIPHERTEXT, "api": CIPHERTEXT}, client=CountingKms())
    with pytest.raises(SecretNotFoundError, match=r"^no sealed secret named 'nope'; this package seals: api, db$"):
        secrets.get("nope")


def test_non_kms_failures_of_a_client_are_typed_too():
    client = CountingKms(error=ConnectionError(f"could not reach KMS with {CIPHERTEXT}"))
    error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}, client=client).get("db"))
    assert isinstance(error, SecretDecryptionError) and str(error).endswith("KMS ConnectionError")


def test_invalid_base64_is_reported_as_such_and_kms_is_not_called():
    client = CountingKms()
    error = raised(lambda: SealedSecrets({"db": "not base64!"}, client=client).get("db"))
    assert isinstance(error, SecretDecryptionError) and error.code == "InvalidBase64"
    assert str(error) == ("could not decrypt sealed secret 'db': its ciphertext in this package is not valid "
                          "base64 (KMS was not called)")
    assert client.calls == []


def test_without_a_function_name_kms_is_not_called(monkeypatch):
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME")
    client = CountingKms()
    error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}, client=client).get("db"))
    assert isinstance(error, SecretDecryptionError) and error.code == "NoFunctionName"
    assert client.calls == []


# ------------------------------------------------------------------------------ text, bytes and JSON


def test_a_plaintext_that_is_not_utf8_is_a_typed_error_from_get_and_bytes_from_get_bytes(monkeypatch):
    binary = b"\xff\xfe\x00binary-key-marker\x80"
    with_client(sealed_secrets.register({"key": CIPHERTEXT}), CountingKms(binary))
    error = raised(lambda: sealed_secrets.get_secret("key"))
    assert isinstance(error, SecretDecryptionError) and error.code == "PlaintextNotUtf8"
    assert str(error) == "could not decrypt sealed secret 'key': its plaintext is not UTF-8 text (read it with get_secret_bytes)"
    assert error.__context__ is None
    assert sealed_secrets.get_secret_bytes("key") == binary


def test_get_secret_json_parses_the_usual_database_credentials():
    document = {"username": "app", "password": PLAINTEXT, "port": 5432}
    client = CountingKms(json.dumps(document).encode())
    with_client(sealed_secrets.register({"db": CIPHERTEXT}), client)
    assert sealed_secrets.get_secret_json("db") == document
    assert sealed_secrets.get_secret_json("db") == document
    assert len(client.calls) == 1


def test_get_secret_json_refuses_what_is_not_json_without_quoting_it():
    with_client(sealed_secrets.register({"db": CIPHERTEXT}), CountingKms(f"password={PLAINTEXT}".encode()))
    error = raised(lambda: sealed_secrets.get_secret_json("db"))
    assert isinstance(error, SecretDecryptionError) and error.code == "PlaintextNotJson"
    assert str(error) == "could not decrypt sealed secret 'db': its plaintext is not a JSON document"
    assert error.__context__ is None and PLAINTEXT not in repr(error)


# ------------------------------------------------------------------------------ arguments, registration, pickling


@pytest.mark.parametrize(("max_age", "kind"), [
    (-1, ValueError), (-0.001, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
    (float("-inf"), ValueError), (True, TypeError), (False, TypeError), ("60", TypeError), ([60], TypeError),
])
def test_a_bad_max_age_is_a_type_or_value_error(max_age, kind):
    with_client(sealed_secrets.register({"db": CIPHERTEXT}), CountingKms())
    with pytest.raises(kind, match="max_age"):
        sealed_secrets.get_secret("db", max_age=max_age)
    with pytest.raises(kind, match="max_age"):
        SealedSecrets({"db": CIPHERTEXT}, client=CountingKms()).get_bytes("db", max_age=max_age)


@pytest.mark.parametrize("name", [None, 1, b"db", ["db"]])
def test_a_name_that_is_not_a_string_is_a_type_error(name):
    with pytest.raises(TypeError, match="secret name must be a str"):
        sealed_secrets.get_secret(name)  # before anything is registered, too
    sealed_secrets.register({"db": CIPHERTEXT})
    for read in (sealed_secrets.get_secret, sealed_secrets.get_secret_bytes, sealed_secrets.get_secret_json):
        with pytest.raises(TypeError, match="secret name must be a str"):
            read(name)


def test_zero_and_integer_max_ages_are_fine():
    client = CountingKms()
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client)
    assert secrets.get("db", max_age=0) == secrets.get("db", max_age=0) == PLAINTEXT  # 0: always re-opened
    assert secrets.get("db", max_age=60) == PLAINTEXT
    assert len(client.calls) == 2


@pytest.mark.parametrize("ciphertexts", [None, [("db", CIPHERTEXT)], {"db": BLOB}, {1: CIPHERTEXT}])
def test_ciphertexts_must_map_names_to_base64_strings(ciphertexts):
    with pytest.raises(TypeError, match="^ciphertexts must"):
        SealedSecrets(ciphertexts)
    with pytest.raises(TypeError, match="^ciphertexts must"):
        sealed_secrets.register(ciphertexts)


def test_registering_a_name_again_with_another_ciphertext_is_an_error():
    first = sealed_secrets.register({"db": CIPHERTEXT})
    assert sealed_secrets.register({"db": CIPHERTEXT}) is first  # the same again: nothing changes
    assert sealed_secrets.register({"api": "QUJD"}) is first and first.names() == ("api", "db")
    other = base64.b64encode(b"another blob").decode()
    error = raised(lambda: sealed_secrets.register({"db": other, "new": "QUJD"}))
    assert isinstance(error, ValueError)
    assert str(error) == "sealed secret 'db' is already registered with another ciphertext"
    assert first.names() == ("api", "db")  # nothing half-registered


def test_get_secret_before_register_is_a_typed_error():
    error = raised(lambda: sealed_secrets.get_secret("db"))
    assert isinstance(error, SecretError) and (error.secret_name, error.code) == ("db", "NotRegistered")


def every_kind_of_error() -> list[SecretError]:
    errors = [
        raised(lambda: sealed_secrets.get_secret("db")),  # not registered
        raised(lambda: SealedSecrets({"a": CIPHERTEXT}, client=CountingKms()).get("db")),
        raised(lambda: SealedSecrets({"db": "%%"}, client=CountingKms()).get("db")),
        raised(lambda: SealedSecrets({"db": CIPHERTEXT}, client=CountingKms(b"\xff")).get("db")),
        raised(lambda: SealedSecrets({"db": CIPHERTEXT}, client=CountingKms(b"{")).get_json("db")),
        raised(lambda: SealedSecrets({"db": CIPHERTEXT}, client=CountingKms(error=TimeoutError())).get("db")),
    ]
    client = boto3.client("kms", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        stubber.add_client_error("decrypt", service_error_code="AccessDeniedException")
        errors.append(raised(lambda: SealedSecrets({"db": CIPHERTEXT}, client=client).get("db")))
    return errors


def test_every_error_survives_a_pickle_round_trip_with_its_name_and_code():
    errors = every_kind_of_error()
    assert [error.code for error in errors] == ["NotRegistered", "SecretNotFound", "InvalidBase64", "PlaintextNotUtf8",
                                                "PlaintextNotJson", "TimeoutError", "AccessDeniedException"]
    for error in errors:
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error) and isinstance(copy, SecretError)
        assert (copy.secret_name, copy.code, str(copy), copy.args) == (error.secret_name, error.code, str(error), error.args)
    assert pickle.loads(pickle.dumps(errors[1])).known == ("a",)


def test_no_value_shows_in_any_repr(monkeypatch):
    """Tracebacks' locals are shown as reprs. After secrets were opened on the stdlib path and through a
    client, no object of this package shows a plaintext, a ciphertext or a credential in its repr."""
    with FakeKms(plaintext=PLAINTEXT.encode()) as fake:
        lambda_environment(monkeypatch, fake)
        stdlib = SealedSecrets({"db": CIPHERTEXT})
        assert stdlib.get("db") == PLAINTEXT
        opener = StdlibKms.from_environment(os.environ)
    client = SealedSecrets({"db": CIPHERTEXT}, client=CountingKms())
    assert client.get("db") == PLAINTEXT
    flight = sealed_secrets.cache._Flight()
    flight.opened = client._opened["db"]
    ours = [thing for thing in gc.get_objects() if type(thing).__module__.startswith("sealed_secrets")]
    assert {type(thing).__name__ for thing in ours} >= {"SealedSecrets", "_Opened", "_Flight", "StdlibKms", "Credentials",
                                                       "EnvironmentKms", "BotoKms"}
    for thing in ours:
        shown = repr(thing)
        assert leaks_in(shown) == [] and "secret-key-example" not in shown and "session-token-example" not in shown
    assert repr(stdlib) == "SealedSecrets(names=['db'])"  # names only: the leak test looks for it in tracebacks
    assert opener is not None


# ------------------------------------------------------------------------------ the stdlib opener


def test_get_secret_opens_with_the_stdlib_through_the_lambda_environment(monkeypatch):
    with FakeKms(plaintext=PLAINTEXT.encode()) as fake:
        lambda_environment(monkeypatch, fake)
        sealed_secrets.register({"db": CIPHERTEXT})
        assert [sealed_secrets.get_secret("db") for _ in range(5)] == [PLAINTEXT] * 5
    (received,) = fake.requests
    assert received.json() == {"CiphertextBlob": CIPHERTEXT, "EncryptionContext": CONTEXT}
    assert received.header("X-Amz-Target") == "TrentService.Decrypt"
    assert received.header("X-Amz-Security-Token") == "session-token-example"
    assert received.header("User-Agent") == "sealed-secrets (stdlib SigV4)"  # not botocore's


def test_after_get_secret_neither_boto3_nor_botocore_is_imported():
    probe = run_probe(sys.executable)
    assert probe["value"] == PLAINTEXT and probe["modules"] == []
    assert not probe["typing"]


def run_probe(python: str) -> dict:
    """get_secret in a fresh interpreter against a fake KMS: the value, the AWS SDK modules imported, and
    whether typing was (~2 ms at every cold start; what the rest costs in time is make bench's to measure)."""
    script = (
        "import json, sys\n"
        "import sealed_secrets\n"
        f"sealed_secrets.register({{'db': {CIPHERTEXT!r}}})\n"
        "value = sealed_secrets.get_secret('db')\n"
        "sdk = sorted(m for m in sys.modules if m.split('.')[0] in ('boto3', 'botocore', 's3transfer', 'urllib3'))\n"
        "print(json.dumps({'value': value, 'modules': sdk, 'typing': 'typing' in sys.modules}))\n"
    )
    with FakeKms(plaintext=PLAINTEXT.encode()) as fake:
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(LAMBDA_DIR), "AWS_ACCESS_KEY_ID": "AKID",
               "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "token", "AWS_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": fake.url, "AWS_LAMBDA_FUNCTION_NAME": "orders-api"}
        # -S: no site, whose .pth files may import typing (certifi does, on 3.11 here) before the helper does
        result = subprocess.run([python, "-S", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert len(fake.requests) == 1
    return json.loads(result.stdout)


@pytest.mark.parametrize("version", [runtime.removeprefix("python") for runtime in build.rules().runtimes])
def test_the_stdlib_path_runs_on_the_python_of_every_lambda_runtime(version, runtime_pythons):
    probe = run_probe(str(runtime_pythons[version]))
    assert probe == {"value": PLAINTEXT, "modules": [], "typing": False}


def test_importing_the_helper_touches_no_aws():
    probe = ("import sys; sys.path.insert(0, 'lambda_src'); import sealed_secrets; "
             "sealed_secrets.register({'a': 'QQ=='}); print(sorted(m for m in sys.modules "
             "if m.startswith(('boto', 'urllib3', 'http.client', 'ssl'))))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=LAMBDA_DIR.parent, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(("reply", "code"), [
    (kms_error("InvalidCiphertextException", f"echo {CIPHERTEXT}"), "InvalidCiphertextException"),
    (kms_error("com.amazonaws.kms#DisabledException"), "DisabledException"),
    (kms_error("AccessDeniedException", header_only=True), "AccessDeniedException"),
    (kms_error("KMSInvalidStateException"), "KMSInvalidStateException"),
    (kms_error("IncorrectKeyException"), "IncorrectKeyException"),
    (kms_error("NotFoundException"), "NotFoundException"),
    (kms_error(f"Bad code {PLAINTEXT}"), "UnrecognizedError"),
    (Reply(418, b"not json"), "HTTP418"),
    (Reply(200, json.dumps({"Plaintext": f"!{CIPHERTEXT}"}).encode()), "InvalidResponse"),
])
def test_kms_errors_over_the_stdlib_path_keep_todays_messages_and_are_not_retried(monkeypatch, reply, code):
    with FakeKms(default=reply) as fake:
        lambda_environment(monkeypatch, fake)
        sealed_secrets.register({"credential": CIPHERTEXT})
        error = raised(lambda: sealed_secrets.get_secret("credential"))
    assert isinstance(error, SecretDecryptionError) and error.code == code
    assert str(error) == f"could not decrypt sealed secret 'credential': KMS {code}"
    assert error.__context__ is None and error.__cause__ is None
    assert len(fake.requests) == 1


def test_throttling_and_5xx_are_retried_within_the_attempts(monkeypatch):
    replies = [kms_error("ThrottlingException"), Reply(503, b"")]
    clock = FakeClock()
    with FakeKms(replies, plaintext=PLAINTEXT.encode()) as fake:
        lambda_environment(monkeypatch, fake)
        assert SealedSecrets({"db": CIPHERTEXT}, clock=clock).get("db") == PLAINTEXT
    assert len(fake.requests) == 3 == sealed_secrets.MAX_ATTEMPTS
    assert clock.pauses == [Budget().backoff(1), Budget().backoff(2)]  # the pauses between, at their longest
    assert len({request.body for request in fake.requests}) == 1  # the same Decrypt each time (re-signed: see SigV4 tier)


def test_a_persistent_5xx_gives_up_after_max_attempts(monkeypatch):
    with FakeKms(default=kms_error("KMSInternalException", status=500)) as fake:
        lambda_environment(monkeypatch, fake)
        error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}, clock=FakeClock()).get("db"))
    assert error.code == "KMSInternalException" and len(fake.requests) == sealed_secrets.MAX_ATTEMPTS


def test_a_refused_connection_is_retried_and_reported(monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"  # nobody listens there
    for name, value in {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL_KMS": url}.items():
        monkeypatch.setenv(name, value)
    clock = FakeClock()
    error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}, clock=clock).get("db"))
    assert (error.code, str(error)) == ("ConnectionRefusedError", "could not decrypt sealed secret 'db': KMS ConnectionRefusedError")
    assert clock.pauses == [Budget().backoff(1), Budget().backoff(2)]  # tried MAX_ATTEMPTS times, backing off


class SilentSocket:
    """A connected socket whose peer never answers: reading it takes its whole timeout, on the fake clock."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock, self.timeouts = clock, []

    def settimeout(self, timeout: float) -> None:
        self.timeouts.append(timeout)

    def sendall(self, data: bytes) -> None:
        pass

    def makefile(self, mode: str) -> SilentSocket:
        return self

    def readline(self, limit: int = -1) -> bytes:
        self.clock.now += self.timeouts[-1]
        raise TimeoutError("timed out")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def silent_kms(clock: FakeClock, budget: Budget) -> tuple[StdlibKms, list[tuple[float, float]]]:
    """The stdlib opener, its connections' sockets silent; and the (connect, read) timeout of each attempt."""
    attempts: list[tuple[float, float]] = []

    class Silent(StdlibKms):
        def _connection(self, trust: str | None, deadline: float) -> http.client.HTTPConnection:
            connect_timeout = clipped(self._budget.connect, deadline, self._clock.monotonic())
            connection = http.client.HTTPConnection("kms.example.invalid", timeout=connect_timeout)
            socket_ = SilentSocket(clock)

            def connect() -> None:
                connection.sock = socket_

            connection.connect = connect  # type: ignore[method-assign]
            original_close = connection.close

            def close() -> None:
                if socket_.timeouts:
                    attempts.append((connect_timeout, socket_.timeouts[-1]))
                original_close()

            connection.close = close  # type: ignore[method-assign]
            return connection

    opener = Silent(Credentials("AKID", "secret"), "us-east-1", "https://kms.example.invalid", clock=clock, budget=budget)
    return opener, attempts


def test_a_hung_kms_costs_at_most_the_budget_with_the_real_figures():
    clock, budget = FakeClock(), Budget()
    opener, attempts = silent_kms(clock, budget)
    started = clock.now
    failure = raised(lambda: opener.decrypt(BLOB, CONTEXT, started + budget.total))
    assert isinstance(failure, sealed_secrets.errors.DecryptFailure) and failure.code == "TimeoutError"
    # every attempt was made, each read timed out; the pauses are the backoff's longest; the last read is
    # clipped to what was left, so the decrypt ends exactly at its deadline and not a moment later
    assert clock.pauses == [0.25, 0.5]
    assert attempts == [(1.0, 2.0), (1.0, 2.0), (1.0, 1.25)] and len(attempts) == budget.attempts
    assert clock.now - started == budget.total == sealed_secrets.BUDGET_SECONDS


def test_no_pause_or_attempt_starts_unless_both_fit_in_what_is_left():
    clock, budget = FakeClock(), Budget(read=2.8, total=6.0)
    opener, attempts = silent_kms(clock, budget)
    deadline = clock.now + budget.total
    assert raised(lambda: opener.decrypt(BLOB, CONTEXT, deadline)).code == "TimeoutError"
    # 2.8 + 0.25 + 2.8 leaves 0.15 s: a 0.5 s pause and a 0.1 s attempt do not fit, so neither is made
    assert attempts == [(1.0, 2.8), (1.0, 2.8)] and clock.pauses == [0.25]
    assert deadline - clock.now < budget.backoff(2) + budget.min_attempt
    clock.now = deadline - budget.min_attempt / 2  # too little left for a first attempt: KMS is not asked
    assert raised(lambda: opener.decrypt(BLOB, CONTEXT, deadline)).code == "TimeoutError" and len(attempts) == 2


def test_a_hung_kms_over_real_sockets_times_out_every_attempt(monkeypatch):
    """The same, through real sockets to a server that never answers (small figures, the real clock:
    what is asserted is what happened, not how long it took)."""
    budget = Budget(read=0.2, connect=5.0, total=60.0, backoff_base=0.01)
    with FakeKms(default=Reply(hang=True)) as fake:
        lambda_environment(monkeypatch, fake)
        error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}, budget=budget).get("db"))
        assert fake.wait_for_requests(budget.attempts)  # each attempt reached KMS, and its read timed out
    assert error.code == "TimeoutError" and str(error) == "could not decrypt sealed secret 'db': KMS TimeoutError"
    assert len(fake.requests) == budget.attempts


def test_a_hung_name_resolution_cannot_hold_the_caller_past_the_budget(monkeypatch):
    """No socket timeout covers DNS: the decrypt runs in a worker that the caller stops waiting for."""
    for name, value in {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_REGION": "us-east-1",
                        "AWS_ENDPOINT_URL": "https://kms.example.invalid"}.items():
        monkeypatch.setenv(name, value)
    resolving, gate = threading.Event(), threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: (resolving.set(), gate.wait(CEILING), [])[2])
    clock = FakeClock(expire_after=1)
    try:
        error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}, clock=clock).get("db"))
        assert error.code == "TimeoutError" and clock.waits == [sealed_secrets.BUDGET_SECONDS]
        assert resolving.wait(CEILING)  # the worker is stuck resolving the name, and the caller has its answer
    finally:
        gate.set()


def test_tls_is_verified_and_aws_ca_bundle_is_honoured(monkeypatch, tmp_path):
    certificate, key = self_signed_certificate(tmp_path)
    with FakeKms(plaintext=PLAINTEXT.encode(), tls=(certificate, key)) as fake:
        lambda_environment(monkeypatch, fake)
        assert fake.url.startswith("https://")
        error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}).get("db"))
        assert error.code == "SSLCertVerificationError" and fake.requests == []  # and not retried
        monkeypatch.setenv("AWS_CA_BUNDLE", str(certificate))
        assert SealedSecrets({"db": CIPHERTEXT}).get("db") == PLAINTEXT
        # a trusted certificate for another name (it names only 127.0.0.1) is refused too
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"https://localhost:{fake.port}")
        assert raised(lambda: SealedSecrets({"db": CIPHERTEXT}).get("db")).code == "SSLCertVerificationError"
    assert len(fake.requests) == 1


@pytest.mark.parametrize(("variable", "value", "code"), [
    ("AWS_ENDPOINT_URL", "ftp://127.0.0.1:1", "InvalidEndpointUrl"),
    ("AWS_ENDPOINT_URL", "http://127.0.0.1:notaport", "InvalidEndpointUrl"),
    ("AWS_ENDPOINT_URL", "http://[::1", "InvalidEndpointUrl"),  # urlsplit's own ValueError
    ("AWS_ENDPOINT_URL_KMS", "https://kms example.com", "InvalidEndpointUrl"),  # not a host name
    ("AWS_ENDPOINT_URL_KMS", "https://kms.\u0435xample.com", "InvalidEndpointUrl"),  # not ASCII (as botocore)
    ("AWS_REGION", "us-east-1/../evil", "InvalidRegion"),
])
def test_a_bad_endpoint_or_region_is_a_typed_error(monkeypatch, variable, value, code):
    for name, setting in {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_REGION": "us-east-1",
                          variable: value}.items():
        monkeypatch.setenv(name, setting)
    assert raised(lambda: SealedSecrets({"db": CIPHERTEXT}).get("db")).code == code


# ------------------------------------------------------------------------------ the key the package carries


def test_every_stdlib_decrypt_names_the_packages_key_and_another_keys_ciphertext_is_refused(monkeypatch):
    """A ciphertext sealed under another key (an alias repointed at a key someone else holds, say) is
    refused by KMS because the Decrypt names the package's key; without the name KMS would open it."""
    ours, theirs = BLOB + b"ours", BLOB + b"theirs"
    keys = {ours: (KEY_ARN, b"our secret"), theirs: (OTHER_KEY_ARN, PLAINTEXT.encode())}
    ciphertexts = {"ours": base64.b64encode(ours).decode(), "theirs": base64.b64encode(theirs).decode()}
    with FakeKms(default=sealed_under(keys)) as fake:
        lambda_environment(monkeypatch, fake)
        sealed_secrets.register(ciphertexts, key_id=KEY_ARN)
        assert sealed_secrets.get_secret("ours") == "our secret"
        error = raised(lambda: sealed_secrets.get_secret("theirs"))
        assert SealedSecrets(ciphertexts).get("theirs") == PLAINTEXT  # the control: naming no key, it opens
    assert isinstance(error, SecretDecryptionError) and error.code == "IncorrectKeyException"
    assert str(error) == "could not decrypt sealed secret 'theirs': KMS IncorrectKeyException"
    assert error.__context__ is None and leaks_in(str(error) + repr(error)) == []
    assert [request.json().get("KeyId") for request in fake.requests] == [KEY_ARN, KEY_ARN, None]  # not retried


def test_every_client_decrypt_names_the_packages_key_and_another_keys_ciphertext_is_refused(kms):
    client, stubber = kms
    named = {"CiphertextBlob": BLOB, "EncryptionContext": CONTEXT, "KeyId": KEY_ARN}
    stubber.add_response("decrypt", {"Plaintext": PLAINTEXT.encode(), "KeyId": KEY_ARN}, named)
    stubber.add_client_error("decrypt", "IncorrectKeyException", "The key ID in the request does not identify a CMK",
                             expected_params={**named, "CiphertextBlob": b"other" + BLOB})
    secrets = SealedSecrets({"db": CIPHERTEXT, "other": base64.b64encode(b"other" + BLOB).decode()}, key_id=KEY_ARN,
                            client=client, function_name="orders-api")
    assert secrets.get("db") == PLAINTEXT  # the Stubber refuses a Decrypt whose parameters differ: KeyId was sent
    error = raised(lambda: secrets.get("other"))
    assert isinstance(error, SecretDecryptionError) and error.code == "IncorrectKeyException"
    assert str(error) == "could not decrypt sealed secret 'other': KMS IncorrectKeyException"


def test_the_boto3_fallback_names_the_packages_key_too(monkeypatch, tmp_path):
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with FakeKms(default=sealed_under({BLOB: (OTHER_KEY_ARN, PLAINTEXT.encode())})) as fake:
        monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
        error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}, key_id=KEY_ARN).get("db"))
    assert isinstance(error, SecretDecryptionError) and error.code == "IncorrectKeyException"
    assert {request.json()["KeyId"] for request in fake.requests} == {KEY_ARN}
    assert "Botocore/" in fake.requests[0].header("User-Agent")


def test_registering_under_another_key_is_an_error_and_a_key_id_is_a_string():
    first = sealed_secrets.register({"db": CIPHERTEXT}, key_id=KEY_ARN)
    assert sealed_secrets.register({"api": "QUJD"}, key_id=KEY_ARN) is first and first.key_id == KEY_ARN
    with pytest.raises(ValueError, match="already registered for another key"):
        sealed_secrets.register({"new": "QUJD"}, key_id=OTHER_KEY_ARN)
    with pytest.raises(ValueError, match="already registered for another key"):
        sealed_secrets.register({"new": "QUJD"})  # no key where one was given: also another key
    assert first.names() == ("api", "db")
    for bad in (b"arn", 1, ""):
        with pytest.raises(TypeError, match="key_id must be a key ARN"):
            SealedSecrets({"db": CIPHERTEXT}, key_id=bad)


# ------------------------------------------------------------------------------ the boto3 fallback


def test_without_credentials_in_the_environment_boto3_opens_it(monkeypatch, tmp_path):
    """A laptop with a profile: no AWS_ACCESS_KEY_ID, so boto3 finds the credentials and signs."""
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n")
    with FakeKms(plaintext=PLAINTEXT.encode()) as fake:
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
        monkeypatch.setenv("AWS_REGION", "eu-west-1")
        monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
        assert SealedSecrets({"db": CIPHERTEXT}).get("db") == PLAINTEXT
    (received,) = fake.requests
    assert "Botocore/" in received.header("User-Agent") and "Credential=AKIDPROFILE/" in received.header("Authorization")
    assert received.json() == {"CiphertextBlob": CIPHERTEXT, "EncryptionContext": CONTEXT}


def test_the_fallback_client_has_the_budgets_figures(monkeypatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    config = sealed_secrets.boto.default_client().meta.config
    assert config.retries == {"total_max_attempts": sealed_secrets.MAX_ATTEMPTS, "mode": "standard"}
    assert (config.connect_timeout, config.read_timeout) == (sealed_secrets.CONNECT_TIMEOUT_SECONDS,
                                                            sealed_secrets.READ_TIMEOUT_SECONDS)


def test_a_slow_client_of_the_handlers_own_cannot_hold_a_caller_past_the_budget():
    gate = threading.Event()
    client = CountingKms(gates={BLOB: gate})
    clock = FakeClock(expire_after=1)
    try:
        error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}, client=client, clock=clock).get("db"))
        assert client.entered[BLOB].wait(CEILING) and not gate.is_set()  # the client is still at it
    finally:
        gate.set()
    assert error.code == "TimeoutError" and clock.waits == [sealed_secrets.BUDGET_SECONDS]


# ------------------------------------------------------------------------------ locks: per secret, one flight


def read_together(read: Callable[[], object], threads: int = 16) -> list[object]:
    barrier = threading.Barrier(threads)
    results: list[object] = [None] * threads

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = read()
        except SecretError as error:
            results[index] = error

    workers = [threading.Thread(target=run, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    return results


def released_when_waiting(clock: FakeClock, count: int, gate: threading.Event) -> Callable[[], bool]:
    """Opens ``gate`` once ``count`` waits are in progress; the returned call says whether they were."""
    outcome: list[bool] = []
    releaser = threading.Thread(target=lambda: (outcome.append(clock.until_waiting(count)), gate.set()))
    releaser.start()
    return lambda: (releaser.join(CEILING), outcome == [True])[1]


def test_concurrent_first_reads_of_one_secret_make_one_decrypt():
    gate, clock = threading.Event(), FakeClock()
    client = CountingKms(gates={BLOB: gate})
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client, clock=clock)
    all_waited = released_when_waiting(clock, 16, gate)  # the Decrypt ends only when all 16 readers wait
    assert read_together(lambda: secrets.get("db")) == [PLAINTEXT] * 16
    assert all_waited() and len(client.calls) == 1


def test_concurrent_first_reads_share_one_stdlib_decrypt_and_its_failure_too(monkeypatch):
    for reply in (decrypted(PLAINTEXT.encode()), Reply(400, b'{"__type": "AccessDeniedException"}')):
        gate, clock = threading.Event(), FakeClock()
        with FakeKms(default=lambda received, reply=reply, gate=gate: (gate.wait(CEILING), reply)[1]) as fake:
            lambda_environment(monkeypatch, fake)
            # sockets that outlast the ceiling: KMS answers when the test says, not when a timeout says
            secrets = SealedSecrets({"db": CIPHERTEXT}, clock=clock, budget=Budget(connect=CEILING, read=CEILING))
            all_waited = released_when_waiting(clock, 16, gate)
            results = read_together(lambda: secrets.get("db"))
        assert all_waited() and len(fake.requests) == 1
        if reply.status == 200:
            assert results == [PLAINTEXT] * 16
        else:
            assert {(type(error), error.code) for error in results} == {(SecretDecryptionError, "AccessDeniedException")}
            assert len({id(error) for error in results}) == 16  # each caller raises its own error object


def test_a_slow_secret_does_not_block_another():
    """If "fast" waited behind "slow", its read would end in a TimeoutError at the budget, not a value."""
    slow_blob = b"slow" + BLOB
    gate = threading.Event()
    client = CountingKms(gates={slow_blob: gate})
    secrets = SealedSecrets({"slow": base64.b64encode(slow_blob).decode(), "fast": CIPHERTEXT}, client=client)
    slow_reader = threading.Thread(target=lambda: secrets.get("slow"))
    slow_reader.start()
    try:
        assert client.entered[slow_blob].wait(CEILING)
        assert secrets.get("fast") == PLAINTEXT
        assert slow_reader.is_alive() and not gate.is_set()
    finally:
        gate.set()
        slow_reader.join(CEILING)


def test_nobody_waits_past_the_budget_behind_a_hung_decrypt():
    gate = threading.Event()
    client = CountingKms(gates={BLOB: gate})
    clock = FakeClock(expire_after=6)  # every wait expires once all six readers wait: the Decrypt hangs
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client, clock=clock)

    def read() -> object:
        try:
            return secrets.get("db")
        except SecretDecryptionError as error:
            return error.code

    try:
        results = read_together(read, threads=6)
    finally:
        gate.set()
    assert results == ["TimeoutError"] * 6
    assert clock.waits == [sealed_secrets.BUDGET_SECONDS] * 6  # the leader's wait and each waiter's: the budget
    assert client.calls == [BLOB]  # only the leader asked KMS


def test_waiters_give_up_at_the_budget_even_if_the_leader_never_returns():
    """Defence in depth: whatever holds up the first reader, the others stop waiting at the budget."""
    entered, gate = threading.Event(), threading.Event()
    clock = FakeClock(expire_after=1)
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=CountingKms(), clock=clock)
    secrets._decrypt = lambda name: (entered.set(), gate.wait(CEILING), (None, "Stuck"))[2]  # never gives up
    leader = threading.Thread(target=lambda: raised(lambda: secrets.get("db")))
    leader.start()
    try:
        assert entered.wait(CEILING)
        error = raised(lambda: secrets.get("db"))
        assert error.code == "TimeoutError" and clock.waits == [sealed_secrets.BUDGET_SECONDS]
    finally:
        gate.set()
        leader.join(CEILING)


# ------------------------------------------------------------------------------ leaks


NON_UTF8 = b"\xff\xfe-binary-key-marker-\x80\x81"
NOT_JSON = f"password {PLAINTEXT} is not json".encode()
BLOBS = {name: BLOB + name.encode() for name in ("ok", "refused", "binary", "text")}
PLAINTEXTS = {"ok": PLAINTEXT.encode(), "binary": NON_UTF8, "text": NOT_JSON}
SECRET_VALUES = [BLOB, PLAINTEXT.encode(), *BLOBS.values(), *PLAINTEXTS.values()]  # BLOB: CIPHERTEXT's


def renderings(secret: bytes) -> set[str]:
    """The forms in which a secret could show up: raw, hex, base64, and as a bytes repr shows it."""
    forms = {secret.hex(), secret.hex().upper(), base64.b64encode(secret).decode(),
             base64.urlsafe_b64encode(secret).decode(), base64.b64encode(secret).decode().rstrip("="),
             repr(secret)[2:-1], secret.decode("latin-1")}
    try:
        forms.add(secret.decode("utf-8"))
    except UnicodeDecodeError:
        pass
    return forms


NEEDLES = sorted({form for secret in SECRET_VALUES for form in renderings(secret)} |
                 {"sealed-ciphertext-marker", "correct-horse-battery-staple", "binary-key-marker"}, key=len)


def leaks_in(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


class Recorder(logging.Handler):
    """A handler on the root logger, and a hook on Logger.callHandlers (as error trackers add one to make
    breadcrumbs: it sees every record that any logger handles, before any handler or its filters)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.hooked: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(threadName)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def hook(self, original: Callable[[logging.Logger, logging.LogRecord], None]) -> Callable[..., None]:
        def call_handlers(logger: logging.Logger, record: logging.LogRecord) -> None:
            self.hooked.append(f"{record.getMessage()} {record.exc_info!r} {record.__dict__!r}")
            original(logger, record)
        return call_handlers

    def text(self) -> str:
        return "\n".join([f"{self.format(record)} {record.__dict__!r}" for record in self.records] + self.hooked)


def debug_everything() -> None:
    """The root logger and every logger there is, at DEBUG (done after import and after each call)."""
    logging.getLogger().setLevel(logging.DEBUG)
    for logger in list(logging.Logger.manager.loggerDict.values()):
        if isinstance(logger, logging.Logger):
            logger.setLevel(logging.DEBUG)
            logger.disabled = False


@pytest.fixture
def recorder(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(logging.Logger, "callHandlers", recorder.hook(logging.Logger.callHandlers))
    root = logging.getLogger()
    saved = (root.level, {name: (logger.level, logger.disabled) for name, logger in logging.Logger.manager.loggerDict.items()
                          if isinstance(logger, logging.Logger)})
    root.addHandler(recorder)
    debug_everything()
    yield recorder
    root.removeHandler(recorder)
    root.setLevel(saved[0])
    for name, (level, disabled) in saved[1].items():
        logging.getLogger(name).setLevel(level)
        logging.getLogger(name).disabled = disabled


def fake_kms_answer(received: Captured) -> Reply:
    """The fake KMS opens each test blob like KMS would; its errors echo the secrets back, as a hostile
    or verbose endpoint might."""
    blob = base64.b64decode(received.json()["CiphertextBlob"])
    name = next(name for name, candidate in BLOBS.items() if candidate == blob)
    if name == "refused":
        echo = f"{base64.b64encode(blob).decode()} {PLAINTEXT} {blob.hex()}"
        return kms_error("InvalidCiphertextException", echo)
    return decrypted(PLAINTEXTS[name])


def stubbed_client() -> tuple[object, Stubber]:
    client = boto3.client("kms", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(client)
    context = {"EncryptionContext": CONTEXT}
    stubber.add_response("decrypt", {"Plaintext": PLAINTEXTS["ok"]}, {"CiphertextBlob": BLOBS["ok"], **context})
    stubber.add_client_error("decrypt", "InvalidCiphertextException", f"echo {base64.b64encode(BLOBS['refused']).decode()} {PLAINTEXT}",
                             expected_params={"CiphertextBlob": BLOBS["refused"], **context})
    stubber.add_response("decrypt", {"Plaintext": PLAINTEXTS["binary"]}, {"CiphertextBlob": BLOBS["binary"], **context})
    stubber.add_response("decrypt", {"Plaintext": PLAINTEXTS["text"]}, {"CiphertextBlob": BLOBS["text"], **context})
    stubber.activate()
    return client, stubber


def secrets_for(path: str, fake: FakeKms, monkeypatch, tmp_path: Path) -> SealedSecrets:
    ciphertexts = {name: base64.b64encode(blob).decode() for name, blob in BLOBS.items()}
    # The classic "debug requests" recipe: http.client (urllib3's connections too) prints what it sends.
    import http.client
    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)
    if path == "stdlib":
        lambda_environment(monkeypatch, fake)
        return SealedSecrets(ciphertexts)
    if path == "stubber":
        return SealedSecrets(ciphertexts, client=stubbed_client()[0])
    if path == "botocore-client":  # a real client of the handler's own, over HTTP, botocore logging at DEBUG
        client = boto3.client("kms", region_name="us-east-1", endpoint_url=fake.url,
                              aws_access_key_id="AKID", aws_secret_access_key="secret")
        return SealedSecrets(ciphertexts, client=client)
    assert path == "boto3-fallback"  # no credentials in the environment: a profile, through boto3
    (tmp_path / "credentials").write_text("[default]\naws_access_key_id = AKID\naws_secret_access_key = s\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", fake.url)
    return SealedSecrets(ciphertexts)


@pytest.mark.parametrize("path", ["stdlib", "stubber", "botocore-client", "boto3-fallback"])
def test_nothing_leaks_at_debug_into_logs_output_errors_or_traceback_locals(path, recorder, capfd, monkeypatch, tmp_path):
    with FakeKms(default=fake_kms_answer) as fake:
        secrets = secrets_for(path, fake, monkeypatch, tmp_path)
        debug_everything()
        assert secrets.get("ok") == PLAINTEXT
        debug_everything()
        errors = []
        for read in (lambda: secrets.get("refused"), lambda: secrets.get("binary"), lambda: secrets.get_json("text")):
            errors.append(raised(read))
            debug_everything()
        assert secrets.get_bytes("binary") == NON_UTF8 and secrets.get("text") == NOT_JSON.decode()
    assert [(type(error), error.code) for error in errors] == [
        (SecretDecryptionError, "InvalidCiphertextException"), (SecretDecryptionError, "PlaintextNotUtf8"),
        (SecretDecryptionError, "PlaintextNotJson")]
    if path != "stubber":
        assert len(fake.requests) == 4
    import http.client
    assert http.client.HTTPConnection.debuglevel == 1  # the application's own debugging is back
    out, err = capfd.readouterr()
    assert leaks_in(out + err) == []
    assert leaks_in(recorder.text()) == []
    for error in errors:
        rendered = "".join(traceback.TracebackException(type(error), error, error.__traceback__,
                                                        capture_locals=True).format())
        assert "self = SealedSecrets(names=" in rendered  # the frames' locals are really in it
        assert leaks_in(rendered) == [] and leaks_in(str(error) + repr(error)) == []
        assert leaks_in(pickle.dumps(error).decode("latin-1")) == []
        assert error.__context__ is None and error.__cause__ is None


class Escape(BaseException):
    """Not an Exception: asyncio's CancelledError, gevent's Timeout, a SystemExit in a client are like it."""


def test_whatever_a_client_raises_stays_in_the_worker(monkeypatch, capfd):
    """Nothing reaches threading.excepthook (error trackers hook it, and take each frame's locals) or stderr."""
    hooked: list[str] = []
    monkeypatch.setattr(threading, "excepthook", lambda args: hooked.append(
        "".join(traceback.TracebackException(args.exc_type, args.exc_value, args.exc_traceback, capture_locals=True).format())))
    client = CountingKms(error=Escape(f"echo {CIPHERTEXT} {PLAINTEXT}"))
    error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}, client=client).get("db"))
    for worker in threading.enumerate():  # the worker has ended: whatever it would print is printed
        if worker.name == "sealed-secrets-decrypt":
            worker.join(CEILING)
    assert isinstance(error, SecretDecryptionError) and error.code == "Escape"
    assert hooked == [] and leaks_in("".join(capfd.readouterr())) == []


@pytest.mark.parametrize("path", ["stdlib", "client"])
def test_an_interruption_while_waiting_carries_no_value_in_its_frames(path, monkeypatch):
    """A signal handler may raise in the caller while it waits for KMS (a handler's own SIGALRM timeout,
    SIGTERM turned into SystemExit, Ctrl-C on a laptop): the caller's frames hold no blob and no credential."""
    gate = threading.Event()
    client = CountingKms(gates={BLOB: gate})

    class Interrupting(sealed_secrets.Clock):
        """Once the worker is inside the Decrypt, the caller's wait gets a signal (as from an alarm)."""

        def wait(self, event: threading.Event, timeout: float) -> bool:
            assert fake.wait_for_requests(1) if path == "stdlib" else client.entered[BLOB].wait(CEILING)
            signal.raise_signal(signal.SIGALRM)
            return event.wait(CEILING)

    def interrupt(signum: int, frame: object) -> None:
        raise Escape("interrupted")

    with FakeKms(default=Reply(hang=True)) as fake:
        lambda_environment(monkeypatch, fake)
        secrets = SealedSecrets({"db": CIPHERTEXT}, client=client if path == "client" else None, clock=Interrupting())
        previous = signal.signal(signal.SIGALRM, interrupt)
        try:
            error = raised(lambda: secrets.get("db"))
        finally:
            signal.signal(signal.SIGALRM, previous)
            gate.set()
    assert isinstance(error, Escape)
    rendered = "".join(traceback.TracebackException(type(error), error, error.__traceback__, capture_locals=True).format())
    assert "in _decrypt" in rendered and "in _within_budget" in rendered  # the frames that waited are there
    assert leaks_in(rendered) == [] and "secret-key-example" not in rendered and "session-token-example" not in rendered


def test_the_leak_detector_sees_what_botocore_logs_at_debug(recorder):
    """Called directly, botocore logs the Decrypt bodies at DEBUG, and the leak check sees them: what the
    runtime helper prevents is real."""
    with FakeKms(default=fake_kms_answer) as fake:
        client = boto3.client("kms", region_name="us-east-1", endpoint_url=fake.url,
                              aws_access_key_id="AKID", aws_secret_access_key="secret")
        debug_everything()
        client.decrypt(CiphertextBlob=BLOBS["ok"], EncryptionContext=CONTEXT)
    found = leaks_in(recorder.text())
    assert base64.b64encode(BLOBS["ok"]).decode() in found and base64.b64encode(PLAINTEXTS["ok"]).decode() in found


def test_the_fallback_quiets_only_its_own_threads(recorder):
    """The handler's own botocore logs (other threads) still flow after the helper used boto3."""
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=CountingKms())
    secrets.get("db")
    logging.getLogger("botocore.endpoint").debug("the application's own record")
    assert "the application's own record" in recorder.text()


# ------------------------------------------------------------------------------ the budget, as documented


def test_the_budget_fits_under_the_modules_default_timeout(root):
    variables = (root / "variables.tf").read_text()
    default = re.search(r'variable "timeout" \{.*?default\s*=\s*(\d+)', variables, re.S)
    assert default and sealed_secrets.BUDGET_SECONDS < int(default.group(1))
    assert sealed_secrets.BUDGET_SECONDS >= sealed_secrets.CONNECT_TIMEOUT_SECONDS + sealed_secrets.READ_TIMEOUT_SECONDS
    assert sealed_secrets.MAX_ATTEMPTS >= 2


def budget_sentence() -> str:
    s = sealed_secrets
    return (f"at most {s.MAX_ATTEMPTS} attempts, {s.CONNECT_TIMEOUT_SECONDS:g} s to connect and "
            f"{s.READ_TIMEOUT_SECONDS:g} s to read each, within {s.BUDGET_SECONDS:g} s in all")


def test_the_readme_states_the_budget_the_code_has(root):
    readme = " ".join((root / "README.md").read_text().split())  # line breaks in the README do not matter
    assert budget_sentence() in readme
