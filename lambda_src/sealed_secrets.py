"""Open KMS-sealed secrets inside a Lambda function, once per container.

The ciphertexts are baked into the package at build time (see ``build.py``). This module decrypts one
lazily on its first read, bound to the encryption context ``{"LambdaFunctionName": <this function>}``,
and keeps the plaintext in memory for the life of the container (or for ``max_age`` seconds).

Example::

    import sealed_secrets

    sealed_secrets.register({"db": "AQICAHh..."})  # done by the rendered handler

    def handler(event, context):
        password = sealed_secrets.get_secret("db")                     # str, one KMS Decrypt per container
        token = sealed_secrets.get_secret("api_token", max_age=300)    # re-opened when 5 minutes old
        key = sealed_secrets.get_secret_bytes("signing_key")           # bytes, any content
        creds = sealed_secrets.get_secret_json("db_credentials")       # {"username": ..., "password": ...}

How a Decrypt is made:

* With credentials and a region in the environment (as Lambda sets them), this module signs
  ``TrentService.Decrypt`` itself (SigV4) and sends it with ``http.client`` over verified TLS. Neither
  boto3 nor botocore is imported: that saves the ~0.3 s their import and a client cost on every cold start.
* Otherwise (a laptop with profiles or SSO, SnapStart's container credentials), or when a handler passes
  its own ``client``, boto3 makes the call.

Either way a decrypt has one time budget: at most ``MAX_ATTEMPTS`` attempts, ``CONNECT_TIMEOUT_SECONDS``
to connect and ``READ_TIMEOUT_SECONDS`` to read each, within ``BUDGET_SECONDS`` in all. No caller waits
longer than ``BUDGET_SECONDS``: threads that want the same secret share its one Decrypt, and a slow
secret holds up only the readers of that secret.

Errors are ``SecretError``s that name the secret and a code, never a value: no plaintext and no
ciphertext in their messages, in their tracebacks' frames, or in any log record, even at DEBUG.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote, urlsplit

__all__ = [
    "BUDGET_SECONDS",
    "CONNECT_TIMEOUT_SECONDS",
    "MAX_ATTEMPTS",
    "READ_TIMEOUT_SECONDS",
    "SealedSecrets",
    "SecretDecryptionError",
    "SecretError",
    "SecretNotFoundError",
    "get_secret",
    "get_secret_bytes",
    "get_secret_json",
    "register",
]

ENCRYPTION_CONTEXT_KEY = "LambdaFunctionName"

# The time budget of one decrypt, retries included. The Terraform module's functions time out after 10 s
# by default; 6 s leaves 4 s for the handler to report the failure (and do its other work) before Lambda
# kills it. KMS answers a Decrypt in tens of milliseconds and a TCP+TLS connect in-region takes tens of
# milliseconds too, so 1 s to connect and 2 s to read only ever expire on a broken network; 3 attempts
# ride out a throttle, a 5xx or a reset connection, with jittered backoff in between.
MAX_ATTEMPTS = 3
CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.0
BUDGET_SECONDS = 6.0
BACKOFF_BASE_SECONDS = 0.25  # full jitter: a pause drawn from [0, base * 2**(retry-1)], at most the cap
BACKOFF_CAP_SECONDS = 1.0
_MIN_ATTEMPT_SECONDS = 0.1  # no attempt starts with less budget left than this


# --------------------------------------------------------------------------------------------------- errors


class SecretError(Exception):
    """Base class of every error this module raises. ``secret_name`` and ``code`` say what failed;
    the message carries the name and the code, never a secret value."""

    def __init__(self, secret_name: str, message: str, code: str = "SecretError") -> None:
        super().__init__(message)
        self.secret_name = secret_name
        self.code = code

    def __reduce__(self) -> tuple[Any, ...]:  # pickles (e.g. across multiprocessing) with name and code
        return (type(self), (self.secret_name, str(self), self.code))


class SecretNotFoundError(SecretError):
    """No ciphertext of that name was sealed into this package (``code`` is ``"SecretNotFound"``)."""

    def __init__(self, secret_name: str, known: tuple[str, ...] = ()) -> None:
        sealed = ", ".join(known) or "none"
        super().__init__(secret_name, f"no sealed secret named {secret_name!r}; this package seals: {sealed}",
                         "SecretNotFound")
        self.known = tuple(known)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.secret_name, self.known))


# Failures that are not KMS's answer get a message saying what they are; every other code is KMS's own
# (InvalidCiphertextException, AccessDeniedException, ...) or the transport's (TimeoutError, ...).
_LOCAL_FAILURES = {
    "InvalidBase64": "its ciphertext in this package is not valid base64 (KMS was not called)",
    "NoFunctionName": "AWS_LAMBDA_FUNCTION_NAME is not set, so its encryption context is unknown (KMS was not called)",
    "PlaintextNotUtf8": "its plaintext is not UTF-8 text (read it with get_secret_bytes)",
    "PlaintextNotJson": "its plaintext is not a JSON document",
}


class SecretDecryptionError(SecretError):
    """The secret could not be opened. ``code`` is KMS's error code (``InvalidCiphertextException``,
    ``AccessDeniedException``, ``DisabledException``, ...), the transport's (``TimeoutError``,
    ``ConnectionRefusedError``, ...) or one of ``InvalidBase64``, ``NoFunctionName``,
    ``PlaintextNotUtf8``, ``PlaintextNotJson``.

    Example: ``could not decrypt sealed secret 'db': KMS InvalidCiphertextException``
    """

    def __init__(self, secret_name: str, code: str) -> None:
        reason = _LOCAL_FAILURES.get(code, f"KMS {code}")
        super().__init__(secret_name, f"could not decrypt sealed secret {secret_name!r}: {reason}", code)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.secret_name, self.code))


def _safe_code(value: object) -> str:
    """An error code fit for a message: codes come from the network, and must not smuggle text in."""
    text = str(value)
    return text if re.fullmatch(r"[A-Za-z][A-Za-z0-9_.]{0,99}", text) else "UnrecognizedError"


def _exception_code(error: BaseException) -> str:
    response = getattr(error, "response", None)  # botocore's ClientError carries KMS's code here
    if isinstance(response, dict) and isinstance(response.get("Error"), dict) and response["Error"].get("Code"):
        return _safe_code(response["Error"]["Code"])
    if isinstance(error, TimeoutError) or type(error).__name__ == "timeout":  # socket.timeout before 3.10
        return "TimeoutError"
    return _safe_code(type(error).__name__)


# --------------------------------------------------------------------------------------------------- cache


class _Opened:
    """A plaintext as KMS returned it, its text (None when it is not UTF-8), and when it was opened."""

    __slots__ = ("plaintext", "text", "opened_at")

    def __init__(self, plaintext: bytes) -> None:
        self.plaintext = plaintext
        self.text = _utf8_or_none(plaintext)  # decoded once, not on every read
        self.opened_at = 0.0  # set when it is cached

    def __repr__(self) -> str:  # reprs show up in tracebacks' locals: never the values
        return "<opened secret>"


class _PlaintextCache:
    """Opened secrets by name, each with the (monotonic) time it was opened."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._entries: dict[str, _Opened] = {}
        self._clock = clock

    def get(self, name: str, max_age: float | None) -> _Opened | None:
        opened = self._entries.get(name)  # a dict read is atomic: the warm path takes no lock
        if opened is None or (max_age is not None and self._clock() - opened.opened_at >= max_age):
            return None
        return opened

    def put(self, name: str, opened: _Opened) -> _Opened:
        opened.opened_at = self._clock()
        self._entries[name] = opened
        return opened

    def clear(self) -> None:
        self._entries.clear()

    def __repr__(self) -> str:
        return f"<plaintext cache of {len(self._entries)} secrets>"


