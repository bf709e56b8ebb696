"""Open KMS-sealed secrets inside a Lambda function, once per container.

The ciphertexts are baked into the package at build time (see ``build.py``). This package decrypts one
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

* With credentials and a region in the environment (as Lambda sets them: static keys, or SnapStart's
  container credentials, ``credentials.py``), ``transport.py`` signs ``TrentService.Decrypt`` itself
  (SigV4) and sends it with ``http.client`` over verified TLS. Neither boto3 nor botocore is imported.
* Otherwise (a laptop with profiles or SSO), or when a handler passes its own ``client``, boto3 makes
  the call (``boto.py``).

Either way a decrypt has one time budget (``budget.py``): at most ``MAX_ATTEMPTS`` attempts,
``CONNECT_TIMEOUT_SECONDS`` to connect and ``READ_TIMEOUT_SECONDS`` to read each, within
``BUDGET_SECONDS`` in all. No caller waits longer than ``BUDGET_SECONDS``: threads that want the same
secret share its one Decrypt, and a slow secret holds up only the readers of that secret (``cache.py``).

Errors are ``SecretError``s that name the secret and a code, never a value (``errors.py``): no plaintext
and no ciphertext in their messages, in their tracebacks' frames, or in any log record, even at DEBUG.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms of every cold start)
if TYPE_CHECKING:
    from typing import Any

from .budget import (
    BUDGET_SECONDS,
    CONNECT_TIMEOUT_SECONDS,
    MAX_ATTEMPTS,
    READ_TIMEOUT_SECONDS,
    Budget,
    Clock,
)
from .cache import SealedSecrets
from .errors import SecretDecryptionError, SecretError, SecretNotFoundError

__all__ = [
    "BUDGET_SECONDS",
    "CONNECT_TIMEOUT_SECONDS",
    "MAX_ATTEMPTS",
    "READ_TIMEOUT_SECONDS",
    "Budget",
    "Clock",
    "SealedSecrets",
    "SecretDecryptionError",
    "SecretError",
    "SecretNotFoundError",
    "get_secret",
    "get_secret_bytes",
    "get_secret_json",
    "register",
]

_default: SealedSecrets | None = None
_register_lock = threading.Lock()


def register(ciphertexts: Mapping[str, str], *, key_id: str | None = None,
             prefetch: bool | None = None) -> SealedSecrets:
    """Add ``ciphertexts`` (name => base64 CiphertextBlob) to the set that :func:`get_secret` reads;
    ``key_id`` is the ARN of the KMS key they are sealed under, which every Decrypt then names.

    The rendered handler calls this once at import. Registering a name again with the same ciphertext
    changes nothing; with a different one, or with another key, it raises ``ValueError``. With ``prefetch``
    (default: the ``SEALED_SECRETS_PREFETCH`` variable, "1" or "true"), every secret starts opening now in
    the background, so that its Decrypt overlaps the rest of the init (never before a SnapStart snapshot).

    Example::

        SEALED_CIPHERTEXTS = {"db": "AQICAHh..."}                       # rendered by build.py
        SEALED_KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/..."   # rendered by build.py --key-arn
        sealed_secrets.register(SEALED_CIPHERTEXTS, key_id=SEALED_KEY_ARN)
        sealed_secrets.register(SEALED_CIPHERTEXTS, key_id=SEALED_KEY_ARN, prefetch=True)
    """
    global _default
    if prefetch is None:
        prefetch = os.environ.get("SEALED_SECRETS_PREFETCH", "").strip().lower() in ("1", "true")
    with _register_lock:
        if _default is None:
            _default = SealedSecrets(ciphertexts, key_id=key_id)
        elif key_id != _default.key_id:
            raise ValueError("sealed secrets are already registered for another key: register every secret "
                             "with the key_id it is sealed under")
        else:
            _default._add(ciphertexts)
        registered = _default
    if prefetch:
        registered.prefetch()
    return registered


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
    if max_age is None:  # the warm path: one dict lookup; a miss, a name that is no str, or nothing registered
        try:  # goes on below
            return _default._texts[name]  # type: ignore[union-attr]
        except (KeyError, TypeError, AttributeError):
            pass
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
