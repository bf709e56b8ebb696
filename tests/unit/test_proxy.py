"""Proxies (issue 16): the stdlib opener reads HTTPS_PROXY / NO_PROXY as botocore does (checked against
botocore over a matrix of environments), reaches KMS through a CONNECT tunnel with TLS verified end to end,
and the proxy sees only the host name: a local CONNECT proxy records every byte it relays in clear."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import itertools
import os
import socket
import threading
import traceback
from pathlib import Path

import boto3
import pytest
from debug_logging import recording_every_record
from botocore.httpsession import ProxyConfiguration
from botocore.utils import get_environ_proxies
from urllib3.util import parse_url

import sealed_secrets
from credentials_fake_server import FakeCredentials, Issued
from kms_fake_server import FakeKms
from sealed_secrets import SealedSecrets, SecretDecryptionError, credentials
from sealed_secrets.proxy import Unsupported, proxy_for
from sealed_secrets.transport import StdlibKms
from sigv4_reference import botocore_authorization

KMS_NAME = "kms.us-east-1.amazonaws.com"
PLAINTEXT = b"proxied-plaintext-marker-61be"
BLOB = b"\x01\x02proxied-ciphertext-marker"
CIPHERTEXT = base64.b64encode(BLOB).decode()
ISSUED = Issued("ASIAPROXIEDEXAMPLE", "proxied-secret-key-marker-0c8d", "proxied-session-token-marker-77f1")
PROXY_USER, PROXY_PASSWORD = "proxy-user", "proxy@password-marker-e5a9"
PROXY_URL_AUTH = f"{PROXY_USER}:{PROXY_PASSWORD.replace('@', '%40')}"
BASIC = "Basic " + base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()
NEVER_IN_CLEAR = [CIPHERTEXT.encode(), BLOB, PLAINTEXT, base64.b64encode(PLAINTEXT), ISSUED.secret_key.encode(),
                  ISSUED.token.encode(), b"TrentService", b"AWS4-HMAC-SHA256", b"auth-token-marker"]


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("AWS_") or name.lower().endswith("_proxy") or name == "REQUEST_METHOD":
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "orders-api")
    monkeypatch.setattr(sealed_secrets, "_default", None)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    credentials.forget()
    yield
    credentials.forget()


def certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for KMS's regional name and localhost (the trust store: AWS_CA_BUNDLE)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake kms behind a proxy")])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = [x509.DNSName(KMS_NAME), x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "kms.pem", directory / "kms.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class ConnectProxy:
    """A small threaded HTTP proxy on 127.0.0.1: CONNECT tunnels and forwarded requests, to the address
    ``routes`` gives a host name (it does the name resolution, as a real proxy does). ``heads`` holds each
    request head it read; ``relayed`` every byte it passed on through a tunnel."""

    def __init__(self, routes: dict[str, tuple[str, int]], *, require: str | None = None) -> None:
        self.routes, self.require = routes, require
        self.heads: list[str] = []
        self.relayed = bytearray()
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self._threads: list[threading.Thread] = []

    def __enter__(self) -> ConnectProxy:
        self._spawn(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()

    def _spawn(self, target, *args) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)
        return thread

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._spawn(self._serve, client)

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            head, _, rest = head.partition(b"\r\n\r\n")
            text = head.decode("latin-1")
            with self._lock:
                self.heads.append(text)
            method, target, _ = text.split("\r\n")[0].split(" ")
            if self.require and f"Proxy-Authorization: {self.require}" not in text.split("\r\n"):
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                return
            if method == "CONNECT":
                host, _, port = target.rpartition(":")
                upstream = socket.create_connection(self.routes.get(host, (host, int(port))))
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                record = True
            else:  # forwarded: http://host:port/path
                upstream = socket.create_connection(self.routes[parse_url(target).host])
                upstream.sendall(head + b"\r\n\r\n" + rest)
                record = False
            with upstream:
                pumps = [self._spawn(self._pump, client, upstream, record), self._spawn(self._pump, upstream, client, record)]
                for pump in pumps:
                    pump.join(30)

    def _pump(self, source: socket.socket, sink: socket.socket, record: bool) -> None:
        try:
            while data := source.recv(65536):
                if record:
                    with self._lock:
                        self.relayed += data
                sink.sendall(data)
        except OSError:
            pass
        finally:
            try:
                sink.shutdown(socket.SHUT_WR)
            except OSError:
                pass


def in_clear(relayed: bytes) -> list[bytes]:
    return [needle for needle in NEVER_IN_CLEAR if needle in relayed]


def kms_environment(monkeypatch, creds: FakeCredentials, **settings: str) -> None:
    for name, value in {"AWS_REGION": "us-east-1", credentials.FULL_URI: creds.url,
                        credentials.AUTHORIZATION_TOKEN: "auth-token-marker", **settings}.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def recorder(monkeypatch):
    import http.client

    monkeypatch.setattr(http.client.HTTPConnection, "debuglevel", 1)  # would print the CONNECT and its headers
    with recording_every_record() as recorder:
        yield recorder


# ------------------------------------------------------------------------------ end to end, through a proxy


def test_kms_is_reached_through_a_connect_tunnel_and_the_proxy_sees_only_its_name(monkeypatch, tmp_path, recorder, capfd):
    tls = certificate(tmp_path)
    with FakeCredentials(ISSUED) as creds, FakeKms(plaintext=PLAINTEXT, tls=tls) as kms, \
            ConnectProxy({KMS_NAME: ("127.0.0.1", kms.port)}, require=BASIC) as proxy:
        kms_environment(monkeypatch, creds, AWS_CA_BUNDLE=str(tls[0]),
                        HTTPS_PROXY=f"http://{PROXY_URL_AUTH}@127.0.0.1:{proxy.port}")
        assert SealedSecrets({"db": CIPHERTEXT}).get_bytes("db") == PLAINTEXT  # no AWS_ENDPOINT_URL: KMS's own name
    (head,) = proxy.heads
    lines = head.split("\r\n")
    assert lines[0] == f"CONNECT {KMS_NAME}:443 HTTP/1.1"
    assert f"Proxy-Authorization: {BASIC}" in lines
    assert proxy.relayed[:1] == b"\x16" and len(proxy.relayed) > 1000  # a TLS handshake, then records
    assert in_clear(bytes(proxy.relayed)) == [] and in_clear(head.encode()) == []
    (received,) = kms.requests
    assert received.header("Host") == KMS_NAME
    assert received.header("Authorization") == botocore_authorization(
        received, access_key=ISSUED.access_key, secret_key=ISSUED.secret_key, token=ISSUED.token, region="us-east-1")
    assert len(creds.requests) == 1  # container credentials are fetched directly, as botocore does
    out, err = capfd.readouterr()
    assert PROXY_PASSWORD not in out + err + "\n".join(recorder.seen) and BASIC not in out + err


def test_the_leak_check_would_see_what_the_proxy_relays_in_clear(tmp_path):
    """The forwarded (http://) path goes through the proxy in clear: the check sees the secrets in it."""
    with FakeKms(plaintext=PLAINTEXT) as kms, ConnectProxy({"kms.local": ("127.0.0.1", kms.port)}) as proxy:
        opener = StdlibKms.from_environment({"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s",
                                             "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://kms.local:80",
                                             "HTTP_PROXY": f"http://127.0.0.1:{proxy.port}"})
        assert opener.decrypt(BLOB, {"LambdaFunctionName": "f"}, 10**9) == PLAINTEXT
    (head,) = proxy.heads
    assert head.startswith("POST http://kms.local/ HTTP/1.1") and b"TrentService" in in_clear(head.encode())
    assert kms.requests[0].path == "http://kms.local/"


@pytest.mark.parametrize(("no_proxy", "proxied"), [
    ("example.com, localhost", False), (".localhost", False), ("*", False), ("example.com", True), ("", True)])
def test_no_proxy_bypasses_the_proxy(monkeypatch, tmp_path, no_proxy, proxied):
    tls = certificate(tmp_path)
    with FakeCredentials(ISSUED) as creds, FakeKms(plaintext=PLAINTEXT, tls=tls) as kms, ConnectProxy({}) as proxy:
        kms_environment(monkeypatch, creds, AWS_CA_BUNDLE=str(tls[0]), AWS_ENDPOINT_URL=f"https://localhost:{kms.port}",
                        https_proxy=f"http://127.0.0.1:{proxy.port}", NO_PROXY=no_proxy)
        assert SealedSecrets({"db": CIPHERTEXT}).get_bytes("db") == PLAINTEXT
    assert [head.split("\r\n")[0] for head in proxy.heads] == ([f"CONNECT localhost:{kms.port} HTTP/1.1"] if proxied else [])
    assert len(kms.requests) == 1


def test_tls_is_verified_end_to_end_through_the_tunnel(monkeypatch, tmp_path):
    tls = certificate(tmp_path)
    with FakeCredentials(ISSUED) as creds, FakeKms(plaintext=PLAINTEXT, tls=tls) as kms, \
            ConnectProxy({KMS_NAME: ("127.0.0.1", kms.port)}) as proxy:
        kms_environment(monkeypatch, creds, HTTPS_PROXY=f"http://127.0.0.1:{proxy.port}")  # no AWS_CA_BUNDLE
        error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}).get_bytes("db"))
    assert isinstance(error, SecretDecryptionError) and error.code == "SSLCertVerificationError"
    assert proxy.heads[0].startswith(f"CONNECT {KMS_NAME}:443 ") and kms.requests == []


