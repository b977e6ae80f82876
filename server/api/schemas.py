"""Response models of the API (requests are JobSpec / ComparisonSpec, see server.specs).

Every error answers `{"detail": "<one line>"}` (`ErrorResponse`), whatever its status.
"""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar, get_args

from pydantic import BaseModel, Field

from server.events import Event, JobStatus

T = TypeVar("T")


class ErrorResponse(BaseModel):
    detail: str = Field(description="what went wrong, naming the field or id at fault")


class Cluster(BaseModel):
    address: str = Field(description="the ray_address setting")
    state: Literal["connecting", "connected", "down"]
    message: str | None = Field(description="why it is down (None otherwise)")
    nodes: int | None = Field(None, description="alive nodes (when connected)")
    cpus: float | None = None
    gpus: float | None = None
    memory_mb: int | None = Field(None, description="memory Ray may schedule, all nodes")


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    executor: str
    concurrency: int | None = Field(description="jobs run at once (None: unknown)")
    queued: int
    running: int
    auth: bool = Field(description="whether mutating requests need a bearer token")
    cluster: Cluster | None = Field(None, description="the Ray cluster (executor=ray only)")


class CatalogueEntry(BaseModel):
    name: str
    description: str
    schema_: dict[str, Any] = Field(alias="schema", description="JSON schema of its options")

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class TaskEntry(CatalogueEntry):
    presets: dict[str, dict[str, Any]] = Field(
        description="per optimizer, the hyperparameters this task's preset sets "
        "(over the schema defaults; a job's own values win)"
    )
    ready: bool = Field(
        True, description="whether it can run with its default options on this server now"
    )
    not_ready_reason: str | None = Field(
        None, description="why not, and what to do (e.g. the command that fetches its data)"
    )


class Contour(BaseModel):
    task: str
    x: list[float | None] = Field(description="grid x coordinates, ascending")
    y: list[float | None] = Field(description="grid y coordinates, ascending")
    z: list[list[float | None]] = Field(description="z[i][j]: the objective at (x[j], y[i])")
    domain: list[list[float]] = Field(description="[[x0, x1], [y0, y1]], covering the start")
    known_minima: list[list[float]]


class _JobRow(BaseModel):
    id: str
    comparison_id: str | None
    optimizer: str = Field(description="the optimizer's name")
    optimizer_label: str = Field(
        description='its name, with "#k" on the k-th entry of that name in a comparison'
    )
    seed: int
    label: str = Field(description='"<optimizer_label> seed=<seed>"')
    status: JobStatus
    message: str = Field(description="why it failed / diverged / was cancelled")
    summary: dict[str, Any] = Field(description="final loss, best loss, time to target, …")
    created: float = Field(description="unix time")
    started: float | None
    finished: float | None


class Job(_JobRow):
    spec: dict[str, Any] = Field(description="the validated JobSpec, task preset applied")


class JobListItem(_JobRow):
    """A job in `GET /api/jobs`: the job without its spec (`GET /api/jobs/{id}` has it)."""

    task: str | None = Field(description="the task's name")
    steps: int | None
    epochs: int | None


class _ComparisonStatus(BaseModel):
    id: str
    created: float
    job_ids: list[str]
    status: Literal["running", "succeeded", "finished"] = Field(
        description="running while any job is queued or running; then succeeded if all did"
    )


class ComparisonListItem(_ComparisonStatus):
    """A comparison in `GET /api/comparisons`: without its spec (`GET .../{id}` has it)."""

    task: str | None = Field(description="the task's name")
    optimizers: list[str | None] = Field(description="the optimizers' names, in order")
    seeds: list[int]
    steps: int | None
    epochs: int | None


class Comparison(_ComparisonStatus):
    spec: dict[str, Any] = Field(description="the validated ComparisonSpec")


class ComparisonDetail(Comparison):
    jobs: list[Job]


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int


class MetricPoint(BaseModel):
    step: int
    loss: float | None
    grad_norm: float | None
    lr: float | None
    step_time: float | None
    elapsed: float | None
    function_evaluations: int | None = None
    gradient_evaluations: int | None = None
    hessian_vector_products: int | None = None


class EvalPoint(BaseModel):
    step: int
    epoch: float | None
    metrics: dict[str, float | None]


class JobMetrics(BaseModel):
    job_id: str
    label: str
    optimizer_label: str
    seed: int
    status: JobStatus
    metrics: list[MetricPoint] = Field(description="per step (thinned on long runs)")
    evaluations: list[EvalPoint]


class ComparisonMetrics(BaseModel):
    comparison_id: str
    jobs: list[JobMetrics]


#: the `event:` names of a stream, one per event model
EVENT_TYPES = tuple(cls.model_fields["type"].default for cls in get_args(get_args(Event)[0]))
