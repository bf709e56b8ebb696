"""Ways Lambda runs the function (issue 16), end to end on LocalStack: the alias live, publishing, and
provisioned concurrency on the alias. LocalStack runs versions, aliases and provisioned concurrency but not
SnapStart, whose module side tests/lambda_modes.tftest.hcl proves at plan time.

The tests run in order on one deployment: apply at the defaults, turn provisioned concurrency on, change a
secret, turn provisioned concurrency off, destroy. After each apply a second plan is empty, and an apply
with nothing to change publishes no version.
"""

from __future__ import annotations

import uuid
from fnmatch import fnmatchcase

import pytest

from localdeploy import Stack, invoke

pytestmark = pytest.mark.localstack

PLAINTEXT = "modes secret"
ROTATED = "modes secret, rotated"
OPENED = {"opened": ["credential"]}  # what the default handler returns: names, never values
ALIAS = "live"


def start_deployments(background, tmp_path_factory) -> None:
    """Apply at the defaults, on a worker (conftest starts it early; the fixture below waits for it)."""
    background.start(__name__, lambda: Stack(f"modes-{uuid.uuid4().hex[:8]}", secrets={"credential": PLAINTEXT},
                                             workdir=tmp_path_factory.mktemp("modes")),
                     lambda stack: stack.init().apply())


@pytest.fixture(scope="module")
def stack(background, tmp_path_factory):
    start_deployments(background, tmp_path_factory)
    try:
        yield background.result(__name__)
    finally:
        deployed = background.deployment(__name__)
        if deployed.has_resources():
            deployed.destroy()
        deployed.remove()


@pytest.fixture(scope="module")
def lambda_client(aws):
    return aws("lambda")


def published_versions(lambda_client, function_name: str) -> list[str]:
    versions = lambda_client.list_versions_by_function(FunctionName=function_name)["Versions"]
    return [version["Version"] for version in versions if version["Version"] != "$LATEST"]


def invoke_alias(lambda_client, stack: Stack):
    return invoke(lambda_client, f"{stack.function_name}:{ALIAS}")[:2]


def test_at_the_defaults_the_alias_runs_latest_and_nothing_is_published(stack, lambda_client):
    outputs = stack.outputs()
    alias = lambda_client.get_alias(FunctionName=stack.function_name, Name=ALIAS)
    assert alias["FunctionVersion"] == "$LATEST" == outputs["function_version"]
    assert outputs["alias_arn"] == alias["AliasArn"] == f"{outputs['function_arn']}:{ALIAS}"
    assert outputs["provisioned_concurrent_executions"] == 0
    assert published_versions(lambda_client, stack.function_name) == []
    assert invoke_alias(lambda_client, stack) == (None, OPENED)
    assert stack.plan_exit_code() == 0


def test_provisioned_concurrency_publishes_a_version_and_provisions_the_alias_that_runs_it(stack, lambda_client):
    stack.set_variables(secrets={"credential": PLAINTEXT}, provisioned_concurrent_executions=2)
    stack.apply()
    outputs = stack.outputs()
    # Turning publishing on publishes, though neither the code nor the configuration changed.
    assert published_versions(lambda_client, stack.function_name) == ["1"]
    alias = lambda_client.get_alias(FunctionName=stack.function_name, Name=ALIAS)
    assert alias["FunctionVersion"] == "1" == outputs["function_version"]
    assert outputs["function_qualified_arn"] == f"{outputs['function_arn']}:1"
    config = lambda_client.get_provisioned_concurrency_config(FunctionName=stack.function_name, Qualifier=ALIAS)
    assert config["RequestedProvisionedConcurrentExecutions"] == 2 == outputs["provisioned_concurrent_executions"]
    assert config["Status"] == "READY"  # the provider waited for it
    assert invoke_alias(lambda_client, stack) == (None, OPENED)
    assert stack.plan_exit_code() == 0


