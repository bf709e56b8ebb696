"""make bench: four functions on one embedded LocalStack, measured in one run, drift shared alike.

    floor           opens no secret (same packaging path, nothing of ours runs)    bench/floor/
    ours            sealed_secrets.get_secret: one KMS Decrypt per container       bench/ours/
    seed            a new boto3 KMS client and a Decrypt on every invoke           bench/seed/
    secretsmanager  Powertools' parameters.get_secret, boto3, cached max_age       bench/powertools/

and, for cold starts only, the variants of issue 16:

    floor-imports   the floor plus ~150 ms of library imports at init               bench/floor_imports/
    ours-imports    ours, register() then the same imports; prefetch off            bench/ours_imports/
    ours-prefetch   the same with the module's prefetch_secrets = true              bench/ours_imports/
    ours-imports-rtt, ours-prefetch-rtt
                    the same two, their KMS endpoint behind bench/relay.py: 20 ms round trips, so the first
                    Decrypt waits on the network as on AWS (the floor + imports makes no network call)
    ours-small      ours trusting "the small bundle": its aws_roots.pem holds LocalStack's CA (bench's own
                    copy of the source), its system store a system-sized bundle plus that CA
    ours-system     ours with AWS_CA_BUNDLE = the system-sized bundle plus LocalStack's CA
    seed-system     the seed with AWS_CA_BUNDLE = the same bundle (boto3 loads it whole, as on AWS)

All four are deployed by this module (tflocal apply, handler_template, same runtime and memory),
and reach KMS and Secrets Manager over verified TLS, as on AWS.
It measures cold starts (retire the environments, then one invoke), warm invokes, the REPORT
line's Duration and Init Duration, the AWS API calls LocalStack served, and a
sweep of parallel callers. It reports and asserts nothing: it prints Markdown, writes
bench/results.md and bench/results.png. Small counts for development:

    python bench/bench.py --cold-starts=3 --warm-rounds=1 --per-block=10 --sweep=1,2
"""

from __future__ import annotations

import argparse
import base64
import http.client
import importlib.util
import os
import platform
import random
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import report  # bench/ is this script's folder, first on sys.path
from localdeploy import DeployError, Stack, aws_environment, invoke, retire_environments, use_project_terraform_config
from localstack_client.session import Session
from localstack_process_executor.launcher import DEFAULT_SERVICES, EmbeddedLocalStack, LauncherError
from measured import COUNTED, INVOKE, Measured, Sample
from relay import LatencyRelay

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RUNTIME, MEMORY_MB = "python3.13", 128
SECRET_NAME, SECRET_VALUE = "credential", "hello, world!"  # a dummy: the handlers echo it so we can check them
SM_SECRET_ID = "bench/credential"  # the Secrets Manager copy; bench/powertools/handler.py.tmpl names it too
SERVICES = (*DEFAULT_SERVICES, "secretsmanager")
# The relayed variants' one-way delay. What it models: the whole wait of a cold start's first Decrypt on AWS, a new
# TCP + TLS connection and one KMS request, put at about 64 ms (against about 6 ms on a warm connection) by the
# figures issue 16 cites. That is three round trips here (TCP handshake, TLS 1.3 handshake, the request): 3 × 20 ms
# = 60 ms. It is not a same-region RTT to KMS (a few ms, which would leave nothing to hide); it stands in for the
# network and KMS's own time together, which LocalStack on loopback does not have.
ONE_WAY_MS = 10


class BenchError(Exception):
    """The run cannot go on (a function answered wrongly, LocalStack did not log a request, ...)."""


# How a function verifies LocalStack's certificate (KMS's and Secrets Manager's, as on AWS):
GATEWAY = "gateway"  # AWS_CA_BUNDLE = LocalStack's one certificate (the four main functions: flattering)
SYSTEM = "system"  # AWS_CA_BUNDLE = the system's CA bundle plus LocalStack's certificate
SMALL = "small"  # no AWS_CA_BUNDLE; the helper's aws_roots.pem = LocalStack's certificate, SSL_CERT_FILE = SYSTEM's


