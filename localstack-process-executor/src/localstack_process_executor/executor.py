"""A LocalStack Lambda runtime executor that runs Python functions as local processes.

LocalStack's own executor starts a Docker container per execution environment; this one
starts a process of the function's Python version running ``bootstrap.py`` in the
unzipped code folder, with the environment LocalStack builds for the function. It
speaks LocalStack's executor protocol over loopback HTTP (``ExecutorEndpoint``) and
enforces what the container's init would: the function timeout, crashes, and cleanup.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

from localstack import config
from localstack.aws.api.lambda_ import PackageType
from localstack.services.lambda_.invocation.executor_endpoint import (
    ExecutorEndpoint,
    StatusErrorException,
)
from localstack.services.lambda_.invocation.lambda_models import FunctionVersion, InvocationResult
from localstack.services.lambda_.invocation.runtime_executor import (
    LambdaRuntimeException,
    RuntimeExecutor,
)

from .bootstrap import LIFELINE_FD_ENV, LISTEN_FD_ENV
from .waiting import Outcome, future_done, wait_while_alive

LOG = logging.getLogger(__name__)

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
PYTHON_RUNTIME = re.compile(r"python(\d+)\.(\d+)")
POLL_SECONDS = 0.02  # how often a waiting invoke checks that its process is still alive
KILL_WAIT_SECONDS = 5


def interpreter_env_name(runtime: str) -> str:
    """``python3.13`` -> ``PROCESS_EXECUTOR_PYTHON3_13``: the variable that overrides its interpreter."""
    return "PROCESS_EXECUTOR_" + runtime.upper().replace(".", "_")


def _runs(executable: str, version: tuple[int, int]) -> bool:
    probe = "import sys; sys.exit(sys.version_info[:2] != (%d, %d))" % version
    try:
        return subprocess.run([executable, "-c", probe], capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


_INTERPRETERS: dict[str, str] = {}


def find_interpreter(runtime: str | None) -> str:
    """The host Python that runs ``runtime``; raises LambdaRuntimeException saying how to get one."""
    match = PYTHON_RUNTIME.fullmatch(runtime or "")
    if not match:
        raise LambdaRuntimeException(
            f"the process executor runs Python zip functions only, not runtime {runtime!r}; "
            "use LocalStack's Docker executor for other runtimes"
        )
    if runtime in _INTERPRETERS:
        return _INTERPRETERS[runtime]
    version = (int(match[1]), int(match[2]))
    override = os.environ.get(interpreter_env_name(runtime))
    if override:
        candidates = [override]
    elif sys.version_info[:2] == version:
        candidates = [sys.executable]  # LocalStack's own interpreter: boto3 is there, as in Lambda
    else:
        candidates = [path for path in [shutil.which(f"python{version[0]}.{version[1]}")] if path]
    for candidate in candidates:
        if _runs(candidate, version):
            _INTERPRETERS[runtime] = candidate
            return candidate
    raise LambdaRuntimeException(
        f"runtime {runtime} needs a Python {version[0]}.{version[1]} interpreter on this host and none runs; "
        f"install one or set {interpreter_env_name(runtime)}=/path/to/python{version[0]}.{version[1]}"
    )


def gateway_host() -> str:
    host = config.GATEWAY_LISTEN[0].host
    return "127.0.0.1" if host in ("0.0.0.0", "", "::") else host


def error_payload(error_type: str, message: str) -> bytes:
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


class ProcessRuntimeExecutor(RuntimeExecutor):
    """One execution environment = one local process (restarted after a timeout or crash)."""

    def __init__(self, id: str, function_version: FunctionVersion) -> None:
        super().__init__(id=id, function_version=function_version)
        self.executor_endpoint = ExecutorEndpoint(self.id, container_address="127.0.0.1")
        self.process: subprocess.Popen | None = None
        self.lifeline: int | None = None
        self.env_vars: dict[str, str] = {}
        self.workdir = Path(tempfile.mkdtemp(prefix=f"lambda-{function_version.id.function_name}-"))
        self.log_path = self.workdir / "runtime.log"
        self.lock = threading.Lock()
        self.stopped = False

    # --- lifecycle ------------------------------------------------------------------------

    @classmethod
    def prepare_version(cls, function_version: FunctionVersion) -> None:
        if function_version.config.package_type != PackageType.Zip:
            raise LambdaRuntimeException("the process executor runs zip packages only, not container images")
        find_interpreter(function_version.config.runtime)
        if function_version.config.code:
            function_version.config.code.prepare_for_execution()

    @classmethod
    def cleanup_version(cls, function_version: FunctionVersion) -> None:
        pass  # LocalStack removes the unzipped code itself

    def start(self, env_vars: dict[str, str]) -> None:
        self.env_vars = {key: str(value) for key, value in env_vars.items()}  # some arrive as ints
        self.executor_endpoint.start()
        self._spawn()
        self._wait_until_ready()

    def stop(self) -> None:
        with self.lock:
            self.stopped = True
            self._kill()
        try:
            self.executor_endpoint.shutdown()
        except Exception as error:  # already unregistered: stop may run twice
            LOG.debug("executor endpoint %s already shut down: %s", self.id, error)
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- invocation -----------------------------------------------------------------------

    def invoke(self, payload: dict[str, str]) -> InvocationResult:
        request_id = payload["invoke-id"]
        log_offset = self._log_size()
        if self.process is None or self.process.poll() is not None:
            # The last invoke timed out or crashed: start afresh, as Lambda re-inits the sandbox.
            try:
                self._restart()
            except StatusErrorException as error:
                return InvocationResult(request_id, error.payload, is_error=True, logs=self._log_tail(log_offset))
            log_offset = self._log_size()
        endpoint = self.executor_endpoint
        endpoint.invocation_future = future = Future()
        endpoint.logs = None
        process = self.process
        try:
            self._post_invoke(payload)
        except OSError:  # the process died between invocations: report it, restart on the next
            with self.lock:
                self._kill()
            return self._failed(request_id, log_offset, "Runtime.ExitError",
                                f"RequestId: {request_id} Error: Runtime exited before the invocation")
        timeout = float(self.function_version.config.timeout)
        outcome = wait_while_alive(future_done(future), process, timeout, POLL_SECONDS)
        if outcome is Outcome.DONE:
            return future.result()
        if outcome is Outcome.EXITED:
            status = process.returncode
            reason = f"signal: {signal.Signals(-status).name}" if status < 0 else f"exit status {status}"
            return self._failed(request_id, log_offset, "Runtime.ExitError",
                                f"RequestId: {request_id} Error: Runtime exited with error: {reason}")
        with self.lock:
            self._kill()
        return self._failed(request_id, log_offset, "Sandbox.Timedout",
                            f"RequestId: {request_id} Error: Task timed out after {timeout:.2f} seconds")

    def _failed(self, request_id: str, log_offset: int, error_type: str, message: str) -> InvocationResult:
        logs = (f"START RequestId: {request_id} Version: {self.function_version.id.qualifier}\n"
                f"{self._log_tail(log_offset)}{message}\nEND RequestId: {request_id}\n")
        LOG.info("Lambda %s: %s", self.function_version.id.function_name, message)
        return InvocationResult(request_id, error_payload(error_type, message), is_error=True, logs=logs)

    def _post_invoke(self, payload: dict[str, str]) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.executor_endpoint.container_port, timeout=10)
        try:
            connection.request("POST", "/invoke", body=json.dumps(payload), headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise LambdaRuntimeException(f"runtime of {self.id} answered {response.status} to an invoke")

    # --- the process ----------------------------------------------------------------------

    def _spawn(self) -> None:
        code_dir = str(self.function_version.config.code.get_unzipped_code_location())
        interpreter = find_interpreter(self.function_version.config.runtime)
        listener = socket.create_server(("127.0.0.1", 0))  # bound here: no port race with the child
        self.executor_endpoint.container_port = listener.getsockname()[1]
        lifeline_read, self.lifeline = os.pipe()
        tmp = self.workdir / "tmp"
        tmp.mkdir(exist_ok=True)
        env = {
            **self.env_vars,
            "LAMBDA_TASK_ROOT": code_dir,
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": str(tmp),  # no host ~/.aws leaks into the function
            "TMPDIR": str(tmp),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONUNBUFFERED": "1",
            LISTEN_FD_ENV: str(listener.fileno()),
            LIFELINE_FD_ENV: str(lifeline_read),
        }
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [interpreter, "-s", str(BOOTSTRAP)],
                cwd=code_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=(listener.fileno(), lifeline_read),
                start_new_session=True,  # its own process group, killed as one
            )
        os.close(lifeline_read)
        listener.close()
        LOG.debug("Started runtime %s for %s as pid %s", self.id, self.function_version.qualified_arn, self.process.pid)

    def _wait_until_ready(self) -> None:
        """Block until the process reports ready; raise StatusErrorException if its init fails, dies or hangs."""
        future = self.executor_endpoint.startup_future
        process = self.process
        # LocalStack's own startup timer covers start(), but not a restart from invoke(): keep the same limit.
        limit = config.LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT
        outcome = wait_while_alive(future_done(future), process, limit, POLL_SECONDS)
        if outcome is not Outcome.DONE:
            if outcome is Outcome.EXITED:
                error_type = "Runtime.ExitError"
                message = f"Runtime exited during init with status {process.returncode}"
            else:
                with self.lock:
                    self._kill()
                error_type = "Sandbox.Timedout"
                message = f"Runtime init did not finish within {limit} seconds"
            if not future.done():  # the runtime may have answered meanwhile
                future.set_exception(StatusErrorException(message, error_payload(error_type, message)))
        future.result()  # returns once ready; raises StatusErrorException on an init error or the failure above

    def _restart(self) -> None:
        with self.lock:
            if self.stopped:
                raise LambdaRuntimeException(f"execution environment {self.id} is stopped")
            self._kill()
            self.executor_endpoint.startup_future = Future()
            self._spawn()
        self._wait_until_ready()

    def _kill(self) -> None:
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            process.wait(KILL_WAIT_SECONDS)
        except subprocess.TimeoutExpired:
            LOG.warning("runtime process %s did not exit after SIGKILL", process.pid)

    def _log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0

    def _log_tail(self, offset: int) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # --- addresses --------------------------------------------------------------------------

    def get_address(self) -> str:
        return "127.0.0.1"

    def get_endpoint_from_executor(self) -> str:
        return gateway_host()

    def get_runtime_endpoint(self) -> str:
        return (f"http://{gateway_host()}:{config.GATEWAY_LISTEN[0].port}"
                f"{self.executor_endpoint.get_endpoint_prefix()}")

    def get_logs(self) -> str:
        return self._log_tail(0)
