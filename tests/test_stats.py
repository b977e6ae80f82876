"""server.stats against hand-computed and table values."""

from __future__ import annotations

import math

import pytest

from server import stats


@pytest.mark.parametrize(
    ("df", "value"),
    [(1, 12.7062), (2, 4.3027), (3, 3.1824), (5, 2.5706), (10, 2.2281), (30, 2.0423)],
)
def test_t_quantiles_match_the_table(df: int, value: float) -> None:
    assert stats.t_quantile(0.975, df) == pytest.approx(value, abs=1e-4)
    assert stats.t_quantile(0.025, df) == pytest.approx(-value, abs=1e-4)


@pytest.mark.parametrize("t", [-40.0, -4.0, -0.3, 0.0, 0.3, 3.4641016, 50.0])
def test_t_cdf_matches_the_closed_forms_of_one_and_two_degrees_of_freedom(t: float) -> None:
    cauchy = 0.5 + math.atan(t) / math.pi
    two = 0.5 + t / (2 * math.sqrt(2 + t * t))
    assert stats.t_cdf(t, 1) == pytest.approx(cauchy, abs=1e-12)
    assert stats.t_cdf(t, 2) == pytest.approx(two, abs=1e-12)


def test_the_normal_quantile_and_many_degrees_of_freedom_give_1_96() -> None:
    assert stats.normal_quantile(0.975) == pytest.approx(1.959964, abs=1e-6)
    assert stats.t_quantile(0.975, 1e6) == pytest.approx(1.959966, abs=1e-5)


def test_mean_interval_is_student_t_and_absent_for_one_value() -> None:
    # mean 5, sd √(32/7), t(0.975, 7) = 2.3646: 5 ± 1.7875
    interval = stats.mean_interval([2.0, 4, 4, 4, 5, 5, 7, 9])
    assert interval.estimate == 5.0
    assert interval.low == pytest.approx(3.2125, abs=1e-4)
    assert interval.high == pytest.approx(6.7875, abs=1e-4)
    assert stats.mean_interval([3.0]) == stats.Interval(3.0, None, None, 1)
    with pytest.raises(ValueError, match="at least one"):
        stats.mean_interval([])


@pytest.mark.parametrize(
    ("successes", "low", "high"),
    [(0, 0.0, 0.2775), (7, 0.3968, 0.8922), (10, 0.7225, 1.0)],
)
def test_wilson_interval_of_ten_trials(successes: int, low: float, high: float) -> None:
    interval = stats.wilson_interval(successes, 10)
    assert interval.estimate == successes / 10
    assert (interval.low, interval.high) == (
        pytest.approx(low, abs=1e-4),
        pytest.approx(high, abs=1e-4),
    )


def test_wilson_interval_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="successes"):
        stats.wilson_interval(3, 2)


def test_censored_runs_count_as_beyond_every_reached_value() -> None:
    spread = stats.censored_spread([3, 1, None, 2, None])  # ordered 1, 2, 3, ∞, ∞
    assert (spread.n, spread.reached) == (5, 3)
    assert (spread.median, spread.q1, spread.q3) == (3.0, 2.0, None)
    assert (spread.min, spread.max) == (1.0, None)
    # dropping the unreached runs would have claimed a median of 2
    assert stats.censored_spread([5, None, None]).median is None
    full = stats.censored_spread([4, 1, 3, 2])
    assert (full.median, full.q1, full.q3, full.min, full.max) == (2.5, 1.75, 3.25, 1.0, 4.0)


