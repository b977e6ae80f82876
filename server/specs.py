"""What a user asks to run: a job (one optimizer, one seed) or a comparison (optimizers ×
seeds on one task), each defined once and validated once.

The API takes them as its request bodies (FastAPI validates them and writes their
OpenAPI schema), the job service takes them from the CLI and sweeps (as models, or as
dicts through `parse_job` / `parse_comparison`), and the runner reads them. The task's
preset fills an optimizer's unspecified hyperparameters inside the models' validation,
so no caller merges presets itself. A stored spec is already valid: `stored_job`
rebuilds its model for a worker without validating it again.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from server.errors import InvalidSpec, validation_message
from server.optimizers import REGISTRY, AnyOptimizerConfig, with_task_preset
from server.strict import StrictModel
from server.tasks import TASKS, AnyTaskConfig

Seed = Annotated[int, Field(ge=0, lt=2**31, description="seed of data, init and optimizer")]


class _Run(StrictModel):
    """What a job and a comparison share: the task, the budget and where it runs."""

    task: AnyTaskConfig
    steps: int | None = Field(None, ge=1, description="optimizer steps (default 500)")
    epochs: int | None = Field(
        None, ge=1, description="epochs, for dataset tasks only (default 5); not with steps"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    snapshot_every: int | None = Field(
        None, ge=1, description="steps between spectrum/trajectory snapshots (default ≈ 1 %)"
    )
    target: float | None = Field(
        None, description="target of the task's metric (loss, or test accuracy for CIFAR)"
    )
    max_seconds: float | None = Field(None, gt=0, description="wall-clock limit of this job")
    stop_when_solved: bool = Field(
        False,
        description="end the job (succeeded) at the first step the task counts as solved, "
        "or at which `target` is reached when one is given: steps-to-solve runs then cost "
        "what they measure",
    )

    @field_validator("epochs")
    @classmethod
    def _epochs_only_for_epoch_tasks(cls, epochs: int | None, info: ValidationInfo) -> int | None:
        """Refuse an `epochs` the runner would ignore (it used to run 500 steps instead)."""
        task = info.data.get("task")
        if epochs is None or task is None:
            return epochs
        if task.budget_unit != "epochs":
            raise ValueError(f"task {task.name!r} has no epochs; give steps instead")
        if info.data.get("steps") is not None:
            raise ValueError("give steps or epochs, not both")
        return epochs

    @model_validator(mode="before")
    @classmethod
    def _apply_task_preset(cls, data: Any) -> Any:
        """Fill each optimizer's unspecified hyperparameters from the task's preset."""
        if not isinstance(data, dict):
            return data
        task = data.get("task")
        task_name = task.get("name") if isinstance(task, dict) else getattr(task, "name", None)
        data = dict(data)
        if "optimizer" in data:
            data["optimizer"] = with_task_preset(data["optimizer"], task_name)
        if isinstance(data.get("optimizers"), list):
            data["optimizers"] = [with_task_preset(o, task_name) for o in data["optimizers"]]
        return data


class JobSpec(_Run):
    """One run: a task, an optimizer with its hyperparameters, a budget and a seed."""

    optimizer: AnyOptimizerConfig
    seed: Seed = 0


class ComparisonSpec(_Run):
    """One task, several optimizers × seeds: the shape of a comparison everywhere."""

    optimizers: list[AnyOptimizerConfig] = Field(min_length=1, max_length=32)
    seeds: list[Seed] = Field([0], min_length=1, max_length=64)


class LabelledJob(NamedTuple):
    """A job of a comparison with its identity: `optimizer_label` tells apart two entries
    with the same optimizer name ("adam", "adam#2")."""

    optimizer_label: str
    spec: JobSpec

    @property
    def label(self) -> str:
        return job_label(self.optimizer_label, self.spec.seed)


def expand(comparison: ComparisonSpec) -> list[LabelledJob]:
    """Every (optimizer, seed) pair as a job, optimizers outermost; nothing is validated
    again (the comparison's parts already are)."""
    shared = {name: getattr(comparison, name) for name in _Run.model_fields}
    labels = optimizer_labels([o.name for o in comparison.optimizers])
    return [
        LabelledJob(label, JobSpec.model_construct(**shared, optimizer=optimizer, seed=seed))
        for label, optimizer in zip(labels, comparison.optimizers)
        for seed in comparison.seeds
    ]


def optimizer_labels(names: list[str]) -> list[str]:
    """One label per optimizer entry: its name, with "#k" on the k-th repeat of a name."""
    seen: Counter[str] = Counter()
    labels = []
    for name in names:
        seen[name] += 1
        labels.append(name if seen[name] == 1 else f"{name}#{seen[name]}")
    return labels


def job_label(optimizer_label: str, seed: int) -> str:
    return f"{optimizer_label} seed={seed}"


def parse_job(data: dict[str, Any] | JobSpec) -> JobSpec:
    """`data` as a JobSpec, or InvalidSpec naming the bad fields."""
    return _parse(JobSpec, data)


def parse_comparison(data: dict[str, Any] | ComparisonSpec) -> ComparisonSpec:
    """`data` as a ComparisonSpec, or InvalidSpec naming the bad fields."""
    return _parse(ComparisonSpec, data)


def _parse(model: Any, data: Any) -> Any:
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise InvalidSpec(validation_message(error.errors(), data, model=model)) from error


def stored_job(data: dict[str, Any]) -> JobSpec:
    """A stored (validated, dumped) JobSpec as a model again, without validating it: the
    spec a worker receives was checked once, when it was submitted."""
    task, optimizer = data["task"], data["optimizer"]
    try:
        task_class, optimizer_class = TASKS[task["name"]], REGISTRY[optimizer["name"]]
    except KeyError as error:  # a spec stored by a version with other tasks or optimizers
        raise InvalidSpec(f"no task or optimizer named {error}") from error
    return JobSpec.model_construct(
        **{
            **data,
            "task": task_class.model_construct(**task),
            "optimizer": optimizer_class.model_construct(**optimizer),
        }
    )
