"""Open KMS-sealed secrets inside a Lambda function, once per container.

The ciphertexts are baked into the package at build time (see ``build.py``); this
module decrypts one lazily on its first read, bound to the encryption context
``{"LambdaFunctionName": <this function's name>}``, and keeps the plaintext in
memory for the life of the container. Nothing here talks to AWS at import time.

Example::

    import sealed_secrets

    sealed_secrets.register({"db_password": "AQICAHh..."})  # done by the rendered handler

    def handler(event, context):
        password = sealed_secrets.get_secret("db_password")
        ...

Errors never carry the plaintext or the ciphertext: only the secret's name and
the KMS error code.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "SealedSecrets",
    "SecretError",
    "SecretNotFoundError",
    "SecretDecryptionError",
    "register",
    "get_secret",
]

ENCRYPTION_CONTEXT_KEY = "LambdaFunctionName"


class SecretError(Exception):
    """Base class for every error this module raises; names the secret, never its value."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.secret_name = name


class SecretNotFoundError(SecretError):
    """No ciphertext of that name was sealed into this package."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(name, f"no sealed secret named {name!r}; this package seals: {', '.join(known) or 'none'}")


class SecretDecryptionError(SecretError):
    """KMS refused or failed to open the ciphertext. ``code`` is the KMS error code."""

    def __init__(self, name: str, code: str) -> None:
        super().__init__(name, f"could not decrypt sealed secret {name!r}: KMS {code}")
        self.code = code


class _TTLCache:
    """Plaintexts keyed by secret name, each with the monotonic time it was opened."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._entries: dict[str, tuple[str, float]] = {}
        self._clock = clock

    def get(self, name: str, max_age: float | None) -> str | None:
        entry = self._entries.get(name)
        if entry is None:
            return None
        if max_age is not None and self._clock() - entry[1] >= max_age:
            return None
        return entry[0]

    def put(self, name: str, value: str) -> None:
        self._entries[name] = (value, self._clock())

    def clear(self) -> None:
        self._entries.clear()


def _default_kms_client() -> Any:
    # Imported here so that importing this module costs nothing and needs no AWS.
    import boto3
    from botocore.config import Config

    # boto3 honours AWS_ENDPOINT_URL and the Lambda's own credentials and region.
    config = Config(
        retries={"max_attempts": 4, "mode": "standard"},
        connect_timeout=2,
        read_timeout=5,
    )
    return boto3.client("kms", config=config)


class SealedSecrets:
    """A set of sealed secrets and the per-container cache of their plaintexts.

    Example::

        secrets = SealedSecrets({"api_token": "AQICAHh..."})
        token = secrets.get("api_token")               # one KMS Decrypt, then cached
        token = secrets.get("api_token", max_age=300)  # re-opened when older than 5 minutes

    ``client`` is any KMS client (a boto3 one by default, built once on first use);
    ``function_name`` defaults to ``AWS_LAMBDA_FUNCTION_NAME``.
    """

    def __init__(
        self,
        ciphertexts: Mapping[str, str],
        *,
        client: Any = None,
        function_name: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ciphertexts = dict(ciphertexts)
        self._client = client
        self._function_name = function_name
        self._cache = _TTLCache(clock)
        self._lock = threading.Lock()

    def names(self) -> tuple[str, ...]:
        """The names of the sealed secrets, sorted."""
        return tuple(sorted(self._ciphertexts))

    def get(self, name: str, *, max_age: float | None = None) -> str:
        """Return the plaintext of secret ``name``, decrypting it on first use.

        ``max_age`` (seconds) re-opens a cached plaintext older than that; ``None`` keeps it
        for the life of the container.
        """
        cached = self._cache.get(name, max_age)
        if cached is not None:
            return cached
        with self._lock:  # one Decrypt per secret even if threads race for it
            cached = self._cache.get(name, max_age)
            if cached is None:
                cached = self._decrypt(name)
                self._cache.put(name, cached)
            return cached

    def clear_cache(self) -> None:
        """Forget every plaintext; the next read decrypts again."""
        self._cache.clear()

    def _decrypt(self, name: str) -> str:
        ciphertext = self._ciphertexts.get(name)
        if ciphertext is None:
            raise SecretNotFoundError(name, self.names())
        code = None
        try:
            response = self._kms().decrypt(
                CiphertextBlob=base64.b64decode(ciphertext),
                EncryptionContext={ENCRYPTION_CONTEXT_KEY: self._context_name()},
            )
            return response["Plaintext"].decode("utf-8")
        except SecretError:
            raise
        except Exception as error:  # noqa: BLE001 - mapped to a typed error that hides the payload
            code = _error_code(error)
        # Raised outside the except block so the original exception (and anything it
        # might quote) is not chained onto ours.
        raise SecretDecryptionError(name, code)

    def _kms(self) -> Any:
        if self._client is None:
            self._client = _default_kms_client()
        return self._client

    def _context_name(self) -> str:
        name = self._function_name or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        if not name:
            raise SecretError("", "AWS_LAMBDA_FUNCTION_NAME is not set: the encryption context needs the function name")
        return name


def _error_code(error: BaseException) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    if isinstance(error, UnicodeDecodeError):
        return "PlaintextNotUtf8"
    return type(error).__name__


_default: SealedSecrets | None = None


def register(ciphertexts: Mapping[str, str]) -> SealedSecrets:
    """Make ``ciphertexts`` the set that :func:`get_secret` reads (the rendered handler calls this)."""
    global _default
    _default = SealedSecrets(ciphertexts)
    return _default


def get_secret(name: str, *, max_age: float | None = None) -> str:
    """Return the plaintext of sealed secret ``name``, decrypted once per container.

    Example::

        password = get_secret("db_password")
    """
    if _default is None:
        raise SecretError(name, "no sealed secrets registered: call sealed_secrets.register() first")
    return _default.get(name, max_age=max_age)
