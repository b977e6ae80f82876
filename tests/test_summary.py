"""server.jobs.summary on hand-made run outcomes: intervals, censoring, pair sentences."""

from __future__ import annotations

import pytest

from server import stats
from server.jobs.summary import Criteria, Outcome, criteria_for, summarize

LOSS_TARGET = Criteria(metric="loss", lower_is_better=True, success="target", target=0.1)


def _run(label: str, final: float, target_step: int | None, status: str = "succeeded") -> Outcome:
    work = None
    if target_step is not None:
        work = {
            "function_evaluations": 3 * target_step,
            "gradient_evaluations": 3 * target_step,
            "hessian_vector_products": target_step,
        }
    return Outcome(
        label,
        status,
        {
            "steps": 100,
            "final_loss": final,
            "best_loss": final / 2,
            "target_step": target_step,
            "target_seconds": None if target_step is None else target_step / 100,
            "target_work": work,
        },
    )


def test_per_optimizer_mean_interval_success_rate_and_censored_steps() -> None:
    runs = [
        _run("lbfgs", 1.0, 10),
        _run("lbfgs", 2.0, 30),
        _run("lbfgs", 3.0, None),
        _run("lbfgs", 9.0, 20, status="failed"),  # an error, not an outcome: left out
    ]
    (summary,) = summarize(runs, LOSS_TARGET)["optimizers"]
    assert (summary["runs"], summary["counted"]) == (4, 3)
    assert summary["statuses"] == {"succeeded": 3, "failed": 1}
    expected = stats.mean_interval([1.0, 2.0, 3.0])
    assert summary["final"] == {
        "mean": 2.0,
        "low": expected.low,
        "high": expected.high,
        "n": 3,
    }
    assert summary["best_loss"]["mean"] == 1.0
    rate = stats.wilson_interval(2, 3)
    assert summary["success"] == {
        "successes": 2,
        "n": 3,
        "rate": 2 / 3,
        "low": rate.low,
        "high": rate.high,
    }
    steps = summary["to_target"]["steps"]  # 10, 30, censored: the median is 30, not 20
    assert (steps["median"], steps["min"], steps["max"], steps["reached"]) == (30, 10, None, 2)
    evaluations = summary["to_target"]["evaluations"]  # gradients + Hvps: 4 per step
    assert (evaluations["median"], evaluations["min"]) == (120, 40)
    assert summary["to_target"]["function_evaluations"]["median"] == 90
    assert summary["to_target"]["seconds"]["median"] == pytest.approx(0.3)


def test_runs_recorded_before_the_work_counters_leave_only_that_axis() -> None:
    old = Outcome("sgd", "succeeded", {"steps": 5, "final_loss": 1.0, "target_step": 4})
    spreads = summarize([old, _run("sgd", 1.0, None)], LOSS_TARGET)["optimizers"][0]["to_target"]
    assert (spreads["steps"]["n"], spreads["steps"]["reached"]) == (2, 1)
    assert (spreads["evaluations"]["n"], spreads["evaluations"]["reached"]) == (1, 0)


def test_pair_sentences_say_which_is_better_and_quote_the_interval() -> None:
    runs = [
        *(_run("psgd-dense", v, 5) for v in (0.010, 0.012, 0.011)),
        *(_run("adam", v, None) for v in (0.50, 0.55, 0.60)),
        *(_run("sgd", v, None) for v in (0.40, 0.70, 0.58)),
    ]
    pairs = {(p["a"], p["b"]): p for p in summarize(runs, LOSS_TARGET)["pairs"]}
    assert set(pairs) == {("psgd-dense", "adam"), ("psgd-dense", "sgd"), ("adam", "sgd")}
    better = pairs[("psgd-dense", "adam")]
    diff = stats.welch([0.010, 0.012, 0.011], [0.50, 0.55, 0.60])
    assert diff is not None and better["beyond_noise"]
    assert better["sentence"].startswith("psgd-dense has a lower final loss than adam, beyond")
    assert f"95 % CI {diff.low:.3g} to {diff.high:.3g}, Welch's t" in better["sentence"]
    same = pairs[("adam", "sgd")]
    assert not same["beyond_noise"]
    assert same["sentence"].startswith("adam vs sgd: no difference beyond the noise")


def test_a_higher_is_better_metric_turns_the_sentence_around() -> None:
    accuracy = Criteria(metric="test_accuracy", lower_is_better=False)

    def run(label: str, value: float) -> Outcome:
        return Outcome(label, "succeeded", {"steps": 10, "final_eval": {"test_accuracy": value}})

    runs = [run("adam", v) for v in (0.60, 0.61, 0.62)] + [run("sgd", v) for v in (0.40, 0.41)]
    result = summarize(runs, accuracy)
    assert result["metric_name"] == "final test accuracy"
    assert result["optimizers"][0]["final"]["mean"] == pytest.approx(0.61)
    assert result["optimizers"][0]["success"] is None
    assert result["pairs"][0]["sentence"].startswith(
        "adam has a higher final test accuracy than sgd"
    )


def test_one_seed_gives_no_interval_and_says_so() -> None:
    result = summarize([_run("adam", 1.0, 3), _run("sgd", 2.0, 4)], LOSS_TARGET)
    assert result["optimizers"][0]["final"] == {"mean": 1.0, "low": None, "high": None, "n": 1}
    assert result["pairs"][0]["sentence"] == (
        "adam vs sgd: too few runs to tell (1 and 1 with a finite final loss; "
        "Welch's t needs 2 each)."
    )
    assert result["pairs"][0]["beyond_noise"] is False


def test_diverged_runs_fail_the_success_rate_but_have_no_loss_to_average() -> None:
    runs = [_run("sgd", 1.0, 2), _run("sgd", float("nan"), None, status="diverged")]
    (summary,) = summarize(runs, LOSS_TARGET)["optimizers"]
    assert summary["final"]["n"] == 1
    assert (summary["success"]["successes"], summary["success"]["n"]) == (1, 2)


def test_criteria_from_the_target_else_the_tasks_notion_of_solved() -> None:
    cifar = {"target_metric": "test_accuracy", "target_lower_is_better": False, "task": {}}
    assert criteria_for(0.5, cifar, False) == Criteria("test_accuracy", False, "target", 0.5)
    landscape = {"target_metric": "loss", "task": {"minimum_value": 0.0}}
    assert criteria_for(None, landscape, False).success == "solved"
    assert criteria_for(None, {"task": {"minimum_value": None}}, False).success is None
    assert criteria_for(None, {}, True).success == "solved"
