"""When a job observes itself: snapshots and evaluations spaced by what they cost.

Why: a snapshot (spectra, the path's PCA) or an evaluation can cost many training steps;
at a fixed cadence it dominated small jobs (82 % of a delayed-XOR run was spectra). Each
kind of observation measures its own cost and waits until that cost is at most `share` of
the training time since the last one, so the whole job stays within a few per cent of the
bare loop while short, cheap runs still get a point every ≈ 1 % of their steps.
"""

from __future__ import annotations

import math

#: Largest share of the job's training time each kind of observation may take.
SNAPSHOT_SHARE = 0.015  # spectra (and the fit error against |H|⁻¹ on small problems)
TRAJECTORY_SHARE = 0.015  # the position or the parameters' 64-D sketch: cheap
EVALUATION_SHARE = 0.015
#: Without a measured cost, observe every ≈ 1 % of the steps (and never more often).
DEFAULT_POINTS = 100


class Cadence:
    """Decides after which steps one kind of observation runs, and totals its cost.

    The gap after an observation that cost c seconds is
    `max(min_gap, ⌈c / (share · mean step seconds)⌉)` steps, min_gap = total/100; the last
    step is always observed. A fixed `every` (the spec's `snapshot_every`) wins over the
    measured spacing.
    """

    def __init__(self, total: int, share: float, every: int | None = None) -> None:
        self.total, self.share, self.every = total, share, every
        self.min_gap = max(1, total // DEFAULT_POINTS)
        self.last_step = 0
        self.last_cost = 0.0
        self.seconds = 0.0
        self.count = 0

    def gap(self, mean_step_seconds: float) -> int:
        if mean_step_seconds <= 0:
            return self.min_gap
        return max(self.min_gap, math.ceil(self.last_cost / (self.share * mean_step_seconds)))

    def due(self, step: int, mean_step_seconds: float) -> bool:
        if step == self.total:
            return True
        if self.every is not None:
            return step % self.every == 0
        return step - self.last_step >= self.gap(mean_step_seconds)

    def record(self, step: int, seconds: float) -> None:
        self.last_step, self.last_cost = step, seconds
        self.seconds += seconds
        self.count += 1

    def report(self) -> dict[str, float | int]:
        return {"count": self.count, "seconds": self.seconds}
