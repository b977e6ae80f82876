"""A comparison's results over seeds: per optimizer the loss with a 95 % interval, the
success rate with a Wilson interval and the steps, evaluations and seconds to the target
(unsolved seeds censored, not dropped); per pair of optimizers a sentence saying whether
their difference is beyond the noise (Welch's t).

`summarize` works on plain run outcomes, so the CLI (runs in hand) and the API (runs in
the store, `comparison_summary`) say the same thing; the numbers come from `server.stats`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from itertools import combinations
from typing import TYPE_CHECKING, Any

from server import stats
from server.events import ACTIVE_STATUSES

if TYPE_CHECKING:
    from server.jobs.store import JobStore

#: statuses whose runs are outcomes of the optimizer; failed (an error), cancelled and
#: interrupted runs say nothing about it and are left out (and counted as such)
OUTCOMES = ("succeeded", "diverged")
#: the work axes of "to target", each read from a run's summary
TO_TARGET_AXES = ("steps", "evaluations", "function_evaluations", "seconds")


@dataclass(frozen=True)
class Outcome:
    """One run: its optimizer label, final status and the runner's summary."""

    label: str
    status: str
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Criteria:
    """What the comparison is judged on: the metric (key of the final value in a run's
    summary, or of its final evaluation) and what success is ("target", "solved" or None)."""

    metric: str = "loss"
    lower_is_better: bool = True
    success: str | None = None
    target: float | None = None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def final_value(run: Outcome, metric: str) -> float | None:
    """The run's final value of the comparison's metric (None when it has none)."""
    if metric == "loss":
        value = run.summary.get("final_loss") if run.summary.get("steps") else None
    else:
        value = (run.summary.get("final_eval") or {}).get(metric)
    return float(value) if _finite(value) else None


def _interval(values: list[float]) -> dict[str, Any] | None:
    if not values:
        return None
    interval = stats.mean_interval(values)
    return {"mean": interval.estimate, "low": interval.low, "high": interval.high, "n": interval.n}


def evaluations_to(summary: dict[str, Any], success: str) -> int | None:
    """Gradient evaluations + Hessian-vector products until a run's first success
    (`success` "target" or "solved"), from its summary; None when it never succeeded or
    was recorded before the work counters."""
    work = summary.get(f"{success}_work")
    return work["gradient_evaluations"] + work["hessian_vector_products"] if work else None


def _reached(run: Outcome, success: str) -> dict[str, Any] | None:
    """Where the run first met the success criterion, on every axis; None if it never did.
    Axes a run recorded before the work counters existed are None."""
    step = run.summary.get(f"{success}_step")
    if step is None:
        return None
    work = run.summary.get(f"{success}_work")
    seconds = run.summary.get(f"{success}_seconds")
    return {
        "steps": step,
        "evaluations": evaluations_to(run.summary, success),
        "function_evaluations": work["function_evaluations"] if work else None,
        "seconds": seconds if _finite(seconds) else None,
    }


def _to_target(runs: list[Outcome], success: str) -> dict[str, Any]:
    """Per axis the censored spread: a run that never succeeded is censored beyond every
    run that did; a run that succeeded without a value on an axis (older) is left out."""
    reached = [_reached(run, success) for run in runs]
    spreads = {}
    for axis in TO_TARGET_AXES:
        values = [
            None if r is None else r[axis] for r in reached if r is None or r[axis] is not None
        ]
        spreads[axis] = asdict(stats.censored_spread(values))
    return spreads


def _optimizer_summary(label: str, runs: list[Outcome], criteria: Criteria) -> dict[str, Any]:
    counted = [run for run in runs if run.status in OUTCOMES]
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run.status] = statuses.get(run.status, 0) + 1
    values = [v for run in counted if (v := final_value(run, criteria.metric)) is not None]
    best = [
        float(run.summary["best_loss"]) for run in counted if _finite(run.summary.get("best_loss"))
    ]
    summary: dict[str, Any] = {
        "label": label,
        "runs": len(runs),
        "counted": len(counted),
        "statuses": statuses,
        "final": _interval(values),
        "best_loss": _interval(best),
        "success": None,
        "to_target": None,
    }
    if criteria.success and counted:
        successes = sum(run.summary.get(f"{criteria.success}_step") is not None for run in counted)
        rate = stats.wilson_interval(successes, len(counted))
        summary["success"] = {
            "successes": successes,
            "n": len(counted),
            "rate": rate.estimate,
            "low": rate.low,
            "high": rate.high,
        }
        summary["to_target"] = _to_target(counted, criteria.success)
    return summary


def _number(value: float) -> str:
    return f"{value:.3g}"


def number_text(value: float | None) -> str:
    """A value for a table cell: three significant digits, "–" for none."""
    return "–" if value is None else _number(value)