def test_a_refusing_proxy_is_an_error_without_its_credentials(monkeypatch, tmp_path, recorder, capfd):
    with FakeCredentials(ISSUED) as creds, ConnectProxy({}, require="Basic something-else") as proxy:
        kms_environment(monkeypatch, creds, HTTPS_PROXY=f"http://{PROXY_URL_AUTH}@127.0.0.1:{proxy.port}")
        error = raised(lambda: SealedSecrets({"db": CIPHERTEXT}).get_bytes("db"))
    assert isinstance(error, SecretDecryptionError) and error.code == "OSError"  # "Tunnel connection failed: 407"
    assert len(proxy.heads) == sealed_secrets.MAX_ATTEMPTS
    rendered = "".join(traceback.TracebackException(type(error), error, error.__traceback__, capture_locals=True).format())
    out, err = capfd.readouterr()
    shown = "\n".join([rendered, str(error), repr(error), out, err, *recorder.seen])
    assert PROXY_PASSWORD not in shown and BASIC not in shown and PROXY_URL_AUTH not in shown
    assert "self = SealedSecrets(names=" in rendered


def test_an_https_proxy_is_left_to_boto3():
    environ = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_REGION": "us-east-1"}
    assert StdlibKms.from_environment({**environ, "HTTPS_PROXY": "https://proxy.local:443"}) is None
    assert StdlibKms.from_environment({**environ, "HTTPS_PROXY": "http://proxy.local:3128"}) is not None


