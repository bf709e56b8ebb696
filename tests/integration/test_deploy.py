"""End to end against LocalStack: tflocal apply of this module at its defaults, real invocations, real KMS.

The tests in this file share one deployment: applied from nothing (the `stack` fixture), used, rotated (the
`rotated` fixture, for the tests that need a changed secret behind them), destroyed (the last test). Each
test names what it needs as fixtures, so any test selected alone (`pytest -k`) gets it. The module's default
handler opens every sealed secret and returns only their names, never a value.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
import uuid
import zipfile

import pytest
from integration_helpers import (assert_no_secret_text, build_package, code_sha256, eventually, function_logs,
                                 replace_code)

from localdeploy import Stack, invoke, retire_environments

pytestmark = pytest.mark.localstack

PLAINTEXT = "hello, world!"
ROTATED = "rotated value"
OPENED = {"opened": ["credential"]}  # what the default handler returns: names, never values


def start_deployments(background, tmp_path_factory) -> None:
    """Apply from nothing, on a worker (conftest starts it early; the fixture below waits for it)."""
    background.start(__name__, lambda: Stack(f"sealed-it-{uuid.uuid4().hex[:8]}", secrets={"credential": PLAINTEXT},
                                             workdir=tmp_path_factory.mktemp("stack")),
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


@pytest.fixture(scope="module")
def lambda_client(aws):
    return aws("lambda")


def test_apply_from_nothing_then_the_default_handler_opens_the_secret_and_returns_only_its_name(
        stack, lambda_client, aws):
    error, payload, logs = invoke(lambda_client, stack.function_name)
    assert (error, payload) == (None, OPENED)
    assert_no_secret_text({"the plaintext": PLAINTEXT}, json.dumps(payload), logs,
                          function_logs(aws, stack.function_name))


def test_a_second_plan_has_no_changes(stack):
    assert stack.plan_exit_code() == 0


def default_package(stack: Stack, ciphertexts: dict[str, str], output) -> bytes:
    """build.py's package of the module's default handler for these ciphertexts, as the module builds it."""
    return build_package(stack.workdir, stack.workdir / "lambda_src" / "handler.py.tmpl", ciphertexts, output,
                         "--runtime=python3.13", "--architecture=x86_64", f"--key-arn={stack.outputs()['kms_key_arn']}")


def test_deployed_package_is_what_build_py_makes(stack, lambda_client, tmp_path):
    outputs = stack.outputs()
    package = stack.package()
    code_sha = lambda_client.get_function(FunctionName=stack.function_name)["Configuration"]["CodeSha256"]
    assert outputs["package_sha256"] == code_sha256(package) == code_sha
    rebuilt = default_package(stack, outputs["ciphertexts"], tmp_path / "rebuilt.zip")
    assert rebuilt == package  # byte for byte, from the ciphertexts alone
    assert PLAINTEXT.encode() not in package


def test_build_py_without_flags_rebuilds_the_package_from_the_terraform_output(stack, tmp_path):
    output = tmp_path / "rebuilt.zip"
    result = subprocess.run([sys.executable, "build.py", "--output", str(output)], cwd=stack.workdir,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert output.read_bytes() == stack.package()
    assert result.stdout.splitlines()[-1] == code_sha256(stack.package())


def iam_meaning(document: dict) -> dict[str, dict]:
    """A policy's statements by Sid, as IAM reads them: a lone string is a one-item list, order is irrelevant."""
    def items(value: str | list[str]) -> set[str]:
        return {value} if isinstance(value, str) else set(value)

    return {statement["Sid"]: {
        "Effect": statement["Effect"], "Action": items(statement["Action"]), "Resource": items(statement["Resource"]),
        "Condition": {test: {key: items(values) for key, values in pairs.items()}
                      for test, pairs in statement.get("Condition", {}).items()},
    } for statement in document["Statement"]}


