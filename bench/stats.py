"""Pure statistics for make bench: no I/O, no LocalStack, tested in tests/unit/test_bench_math.py."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of the values at or below it."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True)
class Summary:
    median: float
    p90: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Summary:
        return cls(statistics.median(values), percentile(values, 0.9), len(values))


def overhead_ratio(ours: float, seed: float, floor: float) -> float:
    """The share of the seed's cost above the floor that ours still pays: (ours − floor) / (seed − floor)."""
    return (ours - floor) / (seed - floor)


def bootstrap_interval(
    rounds: Sequence[Sequence[Sequence[float]]],
    statistic: Callable[[list[list[float]]], float],
    *,
    confidence: float = 0.9,
    resamples: int = 2000,
    seed: int = 1,
) -> tuple[float, float]:
    """A percentile-bootstrap interval for ``statistic`` over rounds of measurements.

    ``rounds[r][c]`` holds the values of column c (a function) measured in round r. Whole rounds
    are resampled, so drift that hit a round hits every column of it alike and the interval is as
    wide as the round-to-round drift really was. ``statistic`` gets each column's values pooled.
    Seeded, so a report is reproducible.
    """
    rng = random.Random(seed)
    estimates = []
    for _ in range(resamples):
        picked = [rounds[rng.randrange(len(rounds))] for _ in rounds]
        columns = [[value for round_ in picked for value in round_[column]] for column in range(len(rounds[0]))]
        estimates.append(statistic(columns))
    tail = (1 - confidence) / 2
    return percentile(estimates, tail), percentile(estimates, 1 - tail)


def pooled(rounds: Sequence[Sequence[Sequence[float]]]) -> list[list[float]]:
    """Each column's values from every round, in order."""
    return [[value for round_ in rounds for value in round_[column]] for column in range(len(rounds[0]))]


def median_overhead_ratio(columns: list[list[float]]) -> float:
    """``overhead_ratio`` of the medians of three columns: ours, seed, floor."""
    ours, seed, floor = (statistics.median(column) for column in columns)
    return overhead_ratio(ours, seed, floor)


def median_ratio(columns: list[list[float]]) -> float:
    """median(first column) ÷ median(second column)."""
    return statistics.median(columns[0]) / statistics.median(columns[1])
