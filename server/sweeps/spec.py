"""The shape of a sweep: a task, optimizers with search spaces, a budget, an objective.

    {"task": {"name": "rosenbrock"}, "steps": 200, "trials": 20, "seeds": 5,
     "optimizers": [{"name": "adam", "tune": ["lr"]},
                    {"name": "sgd", "momentum": 0.9,
                     "space": {"lr": {"type": "float", "low": 1e-4, "high": 0.1, "log": true}}}],
     "objective": {"kind": "final", "metric": "loss"}}

Every optimizer gets the same number of trials. Fields of an optimizer entry other than
`name`, `tune` and `space` are hyperparameters held fixed in every trial (over the task's
preset and the schema's defaults, as in a comparison). The server checks what the schema
cannot say alone (each range against the optimizer's field bounds, the step limit, memory)
in server/sweeps/validate.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from server.strict import StrictModel
from server.sweeps.space import Param
from server.tasks import AnyTaskConfig

#: trials one sweep may run over all its optimizers: a larger one is refused (422, `trials`)
MAX_SWEEP_TRIALS = 1000
ObjectiveKind = Literal[
    "final", "best", "steps_to_target", "seconds_to_target", "evaluations_to_target"
]
TO_TARGET: tuple[str, ...] = ("steps_to_target", "seconds_to_target", "evaluations_to_target")
#: "evaluations": gradient evaluations + Hessian-vector products (each about one backward
#: pass), as the comparison summary counts them
WorkCounter = Literal[
    "evaluations", "gradient_evaluations", "function_evaluations", "hessian_vector_products"
]


class SweepOptimizer(StrictModel):
    """One optimizer of a sweep: what to search (`tune`: default ranges, `space`: given
    ranges) and, as extra fields, the hyperparameters held fixed."""

    model_config = ConfigDict(extra="allow")

    name: str
    tune: list[str] = Field([], max_length=32, description="hyperparameters, default ranges")
    space: dict[str, Param] = Field({}, description="hyperparameters with their own ranges")

    @property
    def fixed(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @model_validator(mode="after")
    def _something_to_tune(self) -> SweepOptimizer:
        if not self.tune and not self.space:
            raise ValueError("name a hyperparameter to search in tune or space")
        both = sorted(set(self.tune) & set(self.space))
        fixed = sorted(set(self.fixed) & {*self.tune, *self.space})
        if both or fixed:
            raise ValueError(f"{', '.join(both or fixed)} given twice (tune, space or fixed)")
        return self


class Objective(StrictModel):
    """What a trial scores. `final` / `best`: the metric at the end or its best (`loss`,
    or an evaluation metric such as `accuracy`); `steps_to_target`, `seconds_to_target`,
    `evaluations_to_target` (of `counter`, cumulative): how soon the task's metric reaches
    `target` (a trial that never does is `missed`)."""

    kind: ObjectiveKind = "final"
    metric: str = Field("loss", min_length=1, max_length=64)
    direction: Literal["minimize", "maximize"] | None = Field(
        None, description="default: minimize a loss or a time, maximize an accuracy"
    )
    target: float | None = Field(None, description="target of the task's metric (to_target)")
    counter: WorkCounter = Field(
        "evaluations", description="what evaluations_to_target counts (cumulative)"
    )

    @model_validator(mode="after")
    def _consistent(self) -> Objective:
        if self.kind in TO_TARGET:
            if self.target is None:
                raise ValueError(f"kind {self.kind!r} needs a target")
            if self.direction == "maximize":
                raise ValueError(f"kind {self.kind!r} is minimized")
            if "metric" in self.model_fields_set:
                raise ValueError(f"kind {self.kind!r} measures the task's own target metric")
        elif self.direction is None and not _known_direction(self.metric):
            raise ValueError(f"give the direction of metric {self.metric!r}")
        return self

    @property
    def minimize(self) -> bool:
        if self.kind in TO_TARGET:
            return True
        if self.direction is not None:
            return self.direction == "minimize"
        return "acc" not in self.metric.lower()


def _known_direction(metric: str) -> bool:
    lower = metric.lower()
    return "loss" in lower or "acc" in lower


class Pruning(StrictModel):
    """Optuna's MedianPruner: stop a trial whose value at a step is worse than the median
    of the finished trials' values at that step."""

    startup_trials: int = Field(3, ge=0, le=100, description="finished trials before pruning")
    warmup_steps: int = Field(0, ge=0, description="steps of a trial before it may be pruned")


class SweepSpec(StrictModel):
    """A tuning sweep with an equal trial budget per optimizer, then re-runs of each best."""

    task: AnyTaskConfig
    optimizers: list[SweepOptimizer] = Field(min_length=1, max_length=8)
    trials: int = Field(20, ge=1, le=MAX_SWEEP_TRIALS, description="trials per optimizer")
    objective: Objective = Field(default_factory=Objective)
    pruning: Pruning | None = Field(None, description="prune bad trials (final/best only)")
    parallel: int = Field(1, ge=1, le=64, description="trials in flight at once")
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = Field(
        0, ge=0, lt=2**31, description="the trials' seed and the sampler's; re-runs use the next"
    )
    seeds: int = Field(3, ge=0, le=64, description="fresh seeds each best is re-run on")
    steps: int | None = Field(None, ge=1)
    epochs: int | None = Field(None, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    snapshot_every: int | None = Field(None, ge=1)
    max_seconds: float | None = Field(None, gt=0)

    def job_fields(self, rerun: bool) -> dict[str, Any]:
        """The fields of a trial's or a re-run's job (task and budget), as JSON: a task with
        data scores its test split in the re-runs only (held-out selection)."""
        shared = {"steps", "epochs", "device", "snapshot_every", "max_seconds"}
        fields = {
            **self.model_dump(mode="json", include=shared),
            "task": self.task.scoring_test(rerun).model_dump(mode="json"),
            "target": self.objective.target,
        }
        return {name: value for name, value in fields.items() if value is not None}

    def rerun_seeds(self) -> list[int]:
        return [self.seed + 1 + i for i in range(self.seeds)]
