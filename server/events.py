"""The typed events a job emits, in order: started, then metrics / eval / spectrum /
trajectory as the run goes, and exactly one final status.

They are pydantic models so every consumer (CLI, job store, SSE stream, UI) reads the
same schema; `event.model_dump()` is the wire format, and the UI's client parses the stream
back into these models (`StreamMessage`). JSON has no NaN or infinity: the API writes them
as null (server/jsonable.py), and a `JsonFloat` reads null back as NaN.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, BeforeValidator, Field

#: how a run ends (a worker's final status event says which)
FinalStatus = Literal["succeeded", "diverged", "failed", "cancelled"]
#: a job ends `interrupted` too, written by a restarted server (never by a worker) for a job
#: its predecessor left running; an ended job gets no more events
EndedStatus = Literal[FinalStatus, "interrupted"]
ActiveStatus = Literal["queued", "running"]
JobStatus = Literal[ActiveStatus, EndedStatus]

FINAL_STATUSES: tuple[str, ...] = get_args(FinalStatus)
ENDED_STATUSES: tuple[str, ...] = get_args(EndedStatus)
ACTIVE_STATUSES: tuple[str, ...] = get_args(ActiveStatus)
STATUSES: tuple[str, ...] = get_args(JobStatus)


def _nan_if_null(value: Any) -> Any:
    return math.nan if value is None else value


#: a float as the API sends it: null stands for a non-finite value (a diverged loss)
JsonFloat = Annotated[float, BeforeValidator(_nan_if_null)]


class Started(BaseModel):
    type: Literal["started"] = "started"
    step: int = 0
    total_steps: int
    meta: dict[str, Any] = Field(description="versions, device, seed, task and optimizer facts")


class Metrics(BaseModel):
    type: Literal["metrics"] = "metrics"
    step: int
    loss: JsonFloat
    grad_norm: JsonFloat
    lr: JsonFloat
    step_time: JsonFloat = Field(description="wall seconds of this step")
    elapsed: JsonFloat = Field(
        description="wall seconds since step 1 began (set-up excluded: see the summary's "
        "setup_seconds)"
    )
    function_evaluations: int | None = Field(
        None,
        description="loss evaluations so far, cumulative (an L-BFGS step's inner ones "
        "included); absent from runs recorded before the counts",
    )
    gradient_evaluations: int | None = Field(
        None, description="gradient evaluations so far, cumulative"
    )
    hessian_vector_products: int | None = Field(
        None, description="Hessian-vector products so far (PSGD Newton fitting), cumulative"
    )


class Evaluation(BaseModel):
    type: Literal["eval"] = "eval"
    step: int
    epoch: JsonFloat
    metrics: dict[str, JsonFloat]


class Spectrum(BaseModel):
    type: Literal["spectrum"] = "spectrum"
    step: int
    spectra: dict[str, list[JsonFloat]] = Field(
        description="sorted eigenvalues of P per preconditioner (≤ 256 values each)"
    )
    estimated: list[str] = Field(
        default_factory=list,
        description="preconditioners whose values are bounded estimates, not exact eigenvalues",
    )
    inverse_hessian: list[JsonFloat] | None = Field(
        None, description="sorted eigenvalues of |H|⁻¹ at the current point (small problems)"
    )
    fit_error: float | None = Field(
        None,
        description="how far P is from |H|⁻¹ in its worst direction, in decades: "
        "max |log10 λ| over the eigenvalues λ of |H|^½ P |H|^½ (0 when P = |H|⁻¹, 1 when "
        "a factor 10 off); with inverse_hessian, for optimizers with a preconditioner",
    )
    fit_along: list[JsonFloat] | None = Field(
        None,
        description="with fit_error: log10(|λ| uᵀPu) along each eigenvector u of H "
        "(eigenvalue λ), flattest first (increasing |λ|); 0 where P matches |H|⁻¹ along u, "
        "−2 where P is 100× too small there",
    )


class Trajectory(BaseModel):
    type: Literal["trajectory"] = "trajectory"
    step: int
    point: list[JsonFloat] | None = Field(None, description="2-D position on a landscape")
    sketch: list[JsonFloat] | None = Field(
        None,
        description="high-dimensional tasks: the parameters at this step in a fixed random "
        "projection (≤ 64 values) that is the same for every run of the task, so that one "
        "PCA of all runs' points gives them common axes",
    )
    path: list[list[JsonFloat]] | None = Field(
        None,
        description="no longer written: the per-run PCA of the path that older runs sent "
        "(read to draw them)",
    )
    path_steps: list[int] | None = Field(None, description="steps of `path` (older runs)")
    explained_variance: list[JsonFloat] | None = Field(
        None, description="variance shares of `path`'s two axes (older runs)"
    )


class Status(BaseModel):
    type: Literal["status"] = "status"
    step: int
    status: EndedStatus
    message: str = ""
    summary: dict[str, Any] = Field(default_factory=dict)


Event = Annotated[
    Started | Metrics | Evaluation | Spectrum | Trajectory | Status, Field(discriminator="type")
]


class StreamMessage(BaseModel):
    """The `data` of one server-sent event: one job's event with its global id."""

    job_id: str
    id: int = Field(description="the global event id, also the SSE `id`")
    event: Event
