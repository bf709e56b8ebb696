"""The one wait loop of the executor and the launcher: for something to happen, while a process lives, within a limit.

It imports nothing from LocalStack, so the launcher can use it outside a LocalStack process.
"""

from __future__ import annotations

import enum
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from typing import TypeVar

T = TypeVar("T")


class Outcome(enum.Enum):
    DONE = "done"
    EXITED = "exited"  # the process ended first
    TIMED_OUT = "timed out"


def wait_while_alive(happened: Callable[[float], bool], process: subprocess.Popen, timeout: float,
                     poll_seconds: float, clock: Callable[[], float] = time.monotonic) -> Outcome:
    """Wait until ``happened(poll_seconds)`` says yes; it may itself block for up to ``poll_seconds``.

    Each round checks the event, then the process, then the clock: an event that came together with
    the process's exit, or right at the deadline, still counts as done. ``clock`` is a seam for tests.
    """
    deadline = clock() + timeout
    while True:
        if happened(poll_seconds):
            return Outcome.DONE
        if process.poll() is not None:
            return Outcome.EXITED
        if clock() >= deadline:
            return Outcome.TIMED_OUT


def future_done(future: Future) -> Callable[[float], bool]:
    """Blocks until ``future`` is done or the seconds pass, and wakes the moment it completes."""
    return lambda seconds: bool(wait([future], timeout=seconds).done)


def polled(check: Callable[[], bool]) -> Callable[[float], bool]:
    """``check()`` now, else sleep the seconds: for a condition that nothing signals."""

    def happened(seconds: float) -> bool:
        if check():
            return True
        time.sleep(seconds)
        return False

    return happened


def poll_until(check: Callable[[], T], *, ceiling: float, every: float = 0.05,
               clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> T | None:
    """``check()``'s first truthy answer, asked every ``every`` seconds; None once ``ceiling`` seconds have passed.

    For tests and tools waiting on a state nothing signals (a process gone, a line in a log): the ceiling
    bounds a wait that went wrong, it is not a guess at how long the right one takes.
    """
    deadline = clock() + ceiling
    while not (answer := check()):
        if clock() >= deadline:
            return None
        sleep(every)
    return answer
