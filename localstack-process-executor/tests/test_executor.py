"""The process executor behind real LocalStack: real CreateFunction, real Invoke, real processes."""

from __future__ import annotations

import concurrent.futures
import json
import os

import boto3
import psutil
import pytest

from localstack_process_executor.launcher import EmbeddedLocalStack
from localstack_process_executor.waiting import poll_until
from zips import zip_code

CEILING_S = 60  # bounds a wait that went wrong; the right one ends long before

STATEFUL = """
import os
calls = 0
def handler(event, context):
    global calls
    calls += 1
    return {"calls": calls, "pid": os.getpid()}
"""


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pid: int) -> bool:
    return bool(poll_until(lambda: not alive(pid), ceiling=CEILING_S))


def test_module_state_stays_warm_within_one_environment(deploy, invoke):
    name = deploy(STATEFUL)
    results = [invoke(name)[1] for _ in range(3)]
    assert [r["calls"] for r in results] == [1, 2, 3]
    assert len({r["pid"] for r in results}) == 1


def test_environment_is_what_localstack_gives(deploy, invoke, localstack):
    name = deploy("""
        import os, boto3
        def handler(event, context):
            creds = boto3.Session().get_credentials()
            return {"env": {k: os.environ.get(k) for k in ("AWS_LAMBDA_FUNCTION_NAME", "AWS_ENDPOINT_URL",
                            "AWS_REGION", "LAMBDA_TASK_ROOT", "AWS_LAMBDA_FUNCTION_TIMEOUT", "_HANDLER")},
                    "cwd": os.getcwd(), "files": sorted(os.listdir(".")),
                    "access_key": creds.access_key, "remaining_ms": context.get_remaining_time_in_millis(),
                    "request_id": context.aws_request_id}
    """, timeout=7)
    error, body, _ = invoke(name)
    assert error is None, body
    env = body["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == name
    assert env["AWS_ENDPOINT_URL"] == localstack.endpoint_url
    assert env["AWS_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "app.handler" and env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "7"
    assert body["cwd"] == env["LAMBDA_TASK_ROOT"] and body["files"] == ["app.py"]
    assert body["access_key"] not in ("test", None)  # the role's credentials from STS, not the caller's
    assert 0 < body["remaining_ms"] <= 7000


def test_logs_reach_log_result_and_cloudwatch(deploy, invoke, aws):
    name = deploy("""
        import logging
        logging.getLogger().setLevel(logging.INFO)
        def handler(event, context):
            print("printed line")
            logging.info("logged line")
            return "ok"
    """)
    error, body, logs = invoke(name)
    assert (error, body) == (None, "ok")
    assert "printed line" in logs and "[INFO]" in logs and "logged line" in logs
    assert logs.splitlines()[0].startswith("START RequestId: ") and "REPORT RequestId: " in logs
    logs_client = aws("logs")

    def cloudwatch_has_the_line() -> bool:
        try:
            events = logs_client.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]
        except logs_client.exceptions.ResourceNotFoundException:
            return False
        return any("printed line" in e["message"] for e in events)

    assert poll_until(cloudwatch_has_the_line, ceiling=CEILING_S, every=0.2)


def test_handler_exception_is_an_unhandled_function_error(deploy, invoke):
    name = deploy("""
        def handler(event, context):
            raise ValueError("bad order id")
    """)
    error, body, logs = invoke(name)
    assert error == "Unhandled"
    assert (body["errorType"], body["errorMessage"]) == ("ValueError", "bad order id")
    assert any("app.py" in frame for frame in body["stackTrace"])
    assert "[ERROR] ValueError: bad order id" in logs


@pytest.mark.parametrize(("code", "handler", "error_type", "message"), [
    ("import no_such_module\n", "app.handler", "Runtime.ImportModuleError",
     "Unable to import module 'app': No module named 'no_such_module'"),
    ("def other(event, context):\n    return 1\n", "app.handler", "Runtime.HandlerNotFound",
     "Handler 'handler' missing on module 'app'"),
    ("def handler(event, context) return 1\n", "app.handler", "Runtime.UserCodeSyntaxError", None),
    ("def handler(event, context):\n    return 1\n", "apphandler", "Runtime.MalformedHandlerName", None),
])
def test_init_failures_have_lambdas_error_types(deploy, invoke, code, handler, error_type, message):
    name = deploy(code, handler=handler)
    for _ in range(2):  # and again: a failed init is retried in a fresh environment
        error, body, _ = invoke(name)
        assert error == "Unhandled"
        assert body["errorType"] == error_type
        if message:
            assert body["errorMessage"] == message


def test_timeout_is_enforced_and_the_next_invoke_starts_fresh(deploy, invoke):
    # The handler blocks for good: only the 1 s timeout can end this invoke (unbounded, it would outlast the
    # client's read timeout and fail the test), and Lambda's message names the limit it enforced.
    name = deploy(STATEFUL + """
import threading
_plain = handler
def handler(event, context):
    result = _plain(event, context)
    if event.get("block"):
        print("blocking for good")
        threading.Event().wait()
    return result
""", timeout=1)
    first = invoke(name)[1]
    error, body, logs = invoke(name, {"block": True})
    assert error == "Unhandled" and body["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in body["errorMessage"]
    assert "blocking for good" in logs
    assert not alive(first["pid"])
    after = invoke(name)[1]
    assert after["calls"] == 1 and after["pid"] != first["pid"]


def test_a_crashing_process_is_an_error_and_the_next_invoke_starts_fresh(deploy, invoke):
    name = deploy(STATEFUL + """
_plain = handler
def handler(event, context):
    result = _plain(event, context)
    if event.get("crash"):
        os._exit(3)
    return result
""")
    first = invoke(name)[1]
    error, body, _ = invoke(name, {"crash": True})
    assert error == "Unhandled" and body["errorType"] == "Runtime.ExitError"
    assert body["errorMessage"].endswith("Runtime exited with error: exit status 3")
    after = invoke(name)[1]
    assert after["calls"] == 1 and after["pid"] != first["pid"]


def test_parallel_invocations_get_separate_environments(deploy, invoke, tmp_path):
    # Each invoke checks in, then waits (up to a ceiling) until all three have: they overlap by construction,
    # not because a sleep guessed long enough. Environments that were shared could never all check in.
    name = deploy("""
        import os, pathlib, time
        def handler(event, context):
            folder = pathlib.Path(event["folder"])
            (folder / str(os.getpid())).touch()
            deadline = time.monotonic() + 60
            while len(list(folder.iterdir())) < 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            return os.getpid()
    """)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(lambda _: invoke(name, {"folder": str(tmp_path)}), range(3)))
    assert all(error is None for error, _, _ in results)
    assert len({pid for _, pid, _ in results}) == 3


def test_code_update_and_delete_stop_the_old_processes(deploy, invoke, aws):
    name = deploy(STATEFUL)
    old_pid = invoke(name)[1]["pid"]
    lambda_ = aws("lambda")
    lambda_.update_function_code(FunctionName=name, ZipFile=zip_code({"app.py": STATEFUL.replace("calls += 1", "calls += 10")}))
    lambda_.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 150})
    assert wait_gone(old_pid)
    new = invoke(name)[1]
    assert new["calls"] == 10 and new["pid"] != old_pid
    lambda_.delete_function(FunctionName=name)
    assert wait_gone(new["pid"])


