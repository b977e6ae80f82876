"""What every task provides to the runner.

A task config is a pydantic model (validated input from the CLI, the API and the UI); its
`build(device, seed)` returns a `Task`: parameters, a loss over the current batch, and
whatever the playground can show about it (a 2-D position, the exact Hessian on small
problems, evaluation metrics). The runner never needs to know which task it runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from server.strict import StrictModel

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class MemoryPart:
    """Bytes a job holds for one reason, and the task fields that set them: `shrink`
    (sizes to lower) and `change` (choices to make differently), most effective first."""

    bytes: int
    shrink: tuple[str, ...] = ()
    change: tuple[str, ...] = ()


@dataclass(frozen=True)
class TaskMemory:
    """What a task holds, from its config alone (for the submit-time memory estimate)."""

    param_shapes: tuple[tuple[int, ...], ...]
    element_bytes: int
    #: data sets, their loading and whatever else the task builds
    data: MemoryPart
    #: one loss with its backward pass (first order; Newton fitting roughly doubles it)
    activations: MemoryPart
    #: the fields that set the number of parameters
    size: MemoryPart


class TaskConfig(StrictModel):
    """Fields every task accepts; each task subclasses this with a `name` literal."""

    #: "steps", or "epochs" for dataset tasks: a job's `epochs` is refused on the others.
    budget_unit: ClassVar[str] = "steps"

    dtype: str = Field(
        "float32", pattern="^(float32|float64)$", max_length=7, description="parameter dtype"
    )

    def build(self, device: torch.device, seed: int) -> Task:
        raise NotImplementedError

    def memory_estimate(self) -> TaskMemory:
        """Peak memory of the built task, conservatively (see server/memory.py)."""
        raise NotImplementedError

    # -- held-out selection (tasks with a finite data set override these) -----------------
    #: the evaluation metric a sweep selects on by default, scored on a validation split
    #: carved from the training data; None for tasks without held-out data (landscapes,
    #: XOR's fresh batches), which a sweep scores on the task's own metric
    selection_metric: ClassVar[str | None] = None

    def with_validation_split(self) -> TaskConfig:
        """This config as a sweep stores it: tasks with data get a validation split (ValueError
        with the field's name and why when that cannot be)."""
        return self

    def scoring_test(self, test: bool) -> TaskConfig:
        """This config scoring the test split or not: a sweep's trials never do, its re-runs
        do (tasks without a test split: itself)."""
        return self

    def split_note(self) -> str | None:
        """Which data a sweep selected on and which it reports, for its results."""
        return None

    @property
    def element_bytes(self) -> int:
        return DTYPES[self.dtype].itemsize


class Task(ABC):
    """A built task on a device, ready for an optimizer."""

    #: "steps" for landscapes and XOR, "epochs" for dataset tasks (CIFAR).
    budget_unit: ClassVar[str] = "steps"
    #: the metric a target refers to and whether lower is better, e.g. ("loss", True); an
    #: instance may set its own (CIFAR: test accuracy, or validation accuracy without a test)
    target_metric: tuple[str, bool] = ("loss", True)

    @property
    @abstractmethod
    def params(self) -> list[Tensor]:
        """The trainable tensors (leaf tensors with requires_grad)."""

    @abstractmethod
    def loss(self) -> Tensor:
        """Differentiable scalar loss on the current batch; never calls backward."""

    def next_batch(self) -> None:  # noqa: B027 - deliberately optional
        """Move to the next mini-batch (no-op for deterministic landscapes)."""

    @property
    def steps_per_epoch(self) -> int | None:
        """Steps in one epoch for dataset tasks, else None."""
        return None

    def evaluate(self) -> dict[str, float]:
        """Periodic evaluation metrics (e.g. test accuracy); {} when there are none."""
        return {}

    def position(self) -> list[float] | None:
        """The 2-D point for trajectory plots on landscapes, else None."""
        return None

    def hessian(self) -> Tensor | None:
        """Exact Hessian at the current parameters on small problems, else None."""
        return None

    def solved(self, loss: float) -> bool:
        """Task-specific success (e.g. XOR batch loss < 0.1); False when undefined."""
        return False

    def describe(self) -> dict[str, Any]:
        """Static facts for plots: domain, start, known minima, parameter count."""
        return {"num_params": sum(p.numel() for p in self.params)}
