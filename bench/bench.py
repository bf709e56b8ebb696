"""make bench: this project's handler against the seed's, side by side on one embedded LocalStack.

Both are deployed the same way (this module, tflocal apply; the seed through handler_template).
It measures and reports; it asserts nothing about timings. Prints a Markdown table and writes
it to bench/results.md.
"""

from __future__ import annotations

import base64
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "lambda_src")]  # build.py and the runtime helper are files, not packages

import build  # noqa: E402
import sealed_secrets  # noqa: E402
from localdeploy import Stack, aws_environment, invoke, retire_environments, use_project_terraform_config  # noqa: E402
from localstack_client.session import Session  # noqa: E402
from localstack_process_executor.launcher import EmbeddedLocalStack  # noqa: E402

SECRET = {"credential": "hello, world!"}
WARM_ROUNDS, WARM_PER_ROUND = 3, 100
COLD_STARTS = 7


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


REPORTED_DURATION = re.compile(r"REPORT RequestId: \S+\tDuration: ([0-9.]+) ms")


def timed_invoke(lambda_client, name: str) -> tuple[float, float]:
    """(round trip as the caller sees it, the handler's own Duration from the REPORT line), in ms."""
    started = time.perf_counter()
    error, payload, logs = invoke(lambda_client, name)
    elapsed = (time.perf_counter() - started) * 1000
    if error or payload != SECRET["credential"]:
        raise SystemExit(f"error: {name} answered {error}: {payload}")
    return elapsed, float(REPORTED_DURATION.search(logs).group(1))


def measure_functions(localstack: EmbeddedLocalStack, stacks: dict[str, Stack]) -> dict[str, dict[str, float]]:
    lambda_client = Session(localstack_host=f"127.0.0.1:{localstack.port}").client("lambda")
    results: dict[str, dict[str, float]] = {label: {} for label in stacks}
    warm: dict[str, list[float]] = {label: [] for label in stacks}
    duration: dict[str, list[float]] = {label: [] for label in stacks}
    decrypts: dict[str, list[int]] = {label: [] for label in stacks}
    for label, stack in stacks.items():
        timed_invoke(lambda_client, stack.function_name)  # the cold start, not counted as warm
    for round_ in range(WARM_ROUNDS):  # alternate blocks so drift hits both alike
        for label, stack in stacks.items():
            before = localstack.served("kms.Decrypt")
            for _ in range(WARM_PER_ROUND):
                round_trip, handler_ms = timed_invoke(lambda_client, stack.function_name)
                warm[label].append(round_trip)
                duration[label].append(handler_ms)
            time.sleep(0.3)  # LocalStack logs a request after answering it
            decrypts[label].append(localstack.served("kms.Decrypt") - before)
        log(f"warm round {round_ + 1}/{WARM_ROUNDS} done")
    cold: dict[str, list[float]] = {label: [] for label in stacks}
    for attempt in range(COLD_STARTS):
        for label, stack in stacks.items():
            retire_environments(lambda_client, stack.function_name)
            cold[label].append(timed_invoke(lambda_client, stack.function_name)[0])
        log(f"cold start {attempt + 1}/{COLD_STARTS} done")
    for label in stacks:
        results[label] = {
            "warm_median": statistics.median(warm[label]),
            "warm_p90": percentile(warm[label], 0.9),
            "warm_n": len(warm[label]),
            "duration_median": statistics.median(duration[label]),
            "decrypts_per_100": statistics.median(decrypts[label]) * 100 / WARM_PER_ROUND,
            "cold_median": statistics.median(cold[label]),
        }
    return results


def measure_cached_read() -> tuple[float, float, float]:
    """ns per call: SealedSecrets.get, get_secret, and a plain dict lookup (the floor)."""

    class OneShotKms:
        def decrypt(self, **_):
            return {"Plaintext": b"hello, world!"}

    secrets = sealed_secrets.register({"credential": "QQ=="})
    secrets._client = OneShotKms()
    secrets._function_name = "bench"
    secrets.get("credential")
    plain = {"credential": "hello, world!"}
    number = 1_000_000

    def per_call(statement) -> float:
        return statistics.median(timeit.repeat(statement, number=number, repeat=7)) / number * 1e9

    return (per_call(lambda: secrets.get("credential")), per_call(lambda: sealed_secrets.get_secret("credential")),
            per_call(lambda: plain.get("credential")))


