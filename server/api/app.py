"""The FastAPI app: job and comparison endpoints over a JobService.

    from server.api.app import create_app
    app = create_app()                    # Settings() from PSGD_PLAYGROUND_* variables
    uvicorn.run(app, host="127.0.0.1", port=8000)

The lifespan opens the job store under `settings.data_dir`, starts the executor and the
service (which settles jobs a previous server left running) and stops them at shutdown.
Errors always answer `{"detail": "<one line>"}`: 400 malformed JSON or untrusted Host,
401 missing token, 403 cross-site mutation (server/api/guards.py), 404 unknown id,
405 wrong method, 409 already ended, 413 body too large, 422 invalid field (named),
429 queue full, too many jobs created in the last minute or job store full
(server/jobs/quota.py; with Retry-After when waiting helps). An unexpected error is
logged and answers 500; none is known.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic.json_schema import models_json_schema
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.api.guards import RequestGuard, trusted_hosts
from server.api.routes import build_router
from server.api.schemas import EVENT_TYPES
from server.api.suite_routes import build_suite_router
from server.api.sweep_routes import build_sweep_router
from server.errors import Conflict, InvalidSpec, NotFound, QueueFull, validation_message
from server.events import StreamMessage
from server.jobs.broker import Broker
from server.jobs.executor import Executor
from server.jobs.quota import QuotaExceeded
from server.jobs.service import JobService
from server.jobs.store import JobStore
from server.runner import Limits
from server.settings import Settings
from server.sweeps.service import SweepService
from server.sweeps.store import SweepStore
from server.version import package_version

log = logging.getLogger(__name__)

_STATUS_OF = {NotFound: 404, InvalidSpec: 422, Conflict: 409, QueueFull: 429}


def make_executor(settings: Settings) -> Executor:
    """The executor `settings.executor` names, with the server's limits."""
    limits = Limits(max_steps=settings.max_steps, max_seconds=settings.max_seconds)
    if settings.executor == "ray":
        from server.jobs.ray_executor import RayExecutor

        return RayExecutor(
            address=settings.ray_address,
            limits=limits,
            memory_limit_mb=settings.memory_limit_mb,
            threads_per_job=settings.threads_per_job,
            cpus_per_job=settings.ray_cpus_per_job,
            gpus_per_job=settings.ray_gpus_per_job,
            num_cpus=settings.ray_num_cpus,
            node_ip_address=settings.ray_node_ip_address,
            max_retries=settings.ray_max_retries,
            reconnect_seconds=settings.ray_reconnect_seconds,
        )
    from server.jobs.executor import LocalExecutor

    return LocalExecutor(
        concurrency=settings.concurrency,
        limits=limits,
        memory_limit_mb=settings.memory_limit_mb,
        pool_size=settings.pool_size,
        threads_per_job=settings.threads_per_job,
    )