@dataclass(frozen=True)
class Function:
    label: str
    template: Path
    answer: str  # what a correct invoke returns
    trust: str = GATEWAY
    variables: tuple[tuple[str, Any], ...] = ()  # more module inputs
    relayed: bool = False  # KMS through the latency relay (ONE_WAY_MS each way)


FUNCTIONS = (
    Function("floor", BENCH / "floor" / "handler.py.tmpl", "floor"),
    Function("ours", BENCH / "ours" / "handler.py.tmpl", SECRET_VALUE),
    Function("seed", BENCH / "seed" / "handler.py.tmpl", SECRET_VALUE),
    Function("secretsmanager", BENCH / "powertools" / "handler.py.tmpl", SECRET_VALUE),
)
IMPORTS_TEMPLATE = BENCH / "ours_imports" / "handler.py.tmpl"
VARIANTS = (  # cold starts only, measured in the same rounds as FUNCTIONS
    Function("floor-imports", BENCH / "floor_imports" / "handler.py.tmpl", "floor"),
    Function("ours-imports", IMPORTS_TEMPLATE, SECRET_VALUE, variables=(("prefetch_secrets", False),)),
    Function("ours-prefetch", IMPORTS_TEMPLATE, SECRET_VALUE, variables=(("prefetch_secrets", True),)),
    Function("ours-imports-rtt", IMPORTS_TEMPLATE, SECRET_VALUE, variables=(("prefetch_secrets", False),),
             relayed=True),
    Function("ours-prefetch-rtt", IMPORTS_TEMPLATE, SECRET_VALUE, variables=(("prefetch_secrets", True),),
             relayed=True),
    Function("ours-small", BENCH / "ours" / "handler.py.tmpl", SECRET_VALUE, trust=SMALL),
    Function("ours-system", BENCH / "ours" / "handler.py.tmpl", SECRET_VALUE, trust=SYSTEM),
    Function("seed-system", BENCH / "seed" / "handler.py.tmpl", SECRET_VALUE, trust=SYSTEM),
)
COLD = FUNCTIONS + VARIANTS


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


REPORT_DURATION = re.compile(r"^REPORT RequestId: \S+\tDuration: ([0-9.]+) ms", re.MULTILINE)
REPORT_INIT = re.compile(r"^REPORT .*\tInit Duration: ([0-9.]+) ms", re.MULTILINE)  # first invoke of an environment


def timed_invoke(lambda_client: Any, function: Function) -> Sample:
    started = time.perf_counter()
    error, payload, logs = invoke(lambda_client, f"bench-{function.label}")
    round_trip = (time.perf_counter() - started) * 1000
    if error or payload != function.answer:  # the payload is never echoed: it may hold the secret
        raise BenchError(f"{function.label} answered {error or 'an unexpected payload'}")
    duration, init = REPORT_DURATION.search(logs), REPORT_INIT.search(logs)
    if not duration:
        raise BenchError(f"{function.label}: no REPORT line in the invoke's log tail")
    return Sample(round_trip, float(duration[1]), float(init[1]) if init else None)


class RequestLog:
    """API calls LocalStack served, from its request log (EmbeddedLocalStack.served)."""

    def __init__(self, localstack: EmbeddedLocalStack) -> None:
        self.localstack = localstack

    def counts(self) -> dict[str, int]:
        return {operation: self.localstack.served(operation) for operation in (INVOKE, *COUNTED)}

    def settled(self, before: dict[str, int], invokes: int, timeout_s: float = 10.0) -> dict[str, int]:
        """Counts once LocalStack has logged ``invokes`` more Invokes than ``before``.

        It logs a request after answering it, and a function's own KMS or Secrets Manager call is
        answered before the Invoke that made it, so this is a barrier for the calls inside too.
        """
        deadline = time.monotonic() + timeout_s
        while (now := self.counts())[INVOKE] < before[INVOKE] + invokes:
            if time.monotonic() > deadline:
                raise BenchError(f"LocalStack logged {now[INVOKE] - before[INVOKE]} of {invokes} invokes")
            time.sleep(0.02)
        return now

    @staticmethod
    def add(total: dict[str, int], before: dict[str, int], after: dict[str, int]) -> None:
        for operation in COUNTED:
            total[operation] += after[operation] - before[operation]


