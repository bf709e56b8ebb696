"""Container credentials in the stdlib opener (issue 16): the hosts botocore allows, botocore's order,
the cache until shortly before Expiration, the decrypt's budget, and no credential in a log, an error,
a traceback's locals or a repr. End to end: a local credentials endpoint + the fake KMS, every request
re-signed with botocore's SigV4Auth."""

from __future__ import annotations

import base64
import logging
import os
import time
import traceback
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from debug_logging import recording_every_record
from botocore.credentials import ContainerProvider
from botocore.utils import ContainerMetadataFetcher

import sealed_secrets
from credentials_fake_server import FakeCredentials, Issued
from kms_fake_server import FakeKms, kms_error
from sealed_secrets import Budget, SealedSecrets, SecretDecryptionError, credentials
from sealed_secrets.errors import DecryptFailure
from sealed_secrets.transport import StdlibKms
from sigv4_reference import botocore_authorization

PLAINTEXT = b"container-plaintext-marker-7f3a"
CIPHERTEXT = base64.b64encode(b"\x01\x02container-ciphertext-marker").decode()
ISSUED = Issued("ASIACONTAINEREXAMPLE", "container-secret-key-marker-91c2", "container-session-token-marker-5d0e")
ROTATED = Issued("ASIAROTATEDEXAMPLE", "rotated-secret-key-marker-aa17", "rotated-session-token-marker-3b44")
AUTH_TOKEN = "container-authorization-token-marker-c0de"
CREDENTIAL_MARKERS = [ISSUED.secret_key, ISSUED.token, ROTATED.secret_key, ROTATED.token, AUTH_TOKEN]
NOON = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-api")
    monkeypatch.setattr(sealed_secrets, "_default", None)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    credentials.forget()
    yield
    credentials.forget()


def snapstart_environment(monkeypatch, kms: FakeKms, creds: FakeCredentials, **extra: str) -> None:
    """What a SnapStart environment has: a region and container credentials, no access keys."""
    for name, value in {"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": kms.url,
                        credentials.FULL_URI: creds.url, credentials.AUTHORIZATION_TOKEN: AUTH_TOKEN,
                        **extra}.items():
        monkeypatch.setenv(name, value)


def assert_signed_with(received, issued: Issued) -> None:
    assert received.header("X-Amz-Security-Token") == issued.token
    assert received.header("Authorization") == botocore_authorization(
        received, access_key=issued.access_key, secret_key=issued.secret_key, token=issued.token, region="us-east-1")


# ------------------------------------------------------------------------------ which hosts, which URL


URLS = [
    "http://127.0.0.1:8080/creds", "http://127.9.8.7/creds", "http://[::1]:80/creds", "http://localhost/creds",
    "http://LOCALHOST:9/creds", "http://169.254.170.2/v2/credentials/abc", "http://169.254.170.23/v1/credentials",
    "http://[fd00:ec2::23]/v1/credentials", "http://[FD00:EC2::23]/v1/credentials",
    "http://[fd00:ec2:0::23]/v1/credentials", "http://169.254.169.254/latest/meta-data/",
    "http://169.254.170.3/creds", "http://example.com/creds", "https://example.com/creds", "https://10.0.0.1/x",
    "http://localhost.example.com/creds", "http://127.0.0.1.example.com/creds", "http://[::ffff:127.0.0.1]/creds",
    "http://0.0.0.0/creds", "http://10.0.0.1/creds", "http://user:pass@169.254.170.2/creds", "ftp://localhost/creds",
    "http://[::2]/creds", "http:///creds",
]


def botocore_allows(url: str) -> bool:
    try:
        ContainerMetadataFetcher()._validate_allowed_url(url)
    except ValueError:
        return False
    return True


def test_the_hosts_allowed_are_the_ones_botocore_allows():
    verdicts = {url: botocore_allows(url) for url in URLS}
    assert {url: credentials.allowed_url(url) for url in URLS} == verdicts
    assert sum(verdicts.values()) >= 10 and len(URLS) - sum(verdicts.values()) >= 8  # both kinds are tested


