"""The pre-encrypted path: a ciphertext made by KMS Encrypt outside Terraform (as `aws kms encrypt` does)
deploys and opens, and its plaintext is nowhere: not in state, plan output, package or logs.

The function runs the seed's echo handler (examples/seed/src), so that the test sees what it opened."""

from __future__ import annotations

import base64
import uuid

import pytest

from localdeploy import EXAMPLES, Stack, invoke

pytestmark = pytest.mark.localstack

PLAINTEXT = "pre-sealed s3cr3t, never in state"
ECHO_HANDLER = {"handler_template": str(EXAMPLES / "seed" / "src" / "handler.py.tmpl")}


def test_ciphertext_made_outside_terraform_deploys_and_opens_without_entering_state(
        tmp_path, localstack, aws):
    name = f"presealed-{uuid.uuid4().hex[:8]}"
    stack = Stack(name, workdir=tmp_path / "stack", extra_vars=ECHO_HANDLER).init()
    try:
        # 1. The key first (the documented bootstrap for this path), then seal with its alias.
        stack.apply("aws_kms_alias.secrets")
        blob = aws("kms").encrypt(KeyId=f"alias/{name}-secrets", Plaintext=PLAINTEXT.encode(),
                                  EncryptionContext={"LambdaFunctionName": name})["CiphertextBlob"]
        ciphertext = base64.b64encode(blob).decode()  # what --query CiphertextBlob --output text prints

        # 2. Everything else, with only the ciphertext given to Terraform.
        stack.set_variables(encrypted_secrets={"api_token": ciphertext}, **ECHO_HANDLER)
        stack.apply()
        lambda_client = aws("lambda")
        error, payload, logs = invoke(lambda_client, name, {"secret": "api_token"})
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