def test_the_proxy_repr_shows_no_credentials():
    proxy = proxy_for(f"https://{KMS_NAME}", {"HTTPS_PROXY": f"http://{PROXY_URL_AUTH}@p.local:3128"})
    assert proxy.authorization == BASIC and repr(proxy) == "Proxy(host='p.local', port=3128)"


# ------------------------------------------------------------------------------ the same choice as botocore

PROXY_SETTINGS = [
    {}, {"HTTPS_PROXY": "http://p.local:3128"}, {"https_proxy": "http://p.local:3128"},
    {"HTTPS_PROXY": "http://upper.local:1", "https_proxy": "http://lower.local:2"},
    {"HTTPS_PROXY": "http://upper.local:1", "https_proxy": ""}, {"HTTPS_PROXY": "p.local:3128"},
    {"HTTPS_PROXY": "//p.local:3128"}, {"HTTPS_PROXY": "http://p.local"}, {"HTTPS_PROXY": f"http://{PROXY_URL_AUTH}@p.local:3128"},
    {"HTTPS_PROXY": "http://only-user@p.local:3128"}, {"HTTPS_PROXY": "http://u:@p.local:3128"},
    {"HTTP_PROXY": "http://plain.local:8080"}, {"HTTP_PROXY": "http://plain.local:8080", "REQUEST_METHOD": "GET"},
    {"http_proxy": "http://plain.local:8080", "REQUEST_METHOD": "GET"}, {"HTTPS_PROXY": "https://tls.local:443"},
    {"HTTPS_PROXY": "http://[::1]:3128"},
]
NO_PROXY_SETTINGS = [
    {}, {"NO_PROXY": KMS_NAME}, {"NO_PROXY": ".amazonaws.com"}, {"NO_PROXY": "amazonaws.com"}, {"NO_PROXY": "*"},
    {"NO_PROXY": "AMAZONAWS.COM"}, {"NO_PROXY": "other.com,  .amazonaws.com "}, {"NO_PROXY": "zonaws.com"},
    {"NO_PROXY": "10.0.0.0/8"}, {"NO_PROXY": "127.0.0.1"}, {"NO_PROXY": "localhost:8443"}, {"NO_PROXY": "localhost"},
    {"NO_PROXY": "amazonaws.com", "no_proxy": "example.com"}, {"NO_PROXY": "x", "no_proxy": ""}, {"NO_PROXY": "::1"},
]
URLS = [f"https://{KMS_NAME}", "https://kms-fips.us-east-1.amazonaws.com", "https://localhost:8443/",
        "https://10.1.2.3/", "https://127.0.0.1:4566", "http://localhost:4566", "https://[::1]:443/", "http://kms.local"]


