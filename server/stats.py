"""Statistics over seeds, in plain Python (no numpy, scipy or torch): the few distributions a
comparison needs, written out so the server's summary and the CLI share one definition.

* `mean_interval`: mean with a Student-t interval (n ≥ 2);
* `wilson_interval`: a success rate with the Wilson score interval (sound at 0/n and n/n,
  where the textbook p ± z·se collapses to a zero-width interval);
* `censored_spread`: median, quartiles and range of "steps to target" where runs that
  never reached it count as censored (beyond their budget), not dropped;
* `welch`: the difference of two means with Welch's t interval and p-value (unequal
  variances; seeds of two optimizers rarely spread alike);
* `fisher_exact`: whether two success counts differ (two-sided), exact at the handful of
  seeds a suite runs, where a normal approximation to the rates' difference is not;
* `mcnemar_exact`: the same question when the two ran on the same seeds (paired), from the
  seeds only one of them succeeded on: sharper than Fisher's when most seeds go the same
  way for both (the seed, not the optimizer, decides them), though with n seeds splitting
  them it cannot go below 2^(1−n);
* `sign_test`: whether one side wins more of the paired comparisons that differ (e.g. fewer
  steps to solve on the seeds both solved); McNemar's test is this on the discordant seeds.

The t distribution comes from the regularised incomplete beta function (a continued
fraction, accurate to ~1e-12 here) and its quantiles from bisection on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An estimate with its interval; `low`/`high` are None when the data cannot give one."""

    estimate: float
    low: float | None
    high: float | None
    n: int


@dataclass(frozen=True)
class Spread:
    """A distribution with censored values: quantiles are None where they fall among the
    censored ones ("not reached within the budget")."""

    n: int
    reached: int
    median: float | None
    q1: float | None
    q3: float | None
    min: float | None
    max: float | None


@dataclass(frozen=True)
class Difference:
    """`mean(a) − mean(b)` with Welch's interval and two-sided p-value."""

    difference: float
    low: float
    high: float
    p_value: float
    df: float

    @property
    def beyond_noise(self) -> bool:
        return self.low > 0 or self.high < 0


