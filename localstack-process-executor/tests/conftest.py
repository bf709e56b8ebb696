"""One embedded LocalStack (host mode, the process executor) for the whole session, and helpers
to deploy small Python functions on it with plain boto3."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from localstack_process_executor.launcher import EmbeddedLocalStack

sys.path.insert(0, str(Path(__file__).parent))
from zips import zip_code  # noqa: E402


@pytest.fixture(scope="session")
def localstack(tmp_path_factory) -> Iterator[EmbeddedLocalStack]:
    log = tmp_path_factory.mktemp("localstack") / "localstack.log"
    with EmbeddedLocalStack(log_path=log) as instance:
        yield instance


@pytest.fixture(scope="session")
def aws(localstack) -> Callable[[str], object]:
    env = localstack.client_env()
    config = Config(retries={"max_attempts": 1}, read_timeout=120)

    def client(service: str):
        return boto3.client(service, endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                            aws_access_key_id="test", aws_secret_access_key="test", config=config)

    return client


@pytest.fixture(scope="session")
def role_arn(aws) -> str:
    trust = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
    return aws("iam").create_role(RoleName="executor-tests", AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]


@pytest.fixture
def deploy(aws, role_arn):
    """deploy(code, **config) -> function name, Active, deleted after the test."""
    lambda_ = aws("lambda")
    created: list[str] = []

    def _deploy(code: str, *, handler: str = "app.handler", runtime: str = "python3.13", timeout: int = 10,
                files: dict[str, str] | None = None, wait: bool = True) -> str:
        name = f"fn-{uuid.uuid4().hex[:10]}"
        lambda_.create_function(FunctionName=name, Runtime=runtime, Role=role_arn, Handler=handler, Timeout=timeout,
                                Code={"ZipFile": zip_code({"app.py": code, **(files or {})})})
        created.append(name)
        if wait:
            lambda_.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150})
        return name

    yield _deploy
    for name in created:
        try:
            lambda_.delete_function(FunctionName=name)
        except lambda_.exceptions.ResourceNotFoundException:
            pass
        except ClientError as error:  # LocalStack cannot delete a function whose creation Failed
            if "Unable to find version manager" not in str(error):
                raise


@pytest.fixture
def invoke(aws):
    """invoke(name, event) -> (function_error, decoded payload, tail of logs)."""
    import base64

    lambda_ = aws("lambda")

    def _invoke(name: str, event: object = None):
        response = lambda_.invoke(FunctionName=name, Payload=json.dumps(event or {}), LogType="Tail")
        payload = json.loads(response["Payload"].read() or b"null")
        logs = base64.b64decode(response.get("LogResult", "")).decode()
        return response.get("FunctionError"), payload, logs

    return _invoke
