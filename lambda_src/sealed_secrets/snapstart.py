"""Lambda SnapStart: no snapshot holds a plaintext or a credential.

With SnapStart, Lambda runs the function's init once per published version, snapshots the memory, and
restores every environment of that version from the snapshot. A plaintext cached during init would live
in the snapshot for as long as the version is in use. So, whenever ``snapshot_restore_py`` (AWS's runtime
hooks, in the Python 3.12+ runtimes) is importable, this package registers:

* a before-snapshot hook that waits out (for at most the decrypt budget) every Decrypt in flight, keeps
  none of their results, and drops every cached plaintext and the cached container credentials;
* an after-restore hook that starts the prefetch deferred during init, if one was asked for.

A secret read during SnapStart's init (``AWS_LAMBDA_INITIALIZATION_TYPE=snap-start``) is still served;
it is dropped before the snapshot and opened again, with fresh credentials, by the first read after restore.
"""

from __future__ import annotations

import os
import threading
import weakref
TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~2 ms of every cold start)
if TYPE_CHECKING:
    from typing import Any

from .credentials import forget as forget_container_credentials

INITIALIZATION_TYPE = "AWS_LAMBDA_INITIALIZATION_TYPE"  # "snap-start" during SnapStart's init

_tracked: weakref.WeakSet[Any] = weakref.WeakSet()  # every SealedSecrets: each holds plaintexts
_deferred: weakref.WeakSet[Any] = weakref.WeakSet()  # the ones whose prefetch waits for the restore
_lock = threading.Lock()
_installed = False
_restored = False


def track(secrets: Any) -> None:
    """Remember ``secrets`` (a SealedSecrets) for the before-snapshot hook; install the hooks once."""
    global _installed
    with _lock:
        _tracked.add(secrets)
        if _installed:
            return
        _installed = True
    install()


def install() -> bool:
    """Register the hooks with ``snapshot_restore_py``, when it is importable; whether it was."""
    try:
        import snapshot_restore_py
    except ImportError:
        return False
    snapshot_restore_py.register_before_snapshot(before_snapshot)
    snapshot_restore_py.register_after_restore(after_restore)
    return True


def before_a_snapshot(environ: Any = os.environ) -> bool:
    """Whether this is SnapStart's init, before the snapshot (the variable stays set after a restore)."""
    return environ.get(INITIALIZATION_TYPE) == "snap-start" and not _restored


def defer_prefetch(secrets: Any) -> None:
    """Start ``secrets``' prefetch after the restore instead of now."""
    _deferred.add(secrets)


def before_snapshot() -> None:
    """Drop every plaintext and credential this process holds (waiting out Decrypts in flight)."""
    import gc

    for secrets in list(_tracked):
        secrets._drop_for_snapshot()
    forget_container_credentials()
    gc.collect()  # what only a reference cycle still held (a traceback's frames, say) goes too


def after_restore() -> None:
    """Start the prefetches deferred during init."""
    global _restored
    _restored = True
    for secrets in list(_deferred):
        _deferred.discard(secrets)
        secrets.prefetch()