# ----------------------------------------------------------------------- distributions
def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz method)."""
    tiny, c, d = 1e-300, 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return result


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with `df` (real, > 0) degrees of freedom."""
    tail = 0.5 * incomplete_beta(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def _bisect(cdf_minus_p: Callable[[float], float], low: float, high: float) -> float:
    """The root of an increasing function between `low` and `high`."""
    for _ in range(200):
        middle = (low + high) / 2
        if cdf_minus_p(middle) < 0:
            low = middle
        else:
            high = middle
        if high - low <= 1e-12 * max(1.0, abs(middle)):
            break
    return (low + high) / 2


def t_quantile(p: float, df: float) -> float:
    """The `p` quantile of Student's t with `df` degrees of freedom."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError(f"t_quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    high = 1.0
    while t_cdf(high, df) < p:
        high *= 2
    return _bisect(lambda t: t_cdf(t, df) - p, 0.0, high)


def normal_quantile(p: float) -> float:
    """The `p` quantile of the standard normal distribution."""
    if not 0 < p < 1:
        raise ValueError(f"normal_quantile needs 0 < p < 1, got {p}")
    return _bisect(lambda z: 0.5 * math.erfc(-z / math.sqrt(2)) - p, -40.0, 40.0)


# ----------------------------------------------------------------------- estimates
def mean_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
    """The mean with its Student-t interval; no interval from a single value."""
    n = len(values)
    if n == 0:
        raise ValueError("mean_interval needs at least one value")
    mean = math.fsum(values) / n
    if n == 1:
        return Interval(mean, None, None, 1)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def wilson_interval(successes: int, n: int, level: float = LEVEL) -> Interval:
    """The success rate `successes / n` with the Wilson score interval."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"wilson_interval needs 0 ≤ successes ≤ n, n > 0; got {successes}/{n}")
    z = normal_quantile(0.5 + level / 2)
    rate = successes / n
    centre = (rate + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else centre - half  # exact bounds at 0/n and n/n
    high = 1.0 if successes == n else centre + half
    return Interval(rate, low, high, n)


def _quantile(ordered: list[float], q: float) -> float:
    """Linear interpolation between order statistics (R's type 7); inf stays inf."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    if math.isinf(ordered[above]) and position > below:
        return math.inf
    if position == below:
        return ordered[below]
    return ordered[below] + (position - below) * (ordered[above] - ordered[below])


def censored_spread(values: Sequence[float | None]) -> Spread:
    """Median, quartiles and range of values where None means "not reached" (censored
    beyond every reached value: a run that never got there took longer than any that did).
    A quantile among the censored ones is None, so a median needs over half reached."""
    n = len(values)
    reached = sorted(float(v) for v in values if v is not None)
    if n == 0:
        return Spread(0, 0, None, None, None, None, None)
    ordered = reached + [math.inf] * (n - len(reached))

    def finite(value: float) -> float | None:
        return None if math.isinf(value) else value

    return Spread(
        n=n,
        reached=len(reached),
        median=finite(_quantile(ordered, 0.5)),
        q1=finite(_quantile(ordered, 0.25)),
        q3=finite(_quantile(ordered, 0.75)),
        min=reached[0] if reached else None,
        max=finite(ordered[-1]),
    )


def welch(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Difference | None:
    """Welch's t for `mean(a) − mean(b)`; None with fewer than two values on a side.

    With no spread on either side the difference is exact: a zero-width interval, p = 0
    (or 1 when the means are equal).
    """
    if len(a) < 2 or len(b) < 2:
        return None
    ma, mb = math.fsum(a) / len(a), math.fsum(b) / len(b)
    va = math.fsum((v - ma) ** 2 for v in a) / (len(a) - 1) / len(a)
    vb = math.fsum((v - mb) ** 2 for v in b) / (len(b) - 1) / len(b)
    difference = ma - mb
    if va + vb == 0:
        return Difference(difference, difference, difference, float(difference == 0), math.inf)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    se = math.sqrt(va + vb)
    half = t_quantile(0.5 + level / 2, df) * se
    p_value = 2 * t_cdf(-abs(difference) / se, df)
    return Difference(difference, difference - half, difference + half, p_value, df)


def fisher_exact(successes_a: int, n_a: int, successes_b: int, n_b: int) -> float:
    """Two-sided p-value of Fisher's exact test on the 2×2 table of successes and failures.

    Given the total successes, the count on side a is hypergeometric under "same rate"; the
    p-value sums the probabilities of the tables no more likely than the one observed (with
    R's relative tolerance of 1e-7, so that ties computed with rounding still count).
    """
    if n_a <= 0 or n_b <= 0 or not (0 <= successes_a <= n_a and 0 <= successes_b <= n_b):
        raise ValueError(
            "fisher_exact needs 0 ≤ successes ≤ n, n > 0 on both sides; "
            f"got {successes_a}/{n_a} and {successes_b}/{n_b}"
        )
    total = successes_a + successes_b
    lowest, highest = max(0, total - n_b), min(total, n_a)

    def probability(k: int) -> float:
        return math.comb(n_a, k) * math.comb(n_b, total - k) / math.comb(n_a + n_b, total)

    observed = probability(successes_a)
    p_value = math.fsum(
        q for q in map(probability, range(lowest, highest + 1)) if q <= observed * (1 + 1e-7)
    )
    return min(1.0, p_value)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided p-value of McNemar's exact test: of the seeds where exactly one side
    succeeded, `only_a` went to a and `only_b` to b; under "same rate" each such seed is a
    fair coin, so the p-value is the two-sided binomial tail (a sign test). Seeds both or
    neither succeeded on carry no evidence either way."""
    return sign_test(only_a, only_b)


def sign_test(fewer: int, more: int) -> float:
    """Two-sided p-value of the sign test: of the pairs that differ, `fewer` went one way
    and `more` the other; under "no difference" each is a fair coin (ties carry no
    evidence and are left out by the caller)."""
    if fewer < 0 or more < 0:
        raise ValueError(f"a sign test needs counts ≥ 0; got {fewer} and {more}")
    differing = fewer + more
    tail = math.fsum(math.comb(differing, k) for k in range(min(fewer, more) + 1))
    return min(1.0, 2 * tail / 2**differing)
