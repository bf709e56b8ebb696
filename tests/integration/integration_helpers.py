"""Helpers the integration modules share: build a package with build.py's CLI (the interface Terraform
uses), deploy it over a function's code, read a function's CloudWatch log, check no secret text shows, and
poll for what nothing signals."""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from localstack_process_executor.waiting import poll_until

T = TypeVar("T")
CEILING_S = 60  # bounds a wait that went wrong; the right one ends long before


def code_sha256(package: bytes) -> str:
    """Base64 SHA-256: Lambda's CodeSha256."""
    return base64.b64encode(hashlib.sha256(package).digest()).decode("ascii")


def build_package(module_dir: Path, template: Path, ciphertexts: Mapping[str, str], output: Path,
                  *flags: str) -> bytes:
    """Run ``build.py`` of a module copy as Terraform does (an argv list, ``--flag=value`` items); the zip's bytes."""
    argv = [sys.executable, str(module_dir / "build.py"), f"--template={template}", f"--output={output}", *flags,
            *(f"--ciphertext={name}={blob}" for name, blob in sorted(ciphertexts.items()))]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    package = output.read_bytes()
    assert result.stdout.splitlines()[-1] == code_sha256(package)
    return package


def eventually(check: Callable[[], T]) -> T | None:
    """``check()``'s first truthy answer, polled: for what LocalStack signals nowhere (its request log)."""
    return poll_until(check, ceiling=CEILING_S)


def function_logs(aws: Callable, function_name: str) -> str:
    """Everything the function wrote to CloudWatch Logs so far."""
    logs = aws("logs")
    try:
        events = logs.filter_log_events(logGroupName=f"/aws/lambda/{function_name}")["events"]
    except logs.exceptions.ResourceNotFoundException:
        return ""
    return "\n".join(event["message"] for event in events)


def assert_no_secret_text(secrets: Mapping[str, str], *texts: str) -> None:
    """None of ``texts`` holds any of ``secrets`` (plaintexts or ciphertexts, by a label for the message)."""
    for label, secret in secrets.items():
        for text in texts:
            assert secret not in text, f"{label} leaked"


def replace_code(lambda_client, function_name: str, package: bytes) -> None:
    """Deploy ``package`` as the function's code and wait until it is live (old environments retired)."""
    lambda_client.update_function_code(FunctionName=function_name, ZipFile=package)
    lambda_client.get_waiter("function_updated_v2").wait(FunctionName=function_name,
                                                          WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
