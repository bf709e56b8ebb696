"""The integration tier: one embedded LocalStack for the session; boto3 through localstack-client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from localstack_client.session import Session
from localstack_process_executor.launcher import EmbeddedLocalStack

from localdeploy import GO_RUNTIME_ENV, aws_environment


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