class _Flight:
    """One Decrypt in progress; the threads that want the same secret wait for its outcome."""

    __slots__ = ("done", "opened", "code")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.opened: _Opened | None = None
        self.code = ""

    def __repr__(self) -> str:
        return f"<decrypt {'done' if self.done.is_set() else 'in flight'}>"


# --------------------------------------------------------------------------------------------------- secrets


class SealedSecrets:
    """A set of sealed secrets and the per-container cache of their plaintexts.

    Example::

        secrets = SealedSecrets({"api_token": "AQICAHh..."})
        token = secrets.get("api_token")               # one KMS Decrypt, then cached
        token = secrets.get("api_token", max_age=300)  # re-opened when older than 5 minutes
        raw = secrets.get_bytes("api_token")           # the plaintext's bytes
        doc = secrets.get_json("db_credentials")       # the plaintext parsed as JSON

    ``client`` is a KMS client to use instead of this module's own opener (a boto3 one with a Stubber in
    a unit test, say); ``function_name`` defaults to ``AWS_LAMBDA_FUNCTION_NAME``; ``clock`` is the
    monotonic clock that ``max_age`` is measured with.
    """

    def __init__(
        self,
        ciphertexts: Mapping[str, str],
        *,
        client: Any = None,
        function_name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ciphertexts = _checked_ciphertexts(ciphertexts)
        if function_name is not None and not isinstance(function_name, str):
            raise TypeError(f"function_name must be a str or None, not {type(function_name).__name__}")
        self._client = client
        self._function_name = function_name
        self._cache = _PlaintextCache(clock)
        self._guard = threading.Lock()  # held only to look up or start a Decrypt, never across one
        self._flights: dict[str, _Flight] = {}
        self._boto3_client: Any = None
        self._boto3_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"SealedSecrets(names={list(self.names())!r})"

    def names(self) -> tuple[str, ...]:
        """The names of the sealed secrets, sorted."""
        return tuple(sorted(self._ciphertexts))

    def get(self, name: str, *, max_age: float | None = None) -> str:
        """The plaintext of secret ``name`` as text, decrypted on first use.

        ``max_age`` (seconds) re-opens a cached plaintext older than that; ``None`` keeps it for the
        life of the container. A plaintext that is not UTF-8 raises ``SecretDecryptionError``.
        """
        opened = self._opened(name, max_age)  # not its text in a local: locals show up in tracebacks
        if opened.text is None:
            raise SecretDecryptionError(name, "PlaintextNotUtf8")
        return opened.text

    def get_bytes(self, name: str, *, max_age: float | None = None) -> bytes:
        """The plaintext of secret ``name`` as bytes, whatever they are."""
        return self._opened(name, max_age).plaintext

    def get_json(self, name: str, *, max_age: float | None = None) -> Any:
        """The plaintext of secret ``name`` parsed as JSON, e.g. ``{"username": ..., "password": ...}``."""
        document = _json_or_missing(self._opened(name, max_age).plaintext)
        if document is _MISSING:
            raise SecretDecryptionError(name, "PlaintextNotJson")
        return document

    def clear_cache(self) -> None:
        """Forget every plaintext; the next read decrypts again."""
        self._cache.clear()

    def _add(self, ciphertexts: Mapping[str, str]) -> None:
        added = _checked_ciphertexts(ciphertexts)
        for name, ciphertext in added.items():
            if self._ciphertexts.get(name, ciphertext) != ciphertext:
                raise ValueError(f"sealed secret {name!r} is already registered with another ciphertext")
        self._ciphertexts = {**self._ciphertexts, **added}  # swapped whole: readers never see half of it

    def _opened(self, name: str, max_age: float | None) -> _Opened:
        if max_age is not None or not isinstance(name, str):  # the warm path checks only the name's type
            _check_arguments(name, max_age)
        opened = self._cache.get(name, max_age)
        return opened if opened is not None else self._open(name, max_age)

    def _open(self, name: str, max_age: float | None) -> _Opened:
        if name not in self._ciphertexts:
            raise SecretNotFoundError(name, self.names())
        with self._guard:
            flight = self._flights.get(name)
            leader = flight is None
            if leader:
                cached = self._cache.get(name, max_age)  # another thread may have just opened it
                if cached is not None:
                    return cached
                flight = self._flights[name] = _Flight()
        if leader:
            self._lead(name, flight)
        elif not flight.done.wait(BUDGET_SECONDS):  # the leader's own deadline is earlier than ours
            raise SecretDecryptionError(name, "TimeoutError")
        if flight.opened is None:
            raise SecretDecryptionError(name, flight.code)
        return flight.opened

    def _lead(self, name: str, flight: _Flight) -> None:
        try:
            opened, flight.code = self._decrypt(name)
            if opened is not None:
                flight.opened = self._cache.put(name, opened)
        except Exception as error:  # noqa: BLE001 - a bug or an odd client; its frames stay off our error
            flight.code = _exception_code(error)
        finally:
            if flight.opened is None and not flight.code:
                flight.code = "Interrupted"
            with self._guard:
                self._flights.pop(name, None)
            flight.done.set()

    def _decrypt(self, name: str) -> tuple[_Opened | None, str]:
        """(opened, "") or (None, error code). The blob, the credentials and KMS's answer exist only in
        the worker thread: this thread waits holding none of them, so whatever interrupts the wait (a
        signal handler's exception) has no frame that shows them. Failures come back as codes."""
        deadline = time.monotonic() + BUDGET_SECONDS
        function_name = self._function_name or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        if not function_name:
            return None, "NoFunctionName"
        if _b64decode_or_none(self._ciphertexts[name]) is None:  # checked here, kept by no local
            return None, "InvalidBase64"
        context = {ENCRYPTION_CONTEXT_KEY: function_name}

        def work() -> tuple[_Opened | None, str]:
            blob = base64.b64decode(self._ciphertexts[name])
            opener = None
            if self._client is None:
                try:
                    opener = _StdlibKms.from_environment(os.environ)
                except _KmsFailure as failure:
                    return None, failure.code
            if opener is not None:
                plaintext, code = opener.decrypt(blob, context, deadline)
            else:
                plaintext, code = _decrypt_with_client(self._kms_client(), blob, context)
            return (None if plaintext is None else _Opened(plaintext)), code

        return _within_budget(work, deadline)

    def _kms_client(self) -> Any:
        if self._client is not None:
            return self._client
        with self._boto3_lock:
            if self._boto3_client is None:
                self._boto3_client = _default_kms_client()
            return self._boto3_client


def _checked_ciphertexts(ciphertexts: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(ciphertexts, Mapping):
        raise TypeError(f"ciphertexts must be a mapping of name to base64 ciphertext, not {type(ciphertexts).__name__}")
    for name, ciphertext in ciphertexts.items():
        if not isinstance(name, str) or not isinstance(ciphertext, str):
            raise TypeError("ciphertexts must map str names to str base64 ciphertexts")
    return dict(ciphertexts)


def _check_arguments(name: object, max_age: object) -> None:
    if not isinstance(name, str):
        raise TypeError(f"secret name must be a str, not {type(name).__name__}")
    if max_age is None:
        return
    if isinstance(max_age, bool) or not isinstance(max_age, (int, float)):
        raise TypeError(f"max_age must be a number of seconds or None, not {type(max_age).__name__}")
    if not math.isfinite(max_age) or max_age < 0:
        raise ValueError(f"max_age must be a finite number of seconds >= 0, not {max_age!r}")


# These helpers return None instead of raising: the decoding errors would carry the secret
# (UnicodeDecodeError.object, JSONDecodeError.doc) and their frames would hold it.

_MISSING = object()


def _utf8_or_none(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _json_or_missing(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return _MISSING


def _b64decode_or_none(text: str) -> bytes | None:
    try:
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return blob or None


# --------------------------------------------------------------------------------------------------- stdlib KMS opener
#
# KMS Decrypt over HTTPS with the standard library only: JSON 1.1 protocol, SigV4 signature. The test
# tier tests/unit/test_kms_sigv4.py recomputes every signature sent here with botocore's own SigV4Auth.

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


class _KmsFailure(Exception):
    """One failed attempt: only a code, so that nothing else can travel with it."""

    def __init__(self, code: str, retryable: bool = False) -> None:
        super().__init__(code)
        self.code, self.retryable = code, retryable


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class _StdlibKms:
    """Signs and sends ``TrentService.Decrypt`` itself. ``utcnow`` is the wall clock the signature is
    dated with (tests inject it for the midnight edges); nothing else about the request depends on it."""

    def __init__(self, access_key: str, secret_key: str, token: str | None, region: str, endpoint_url: str,
                 *, cafile: str | None = None, utcnow: Callable[[], datetime] = _utc_now) -> None:
        try:
            parts = urlsplit(endpoint_url)  # raises ValueError on a broken IPv6 literal
            port = parts.port  # raises ValueError when it is not a number
        except ValueError:
            raise _KmsFailure("InvalidEndpointUrl") from None
        if parts.scheme not in ("http", "https") or not _HOSTNAME.fullmatch(parts.hostname or ""):
            raise _KmsFailure("InvalidEndpointUrl")
        if not _REGION.fullmatch(region):
            raise _KmsFailure("InvalidRegion")
        self._access_key, self._secret_key, self._token = access_key, secret_key, token
        self._region, self._cafile, self._utcnow = region, cafile, utcnow
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

    def __repr__(self) -> str:  # the secret key and token stay out of tracebacks' locals
        return f"<KMS Decrypt over {'https' if self._tls else 'http'}://{self._host} in {self._region}>"

    @classmethod
    def from_environment(cls, environ: Mapping[str, str], *,
                         utcnow: Callable[[], datetime] = _utc_now) -> _StdlibKms | None:
        """The opener for the credentials, region and endpoint Lambda sets; None when the environment
        has no credentials or no region (boto3 then finds them in profiles, SSO, container credentials)."""
        access_key, secret_key = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
        region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
        if not (access_key and secret_key and region):
            return None
        return cls(access_key, secret_key, environ.get("AWS_SESSION_TOKEN") or None, region,
                   _endpoint_url(environ, region), cafile=environ.get("AWS_CA_BUNDLE") or None, utcnow=utcnow)

    def decrypt(self, blob: bytes, context: Mapping[str, str], deadline: float) -> tuple[bytes | None, str]:
        """(plaintext, "") or (None, error code), retrying with jittered backoff until ``deadline``
        (a ``time.monotonic()`` value). Each timeout is clipped to what is left of the budget."""
        import http.client  # here, not at the top: importing this module costs next to nothing

        body = json.dumps({"CiphertextBlob": base64.b64encode(blob).decode("ascii"),
                           "EncryptionContext": dict(context)}).encode("utf-8")
        code = "TimeoutError"
        for attempt in range(MAX_ATTEMPTS):
            if attempt:
                import random  # only a retry needs it

                pause = random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1)))
                if time.monotonic() + pause + _MIN_ATTEMPT_SECONDS > deadline:
                    break
                time.sleep(pause)
            if deadline - time.monotonic() < _MIN_ATTEMPT_SECONDS:
                break
            try:
                return self._attempt(body, deadline), ""
            except _KmsFailure as failure:
                code, retry = failure.code, failure.retryable
            except (OSError, http.client.HTTPException) as error:  # refused, reset, timed out, TLS
                code = _exception_code(error)
                retry = code != "SSLCertVerificationError"  # a wrong certificate does not get better
            if not retry:
                break
        return None, code

    def _attempt(self, body: bytes, deadline: float) -> bytes:
        import http.client

        connect_timeout = max(0.001, min(CONNECT_TIMEOUT_SECONDS, deadline - time.monotonic()))
        if self._tls:
            connection = http.client.HTTPSConnection(self._hostname, self._port, timeout=connect_timeout,
                                                     context=_tls_context(self._cafile))
        else:  # only when an endpoint URL says http, as LocalStack's does
            connection = http.client.HTTPConnection(self._hostname, self._port, timeout=connect_timeout)
        connection.set_debuglevel(0)  # a class-wide debuglevel would print the request body to stdout
        try:
            connection.connect()
            connection.sock.settimeout(max(0.001, min(READ_TIMEOUT_SECONDS, deadline - time.monotonic())))
            target = f"{self._path}?{self._query}" if self._query else self._path
            # skip_*: every header sent is one this code chose, and signed (User-Agent excepted).
            connection.putrequest("POST", target, skip_host=True, skip_accept_encoding=True)
            for header, value in self._signed_headers(body).items():
                connection.putheader(header, value)
            connection.endheaders(body)
            response = connection.getresponse()
            status, error_type = response.status, response.getheader("x-amzn-ErrorType")
            data = response.read(_MAX_RESPONSE_BYTES)
        finally:
            connection.close()
        if status == 200:
            plaintext = _plaintext_or_none(data)
            if plaintext is None:
                raise _KmsFailure("InvalidResponse")
            return plaintext
        code = _kms_error_code(data, error_type, status)
        raise _KmsFailure(code, retryable=status >= 500 or status == 429 or code in _RETRYABLE_CODES)

    def _signed_headers(self, body: bytes) -> dict[str, str]:
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
        if self._token:
            headers["X-Amz-Security-Token"] = self._token
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
        key = f"AWS4{self._secret_key}".encode("utf-8")
        for part in (datestamp, self._region, _SERVICE, "aws4_request"):
            key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
        signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={self._access_key}/{scope}, "
                                    f"SignedHeaders={signed_names}, Signature={signature}")
        headers["User-Agent"] = "sealed-secrets (stdlib SigV4)"  # SigV4 leaves User-Agent unsigned
        return headers


