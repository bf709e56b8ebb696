"""Where the stdlib opener's credentials come from, in botocore's order for what Lambda can give:

1. static keys in the environment (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``),
   as every on-demand Lambda environment has them;
2. container credentials (``AWS_CONTAINER_CREDENTIALS_RELATIVE_URI``, or ``..._FULL_URI`` with
   ``AWS_CONTAINER_AUTHORIZATION_TOKEN`` or ``..._TOKEN_FILE``), as SnapStart gives them; fetched over
   plain HTTP from the hosts botocore allows only, kept until shortly before their ``Expiration``.

Anything else (profiles, SSO, web identity) is found by boto3, the fallback opener.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms of every cold start)
if TYPE_CHECKING:
    from typing import Any
from urllib.parse import urlsplit

from .budget import BUDGET, CLOCK, Budget, Clock, clipped
from .errors import DecryptFailure

RELATIVE_URI = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"
FULL_URI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
AUTHORIZATION_TOKEN = "AWS_CONTAINER_AUTHORIZATION_TOKEN"
AUTHORIZATION_TOKEN_FILE = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"
# botocore's ContainerMetadataFetcher: the ECS host for relative URIs, and the hosts a full URI may name
# over plain HTTP besides a loopback address (any host is allowed over HTTPS).
ECS_HOST = "169.254.170.2"
ALLOWED_HOSTS = (ECS_HOST, "169.254.170.23", "fd00:ec2::23", "localhost")
# Settings in whose presence botocore looks elsewhere before container credentials: left to boto3.
_BOTO_FIRST = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN")
REFRESH_BEFORE_EXPIRY = timedelta(minutes=5)  # a Decrypt signed now is still valid when KMS checks it
_MAX_BODY_BYTES = 64 * 1024  # an answer is under 2 KB; never read without bound
_MAX_TOKEN_BYTES = 16 * 1024  # an EKS Pod Identity token is about 1 KB


class Credentials:
    """An access key, its secret and an optional session token (the default repr shows none of them)."""

    __slots__ = ("access_key", "secret_key", "token", "expires_at")

    def __init__(self, access_key: str, secret_key: str, token: str | None = None,
                 expires_at: datetime | None = None) -> None:
        self.access_key, self.secret_key, self.token, self.expires_at = access_key, secret_key, token, expires_at

    def current(self, deadline: float) -> Credentials:
        """Static credentials are always current."""
        return self


def environment_credentials(environ: Mapping[str, str]) -> Credentials | None:
    """``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``; None without both keys."""
    access_key, secret_key = environ.get("AWS_ACCESS_KEY_ID"), environ.get("AWS_SECRET_ACCESS_KEY")
    if not (access_key and secret_key):
        return None
    return Credentials(access_key, secret_key, environ.get("AWS_SESSION_TOKEN") or None)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def container_from_environment(environ: Mapping[str, str], *, utcnow: Callable[[], datetime] = _utc_now,
                               clock: Clock = CLOCK, budget: Budget = BUDGET) -> ContainerCredentials | None:
    """The container credentials the environment names, as botocore's ContainerProvider reads them (the
    relative URI first); None when it names none, or names settings botocore would use first."""
    if any(environ.get(name) for name in _BOTO_FIRST):
        return None
    if RELATIVE_URI in environ:
        url = f"http://{ECS_HOST}{environ[RELATIVE_URI]}"
    elif FULL_URI in environ:
        url = environ[FULL_URI]
    else:
        return None
    return ContainerCredentials(url, environ.get(AUTHORIZATION_TOKEN), environ.get(AUTHORIZATION_TOKEN_FILE),
                                utcnow=utcnow, clock=clock, budget=budget)


def allowed_url(url: str) -> bool:
    """botocore's ContainerMetadataFetcher._validate_allowed_url: HTTPS to any host; HTTP to a loopback
    address or one of ``ALLOWED_HOSTS``."""
    import ipaddress

    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        return False
    if parts.scheme == "https":
        return True
    try:
        if ipaddress.ip_address(hostname).is_loopback:  # type: ignore[arg-type]
            return True
    except ValueError:
        pass
    return hostname in ALLOWED_HOSTS


# One cache for the process, by URL: every opener made for a decrypt shares what was fetched.
_cache: dict[str, Credentials] = {}
_fetching = threading.Lock()  # one fetch at a time: concurrent first decrypts share one


def forget() -> None:
    """Drop every cached credential (before a SnapStart snapshot, say)."""
    _cache.clear()


class ContainerCredentials:
    """Credentials from a container credentials endpoint: fetched on first use, within the decrypt's
    deadline, and kept until ``REFRESH_BEFORE_EXPIRY`` before their ``Expiration``."""

    def __init__(self, url: str, token: str | None, token_file: str | None, *,
                 utcnow: Callable[[], datetime] = _utc_now, clock: Clock = CLOCK, budget: Budget = BUDGET) -> None:
        self._url, self._token, self._token_file = url, token, token_file
        self._utcnow, self._clock, self._budget = utcnow, clock, budget

    def __repr__(self) -> str:  # never the token
        return "ContainerCredentials()"

    def current(self, deadline: float) -> Credentials:
        """The cached credentials while fresh, else new ones; ``DecryptFailure`` (a code) otherwise."""
        cached = self._fresh()
        if cached is not None:
            return cached
        if not _fetching.acquire(timeout=max(0.0, deadline - self._clock.monotonic())):
            raise DecryptFailure("TimeoutError", retryable=True)
        try:
            cached = self._fresh()  # another thread may have just fetched them
            if cached is not None:
                return cached
            fetched = self._fetch(deadline)
            _cache[self._url] = fetched
            return fetched
        finally:
            _fetching.release()

    def _fresh(self) -> Credentials | None:
        cached = _cache.get(self._url)
        if cached is None or cached.expires_at is None:
            return None
        return cached if self._utcnow() < cached.expires_at - REFRESH_BEFORE_EXPIRY else None

    def _fetch(self, deadline: float) -> Credentials:
        import http.client


        if not allowed_url(self._url):
            raise DecryptFailure("ContainerCredentialsHostNotAllowed")
        parts = urlsplit(self._url)
        headers = {"Accept": "application/json"}
        authorization = self._authorization()
        if authorization is not None:
            headers["Authorization"] = authorization
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        now = self._clock.monotonic()
        try:
            if parts.scheme == "https":
                import ssl

                connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                    parts.hostname, parts.port, timeout=clipped(self._budget.connect, deadline, now),
                    context=ssl.create_default_context())
            else:
                connection = http.client.HTTPConnection(parts.hostname, parts.port,
                                                        timeout=clipped(self._budget.connect, deadline, now))
        except ValueError:  # a port that is not a number
            raise DecryptFailure("ContainerCredentialsHostNotAllowed") from None
        connection.set_debuglevel(0)  # a class-wide debuglevel would print the token and the answer
        try:
            connection.connect()
            connection.sock.settimeout(clipped(self._budget.read, deadline, self._clock.monotonic()))
            connection.request("GET", target, headers=headers)
            response = connection.getresponse()
            status, data = response.status, response.read(_MAX_BODY_BYTES)
        except (OSError, http.client.HTTPException):
            raise DecryptFailure("ContainerCredentialsUnreachable", retryable=True) from None
        finally:
            connection.close()
        if status != 200:
            raise DecryptFailure("ContainerCredentialsRefused", retryable=status >= 500 or status == 429)
        fetched = _parsed_or_none(data)
        if fetched is None:
            raise DecryptFailure("ContainerCredentialsInvalid")
        return fetched

    def _authorization(self) -> str | None:
        """The token, from its file (read afresh: EKS rotates it) or its variable, as botocore sends it."""
        token = _token_file_or_none(self._token_file) if self._token_file is not None else self._token
        if self._token_file is not None and token is None:
            raise DecryptFailure("ContainerCredentialsTokenInvalid")
        if token is not None and ("\r" in token or "\n" in token):
            raise DecryptFailure("ContainerCredentialsTokenInvalid")
        return token


def _token_file_or_none(path: str) -> str | None:
    """The file's text, if it is a regular file of at most ``_MAX_TOKEN_BYTES`` in UTF-8 (a FIFO or a
    device is refused without blocking on it)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except (OSError, ValueError):
        return None
    try:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            return None
        data = os.read(descriptor, _MAX_TOKEN_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(descriptor)
    if len(data) > _MAX_TOKEN_BYTES:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _parsed_or_none(data: bytes) -> Credentials | None:
    """The answer's keys, token and expiry, or None (never an exception: a JSONDecodeError carries the
    body, and the body carries the secret key)."""
    try:
        document: Any = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    access_key, secret_key = document.get("AccessKeyId"), document.get("SecretAccessKey")
    token, expiration = document.get("Token"), document.get("Expiration")
    if not all(isinstance(value, str) and value for value in (access_key, secret_key, token, expiration)):
        return None
    expires_at = _timestamp_or_none(expiration)
    if expires_at is None:
        return None
    return Credentials(access_key, secret_key, token, expires_at)


def _timestamp_or_none(text: str) -> datetime | None:
    """An ISO 8601 ``Expiration`` (``2026-12-02T18:00:00Z``, fractions and offsets too) in UTC."""
    text = text.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    head, dot, rest = text.partition(".")
    if dot:  # Python 3.10's fromisoformat takes 3 or 6 digits of fraction only
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{(rest[:digits] + '000000')[:6]}{rest[digits:]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
