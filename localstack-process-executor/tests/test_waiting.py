"""The one wait loop shared by invoke, init and the launcher, on real processes (no LocalStack needed).

No wall clock decides these tests: the limit is tested with an injected clock, and "wakes at once" with
a wait whose poll interval is far longer than the test's own ceiling.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future

import pytest

from localstack_process_executor.waiting import Outcome, future_done, poll_until, polled, wait_while_alive

CEILING_S = 60  # bounds a wait that went wrong; the right one ends long before


@pytest.fixture
def alive_process() -> Iterator[subprocess.Popen]:
    """A process that lives until the test closes its stdin."""
    process = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    yield process
    process.stdin.close()
    process.wait(timeout=CEILING_S)


def exited_process() -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process


class FakeClock:
    """Time that moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_future_completed_later_wakes_the_wait_at_once(alive_process):
    # A poll interval of an hour: if completing the future did not wake the wait, it would outlast the ceiling.
    future: Future = Future()
    waiting, outcome = threading.Event(), []

    def happened(seconds: float) -> bool:
        waiting.set()
        return future_done(future)(seconds)

    waiter = threading.Thread(target=lambda: outcome.append(
        wait_while_alive(happened, alive_process, timeout=7200, poll_seconds=3600)))
    waiter.start()
    assert waiting.wait(CEILING_S)
    future.set_result("ready")
    waiter.join(CEILING_S)
    assert not waiter.is_alive(), "completing the future did not wake the wait"
    assert outcome == [Outcome.DONE]


def test_a_process_that_exits_ends_the_wait():
    assert wait_while_alive(future_done(Future()), exited_process(), timeout=5, poll_seconds=0.01) is Outcome.EXITED


def test_what_happened_counts_even_when_the_process_is_gone_or_time_is_up():
    future: Future = Future()
    future.set_result(None)
    assert wait_while_alive(future_done(future), exited_process(), timeout=0, poll_seconds=0.01) is Outcome.DONE


def test_the_limit_ends_the_wait_after_exactly_the_rounds_that_fit(alive_process):
    clock, rounds = FakeClock(), []

    def nothing_yet(seconds: float) -> bool:  # each round "blocks" for its poll interval
        rounds.append(seconds)
        clock.now += seconds
        return False

    assert wait_while_alive(nothing_yet, alive_process, timeout=3, poll_seconds=1, clock=clock) is Outcome.TIMED_OUT
    assert (rounds, clock.now) == ([1, 1, 1], 3)  # the deadline itself ends it: no fourth round


def test_a_polled_condition_is_checked_until_it_holds(alive_process):
    answers = iter([False, False, True])
    assert wait_while_alive(polled(lambda: next(answers)), alive_process, timeout=5, poll_seconds=0.01) is Outcome.DONE


def test_poll_until_returns_the_first_answer_or_none_at_the_ceiling():
    clock, naps = FakeClock(), []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        clock.now += seconds

    answers = iter([0, "", "found"])
    assert poll_until(lambda: next(answers), ceiling=10, every=2, clock=clock, sleep=sleep) == "found"
    assert naps == [2, 2]
    naps.clear()
    assert poll_until(lambda: False, ceiling=5, every=2, clock=clock, sleep=sleep) is None
    assert naps == [2, 2, 2]  # asked at 0, 2, 4 and 6 s of its own time; gives up once 5 s have passed