def _endpoint_url(environ: Mapping[str, str], region: str) -> str:
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
    """One verifying SSL context per CA bundle (building one reads the bundle: do it once)."""
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
    return _safe_code(str(kind).rsplit("#", 1)[-1].split(":", 1)[0])


# --------------------------------------------------------------------------------------------------- boto3 fallback


def _botocore_config() -> dict[str, Any]:
    """The budget's figures in botocore's terms (botocore counts the first try as an attempt)."""
    return {"connect_timeout": CONNECT_TIMEOUT_SECONDS, "read_timeout": READ_TIMEOUT_SECONDS,
            "retries": {"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"}}


def _default_kms_client() -> Any:
    import boto3  # only here: the stdlib opener needs neither boto3 nor botocore
    from botocore.config import Config

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return boto3.client("kms", region_name=region, config=Config(**_botocore_config()))


class _Quiet(threading.local):
    """Set on a thread while it runs a KMS client's call for this module."""

    on = False


_QUIET = _Quiet()


def _withheld(factory: Callable[..., Any]) -> Callable[..., Any]:
    """A log record factory that makes the records of a quiet thread without their message, arguments or
    exception. botocore logs the Decrypt request and response (the ciphertext, the plaintext) at DEBUG,
    and a record that exists is seen by more than handlers: logger filters, and hooks on
    ``Logger.callHandlers`` (error trackers' breadcrumbs). So the value never enters a record at all."""

    def make(name: str, level: int, fn: str, lno: int, msg: object, args: Any, exc_info: Any,
             func: str | None = None, sinfo: str | None = None, **kwargs: Any) -> Any:
        if _QUIET.on:
            msg, args, exc_info, sinfo = "(withheld by sealed_secrets: a KMS client's record)", (), None, None
        return factory(name, level, fn, lno, msg, args, exc_info, func, sinfo, **kwargs)

    make.sealed_secrets = True  # type: ignore[attr-defined]
    return make