def test_deployed_role_and_key_policies_are_exactly_least_privilege(stack, lambda_client, aws):
    """The documents as IAM and KMS hold them after apply (LocalStack stores, but does not enforce, them)."""
    outputs = stack.outputs()
    function_arn = lambda_client.get_function(FunctionName=stack.function_name)["Configuration"]["FunctionArn"]
    assert function_arn == outputs["function_arn"]  # the ARN the module builds from names is the real one
    iam, role = aws("iam"), f"{stack.function_name}-lambda"
    # At the defaults the role holds this one inline policy and nothing else.
    assert iam.list_role_policies(RoleName=role)["PolicyNames"] == ["open-sealed-secrets"]
    assert iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"] == []
    policy = iam.get_role_policy(RoleName=role, PolicyName="open-sealed-secrets")["PolicyDocument"]
    log_group_arn = aws("logs").describe_log_groups(logGroupNamePrefix=outputs["log_group_name"])["logGroups"][0]["arn"]
    assert policy["Version"] == "2012-10-17"
    assert iam_meaning(policy) == {
        "DecryptOwnSecrets": {
            "Effect": "Allow", "Action": {"kms:Decrypt"}, "Resource": {outputs["kms_key_arn"]},
            "Condition": {"StringEquals": {"kms:EncryptionContext:LambdaFunctionName": {stack.function_name}},
                          "ArnLike": {"lambda:SourceFunctionArn": {function_arn, f"{function_arn}:*"}}}},
        "DenyOpeningOutsideTheFunction": {
            "Effect": "Deny", "Action": {"kms:Decrypt", "kms:ReEncrypt*"}, "Resource": {outputs["kms_key_arn"]},
            "Condition": {"ArnNotLike": {"lambda:SourceFunctionArn": {function_arn, f"{function_arn}:*"}}}},
        "WriteOwnLogs": {
            "Effect": "Allow", "Action": {"logs:CreateLogStream", "logs:PutLogEvents"},
            "Resource": {f"{log_group_arn.removesuffix(':*')}:*"}, "Condition": {}},
    }
    kms = aws("kms")
    assert kms.get_key_rotation_status(KeyId=outputs["kms_key_arn"])["KeyRotationEnabled"] is True
    # The key policy: administration without Decrypt for the account, Decrypt only through the role.
    key_policy = json.loads(kms.get_key_policy(KeyId=outputs["kms_key_arn"], PolicyName="default")["Policy"])
    administration, *decrypts = key_policy["Statement"]
    account_root = outputs["role_arn"].split(":role/")[0] + ":root"
    assert administration["Principal"] in ({"AWS": account_root}, {"AWS": [account_root]})
    assert "kms:*" not in administration["Action"] and "kms:Decrypt" not in administration["Action"]
    assert not [action for action in administration["Action"] if action.startswith("kms:ReEncrypt")]
    assert decrypts == outputs["key_policy_statements"]
    role_id = iam.get_role(RoleName=role)["Role"]["RoleId"]  # pinned too: a role recreated by name opens nothing
    assert [(s["Action"], s["Condition"]["ArnEquals"]["aws:PrincipalArn"], s["Condition"]["StringLike"])
            for s in decrypts] == [("kms:Decrypt", outputs["role_arn"], {"aws:userid": f"{role_id}:*"})]


def test_warm_invocations_make_one_decrypt_per_container(stack, lambda_client, localstack):
    retire_environments(lambda_client, stack.function_name)
    before = {operation: localstack.served(operation) for operation in ("kms.Decrypt", "lambda.Invoke")}
    for _ in range(20):
        assert invoke(lambda_client, stack.function_name)[:2] == (None, OPENED)
    # LocalStack logs a request after answering it, and the function's Decrypt is answered before the Invoke
    # that made it: once the 20 Invokes are in the log, so is every Decrypt they caused.
    assert eventually(lambda: localstack.served("lambda.Invoke") >= before["lambda.Invoke"] + 20)
    assert localstack.served("kms.Decrypt") - before["kms.Decrypt"] == 1


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
        ciphertext = stack.outputs()["ciphertexts"]["credential"]
        assert_no_secret_text({"the plaintext": PLAINTEXT, "the ciphertext": ciphertext},
                              json.dumps(payload), logs, function_logs(aws, other))
    finally:
        lambda_client.delete_function(FunctionName=other)