@pytest.mark.parametrize("environ", [
    {credentials.RELATIVE_URI: "/v2/credentials/abc"},
    {credentials.FULL_URI: "http://127.0.0.1:9/creds"},
    {credentials.RELATIVE_URI: "/v2/credentials/abc", credentials.FULL_URI: "http://127.0.0.1:9/creds"},
])
def test_the_url_is_the_one_botocores_provider_fetches(environ):
    fetched = []

    class Fetcher(ContainerMetadataFetcher):
        def retrieve_full_uri(self, full_url, headers=None):
            fetched.append(full_url)
            return {"AccessKeyId": "a", "SecretAccessKey": "b", "Token": "c", "Expiration": "2099-01-01T00:00:00Z"}

    ContainerProvider(environ=environ, fetcher=Fetcher()).load()
    ours = credentials.container_from_environment(environ)
    assert ours is not None and [ours._url] == fetched


@pytest.mark.parametrize("name", ["AWS_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE"])
def test_settings_botocore_reads_first_are_left_to_boto3(name):
    environ = {credentials.FULL_URI: "http://127.0.0.1:9/creds", "AWS_REGION": "us-east-1", name: "x"}
    assert StdlibKms.from_environment(environ) is None
    assert StdlibKms.from_environment({k: v for k, v in environ.items() if k != name}) is not None


# ------------------------------------------------------------------------------ end to end


def test_a_snapstart_environment_opens_with_the_stdlib_signed_with_container_credentials(monkeypatch):
    with FakeCredentials(ISSUED) as creds, FakeKms(plaintext=PLAINTEXT) as kms:
        snapstart_environment(monkeypatch, kms, creds)
        sealed_secrets.register({"db": CIPHERTEXT, "api": CIPHERTEXT})
        assert sealed_secrets.get_secret_bytes("db") == PLAINTEXT
        assert sealed_secrets.get_secret_bytes("api") == PLAINTEXT
    assert [(path, headers["Authorization"], headers["Accept"]) for path, headers in creds.requests] == [
        ("/creds", AUTH_TOKEN, "application/json")]  # one fetch, both decrypts
    assert len(kms.requests) == 2
    for received in kms.requests:
        assert_signed_with(received, ISSUED)
        assert received.header("User-Agent") == "sealed-secrets (stdlib SigV4)"  # not boto3's


