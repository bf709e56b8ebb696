"""End to end against LocalStack: tflocal apply of this module, real invocations, real KMS.

The tests in this file run in order on one deployment: apply from nothing, use it, destroy it.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid

import pytest

import build
from localdeploy import Stack, invoke, retire_environments

pytestmark = pytest.mark.localstack

PLAINTEXT = "hello, world!"


@pytest.fixture(scope="module")
def stack(tmp_path_factory, localstack):
    deployed = Stack(f"sealed-it-{uuid.uuid4().hex[:8]}", secrets={"credential": PLAINTEXT},
                     workdir=tmp_path_factory.mktemp("stack"))
    deployed.init().apply()
    yield deployed
    if deployed.state_text() and '"resources": []' not in deployed.state_text():
        deployed.destroy()


@pytest.fixture(scope="module")
def lambda_client(aws):
    return aws("lambda")


def function_logs(aws, function_name: str) -> str:
    logs = aws("logs")
    try:
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{function_name}")["events"]
    except logs.exceptions.ResourceNotFoundException:
        return ""
    return "\n".join(event["message"] for event in events)


def test_apply_from_nothing_then_invoke_returns_the_plaintext(stack, lambda_client):
    error, payload, logs = invoke(lambda_client, stack.function_name)
    assert (error, payload) == (None, PLAINTEXT)
    assert PLAINTEXT not in logs


def test_a_second_plan_has_no_changes(stack):
    assert stack.plan_exit_code() == 0


def test_deployed_package_is_what_build_py_makes(stack, lambda_client):
    outputs = stack.outputs()
    package = stack.package()
    code_sha = lambda_client.get_function(FunctionName=stack.function_name)["Configuration"]["CodeSha256"]
    assert outputs["package_sha256"] == build.code_sha256(package) == code_sha
    rebuilt = build.build_zip(build.package_entries(build.DEFAULT_TEMPLATE, outputs["ciphertexts"]))
    assert rebuilt == package  # byte for byte, from the ciphertexts alone
    assert PLAINTEXT.encode() not in package


def test_build_py_without_flags_rebuilds_the_package_from_the_terraform_output(stack, tmp_path):
    output = tmp_path / "rebuilt.zip"
    result = subprocess.run([sys.executable, "build.py", "--output", str(output)], cwd=stack.workdir,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert output.read_bytes() == stack.package()
    assert result.stdout.splitlines()[-1] == build.code_sha256(stack.package())


def test_iam_policy_in_a_real_plan_is_exactly_least_privilege(stack):
    plan = stack.plan_json()
    resources = {r["address"]: r["values"] for r in plan["planned_values"]["root_module"]["resources"]}
    outputs = stack.outputs()
    policy = json.loads(resources["aws_iam_role_policy.function"]["policy"])
    log_group_arn = resources["aws_cloudwatch_log_group.function"]["arn"]
    assert policy == {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "DecryptOwnSecrets", "Effect": "Allow", "Action": "kms:Decrypt",
             "Resource": outputs["kms_key_arn"],
             "Condition": {"StringEquals": {"kms:EncryptionContext:LambdaFunctionName": stack.function_name}}},
            {"Sid": "WriteOwnLogs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": f"{log_group_arn}:*"},
        ],
    }
    key = resources["aws_kms_key.secrets"]
    assert key["enable_key_rotation"] is True and key["deletion_window_in_days"] == 30


def test_warm_invocations_make_one_decrypt_per_container(stack, lambda_client, localstack):
    retire_environments(lambda_client, stack.function_name)
    before = localstack.served("kms.Decrypt")
    for _ in range(20):
        assert invoke(lambda_client, stack.function_name)[1] == PLAINTEXT
    time.sleep(0.5)  # LocalStack writes its request log line after the response
    assert localstack.served("kms.Decrypt") - before == 1


def test_a_ciphertext_is_bound_to_its_function_name(stack, lambda_client, aws):
    """The same package (same blob) under another function name: KMS refuses, typed error, nothing leaks."""
    other = f"{stack.function_name}-impostor"
    role = lambda_client.get_function(FunctionName=stack.function_name)["Configuration"]["Role"]
    lambda_client.create_function(FunctionName=other, Runtime="python3.13", Role=role, Handler="handler.handler",
                                  Code={"ZipFile": stack.package()})
    try:
        lambda_client.get_waiter("function_active_v2").wait(FunctionName=other, WaiterConfig={"Delay": 0.2})
        error, payload, logs = invoke(lambda_client, other)
        assert error == "Unhandled"
        assert payload["errorType"] == "SecretDecryptionError"
        assert payload["errorMessage"] == "could not decrypt sealed secret 'credential': KMS InvalidCiphertextException"
        assert_no_secret_text(PLAINTEXT, stack.outputs()["ciphertexts"]["credential"], str(payload), logs,
                              function_logs(aws, other))
    finally:
        lambda_client.delete_function(FunctionName=other)


def assert_no_secret_text(plaintext: str, ciphertext: str, *texts: str) -> None:
    for text in texts:
        assert plaintext not in text
        assert ciphertext not in text


@pytest.fixture(scope="module")
def sealed_for_probe(stack, aws, lambda_client, tmp_path_factory):
    """A second function, 'probe', whose secret is sealed by KMS Encrypt outside Terraform with the stack's key."""
    name = f"{stack.function_name}-probe"
    kms = aws("kms")
    blob = kms.encrypt(KeyId=stack.outputs()["kms_alias_name"], Plaintext=b"probe secret",
                       EncryptionContext={"LambdaFunctionName": name})["CiphertextBlob"]
    role = lambda_client.get_function(FunctionName=stack.function_name)["Configuration"]["Role"]

    def deploy(ciphertext: bytes) -> None:
        package = build.build_zip(build.package_entries(
            build.DEFAULT_TEMPLATE, {"credential": base64.b64encode(ciphertext).decode()}))
        try:
            lambda_client.update_function_code(FunctionName=name, ZipFile=package)
            lambda_client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2})
        except lambda_client.exceptions.ResourceNotFoundException:
            lambda_client.create_function(FunctionName=name, Runtime="python3.13", Role=role,
                                          Handler="handler.handler", Code={"ZipFile": package})
            lambda_client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2})

    yield name, blob, deploy
    lambda_client.delete_function(FunctionName=name)