def spread_text(spread: dict[str, Any] | None) -> str:
    """A censored spread as "median [IQR q1–q3]", or how many reached when fewer than
    half did (the others never got there within the budget)."""
    if not spread or not spread.get("n"):
        return "–"
    if spread["median"] is None:
        return f"> budget ({spread['reached']}/{spread['n']} reached)"
    upper = number_text(spread["q3"]) if spread["q3"] is not None else "beyond the budget"
    return f"{number_text(spread['median'])} [IQR {number_text(spread['q1'])}–{upper}]"


def _metric_name(metric: str) -> str:
    return "final loss" if metric == "loss" else f"final {metric.replace('_', ' ')}"


def pair_sentence(
    a: str, b: str, values_a: Sequence[float], values_b: Sequence[float], criteria: Criteria
) -> tuple[str, stats.Difference | None]:
    """One plain sentence on whether `a` and `b` differ beyond the seeds' noise."""
    what = _metric_name(criteria.metric)
    difference = stats.welch(values_a, values_b)
    if difference is None:
        return (
            f"{a} vs {b}: too few runs to tell ({len(values_a)} and {len(values_b)} with a "
            f"finite {what}; Welch's t needs 2 each).",
            None,
        )
    interval = (
        f"{what} difference {a} − {b} = {_number(difference.difference)}, 95 % CI "
        f"{_number(difference.low)} to {_number(difference.high)}, Welch's t, "
        f"p = {difference.p_value:.2g}, {len(values_a)} and {len(values_b)} runs"
    )
    if not difference.beyond_noise:
        return f"{a} vs {b}: no difference beyond the noise ({interval}).", difference
    a_better = (difference.difference < 0) == criteria.lower_is_better
    better, worse = (a, b) if a_better else (b, a)
    direction = "lower" if criteria.lower_is_better else "higher"
    sentence = f"{better} has a {direction} {what} than {worse}, beyond the noise ({interval})."
    return sentence, difference


def summarize(runs: list[Outcome], criteria: Criteria) -> dict[str, Any]:
    """Per optimizer (in the order of first appearance) and per pair: see the module doc."""
    groups: dict[str, list[Outcome]] = {}
    for run in runs:
        groups.setdefault(run.label, []).append(run)
    finals = {
        label: [
            v
            for run in group
            if run.status in OUTCOMES and (v := final_value(run, criteria.metric)) is not None
        ]
        for label, group in groups.items()
    }
    pairs = []
    for a, b in combinations(groups, 2):
        sentence, difference = pair_sentence(a, b, finals[a], finals[b], criteria)
        pairs.append(
            {
                "a": a,
                "b": b,
                "sentence": sentence,
                **(asdict(difference) if difference else {}),
                "beyond_noise": bool(difference and difference.beyond_noise),
            }
        )
    return {
        "level": stats.LEVEL,
        "metric": criteria.metric,
        "metric_name": _metric_name(criteria.metric),
        "lower_is_better": criteria.lower_is_better,
        "success": criteria.success,
        "target": criteria.target,
        "optimizers": [
            _optimizer_summary(label, group, criteria) for label, group in groups.items()
        ],
        "pairs": pairs,
    }


def criteria_for(target: float | None, meta: dict[str, Any], solved_seen: bool) -> Criteria:
    """The comparison's criteria from its target and a run's `started` meta: the task's
    target metric, and success as reaching the target, else as solving the task when it
    knows what solved means (a known minimum or a solved threshold)."""
    metric = meta.get("target_metric") or "loss"
    lower = meta.get("target_lower_is_better", "loss" in metric)
    task = meta.get("task") or {}
    solvable = solved_seen or task.get("minimum_value") is not None or "solved_threshold" in task
    success = "target" if target is not None else ("solved" if solvable else None)
    return Criteria(metric=metric, lower_is_better=lower, success=success, target=target)


def comparison_summary(store: JobStore, comparison: dict[str, Any]) -> dict[str, Any]:
    """`summarize` of a stored comparison (as `JobService.comparison` returns it), with the
    number of runs still queued or running (left out until they end)."""
    spec = comparison.get("spec") or {}
    runs, pending, meta = [], 0, {}
    for job_id in comparison.get("job_ids") or []:
        job = store.get_job(job_id)
        if job is None:
            continue
        if job["status"] in ACTIVE_STATUSES:
            pending += 1
            continue
        if not meta:
            first = store.events([job_id], 0, 1)
            if first and first[0]["event"].get("type") == "started":
                meta = first[0]["event"].get("meta") or {}
        runs.append(Outcome(job["optimizer_label"], job["status"], job.get("summary") or {}))
    solved_seen = any(run.summary.get("solved_step") is not None for run in runs)
    criteria = criteria_for(spec.get("target"), meta, solved_seen)
    return {"comparison_id": comparison["id"], "pending": pending, **summarize(runs, criteria)}
