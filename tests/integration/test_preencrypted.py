"""The pre-encrypted path: a ciphertext made by KMS Encrypt outside Terraform (as `aws kms encrypt` does)
deploys and opens, and its plaintext is nowhere: not in state, plan output, package or logs.

The function runs the seed's echo handler (examples/seed/src), so that the test sees what it opened."""

from __future__ import annotations

import base64
import uuid

import boto3
import pytest

from localdeploy import EXAMPLES, Stack, invoke

pytestmark = pytest.mark.localstack

PLAINTEXT = "pre-sealed s3cr3t, never in state"
ECHO_HANDLER = {"handler_template": str(EXAMPLES / "seed" / "src" / "handler.py.tmpl")}


def presealed_apply(stack: Stack, kms) -> str:
    """The documented flow, from nothing: the key first, seal with its alias outside Terraform, then the rest
    with only the ciphertext. Returns the ciphertext as ``--query CiphertextBlob --output text`` prints it."""
    stack.init()
    stack.apply("aws_kms_alias.secrets")
    blob = kms.encrypt(KeyId=f"alias/{stack.function_name}-secrets", Plaintext=PLAINTEXT.encode(),
                       EncryptionContext={"LambdaFunctionName": stack.function_name})["CiphertextBlob"]
    ciphertext = base64.b64encode(blob).decode()
    stack.set_variables(encrypted_secrets={"api_token": ciphertext}, **ECHO_HANDLER)
    stack.apply()
    return ciphertext


def start_deployments(background, tmp_path_factory) -> None:
    """Run the flow on a worker (conftest starts it early; the test waits for it)."""
    kms = boto3.client("kms")  # LocalStack, through the session's AWS_* environment; made on this thread
    background.start(__name__, lambda: Stack(f"presealed-{uuid.uuid4().hex[:8]}", extra_vars=ECHO_HANDLER,
                                             workdir=tmp_path_factory.mktemp("presealed")),
                     lambda stack: presealed_apply(stack, kms))


def test_ciphertext_made_outside_terraform_deploys_and_opens_without_entering_state(
        background, tmp_path_factory, aws):
    start_deployments(background, tmp_path_factory)
    stack: Stack = background.deployment(__name__)
    try:
        ciphertext = background.result(__name__)
        lambda_client = aws("lambda")
        error, payload, logs = invoke(lambda_client, stack.function_name, {"secret": "api_token"})
        assert (error, payload) == (None, PLAINTEXT)
        assert stack.outputs()["ciphertexts"] == {"api_token": ciphertext}
        assert stack.plan_exit_code() == 0

        # The state holds every value Terraform knows, sensitive or not; a plan's JSON holds no more.
        state = stack.state_text()
        assert ciphertext in state  # sanity: we are looking at the right state
        for place, text in [("state", state), ("function log tail", logs), *stack.transcript]:
            assert PLAINTEXT not in text, f"the plaintext leaked into {place}"
        assert PLAINTEXT.encode() not in stack.package()
    finally:
        if stack.has_resources():
            stack.destroy()
        stack.remove()