def botocores_choice(url: str) -> tuple[str, int, str | None] | str | None:
    proxies = get_environ_proxies(url)
    config = ProxyConfiguration(proxies=proxies)
    proxy_url = config.proxy_url_for(url)
    if not proxy_url:
        return None
    parsed = parse_url(proxy_url)
    if parsed.scheme != "http":
        return "unsupported"
    return parsed.host.strip("[]"), parsed.port or 80, config.proxy_headers_for(proxy_url).get("Proxy-Authorization")


def ours(url: str) -> tuple[str, int, str | None] | str | None:
    try:
        proxy = proxy_for(url, os.environ)
    except Unsupported:
        return "unsupported"
    return None if proxy is None else (proxy.host, proxy.port, proxy.authorization)


def test_the_proxy_chosen_is_the_one_botocore_chooses(monkeypatch):
    mismatches, kinds = [], set()
    for proxies, no_proxy, url in itertools.product(PROXY_SETTINGS, NO_PROXY_SETTINGS, URLS):
        with monkeypatch.context() as context:
            for name, value in {**proxies, **no_proxy}.items():
                context.setenv(name, value)
            expected = botocores_choice(url)
            kinds.add(expected if expected in (None, "unsupported") else "proxied" if expected[2] is None else "authorized")
            if ours(url) != expected:
                mismatches.append((proxies, no_proxy, url, ours(url), expected))
    assert mismatches == []
    assert kinds == {None, "unsupported", "proxied", "authorized"}  # every outcome occurs in the matrix


def raised(action) -> BaseException:
    try:
        action()
    except BaseException as error:  # noqa: BLE001
        return error
    raise AssertionError("nothing was raised")


def test_the_readme_states_how_many_combinations_are_compared(root):
    readme = " ".join((root / "README.md").read_text().split())
    assert f"over {len(PROXY_SETTINGS) * len(NO_PROXY_SETTINGS) * len(URLS):,} combinations" in readme
