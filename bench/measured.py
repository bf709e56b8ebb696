"""What make bench measures, as plain data: bench.py fills it in, report.py formats it (neither imports the other)."""

from __future__ import annotations

from dataclasses import dataclass, field

KMS_DECRYPT, GET_SECRET_VALUE, INVOKE = "kms.Decrypt", "secretsmanager.GetSecretValue", "lambda.Invoke"
COUNTED = (KMS_DECRYPT, GET_SECRET_VALUE)


@dataclass(frozen=True)
class Sample:
    """One invoke: the round trip the caller saw, and the REPORT line's figures."""

    round_trip_ms: float
    duration_ms: float
    init_ms: float | None


@dataclass
class Measured:
    """Everything measured for one function."""

    cold: list[Sample] = field(default_factory=list)  # cold[i] was taken in round i, like every function's
    warm: list[Sample] = field(default_factory=list)
    cold_calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    warm_calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTED, 0))
    sweep: dict[int, tuple[float, list[float]]] = field(default_factory=dict)  # callers -> (invokes/s, ms)