@pytest.fixture(scope="module")
def sealed_for_probe(stack, aws, lambda_client, tmp_path_factory):
    """A second function, 'probe', whose secret is sealed by KMS Encrypt outside Terraform with the stack's key."""
    name = f"{stack.function_name}-probe"
    kms = aws("kms")
    blob = kms.encrypt(KeyId=stack.outputs()["kms_key_arn"], Plaintext=b"probe secret",
                       EncryptionContext={"LambdaFunctionName": name})["CiphertextBlob"]
    role = lambda_client.get_function(FunctionName=stack.function_name)["Configuration"]["Role"]

    def deploy(ciphertext: bytes) -> None:
        package = default_package(stack, {"credential": base64.b64encode(ciphertext).decode()},
                                  tmp_path_factory.mktemp("probe") / "probe.zip")
        try:
            replace_code(lambda_client, name, package)
        except lambda_client.exceptions.ResourceNotFoundException:
            lambda_client.create_function(FunctionName=name, Runtime="python3.13", Role=role,
                                          Handler="handler.handler", Code={"ZipFile": package})
            lambda_client.get_waiter("function_active_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2})

    yield name, blob, deploy
    lambda_client.delete_function(FunctionName=name)


def test_a_tampered_ciphertext_is_a_typed_error(sealed_for_probe, lambda_client, aws):
    name, blob, deploy = sealed_for_probe
    deploy(blob)
    assert invoke(lambda_client, name)[:2] == (None, OPENED)  # the control: untampered, it opens
    tampered = bytearray(blob)
    tampered[-20] ^= 0x01
    deploy(bytes(tampered))
    error, payload, logs = invoke(lambda_client, name)
    assert error == "Unhandled" and payload["errorType"] == "SecretDecryptionError"
    assert payload["errorMessage"] == "could not decrypt sealed secret 'credential': KMS InvalidCiphertextException"
    assert_no_secret_text({"the plaintext": "probe secret", "the ciphertext": base64.b64encode(tampered).decode()},
                          json.dumps(payload), logs)


def test_a_ciphertext_sealed_under_another_key_is_refused(sealed_for_probe, lambda_client, aws):
    """The package names its key in every Decrypt: a blob sealed under another key (as through an alias
    repointed at a key someone else holds) is refused, where without the name KMS would have opened it."""
    name, _, deploy = sealed_for_probe
    kms = aws("kms")
    other = kms.create_key(Description="another key, not the package's")["KeyMetadata"]["Arn"]
    try:
        blob = kms.encrypt(KeyId=other, Plaintext=b"probe secret", EncryptionContext={"LambdaFunctionName": name})
        assert kms.decrypt(CiphertextBlob=blob["CiphertextBlob"],  # the control: naming no key, KMS opens it
                           EncryptionContext={"LambdaFunctionName": name})["Plaintext"] == b"probe secret"
        deploy(blob["CiphertextBlob"])
        error, payload, logs = invoke(lambda_client, name)
        assert error == "Unhandled" and payload["errorType"] == "SecretDecryptionError"
        assert payload["errorMessage"] == "could not decrypt sealed secret 'credential': KMS IncorrectKeyException"
        assert "probe secret" not in logs
    finally:
        kms.schedule_key_deletion(KeyId=other, PendingWindowInDays=7)


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
    assert invoke(lambda_client, name)[:2] == (None, OPENED)


@pytest.fixture(scope="module")
def rotated(stack) -> tuple[str, dict]:
    """The stack after its secret changed to ROTATED in one apply: (the ciphertext before, the outputs after)."""
    old_ciphertext = stack.outputs()["ciphertexts"]["credential"]
    stack.set_variables(secrets={"credential": ROTATED})
    stack.apply()
    return old_ciphertext, stack.outputs()


def test_changing_a_secret_reseals_rebuilds_and_updates_in_one_apply(stack, rotated, lambda_client, aws):
    old_ciphertext, outputs = rotated
    new_ciphertext = outputs["ciphertexts"]["credential"]
    assert new_ciphertext != old_ciphertext
    # The function runs the new package, which carries the new ciphertext...
    code_sha = lambda_client.get_function(FunctionName=stack.function_name)["Configuration"]["CodeSha256"]
    assert outputs["package_sha256"] == code_sha256(stack.package()) == code_sha
    with zipfile.ZipFile(io.BytesIO(stack.package())) as package:
        handler = package.read("handler.py").decode()
    assert new_ciphertext in handler and old_ciphertext not in handler
    # ...which seals the new value for this function, and the function opens it.
    opened = aws("kms").decrypt(CiphertextBlob=base64.b64decode(new_ciphertext),
                                EncryptionContext={"LambdaFunctionName": stack.function_name})["Plaintext"]
    assert opened == ROTATED.encode()
    assert invoke(lambda_client, stack.function_name)[:2] == (None, OPENED)
    assert stack.plan_exit_code() == 0


def test_the_plaintext_appears_in_no_output_package_or_log(stack, rotated, aws):
    # `terraform show -json` dumps the plan/state with sensitive values in clear, by design: on the
    # `secrets` path the state holds the plaintext (README, security model). Every other command's
    # output is checked, as is the function's log: at least the init, the first apply and the
    # rotation's (the `rotated` fixture), and the outputs read after each.
    outputs = [text for command, text in stack.transcript if command != "show"]
    commands = [command for command, _ in stack.transcript]
    assert commands.count("apply") >= 2 and {"init", "output"} <= set(commands), commands
    assert_no_secret_text({"the plaintext": PLAINTEXT, "the rotated plaintext": ROTATED}, *outputs,
                          function_logs(aws, stack.function_name))
    assert PLAINTEXT.encode() not in stack.package() and ROTATED.encode() not in stack.package()


def test_destroy_leaves_nothing(stack, aws):
    """Last in the file: it ends the deployment the others share (alone, it destroys a fresh one)."""
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
