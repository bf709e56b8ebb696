"""make bench's output: the Markdown for bench/results.md and the PNG plot. Formatting only."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import costs
import stats
from measured import GET_SECRET_VALUE, KMS_DECRYPT, Measured

TITLES = {"floor": "floor", "ours": "ours", "seed": "seed", "secretsmanager": "Secrets Manager + Powertools"}
COLD_TARGET, WARM_TARGET = 0.25, 1.05
CHURN = costs.Churn()
TARGET_NAMES = {"cold": "the cold-start target", "warm": "the warm target", "kms": "0 KMS calls warm"}
PREFETCH_TARGET, HONEST_TRUST_TARGET = 0.2, 0.15
VARIANT_TITLES = {  # issue 16's cold-start variants, measured in the same rounds as the four above
    "floor": "floor",
    "floor-imports": "floor + imports",
    "ours": "ours (trusts LocalStack's one certificate)",
    "ours-imports": "ours + imports, prefetch off",
    "ours-prefetch": "ours + imports, prefetch on",
    "ours-imports-rtt": "ours + imports, prefetch off, KMS behind a 20 ms round trip",
    "ours-prefetch-rtt": "ours + imports, prefetch on, KMS behind a 20 ms round trip",
    "ours-small": "ours, small bundle (LocalStack's CA as aws_roots.pem; system-sized store behind it)",
    "ours-system": "ours, AWS_CA_BUNDLE = system-sized bundle + LocalStack's CA",
    "seed": "seed (trusts LocalStack's one certificate)",
    "seed-system": "seed, AWS_CA_BUNDLE = system-sized bundle + LocalStack's CA",
}


def check_plotting() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise SystemExit("error: matplotlib is not installed; make bench installs requirements-bench.txt") from None


# --- numbers -----------------------------------------------------------------------------------


def number(value: float) -> str:
    """Two significant figures for small values, none wasted on large ones: 0.00028, 3.6, 78,840."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return f"{value:.2g}"


def usd(value: float) -> str:
    if value >= 100:
        return f"${value:,.0f}"
    return f"${value:.2f}" if value >= 1 else f"${number(value)}"


def percent(fraction: float) -> str:
    return "< 0.001 %" if 0 < fraction < 1e-5 else f"{number(fraction * 100)} %"


def per_100(calls: int, invokes: int) -> float:
    return calls * 100 / invokes


def api_calls(measured: Measured) -> costs.ApiCalls:
    """The measured calls of one function, as the cost model takes them."""
    warm, cold = len(measured.warm), len(measured.cold)
    return costs.ApiCalls(
        kms_per_invoke=measured.warm_calls[KMS_DECRYPT] / warm,
        kms_per_cold_start=measured.cold_calls[KMS_DECRYPT] / cold,
        gets_per_invoke=measured.warm_calls[GET_SECRET_VALUE] / warm,
        gets_per_cold_start=measured.cold_calls[GET_SECRET_VALUE] / cold,
    )


# --- Markdown ----------------------------------------------------------------------------------