def test_a_changed_secret_publishes_exactly_one_version_and_the_alias_follows(stack, lambda_client):
    def code_of(version: str) -> str:
        return lambda_client.get_function(FunctionName=stack.function_name,
                                          Qualifier=version)["Configuration"]["CodeSha256"]

    old_code = code_of("1")
    stack.set_variables(secrets={"credential": ROTATED}, provisioned_concurrent_executions=2)
    stack.apply()
    outputs = stack.outputs()
    assert published_versions(lambda_client, stack.function_name) == ["1", "2"]
    assert lambda_client.get_alias(FunctionName=stack.function_name, Name=ALIAS)["FunctionVersion"] == "2"
    assert outputs["function_version"] == "2"
    assert code_of("2") == outputs["package_sha256"] != old_code  # version 2 is the rebuilt package
    config = lambda_client.get_provisioned_concurrency_config(FunctionName=stack.function_name, Qualifier=ALIAS)
    assert config["RequestedProvisionedConcurrentExecutions"] == 2  # the same configuration, on the alias
    assert invoke_alias(lambda_client, stack) == (None, OPENED)
    assert stack.plan_exit_code() == 0
    stack.apply()  # an apply with nothing to change publishes nothing
    assert published_versions(lambda_client, stack.function_name) == ["1", "2"]


def test_the_role_policy_read_back_from_iam_lets_the_alias_and_its_version_decrypt(stack, lambda_client, aws):
    """LocalStack does not enforce the condition; this reads the rendered document and matches the real
    alias and version ARNs against its patterns as IAM's ArnLike does ('*' is any run of characters)."""
    policy = aws("iam").get_role_policy(RoleName=f"{stack.function_name}-lambda",
                                        PolicyName="open-sealed-secrets")["PolicyDocument"]
    (decrypt,) = [statement for statement in policy["Statement"] if statement["Sid"] == "DecryptOwnSecrets"]
    patterns = decrypt["Condition"]["ArnLike"]["lambda:SourceFunctionArn"]
    function_arn = lambda_client.get_function(FunctionName=stack.function_name)["Configuration"]["FunctionArn"]
    assert f"{function_arn}:*" in patterns
    alias_arn = lambda_client.get_alias(FunctionName=stack.function_name, Name=ALIAS)["AliasArn"]
    version_arn = lambda_client.get_function(FunctionName=stack.function_name,
                                             Qualifier="2")["Configuration"]["FunctionArn"]
    for arn in (function_arn, alias_arn, version_arn):
        assert any(fnmatchcase(arn, pattern) for pattern in patterns), arn
    impostor = alias_arn.replace(f":function:{stack.function_name}:", f":function:{stack.function_name}-impostor:")
    assert not any(fnmatchcase(impostor, pattern) for pattern in patterns)


def test_turning_provisioned_concurrency_off_returns_the_alias_to_latest(stack, lambda_client):
    """The provisioning goes first (Lambda refuses it on $LATEST); the alias then runs $LATEST, not the
    newest published version, which the function's version attribute still names."""
    stack.set_variables(secrets={"credential": ROTATED})
    stack.apply()
    outputs = stack.outputs()
    assert lambda_client.get_alias(FunctionName=stack.function_name, Name=ALIAS)["FunctionVersion"] == "$LATEST"
    assert outputs["function_version"] == "$LATEST" and outputs["provisioned_concurrent_executions"] == 0
    configs = lambda_client.list_provisioned_concurrency_configs(FunctionName=stack.function_name)
    assert configs["ProvisionedConcurrencyConfigs"] == []
    assert published_versions(lambda_client, stack.function_name) == ["1", "2"]  # kept, as documented
    assert invoke_alias(lambda_client, stack) == (None, OPENED)
    assert stack.plan_exit_code() == 0


def test_destroy_removes_the_alias_its_provisioning_and_the_function(stack, lambda_client):
    stack.destroy()
    assert stack.function_name not in [f["FunctionName"] for f in lambda_client.list_functions()["Functions"]]
