"""A stand-in container credentials endpoint on 127.0.0.1 (what Lambda SnapStart, ECS and EKS Pod Identity
serve at AWS_CONTAINER_CREDENTIALS_FULL_URI), recording what it receives (stdlib only)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Issued:
    access_key: str
    secret_key: str
    token: str
    expiration: str = "2099-01-01T00:00:00Z"

    def body(self) -> bytes:
        return json.dumps({"AccessKeyId": self.access_key, "SecretAccessKey": self.secret_key, "Token": self.token,
                           "Expiration": self.expiration, "RoleArn": "arn:aws:iam::000000000000:role/f"}).encode()


class FakeCredentials:
    """``with FakeCredentials(issued) as server:`` serves ``server.url`` (path /creds). ``issued`` answers each
    request in turn, the last one again when they run out; a ``(status, body)`` tuple answers with that instead;
    ``hang`` never answers. ``server.requests`` holds (path, headers) of what arrived."""

    def __init__(self, *issued: Issued | tuple[int, bytes], hang: bool = False) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        self._issued = list(issued)
        self._hang = hang
        self._closing = threading.Event()
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with fake._lock:
                    fake.requests.append((self.path, dict(self.headers.items())))
                    answer = fake._issued.pop(0) if len(fake._issued) > 1 else fake._issued[0]
                if fake._hang:
                    fake._closing.wait()
                    return
                status, body = (200, answer.body()) if isinstance(answer, Issued) else answer
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/creds"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def rotate(self, issued: Issued) -> None:
        """Answer every request from now on with ``issued``."""
        with self._lock:
            self._issued = [issued]

    def __enter__(self) -> FakeCredentials:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
