"""The stdlib KMS opener, proven against the reference: every request it sends to a local server is
re-signed with botocore's own SigV4Auth from what the server received, and the two must be equal.

Also: its endpoint for every region botocore knows, FIPS or not, is the one botocore resolves.
"""

from __future__ import annotations

import base64
import json
import os
import socket
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import botocore
import botocore.session
import pytest
from botocore.config import Config

import sealed_secrets
from sealed_secrets import transport
from sealed_secrets.errors import DecryptFailure
from kms_fake_server import Captured, FakeKms, Reply
from sigv4_reference import botocore_authorization

ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SHORT_TOKEN = "FQoGZXIvYXdzEXAMPLE"
LONG_TOKEN = base64.b64encode(bytes(range(256)) * 4).decode()  # 1.4 KB with '+', '/' and '='
UTC = timezone.utc
NOON = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)


@dataclass
class Case:
    id: str
    region: str = "us-east-1"
    token: str | None = None
    blob: bytes = b"\x01\x02\x03 sealed \xff"
    context: dict = field(default_factory=lambda: {"LambdaFunctionName": "orders-api"})
    plaintext: bytes = b"hello, world!"
    endpoint: str = "{url}"  # the endpoint URL, {url} being the fake server's
    variable: str = "AWS_ENDPOINT_URL"  # or AWS_ENDPOINT_URL_KMS, or "both" (the KMS one must win)
    clock: tuple[datetime, ...] = (NOON,)  # the wall clock, one reading per attempt
    replies: tuple[Reply, ...] = ()  # answered before the successful Decrypt (retried ones)
    path: str = "/"  # the request target the server must see


REGIONS = ["us-east-1", "us-west-2", "eu-central-2", "eu-south-2", "ap-southeast-5", "ap-northeast-3",
           "ap-east-2", "sa-east-1", "ca-west-1", "me-central-1", "il-central-1", "mx-central-1", "af-south-1",
           "cn-north-1", "cn-northwest-1", "us-gov-west-1", "us-gov-east-1", "us-iso-east-1", "us-isob-east-1",
           "us-isof-south-1", "eu-isoe-west-1", "eusc-de-east-1"]