_quiet_lock = threading.Lock()
_quiet_calls = 0
_debuglevels: dict[type, int] = {}  # what the application had set, while a quiet call runs


def _http_debuglevels() -> dict[type, int]:
    """Every connection class (http.client's, urllib3's, botocore's) with a debuglevel set on it."""
    import http.client

    found, pending = {}, [http.client.HTTPConnection]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if vars(cls).get("debuglevel"):
            found[cls] = vars(cls)["debuglevel"]
    return found


@contextmanager
def _quiet() -> Iterator[None]:
    """Runs a KMS client's call on this thread so that nothing it logs or prints holds a value: its log
    records are withheld, and http.client's debug output is off while any such call runs (an application
    that sets ``HTTPConnection.debuglevel`` has every request urllib3 sends, body included, printed)."""
    import logging

    global _quiet_calls
    with _quiet_lock:
        factory = logging.getLogRecordFactory()
        if not getattr(factory, "sealed_secrets", False):  # again on each call: the application may set its own
            logging.setLogRecordFactory(_withheld(factory))
        if _quiet_calls == 0:
            _debuglevels.update(_http_debuglevels())
            for cls in _debuglevels:
                cls.debuglevel = 0  # type: ignore[attr-defined]
        _quiet_calls += 1
    _QUIET.on = True
    try:
        yield
    finally:
        _QUIET.on = False
        with _quiet_lock:
            _quiet_calls -= 1
            if _quiet_calls == 0:
                for cls, level in _debuglevels.items():
                    cls.debuglevel = level  # type: ignore[attr-defined]
                _debuglevels.clear()


