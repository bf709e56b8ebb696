"""The benchmark's arithmetic: statistics and the scale/cost model (bench/stats.py, bench/costs.py).

Part of make test. bench/ is imported from the repository root, which pyproject's pythonpath puts on
sys.path; the prices and quotas come from costs.py, so a price change there needs no change here.
"""

import math

import pytest

from bench import costs, stats

# The model's own figures, read once: a month of seconds, and USD per single request.
MONTH_S = costs.SECONDS_PER_MONTH
KMS_USD_PER_REQUEST = costs.KMS_USD_PER_10K_REQUESTS / 10_000
SM_USD_PER_CALL = costs.SM_USD_PER_10K_CALLS / 10_000


def test_percentile_is_nearest_rank():
    values = list(range(1, 11))  # 1..10
    assert stats.percentile(values, 0.9) == 9
    assert stats.percentile(values, 0.5) == 5
    assert stats.percentile(values, 1.0) == 10
    assert stats.percentile([7.0], 0.9) == 7.0
    assert stats.percentile(list(reversed(values)), 0.9) == 9  # order does not matter


def test_percentile_of_nothing_is_an_error():
    with pytest.raises(ValueError, match="^percentile of no values$"):
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
                            gets_per_cold_start=1.0, refresh_s=costs.POWERTOOLS_DEFAULT_MAX_AGE_S)


def test_churn_environments_follow_lambdas_concurrency_formula():
    assert CHURN.environments(10) == 1
    assert CHURN.environments(1_000) == 100
    assert CHURN.environments(0.5) == 1  # never fewer than one
    assert CHURN.cold_starts_per_s(10_000) == pytest.approx(1_000 / 3600)


def test_seed_decrypts_on_every_invoke():
    load = costs.load(SEED, 100, CHURN)
    assert load.kms_direct == pytest.approx(100.0)
    assert load.gets == 0.0
    assert costs.kms_quota_share(load) == pytest.approx(100 / costs.KMS_SYMMETRIC_QUOTA_PER_S)
    # 100 requests/s for a month, plus the key.
    assert costs.monthly_usd(load, kms_keys=1) == pytest.approx(
        100 * MONTH_S * KMS_USD_PER_REQUEST + costs.KMS_USD_PER_KEY_MONTH)


def test_ours_decrypts_once_per_environment_lifetime():
    load = costs.load(OURS, 10_000, CHURN)
    assert load.kms_direct == pytest.approx(1_000 / 3600)
    assert load.kms_total == load.kms_direct


def test_secrets_manager_refetches_every_max_age_and_kms_decrypts_on_its_behalf():
    load = costs.load(POWERTOOLS, 1_000, CHURN)
    environments = 100
    assert load.gets == pytest.approx(environments / 3600 + environments / costs.POWERTOOLS_DEFAULT_MAX_AGE_S)
    assert load.kms_direct == 0.0
    assert load.kms_total == pytest.approx(load.gets * costs.SM_KMS_DECRYPTS_PER_GET)  # Decrypts on its behalf
    expected = load.gets * MONTH_S * (SM_USD_PER_CALL + costs.SM_KMS_DECRYPTS_PER_GET * KMS_USD_PER_REQUEST) + \
        costs.SM_USD_PER_SECRET_MONTH
    assert costs.monthly_usd(load, secrets=1) == pytest.approx(expected)


def test_a_cold_start_adds_only_its_extra_calls():
    # The seed's first invoke is an invoke like any other: churn must not change its rate.
    assert costs.load(SEED, 10, CHURN).kms_direct == pytest.approx(10.0)
    assert costs.load(SEED, 10, costs.Churn(lifetime_s=1.0)).kms_direct == pytest.approx(10.0)
    assert math.isclose(costs.load(OURS, 10, costs.Churn(lifetime_s=60.0)).kms_direct, 1 / 60)
