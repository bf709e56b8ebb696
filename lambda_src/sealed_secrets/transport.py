"""The stdlib KMS opener, and which opener a decrypt uses.

KMS Decrypt over HTTPS with the standard library only: JSON 1.1 protocol, SigV4 signature, verified TLS,
retries with jittered backoff within the budget. Neither boto3 nor botocore is imported: that saves the
~0.3 s their import and a client cost on every cold start. tests/unit/test_kms_sigv4.py recomputes every
signature sent here with botocore's own SigV4Auth.

Every opener has one interface, ``decrypt(blob, context, deadline) -> bytes``, and fails by raising
``DecryptFailure`` (a code only).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms of every cold start)
if TYPE_CHECKING:
    from typing import Any, Protocol

    class Opener(Protocol):
        def decrypt(self, blob: bytes, context: Mapping[str, str], deadline: float) -> bytes:
            """The plaintext of ``blob`` under ``context``, or ``DecryptFailure`` by ``deadline``
            (a ``Clock.monotonic()`` value)."""
from urllib.parse import quote, unquote, urlsplit

from .credentials import ContainerCredentials, Credentials, container_from_environment, environment_credentials
from .credentials import forget as forget_container_credentials
from .boto import BotoKms
from .budget import BUDGET, CLOCK, Budget, Clock, clipped
from .errors import DecryptFailure, code_of, safe_code
from .proxy import Proxy, Unsupported, proxy_for


def opener(client: Any = None, *, key_id: str | None = None, clock: Clock = CLOCK, budget: Budget = BUDGET) -> Opener:
    """A handler's own ``client`` (boto3-style) if it gives one, else the environment's opener. With
    ``key_id`` every Decrypt names the key, so that a ciphertext sealed under another key is refused
    (``IncorrectKeyException``) instead of opened."""
    if client is not None:
        return BotoKms(client, key_id=key_id, budget=budget)
    return EnvironmentKms(key_id=key_id, clock=clock, budget=budget)


class EnvironmentKms:
    """The stdlib opener when the environment has credentials and a region (as Lambda sets them), read
    afresh for each decrypt; otherwise boto3, with one client kept for the container's life."""

    def __init__(self, *, key_id: str | None = None, clock: Clock = CLOCK, budget: Budget = BUDGET) -> None:
        self._key_id, self._clock, self._budget = key_id, clock, budget
        self._fallback = BotoKms(None, key_id=key_id, budget=budget)

    def decrypt(self, blob: bytes, context: Mapping[str, str], deadline: float) -> bytes:
        stdlib = StdlibKms.from_environment(os.environ, key_id=self._key_id, clock=self._clock, budget=self._budget)
        return (stdlib or self._fallback).decrypt(blob, context, deadline)


# --------------------------------------------------------------------------------------------------- stdlib

