"""What every task provides to the runner.

A task config is a pydantic model (validated input from the CLI, the API and the UI); its
`build(device, seed)` returns a `Task`: parameters, a loss over the current batch, and
whatever the playground can show about it (a 2-D position, the exact Hessian on small
problems, evaluation metrics). The runner never needs to know which task it runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TaskConfig(BaseModel):
    """Fields every task accepts; each task subclasses this with a `name` literal."""

    model_config = ConfigDict(extra="forbid")

    dtype: str = Field("float32", pattern="^(float32|float64)$", description="parameter dtype")

    def build(self, device: torch.device, seed: int) -> Task:
        raise NotImplementedError


class Task(ABC):
    """A built task on a device, ready for an optimizer."""

    #: "steps" for landscapes and XOR, "epochs" for dataset tasks (CIFAR).
    budget_unit: ClassVar[str] = "steps"
    #: the metric a target refers to and whether lower is better, e.g. ("loss", True).
    target_metric: ClassVar[tuple[str, bool]] = ("loss", True)

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