def _decrypt_with_client(client: Any, blob: bytes, context: Mapping[str, str]) -> tuple[bytes | None, str]:
    with _quiet():
        plaintext = client.decrypt(CiphertextBlob=blob, EncryptionContext=dict(context))["Plaintext"]
    return (plaintext, "") if isinstance(plaintext, bytes) else (None, "InvalidResponse")


# --------------------------------------------------------------------------------------------------- the budget


def _within_budget(work: Callable[[], tuple[_Opened | None, str]], deadline: float) -> tuple[_Opened | None, str]:
    """Runs one decrypt in a worker thread and stops waiting for it at ``deadline``. Socket timeouts do
    not cover name resolution, and a handler's own client may retry for as long as its Config says:
    neither can hold the caller past the budget."""
    outcome: list[tuple[_Opened | None, str]] = []

    def run() -> None:
        try:
            outcome.append(work())
        # Every exception, BaseExceptions too, is reduced to a code here: botocore's message quotes KMS's,
        # and one that escaped would reach threading.excepthook with the blob in its frames' locals.
        except BaseException as error:  # noqa: BLE001
            outcome.append((None, _exception_code(error)))

    worker = threading.Thread(target=run, name="sealed-secrets-decrypt", daemon=True)
    worker.start()
    worker.join(max(0.0, deadline - time.monotonic()))
    return outcome[0] if outcome else (None, "TimeoutError")


