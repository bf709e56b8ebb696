"""The benchmark's arithmetic: statistics and the scale/cost model.

Not part of make test (bench/ is not in testpaths); run with
    .venv/bin/python -m pytest bench -q
"""

import math

import pytest

import costs
import stats


def test_percentile_is_nearest_rank():
    values = list(range(1, 11))  # 1..10
    assert stats.percentile(values, 0.9) == 9
    assert stats.percentile(values, 0.5) == 5
    assert stats.percentile(values, 1.0) == 10
    assert stats.percentile([7.0], 0.9) == 7.0
    assert stats.percentile(list(reversed(values)), 0.9) == 9  # order does not matter


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError):
        stats.percentile([], 0.5)


def test_summary():
    summary = stats.Summary.of([3.0, 1.0, 2.0, 10.0])
    assert (summary.median, summary.p90, summary.n) == (2.5, 10.0, 4)


def test_overhead_ratio_measures_against_the_floor():
    assert stats.overhead_ratio(ours=130.0, seed=500.0, floor=100.0) == pytest.approx(0.075)
    assert stats.overhead_ratio(ours=100.0, seed=500.0, floor=100.0) == 0.0
    assert stats.overhead_ratio(ours=500.0, seed=500.0, floor=100.0) == 1.0


def rounds_of(*columns):
    """Rounds of one value per column, as the cold starts are measured."""
    return [[[value] for value in values] for values in zip(*columns)]


def test_bootstrap_of_constant_columns_is_the_point_estimate():
    rounds = rounds_of([130.0] * 9, [500.0] * 9, [100.0] * 9)
    low, high = stats.bootstrap_interval(rounds, stats.median_overhead_ratio)
    assert low == high == pytest.approx(0.075)


def test_bootstrap_interval_brackets_the_estimate_and_is_reproducible():
    ours = [101.0, 99.0, 104.0, 98.0, 100.0, 103.0, 97.0, 102.0]
    floor = [100.0, 98.0, 101.0, 99.0, 100.0, 100.0, 96.0, 99.0]
    rounds = rounds_of(ours, floor)
    estimate = stats.median_ratio(stats.pooled(rounds))
    interval = stats.bootstrap_interval(rounds, stats.median_ratio)
    assert interval[0] <= estimate <= interval[1]
    assert interval[0] < interval[1]
    assert interval == stats.bootstrap_interval(rounds, stats.median_ratio)


def test_rounds_are_resampled_whole():
    # Every round drifts, but ours is always exactly floor + 10 % of (seed − floor): keeping rounds whole
    # removes the drift from the ratio.
    floor = [100.0, 300.0, 200.0, 400.0, 150.0]
    seed = [value + 200.0 for value in floor]
    ours = [value + 20.0 for value in floor]
    low, high = stats.bootstrap_interval(rounds_of(ours, seed, floor), stats.median_overhead_ratio)
    assert low == high == pytest.approx(0.1)


def test_a_drifting_round_widens_the_interval_of_blocks():
    # Blocks of 3 invokes per round; in one round everything ran 20 % slower, ours included.
    steady = [[[10.0, 10.0, 10.0], [10.0, 10.0, 10.0]] for _ in range(5)]
    drifted = [[[12.0, 12.0, 12.0], [10.0, 10.0, 10.0]]]  # ours's block hit the slow moment, the floor's not
    low, high = stats.bootstrap_interval(steady + drifted, stats.median_ratio)
    assert low == 1.0 < high  # resampling blocks, not invokes, lets one slow block move the median
    assert stats.pooled(steady + drifted)[0][-3:] == [12.0, 12.0, 12.0]


CHURN = costs.Churn(busy_s_per_request=0.1, lifetime_s=3600.0)
SEED = costs.ApiCalls(kms_per_invoke=1.0, kms_per_cold_start=1.0)
OURS = costs.ApiCalls(kms_per_invoke=0.0, kms_per_cold_start=1.0)
POWERTOOLS = costs.ApiCalls(kms_per_invoke=0.0, kms_per_cold_start=0.0, gets_per_invoke=0.0,
                            gets_per_cold_start=1.0, refresh_s=300.0)


def test_churn_environments_follow_lambdas_concurrency_formula():
    assert CHURN.environments(10) == 1
    assert CHURN.environments(1_000) == 100
    assert CHURN.environments(0.5) == 1  # never fewer than one
    assert CHURN.cold_starts_per_s(10_000) == pytest.approx(1_000 / 3600)


def test_seed_decrypts_on_every_invoke():
    load = costs.load(SEED, 100, CHURN)
    assert load.kms_direct == pytest.approx(100.0)
    assert load.gets == 0.0
    assert costs.kms_quota_share(load) == pytest.approx(0.01)
    # 100/s for a 730-hour month at $0.03 per 10,000, plus the key.
    assert costs.monthly_usd(load, kms_keys=1) == pytest.approx(100 * 730 * 3600 * 0.03 / 10_000 + 1.0)


def test_ours_decrypts_once_per_environment_lifetime():
    load = costs.load(OURS, 10_000, CHURN)
    assert load.kms_direct == pytest.approx(1_000 / 3600)
    assert load.kms_total == load.kms_direct


def test_secrets_manager_refetches_every_max_age_and_kms_decrypts_on_its_behalf():
    load = costs.load(POWERTOOLS, 1_000, CHURN)
    environments = 100
    assert load.gets == pytest.approx(environments / 3600 + environments / 300)
    assert load.kms_direct == 0.0
    assert load.kms_total == pytest.approx(load.gets)  # one Decrypt per GetSecretValue
    expected = load.gets * (0.05 + 0.03) / 10_000 * 730 * 3600 + 0.40
    assert costs.monthly_usd(load, secrets=1) == pytest.approx(expected)


def test_a_cold_start_adds_only_its_extra_calls():
    # The seed's first invoke is an invoke like any other: churn must not change its rate.
    assert costs.load(SEED, 10, CHURN).kms_direct == pytest.approx(10.0)
    assert costs.load(SEED, 10, costs.Churn(lifetime_s=1.0)).kms_direct == pytest.approx(10.0)
    assert math.isclose(costs.load(OURS, 10, costs.Churn(lifetime_s=60.0)).kms_direct, 1 / 60)