def order(round_: int, functions: Sequence[Function] = FUNCTIONS) -> list[Function]:
    """The functions in a fresh order each round (seeded, so reruns repeat it): none always goes first,
    and none always runs right after a particular other (the seed's KMS calls, say)."""
    return random.Random(round_).sample(list(functions), len(functions))


def measure_cold_starts(client: Any, requests: RequestLog, results: dict[str, Measured], rounds: int) -> None:
    for round_ in range(rounds):
        for function in order(round_, COLD):
            retire_environments(client, f"bench-{function.label}")
            before = requests.counts()
            results[function.label].cold.append(timed_invoke(client, function))
            requests.add(results[function.label].cold_calls, before, requests.settled(before, 1))
        log(f"cold starts: round {round_ + 1}/{rounds}")


def measure_warm(client: Any, requests: RequestLog, results: dict[str, Measured], rounds: int, per_block: int) -> None:
    for function in FUNCTIONS:  # the environment from the last cold start: warm it, uncounted
        timed_invoke(client, function)
    for round_ in range(rounds):  # alternating blocks, so drift hits all four alike
        for function in order(round_):
            before = requests.counts()
            results[function.label].warm += [timed_invoke(client, function) for _ in range(per_block)]
            requests.add(results[function.label].warm_calls, before, requests.settled(before, per_block))
        if (round_ + 1) % 10 == 0 or round_ + 1 == rounds:
            log(f"warm invokes: round {round_ + 1}/{rounds}")


def parallel_invokes(clients: Sequence[Any], function: Function, count: int) -> tuple[float, list[float]]:
    """``count`` invokes from ``len(clients)`` callers at once: (wall seconds, round trips in ms)."""
    shares = [count // len(clients) + (index < count % len(clients)) for index in range(len(clients))]

    def caller(client: Any, share: int) -> list[float]:
        return [timed_invoke(client, function).round_trip_ms for _ in range(share)]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(clients)) as pool:
        latencies = [ms for result in pool.map(caller, clients, shares) for ms in result]
    return time.perf_counter() - started, latencies