CASES = [
    # every region format, with and without a session token
    *[Case(f"region-{region}", region=region, token=SHORT_TOKEN if index % 2 else None)
      for index, region in enumerate(REGIONS)],
    # session tokens
    Case("token-none"),
    Case("token-short", token=SHORT_TOKEN),
    Case("token-long-with-base64-punctuation", token=LONG_TOKEN, region="eu-west-1"),
    # payloads: unicode, large, binary
    Case("unicode-context", context={"LambdaFunctionName": "naïve-函数-🙂", "ключ": "значение"}),
    Case("unicode-plaintext", plaintext="пароль-密码-🔑".encode()),
    Case("binary-plaintext", plaintext=b"\xff\xfe\x00\x01 not utf-8"),
    Case("largest-ciphertext-6144-bytes", blob=bytes(range(256)) * 24, token=LONG_TOKEN),
    Case("large-context", context={"LambdaFunctionName": "f", **{f"key{i:03}": "v" * 100 for i in range(64)}}),
    Case("largest-plaintext-4096-bytes", plaintext=os.urandom(4096)),
    # query strings and paths in the endpoint URL
    Case("query-unsorted", endpoint="{url}/?b=2&a=1", path="/?a=1&b=2"),
    Case("query-repeated-key", endpoint="{url}/?a=2&a=1", path="/?a=1&a=2"),
    Case("query-bare-flag", endpoint="{url}/?flag", path="/?flag="),
    Case("query-encoded-space", endpoint="{url}/?x=a%20b", path="/?x=a%20b"),
    Case("query-reserved-characters", endpoint="{url}/?k=v/w+z:1", path="/?k=v%2Fw%2Bz%3A1"),
    Case("query-unicode", endpoint="{url}/?ü=ö&emoji=🙂", path="/?%C3%BC=%C3%B6&emoji=%F0%9F%99%82"),
    Case("query-empty-value-and-pair", endpoint="{url}/?z=1&&empty=", path="/?empty=&z=1"),
    Case("query-case-order", endpoint="{url}/?b=1&B=2&_=3", path="/?B=2&_=3&b=1"),
    Case("query-with-token", endpoint="{url}/?tenant=a b", token=LONG_TOKEN, path="/?tenant=a%20b"),
    Case("path-prefix", endpoint="{url}/kms-proxy/", path="/kms-proxy/"),
    Case("path-dot-segments", endpoint="{url}/a/./b/../c", path="/a/./b/../c"),
    Case("path-encoded", endpoint="{url}/with%20space/x", path="/with%20space/x"),
    Case("path-and-query", endpoint="{url}/p?y=2&x=1", path="/p?x=1&y=2"),
    # clock edges around midnight UTC (the date in the scope and in X-Amz-Date must agree)
    Case("clock-last-microsecond-of-2024", clock=(datetime(2024, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),)),
    Case("clock-midnight-2025", clock=(datetime(2025, 1, 1, 0, 0, 0, tzinfo=UTC),)),
    Case("clock-leap-day-end", clock=(datetime(2024, 2, 29, 23, 59, 59, 500000, tzinfo=UTC),), token=SHORT_TOKEN),
    Case("clock-after-leap-day", clock=(datetime(2024, 3, 1, 0, 0, 0, 1, tzinfo=UTC),)),
    Case("clock-y2k", clock=(datetime(2000, 1, 1, 0, 0, 0, tzinfo=UTC),)),
    Case("clock-past-2038", clock=(datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC),)),
    Case("clock-naive-taken-as-utc", clock=(datetime(2024, 6, 30, 23, 59, 59),)),
    Case("clock-utc+14-new-year-is-utc-old-year", clock=(datetime(2025, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=14))),)),
    Case("clock-utc-12-old-year-is-utc-new-year", clock=(datetime(2024, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-12))),)),
    Case("clock-retry-across-midnight", replies=(Reply(503),),
         clock=(datetime(2024, 12, 31, 23, 59, 59, 900000, tzinfo=UTC), datetime(2025, 1, 1, 0, 0, 0, 300000, tzinfo=UTC))),
    # both endpoint variables
    Case("endpoint-generic", variable="AWS_ENDPOINT_URL"),
    Case("endpoint-kms", variable="AWS_ENDPOINT_URL_KMS", token=SHORT_TOKEN),
    Case("endpoint-kms-wins-over-generic", variable="both"),
    Case("endpoint-trailing-slash", endpoint="{url}/", variable="AWS_ENDPOINT_URL_KMS"),
    Case("endpoint-localhost-name", endpoint="http://localhost:{port}", variable="AWS_ENDPOINT_URL_KMS"),
    Case("endpoint-uppercase-host", endpoint="http://LOCALHOST:{port}/", variable="AWS_ENDPOINT_URL"),
    # retries are signed afresh
    Case("retry-after-throttling-and-5xx", token=SHORT_TOKEN, clock=(NOON, NOON + timedelta(seconds=1), NOON + timedelta(seconds=2)),
         replies=(Reply(400, b'{"__type":"ThrottlingException"}'), Reply(500, b'{"__type":"KMSInternalException"}'))),
]


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def environment(case: Case, kms: FakeKms) -> dict[str, str]:
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": case.region}
    if case.token:
        env["AWS_SESSION_TOKEN"] = case.token
    endpoint = case.endpoint.format(url=kms.url, port=kms.port)
    if case.variable == "both":
        env.update(AWS_ENDPOINT_URL_KMS=endpoint, AWS_ENDPOINT_URL=closed_port_url())
    else:
        env[case.variable] = endpoint
    return env


class Unhurried(sealed_secrets.Clock):
    """A clock that stands still at 0 and pauses for no one: retries go out at once, none is cut short."""

    def monotonic(self) -> float:
        return 0.0

    def sleep(self, seconds: float) -> None:
        pass


def send(case: Case) -> tuple[list[Captured], list[datetime], tuple[bytes | None, str]]:
    """Open one blob through the opener against the fake server: (what it received, clock readings, outcome)."""
    readings: list[datetime] = []
    clock = iter(case.clock)

    def utcnow() -> datetime:
        readings.append(next(clock))
        return readings[-1]

    with FakeKms(case.replies, plaintext=case.plaintext) as kms:
        opener = transport.StdlibKms.from_environment(environment(case, kms), utcnow=utcnow, clock=Unhurried())
        try:
            outcome: tuple[bytes | None, str] = (opener.decrypt(case.blob, case.context, sealed_secrets.BUDGET_SECONDS), "")
        except DecryptFailure as failure:
            outcome = (None, failure.code)
    return kms.requests, readings, outcome


def reference(received: Captured, case: Case, **overrides) -> str:
    arguments = {"access_key": ACCESS_KEY, "secret_key": SECRET_KEY, "token": case.token, "region": case.region}
    return botocore_authorization(received, **{**arguments, **overrides})


