"""The runtime inside one execution environment: a local stand-in for Lambda's Python runtime.

Run as a script by the function's own interpreter (stdlib only, Python 3.9+). It imports
the handler once (init), tells LocalStack it is ready, then serves invocations one at a
time: LocalStack POSTs ``/invoke`` here, we answer 200 at once, run the handler, then POST
the invocation's logs and then its result (or an AWS-shaped error) back to LocalStack.
"""

import http.client
import http.server
import importlib
import json
import logging
import os
import queue
import resource
import socket
import sys
import threading
import time
import traceback
import urllib.parse

LISTEN_FD_ENV = "_PROCESS_EXECUTOR_LISTEN_FD"
LIFELINE_FD_ENV = "_PROCESS_EXECUTOR_LIFELINE_FD"


class Fault(Exception):
    """An init failure reported with Lambda's own errorType (Runtime.ImportModuleError, ...)."""

    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error_type = error_type
        self.trace = trace or []


def error_body(error_type, message, trace, request_id=None):
    body = {"errorMessage": message, "errorType": error_type, "stackTrace": trace}
    if request_id:
        body["requestId"] = request_id
    return json.dumps(body).encode("utf-8")


def exception_body(error, request_id=None):
    trace = traceback.format_list(traceback.extract_tb(error.__traceback__))
    return error_body(type(error).__name__, str(error), trace, request_id)


class LocalStack:
    """Posts to LocalStack's executor endpoint (LOCALSTACK_RUNTIME_ENDPOINT)."""

    def __init__(self, endpoint, runtime_id):
        parsed = urllib.parse.urlsplit(endpoint)
        self._host, self._port, self._prefix = parsed.hostname, parsed.port or 80, parsed.path.rstrip("/")
        self._runtime_id = runtime_id

    def post(self, path, body, content_type="application/json"):
        connection = http.client.HTTPConnection(self._host, self._port, timeout=30)
        try:
            connection.request("POST", self._prefix + path, body=body, headers={"Content-Type": content_type})
            connection.getresponse().read()
        finally:
            connection.close()

    def ready(self):
        self.post(f"/status/{self._runtime_id}/ready", b"{}")

    def init_error(self, body):
        self.post(f"/status/{self._runtime_id}/error", body)

    def finish(self, request_id, logs, body, is_error):
        # Logs first: LocalStack attaches them to the result when the result arrives.
        self.post(f"/invocations/{request_id}/logs", json.dumps({"logs": logs}).encode("utf-8"))
        self.post(f"/invocations/{request_id}/{'error' if is_error else 'response'}", body)


class Tee:
    """sys.stdout/sys.stderr: copies writes to the process log and to the current invocation's log."""

    def __init__(self, stream, capture):
        self._stream = stream
        self._capture = capture
        self.encoding = getattr(stream, "encoding", "utf-8")

    def write(self, text):
        self._capture.append(text)
        self._stream.write(text)
        return len(text)

    def flush(self):
        self._stream.flush()

    def isatty(self):
        return False

    def fileno(self):
        return self._stream.fileno()


class LambdaLogHandler(logging.Handler):
    """Lambda's Python log format, written to whatever sys.stdout is at the time."""

    def __init__(self, runtime):
        super().__init__()
        self._runtime = runtime
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record):
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        message = self.format(record).replace("\n", "\r")
        sys.stdout.write(f"[{record.levelname}]\t{stamp}\t{self._runtime.request_id or ''}\t{message}\n")


class Context:
    """The ``context`` argument of a Lambda handler."""

    def __init__(self, request_id, invoked_function_arn, deadline):
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def load_handler(spec):
    module_name, _, function_name = spec.rpartition(".")
    if not module_name or not function_name:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{spec}': not enough values to unpack (expected 2, got 1)")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as error:
        raise Fault("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {error}") from None
    except SyntaxError as error:
        trace = [f'  File "{error.filename}" Line {error.lineno}\n    {error.text}']
        raise Fault("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {error}", trace) from None
    handler = getattr(module, function_name, None)
    if handler is None:
        raise Fault("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")
    return handler