def create_app(settings: Settings | None = None, executor: Executor | None = None) -> FastAPI:
    """The API app. `executor` replaces the one `settings` names (tests pass a fake)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = JobStore(settings.db_path, settings.max_metric_points)
        service = JobService(
            store, executor or make_executor(settings), Broker(asyncio.get_running_loop()), settings
        )
        await run_in_threadpool(service.start)
        app.state.service = service
        sweeps = SweepService(service, SweepStore(settings.db_path))
        await run_in_threadpool(sweeps.start)  # after the jobs': resumed sweeps find them
        app.state.sweeps = sweeps
        log.info("job store %s; executor %s", settings.db_path, settings.executor)
        try:
            yield
        finally:
            await run_in_threadpool(sweeps.stop)
            sweeps.store.close()
            await run_in_threadpool(service.stop)
            store.close()

    app = FastAPI(
        title="PSGD Playground API",
        version=package_version(),
        description="Run PSGD and baseline optimizers on tasks; follow jobs live over SSE.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    routers = [build_router(settings), build_sweep_router(settings), build_suite_router(settings)]
    for router in routers:
        app.include_router(router)
    # for 405's Allow: the app nests included routers
    app.state.api_routes = [route for router in routers for route in router.routes]
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    # outermost: an untrusted Host or a cross-site mutation is refused before anything else
    app.add_middleware(
        RequestGuard, hosts=trusted_hosts(settings), cors_origins=settings.cors_origins
    )
    _add_error_handlers(app)
    app.openapi = lambda: _with_event_schema(app)  # type: ignore[method-assign]
    return app


# ---------------------------------------------------------------------- errors
class BodyLimit:
    """413 for a body over `limit` bytes: by Content-Length before reading, else counted as
    it streams in (chunked uploads), so no handler ever holds more than `limit` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = StarletteHTTPException(413, f"request body larger than {self.limit} bytes")
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.limit:
            response = JSONResponse({"detail": too_large.detail}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise too_large  # reaches the app's HTTPException handler
            return message

        await self.app(scope, limited, send)


def _add_error_handlers(app: FastAPI) -> None:
    async def service_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_STATUS_OF[type(exc)])

    for cls in _STATUS_OF:
        app.add_exception_handler(cls, service_error)

    @app.exception_handler(QuotaExceeded)
    async def quota_exceeded(request: Request, exc: QuotaExceeded) -> JSONResponse:
        retry = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
        return JSONResponse({"detail": str(exc)}, status_code=429, headers=retry)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        bad_json = [e for e in errors if e.get("type") == "json_invalid"]
        if bad_json:
            error = bad_json[0].get("ctx", {}).get("error", "JSON decode error")
            where = bad_json[0]["loc"][-1]
            return JSONResponse(
                {"detail": f"body: malformed JSON ({error} at position {where})"}, 400
            )
        if any(e.get("loc") == ("body",) and isinstance(e.get("input"), bytes) for e in errors):
            return JSONResponse(
                {"detail": "body: expected JSON with Content-Type: application/json"}, 400
            )
        # a body's fields are named as the user wrote them (`optimizer.lr`), parameters by
        # where they are (`query.limit`)
        in_body = [{**e, "loc": e["loc"][1:]} if e["loc"][:1] == ("body",) else e for e in errors]
        body = getattr(request.scope.get("route"), "body_field", None)  # the body's model
        model = body.field_info.annotation if body is not None else None
        return JSONResponse({"detail": validation_message(in_body, exc.body, model=model)}, 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail
        headers = dict(exc.headers or {})
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            detail = "body: malformed JSON (could not be parsed)"
        elif exc.status_code == 405:  # Starlette lists one route's methods; the path has more
            headers["Allow"] = ", ".join(_allowed_methods(request))
            detail = f"method {request.method} not allowed here; allowed: {headers['Allow']}"
        return JSONResponse({"detail": str(detail)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return JSONResponse({"detail": f"internal server error ({type(exc).__name__})"}, 500)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route of this path answers (the app's own routes and the API's)."""
    methods: set[str] = set()
    for route in [*request.app.router.routes, *request.app.state.api_routes]:
        if isinstance(route, Route) and route.methods and route.path_regex.match(request.url.path):
            methods |= route.methods
    return sorted(methods)


# ---------------------------------------------------------------------- OpenAPI
def _with_event_schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema, plus what it cannot derive: the schema of one event of the
    `text/event-stream` answers (`itemSchema`), whose routes return a hand-made stream
    (resumable, with heartbeats) rather than a FastAPI generator of models."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    _, defs = models_json_schema(
        [(StreamMessage, "serialization")], ref_template="#/components/schemas/{model}"
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in defs.get("$defs", {}).items():
        components.setdefault(name, definition)
    for operations in schema["paths"].values():
        for operation in operations.values():
            content = operation.get("responses", {}).get("200", {}).get("content", {})
            if "text/event-stream" in content and "itemSchema" not in content["text/event-stream"]:
                content["text/event-stream"] = {"itemSchema": _sse_item()}
    app.openapi_schema = schema
    return schema


def _sse_item() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["data", "event", "id"],
        "properties": {
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": {"$ref": "#/components/schemas/StreamMessage"},
            },
            "event": {"type": "string", "enum": list(EVENT_TYPES)},
            "id": {"type": "string", "pattern": "^[0-9]+$"},
        },
    }