def test_runtimes_it_cannot_run_fail_clearly_instead_of_falling_back_to_docker(deploy, aws):
    name = deploy("exports.handler = async () => 1;", runtime="nodejs20.x", handler="app.handler", wait=False)
    lambda_ = aws("lambda")
    config = poll_until(lambda: (c := lambda_.get_function_configuration(FunctionName=name))["State"] != "Pending"
                        and c, ceiling=CEILING_S, every=0.2)
    assert config, "still Pending at the ceiling"
    assert config["State"] == "Failed"
    assert "process executor runs Python zip functions only, not runtime 'nodejs20.x'" in config["StateReason"]


def function_on(instance: EmbeddedLocalStack, code: str):
    """Function "f" running ``code`` on a LocalStack of the test's own; returns a Lambda client for it."""
    session = boto3.Session(aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1")
    lambda_ = session.client("lambda", endpoint_url=instance.endpoint_url)
    role = session.client("iam", endpoint_url=instance.endpoint_url).create_role(
        RoleName="r", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    lambda_.create_function(FunctionName="f", Runtime="python3.13", Role=role, Handler="app.handler",
                            Code={"ZipFile": zip_code({"app.py": code})})
    lambda_.get_waiter("function_active_v2").wait(FunctionName="f", WaiterConfig={"Delay": 0.2})
    return lambda_


@pytest.mark.parametrize("how", ["shutdown", "kill"])
def test_localstack_exit_leaves_no_function_process_behind(tmp_path, how):
    with EmbeddedLocalStack(log_path=tmp_path / "ls.log") as instance:
        lambda_ = function_on(instance, STATEFUL)
        pid = json.loads(lambda_.invoke(FunctionName="f")["Payload"].read())["pid"]
        assert alive(pid)
        if how == "kill":  # no graceful shutdown: the lifeline pipe must still end the function
            os.kill(instance.process.pid, 9)
            instance.process.wait()
    assert wait_gone(pid)


def test_a_restart_whose_init_hangs_times_out_like_a_first_start(tmp_path):
    """LocalStack times out a first start itself; a restart after a crash is the executor's to bound."""
    marker = tmp_path / "crashed-once"
    code = f"""
import os, pathlib, threading
MARKER = pathlib.Path({str(marker)!r})
if MARKER.exists():
    threading.Event().wait()  # the re-init after the crash hangs for good: only the executor's limit ends it
def handler(event, context):
    MARKER.touch()
    os._exit(1)
"""
    with EmbeddedLocalStack(log_path=tmp_path / "ls.log", extra_env={"LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT": "2"}) as ls:
        lambda_ = function_on(ls, code)
        crash = json.loads(lambda_.invoke(FunctionName="f")["Payload"].read())
        assert crash["errorType"] == "Runtime.ExitError"
        response = lambda_.invoke(FunctionName="f")
        body = json.loads(response["Payload"].read())
        assert response.get("FunctionError") == "Unhandled"
        assert body == {"errorType": "Sandbox.Timedout", "errorMessage": "Runtime init did not finish within 2 seconds"}


def test_localstack_that_dies_while_starting_is_one_clear_error(tmp_path):
    from localstack_process_executor.launcher import LauncherError

    broken = EmbeddedLocalStack(log_path=tmp_path / "ls.log", extra_env={"GATEWAY_LISTEN": "127.0.0.1:notaport"})
    with pytest.raises(LauncherError, match=r"LocalStack exited with status \d+ while starting; see .*ls\.log"):
        broken.start(timeout=60)
    assert broken.process is None