def test_there_are_at_least_fifty_cases():
    assert len(CASES) >= 50


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_every_request_is_signed_as_botocore_signs_it(case: Case):
    requests, readings, outcome = send(case)
    assert outcome == (case.plaintext, "")
    assert len(requests) == len(case.replies) + 1 == len(readings)
    for received, reading in zip(requests, readings):
        assert received.header("Authorization") == reference(received, case)
        # what was signed is what the issue asks for, dated by the injected clock
        utc = reading.astimezone(UTC) if reading.tzinfo else reading
        assert received.header("X-Amz-Date") == utc.strftime("%Y%m%dT%H%M%SZ")
        assert f"/{utc:%Y%m%d}/{case.region}/kms/aws4_request," in received.header("Authorization")
        assert (received.method, received.path) == ("POST", case.path)
        assert received.header("X-Amz-Target") == "TrentService.Decrypt"
        assert received.header("Content-Type") == "application/x-amz-json-1.1"
        assert received.json() == {"CiphertextBlob": base64.b64encode(case.blob).decode(),
                                   "EncryptionContext": case.context}
        sent = {name.lower() for name, _ in received.headers}
        assert ("x-amz-security-token" in sent) == bool(case.token)
        if case.token:
            assert received.header("X-Amz-Security-Token") == case.token
        # every header but User-Agent is signed (botocore signs all it is given, so equality proves it too)
        signed = received.header("Authorization").split("SignedHeaders=")[1].split(",")[0].split(";")
        assert sorted(signed) == sorted(sent - {"authorization", "user-agent"})


BASE = Case("negative", token=SHORT_TOKEN, endpoint="{url}/?a=1")


def tampered_header(received: Captured, name: str, value: str) -> Captured:
    return replace(received, headers=[(key, value if key.lower() == name.lower() else old) for key, old in received.headers])


@pytest.mark.parametrize("tamper", [
    pytest.param(lambda r: {"body": r.body.replace(b'"CiphertextBlob": "A', b'"CiphertextBlob": "B')}, id="tampered-body"),
    pytest.param(lambda r: {"body": r.body + b" "}, id="body-with-one-more-byte"),
    pytest.param(lambda r: {"secret_key": SECRET_KEY[:-1] + "X"}, id="wrong-secret-key"),
    pytest.param(lambda r: {"region": "us-east-2"}, id="wrong-region"),
    pytest.param(lambda r: {"token": SHORT_TOKEN + "x"}, id="wrong-session-token"),
    pytest.param(lambda r: {"received": replace(r, path="/?a=2")}, id="tampered-query"),
    pytest.param(lambda r: {"received": tampered_header(r, "X-Amz-Target", "TrentService.Encrypt")}, id="tampered-target"),
])
def test_a_tampered_request_or_wrong_key_does_not_match(tamper):
    requests, _, outcome = send(BASE)
    assert outcome[1] == ""
    received = requests[0]
    assert received.header("Authorization") == reference(received, BASE)  # the untampered one matches
    change = tamper(received)
    target = change.pop("received", received)
    if "body" in change:
        assert change["body"] != received.body
    assert received.header("Authorization") != reference(target, BASE, **change)


# ------------------------------------------------------------------------------ endpoints


def botocore_regions() -> list[str]:
    data = json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())
    known = [region for partition in data["partitions"] for region in partition["regions"]]
    future = ["us-east-9", "ap-newplace-3", "cn-south-7", "us-gov-central-2", "us-iso-north-4", "us-isob-west-5",
              "us-isof-east-6", "eu-isoe-north-2", "eusc-de-west-3"]  # a region botocore does not list yet
    return sorted({region for region in known + future if not region.startswith("aws-")})


def test_the_regional_endpoint_is_the_one_botocore_resolves(monkeypatch):
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    session = botocore.session.get_session()
    regions = botocore_regions()
    assert {"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"} <= {
        partition["id"] for partition in
        json.loads((Path(botocore.__file__).parent / "data" / "partitions.json").read_text())["partitions"]}
    mismatches = []
    for region in regions:
        for fips in (False, True):
            client = session.create_client("kms", region_name=region, config=Config(use_fips_endpoint=fips),
                                           aws_access_key_id="a", aws_secret_access_key="b")
            ours = transport.endpoint_url({"AWS_USE_FIPS_ENDPOINT": "TRUE" if fips else "false"}, region)
            if ours != client.meta.endpoint_url:
                mismatches.append((region, fips, ours, client.meta.endpoint_url))
    assert len(regions) > 40 and mismatches == []


@pytest.mark.parametrize(("environ", "expected"), [
    ({"AWS_ENDPOINT_URL_KMS": "http://kms.local:1", "AWS_ENDPOINT_URL": "http://all.local:2"}, "http://kms.local:1"),
    ({"AWS_ENDPOINT_URL": "http://all.local:2"}, "http://all.local:2"),
    ({"AWS_ENDPOINT_URL": "http://all.local:2", "AWS_USE_FIPS_ENDPOINT": "true"}, "http://all.local:2"),
    ({"AWS_ENDPOINT_URL": "http://all.local:2", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"},
     "https://kms.eu-west-1.amazonaws.com"),
    ({"AWS_USE_FIPS_ENDPOINT": "true"}, "https://kms-fips.eu-west-1.amazonaws.com"),
    ({}, "https://kms.eu-west-1.amazonaws.com"),
])
def test_endpoint_variables_come_first_in_botocores_order(environ, expected):
    assert transport.endpoint_url(environ, "eu-west-1") == expected
