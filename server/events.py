"""The typed events a job emits, in order: started, then metrics / eval / spectrum /
trajectory as the run goes, and exactly one final status.

They are pydantic models so every consumer (CLI, job store, SSE stream, UI) reads the
same schema; `event.model_dump()` is the wire format.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

STATUSES = ("queued", "running", "succeeded", "diverged", "failed", "cancelled", "interrupted")
#: how a run ends; a job can also end `interrupted`, written by a restarted server (never by
#: a worker) for a job its predecessor left running
FINAL_STATUSES = ("succeeded", "diverged", "failed", "cancelled")


class Started(BaseModel):
    type: Literal["started"] = "started"
    step: int = 0
    total_steps: int
    meta: dict[str, Any] = Field(description="versions, device, seed, task and optimizer facts")


class Metrics(BaseModel):
    type: Literal["metrics"] = "metrics"
    step: int
    loss: float
    grad_norm: float
    lr: float
    step_time: float = Field(description="wall seconds of this step")
    elapsed: float = Field(description="wall seconds since the run started")


class Evaluation(BaseModel):
    type: Literal["eval"] = "eval"
    step: int
    epoch: float
    metrics: dict[str, float]


class Spectrum(BaseModel):
    type: Literal["spectrum"] = "spectrum"
    step: int
    spectra: dict[str, list[float]] = Field(
        description="sorted eigenvalues of P per preconditioner (≤ 256 values each)"
    )
    estimated: list[str] = Field(
        default_factory=list,
        description="preconditioners whose values are bounded estimates, not exact eigenvalues",
    )
    inverse_hessian: list[float] | None = Field(
        None, description="sorted eigenvalues of |H|⁻¹ at the current point (small problems)"
    )


class Trajectory(BaseModel):
    type: Literal["trajectory"] = "trajectory"
    step: int
    point: list[float] | None = Field(None, description="2-D position on a landscape")
    path: list[list[float]] | None = Field(
        None, description="PCA projection of the parameter path so far (high-dim tasks)"
    )
    path_steps: list[int] | None = None
    explained_variance: list[float] | None = None


class Status(BaseModel):
    type: Literal["status"] = "status"
    step: int
    status: Literal["succeeded", "diverged", "failed", "cancelled", "interrupted"]
    message: str = ""
    summary: dict[str, Any] = Field(default_factory=dict)


Event = Annotated[
    Started | Metrics | Evaluation | Spectrum | Trajectory | Status, Field(discriminator="type")
]
