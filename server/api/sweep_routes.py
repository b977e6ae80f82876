"""The /api/sweeps routes: thin wrappers over the SweepService (server/sweeps/service.py).

A sweep's event stream (`/api/sweeps/{id}/events`) carries the sweep's own log, not its
trials' metrics (each trial is an ordinary job with its own stream):

    id: <sweep event id>
    event: <type>          created, resumed, trial_started, trial_finished, phase, status
    data: {"sweep_id": ..., "id": ..., "event": {...}}

It replays the log after `Last-Event-ID` (or `?last_event_id=`), then follows it, and ends
after the sweep's final `status` event. The log is read from the store every
`POLL_SECONDS`: sweep events come a few a second at most.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from server.api import schemas
from server.api.routes import (
    BODY,
    INVALID,
    MAX_ID,
    QUEUE_FULL,
    LastEventHeader,
    LastEventQuery,
    Limit,
    Offset,
    mutating_options,
)
from server.api.sse import HEARTBEAT
from server.jsonable import json_safe
from server.settings import Settings
from server.sweeps.export import trials_csv
from server.sweeps.service import SweepService
from server.sweeps.spec import SweepSpec

POLL_SECONDS = 0.25
_PAGE = 1000


def _error(description: str) -> dict[str, Any]:
    return {"model": schemas.ErrorResponse, "description": description}


NOT_FOUND = {404: _error("no such sweep")}
CONFLICT = {409: _error("the sweep has already ended")}
SWEEP_SSE = {
    200: {
        "description": "server-sent events: `id: <sweep event id>`, `event: <type>`, "
        '`data: {"sweep_id", "id", "event"}`; ends after the sweep\'s final status',
        "content": {
            "text/event-stream": {
                "itemSchema": {
                    "type": "object",
                    "required": ["data", "event", "id"],
                    "properties": {
                        "data": {"type": "string", "contentMediaType": "application/json"},
                        "event": {
                            "type": "string",
                            "enum": [
                                "created",
                                "resumed",
                                "trial_started",
                                "trial_finished",
                                "phase",
                                "status",
                            ],
                        },
                        "id": {"type": "string", "pattern": "^[0-9]+$"},
                    },
                }
            }
        },
    }
}
TRIALS_EXPORT = {
    200: {
        "description": "every trial (json), or one CSV row per trial with a column per "
        "hyperparameter (csv)",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}
DRY_RUN = {200: {"description": "dry_run: the resolved spec; nothing was started"}}
DryRun = Annotated[
    bool, Query(description="only check the spec and answer it resolved (default ranges)")
]
ExportFormat = Annotated[Literal["json", "csv"], Query(description="json or csv")]


def sweeps_of(request: Request) -> SweepService:
    return request.app.state.sweeps


Sweeps = Annotated[SweepService, Depends(sweeps_of)]


def build_sweep_router(settings: Settings) -> APIRouter:
    """The /api/sweeps routes; mutating ones need the bearer token like the job routes."""
    mutating = mutating_options(settings)
    router = APIRouter(prefix="/api/sweeps", tags=["sweeps"])

    @router.post(
        "",
        status_code=201,
        summary="Start a sweep (tune each optimizer with equal trials, re-run the bests)",
        **mutating(a=BODY, b=INVALID, c=QUEUE_FULL, d=DRY_RUN),
    )
    def create_sweep(spec: SweepSpec, sweeps: Sweeps, dry_run: DryRun = False) -> Any:
        """Body: a SweepSpec, e.g. `{"task": {"name": "rosenbrock"}, "steps": 200,
        "trials": 20, "seeds": 5, "optimizers": [{"name": "adam", "tune": ["lr"]}]}`.
        With `dry_run=true`: 200 and the spec as it would be stored (each `tune` name
        given its default range in `space`), after the same checks; nothing starts."""
        if dry_run:
            return JSONResponse(json_safe(sweeps.resolve(spec)))
        return json_safe(sweeps.create(spec))

    @router.get("", summary="List sweeps (summaries, newest first)", responses=INVALID)
    def list_sweeps(sweeps: Sweeps, offset: Offset = 0, limit: Limit = 50) -> dict[str, Any]:
        items, total = sweeps.list_sweeps(offset, limit)
        return {"items": json_safe(items), "total": total, "offset": offset, "limit": limit}

    @router.get(
        "/{sweep_id}",
        summary="A sweep: its trials and, per optimizer, the best trial and best-so-far",
        responses={**NOT_FOUND, **INVALID},
    )
    def get_sweep(sweep_id: str, sweeps: Sweeps) -> dict[str, Any]:
        return json_safe(sweeps.sweep(sweep_id))

    @router.post(
        "/{sweep_id}/cancel",
        summary="Cancel a sweep's trials in flight and its re-runs",
        **mutating(a=NOT_FOUND, b=CONFLICT, c=INVALID),
    )
    def cancel_sweep(sweep_id: str, sweeps: Sweeps) -> dict[str, Any]:
        return json_safe(sweeps.cancel(sweep_id))

    @router.delete(
        "/{sweep_id}",
        status_code=204,
        response_class=Response,
        summary="Delete a sweep with its trial jobs and re-runs (cancelling them first)",
        **mutating(a=NOT_FOUND, b=INVALID),
    )
    def delete_sweep(sweep_id: str, sweeps: Sweeps) -> Response:
        sweeps.delete(sweep_id)
        return Response(status_code=204)

    @router.get(
        "/{sweep_id}/trials",
        summary="Every trial (params, value, status, job id), as JSON or CSV",
        responses={**TRIALS_EXPORT, **NOT_FOUND, **INVALID},
    )
    def export_trials(sweep_id: str, sweeps: Sweeps, format: ExportFormat = "json") -> Any:
        trials = sweeps.sweep(sweep_id)["trials"]
        if format == "json":
            return json_safe([{k: v for k, v in t.items() if k != "intermediate"} for t in trials])
        return _trials_csv(trials, sweep_id)

    @router.get(
        "/{sweep_id}/events",
        response_class=StreamingResponse,
        summary="Stream a sweep's events (SSE): trials started and finished, phase, status",
        responses={**SWEEP_SSE, **NOT_FOUND, **INVALID},
    )
    def sweep_events(
        sweep_id: str,
        sweeps: Sweeps,
        request: Request,
        last_event_id: LastEventQuery = None,
        last_event_id_header: LastEventHeader = None,
    ) -> StreamingResponse:
        sweeps.sweep(sweep_id)  # 404 for an unknown sweep
        after = last_event_id_header if last_event_id_header is not None else last_event_id
        return StreamingResponse(
            _stream(
                sweeps, sweep_id, after or 0, settings.heartbeat_seconds, request.is_disconnected
            ),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


async def _stream(
    sweeps: SweepService,
    sweep_id: str,
    after: int,
    heartbeat: float,
    disconnected: Callable[[], Awaitable[bool]],
) -> AsyncIterator[bytes]:
    """The sweep log after `after`, then its new events, until its final status."""
    last, idle = min(after, MAX_ID), 0.0
    while True:
        sweep = await run_in_threadpool(sweeps.store.get_sweep, sweep_id)
        rows = await run_in_threadpool(sweeps.store.events, sweep_id, last, _PAGE)
        if rows:
            last, idle = rows[-1]["id"], 0.0
            yield b"".join(map(_encode, rows))
            if any(row["event"]["type"] == "status" for row in rows) or await disconnected():
                return
            continue
        if sweep is None or sweep["status"] != "running":
            return  # deleted, or ended with its status sent before `after`
        await asyncio.sleep(POLL_SECONDS)
        idle += POLL_SECONDS
        if idle >= heartbeat:
            idle = 0.0
            yield HEARTBEAT
            if await disconnected():
                return


def _encode(row: dict[str, Any]) -> bytes:
    data = json.dumps(json_safe(row), separators=(",", ":"), allow_nan=False)
    return f"id: {row['id']}\nevent: {row['event']['type']}\ndata: {data}\n\n".encode()


def _trials_csv(trials: list[dict[str, Any]], sweep_id: str) -> Response:
    return Response(
        trials_csv(trials),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="sweep-{sweep_id}-trials.csv"'},
    )
