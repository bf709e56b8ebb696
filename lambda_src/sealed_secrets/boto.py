"""The boto3 opener: a handler's own KMS client, or the fallback when the environment has no credentials
for the stdlib opener (a laptop with profiles or SSO).

boto3 is imported only when this opener makes its first call. botocore logs the Decrypt request and
response (the ciphertext, the plaintext) at DEBUG, so every call runs "quiet": see ``_quiet``.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms of every cold start)
if TYPE_CHECKING:
    from typing import Any

from .budget import BUDGET, Budget
from .errors import DecryptFailure, code_of


def botocore_config(budget: Budget = BUDGET) -> dict[str, Any]:
    """The budget's figures in botocore's terms (botocore counts the first try as an attempt)."""
    return {"connect_timeout": budget.connect, "read_timeout": budget.read,
            "retries": {"total_max_attempts": budget.attempts, "mode": "standard"}}


def default_client(budget: Budget = BUDGET) -> Any:
    import boto3  # only here: the stdlib opener needs neither boto3 nor botocore
    from botocore.config import Config

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    return boto3.client("kms", region_name=region, config=Config(**botocore_config(budget)))


class BotoKms:
    """Decrypt through ``client``, or through a boto3 client of its own made on first use and kept; with
    ``key_id``, every Decrypt names the key."""

    def __init__(self, client: Any = None, *, key_id: str | None = None, budget: Budget = BUDGET) -> None:
        self._client, self._key_id, self._budget = client, key_id, budget
        self._lock = threading.Lock()

    def decrypt(self, blob: bytes, context: Mapping[str, str], deadline: float) -> bytes:
        """The plaintext, or ``DecryptFailure`` with KMS's code. botocore keeps its own time (its
        Config has the budget's figures); the caller stops waiting at ``deadline`` either way."""
        request: dict[str, Any] = {"CiphertextBlob": blob, "EncryptionContext": dict(context)}
        if self._key_id is not None:
            request["KeyId"] = self._key_id
        try:
            client = self._kms_client()
            with _quiet():
                plaintext = client.decrypt(**request)["Plaintext"]
        except Exception as error:  # noqa: BLE001 - reduced to its code; raised below, outside this block
            code = code_of(error)
        else:
            if isinstance(plaintext, bytes):
                return plaintext
            code = "InvalidResponse"
        raise DecryptFailure(code)

    def _kms_client(self) -> Any:
        with self._lock:
            if self._client is None:
                self._client = default_client(self._budget)
            return self._client


# --- quiet calls: nothing a KMS client logs or prints holds a value ------------------------------------


class _Quiet(threading.local):
    """Set on a thread while it runs a KMS client's call for this package."""

    on = False


_QUIET = _Quiet()


def _withheld(factory: Callable[..., Any]) -> Callable[..., Any]:
    """A log record factory that makes the records of a quiet thread without their message, arguments or
    exception. A record that exists is seen by more than handlers: logger filters, and hooks on
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
    import logging  # here, not at the top: importing this package costs next to nothing

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
