"""The runtime helper, against botocore's Stubber: one Decrypt per container, typed errors, max age."""

from __future__ import annotations

import base64
import subprocess
import sys
import traceback

import boto3
import pytest
from botocore.stub import Stubber

import sealed_secrets
from sealed_secrets import SealedSecrets, SecretDecryptionError, SecretNotFoundError

PLAINTEXT = "hunter2-very-secret"
BLOB = b"\x01\x02sealed-bytes\xff"
CIPHERTEXT = base64.b64encode(BLOB).decode()
CONTEXT = {"LambdaFunctionName": "orders-api"}


@pytest.fixture
def kms():
    client = boto3.client("kms", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def expect_decrypt(stubber: Stubber, plaintext: str = PLAINTEXT) -> None:
    stubber.add_response("decrypt", {"Plaintext": plaintext.encode(), "KeyId": "k"},
                         {"CiphertextBlob": BLOB, "EncryptionContext": CONTEXT})


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_many_reads_make_one_decrypt_with_the_functions_context(kms, monkeypatch):
    client, stubber = kms
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-api")
    expect_decrypt(stubber)  # exactly one response: a second Decrypt would fail the stub
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client)
    assert [secrets.get("db") for _ in range(50)] == [PLAINTEXT] * 50


def test_max_age_reopens_a_stale_plaintext(kms):
    client, stubber = kms
    clock = Clock()
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


@pytest.mark.parametrize("code", ["InvalidCiphertextException", "AccessDeniedException", "DisabledException",
                                  "KMSInvalidStateException"])
def test_kms_errors_become_typed_errors_naming_secret_and_code_but_no_secret_text(kms, code):
    client, stubber = kms
    stubber.add_client_error("decrypt", service_error_code=code,
                             service_message=f"echo {CIPHERTEXT} {PLAINTEXT}")
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client, function_name="orders-api")
    with pytest.raises(SecretDecryptionError) as caught:
        secrets.get("db")
    error = caught.value
    assert (error.secret_name, error.code) == ("db", code)
    assert str(error) == f"could not decrypt sealed secret 'db': KMS {code}"
    rendered = "".join(traceback.format_exception(error))
    assert CIPHERTEXT not in rendered and PLAINTEXT not in rendered
    assert error.__cause__ is None and error.__context__ is None


def test_a_failed_decrypt_is_not_cached(kms):
    client, stubber = kms
    stubber.add_client_error("decrypt", service_error_code="DisabledException")
    expect_decrypt(stubber)
    secrets = SealedSecrets({"db": CIPHERTEXT}, client=client, function_name="orders-api")
    with pytest.raises(SecretDecryptionError):
        secrets.get("db")
    assert secrets.get("db") == PLAINTEXT


def test_unknown_names_are_a_typed_error_listing_what_is_sealed(kms):
    client, _ = kms
    secrets = SealedSecrets({"db": CIPHERTEXT, "api": CIPHERTEXT}, client=client, function_name="f")
    with pytest.raises(SecretNotFoundError, match=r"no sealed secret named 'nope'; this package seals: api, db"):
        secrets.get("nope")


def test_non_kms_failures_are_typed_too(monkeypatch):
    class Broken:
        def decrypt(self, **_):
            raise ConnectionError(f"could not reach KMS with {CIPHERTEXT}")

    with pytest.raises(SecretDecryptionError, match=r"KMS ConnectionError$") as caught:
        SealedSecrets({"db": CIPHERTEXT}, client=Broken(), function_name="f").get("db")
    assert CIPHERTEXT not in "".join(traceback.format_exception(caught.value))


def test_get_secret_reads_the_registered_set(kms, monkeypatch):
    client, stubber = kms
    expect_decrypt(stubber)
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-api")
    registered = sealed_secrets.register({"db": CIPHERTEXT})
    registered._client = client
    assert sealed_secrets.get_secret("db") == sealed_secrets.get_secret("db") == PLAINTEXT


def test_default_client_uses_botocore_retries_and_timeouts(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    config = sealed_secrets._default_kms_client().meta.config
    assert config.retries == {"total_max_attempts": 5, "mode": "standard"}  # botocore counts the first try
    assert (config.connect_timeout, config.read_timeout) == (2, 5)


def test_importing_the_helper_touches_no_aws(root):
    probe = ("import sys; sys.path.insert(0, 'lambda_src'); import sealed_secrets; "
             "sealed_secrets.register({'a': 'QQ=='}); print(sorted(m for m in sys.modules if m.startswith(('boto', 'urllib3'))))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