# --------------------------------------------------------------------------------------------------- module API

_default: SealedSecrets | None = None
_register_lock = threading.Lock()


def register(ciphertexts: Mapping[str, str]) -> SealedSecrets:
    """Add ``ciphertexts`` (name => base64 CiphertextBlob) to the set that :func:`get_secret` reads.

    The rendered handler calls this once at import. Registering a name again with the same ciphertext
    changes nothing; with a different one it raises ``ValueError``.

    Example::

        sealed_secrets.register({"db": "AQICAHh..."})
    """
    global _default
    with _register_lock:
        if _default is None:
            _default = SealedSecrets(ciphertexts)
        else:
            _default._add(ciphertexts)
        return _default


def _registered(name: str) -> SealedSecrets:
    if not isinstance(name, str):
        raise TypeError(f"secret name must be a str, not {type(name).__name__}")
    if _default is None:
        raise SecretError(name, "no sealed secrets registered: call sealed_secrets.register() first", "NotRegistered")
    return _default


def get_secret(name: str, *, max_age: float | None = None) -> str:
    """The plaintext of sealed secret ``name`` as text, decrypted once per container.

    Example::

        password = get_secret("db_password")
        token = get_secret("api_token", max_age=300)  # re-opened when older than 5 minutes
    """
    return _registered(name).get(name, max_age=max_age)


def get_secret_bytes(name: str, *, max_age: float | None = None) -> bytes:
    """The plaintext of sealed secret ``name`` as bytes (a binary key, any encoding).

    Example::

        signing_key = get_secret_bytes("signing_key")
    """
    return _registered(name).get_bytes(name, max_age=max_age)


def get_secret_json(name: str, *, max_age: float | None = None) -> Any:
    """The plaintext of sealed secret ``name`` parsed as JSON; a plaintext that is not JSON raises
    ``SecretDecryptionError`` (``code`` ``PlaintextNotJson``) without quoting it.

    Example::

        creds = get_secret_json("db_credentials")
        connect(user=creds["username"], password=creds["password"])
    """
    return _registered(name).get_json(name, max_age=max_age)