def measure_build() -> dict[str, object]:
    ciphertexts = {"credential": base64.b64encode(os.urandom(184)).decode()}
    args = [f"--ciphertext=credential={ciphertexts['credential']}"]
    with tempfile.TemporaryDirectory() as scratch:
        output = Path(scratch) / "in-process.zip"

        def build_once() -> None:
            build.write_atomically(output, build.build_zip(build.package_entries(build.DEFAULT_TEMPLATE, ciphertexts)))

        in_process = statistics.median(timeit.repeat(build_once, number=1, repeat=50)) * 1000
        digests, cli_times = [], []
        for index, (umask, tz) in enumerate([(0o022, "UTC"), (0o077, "Pacific/Kiritimati"), (0o002, "America/Adak")]):
            workdir = Path(scratch) / f"dir {index}"
            workdir.mkdir()
            started = time.perf_counter()
            result = subprocess.run([sys.executable, str(ROOT / "build.py"), *args, "--output", "out.zip"],
                                    cwd=workdir, env={**os.environ, "TZ": tz}, capture_output=True, text=True,
                                    preexec_fn=lambda umask=umask: os.umask(umask), check=True)
            cli_times.append((time.perf_counter() - started) * 1000)
            digests.append(result.stdout.split()[-1])
    return {"in_process_ms": in_process, "cli_ms": statistics.median(cli_times), "digests": digests}


def measure_plan(stack: Stack) -> tuple[int, float]:
    times, codes = [], []
    for _ in range(3):
        started = time.perf_counter()
        codes.append(stack.plan_exit_code())
        times.append(time.perf_counter() - started)
    return max(codes), statistics.median(times)


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {memory_gib:.0f} GiB, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    use_project_terraform_config()
    started = time.monotonic()
    log("measuring build.py and the cached read")
    build_results = measure_build()
    ours_ns, function_ns, floor_ns = measure_cached_read()
    localstack = EmbeddedLocalStack()
    log(f"starting LocalStack on {localstack.endpoint_url}")
    stacks: dict[str, Stack] = {}
    try:
        localstack.start()
        with aws_environment(localstack.client_env()):
            for label, template in [("ours", None), ("seed", str(ROOT / "bench" / "seed" / "handler.py.tmpl"))]:
                log(f"tflocal apply: {label}")
                extra = {"handler_template": template} if template else {}
                stacks[label] = Stack(f"bench-{label}", secrets=SECRET, extra_vars=extra).init().apply()
            log("timing terraform plan after apply")  # first: the cold-start runs below touch the function
            plan_code, plan_seconds = measure_plan(stacks["ours"])
            functions = measure_functions(localstack, stacks)
            for stack in stacks.values():
                stack.destroy()
    finally:
        for stack in stacks.values():
            stack.remove()
        localstack.stop()
    ours, seed = functions["ours"], functions["seed"]
    identical = len(set(build_results["digests"])) == 1
    rows = [
        ("warm invoke, median (ms)", f"{ours['warm_median']:.2f}", f"{seed['warm_median']:.2f}",
         f"{ours['warm_median'] / seed['warm_median']:.2f}×"),
        ("warm invoke, p90 (ms)", f"{ours['warm_p90']:.2f}", f"{seed['warm_p90']:.2f}",
         f"{ours['warm_p90'] / seed['warm_p90']:.2f}×"),
        ("handler Duration in the REPORT line, warm median (ms)", f"{ours['duration_median']:.3f}",
         f"{seed['duration_median']:.3f}", f"{ours['duration_median'] / seed['duration_median']:.3f}×"),
        ("KMS Decrypt calls per 100 warm invokes", f"{ours['decrypts_per_100']:.0f}", f"{seed['decrypts_per_100']:.0f}", ""),
        (f"cold start, first invoke of a fresh environment, median of {COLD_STARTS} (ms)",
         f"{ours['cold_median']:.0f}", f"{seed['cold_median']:.0f}", f"{ours['cold_median'] / seed['cold_median']:.2f}×"),
    ]
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')} by `make bench` on {machine()}; LocalStack 2026.3.0 in host mode "
        f"with the process executor; {ours['warm_n']} warm invocations per handler in {WARM_ROUNDS} alternating blocks.",
        "",
        "| measure | ours | seed | ours/seed |",
        "|---|---:|---:|---:|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        "| measure | value |",
        "|---|---:|",
        f"| cached `SealedSecrets.get` read (ns, median of 7×10⁶) | {ours_ns:.0f} |",
        f"| cached `get_secret` read (ns) | {function_ns:.0f} |",
        f"| dict lookup, the floor (ns) | {floor_ns:.0f} |",
        f"| build.py in-process build, median of 50 (ms) | {build_results['in_process_ms']:.2f} |",
        f"| `python build.py` wall time incl. interpreter start, median of 3 (ms) | {build_results['cli_ms']:.0f} |",
        f"| byte-identical zips across 3 directories, umasks 022/077/002, TZ UTC/Kiritimati/Adak | {'yes' if identical else 'NO'} (`{build_results['digests'][0]}`) |",
        f"| `terraform plan` after apply: exit code (0 = no changes) | {plan_code} |",
        f"| `terraform plan` after apply: wall time, median of 3 (s) | {plan_seconds:.1f} |",
    ]
    report = "\n".join(lines) + "\n"
    (ROOT / "bench" / "results.md").write_text(report)
    print(report)
    log(f"done in {time.monotonic() - started:.0f}s; written to bench/results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