class Runtime:
    def __init__(self):
        self.request_id = None
        self.capture = []
        self.timeout = float(os.environ.get("AWS_LAMBDA_FUNCTION_TIMEOUT", "3"))
        self.version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        self.localstack = LocalStack(os.environ["LOCALSTACK_RUNTIME_ENDPOINT"], os.environ["LOCALSTACK_RUNTIME_ID"])
        self.invocations = queue.Queue()
        self.init_ms = None
        self.init_logs = ""

    def run(self):
        started = time.monotonic()
        sys.stdout = Tee(sys.__stdout__, self.capture)
        sys.stderr = Tee(sys.__stderr__, self.capture)
        logging.getLogger().addHandler(LambdaLogHandler(self))
        try:
            handler = load_handler(os.environ.get("_HANDLER", ""))
        except Fault as fault:
            self.report_init_error(error_body(fault.error_type, str(fault), fault.trace), fault.error_type, str(fault))
            return 1
        except Exception as error:  # anything the module raised at import time
            self.report_init_error(exception_body(error), type(error).__name__, str(error))
            return 1
        self.init_ms = (time.monotonic() - started) * 1000
        self.init_logs = "".join(self.capture)  # shown once, before the first START, as in Lambda
        self.serve()
        self.localstack.ready()
        while True:
            self.invoke(handler, self.invocations.get())

    def report_init_error(self, body, error_type, message):
        print(f"[ERROR] {error_type}: {message}", file=sys.stderr)
        self.localstack.init_error(body)

    def serve(self):
        listener = socket.socket(fileno=int(os.environ.pop(LISTEN_FD_ENV)))
        invocations = self.invocations

        class InvokeHandler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                invocations.put(json.loads(body))

            def log_message(self, *args):  # no access log in the function's output
                pass

        server = http.server.HTTPServer(listener.getsockname(), InvokeHandler, bind_and_activate=False)
        server.socket = listener
        threading.Thread(target=server.serve_forever, name="invoke-listener", daemon=True).start()

    def invoke(self, handler, request):
        self.request_id = request_id = request["invoke-id"]
        os.environ["_X_AMZN_TRACE_ID"] = request.get("trace-id") or ""
        self.capture.clear()
        started = time.monotonic()
        context = Context(request_id, request.get("invoked-function-arn"), started + self.timeout)
        is_error = False
        try:
            event = json.loads(request.get("payload") or "null")
            result = handler(event, context)
            try:
                body = json.dumps(result).encode("utf-8")
            except (TypeError, ValueError) as error:
                is_error = True
                body = error_body("Runtime.MarshalError", f"Unable to marshal response: {error}", [], request_id)
        except Exception as error:
            is_error = True
            body = exception_body(error, request_id)
            lines = "".join(traceback.format_exception(type(error), error, error.__traceback__))
            print(f"[ERROR] {type(error).__name__}: {error}\r{lines.rstrip().replace(chr(10), chr(13))}", file=sys.stdout)
        sys.stdout.flush()
        duration = (time.monotonic() - started) * 1000
        logs = self.report(request_id, duration)
        self.request_id = None
        self.localstack.finish(request_id, logs, body, is_error)

    def report(self, request_id, duration_ms):
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        init = f"\tInit Duration: {self.init_ms:.2f} ms" if self.init_ms is not None else ""
        init_logs, self.init_ms, self.init_logs = self.init_logs, None, ""
        return (
            init_logs
            + f"START RequestId: {request_id} Version: {self.version}\n"
            + "".join(self.capture)
            + f"END RequestId: {request_id}\n"
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Billed Duration: {int(duration_ms) + 1} ms\tMemory Size: {self.memory} MB\t"
            f"Max Memory Used: {peak_mb} MB{init}\t\n"
        )


def watch_lifeline():
    """Exit when the executor (LocalStack) goes away: its end of our lifeline pipe closes."""
    fd = int(os.environ.pop(LIFELINE_FD_ENV))

    def wait():
        while os.read(fd, 1):
            pass
        os._exit(0)

    threading.Thread(target=wait, name="lifeline", daemon=True).start()


def main():
    watch_lifeline()
    # The task root, not this file's folder, comes first on the path, as in Lambda.
    task_root = os.environ.get("LAMBDA_TASK_ROOT", os.getcwd())
    sys.path[0] = task_root
    return Runtime().run()


if __name__ == "__main__":
    sys.exit(main())