def measure_sweep(clients: Sequence[Any], results: dict[str, Measured], callers: Sequence[int], per_caller: int,
                  rounds: int = 3) -> None:
    """Throughput and latency at each width, in alternating rounds like the warm blocks; invokes/s = all
    invokes ÷ all the wall time of that function's rounds."""
    for width in callers:
        for function in FUNCTIONS:  # bring up `width` warm environments first, uncounted
            parallel_invokes(clients[:width], function, 2 * width)
        walls = {function.label: 0.0 for function in FUNCTIONS}
        latencies: dict[str, list[float]] = {function.label: [] for function in FUNCTIONS}
        for round_ in range(rounds):
            for function in order(round_):
                wall, round_trips = parallel_invokes(clients[:width], function, max(1, per_caller // rounds) * width)
                walls[function.label] += wall
                latencies[function.label] += round_trips
        for function in FUNCTIONS:
            results[function.label].sweep[width] = (len(latencies[function.label]) / walls[function.label],
                                                    latencies[function.label])
        log(f"sweep: {width} parallel callers")


# --- measures outside LocalStack ------------------------------------------------------------


def load_helper() -> ModuleType:
    """lambda_src/sealed_secrets/ is a package in the source tree, not an installed one: load it by path."""
    folder = ROOT / "lambda_src" / "sealed_secrets"
    spec = importlib.util.spec_from_file_location("sealed_secrets", folder / "__init__.py",
                                                  submodule_search_locations=[str(folder)])
    module = importlib.util.module_from_spec(spec)
    sys.modules["sealed_secrets"] = module  # its submodules import it by name
    spec.loader.exec_module(module)
    return module


def measure_cached_read() -> tuple[float, float]:
    """ns per call: a cached SealedSecrets.get, and a plain dict lookup (the floor)."""

    class OneShotKms:  # a handler's own client: answers the first Decrypt, then the cache serves
        def decrypt(self, **_: Any) -> dict[str, bytes]:
            return {"Plaintext": SECRET_VALUE.encode()}

    secrets = load_helper().SealedSecrets({SECRET_NAME: "QQ=="}, client=OneShotKms(), function_name="bench")
    secrets.get(SECRET_NAME)
    plain = {SECRET_NAME: SECRET_VALUE}
    number = 1_000_000

    def per_call(statement: Callable[[], object]) -> float:
        return statistics.median(timeit.repeat(statement, number=number, repeat=7)) / number * 1e9

    return per_call(lambda: secrets.get(SECRET_NAME)), per_call(lambda: plain.get(SECRET_NAME))


def measure_build() -> dict[str, Any]:
    """``python build.py`` from three folders with different umasks and time zones: time and digests."""
    blob = base64.b64encode(os.urandom(184)).decode()
    digests, times = [], []
    with tempfile.TemporaryDirectory() as scratch:
        for index, (umask, zone) in enumerate([(0o022, "UTC"), (0o077, "Pacific/Kiritimati"), (0o002, "America/Adak")]):
            workdir = Path(scratch) / f"dir {index}"
            workdir.mkdir()
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, str(ROOT / "build.py"), f"--ciphertext={SECRET_NAME}={blob}", "--output=out.zip",
                 "--key-arn=arn:aws:kms:us-east-1:000000000000:key/00000000-0000-0000-0000-000000000000"],
                cwd=workdir, env={**os.environ, "TZ": zone}, capture_output=True, text=True,
                preexec_fn=lambda umask=umask: os.umask(umask),
            )
            times.append((time.perf_counter() - started) * 1000)
            if result.returncode != 0:
                raise BenchError(f"build.py failed: {result.stderr.strip()}")
            digests.append(result.stdout.split()[-1])
    return {"cli_ms": statistics.median(times), "digests": digests}


def measure_plan(stack: Stack) -> tuple[int, float]:
    """``terraform plan`` right after apply: the worst exit code of three (0 = no changes), median seconds."""
    times, codes = [], []
    for _ in range(3):
        started = time.perf_counter()
        codes.append(stack.plan_exit_code())
        times.append(time.perf_counter() - started)
    return max(codes), statistics.median(times)


MODULE_PATHS = ("main.tf", "kms.tf", "iam.tf", "package.tf", "variables.tf", "outputs.tf", "versions.tf", "build.py", "build_rules.json", "lambda_src", "bench")


