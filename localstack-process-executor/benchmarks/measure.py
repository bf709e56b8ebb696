"""Measure the process executor on this machine: create→Active, cold and warm invoke (medians).

    python benchmarks/measure.py

The handler imports boto3 and builds a client at module level, as real functions do.
It reports; it asserts nothing.
"""

from __future__ import annotations

import io
import os
import platform
import statistics
import sys
import time
import zipfile

import boto3

from localstack_process_executor.launcher import EmbeddedLocalStack

HANDLER = b"""
import boto3
kms = boto3.client("kms")
def handler(event, context):
    return {"ok": True}
"""
FUNCTIONS, WARM_INVOKES = 7, 200


def package() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", HANDLER)
    return buffer.getvalue()


def main() -> int:
    with EmbeddedLocalStack() as localstack:
        session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
        lambda_ = session.client("lambda", endpoint_url=localstack.endpoint_url)
        role = session.client("iam", endpoint_url=localstack.endpoint_url).create_role(
            RoleName="measure", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        code = package()
        to_active, cold, warm = [], [], []
        for index in range(FUNCTIONS):
            name = f"measure-{index}"
            started = time.perf_counter()
            lambda_.create_function(FunctionName=name, Runtime="python3.13", Role=role, Handler="app.handler",
                                    Code={"ZipFile": code})
            while lambda_.get_function(FunctionName=name)["Configuration"]["State"] != "Active":
                time.sleep(0.005)
            to_active.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            lambda_.invoke(FunctionName=name)["Payload"].read()
            cold.append((time.perf_counter() - started) * 1000)
        for _ in range(WARM_INVOKES):
            started = time.perf_counter()
            lambda_.invoke(FunctionName="measure-0")["Payload"].read()
            warm.append((time.perf_counter() - started) * 1000)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    print(f"Measured {time.strftime('%Y-%m-%d')} by `python benchmarks/measure.py` on {cpu}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, localstack-core 2026.3.0 (host mode).\n")
    print("| measure | median (ms) | p90 (ms) | n |\n|---|---:|---:|---:|")
    for label, values in [("create_function → State Active", to_active),
                          ("cold invoke (first of a new function; boto3 imported at init)", cold),
                          ("warm invoke", warm)]:
        p90 = sorted(values)[int(0.9 * (len(values) - 1))]
        print(f"| {label} | {statistics.median(values):.1f} | {p90:.1f} | {len(values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