_SERVICE = "kms"
_TARGET = "TrentService.Decrypt"
_MAX_RESPONSE_BYTES = 1 << 20  # a Decrypt answer is under 8 KB; never read without bound
# The DNS suffix of each partition (botocore's data/partitions.json); any other region is in "aws".
_DNS_SUFFIXES = (
    ("cn-", "amazonaws.com.cn"),
    ("us-isob-", "sc2s.sgov.gov"),
    ("us-isof-", "csp.hci.ic.gov"),
    ("us-iso-", "c2s.ic.gov"),
    ("eu-isoe-", "cloud.adc-e.uk"),
    ("eusc-", "amazonaws.eu"),
)
_HOSTNAME = re.compile(r"[a-z0-9_.:%-]+")  # a DNS name or an IP literal (urlsplit lowercases it); ASCII as botocore
_REGION = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")  # botocore's own check
# Retried like botocore's "standard" mode: throttling, transient errors, 5xx; never a refusal.
_RETRYABLE_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException", "RequestTimeout",
    "RequestTimeoutException", "KMSInternalException", "DependencyTimeoutException",
})
_TLS_CONTEXTS: dict[str | None, Any] = {}
# The roots that sign AWS's endpoints: a context from these 5 costs ~1 ms to build, the system store's ~100 ms.
# A certificate they do not verify is tried once more against the system store, then refused.
AWS_ROOTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "aws_roots.pem")
_SYSTEM_TRUSTED: set[str] = set()  # hosts that needed the system store: straight there next time


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class StdlibKms:
    """Signs and sends ``TrentService.Decrypt`` itself. ``utcnow`` is the wall clock the signature is
    dated with (tests inject it for the midnight edges); ``clock`` and ``budget`` time the attempts."""

    def __init__(self, creds: Credentials | ContainerCredentials, region: str,
                 endpoint_url: str, *,
                 key_id: str | None = None, cafile: str | None = None, utcnow: Callable[[], datetime] = _utc_now,
                 clock: Clock = CLOCK, budget: Budget = BUDGET, proxy: Proxy | None = None) -> None:
        try:
            parts = urlsplit(endpoint_url)  # raises ValueError on a broken IPv6 literal
            port = parts.port  # raises ValueError when it is not a number
        except ValueError:
            raise DecryptFailure("InvalidEndpointUrl") from None
        if parts.scheme not in ("http", "https") or not _HOSTNAME.fullmatch(parts.hostname or ""):
            raise DecryptFailure("InvalidEndpointUrl")
        if not _REGION.fullmatch(region):
            raise DecryptFailure("InvalidRegion")
        self._credentials, self._region, self._cafile, self._utcnow = creds, region, cafile, utcnow
        self._key_id = key_id
        self._clock, self._budget = clock, budget
        self._tls = parts.scheme == "https"
        self._hostname, self._port = parts.hostname, port
        # Host as botocore derives it from a URL: lowercase, IPv6 in brackets, default port left out.
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        default_port = 443 if self._tls else 80
        self._host = host if port in (None, default_port) else f"{host}:{port}"
        # The path is sent as given (escaping only what HTTP forbids); the query in canonical form,
        # so that what is sent and what is signed are the same string.
        self._path = quote(parts.path or "/", safe="/%~!$&'()*+,;=:@-._")
        self._query = _canonical_query(parts.query)
        self._proxy = proxy

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], *, key_id: str | None = None,
                         utcnow: Callable[[], datetime] = _utc_now, clock: Clock = CLOCK,
                         budget: Budget = BUDGET) -> StdlibKms | None:
        """The opener for the credentials, region and endpoint Lambda sets; None when the environment
        has no credentials or no region (boto3 then finds them in profiles, SSO, web identity)."""
        creds = environment_credentials(environ) or container_from_environment(
            environ, utcnow=utcnow, clock=clock, budget=budget)
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if creds is None or not region:
            return None
        url = endpoint_url(environ, region)
        try:
            via = proxy_for(url, environ)  # HTTPS_PROXY, NO_PROXY as botocore reads them
        except Unsupported:
            return None  # TLS to the proxy itself: boto3 speaks it
        except ValueError:
            via = None  # a broken endpoint URL: refused below, with its code
        return cls(creds, region, url, key_id=key_id, cafile=environ.get("AWS_CA_BUNDLE") or None,
                   utcnow=utcnow, clock=clock, budget=budget, proxy=via)

    def decrypt(self, blob: bytes, context: Mapping[str, str], deadline: float) -> bytes:
        """The plaintext, retrying with jittered backoff until ``deadline``; each attempt's timeouts are
        clipped to what is left of the budget. Fails with ``DecryptFailure``."""
        import http.client  # here, not at the top: importing this package costs next to nothing

        request = {"CiphertextBlob": base64.b64encode(blob).decode("ascii"), "EncryptionContext": dict(context)}
        if self._key_id is not None:
            request["KeyId"] = self._key_id
        body = json.dumps(request).encode("utf-8")
        clock, budget = self._clock, self._budget
        code = "TimeoutError"
        for attempt in range(budget.attempts):
            if attempt:
                pause = clock.jitter(budget.backoff(attempt))
                if clock.monotonic() + pause + budget.min_attempt > deadline:
                    break
                clock.sleep(pause)
            if deadline - clock.monotonic() < budget.min_attempt:
                break
            try:
                return self._attempt(body, deadline)
            except DecryptFailure as failure:
                code, retry = failure.code, failure.retryable
            except (OSError, http.client.HTTPException) as error:  # refused, reset, timed out, TLS
                code = code_of(error)
                retry = code != "SSLCertVerificationError"  # a wrong certificate does not get better
            if not retry:
                break
        raise DecryptFailure(code)

    def _attempt(self, body: bytes, deadline: float) -> bytes:
        status, error_type, data = self._send(body, deadline)
        if status == 200:
            plaintext = _plaintext_or_none(data)
            if plaintext is None:
                raise DecryptFailure("InvalidResponse")
            return plaintext
        code = _kms_error_code(data, error_type, status)
        if code == "ExpiredTokenException" and isinstance(self._credentials, ContainerCredentials):
            forget_container_credentials()  # expired before their Expiration said: the next attempt fetches new ones
            raise DecryptFailure(code, retryable=True)
        raise DecryptFailure(code, retryable=status >= 500 or status == 429 or code in _RETRYABLE_CODES)

    def _send(self, body: bytes, deadline: float) -> tuple[int, str | None, bytes]:
        """One signed POST: KMS's status, ``x-amzn-ErrorType`` header and body."""
        import ssl  # here, not at the top: importing this package costs next to nothing

        creds = self._credentials.current(deadline)  # container credentials: fetched within the budget
        target = f"{self._path}?{self._query}" if self._query else self._path
        proxy, proxy_headers = self._proxy, {}
        if proxy and not self._tls:  # forwarded, as urllib3 does for http URLs: the target in absolute form
            target = f"http://{self._host}{target}"
            if proxy.authorization:
                proxy_headers["Proxy-Authorization"] = proxy.authorization
        trust = self._cafile or (None if self._hostname in _SYSTEM_TRUSTED else AWS_ROOTS)
        connection = self._connection(trust, deadline)
        try:
            try:
                connection.connect()
            except ssl.SSLCertVerificationError:
                if trust != AWS_ROOTS:
                    raise
                connection.close()  # not signed by AWS's roots (a new CA, a proxy's own): the system store decides
                _SYSTEM_TRUSTED.add(self._hostname)
                connection = self._connection(None, deadline)
                connection.connect()
            connection.sock.settimeout(clipped(self._budget.read, deadline, self._clock.monotonic()))
            # skip_*: every header sent is one this code chose, and signed (User-Agent excepted).
            connection.putrequest("POST", target, skip_host=True, skip_accept_encoding=True)
            for header, value in {**self._signed_headers(body, creds), **proxy_headers}.items():
                connection.putheader(header, value)
            connection.endheaders(body)
            response = connection.getresponse()
            return response.status, response.getheader("x-amzn-ErrorType"), response.read(_MAX_RESPONSE_BYTES)
        finally:
            connection.close()

    def _connection(self, trust: str | None, deadline: float) -> Any:
        """An unopened connection to KMS, or to the proxy on the way; ``trust`` is the CA bundle TLS is
        verified with (None: the system store)."""
        import http.client

        proxy, timeout = self._proxy, clipped(self._budget.connect, deadline, self._clock.monotonic())
        host, port = (proxy.host, proxy.port) if proxy else (self._hostname, self._port)
        if self._tls:
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=_tls_context(trust))
            if proxy:  # CONNECT: TLS runs end to end to KMS, verified for KMS's name
                tunnel = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
                connection.set_tunnel(self._hostname, self._port or 443, headers=tunnel)
        else:  # only when an endpoint URL says http, as LocalStack's does
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        connection.set_debuglevel(0)  # a class-wide debuglevel would print the request body to stdout
        return connection

    def _signed_headers(self, body: bytes, creds: Credentials) -> dict[str, str]:
        """SigV4 (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_sigv-create-signed-request.html)."""
        now = self._utcnow()
        if now.tzinfo is not None:
            now = now.astimezone(timezone.utc)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")  # one clock read: the date and the time never disagree
        datestamp = amz_date[:8]
        headers = {
            "Content-Length": str(len(body)),
            "Content-Type": "application/x-amz-json-1.1",
            "Host": self._host,
            "X-Amz-Date": amz_date,
            "X-Amz-Target": _TARGET,
        }
        if creds.token:
            headers["X-Amz-Security-Token"] = creds.token
        signed = sorted((name.lower(), " ".join(value.split())) for name, value in headers.items())
        signed_names = ";".join(name for name, _ in signed)
        canonical_request = "\n".join([
            "POST",
            _canonical_path(self._path),
            self._query,
            "".join(f"{name}:{value}\n" for name, value in signed),
            signed_names,
            hashlib.sha256(body).hexdigest(),
        ])
        scope = f"{datestamp}/{self._region}/{_SERVICE}/aws4_request"
        string_to_sign = "\n".join([
            "AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ])
        key = f"AWS4{creds.secret_key}".encode("utf-8")
        for part in (datestamp, self._region, _SERVICE, "aws4_request"):
            key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
        signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                                    f"SignedHeaders={signed_names}, Signature={signature}")
        headers["User-Agent"] = "sealed-secrets (stdlib SigV4)"  # SigV4 leaves User-Agent unsigned
        return headers


def endpoint_url(environ: Mapping[str, str], region: str) -> str:
    """AWS_ENDPOINT_URL_KMS, then AWS_ENDPOINT_URL (as botocore reads them), then the regional endpoint
    of the region's partition, FIPS when AWS_USE_FIPS_ENDPOINT is true."""
    if environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").lower() != "true":
        configured = environ.get("AWS_ENDPOINT_URL_KMS") or environ.get("AWS_ENDPOINT_URL")
        if configured:
            return configured
    suffix = next((suffix for prefix, suffix in _DNS_SUFFIXES if region.startswith(prefix)), "amazonaws.com")
    service = "kms-fips" if environ.get("AWS_USE_FIPS_ENDPOINT", "").lower() == "true" else "kms"
    return f"https://{service}.{region}.{suffix}"


def _canonical_query(query: str) -> str:
    """The query in SigV4's canonical form: each name and value URI-encoded, pairs sorted."""
    pairs = []
    for pair in query.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            pairs.append((quote(unquote(name), safe="-_.~"), quote(unquote(value), safe="-_.~")))
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))


