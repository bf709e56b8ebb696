"""Opened secrets, once per container: the cache, and one Decrypt in flight per secret.

How a Decrypt is made is the openers' business (transport.py, boto.py). This module calls one through
``decrypt(blob, context, deadline)`` in a worker thread, and keeps what it returns.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import threading
from collections.abc import Callable, Mapping
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms of every cold start)
if TYPE_CHECKING:
    from typing import Any

from .snapstart import before_a_snapshot, defer_prefetch
from .snapstart import track as track_for_snapshots
from .transport import opener
from .budget import BUDGET, CLOCK, Budget, Clock
from .errors import DecryptFailure, SecretDecryptionError, SecretNotFoundError, code_of

ENCRYPTION_CONTEXT_KEY = "LambdaFunctionName"


class _Opened:
    """A plaintext as KMS returned it, its text (None when it is not UTF-8), and when it was opened."""

    __slots__ = ("plaintext", "text", "opened_at")

    def __init__(self, plaintext: bytes) -> None:
        self.plaintext = plaintext
        self.text = _utf8_or_none(plaintext)  # decoded once, not on every read
        self.opened_at = 0.0  # set when it is cached


class _Flight:
    """One Decrypt in progress; the threads that want the same secret wait for its outcome."""

    __slots__ = ("done", "opened", "code", "generation")

    def __init__(self, generation: int = 0) -> None:
        self.done = threading.Event()
        self.opened: _Opened | None = None
        self.code = ""
        self.generation = generation  # the cache's generation when it started: stored only if unchanged


class SealedSecrets:
    """A set of sealed secrets and the per-container cache of their plaintexts.

    Example::

        secrets = SealedSecrets({"api_token": "AQICAHh..."})
        token = secrets.get("api_token")               # one KMS Decrypt, then cached
        token = secrets.get("api_token", max_age=300)  # re-opened when older than 5 minutes
        raw = secrets.get_bytes("api_token")           # the plaintext's bytes
        doc = secrets.get_json("db_credentials")       # the plaintext parsed as JSON

    ``key_id`` is the ARN of the key the ciphertexts are sealed under: every Decrypt names it, so that one
    sealed under another key fails (``IncorrectKeyException``). ``client`` is a KMS client to use instead
    of the stdlib opener (a boto3 one with a Stubber in a unit test, say); ``function_name`` defaults to
    ``AWS_LAMBDA_FUNCTION_NAME``; ``clock`` is where deadlines, ``max_age``, pauses and waits take their
    time from, and ``budget`` the figures of one decrypt.
    """

    def __init__(
        self,
        ciphertexts: Mapping[str, str],
        *,
        key_id: str | None = None,
        client: Any = None,
        function_name: str | None = None,
        clock: Clock = CLOCK,
        budget: Budget = BUDGET,
    ) -> None:
        self._ciphertexts = _checked_ciphertexts(ciphertexts)
        if function_name is not None and not isinstance(function_name, str):
            raise TypeError(f"function_name must be a str or None, not {type(function_name).__name__}")
        if key_id is not None and not (isinstance(key_id, str) and key_id):
            raise TypeError(f"key_id must be a key ARN (a non-empty str) or None, not {type(key_id).__name__}")
        self.key_id = key_id
        self._function_name = function_name
        self._clock, self._budget = clock, budget
        self._opener = opener(client, key_id=key_id, clock=clock, budget=budget)
        self._opened: dict[str, _Opened] = {}
        self._texts: dict[str, str] = {}  # the warm path of get(): the UTF-8 plaintexts, by name
        self._guard = threading.Lock()  # held only to look up or start a Decrypt, never across one
        self._flights: dict[str, _Flight] = {}
        self._generation = 0  # bumped before a SnapStart snapshot: Decrypts started earlier store nothing
        track_for_snapshots(self)

    def __repr__(self) -> str:  # names only: this object shows up in tracebacks' locals
        return f"SealedSecrets(names={list(self.names())!r})"

    def names(self) -> tuple[str, ...]:
        """The names of the sealed secrets, sorted."""
        return tuple(sorted(self._ciphertexts))

    def get(self, name: str, *, max_age: float | None = None) -> str:
        """The plaintext of secret ``name`` as text, decrypted on first use.

        ``max_age`` (seconds) re-opens a cached plaintext older than that; ``None`` keeps it for the
        life of the container. A plaintext that is not UTF-8 raises ``SecretDecryptionError``.
        """
        if max_age is None:  # the warm path: one dict lookup; a miss, or a name that is no str, goes on below
            try:
                return self._texts[name]
            except (KeyError, TypeError):
                pass
        opened = self._fresh(name, max_age)  # not its text in a local: locals show up in tracebacks
        if opened.text is None:
            raise SecretDecryptionError(name, "PlaintextNotUtf8")
        return opened.text

    def get_bytes(self, name: str, *, max_age: float | None = None) -> bytes:
        """The plaintext of secret ``name`` as bytes, whatever they are."""
        return self._fresh(name, max_age).plaintext

    def get_json(self, name: str, *, max_age: float | None = None) -> Any:
        """The plaintext of secret ``name`` parsed as JSON, e.g. ``{"username": ..., "password": ...}``."""
        document = _json_or_missing(self._fresh(name, max_age).plaintext)
        if document is _MISSING:
            raise SecretDecryptionError(name, "PlaintextNotJson")
        return document

    def clear_cache(self) -> None:
        """Forget every plaintext; the next read decrypts again."""
        self._texts.clear()
        self._opened.clear()

    def prefetch(self) -> None:
        """Start opening every secret now, each in a daemon thread; a first read joins the Decrypt in flight.
        Never before a SnapStart snapshot (deferred to the restore). A failure is kept for no one: the first
        read opens the secret again and raises, exactly as without prefetch."""
        if before_a_snapshot():
            defer_prefetch(self)
            return
        for name in self.names():
            threading.Thread(target=self._prefetch_one, args=(name,), name="sealed-secrets-prefetch",
                             daemon=True).start()

    def _prefetch_one(self, name: str) -> None:
        try:
            self._fresh(name, None)
        except BaseException:  # noqa: BLE001, S110 - surfaces on the first read; nothing to log (a code only)
            pass

    def _drop_for_snapshot(self) -> None:
        """Before a SnapStart snapshot: results of Decrypts in flight are not stored; they are waited out
        (at most the budget), so that no worker still holds one; then every plaintext is dropped."""
        with self._guard:
            self._generation += 1
            flights = list(self._flights.values())
        deadline = self._clock.monotonic() + self._budget.total
        for flight in flights:
            self._clock.wait(flight.done, max(0.0, deadline - self._clock.monotonic()))
        self.clear_cache()

    def _add(self, ciphertexts: Mapping[str, str]) -> None:
        added = _checked_ciphertexts(ciphertexts)
        for name, ciphertext in added.items():
            if self._ciphertexts.get(name, ciphertext) != ciphertext:
                raise ValueError(f"sealed secret {name!r} is already registered with another ciphertext")
        self._ciphertexts = {**self._ciphertexts, **added}  # swapped whole: readers never see half of it

    # --- the cache -------------------------------------------------------------------------------

    def _fresh(self, name: str, max_age: float | None) -> _Opened:
        if max_age is not None or not isinstance(name, str):
            _check_arguments(name, max_age)
        return self._cached(name, max_age) or self._open(name, max_age)

    def _cached(self, name: str, max_age: float | None) -> _Opened | None:
        opened = self._opened.get(name)  # a dict read is atomic: the warm path takes no lock
        if opened is None or (max_age is not None and self._clock.monotonic() - opened.opened_at >= max_age):
            return None
        return opened

    def _store(self, name: str, opened: _Opened) -> _Opened:
        opened.opened_at = self._clock.monotonic()
        self._opened[name] = opened
        if opened.text is not None:
            self._texts[name] = opened.text
        return opened

    # --- single flight: one Decrypt per secret at a time, shared by every reader that wants it --------

    def _open(self, name: str, max_age: float | None) -> _Opened:
        if name not in self._ciphertexts:
            raise SecretNotFoundError(name, self.names())
        with self._guard:
            flight = self._flights.get(name)
            leader = flight is None
            if leader:
                cached = self._cached(name, max_age)  # another thread may have just opened it
                if cached is not None:
                    return cached
                flight = self._flights[name] = _Flight(self._generation)
        if leader:
            self._lead(name, flight)
        elif not self._clock.wait(flight.done, self._budget.total):  # the leader's deadline is earlier than ours
            raise SecretDecryptionError(name, "TimeoutError")
        if flight.opened is None:
            raise SecretDecryptionError(name, flight.code)
        return flight.opened

    def _lead(self, name: str, flight: _Flight) -> None:
        try:
            opened, flight.code = self._decrypt(name)
            if opened is not None:
                # served to this flight's readers; cached only if no snapshot came in between
                flight.opened = self._store(name, opened) if flight.generation == self._generation else opened
        finally:
            if flight.opened is None and not flight.code:
                flight.code = "Interrupted"
            with self._guard:
                self._flights.pop(name, None)
            flight.done.set()

    def _decrypt(self, name: str) -> tuple[_Opened | None, str]:
        """(opened, "") or (None, error code). The blob, the credentials and KMS's answer exist only in
        the worker thread: this thread waits holding none of them, so whatever interrupts the wait (a
        signal handler's exception) has no frame that shows them."""
        deadline = self._clock.monotonic() + self._budget.total
        function_name = self._function_name or os.environ.get("AWS_LAMBDA_FUNCTION_NAME")

        def work() -> _Opened:
            if not function_name:
                raise DecryptFailure("NoFunctionName")
            blob = _b64decode_or_none(self._ciphertexts[name])
            if blob is None:
                raise DecryptFailure("InvalidBase64")
            return _Opened(self._opener.decrypt(blob, {ENCRYPTION_CONTEXT_KEY: function_name}, deadline))

        return _within_budget(work, deadline, self._clock)


def _within_budget(work: Callable[[], _Opened], deadline: float, clock: Clock) -> tuple[_Opened | None, str]:
    """Runs one decrypt in a worker thread and stops waiting for it at ``deadline``. Socket timeouts do
    not cover name resolution, and a handler's own client may retry for as long as its Config says:
    neither can hold the caller past the budget."""
    outcome: list[tuple[_Opened | None, str]] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((work(), ""))
        # The one place where a failure becomes a code. Every exception, BaseExceptions too: botocore's
        # message quotes KMS's, and one that escaped would reach threading.excepthook with the blob in its
        # frames' locals.
        except BaseException as error:  # noqa: BLE001
            outcome.append((None, code_of(error)))
        finally:
            done.set()

    threading.Thread(target=run, name="sealed-secrets-decrypt", daemon=True).start()
    clock.wait(done, max(0.0, deadline - clock.monotonic()))
    return outcome[0] if outcome else (None, "TimeoutError")


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
