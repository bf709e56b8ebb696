"""Start and stop an embedded LocalStack in host mode, with this executor, on loopback.

    with EmbeddedLocalStack() as localstack:
        boto3.client("lambda", endpoint_url=localstack.endpoint_url, ...)

or from a shell, around any command (it gets AWS_ENDPOINT_URL and test credentials)::

    python -m localstack_process_executor.launcher -- terraform apply
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from . import EXECUTOR_NAME
from .waiting import Outcome, polled, wait_while_alive

TESTED_LOCALSTACK = "2026.3.0"
DEFAULT_SERVICES = ("iam", "kms", "lambda", "logs", "sts")
START_TIMEOUT_SECONDS = 90
HEALTH_POLL_SECONDS = 0.2
STOP_TIMEOUT_SECONDS = 30


class LauncherError(RuntimeError):
    """LocalStack could not be started; the message says why and what to do."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def check_installation() -> None:
    try:
        version = importlib.metadata.version("localstack-core")
    except importlib.metadata.PackageNotFoundError:
        raise LauncherError("localstack-core is not installed in this environment; pip install localstack-core[runtime]") from None
    if version != TESTED_LOCALSTACK:
        raise LauncherError(f"localstack-core {version} is installed but this executor is tested with {TESTED_LOCALSTACK}; "
                            f"pip install 'localstack-core[runtime]=={TESTED_LOCALSTACK}'")
    names = {ep.name for ep in importlib.metadata.entry_points(group="localstack.lambda.runtime_executor")}
    if EXECUTOR_NAME not in names:  # LocalStack would silently fall back to Docker
        raise LauncherError("the 'process' runtime executor is not installed; pip install ./localstack-process-executor")


class EmbeddedLocalStack:
    """A LocalStack process of our own: loopback only, a free port, state in a temporary folder."""

    def __init__(
        self,
        *,
        port: int | None = None,
        services: Sequence[str] = DEFAULT_SERVICES,
        log_path: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.services = tuple(services)
        self.root = Path(tempfile.mkdtemp(prefix="localstack-"))
        self.log_path = log_path or self.root / "localstack.log"
        self.extra_env = dict(extra_env or {})
        self.process: subprocess.Popen | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client_env(self) -> dict[str, str]:
        """Environment for AWS clients (boto3, the AWS CLI, Terraform, tflocal) to reach it."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
            "LOCALSTACK_HOSTNAME": "127.0.0.1",
            "EDGE_PORT": str(self.port),
        }

    def server_env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        env.update({
            "GATEWAY_LISTEN": f"127.0.0.1:{self.port}",
            "LAMBDA_RUNTIME_EXECUTOR": EXECUTOR_NAME,
            "SERVICES": ",".join(self.services),
            "EAGER_SERVICE_LOADING": "0",
            "DISABLE_EVENTS": "1",  # offline, its analytics shutdown hangs otherwise
            "SKIP_SSL_CERT_DOWNLOAD": "1",
            "DNS_ADDRESS": "0",  # no DNS server: nothing to resolve offline, and no port 53
            "FILESYSTEM_ROOT": str(self.root / "filesystem"),
            "TMPDIR": str(self.root / "tmp"),
            "LOCALSTACK_CLI": "0",
            "PYTHONUNBUFFERED": "1",  # its log is read while it runs (see served())
        })
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> EmbeddedLocalStack:
        check_installation()
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "localstack.runtime.main"],
                env=self.server_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        outcome = wait_while_alive(polled(self._healthy), self.process, timeout, HEALTH_POLL_SECONDS)
        if outcome is Outcome.DONE:
            return self
        if outcome is Outcome.EXITED:
            status, self.process = self.process.returncode, None
            raise LauncherError(f"LocalStack exited with status {status} while starting; see {self.log_path}")
        self.stop(keep_files=True)
        raise LauncherError(f"LocalStack did not become healthy within {timeout:.0f}s; see {self.log_path}")

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.endpoint_url}/_localstack/health", timeout=2) as response:
                services = json.load(response).get("services", {})
        except (OSError, ValueError):
            return False
        return all(services.get(name) in ("available", "running") for name in self.services)

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS, keep_files: bool = False) -> None:
        """Shut LocalStack down (it stops its function processes), then make sure nothing is left.

        Its temporary folder goes too, unless ``keep_files`` (the log lives there unless ``log_path`` was given).
        """
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        # Function processes also exit on their own when LocalStack's end of their lifeline closes.
        if not keep_files:
            shutil.rmtree(self.root, ignore_errors=True)

    def served(self, operation: str) -> int:
        """How many requests for ``operation`` (e.g. ``kms.Decrypt``) LocalStack has served, from its log."""
        marker = f"AWS {operation} =>"
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return sum(marker in line for line in log)

    def __enter__(self) -> EmbeddedLocalStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a command against an embedded LocalStack (host mode, loopback).")
    parser.add_argument("--log", type=Path, help="write LocalStack's log here (default: a temporary folder)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command to run after --")
    localstack = EmbeddedLocalStack(log_path=args.log)
    try:
        print(f"localstack: starting on {localstack.endpoint_url}", file=sys.stderr)
        localstack.start()
    except LauncherError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:
        return subprocess.run(command, env={**os.environ, **localstack.client_env()}).returncode
    finally:
        localstack.stop()
        print("localstack: stopped", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
