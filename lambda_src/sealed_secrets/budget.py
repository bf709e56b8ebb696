"""The time budget of one decrypt, and the clock it is measured with.

The Terraform module's functions time out after 10 s by default; 6 s leaves 4 s for the handler to
report the failure (and do its other work) before Lambda kills it. KMS answers a Decrypt in tens of
milliseconds and a TCP+TLS connect in-region takes tens of milliseconds too, so 1 s to connect and 2 s to
read only ever expire on a broken network; 3 attempts ride out a throttle, a 5xx or a reset connection,
with jittered backoff in between.
"""

from __future__ import annotations

import threading
import time
from collections import namedtuple

MAX_ATTEMPTS = 3
CONNECT_TIMEOUT_SECONDS = 1.0
READ_TIMEOUT_SECONDS = 2.0
BUDGET_SECONDS = 6.0
BACKOFF_BASE_SECONDS = 0.25  # full jitter: a pause drawn from [0, base * 2**(retry-1)], at most the cap
BACKOFF_CAP_SECONDS = 1.0
MIN_ATTEMPT_SECONDS = 0.1  # no attempt starts with less budget left than this


# A NamedTuple, made by collections (typing costs ~2 ms to import): attempts is an int, the rest are seconds.
_BudgetFields = namedtuple(
    "Budget", ["attempts", "connect", "read", "total", "backoff_base", "backoff_cap", "min_attempt"],
    defaults=[MAX_ATTEMPTS, CONNECT_TIMEOUT_SECONDS, READ_TIMEOUT_SECONDS, BUDGET_SECONDS, BACKOFF_BASE_SECONDS,
              BACKOFF_CAP_SECONDS, MIN_ATTEMPT_SECONDS])


class Budget(_BudgetFields):
    """The figures above; a test passes smaller ones to run a hang through real sockets quickly.

    Example::

        Budget()                                  # the defaults: 3 attempts, 1 s connect, 2 s read, 6 s in all
        Budget(attempts=2, connect=0.2, read=0.2, total=0.6)
    """

    __slots__ = ()

    def backoff(self, retry: int) -> float:
        """The longest pause before retry number ``retry`` (1 for the second attempt)."""
        return min(self.backoff_cap, self.backoff_base * 2 ** (retry - 1))


BUDGET = Budget()


class Clock:
    """Where a decrypt's time comes from: the monotonic clock that deadlines and ``max_age`` are measured
    with, the pause between attempts, the wait for another thread, and the backoff's jitter. Tests inject
    their own, so that time is decided by the test and never by the machine's load."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait at most ``timeout`` seconds for ``event``; whether it is set."""
        return event.wait(timeout)

    def jitter(self, upper: float) -> float:
        import random  # only a retry needs it

        return random.uniform(0, upper)


CLOCK = Clock()


def clipped(figure: float, deadline: float, now: float) -> float:
    """A socket timeout: ``figure``, or what is left until ``deadline`` if that is less (never 0, which
    would make the socket non-blocking)."""
    return max(0.001, min(figure, deadline - now))
