"""The REST routes: thin wrappers over JobService; see server/api/app.py for the app.

Blocking work (SQLite, cancelling a worker) happens in plain `def` handlers, which FastAPI
runs in its thread pool, never on the event loop.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic.json_schema import SkipJsonSchema

from server import optimizers
from server.api import schemas
from server.api.contour import landscape_contour
from server.api.sse import event_stream
from server.events import JobStatus
from server.jobs import catalogue, export
from server.jobs.service import JobService
from server.jobs.summary import comparison_summary
from server.jsonable import json_safe
from server.settings import Settings
from server.specs import ComparisonSpec, JobSpec

MAX_ID = 2**63 - 1  # SQLite's largest integer

# An optional parameter is absent, never null: `SkipJsonSchema[None]` keeps null out of its
# documented type (else clients and fuzzers send the string "null").
Offset = Annotated[int, Query(ge=0, le=MAX_ID, description="items to skip")]
Limit = Annotated[int, Query(ge=1, le=500, description="items per page")]
MetricsFormat = Annotated[Literal["json", "csv"], Query(description="json or csv")]
LastEventQuery = Annotated[
    int | SkipJsonSchema[None], Query(ge=0, le=MAX_ID, description="resume after this event id")
]
LastEventHeader = Annotated[
    int | SkipJsonSchema[None],
    Header(alias="Last-Event-ID", ge=0, le=MAX_ID, description="resume after this event id"),
]


def _error(description: str) -> dict[str, Any]:
    return {"model": schemas.ErrorResponse, "description": description}


NOT_FOUND = {404: _error("no such job or comparison")}
INVALID = {422: _error("a parameter or a field of the body is invalid; the detail names it")}
BODY = {
    400: _error("the body is not valid JSON"),
    413: _error("the body is larger than the server's max_request_bytes"),
}
QUEUE_FULL = {
    429: _error(
        "too many jobs queued or created in the last minute (Retry-After), or the job store is full"
    )
}
CONFLICT = {409: _error("the job has already ended")}
SSE = {
    200: {
        "description": "server-sent events: `id: <event id>`, `event: <type>`, "
        '`data: {"job_id", "id", "event"}`; ends after the final status of every job',
        # the item schema (one event) is added by server.api.app._with_event_schema
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}
CSV_OR_JSON = {
    200: {
        "description": "metrics per step (json), or one CSV row per job and step (csv)",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}


def service_of(request: Request) -> JobService:
    return request.app.state.service


Service = Annotated[JobService, Depends(service_of)]
_bearer = HTTPBearer(auto_error=False, description="the server's token (settings.token)")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def mutating_options(settings: Settings) -> Callable[..., dict[str, Any]]:
    """`mutating(**response_groups)`: a mutating route's options (the bearer token check
    when `settings.token` is set, and its documented responses); for every router."""
    token = settings.token

    def require_token(credentials: Credentials) -> None:
        if token is None:
            return
        given = credentials.credentials if credentials is not None else ""
        if credentials is None or not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                401,
                "missing or wrong bearer token" if credentials else "missing bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    auth: dict[str, Any] = {}
    if token is not None:
        auth = {
            "dependencies": [Depends(require_token)],
            "responses": {401: _error("missing or wrong bearer token")},
        }

    def mutating(**responses: Any) -> dict[str, Any]:
        merged: dict[int | str, Any] = {**auth.get("responses", {})}
        for group in responses.values():
            merged.update(group)
        return {"dependencies": auth.get("dependencies", []), "responses": merged}

    return mutating


def build_router(settings: Settings) -> APIRouter:
    """All /api routes; mutating ones need the bearer token when `settings.token` is set."""
    mutating = mutating_options(settings)
    router = APIRouter(prefix="/api")

    # ------------------------------------------------------------------ info
    @router.get("/health", response_model=schemas.Health, tags=["info"])
    def health(service: Service) -> dict[str, Any]:
        return service.health()

    @router.get("/tasks", response_model=list[schemas.TaskEntry], tags=["info"])
    def list_tasks() -> list[dict[str, Any]]:
        return catalogue.task_entries()

    @router.get(
        "/tasks/{name}/contour",
        response_model=schemas.Contour,
        tags=["info"],
        summary="A 2-D landscape's objective on a grid (for contour maps)",
        responses={404: _error("no such task"), **INVALID},
    )
    def task_contour(
        name: str,
        options: Annotated[
            str, Query(max_length=10_000, description='the task\'s fields as JSON, e.g. {"dim": 2}')
        ] = "{}",
        seed: Annotated[int, Query(ge=0, le=MAX_ID, description="seed the task is built with")] = 0,
        resolution: Annotated[int, Query(ge=11, le=201, description="grid points per axis")] = 81,
    ) -> dict[str, Any]:
        """422 for a task that is not a 2-D landscape (XOR, CIFAR, a Rosenbrock of dim 4)."""
        return json_safe(landscape_contour(name, options, seed, resolution))

    @router.get("/optimizers", response_model=list[schemas.CatalogueEntry], tags=["info"])
    def list_optimizers() -> list[dict[str, Any]]:
        return optimizers.catalogue()

    # ------------------------------------------------------------------ jobs
    @router.post(
        "/jobs",
        status_code=201,
        response_model=schemas.Job,
        tags=["jobs"],
        summary="Submit a job",
        **mutating(a=BODY, b=INVALID, c=QUEUE_FULL),
    )
    def create_job(spec: JobSpec, service: Service) -> dict[str, Any]:
        """Body: a JobSpec, e.g. `{"task": {"name": "rosenbrock"}, "optimizer":
        {"name": "adam", "lr": 0.01}, "steps": 500, "seed": 0}`."""
        return json_safe(service.create_job(spec))

    @router.get(
        "/jobs",
        response_model=schemas.Page[schemas.JobListItem],
        tags=["jobs"],
        summary="List jobs (without their specs)",
        responses=INVALID,
    )
    def list_jobs(
        service: Service,
        offset: Offset = 0,
        limit: Limit = 50,
        status: Annotated[
            JobStatus | SkipJsonSchema[None], Query(description="only jobs in this status")
        ] = None,
        comparison_id: Annotated[
            str | SkipJsonSchema[None], Query(max_length=64, description="only its jobs")
        ] = None,
    ) -> dict[str, Any]:
        page = service.list_jobs(offset, limit, status=status, comparison_id=comparison_id)
        return json_safe(page)

    @router.get(
        "/jobs/{job_id}",
        response_model=schemas.Job,
        tags=["jobs"],
        responses={**NOT_FOUND, **INVALID},
    )
    def get_job(job_id: str, service: Service) -> dict[str, Any]:
        return json_safe(service.job(job_id))

    @router.post(
        "/jobs/{job_id}/cancel",
        response_model=schemas.Job,
        tags=["jobs"],
        summary="Cancel a queued or running job",
        **mutating(a=NOT_FOUND, b=CONFLICT, c=INVALID),
    )
    def cancel_job(job_id: str, service: Service) -> dict[str, Any]:
        return json_safe(service.cancel_job(job_id))

    @router.delete(
        "/jobs/{job_id}",
        status_code=204,
        response_class=Response,
        tags=["jobs"],
        summary="Delete a job and its events (cancelling it first)",
        **mutating(a=NOT_FOUND, b=INVALID),
    )
    def delete_job(job_id: str, service: Service) -> Response:
        service.delete_job(job_id)
        return Response(status_code=204)

    @router.get(
        "/jobs/{job_id}/events",
        tags=["jobs"],
        response_class=StreamingResponse,
        summary="Stream a job's events (SSE)",
        responses={**SSE, **NOT_FOUND, **INVALID},
    )
    def job_events(
        job_id: str,
        service: Service,
        request: Request,
        last_event_id: LastEventQuery = None,
        last_event_id_header: LastEventHeader = None,
    ) -> StreamingResponse:
        service.job(job_id)
        return _stream(service, request, [job_id], last_event_id_header, last_event_id)

    @router.get(
        "/jobs/{job_id}/metrics",
        response_model=schemas.JobMetrics,
        tags=["jobs"],
        summary="A job's metrics per step, as JSON or CSV",
        responses={**CSV_OR_JSON, **NOT_FOUND, **INVALID},
    )
    def job_metrics(job_id: str, service: Service, format: MetricsFormat = "json") -> Any:
        metrics = export.collect_metrics(service.store, [service.job(job_id)])
        return _csv_response(metrics, job_id) if format == "csv" else metrics[0]

    # ------------------------------------------------------------------ comparisons
    @router.post(
        "/comparisons",
        status_code=201,
        response_model=schemas.ComparisonDetail,
        tags=["comparisons"],
        summary="Submit a comparison (optimizers × seeds on one task)",
        **mutating(a=BODY, b=INVALID, c=QUEUE_FULL),
    )
    def create_comparison(spec: ComparisonSpec, service: Service) -> dict[str, Any]:
        """Body: a ComparisonSpec, e.g. `{"task": {"name": "rosenbrock"}, "optimizers":
        [{"name": "psgd-dense"}, {"name": "adam"}], "seeds": [0, 1, 2], "steps": 500}`."""
        return json_safe(service.comparison_detail(service.create_comparison(spec)["id"]))

    @router.get(
        "/comparisons",
        response_model=schemas.Page[schemas.ComparisonListItem],
        tags=["comparisons"],
        summary="List comparisons (without their specs)",
        responses=INVALID,
    )
    def list_comparisons(service: Service, offset: Offset = 0, limit: Limit = 50) -> dict:
        return json_safe(service.list_comparisons(offset, limit))

    @router.get(
        "/comparisons/{comparison_id}",
        response_model=schemas.ComparisonDetail,
        tags=["comparisons"],
        responses={**NOT_FOUND, **INVALID},
    )
    def get_comparison(comparison_id: str, service: Service) -> dict[str, Any]:
        return json_safe(service.comparison_detail(comparison_id))

    @router.post(
        "/comparisons/{comparison_id}/cancel",
        response_model=schemas.ComparisonDetail,
        tags=["comparisons"],
        summary="Cancel a comparison's queued and running jobs",
        **mutating(a=NOT_FOUND, b=INVALID),
    )
    def cancel_comparison(comparison_id: str, service: Service) -> dict[str, Any]:
        service.cancel_comparison(comparison_id)
        return json_safe(service.comparison_detail(comparison_id))

    @router.delete(
        "/comparisons/{comparison_id}",
        status_code=204,
        response_class=Response,
        tags=["comparisons"],
        summary="Delete a comparison with its jobs and events",
        **mutating(a=NOT_FOUND, b=INVALID),
    )
    def delete_comparison(comparison_id: str, service: Service) -> Response:
        service.delete_comparison(comparison_id)
        return Response(status_code=204)

    @router.get(
        "/comparisons/{comparison_id}/events",
        tags=["comparisons"],
        response_class=StreamingResponse,
        summary="Stream the events of a comparison's jobs (SSE)",
        responses={**SSE, **NOT_FOUND, **INVALID},
    )
    def comparison_events(
        comparison_id: str,
        service: Service,
        request: Request,
        last_event_id: LastEventQuery = None,
        last_event_id_header: LastEventHeader = None,
    ) -> StreamingResponse:
        job_ids = service.comparison(comparison_id)["job_ids"]
        return _stream(service, request, job_ids, last_event_id_header, last_event_id)

    @router.get(
        "/comparisons/{comparison_id}/metrics",
        response_model=schemas.ComparisonMetrics,
        tags=["comparisons"],
        summary="Every job's metrics per step, as JSON or CSV",
        responses={**CSV_OR_JSON, **NOT_FOUND, **INVALID},
    )
    def comparison_metrics(
        comparison_id: str, service: Service, format: MetricsFormat = "json"
    ) -> Any:
        comparison = service.comparison(comparison_id)
        jobs = [job for job in map(service.store.get_job, comparison["job_ids"]) if job]
        metrics = export.collect_metrics(service.store, jobs)
        if format == "csv":
            return _csv_response(metrics, comparison_id)
        return {"comparison_id": comparison_id, "jobs": metrics}

    @router.get(
        "/comparisons/{comparison_id}/summary",
        tags=["comparisons"],
        summary="Results over seeds: 95 % intervals, success rates, pairwise tests",
        responses={**NOT_FOUND, **INVALID},
    )
    def get_comparison_summary(comparison_id: str, service: Service) -> dict[str, Any]:
        """Per optimizer: the final metric's mean with a Student-t 95 % interval, the best
        loss, the success rate (target reached, else task solved) with a Wilson interval,
        and steps / evaluations / function evaluations / seconds to target as median,
        quartiles and range with unreached runs censored; per pair: Welch's t interval of
        the difference and a sentence. Failed, cancelled and interrupted runs are left
        out; queued and running ones are counted in `pending`."""
        return json_safe(comparison_summary(service.store, service.comparison(comparison_id)))

    def _stream(
        service: JobService,
        request: Request,
        job_ids: list[str],
        header: int | None,
        query: int | None,
    ) -> StreamingResponse:
        after = header if header is not None else (query or 0)
        heartbeat = settings.heartbeat_seconds
        return StreamingResponse(
            event_stream(service, job_ids, after, heartbeat, request.is_disconnected),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


# ---------------------------------------------------------------------- helpers
def _csv_response(metrics: list[dict[str, Any]], name: str) -> Response:
    return Response(
        export.metrics_csv(metrics),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="metrics-{name}.csv"'},
    )