def test_the_token_file_is_read_afresh_for_each_fetch(monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(AUTH_TOKEN)
    expired = Issued(ISSUED.access_key, ISSUED.secret_key, ISSUED.token, "2000-01-01T00:00:00Z")
    with FakeCredentials(expired, ROTATED) as creds, FakeKms(plaintext=PLAINTEXT) as kms:
        snapstart_environment(monkeypatch, kms, creds)
        monkeypatch.delenv(credentials.AUTHORIZATION_TOKEN)
        monkeypatch.setenv(credentials.AUTHORIZATION_TOKEN_FILE, str(token_file))
        secrets = SealedSecrets({"db": CIPHERTEXT})
        assert secrets.get_bytes("db") == PLAINTEXT
        token_file.write_text("rotated-token")
        assert secrets.get_bytes("db", max_age=0) == PLAINTEXT
    assert [headers["Authorization"] for _, headers in creds.requests] == [AUTH_TOKEN, "rotated-token"]
    assert_signed_with(kms.requests[0], expired)
    assert_signed_with(kms.requests[1], ROTATED)


def test_static_credentials_in_the_environment_come_first(monkeypatch):
    with FakeCredentials(ISSUED) as creds, FakeKms(plaintext=PLAINTEXT) as kms:
        snapstart_environment(monkeypatch, kms, creds, AWS_ACCESS_KEY_ID="AKIDSTATIC", AWS_SECRET_ACCESS_KEY="static")
        assert SealedSecrets({"db": CIPHERTEXT}).get_bytes("db") == PLAINTEXT
    assert creds.requests == []
    assert kms.requests[0].header("Authorization") == botocore_authorization(
        kms.requests[0], access_key="AKIDSTATIC", secret_key="static", token=None, region="us-east-1")


def test_credentials_are_kept_until_shortly_before_their_expiration(monkeypatch):
    soon = Issued(ISSUED.access_key, ISSUED.secret_key, ISSUED.token, "2026-12-02T12:30:00.123456789Z")
    now = [NOON]
    with FakeCredentials(soon, ROTATED) as creds, FakeKms(plaintext=PLAINTEXT) as kms:
        snapstart_environment(monkeypatch, kms, creds)

        def decrypt() -> bytes:
            opener = StdlibKms.from_environment(os.environ, utcnow=lambda: now[0])  # a new opener each time, as in use
            return opener.decrypt(b"blob", {"LambdaFunctionName": "f"}, time.monotonic() + 6)

        for moment in (NOON, NOON + timedelta(minutes=24, seconds=59)):
            now[0] = moment
            assert decrypt() == PLAINTEXT
        assert len(creds.requests) == 1  # the cached ones, 5 minutes and a second before they expire
        now[0] = NOON + timedelta(minutes=25, milliseconds=124)  # 5 minutes before 12:30:00.123456
        assert decrypt() == PLAINTEXT
        assert len(creds.requests) == 2
        assert_signed_with(kms.requests[1], soon)
        assert_signed_with(kms.requests[2], ROTATED)


def test_an_expired_token_from_kms_fetches_new_credentials_within_the_attempts(monkeypatch):
    with FakeCredentials(ISSUED, ROTATED) as creds, FakeKms([kms_error("ExpiredTokenException")], plaintext=PLAINTEXT) as kms:
        snapstart_environment(monkeypatch, kms, creds)
        assert SealedSecrets({"db": CIPHERTEXT}).get_bytes("db") == PLAINTEXT
    assert len(creds.requests) == 2
    assert_signed_with(kms.requests[1], ROTATED)


def test_a_hung_credentials_endpoint_costs_at_most_the_budget(monkeypatch):
    budget = Budget(attempts=2, connect=0.2, read=0.2, total=0.6, backoff_base=0.01)
    with FakeCredentials(ISSUED, hang=True) as creds, FakeKms(plaintext=PLAINTEXT) as kms:
        snapstart_environment(monkeypatch, kms, creds)
        error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}, budget=budget).get("db"))
    assert isinstance(error, SecretDecryptionError) and error.code == "ContainerCredentialsUnreachable"
    assert "container credentials endpoint did not answer" in str(error)
    assert 1 <= len(creds.requests) <= 2 and kms.requests == []


@pytest.mark.parametrize(("setting", "code"), [
    ({credentials.FULL_URI: "http://169.254.169.254/creds"}, "ContainerCredentialsHostNotAllowed"),
    ({credentials.FULL_URI: "http://example.com/creds"}, "ContainerCredentialsHostNotAllowed"),
    ({credentials.AUTHORIZATION_TOKEN: "token\r\nX-Injected: 1"}, "ContainerCredentialsTokenInvalid"),
    ({credentials.AUTHORIZATION_TOKEN_FILE: "fifo"}, "ContainerCredentialsTokenInvalid"),
    ({credentials.AUTHORIZATION_TOKEN_FILE: "/dev/zero"}, "ContainerCredentialsTokenInvalid"),
    ({credentials.AUTHORIZATION_TOKEN_FILE: "missing"}, "ContainerCredentialsTokenInvalid"),
])
def test_a_refused_host_or_bad_token_is_a_clear_error_and_nothing_is_sent(monkeypatch, tmp_path, setting, code):
    os.mkfifo(tmp_path / "fifo")  # opening it for reading would block without O_NONBLOCK
    setting = {name: str(tmp_path / value) if value in ("fifo", "missing") else value for name, value in setting.items()}
    with FakeCredentials(ISSUED) as creds, FakeKms(plaintext=PLAINTEXT) as kms:
        snapstart_environment(monkeypatch, kms, creds, **setting)
        error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}).get("db"))
    assert isinstance(error, SecretDecryptionError) and error.code == code
    assert "KMS" not in str(error)  # the message says what is wrong: not KMS
    assert creds.requests == [] and kms.requests == []


