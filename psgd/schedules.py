"""Preconditioner-update probability schedules.

Curvature changes more slowly than the gradient, so the preconditioner need not be fitted
every step: fit often early, then rarely, and PSGD costs about as much as SGD per step.
Schedules are small picklable callables of the step count, so optimizers holding them can
still be saved with `torch.save`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ExponentialAnneal:
    """`p(t) = clamp(exp(−rate · (t − warmup)), floor, 1)`.

    The default keeps `p = 1` for 500 steps, then decays to the floor 0.1 by step ≈1650:
    one fit every 10 steps, the seed paper's CIFAR-10 setting.
    """

    warmup: int = 500
    rate: float = 0.002
    floor: float = 0.1

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise ValueError(f"Invalid warmup: {self.warmup} (must be >= 0)")
        if not self.rate >= 0:
            raise ValueError(f"Invalid rate: {self.rate} (must be >= 0)")
        if not 0 <= self.floor <= 1:
            raise ValueError(f"Invalid floor: {self.floor} (must be in [0, 1])")

    def __call__(self, step: int) -> float:
        return min(1.0, max(self.floor, math.exp(-self.rate * (step - self.warmup))))


# Optimizer state dicts hold the schedule; let `torch.load` (weights_only) read it back.
torch.serialization.add_safe_globals([ExponentialAnneal])
