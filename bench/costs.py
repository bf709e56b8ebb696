"""The scale and cost model: API calls measured per warm invoke and per cold start, scaled to a
request rate with a stated churn assumption, priced with AWS's published list prices and quotas.

Pure functions and named constants only; tested in tests/unit/test_bench_math.py.

Prices and quotas as published on PRICES_READ_ON (us-east-1 list prices, USD):
- AWS KMS pricing, https://aws.amazon.com/kms/pricing/ : $1 per customer managed key per month,
  $0.03 per 10,000 symmetric requests, 20,000 free requests per month (not subtracted below), and
  "you will be charged on any API request made to AWS-managed keys".
- AWS KMS request quotas, https://docs.aws.amazon.com/kms/latest/developerguide/requests-per-second.html ,
  "Cryptographic operations (symmetric) request rate": 10,000 per second shared by Decrypt, Encrypt,
  GenerateDataKey..., 20,000 in six Regions, 100,000 in us-east-1, us-west-2 and eu-west-1; it counts
  "requests from AWS services on your behalf" and requests on AWS managed keys.
- Secrets Manager pricing, https://aws.amazon.com/secrets-manager/pricing/ : $0.40 per secret per
  month, $0.05 per 10,000 API calls.
- Secrets Manager quotas, https://docs.aws.amazon.com/secretsmanager/latest/userguide/reference_limits.html :
  "Combined rate of DescribeSecret and GetSecretValue API requests", 10,000 per second.
- Secrets Manager encryption, https://docs.aws.amazon.com/secretsmanager/latest/userguide/security-encryption.html :
  it calls KMS Decrypt in response to GetSecretValue (to open the secret's data key).
- Lambda execution environment lifecycle, https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html :
  "Lambda terminates execution environments every few hours ... even for functions that are invoked
  continuously"; concurrency = requests per second × average duration,
  https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html .
- Powertools for AWS Lambda (Python) 3.37.0, aws_lambda_powertools/utilities/parameters/constants.py:
  DEFAULT_MAX_AGE_SECS = "300" (a cached secret is fetched again after 5 minutes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

PRICES_READ_ON = "2026-11-29"
KMS_USD_PER_10K_REQUESTS = 0.03
KMS_USD_PER_KEY_MONTH = 1.00
KMS_SYMMETRIC_QUOTA_PER_S = 10_000  # the default; 100,000 in us-east-1, us-west-2, eu-west-1
KMS_SYMMETRIC_QUOTA_LARGEST_PER_S = 100_000
SM_USD_PER_SECRET_MONTH = 0.40
SM_USD_PER_10K_CALLS = 0.05
SM_GET_SECRET_VALUE_QUOTA_PER_S = 10_000
SM_KMS_DECRYPTS_PER_GET = 1  # Secrets Manager opens the secret's data key with KMS on each GetSecretValue
POWERTOOLS_DEFAULT_MAX_AGE_S = 300
SECONDS_PER_MONTH = 730 * 3600  # AWS prices a month as 730 hours

RATES_PER_S = (10, 100, 1_000, 10_000)


@dataclass(frozen=True)
class Churn:
    """The cold-start churn assumption that drives the table.

    Environments = requests/s × busy seconds per request (Lambda's concurrency formula), at least
    one; each lives ``lifetime_s`` before Lambda replaces it (every few hours for maintenance, sooner
    with scale-in/out and deploys), so cold starts/s = environments / lifetime.
    """

    busy_s_per_request: float = 0.1
    lifetime_s: float = 3600.0

    def environments(self, rate: float) -> int:
        return max(1, math.ceil(rate * self.busy_s_per_request))

    def cold_starts_per_s(self, rate: float) -> float:
        return self.environments(rate) / self.lifetime_s


@dataclass(frozen=True)
class ApiCalls:
    """One function's API calls, as measured: per warm invoke and per cold start (its first invoke).

    ``refresh_s``: the function's cache fetches again after this long (Powertools' max_age), one
    cold start's worth of calls per environment each time; None when it never expires.
    """

    kms_per_invoke: float
    kms_per_cold_start: float
    gets_per_invoke: float = 0.0
    gets_per_cold_start: float = 0.0
    refresh_s: float | None = None


@dataclass(frozen=True)
class Load:
    """API calls per second at one request rate."""

    kms_direct: float
    gets: float

    @property
    def kms_total(self) -> float:
        """The function's own KMS calls plus those Secrets Manager makes on its behalf."""
        return self.kms_direct + self.gets * SM_KMS_DECRYPTS_PER_GET


def load(calls: ApiCalls, rate: float, churn: Churn) -> Load:
    """Calls/s = rate × per-invoke calls + (cold starts + cache refreshes)/s × the extra calls of a fetch.

    A cold start is itself an invoke, so it adds only what it costs beyond a warm one.
    """
    fetches = churn.cold_starts_per_s(rate)
    if calls.refresh_s:
        fetches += churn.environments(rate) / calls.refresh_s
    return Load(
        kms_direct=rate * calls.kms_per_invoke + fetches * (calls.kms_per_cold_start - calls.kms_per_invoke),
        gets=rate * calls.gets_per_invoke + fetches * (calls.gets_per_cold_start - calls.gets_per_invoke),
    )


def kms_quota_share(load_: Load, quota_per_s: float = KMS_SYMMETRIC_QUOTA_PER_S) -> float:
    """The fraction of the account's symmetric-cryptography request quota in use."""
    return load_.kms_total / quota_per_s


def monthly_usd(load_: Load, *, kms_keys: int = 0, secrets: int = 0) -> float:
    """List price per month: requests (KMS, Secrets Manager) plus the keys and secrets kept."""
    requests = (load_.kms_total * KMS_USD_PER_10K_REQUESTS + load_.gets * SM_USD_PER_10K_CALLS) / 10_000
    return requests * SECONDS_PER_MONTH + kms_keys * KMS_USD_PER_KEY_MONTH + secrets * SM_USD_PER_SECRET_MONTH