def test_a_tampered_ciphertext_is_a_typed_error(sealed_for_probe, lambda_client, aws):
    name, blob, deploy = sealed_for_probe
    deploy(blob)
    assert invoke(lambda_client, name)[:2] == (None, "probe secret")  # the control: untampered, it opens
    tampered = bytearray(blob)
    tampered[-20] ^= 0x01
    deploy(bytes(tampered))
    error, payload, logs = invoke(lambda_client, name)
    assert error == "Unhandled" and payload["errorType"] == "SecretDecryptionError"
    assert payload["errorMessage"] == "could not decrypt sealed secret 'credential': KMS InvalidCiphertextException"
    assert_no_secret_text("probe secret", base64.b64encode(tampered).decode(), str(payload), logs)


def test_a_disabled_key_is_a_typed_error_and_the_function_recovers_when_it_is_enabled(
        stack, sealed_for_probe, lambda_client, aws):
    name, blob, deploy = sealed_for_probe
    deploy(blob)
    kms = aws("kms")
    key = stack.outputs()["kms_key_arn"]
    kms.disable_key(KeyId=key)
    try:
        error, payload, logs = invoke(lambda_client, name)
        assert error == "Unhandled" and payload["errorType"] == "SecretDecryptionError"
        assert payload["errorMessage"] == "could not decrypt sealed secret 'credential': KMS DisabledException"
        assert "probe secret" not in logs
    finally:
        kms.enable_key(KeyId=key)
    # Same warm container: failures are not cached, so it opens the secret now.
    assert invoke(lambda_client, name)[:2] == (None, "probe secret")


def test_changing_a_secret_reseals_rebuilds_and_updates_in_one_apply(stack, lambda_client):
    old_ciphertext = stack.outputs()["ciphertexts"]["credential"]
    stack.set_variables(secrets={"credential": "rotated value"})
    stack.apply()
    outputs = stack.outputs()
    assert outputs["ciphertexts"]["credential"] != old_ciphertext
    assert outputs["package_sha256"] == build.code_sha256(stack.package())
    assert invoke(lambda_client, stack.function_name)[:2] == (None, "rotated value")
    assert stack.plan_exit_code() == 0
    stack.set_variables(secrets={"credential": PLAINTEXT})
    stack.apply()
    assert invoke(lambda_client, stack.function_name)[:2] == (None, PLAINTEXT)


def test_the_plaintext_appears_in_no_output_package_or_log(stack, aws):
    # `terraform show -json` dumps the plan/state with sensitive values in clear, by design: on the
    # `secrets` path the state holds the plaintext (README, security model). Every other command's
    # output is checked, as is the function's log.
    outputs = [text for command, text in stack.transcript if command != "show"]
    assert len(outputs) >= 8
    assert_no_secret_text(PLAINTEXT, "\x00", *outputs, function_logs(aws, stack.function_name))
    assert PLAINTEXT.encode() not in stack.package()


def test_destroy_leaves_nothing(stack, aws):
    outputs = stack.outputs()
    stack.destroy()
    lambda_client, kms, iam, logs = aws("lambda"), aws("kms"), aws("iam"), aws("logs")
    assert stack.function_name not in [f["FunctionName"] for f in lambda_client.list_functions()["Functions"]]
    assert kms.describe_key(KeyId=outputs["kms_key_arn"])["KeyMetadata"]["KeyState"] == "PendingDeletion"
    assert outputs["kms_alias_name"] not in [a["AliasName"] for a in kms.list_aliases()["Aliases"]]
    assert f"{stack.function_name}-lambda" not in [r["RoleName"] for r in iam.list_roles()["Roles"]]
    groups = logs.describe_log_groups(logGroupNamePrefix=outputs["log_group_name"])["logGroups"]
    assert outputs["log_group_name"] not in [group["logGroupName"] for group in groups]
    assert stack.run("state list")[1].strip() == ""