def table(head: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> list[str]:
    align = align or "l" + "r" * (len(head) - 1)
    rule = "|".join("---" if side == "l" else "---:" for side in align)
    return [f"| {' | '.join(head)} |", f"|{rule}|", *(f"| {' | '.join(row)} |" for row in rows)]


def measures_table(results: dict[str, Measured]) -> list[str]:
    """One row per measure, one column per function; after the floor, each value (minus the floor)."""
    rows: list[tuple[str, Callable[[Measured], float], Callable[[float], str]]] = [
        ("cold start, round trip, median (ms)", lambda m: stats.Summary.of(rt(m.cold)).median, fixed(0)),
        ("cold start, round trip, p90 (ms)", lambda m: stats.Summary.of(rt(m.cold)).p90, fixed(0)),
        ("Init Duration (REPORT), median (ms)", lambda m: stats.Summary.of(inits(m)).median, fixed(1)),
        ("Init Duration (REPORT), p90 (ms)", lambda m: stats.Summary.of(inits(m)).p90, fixed(1)),
        ("cold invoke's handler Duration (REPORT), median (ms)",
         lambda m: stats.Summary.of([s.duration_ms for s in m.cold]).median, fixed(1)),
        ("warm invoke, round trip, median (ms)", lambda m: stats.Summary.of(rt(m.warm)).median, fixed(2)),
        ("warm invoke, round trip, p90 (ms)", lambda m: stats.Summary.of(rt(m.warm)).p90, fixed(2)),
        ("warm handler Duration (REPORT), median (ms)",
         lambda m: stats.Summary.of([s.duration_ms for s in m.warm]).median, fixed(2)),
        ("warm handler Duration (REPORT), p90 (ms)",
         lambda m: stats.Summary.of([s.duration_ms for s in m.warm]).p90, fixed(2)),
        ("KMS Decrypt per 100 warm invokes", lambda m: per_100(m.warm_calls[KMS_DECRYPT], len(m.warm)), fixed(0)),
        ("GetSecretValue per 100 warm invokes",
         lambda m: per_100(m.warm_calls[GET_SECRET_VALUE], len(m.warm)), fixed(0)),
        ("KMS Decrypt per 100 cold starts", lambda m: per_100(m.cold_calls[KMS_DECRYPT], len(m.cold)), fixed(0)),
        ("GetSecretValue per 100 cold starts",
         lambda m: per_100(m.cold_calls[GET_SECRET_VALUE], len(m.cold)), fixed(0)),
    ]
    labels = list(results)
    body = []
    for title, measure, show in rows:
        floor = measure(results["floor"])
        cells = [show(floor)]
        for label in labels[1:]:
            value = measure(results[label])
            delta = value - floor
            cells.append(f"{show(value)} ({'+' if delta >= 0 else '−'}{show(abs(delta))})")
        body.append([title, *cells])
    return table(["measure", *(TITLES[label] for label in labels)], body)


def fixed(places: int) -> Callable[[float], str]:
    return lambda value: f"{value:,.{places}f}"


def rt(samples: Sequence[Any]) -> list[float]:
    return [sample.round_trip_ms for sample in samples]


def inits(measured: Measured) -> list[float]:
    return [sample.init_ms for sample in measured.cold if sample.init_ms is not None] or [float("nan")]


def billed(measured: Measured) -> list[float]:
    """Init Duration + Duration of each cold invoke (the REPORT line)."""
    return [s.duration_ms + (s.init_ms or 0) for s in measured.cold]


def cold_overhead(results: dict[str, Measured], ours: str, seed: str, floor: str) -> tuple[float, tuple[float, float], float]:
    """(ours − floor) ÷ (seed − floor) of the cold-start medians: round trips with their 90 % interval over
    whole rounds, and the same from the REPORT line."""
    cold = [rt(results[label].cold) for label in (ours, seed, floor)]
    ratio = stats.median_overhead_ratio(cold)
    interval = stats.bootstrap_interval([[[value] for value in round_] for round_ in zip(*cold)],
                                        stats.median_overhead_ratio)
    return ratio, interval, stats.median_overhead_ratio([billed(results[label]) for label in (ours, seed, floor)])


REPORT_LINE_IN_FULL = "the same from the REPORT line (Init Duration + Duration of the cold invoke), for reference"


def with_interval(ratio: float, interval: tuple[float, float]) -> str:
    return f"{ratio:.3f} (90 % interval {interval[0]:.3f}–{interval[1]:.3f})"


def ratio_rows(title: str, overhead: tuple[float, tuple[float, float], float], target: float,
               report_title: str = "the same from the REPORT line, for reference") -> list[list[str]]:
    """A target's row (the round-trip ratio, its interval, met or missed) and the same ratio from the REPORT line."""
    ratio, interval, billed_ratio = overhead
    return [[title, with_interval(ratio, interval), verdict(ratio <= target)], [report_title, f"{billed_ratio:.3f}", ""]]


def variants_section(results: dict[str, Measured], context: dict[str, Any]) -> list[str]:
    """Issue 16: the prefetch comparison and the trust-store variants, as ratios in this run."""
    labels = [label for label in VARIANT_TITLES if label in results]
    if not set(VARIANT_TITLES) <= set(results):
        return []

    def median(values: Sequence[float]) -> float:
        return stats.Summary.of(values).median

    rows = [[VARIANT_TITLES[label], fixed(0)(median(rt(results[label].cold))),
             fixed(0)(stats.Summary.of(rt(results[label].cold)).p90), fixed(1)(median(inits(results[label]))),
             fixed(1)(median([s.duration_ms for s in results[label].cold])), fixed(1)(median(billed(results[label]))),
             str(len(results[label].cold))] for label in labels]
    prefetch = cold_overhead(results, "ours-prefetch", "ours-imports", "floor-imports")
    relayed = cold_overhead(results, "ours-prefetch-rtt", "ours-imports-rtt", "floor-imports")
    rtt = 2 * context["one_way_ms"]
    honest = cold_overhead(results, "ours-small", "seed-system", "floor")
    system = cold_overhead(results, "ours-system", "seed-system", "floor")

    def above(label: str, floor: str, measure: Callable[[Measured], list[float]] = lambda m: rt(m.cold)) -> str:
        return f"{median(measure(results[label])) - median(measure(results[floor])):+.0f}"

    target_rows = [
        *ratio_rows(f"prefetch: (ours + imports, prefetch on − floor + imports) ÷ (prefetch off − floor + imports) ≤ "
                    f"{PREFETCH_TARGET}, cold round-trip medians (above the floor: "
                    f"{above('ours-prefetch', 'floor-imports')} ms on, {above('ours-imports', 'floor-imports')} ms off)",
                    prefetch, PREFETCH_TARGET, REPORT_LINE_IN_FULL),
        *ratio_rows(f"prefetch with KMS behind a {rtt:g} ms round trip: (prefetch on − floor + imports) ÷ (prefetch off "
                    f"− floor + imports) ≤ {PREFETCH_TARGET}, cold round-trip medians (above the floor: "
                    f"{above('ours-prefetch-rtt', 'floor-imports')} ms on, {above('ours-imports-rtt', 'floor-imports')} "
                    "ms off)", relayed, PREFETCH_TARGET),
        *ratio_rows(f"honest trust store: (ours, small bundle − floor) ÷ (seed, system-sized bundle − floor) ≤ "
                    f"{HONEST_TRUST_TARGET}, cold round-trip medians (above the floor: {above('ours-small', 'floor')} "
                    f"ms ours, {above('seed-system', 'floor')} ms seed)", honest, HONEST_TRUST_TARGET),
        [f"without the small bundle: (ours, AWS_CA_BUNDLE = system-sized bundle − floor) ÷ (seed, the same − floor), "
         f"for reference (above the floor: {above('ours-system', 'floor')} ms)", with_interval(*system[:2]), ""],
    ]
    return [
        "## Prefetch and trust store (issue 16)",
        "",
        f"Cold starts only, measured in the same rounds as the four functions above (each round retires and "
        f"invokes all {len(results)} functions in a fresh order). \"Imports\": {context['libraries']} standard-library "
        f"modules the helper does not use (bench/floor_imports/handler.py.tmpl lists them), imported at init after "
        f"`register`; they cost {context['import_ms']:.0f} ms in a fresh interpreter here (median of 5), and "
        f"{above('floor-imports', 'floor', inits)} ms of Init Duration (floor + imports − floor) in this run. "
        f"Prefetch on: the module input `prefetch_secrets = true`. The system-sized bundle: this machine's CA bundle "
        f"with LocalStack's certificate appended, {context['system_certificates']} certificates; the small bundle: "
        f"LocalStack's certificate alone, playing AWS's roots (ours-small proved, before the measurements, that it "
        f"verifies LocalStack with it while its system store lacks LocalStack's certificate).",
        "",
        relay_paragraph(results, context),
        "",
        *table(["function", "cold round trip, median (ms)", "p90 (ms)", "Init Duration, median (ms)",
                "cold Duration, median (ms)", "Init + Duration, median (ms)", "n"], rows),
        "",
        *table(["target (issue 16)", "measured in this run", "met?"], target_rows, "lrl"),
    ]


def relay_paragraph(results: dict[str, Measured], context: dict[str, Any]) -> str:
    """What the relayed pair waits for, as measured in this run."""
    one_way, connection = context["one_way_ms"], context["new_connection_ms"]
    cold_starts = len(results["ours-imports-rtt"].cold) + len(results["ours-prefetch-rtt"].cold)
    return (
        f"\"KMS behind a {2 * one_way:g} ms round trip\": the same two functions, with their KMS endpoint pointed at "
        f"bench/relay.py, a TCP relay on loopback to LocalStack that delays every chunk by {one_way:g} ms each way "
        f"and the upstream connection by one round trip (the TCP handshake); TLS passes through it, verified end to "
        f"end. It models the whole wait of a cold start's first Decrypt on AWS, a new TCP + TLS connection and one "
        f"KMS request, which issue 16 puts at about 64 ms (about 6 ms on a warm connection): it is not a same-region "
        f"round trip to KMS, which is a few ms. A new TLS connection and one request to LocalStack took "
        f"{connection['direct']:.1f} ms direct, {connection['relayed']:.1f} ms through the relay, and "
        f"{connection['relayed, 2 requests']:.1f} ms with a second request on it (medians of 5, from this process). "
        f"The relay served {context['relay_connections']} connections during the {cold_starts} cold starts of the "
        f"relayed pair and refused {context['relay_refused']}; the floor + imports opens none (0 KMS Decrypt per "
        f"{len(results['floor-imports'].cold)} cold starts: {results['floor-imports'].cold_calls[KMS_DECRYPT]}), so "
        f"it needs no relay. The pair without the relay is deployed as in earlier runs, so its ratio stays comparable."
    )


def targets_table(results: dict[str, Measured], ca_bundle_ms: float, per_block: int) -> tuple[list[str], dict[str, bool]]:
    ours, seed, floor = results["ours"], results["seed"], results["floor"]
    cold = [rt(ours.cold), rt(seed.cold), rt(floor.cold)]
    cold_ratio = stats.median_overhead_ratio(cold)
    cold_ci = stats.bootstrap_interval([[[value] for value in round_] for round_ in zip(*cold)],
                                       stats.median_overhead_ratio)
    billed = [[s.duration_ms + (s.init_ms or 0) for s in m.cold] for m in (ours, seed, floor)]
    billed_ratio = stats.median_overhead_ratio(billed)
    medians = [stats.Summary.of(column).median for column in cold]
    on_aws = stats.overhead_ratio(medians[0] + ca_bundle_ms, medians[1] + ca_bundle_ms, medians[2])
    warm = [rt(ours.warm), rt(floor.warm)]
    warm_ratio = stats.median_ratio(warm)
    blocks = [[column[start:start + per_block] for column in warm] for start in range(0, len(warm[0]), per_block)]
    warm_ci = stats.bootstrap_interval(blocks, stats.median_ratio)  # round by round: block drift counts
    kms_warm = per_100(ours.warm_calls[KMS_DECRYPT], len(ours.warm))
    met = {"cold": cold_ratio <= COLD_TARGET, "warm": warm_ratio <= WARM_TARGET, "kms": kms_warm == 0}
    rows = [
        ["cold start above the floor ≤ 0.25 × the seed's: (ours − floor) ÷ (seed − floor), round-trip medians",
         with_interval(cold_ratio, cold_ci), verdict(met["cold"])],
        [REPORT_LINE_IN_FULL, f"{billed_ratio:.3f}", ""],
        [f"the same if ours and the seed each also loaded the system's CA bundle (+{ca_bundle_ms:.0f} ms, "
         "as on AWS), an estimate", f"{on_aws:.3f}", ""],
        ["warm ours ÷ floor ≤ 1.05, round-trip medians",
         with_interval(warm_ratio, warm_ci), verdict(met["warm"])],
        ["0 KMS calls per 100 warm invokes (ours)", f"{kms_warm:g}", verdict(met["kms"])],
    ]
    return table(["target", "measured in this run", "met?"], rows, "lrl"), met


def verdict(met: bool) -> str:
    return "met" if met else "**missed**"


def sweep_table(results: dict[str, Measured], callers: Sequence[int]) -> list[str]:
    rows = []
    for width in callers:
        cells = []
        for measured in results.values():
            throughput, latencies = measured.sweep[width]
            summary = stats.Summary.of(latencies)
            cells.append(f"{throughput:.0f}/s · {summary.median:.1f} / {summary.p90:.1f} ms")
        rows.append([str(width), *cells])
    return table(["parallel callers", *(TITLES[label] for label in results)], rows)


def scale_tables(results: dict[str, Measured]) -> list[str]:
    seed, ours = api_calls(results["seed"]), api_calls(results["ours"])
    measured_sm = api_calls(results["secretsmanager"])
    sm = costs.ApiCalls(**{**measured_sm.__dict__, "refresh_s": costs.POWERTOOLS_DEFAULT_MAX_AGE_S})
    calls_rows, cost_rows = [], []
    for rate in costs.RATES_PER_S:
        loads = {name: costs.load(calls, rate, CHURN) for name, calls in (("seed", seed), ("ours", ours), ("sm", sm))}
        calls_rows.append([
            f"{rate:,}", f"{CHURN.environments(rate):,}", number(CHURN.cold_starts_per_s(rate)),
            number(loads["seed"].kms_total), percent(costs.kms_quota_share(loads["seed"])),
            number(loads["ours"].kms_total), percent(costs.kms_quota_share(loads["ours"])),
            number(loads["sm"].gets), percent(loads["sm"].gets / costs.SM_GET_SECRET_VALUE_QUOTA_PER_S),
            number(loads["sm"].kms_total), percent(costs.kms_quota_share(loads["sm"])),
        ])
        cost_rows.append([
            f"{rate:,}",
            usd(costs.monthly_usd(loads["seed"], kms_keys=1)),
            usd(costs.monthly_usd(loads["ours"], kms_keys=1)),
            usd(costs.monthly_usd(loads["sm"], secrets=1)),
        ])
    return [
        *table(["requests/s", "environments", "cold starts/s",
                "seed: KMS calls/s", "seed: KMS quota", "ours: KMS calls/s", "ours: KMS quota",
                "SM: GetSecretValue/s", "SM: GetSecretValue quota", "SM: KMS calls/s on its behalf", "SM: KMS quota"],
               calls_rows),
        "",
        *table(["requests/s", "seed: KMS $/month (1 key + requests)", "ours: KMS $/month (1 key + requests)",
                "Secrets Manager $/month (1 secret + GetSecretValue + its KMS requests)"], cost_rows),
    ]


def main_four(results: dict[str, Measured]) -> dict[str, Measured]:
    """floor, ours, seed and Secrets Manager: the functions measured cold, warm and in the sweep."""
    return {label: results[label] for label in TITLES}


def markdown(header: str, everything: dict[str, Measured], context: dict[str, Any], args: argparse.Namespace,
             other: dict[str, Any]) -> str:
    results = main_four(everything)
    targets, met = targets_table(results, context["ca_bundle_ms"], args.per_block)
    n_cold, n_warm = len(results["floor"].cold), len(results["floor"].warm)
    loads = ", ".join(f"{name} {load[0]:.2f}" for name, load in context["loads"].items())
    plan_code, plan_seconds = context["plan"]
    identical = len(set(other["digests"])) == 1
    seed_calls = api_calls(results["seed"])
    lines = [
        header,
        f"{n_cold} cold starts per function (environments retired before each; one per function per round, in a fresh "
        "order each round); "
        f"{n_warm} warm invokes per function in blocks of {args.per_block}, one block per function per round; "
        f"{' / '.join(map(str, args.sweep))} parallel callers with {max(1, args.per_caller // 3) * 3} invokes per "
        "caller over 3 rounds, after a warm-up. "
        f"1-minute load average: {loads} (2 cores, shared).",
        "",
        "In parentheses: minus the floor. Round trip: what the caller saw (boto3 Invoke against LocalStack). "
        "Duration and Init Duration: the REPORT line.",
        "",
        *measures_table(results),
        "",
        "Targets, as ratios in this run (reported, never asserted). Intervals: 90 % bootstrap over whole rounds, "
        "so they are as wide as the drift between rounds was.",
        "",
        *targets,
        "",
        "All three targets met in this run." if all(met.values()) else
        "Missed in this run: " + ", ".join(TARGET_NAMES[name] for name, ok in met.items() if not ok) + ".",
        "",
        "Concurrency sweep (throughput · median / p90 round trip):",
        "",
        *sweep_table(results, args.sweep),
        "",
        *variants_section(everything, context),
        "",
        "## Scale and cost",
        "",
        f"From the measured calls (seed: {number(seed_calls.kms_per_invoke * 100)} KMS Decrypt per 100 invokes; "
        f"ours: {number(api_calls(results['ours']).kms_per_cold_start)} per cold start and "
        f"{number(api_calls(results['ours']).kms_per_invoke * 100)} per 100 warm invokes; Secrets Manager: "
        f"{number(api_calls(results['secretsmanager']).gets_per_cold_start)} GetSecretValue per cold start, then one "
        f"per environment every {costs.POWERTOOLS_DEFAULT_MAX_AGE_S} s, Powertools' default max_age) and AWS's list "
        f"prices and quotas as published on {costs.PRICES_READ_ON}.",
        "",
        f"Churn assumption: environments = requests/s × {CHURN.busy_s_per_request:g} s busy per request "
        f"(Lambda's concurrency formula), at least one; each lives {CHURN.lifetime_s / 3600:g} h before it is "
        "replaced (Lambda replaces environments every few hours even under steady load; scale-in/out and deploys "
        "replace them sooner). Ours' KMS rate is environments ÷ lifetime: halve the lifetime and it doubles. "
        "The seed's does not depend on churn at all.",
        "",
        *scale_tables(results),
        "",
        f"KMS quota: the account's \"Cryptographic operations (symmetric) request rate\", "
        f"{costs.KMS_SYMMETRIC_QUOTA_PER_S:,}/s by default (in us-east-1, us-west-2 and eu-west-1 it is "
        f"{costs.KMS_SYMMETRIC_QUOTA_LARGEST_PER_S:,}/s: divide the shares by 10); it is shared by every KMS "
        "caller in the account and Region, including services acting on your behalf. Secrets Manager calls KMS "
        "Decrypt for each GetSecretValue. Prices: KMS $0.03 per 10,000 requests and $1 per key-month; Secrets "
        "Manager $0.40 per secret-month and $0.05 per 10,000 calls; a month is 730 hours; the KMS free tier "
        "(20,000 requests/month) is not subtracted, nor are the extra backing-key charges of automatic key rotation "
        "(which this module turns on; see the KMS pricing page).",
        "",
        "Sources: AWS KMS pricing https://aws.amazon.com/kms/pricing/ ; AWS KMS request quotas, \"Cryptographic "
        "operations (symmetric) request rate\", https://docs.aws.amazon.com/kms/latest/developerguide/"
        "requests-per-second.html ; Secrets Manager pricing https://aws.amazon.com/secrets-manager/pricing/ ; "
        "Secrets Manager quotas https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html ; "
        "Secrets Manager and KMS https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html ; "
        "Lambda execution environment lifecycle https://docs.aws.amazon.com/lambda/latest/dg/"
        "lambda-runtime-environment.html ; Lambda concurrency https://docs.aws.amazon.com/lambda/latest/dg/"
        "lambda-concurrency.html ; Powertools 3.37.0 `DEFAULT_MAX_AGE_SECS`.",
        "",
        "## Other measures",
        "",
        *table(["measure", "value"], [
            ["cached `SealedSecrets.get` read (ns, median of 7×10⁶)", f"{other['cached_ns']:.0f}"],
            ["dict lookup, the floor (ns)", f"{other['dict_ns']:.0f}"],
            ["TLS context from the system's CA bundle minus from the gateway's one certificate, fresh interpreter, "
             "median of 5 (ms)", f"{context['ca_bundle_ms']:.1f}"],
            ["`python build.py` wall time incl. interpreter start, median of 3 (ms)", f"{other['cli_ms']:.0f}"],
            ["byte-identical zips across 3 folders, umasks 022/077/002, TZ UTC/Kiritimati/Adak",
             f"{'yes' if identical else 'NO'} (`{other['digests'][0]}`)"],
            ["`terraform plan` right after apply: exit code (0 = no changes)", str(plan_code)],
            ["`terraform plan` right after apply: wall time, median of 3 (s)", f"{plan_seconds:.1f}"],
        ]),
        "",
        "![make bench figures](results.png)",
    ]
    return "\n".join(lines) + "\n"


# --- the plot ----------------------------------------------------------------------------------


def plot(everything: dict[str, Measured], args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    results = main_four(everything)
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    labels = list(results)
    names = [TITLES[label].replace(" + ", "\n+ ") for label in labels]
    colors = ["#9e9e9e", "#1f77b4", "#d62728", "#ff7f0e"]
    figure, axes = plt.subplots(2, 2, figsize=(12, 8.5))

    def bars(axis: Any, values: Sequence[Sequence[float]], title: str, unit: str) -> None:
        medians = [stats.Summary.of(v).median for v in values]
        p90s = [stats.Summary.of(v).p90 for v in values]
        axis.bar(names, medians, color=colors, yerr=[[0] * len(medians), [p - m for p, m in zip(p90s, medians)]],
                 capsize=4)
        axis.axhline(medians[0], color=colors[0], linestyle="--", linewidth=1, label="floor")
        for x, (median, p90) in enumerate(zip(medians, p90s)):
            axis.annotate(f"{median:.1f}", (x, p90), ha="center", va="bottom", fontsize=9,
                          xytext=(0, 3), textcoords="offset points")
        axis.margins(y=0.12)
        axis.set_title(title)
        axis.set_ylabel(unit)

    bars(axes[0][0], [rt(results[label].cold) for label in labels],
         f"cold start round trip (median, whisker p90; n={len(results['floor'].cold)})", "ms")
    bars(axes[0][1], [rt(results[label].warm) for label in labels],
         f"warm invoke round trip (median, whisker p90; n={len(results['floor'].warm)})", "ms")
    for label, color in zip(labels, colors):
        widths = list(args.sweep)
        axes[1][0].plot(widths, [results[label].sweep[w][0] for w in widths], marker="o", color=color,
                        label=TITLES[label])
        axes[1][1].plot(widths, [stats.Summary.of(results[label].sweep[w][1]).median for w in widths], marker="o",
                        color=color, label=TITLES[label])
    axes[1][0].set_title("concurrency sweep: throughput")
    axes[1][0].set_ylabel("invokes/s")
    axes[1][1].set_title("concurrency sweep: median round trip")
    axes[1][1].set_ylabel("ms")
    for axis in axes[1]:
        axis.set_xlabel("parallel callers")
        axis.set_xscale("log", base=2)
        axis.set_xticks(list(args.sweep), [str(w) for w in args.sweep])
        axis.legend(fontsize=8)
    figure.suptitle("make bench: floor, ours, seed, Secrets Manager + Powertools (one LocalStack, one run)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
