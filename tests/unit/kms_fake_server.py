"""A stand-in KMS Decrypt endpoint on 127.0.0.1 that records exactly what it receives (stdlib only).

Used by the SigV4 proof (test_kms_sigv4.py) and the runtime helper's tests (test_sealed_secrets.py).
It answers from a script of responses, or hangs, and can speak TLS with a self-signed certificate.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


@dataclass(frozen=True)
class Captured:
    """One request as the server received it."""

    method: str
    path: str  # the request target, query included, byte for byte
    headers: list[tuple[str, str]]  # in the order received, duplicates kept
    body: bytes

    def header(self, name: str) -> str:
        values = [value for key, value in self.headers if key.lower() == name.lower()]
        assert len(values) == 1, f"{name}: {len(values)} values"
        return values[0]

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False  # never answer (until the server closes)


def decrypted(plaintext: bytes, key_id: str = "arn:aws:kms:us-east-1:000000000000:key/fake") -> Reply:
    body = {"KeyId": key_id, "Plaintext": base64.b64encode(plaintext).decode(), "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/x-amz-json-1.1"})


def kms_error(code: str, message: str = "", status: int = 400, *, header_only: bool = False) -> Reply:
    """KMS's JSON 1.1 error: ``{"__type": code, "message": ...}`` (or only the x-amzn-ErrorType header)."""
    if header_only:
        return Reply(status, b"", {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/com.amazonaws.kms/"})
    return Reply(status, json.dumps({"__type": code, "message": message}).encode(),
                 {"Content-Type": "application/x-amz-json-1.1"})


def sealed_under(keys: Mapping[bytes, tuple[str, bytes]]) -> Callable[[Captured], Reply]:
    """An answer for ``FakeKms(default=...)`` that knows which key sealed each blob (blob => (key ARN,
    plaintext)), as KMS does from the ciphertext's own metadata: a Decrypt that names another key in
    ``KeyId`` is refused with ``IncorrectKeyException``; one that names none opens under the blob's key."""

    def answer(received: Captured) -> Reply:
        request = received.json()
        key, plaintext = keys[base64.b64decode(request["CiphertextBlob"])]
        if request.get("KeyId", key) != key:
            return kms_error("IncorrectKeyException",
                             "The key ID in the request does not identify a CMK that can perform this operation.")
        return decrypted(plaintext, key_id=key)

    return answer


class FakeKms:
    """``with FakeKms(replies) as kms:`` serves ``kms.url`` until the block ends.

    ``replies`` is answered in order; once it runs out, ``default`` answers every request (a function of
    the captured request, so that it can echo, count or wait for the test). ``kms.requests`` holds what
    arrived.
    """

    def __init__(self, replies: Iterable[Reply] = (), *, default: Callable[[Captured], Reply] | Reply | None = None,
                 plaintext: bytes = b"hello, world!", tls: tuple[Path, Path] | None = None) -> None:
        self.requests: list[Captured] = []
        self._replies = list(replies)
        self._default = default if default is not None else decrypted(plaintext)
        self._lock = threading.Condition()
        self._closing = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                captured = Captured(self.command, self.path, list(self.headers.items()), body)
                reply = fake._next(captured)
                if reply.hang:
                    fake._closing.wait()
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            def log_message(self, *args: object) -> None:  # nothing to stderr
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def _next(self, captured: Captured) -> Reply:
        with self._lock:
            self.requests.append(captured)
            self._lock.notify_all()
            if self._replies:
                return self._replies.pop(0)
        return self._default(captured) if callable(self._default) else self._default

    def wait_for_requests(self, count: int, ceiling: float = 30.0) -> bool:
        """Whether ``count`` requests have arrived, waiting up to ``ceiling`` seconds for them."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.requests) >= count, ceiling)

    def __enter__(self) -> FakeKms:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, valid for a day: a server no default trust store accepts."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake kms")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fake-kms.pem", directory / "fake-kms.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path
