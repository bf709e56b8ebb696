"""The trust store (issue 16): KMS's certificate is verified against the roots that sign AWS's endpoints
(aws_roots.pem, 5 certificates: a context from them costs about a millisecond), then, for a certificate they
do not verify, against the system store; a certificate neither trusts is refused. AWS_CA_BUNDLE, when set,
is the only trust, as in botocore. The system store is stood in for by SSL_CERT_FILE / SSL_CERT_DIR."""

from __future__ import annotations

import re
import time
import warnings

import certifi
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from kms_fake_server import FakeKms, self_signed_certificate
from sealed_secrets import transport
from sealed_secrets.errors import DecryptFailure
from sealed_secrets.transport import StdlibKms

PLAINTEXT = b"trust-store-plaintext"
ROOTS = {"CN=Amazon Root CA 1,O=Amazon,C=US", "CN=Amazon Root CA 2,O=Amazon,C=US", "CN=Amazon Root CA 3,O=Amazon,C=US",
         "CN=Amazon Root CA 4,O=Amazon,C=US",
         "CN=Starfield Services Root Certificate Authority - G2,O=Starfield Technologies\\, Inc.,L=Scottsdale,ST=Arizona,C=US"}


@pytest.fixture(autouse=True)
def fresh_trust(monkeypatch, tmp_path):
    monkeypatch.setattr(transport, "_TLS_CONTEXTS", {})
    monkeypatch.setattr(transport, "_SYSTEM_TRUSTED", set())
    (tmp_path / "empty-dir").mkdir()
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "empty-dir"))  # the system store is SSL_CERT_FILE alone


def certificates(path: str) -> list[x509.Certificate]:
    with open(path, "rb") as file, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Starfield Services Root G2's serial number is 0, as Mozilla ships it
        return x509.load_pem_x509_certificates(file.read())


def test_the_small_bundle_holds_the_roots_that_sign_aws_endpoints_as_mozilla_ships_them():
    ours = certificates(transport.AWS_ROOTS)
    assert {certificate.subject.rfc4514_string() for certificate in ours} == ROOTS and len(ours) == 5
    pem = re.compile(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", re.S)
    with open(certifi.where()) as theirs, open(transport.AWS_ROOTS) as bundle:
        mozilla, shipped = set(pem.findall(theirs.read())), set(pem.findall(bundle.read()))
    assert shipped <= mozilla and len(shipped) == 5  # character for character
    assert {certificate.public_bytes(Encoding.PEM).decode().strip() for certificate in ours} <= mozilla


def decrypt(kms: FakeKms, **settings: str) -> tuple[bytes | None, str]:
    environ = {"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "us-east-1",
               "AWS_ENDPOINT_URL": kms.url, **settings}
    try:
        return StdlibKms.from_environment(environ).decrypt(b"blob", {"LambdaFunctionName": "f"}, time.monotonic() + 6), ""
    except DecryptFailure as failure:
        return None, failure.code


def test_a_certificate_the_small_bundle_verifies_never_loads_the_system_store(monkeypatch, tmp_path):
    tls = self_signed_certificate(tmp_path)
    monkeypatch.setattr(transport, "AWS_ROOTS", str(tls[0]))  # KMS's CA plays AWS's roots
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    with FakeKms(plaintext=PLAINTEXT, tls=tls) as kms:
        assert decrypt(kms) == (PLAINTEXT, "")
    assert list(transport._TLS_CONTEXTS) == [str(tls[0])]


def test_a_certificate_only_the_system_store_verifies_is_accepted_and_remembered(monkeypatch, tmp_path):
    tls = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls[0]))  # the system store trusts KMS's CA; AWS's roots do not
    with FakeKms(plaintext=PLAINTEXT, tls=tls) as kms:
        assert decrypt(kms) == (PLAINTEXT, "")
        assert decrypt(kms) == (PLAINTEXT, "")
    assert set(transport._TLS_CONTEXTS) == {transport.AWS_ROOTS, None} and transport._SYSTEM_TRUSTED == {"127.0.0.1"}
    assert len(kms.requests) == 2


def test_a_certificate_neither_trusts_is_refused(monkeypatch, tmp_path):
    tls = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", certifi.where())
    with FakeKms(plaintext=PLAINTEXT, tls=tls) as kms:
        assert decrypt(kms) == (None, "SSLCertVerificationError")
    assert kms.requests == []


def test_aws_ca_bundle_is_the_only_trust_when_set(monkeypatch, tmp_path):
    tls = self_signed_certificate(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls[0]))  # the system store would verify it...
    with FakeKms(plaintext=PLAINTEXT, tls=tls) as kms:
        assert decrypt(kms, AWS_CA_BUNDLE=certifi.where()) == (None, "SSLCertVerificationError")  # ...but is not asked
        assert decrypt(kms, AWS_CA_BUNDLE=str(tls[0])) == (PLAINTEXT, "")
    assert None not in transport._TLS_CONTEXTS


def test_the_readme_states_the_bundles_size(root):
    readme = " ".join((root / "README.md").read_text().split())
    count = len(certificates(transport.AWS_ROOTS))
    assert re.search(rf"`aws_roots\.pem`, {count} certificates", readme)