def _canonical_path(path: str) -> str:
    """SigV4's canonical URI for every service but S3: dot and empty segments removed, then encoded again."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    trailing = "/" if path.endswith("/") and segments else ""
    return quote("/" + "/".join(segments) + trailing, safe="/~")


def _tls_context(cafile: str | None) -> Any:
    """One verifying SSL context per CA bundle, None being the system store (building one reads the
    bundle: do it once)."""
    context = _TLS_CONTEXTS.get(cafile)
    if context is None:
        import ssl

        context = _TLS_CONTEXTS[cafile] = ssl.create_default_context(cafile=cafile)
    return context


def _plaintext_or_none(data: bytes) -> bytes | None:
    try:
        document = json.loads(data)
        return base64.b64decode(document["Plaintext"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None


def _kms_error_code(data: bytes, error_type: str | None, status: int) -> str:
    """KMS's error code: the JSON body's ``__type`` (maybe ``namespace#Code``), else the
    ``x-amzn-ErrorType`` header (maybe ``Code:uri``), else the HTTP status."""
    try:
        document = json.loads(data)
    except ValueError:
        document = None
    kind = document.get("__type") if isinstance(document, dict) else None
    kind = kind or error_type
    if not kind:
        return f"HTTP{status}"
    return safe_code(str(kind).rsplit("#", 1)[-1].split(":", 1)[0])