def source() -> str:
    """The commit measured, and whether the module or the bench differed from it in the working tree."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = git("status", "--porcelain", "--", *MODULE_PATHS, ":(exclude)bench/results.*").splitlines()
    return f"commit {commit}" + (f" with uncommitted changes to {', '.join(line[3:] for line in changed)}"
                                 if changed else "")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{cpu}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}")


# --- the run ---------------------------------------------------------------------------------


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def callers_list(text: str) -> list[int]:
    return [positive(part) for part in text.split(",")]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, not argparse's usage block
        print(f"error: {message}; see python bench/bench.py --help", file=sys.stderr)
        sys.exit(2)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = _Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-starts", type=positive, default=25, help="cold starts per function (default 25)")
    parser.add_argument("--warm-rounds", type=positive, default=30, help="rounds of warm blocks, one per function each (default 30)")
    parser.add_argument("--per-block", type=positive, default=20, help="invokes per warm block (default 20)")
    parser.add_argument("--sweep", type=callers_list, default=[1, 2, 4, 8], help="parallel callers (default 1,2,4,8)")
    parser.add_argument("--per-caller", type=positive, default=48, help="sweep invokes per caller, over 3 rounds (default 48)")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Trust:
    """LocalStack's certificate, and the system's CA bundle with it appended (both files in LocalStack's folder)."""

    endpoints: dict[str, str]
    gateway: Path
    system: Path

    def environment(self, trust: str) -> dict[str, str]:
        """A function's environment: KMS and Secrets Manager over verified TLS, trusting as ``trust`` says."""
        if trust == GATEWAY:
            return {**self.endpoints, "AWS_CA_BUNDLE": str(self.gateway)}
        if trust == SYSTEM:  # botocore reads AWS_CA_BUNDLE, the helper too; SSL_CERT_FILE is OpenSSL's default
            return {**self.endpoints, "AWS_CA_BUNDLE": str(self.system), "SSL_CERT_FILE": str(self.system)}
        return {**self.endpoints, "SSL_CERT_FILE": str(self.system)}  # SMALL: the helper's aws_roots.pem first


def gateway_tls(localstack: EmbeddedLocalStack) -> Trust:
    """The functions reach KMS and Secrets Manager over verified TLS, as on AWS.

    LocalStack's gateway also speaks HTTPS on its port, with a self-signed certificate for
    ``localhost``. The four main functions trust exactly that certificate (AWS_CA_BUNDLE, which the runtime
    helper and botocore both read): that spares them the system-sized bundle they load on AWS. The trust
    variants load the system's bundle with that certificate appended, or (ours-small) the certificate alone
    as the helper's small bundle. Plain HTTP would spare ours and boto3 the TLS setup they pay on AWS.
    """
    gateway = localstack.root / "gateway.crt"
    certificate = ssl.get_server_certificate(("localhost", localstack.port))
    gateway.write_text(certificate)
    system_cafile = ssl.get_default_verify_paths().cafile
    if not system_cafile or not Path(system_cafile).is_file():
        raise BenchError("no system CA bundle (ssl.get_default_verify_paths().cafile); install ca-certificates")
    system = localstack.root / "system-plus-gateway.pem"
    system.write_text(Path(system_cafile).read_text().rstrip("\n") + "\n" + certificate)
    endpoint = f"https://localhost:{localstack.port}"
    return Trust({"AWS_ENDPOINT_URL_KMS": endpoint, "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint}, gateway, system)


def certificates_in(bundle: Path) -> int:
    return bundle.read_text().count("-----BEGIN CERTIFICATE-----")


def template_libraries(template: Path) -> tuple[str, ...]:
    """The LIBRARIES tuple a handler template imports at init (read, not run)."""
    import ast

    for node in ast.parse(template.read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(target, "id", "") for target in node.targets] == ["LIBRARIES"]:
            return tuple(ast.literal_eval(node.value))
    raise BenchError(f"{template.relative_to(ROOT)} has no LIBRARIES tuple")


def same_libraries() -> tuple[str, ...]:
    """The floor's imports must be ours': the prefetch comparison subtracts one from the other."""
    floor, ours = (template_libraries(function.template) for function in VARIANTS[:2])
    if floor != ours:
        raise BenchError("bench/floor_imports and bench/ours_imports import different LIBRARIES; make them equal")
    return floor


def import_cost_ms(libraries: Sequence[str]) -> float:
    """What importing ``libraries`` costs a fresh interpreter (the functions' own): ms, median of 5."""
    code = ("import importlib, sys, time; t = time.perf_counter(); "
            "[importlib.import_module(name) for name in sys.argv[1:]]; print((time.perf_counter() - t) * 1000)")
    runs = [subprocess.run([sys.executable, "-c", code, *libraries], capture_output=True, text=True, check=True)
            for _ in range(5)]
    return statistics.median(float(run.stdout) for run in runs)


def ca_bundle_cost_ms(bundle: str) -> float:
    """What the functions here are spared: building a TLS context from the system's CA bundle rather than
    from the one-certificate bundle above. ms, fresh interpreters, median of 5 each."""
    code = "import ssl, sys, time; t = time.perf_counter(); ssl.create_default_context(cafile=sys.argv[1] or None); " \
           "print((time.perf_counter() - t) * 1000)"

    def median_ms(cafile: str) -> float:
        runs = [subprocess.run([sys.executable, "-c", code, cafile], capture_output=True, text=True, check=True)
                for _ in range(5)]
        return statistics.median(float(run.stdout) for run in runs)

    return median_ms("") - median_ms(bundle)


def new_connection_ms(port: int, cafile: Path, requests: int = 1) -> float:
    """A new verified TLS connection to LocalStack on ``port`` and ``requests`` requests on it (its health
    check): ms, median of 5. Through the relay's port, that is what the relayed first Decrypt waits for."""
    def once() -> float:
        started = time.perf_counter()
        connection = http.client.HTTPSConnection("localhost", port, timeout=10,
                                                 context=ssl.create_default_context(cafile=str(cafile)))
        try:
            for _ in range(requests):
                connection.request("GET", "/_localstack/health")
                connection.getresponse().read()
        finally:
            connection.close()
        return (time.perf_counter() - started) * 1000

    return statistics.median(once() for _ in range(5))


def check_small_bundle(client: Any, function: Function, trust: Trust) -> None:
    """ours-small must verify LocalStack through its aws_roots.pem alone: one invoke while its system store is
    the host's own (which lacks LocalStack's certificate). An answer proves the small bundle did it."""
    use_gateway_tls(client, function, {**trust.endpoints})
    timed_invoke(client, function)
    log(f"{function.label}: verified LocalStack with its small bundle alone")


def use_gateway_tls(client: Any, function: Function, environment: dict[str, str]) -> None:
    """Add ``environment`` to the deployed function, outside Terraform: the module rightly refuses endpoint
    and CA-bundle variables (they could send the Decrypt elsewhere); these name the same LocalStack the
    function already talks to, over HTTPS. Done after the plan check, before the first measured invoke."""
    name = f"bench-{function.label}"
    current = client.get_function_configuration(FunctionName=name).get("Environment", {}).get("Variables", {})
    client.update_function_configuration(FunctionName=name, Environment={"Variables": {**current, **environment}})
    client.get_waiter("function_updated_v2").wait(FunctionName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})


def deploy(function: Function, trust: Trust) -> Stack:
    log(f"tflocal apply: {function.label}")
    variables = {"handler_template": str(function.template), "runtime": RUNTIME, "memory_size": MEMORY_MB,
                 **dict(function.variables)}
    stack = Stack(f"bench-{function.label}", secrets={SECRET_NAME: SECRET_VALUE}, extra_vars=variables)
    try:
        if function.trust == SMALL:  # in the stack's own copy of the source, never in lambda_src/
            (stack.workdir / "lambda_src" / "sealed_secrets" / "aws_roots.pem").write_text(trust.gateway.read_text())
        return stack.init().apply()
    except BaseException:
        stack.remove()
        raise


def run(args: argparse.Namespace) -> tuple[dict[str, Measured], dict[str, Any]]:
    localstack = EmbeddedLocalStack(services=SERVICES)
    stacks: dict[str, Stack] = {}
    context: dict[str, Any] = {"loads": {}, "one_way_ms": ONE_WAY_MS}
    relay: LatencyRelay | None = None
    try:
        log(f"starting LocalStack on {localstack.endpoint_url} with {', '.join(SERVICES)}")
        localstack.start()
        session = Session(localstack_host=f"127.0.0.1:{localstack.port}")
        trust = gateway_tls(localstack)
        try:
            relay = LatencyRelay(localstack.port, ONE_WAY_MS / 1000).start()
        except RuntimeError as error:
            raise BenchError(str(error)) from None
        log(f"latency relay on 127.0.0.1:{relay.port}, {ONE_WAY_MS} ms each way")
        context["new_connection_ms"] = {
            "direct": new_connection_ms(localstack.port, trust.gateway),
            "relayed": new_connection_ms(relay.port, trust.gateway),
            "relayed, 2 requests": new_connection_ms(relay.port, trust.gateway, requests=2),
        }
        calibration_connections = relay.connections
        context["ca_bundle_ms"] = ca_bundle_cost_ms(str(trust.gateway))
        context["system_certificates"] = certificates_in(trust.system)
        context["import_ms"] = import_cost_ms(same_libraries())
        context["libraries"] = len(same_libraries())
        with aws_environment(localstack.client_env()):
            session.client("secretsmanager").create_secret(Name=SM_SECRET_ID, SecretString=SECRET_VALUE)
            for function in COLD:
                stacks[function.label] = deploy(function, trust)
            log("terraform plan after apply (before the bench changes the functions' configuration)")
            context["plan"] = measure_plan(stacks["ours"])
        clients = [session.client("lambda") for _ in range(max(args.sweep))]
        # The executor starts each function with its configured variables only (no AWS_CA_BUNDLE or SSL_CERT_FILE
        # of this process's): a function's trust is what trust.environment() gives it.
        for function in COLD:
            if function.trust == SMALL:
                check_small_bundle(clients[0], function, trust)
            environment = trust.environment(function.trust)
            if function.relayed:  # the same LocalStack, through the relay; its certificate names localhost too
                environment["AWS_ENDPOINT_URL_KMS"] = f"https://localhost:{relay.port}"
            use_gateway_tls(clients[0], function, environment)
        requests = RequestLog(localstack)
        results = {function.label: Measured() for function in COLD}
        context["loads"]["start"] = os.getloadavg()
        measure_cold_starts(clients[0], requests, results, args.cold_starts)
        context["loads"]["after cold starts"] = os.getloadavg()
        context["relay_connections"] = relay.connections - calibration_connections
        context["relay_refused"] = relay.refused
        measure_warm(clients[0], requests, results, args.warm_rounds, args.per_block)
        context["loads"]["after warm"] = os.getloadavg()
        measure_sweep(clients, results, args.sweep, args.per_caller)
        context["loads"]["end"] = os.getloadavg()
        return results, context
    finally:
        if relay:
            relay.stop()
        for stack in stacks.values():
            stack.remove()
        localstack.stop()  # it takes its functions' processes with it


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report.check_plotting()  # fail now, not after minutes of measuring
    use_project_terraform_config()
    started, measured_source = time.monotonic(), source()  # what gets deployed: the working tree, now
    try:
        log("measuring build.py and the cached read")
        build = measure_build()
        cached_ns, dict_ns = measure_cached_read()
        results, context = run(args)
    except (BenchError, DeployError, LauncherError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    header = (
        f"Measured {time.strftime('%Y-%m-%d')} by `make bench` on {machine()}; LocalStack 2026.3.0 in host mode "
        f"with the process executor; {RUNTIME}, {MEMORY_MB} MB for all {len(results)} functions, which reach KMS and "
        f"Secrets Manager over verified TLS; {measured_source}."
    )
    text = report.markdown(header, results, context, args, {"cached_ns": cached_ns, "dict_ns": dict_ns, **build})
    (BENCH / "results.md").write_text(text)
    report.plot(results, args, BENCH / "results.png")
    print(text)
    log(f"done in {time.monotonic() - started:.0f}s; written to bench/results.md and bench/results.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