@pytest.mark.parametrize(("answer", "code"), [
    ((500, b"busy"), "ContainerCredentialsRefused"),
    ((403, b'{"message": "denied"}'), "ContainerCredentialsRefused"),
    ((200, b"not json " + ISSUED.secret_key.encode()), "ContainerCredentialsInvalid"),
    ((200, b'{"AccessKeyId": "a", "SecretAccessKey": "' + ISSUED.secret_key.encode() + b'", "Token": "t"}'),
     "ContainerCredentialsInvalid"),  # no Expiration
    ((200, b'{"AccessKeyId": "a", "SecretAccessKey": "s", "Token": "t", "Expiration": "soon"}'),
     "ContainerCredentialsInvalid"),
])
def test_a_bad_answer_is_a_typed_error(monkeypatch, answer, code):
    with FakeCredentials(answer) as creds, FakeKms(plaintext=PLAINTEXT) as kms:
        snapstart_environment(monkeypatch, kms, creds)
        error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}).get("db"))
    assert isinstance(error, SecretDecryptionError) and error.code == code
    assert kms.requests == []


# ------------------------------------------------------------------------------ no credential leaks


def raised(action) -> BaseException:
    try:
        action()
    except BaseException as error:  # noqa: BLE001
        return error
    raise AssertionError("nothing was raised")


@pytest.fixture
def recorder():
    with recording_every_record() as recorder:
        yield recorder


def leaks(text: str) -> list[str]:
    return [marker for marker in CREDENTIAL_MARKERS if marker in text]


def test_no_credential_leaks_into_logs_output_errors_tracebacks_or_reprs(monkeypatch, recorder, capfd):
    import gc
    import http.client

    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)  # prints every request and header it sends
    secret_answer = (200, b"{broken " + ISSUED.secret_key.encode() + b" " + ISSUED.token.encode())
    with FakeCredentials(ISSUED, secret_answer, ROTATED) as creds, \
            FakeKms([kms_error("AccessDeniedException", f"for {ISSUED.token}")], plaintext=PLAINTEXT) as kms:
        snapstart_environment(monkeypatch, kms, creds)
        secrets = SealedSecrets({"db": CIPHERTEXT})
        errors = [raised(lambda: secrets.get_bytes("db"))]  # KMS refuses, quoting the token
        assert secrets.get_bytes("db") == PLAINTEXT
        held = [*credentials._cache.values(), credentials.container_from_environment(os.environ)]
        assert len(held) == 2
        credentials.forget()
        errors.append(raised(lambda: secrets.get_bytes("db", max_age=0)))  # an answer that is not JSON
        ours = [thing for thing in gc.get_objects() if type(thing).__module__.startswith("sealed_secrets")]
        shown = " ".join(repr(thing) for thing in ours + held)
        assert "ContainerCredentials()" in shown and "Credentials object at" in shown
    assert [error.code for error in errors] == ["AccessDeniedException", "ContainerCredentialsInvalid"]
    assert len(creds.requests) == 2
    out, err = capfd.readouterr()
    rendered = [
        "".join(traceback.TracebackException(type(error), error, error.__traceback__, capture_locals=True).format())
        for error in errors]
    assert all("self = SealedSecrets(names=" in text for text in rendered)  # the frames' locals are in it
    assert leaks(out + err) == [] and leaks("\n".join(recorder.seen)) == [] and leaks(shown) == []
    assert leaks("\n".join(rendered)) == [] and leaks(" ".join(str(error) + repr(error) for error in errors)) == []


def test_the_leak_check_sees_a_credential_when_one_is_logged(recorder):
    logging.getLogger("botocore.credentials").debug("fetched %s", ISSUED.secret_key)
    assert leaks("\n".join(recorder.seen)) == [ISSUED.secret_key]


def test_a_failure_carries_a_code_and_nothing_else():
    failure = DecryptFailure("ContainerCredentialsInvalid")
    assert failure.args == ("ContainerCredentialsInvalid",) and failure.__context__ is None


def test_the_readme_states_what_this_file_tests(root):
    readme = " ".join((root / "README.md").read_text().split())
    minutes = int(credentials.REFRESH_BEFORE_EXPIRY.total_seconds() // 60)
    assert f"kept until {minutes} minutes before their `Expiration`" in readme
    assert f"runs {len(URLS)} URLs through botocore's own check and ours" in readme
