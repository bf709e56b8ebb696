"""The one wait loop shared by invoke, init and the launcher, on real processes (no LocalStack needed)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from concurrent.futures import Future

import pytest

from localstack_process_executor.waiting import Outcome, future_done, polled, wait_while_alive


@pytest.fixture
def sleeper():
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    yield process
    process.kill()
    process.wait()


def exited_process() -> subprocess.Popen:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process


def test_a_future_completed_later_wakes_the_wait_at_once(sleeper):
    future: Future = Future()
    threading.Timer(0.1, future.set_result, args=("ready",)).start()
    started = time.monotonic()
    assert wait_while_alive(future_done(future), sleeper, timeout=5, poll_seconds=1) is Outcome.DONE
    assert time.monotonic() - started < 0.5  # not a whole poll interval late
    assert future.result() == "ready"


def test_a_process_that_exits_ends_the_wait():
    assert wait_while_alive(future_done(Future()), exited_process(), timeout=5, poll_seconds=0.01) is Outcome.EXITED


def test_what_happened_counts_even_when_the_process_is_gone_or_time_is_up():
    future: Future = Future()
    future.set_result(None)
    assert wait_while_alive(future_done(future), exited_process(), timeout=0, poll_seconds=0.01) is Outcome.DONE


def test_the_limit_ends_the_wait(sleeper):
    started = time.monotonic()
    assert wait_while_alive(polled(lambda: False), sleeper, timeout=0.3, poll_seconds=0.05) is Outcome.TIMED_OUT
    assert 0.3 <= time.monotonic() - started < 1.5


def test_a_polled_condition_is_checked_until_it_holds(sleeper):
    answers = iter([False, False, True])
    assert wait_while_alive(polled(lambda: next(answers)), sleeper, timeout=5, poll_seconds=0.01) is Outcome.DONE