def test_welch_with_two_and_one_degrees_of_freedom_by_hand() -> None:
    # a = 1, 2, 3 against a constant: se = √(1/3), t = 3.4641, df = 2,
    # p = 2 (1 − F₂(t)) = 0.07418, interval 2 ± 4.3027 · 0.57735
    diff = stats.welch([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert diff is not None
    assert diff.df == pytest.approx(2.0)
    assert diff.difference == 2.0
    assert diff.p_value == pytest.approx(0.07418, abs=1e-5)
    assert (diff.low, diff.high) == (
        pytest.approx(-0.48414, abs=1e-5),
        pytest.approx(4.48414, abs=1e-5),
    )
    assert not diff.beyond_noise
    # a = 0, 2 against a constant 5: t = −4, df = 1, p = 1 − 2 atan(4)/π
    diff = stats.welch([0.0, 2.0], [5.0, 5.0, 5.0])
    assert diff is not None and diff.df == pytest.approx(1.0)
    assert diff.p_value == pytest.approx(1 - 2 * math.atan(4) / math.pi, abs=1e-10)


def test_welch_beyond_noise_needs_the_interval_to_exclude_zero() -> None:
    diff = stats.welch([10.0, 11.0, 12.0, 10.5], [1.0, 1.5, 2.0, 1.2])
    assert diff is not None and diff.beyond_noise and diff.p_value < 0.001
    assert stats.welch([1.0], [2.0, 3.0]) is None
    exact = stats.welch([1.0, 1.0], [2.0, 2.0])
    assert exact is not None and exact.beyond_noise and exact.low == exact.high == -1.0


@pytest.mark.parametrize(
    ("a", "n_a", "b", "n_b", "p_value"),
    [
        (3, 4, 1, 4, 34 / 70),  # the lady tasting tea: 1 + 16 + 16 + 1 of 70 tables
        (6, 8, 1, 5, 0.10256410256410256),  # scipy.stats.fisher_exact([[6, 2], [1, 4]])
        (0, 3, 3, 3, 0.1),  # the two extreme tables, 1/20 each
        (0, 20, 5, 20, 0.04712404712404712),
        (2, 5, 2, 5, 1.0),  # equal tables: every table is at most as likely
    ],
)
def test_fisher_exact_two_sided(a: int, n_a: int, b: int, n_b: int, p_value: float) -> None:
    assert stats.fisher_exact(a, n_a, b, n_b) == pytest.approx(p_value, rel=1e-12)
    assert stats.fisher_exact(b, n_b, a, n_a) == pytest.approx(p_value, rel=1e-12)


def test_fisher_exact_refuses_impossible_counts() -> None:
    with pytest.raises(ValueError, match="0 ≤ successes ≤ n"):
        stats.fisher_exact(4, 3, 0, 3)
    with pytest.raises(ValueError, match="n > 0"):
        stats.fisher_exact(0, 0, 1, 2)


@pytest.mark.parametrize(
    ("only_a", "only_b", "p_value"),
    [
        (0, 4, 0.125),  # 4 fair coins all one way: 2 × 1/16
        (1, 7, 0.0703125),  # scipy.stats.binomtest(1, 8).pvalue: 2 × (1 + 8) / 256
        (5, 5, 1.0),
        (0, 0, 1.0),  # no seed split them: no evidence
    ],
)
def test_mcnemar_exact_two_sided(only_a: int, only_b: int, p_value: float) -> None:
    assert stats.mcnemar_exact(only_a, only_b) == pytest.approx(p_value, rel=1e-12)
    assert stats.mcnemar_exact(only_b, only_a) == pytest.approx(p_value, rel=1e-12)


def test_mcnemar_exact_refuses_negative_counts() -> None:
    with pytest.raises(ValueError, match="counts ≥ 0"):
        stats.mcnemar_exact(-1, 3)


def test_the_sign_test_is_the_two_sided_binomial_tail() -> None:
    # fewer steps on all 9 seeds both solved: 2 × 1/512 (README's T = 32 ablation)
    assert stats.sign_test(9, 0) == pytest.approx(0.00390625, rel=1e-12)
    # 5 against 1: 2 × (1 + 6) / 64
    assert stats.sign_test(1, 5) == pytest.approx(0.21875, rel=1e-12)
    with pytest.raises(ValueError, match="counts ≥ 0"):
        stats.sign_test(2, -1)
