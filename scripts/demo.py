"""make demo: the whole mission on an embedded LocalStack, then everything torn down.

Starts LocalStack in host mode (with the process executor), applies examples/seed (the
article's flow: the module with the seed's echo handler) with tflocal and the demo secret,
invokes the function as `aws lambda invoke` would, prints its response payload as the last
line of stdout, then destroys and stops everything. Progress goes to stderr.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from localstack_client.session import Session
from localstack_process_executor.launcher import EmbeddedLocalStack, LauncherError

from localdeploy import (GO_RUNTIME_ENV, ROOT, DeployError, Example, aws_environment, invoke,
                         use_project_terraform_config)

EXAMPLE = "seed"
DEMO_SECRETS = {"credential": "hello, world!"}


def step(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


class Stopwatch:
    """Where the demo's time goes: seconds per step, for its last line."""

    def __init__(self) -> None:
        self.started = self.lap_started = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name], self.lap_started = now - self.lap_started, now

    def summary(self) -> str:
        laps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.laps.items())
        return f"{time.monotonic() - self.started:.0f}s ({laps})"


def main() -> int:
    watch = Stopwatch()
    use_project_terraform_config()
    log_path = ROOT / ".tools" / "demo-localstack.log"
    log_path.unlink(missing_ok=True)
    localstack = EmbeddedLocalStack(log_path=log_path)
    stack = None
    try:
        with aws_environment({**GO_RUNTIME_ENV, **localstack.client_env()}), \
             ThreadPoolExecutor(max_workers=1, thread_name_prefix="init") as pool:
            stack = Example(EXAMPLE, variables={"secrets": DEMO_SECRETS})
            # init needs no LocalStack (tflocal only writes the endpoint it will have): it runs while LocalStack starts.
            step(f"tflocal init (examples/{EXAMPLE}, the module at ../..), while LocalStack starts")
            initialised = pool.submit(stack.init)
            step(f"starting LocalStack (host mode, process executor) on {localstack.endpoint_url}")
            try:
                localstack.start()
            finally:
                initialised.result()
            watch.lap("LocalStack start and init")
            step("tflocal apply: KMS key, sealed secret, IAM role, package build, Lambda function")
            stack.apply()
            function_name = stack.outputs()["function_name"]
            watch.lap("apply")
            step(f"invoking {function_name}")
            lambda_client = Session(localstack_host=f"127.0.0.1:{localstack.port}").client("lambda")
            error, payload, _ = invoke(lambda_client, function_name)
            watch.lap("invoke (a cold start)")
            if error:
                step(f"the function failed: {payload.get('errorType')}: {payload.get('errorMessage')}")
                return 1
            step("tflocal destroy")
            stack.destroy()
            stack.remove()
            stack = None
            watch.lap("destroy")
    except (LauncherError, DeployError) as error:
        print(f"error: {error}", file=sys.stderr)
        print(f"error: LocalStack's log is in {log_path}", file=sys.stderr)
        return 2
    finally:
        if stack is not None:
            stack.remove()
        step("stopping LocalStack")
        localstack.stop()
    watch.lap("stop")
    step(f"done in {watch.summary()}; the function's response payload:")
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
