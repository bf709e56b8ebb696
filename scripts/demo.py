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

from localstack_client.session import Session
from localstack_process_executor.launcher import EmbeddedLocalStack, LauncherError

from localdeploy import (GO_RUNTIME_ENV, ROOT, DeployError, Example, aws_environment, invoke,
                         use_project_terraform_config)

EXAMPLE = "seed"
DEMO_SECRETS = {"credential": "hello, world!"}


def step(message: str) -> None:
    print(f"demo: {message}", file=sys.stderr, flush=True)


def main() -> int:
    started = time.monotonic()
    use_project_terraform_config()
    log_path = ROOT / ".tools" / "demo-localstack.log"
    log_path.unlink(missing_ok=True)
    localstack = EmbeddedLocalStack(log_path=log_path)
    stack = None
    try:
        step(f"starting LocalStack (host mode, process executor) on {localstack.endpoint_url}")
        localstack.start()
        with aws_environment({**GO_RUNTIME_ENV, **localstack.client_env()}):
            stack = Example(EXAMPLE, variables={"secrets": DEMO_SECRETS})
            step(f"tflocal init (examples/{EXAMPLE}, the module at ../..)")
            stack.init()
            step("tflocal apply: KMS key, sealed secret, IAM role, package build, Lambda function")
            stack.apply()
            function_name = stack.outputs()["function_name"]
            step(f"invoking {function_name}")
            lambda_client = Session(localstack_host=f"127.0.0.1:{localstack.port}").client("lambda")
            error, payload, _ = invoke(lambda_client, function_name)
            if error:
                step(f"the function failed: {payload.get('errorType')}: {payload.get('errorMessage')}")
                return 1
            step("tflocal destroy")
            stack.destroy()
            stack.remove()
            stack = None
    except (LauncherError, DeployError) as error:
        print(f"error: {error}", file=sys.stderr)
        print(f"error: LocalStack's log is in {log_path}", file=sys.stderr)
        return 2
    finally:
        if stack is not None:
            stack.remove()
        step("stopping LocalStack")
        localstack.stop()
    step(f"done in {time.monotonic() - started:.0f}s; the function's response payload:")
    print(json.dumps(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
