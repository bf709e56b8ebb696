"""The integration tier: one embedded LocalStack for the session; boto3 through localstack-client.

Deployments start early and in the background: a module that defines
``start_deployments(background, tmp_path_factory)`` has its applies started on worker threads when the
session's first integration test begins, so that Terraform's waits on LocalStack (a new KMS key, a new
function) overlap with each other and with the tests of the modules before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any, TypeVar

import pytest
from localstack_client.session import Session
from localstack_process_executor.launcher import EmbeddedLocalStack

from localdeploy import GO_RUNTIME_ENV, aws_environment

D = TypeVar("D")
# Terraform is CPU-bound between its waits; more than this on 2 cores only makes each apply slower.
BACKGROUND_WORKERS = 3


@pytest.fixture(scope="session")
def localstack(tmp_path_factory) -> Iterator[EmbeddedLocalStack]:
    instance = EmbeddedLocalStack(log_path=tmp_path_factory.mktemp("localstack") / "localstack.log")
    with instance, aws_environment({**GO_RUNTIME_ENV, **instance.client_env()}):
        yield instance


@pytest.fixture(scope="session")
def aws(localstack):
    session = Session(aws_access_key_id="test", aws_secret_access_key="test", aws_session_token=None,
                      localstack_host=f"127.0.0.1:{localstack.port}")
    return session.client


class Background:
    """Deployments being applied on worker threads, by key: each is started once and awaited by its module."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._started: dict[str, tuple[Any, Future]] = {}

    def start(self, key: str, make: Callable[[], D], steps: Callable[[D], Any]) -> None:
        """Make the deployment here (cheap: it copies files), run ``steps(deployment)`` on a worker."""
        if key not in self._started:
            deployment = make()
            self._started[key] = (deployment, self._pool.submit(steps, deployment))

    def deployment(self, key: str) -> Any:
        """The deployment, whether or not its steps succeeded (so that a teardown can still destroy it)."""
        return self._started[key][0]

    def result(self, key: str) -> Any:
        """Wait for the steps; raise their error, if any."""
        return self._started[key][1].result()

    def wait_all(self) -> None:
        wait([future for _, future in self._started.values()])


@pytest.fixture(scope="session")
def background(localstack) -> Iterator[Background]:
    with ThreadPoolExecutor(max_workers=BACKGROUND_WORKERS, thread_name_prefix="deploy") as pool:
        started = Background(pool)
        yield started
        started.wait_all()  # before LocalStack stops under them


@pytest.fixture(scope="session", autouse=True)
def early_deployments(request) -> None:
    """Start the deployments of every module that has a selected test using them, at once, in file order."""
    modules = {item.module.__name__: item.module for item in request.session.items
               if "background" in item.fixturenames and hasattr(item.module, "start_deployments")}
    if modules:
        background, factory = request.getfixturevalue("background"), request.getfixturevalue("tmp_path_factory")
        for name in sorted(modules):
            modules[name].start_deployments(background, factory)
