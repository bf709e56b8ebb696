"""The reference signature: botocore's own SigV4Auth over the request a server received."""

from __future__ import annotations

from datetime import datetime
from unittest import mock

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from kms_fake_server import Captured


def botocore_authorization(received: Captured, *, access_key: str, secret_key: str, token: str | None,
                           region: str, body: bytes | None = None) -> str:
    """The Authorization header botocore computes for exactly this method, path, query, headers and body
    (or ``body`` instead, to tamper with it), dated with the request's own X-Amz-Date."""
    headers = [(name, value) for name, value in received.headers if name.lower() != "authorization"]
    names = [name.lower() for name, _ in headers]
    assert len(names) == len(set(names)), f"a header was sent twice: {names}"
    host = received.header("Host")
    request = AWSRequest(method=received.method, url=f"http://{host}{received.path}",
                         data=received.body if body is None else body, headers=dict(headers))
    stamp = datetime.strptime(received.header("X-Amz-Date"), "%Y%m%dT%H%M%SZ")
    # add_auth dates the request with botocore's clock; pin that clock to the date the opener sent.
    with mock.patch("botocore.auth.get_current_datetime", return_value=stamp):
        SigV4Auth(Credentials(access_key, secret_key, token), "kms", region).add_auth(request)
    return request.headers["Authorization"]
