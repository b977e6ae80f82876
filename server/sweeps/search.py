"""The search itself, as pure functions of the persisted trials: Optuna asks, prunes, scores.

Why a fresh Optuna study per question: the sweep's trials live in the store, and a study
rebuilt from them (`study.add_trial`) with a sampler seeded by (sweep seed, optimizer, trial
number) asks exactly what it would have asked in an uninterrupted run. So a sweep resumed
after a restart continues as it would have, and the same sweep twice gives the same trials.
For that, trial k is asked from trials 0 … k − parallel only (the runner waits for them):
which other trials happened to have finished by then does not matter.

Finished trials other than `complete` (diverged, failed, missed the target, pruned,
cancelled) are told to Optuna as pruned, with whatever intermediate values they reported:
the TPE sampler ranks them below every complete trial, and no made-up value enters the
search.
"""

from __future__ import annotations

import math
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.pruners import MedianPruner
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import TrialState, create_trial

from server.sweeps.space import distribution
from server.sweeps.spec import TO_TARGET, Objective, Pruning, SweepOptimizer

optuna.logging.set_verbosity(optuna.logging.WARNING)

#: trial statuses; `running` is the only one not finished
FINISHED = ("complete", "pruned", "diverged", "failed", "missed", "cancelled")
#: intermediate values recorded per trial for the pruner (loss objectives: this many steps)
CHECKPOINTS = 20
Trial = dict[str, Any]


def distributions(optimizer: SweepOptimizer) -> dict[str, BaseDistribution]:
    return {name: distribution(param) for name, param in sorted(optimizer.space.items())}


def trial_seed(sweep_seed: int, optimizer_index: int, number: int) -> int:
    """The sampler's seed for one question: fixed by the sweep, the optimizer and the trial."""
    return (sweep_seed * 1_000_003 + optimizer_index * 10_007 + number) % 2**32


def ask(
    optimizer: SweepOptimizer,
    told: list[Trial],
    minimize: bool,
    sampler: str,
    seed: int,
) -> dict[str, Any]:
    """The next trial's hyperparameters, given the finished trials `told` (in order)."""
    study = _study(optimizer, told, minimize, _sampler(sampler, seed))
    return study.ask(distributions(optimizer)).params


def should_prune(
    pruning: Pruning,
    optimizer: SweepOptimizer,
    finished: list[Trial],
    minimize: bool,
    intermediate: dict[int, float],
) -> bool:
    """Whether MedianPruner stops a running trial with these intermediate values."""
    if not intermediate:
        return False
    study = _study(optimizer, finished, minimize, RandomSampler(seed=0))
    running = create_trial(
        state=TrialState.RUNNING,
        params={},
        distributions={},
        intermediate_values=intermediate,
    )
    pruner = MedianPruner(
        n_startup_trials=pruning.startup_trials, n_warmup_steps=pruning.warmup_steps
    )
    return pruner.prune(study, running)


def _study(
    optimizer: SweepOptimizer, told: list[Trial], minimize: bool, sampler: BaseSampler
) -> optuna.Study:
    study = optuna.create_study(
        direction="minimize" if minimize else "maximize",
        sampler=sampler,
        pruner=optuna.pruners.NopPruner(),
    )
    dists = distributions(optimizer)
    for trial in told:
        complete = trial["status"] == "complete"
        study.add_trial(
            create_trial(
                state=TrialState.COMPLETE if complete else TrialState.PRUNED,
                value=trial["value"] if complete else None,
                params=trial["params"],
                distributions=dists,
                intermediate_values=_steps(trial.get("intermediate") or {}),
            )
        )
    return study


def _sampler(kind: str, seed: int) -> BaseSampler:
    return RandomSampler(seed=seed) if kind == "random" else TPESampler(seed=seed)


def _steps(intermediate: dict[Any, float]) -> dict[int, float]:
    """Stored JSON has string keys; Optuna wants step numbers."""
    return {int(step): value for step, value in intermediate.items() if _finite(value)}


# ---------------------------------------------------------------------- scoring
def observe(
    objective: Objective, events: list[dict[str, Any]], intermediate: dict[str, float], every: int
) -> bool:
    """Add the objective's metric from a trial's new events to `intermediate` (step → raw
    value: a loss every `every` steps, an evaluation metric at every evaluation); returns
    whether anything was added."""
    added = False
    for event in events:
        kind, step = event.get("type"), event.get("step")
        if not isinstance(step, int):
            continue
        if objective.metric == "loss" and kind == "metrics":
            due = step // every > max((int(s) // every for s in intermediate), default=-1)
            value = event.get("loss")
        elif objective.metric != "loss" and kind == "eval":
            due, value = True, (event.get("metrics") or {}).get(objective.metric)
        else:
            continue
        if due and _finite(value):
            intermediate[str(step)] = float(value)
            added = True
    return added


def reported(objective: Objective, intermediate: dict[str, float]) -> dict[int, float]:
    """The values the pruner sees: the raw ones (final) or the best so far (best)."""
    steps = sorted(_steps(intermediate).items())
    if objective.kind != "best":
        return dict(steps)
    pick = min if objective.minimize else max
    out, best = {}, None
    for step, value in steps:
        best = value if best is None else pick(best, value)
        out[step] = best
    return out


def outcome(
    objective: Objective, job: dict[str, Any], intermediate: dict[str, float]
) -> tuple[str, float | None, str]:
    """(trial status, value, message) of a trial whose job has ended."""
    status, message = job["status"], job.get("message") or ""
    if status != "succeeded":
        trial_status = status if status in ("diverged", "failed", "cancelled") else "failed"
        return trial_status, None, message or f"the job ended {status}"
    summary = job.get("summary") or {}
    value: Any
    if objective.kind in TO_TARGET:
        value = _to_target(objective, summary)
        if value is None:
            return "missed", None, f"did not reach the target {objective.target}"
    elif objective.metric == "loss":
        value = summary.get("final_loss" if objective.kind == "final" else "best_loss")
    elif objective.kind == "final":
        value = (summary.get("final_eval") or {}).get(objective.metric)
    else:
        values = list(_steps(intermediate).values())
        value = (min if objective.minimize else max)(values) if values else None
    if not _finite(value):
        return "failed", None, f"the job reported no finite {objective.metric}"
    return "complete", float(value), ""


def _to_target(objective: Objective, summary: dict[str, Any]) -> Any:
    if objective.kind == "steps_to_target":
        return summary.get("target_step")
    if objective.kind == "seconds_to_target":
        return summary.get("target_seconds")
    work = summary.get("target_work") or {}
    if objective.counter == "evaluations" and work:
        return work["gradient_evaluations"] + work["hessian_vector_products"]
    return work.get(objective.counter)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def best_trial(trials: list[Trial], minimize: bool) -> Trial | None:
    """The complete trial with the best value (the earliest among equals)."""
    complete = [t for t in trials if t["status"] == "complete"]
    if not complete:
        return None
    sign = 1 if minimize else -1
    return min(complete, key=lambda t: (sign * t["value"], t["number"]))


def best_so_far(trials: list[Trial], minimize: bool) -> list[dict[str, Any]]:
    """Per finished trial in number order, the best value up to it (None before any)."""
    out, best = [], None
    for trial in sorted(trials, key=lambda t: t["number"]):
        if trial["status"] not in FINISHED:
            continue
        value = trial["value"] if trial["status"] == "complete" else None
        if value is not None and (best is None or (value < best if minimize else value > best)):
            best = value
        out.append({"number": trial["number"], "value": value, "best": best})
    return out
