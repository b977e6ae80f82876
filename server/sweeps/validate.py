"""A sweep spec checked as the job service checks jobs, with every search space resolved.

The result is the spec to store: each optimizer's `tune` names replaced by their derived
ranges in `space`, so the stored sweep says exactly what was searched, and a resumed sweep
searches the same space even if a preset changed meanwhile. Errors are InvalidSpec with a
one-line message naming the field (`optimizers[1].space.lr: ...`, `trials: ...`).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError

from server.errors import InvalidSpec, validation_message
from server.jobs.service import JobService
from server.optimizers import REGISTRY, optimizer_config
from server.sweeps.space import SpaceError, bounds_samples, default_param
from server.sweeps.spec import MAX_SWEEP_TRIALS, TO_TARGET, SweepOptimizer, SweepSpec


def validate_sweep(jobs: JobService, data: dict[str, Any] | SweepSpec) -> SweepSpec:
    """The spec, resolved and checked against this server's limits, or InvalidSpec."""
    try:
        spec = data if isinstance(data, SweepSpec) else SweepSpec.model_validate(data)
    except ValidationError as e:
        raise InvalidSpec(validation_message(e.errors(), data)) from e
    _check_budget(jobs, spec)
    spec = _held_out(spec)
    resolved = [
        _resolve(jobs, spec, optimizer, f"optimizers[{i}]", spec.task.name)
        for i, optimizer in enumerate(spec.optimizers)
    ]
    return spec.model_copy(update={"optimizers": resolved})


def _check_budget(jobs: JobService, spec: SweepSpec) -> None:
    settings = jobs.settings
    total = spec.trials * len(spec.optimizers)
    if total > MAX_SWEEP_TRIALS:
        raise InvalidSpec(
            f"trials: {spec.trials} × {len(spec.optimizers)} optimizers = {total} trials, "
            f"more than a sweep may run ({MAX_SWEEP_TRIALS})"
        )
    if spec.pruning is not None and spec.objective.kind in TO_TARGET:
        raise InvalidSpec("pruning: only with a final or best objective")
    if spec.parallel > settings.max_queued:
        raise InvalidSpec(
            f"parallel: {spec.parallel} exceeds the jobs this server queues ({settings.max_queued})"
        )
    reruns = spec.seeds * len(spec.optimizers)
    if reruns > settings.max_queued:
        raise InvalidSpec(
            f"seeds: {spec.seeds} × {len(spec.optimizers)} optimizers = {reruns} re-runs, "
            f"more than this server queues ({settings.max_queued})"
        )


def _held_out(spec: SweepSpec) -> SweepSpec:
    """Selection on held-out data: a task with data gets its validation split, the
    objective's metric defaults to the validation one, and a test metric is refused (the
    trials never score the test split; the re-runs report it)."""
    metric = spec.objective.metric
    if spec.objective.kind not in TO_TARGET and metric.lower().startswith("test"):
        raise InvalidSpec(
            f"objective.metric: {metric!r} is scored on the test split, which a sweep's "
            f"trials never see (its re-runs report it); select on a validation metric, "
            f"e.g. {spec.task.selection_metric or 'loss'!r}"
        )
    try:  # stored as the trials run it; the re-runs score the test split (job_fields)
        task = spec.task.with_validation_split().scoring_test(False)
    except ValueError as e:
        raise InvalidSpec(f"task.{e}") from e
    objective = spec.objective
    selection = task.selection_metric
    chosen = objective.kind in TO_TARGET or "metric" in objective.model_fields_set
    if selection is not None and not chosen:
        objective = objective.model_copy(update={"metric": selection})
    return spec.model_copy(update={"task": task, "objective": objective})


def _resolve(
    jobs: JobService, spec: SweepSpec, optimizer: SweepOptimizer, at: str, task: str
) -> SweepOptimizer:
    schema = REGISTRY.get(optimizer.name)
    if schema is None:
        raise InvalidSpec(f"{at}.name: unknown optimizer {optimizer.name!r}; known: {_names()}")
    fixed = {"name": optimizer.name, **optimizer.fixed}
    _check_job(jobs, spec, fixed, at)
    config = optimizer_config(fixed, task)
    space = dict(optimizer.space)
    for name in optimizer.tune:
        try:
            space[name] = default_param(schema, name, getattr(config, name, None))
        except SpaceError as e:
            raise InvalidSpec(f"{at}.tune.{name}: {e}") from e
    for name, param in optimizer.space.items():
        if name == "name" or name not in schema.model_fields:
            raise InvalidSpec(f"{at}.space.{name}: {optimizer.name} has no such hyperparameter")
        for value in bounds_samples(param):
            _check_job(jobs, spec, {**fixed, name: value}, f"{at}.space")
    return SweepOptimizer.model_validate({**fixed, "space": space})


def _check_job(jobs: JobService, spec: SweepSpec, optimizer: dict[str, Any], at: str) -> None:
    """Validate one trial job and its re-run (which scores the test split too) as the job
    service would; their errors renamed to `at`."""
    try:
        for rerun in (False, True):
            job = {**spec.job_fields(rerun), "optimizer": optimizer, "seed": spec.seed}
            jobs.validate_job(job)
    except InvalidSpec as e:
        raise InvalidSpec(re.sub(r"(^|; )optimizer(?=[.:])", rf"\g<1>{at}", str(e))) from e


def _names() -> str:
    return ", ".join(REGISTRY)
