"""The job service: validates specs, stores jobs, hands them to an executor, records events.

    service = JobService(store, executor, broker, settings)
    service.start()                       # recover what a previous server left, resubmit
    job = service.create_job({"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}})

The executor calls `on_events` (a job's events read together, in order) / `on_exit` from its
threads. Each batch of events is stored in one transaction, the job's status updated, and only
then published to the broker in one hand-over, all under one lock, so that

* live subscribers receive rows in id order (an SSE stream can dedupe by id), and
* whoever sees a final status event (or a final job status in the store) also finds the
  other one: the store's status is final only after the final event is stored, and the
  event is published only after the status is set.

Every job ends with exactly one final status event: the runner's, the executor's
("cancelled before start", a time limit reached), a synthetic "failed" one written here
when a worker dies without sending one, or the store's "interrupted" one at the next start
for a job the previous server left running. A job is "running" from the moment a worker
takes it (`on_launch`), so the store is the one source of queued / running counts.
The service knows nothing of HTTP; the API maps its errors
(`NotFound` 404, `InvalidSpec` 422, `Conflict` 409, `QueueFull` 429) to responses.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from typing import Any

from pydantic import TypeAdapter, ValidationError

from server import memory
from server.events import FINAL_STATUSES
from server.jobs import processes
from server.jobs.broker import Broker
from server.jobs.executor import Executor
from server.jobs.quota import JobQuota
from server.jobs.store import JobStore
from server.optimizers import TASK_PRESETS, AnyOptimizerConfig
from server.runner import ComparisonSpec, JobSpec
from server.settings import Settings

log = logging.getLogger(__name__)

ACTIVE_STATUSES = ("queued", "running")
#: statuses after which a job gets no more events (interrupted: its worker died with a server)
ENDED_STATUSES = (*FINAL_STATUSES, "interrupted")
_MAX_ERRORS = 5
_OPTIMIZERS: TypeAdapter[Any] = TypeAdapter(AnyOptimizerConfig)


class ServiceError(Exception):
    """A request the service refuses; `str(error)` is the message for the client."""


class NotFound(ServiceError):
    pass


class InvalidSpec(ServiceError):
    pass


class Conflict(ServiceError):
    pass


class QueueFull(ServiceError):
    pass


class JobService:
    """Joins the store, an executor and the broker; every method is thread-safe."""

    def __init__(
        self, store: JobStore, executor: Executor, broker: Broker, settings: Settings
    ) -> None:
        self.store, self.executor, self.broker, self.settings = store, executor, broker, settings
        self._lock = threading.RLock()
        self._submit_lock = threading.Lock()
        self._final_sent: set[str] = set()
        self._last_step: dict[str, int] = {}
        self._stopping = False
        self._cuda = cuda_available()
        self.quota = JobQuota(store, settings)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> list[str]:
        """Settle jobs a previous server left running (killing any worker of theirs still
        alive, so that no job runs twice), start the executor, resubmit queued jobs (oldest
        first). Returns the ids of the jobs found running."""
        unstoppable = self._kill_leftover_workers()
        self.executor.start_batched(self.on_events, self.on_exit, self.on_launch)
        recovered = self.store.recover(self.settings.requeue_interrupted, unstoppable)
        if recovered:
            verb = "requeued" if self.settings.requeue_interrupted else "marked interrupted"
            log.warning("%d job(s) were running when the server stopped: %s", len(recovered), verb)
        for job in reversed(self._all_jobs(status="queued")):
            self.executor.submit(job["id"], job["spec"])
        return recovered

    def _kill_leftover_workers(self) -> set[str]:
        """Kill the recorded workers of jobs left running that are still alive; returns
        the jobs whose worker survived (they are not run again)."""
        unstoppable = set()
        for job_id, pid, started in self.store.leftover_workers():
            if processes.kill_leftover(pid, started):
                continue
            log.error("job %s: its worker (pid %d) from before the restart survives", job_id, pid)
            unstoppable.add(job_id)
        return unstoppable

    def stop(self) -> None:
        """Stop the executor. Jobs it was running stay "running" in the store, queued ones
        stay queued, so the next start interrupts (or requeues) and resubmits them."""
        self._stopping = True
        self.executor.shutdown()

    # ------------------------------------------------------------------ submitting
    def create_job(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Validate, store and submit one job; returns the stored job."""
        job = self.validate_job(spec)
        with self._submit_lock:
            self._check_queue(1)
            self.quota.admit(1)
            job_id = self.store.create_job(job.model_dump(mode="json"), label=_label(job))
        self._submit(job_id)
        return self._job(job_id)

    def create_comparison(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Validate a comparison, store it with one job per optimizer × seed, submit them."""
        comparison, jobs = self.validate_comparison(spec)
        with self._submit_lock:
            self._check_queue(len(jobs))
            self.quota.admit(len(jobs))
            cid = self.store.create_comparison(comparison.model_dump(mode="json"))
            ids = [
                self.store.create_job(job.model_dump(mode="json"), cid, _label(job)) for job in jobs
            ]
        for job_id in ids:
            self._submit(job_id)
        return self.comparison(cid)

    def validate_job(self, spec: dict[str, Any]) -> JobSpec:
        """The spec as a JobSpec with this server's device applied, or InvalidSpec."""
        _check_finite(spec, "")
        task_name = _name(spec.get("task"), "task")
        if isinstance(spec.get("optimizer"), dict):
            _validate_optimizer(spec["optimizer"], task_name, "optimizer")
        try:
            job = _strictly(JobSpec, spec)
        except ValidationError as e:
            raise InvalidSpec(validation_message(e, tags_after={"task": task_name})) from e
        return self._apply_server_limits(job)

    def validate_comparison(self, spec: dict[str, Any]) -> tuple[ComparisonSpec, list[JobSpec]]:
        _check_finite(spec, "")
        try:
            comparison = _strictly(ComparisonSpec, spec)
        except ValidationError as e:
            raise InvalidSpec(validation_message(e)) from e
        task_name = _name(comparison.task, "task")
        shared = comparison.model_dump(exclude={"task", "optimizers", "seeds"})
        jobs = []
        for i, optimizer in enumerate(comparison.optimizers):
            _validate_optimizer(optimizer, task_name, f"optimizers[{i}]")
            for j, seed in enumerate(comparison.seeds):
                data = {**shared, "task": comparison.task, "optimizer": optimizer, "seed": seed}
                try:
                    job = _strictly(JobSpec, data)
                except ValidationError as e:
                    renames = {"optimizer": f"optimizers[{i}]", "seed": f"seeds[{j}]"}
                    raise InvalidSpec(
                        validation_message(e, tags_after={"task": task_name}, renames=renames)
                    ) from e
                jobs.append(self._apply_server_limits(job, f"optimizers[{i}]"))
        if len(jobs) > self.settings.max_queued:
            raise InvalidSpec(
                f"optimizers × seeds: {len(jobs)} jobs, more than this server queues "
                f"({self.settings.max_queued})"
            )
        return comparison, jobs

    def _apply_server_limits(self, job: JobSpec, optimizer_at: str = "optimizer") -> JobSpec:
        if job.steps is not None and job.steps > self.settings.max_steps:
            raise InvalidSpec(
                f"steps: {job.steps} exceeds this server's limit of {self.settings.max_steps}"
            )
        if job.device == "auto" and self.settings.device != "auto":
            job = job.model_copy(update={"device": self.settings.device})
        if job.device == "cuda" and (self.settings.device == "cpu" or not self._cuda):
            why = "runs jobs on cpu" if self.settings.device == "cpu" else "has no CUDA device"
            raise InvalidSpec(f"device: 'cuda' requested but this server {why}")
        self._check_memory(job, optimizer_at)
        return job

    def _check_memory(self, job: JobSpec, optimizer_at: str) -> None:
        """Refuse a job whose estimated peak memory exceeds the executor's per-job limit.

        CPU jobs only: the limit is not applied to CUDA jobs, whose memory is the GPU's.
        """
        limit_mb = getattr(self.executor, "memory_limit_mb", None)
        on_cuda = job.device == "cuda" or (job.device == "auto" and self._cuda)
        if not limit_mb or on_cuda:
            return
        why = memory.refusal(job, limit_mb << 20, optimizer_at)
        if why is not None:
            raise InvalidSpec(why)

    def _check_queue(self, new: int) -> None:
        _, queued = self.store.list_jobs(limit=0, status="queued")
        if queued + new > self.settings.max_queued:
            raise QueueFull(
                f"{queued} jobs are queued and this server queues at most "
                f"{self.settings.max_queued}; try again when some have run"
            )

    def _submit(self, job_id: str) -> None:
        job = self._job(job_id)
        try:
            self.executor.submit(job_id, job["spec"])
        except Exception as e:  # executor shut down or broken: the job fails, the API answers
            log.exception("submitting job %s failed", job_id)
            self.on_event(job_id, _status_event(0, "failed", f"could not start the job: {e}"))

    # ------------------------------------------------------------------ reading
    def job(self, job_id: str) -> dict[str, Any]:
        return self._job(job_id)

    def comparison(self, cid: str) -> dict[str, Any]:
        comparison = self.store.get_comparison(cid)
        if comparison is None:
            raise NotFound(f"no comparison with id {cid!r}")
        return comparison

    def _job(self, job_id: str) -> dict[str, Any]:
        job = self.store.get_job(job_id)
        if job is None:
            raise NotFound(f"no job with id {job_id!r}")
        return job

    def _all_jobs(self, **filters: Any) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = []
        while True:
            page, total = self.store.list_jobs(offset=len(jobs), limit=1000, **filters)
            jobs += page
            if not page or len(jobs) >= total:
                return jobs

    # ------------------------------------------------------------------ cancelling, deleting
    def cancel_job(self, job_id: str, wait: float = 3.0) -> dict[str, Any]:
        """Cancel a queued or running job; waits up to `wait` s for its final status."""
        job = self._job(job_id)
        if job["status"] not in ACTIVE_STATUSES:
            raise Conflict(f"job {job_id} is already {job['status']}")
        self._cancel([job_id], wait)
        return self._job(job_id)

    def cancel_comparison(self, cid: str, wait: float = 3.0) -> dict[str, Any]:
        """Cancel every queued or running job of a comparison (the others are kept)."""
        comparison = self.comparison(cid)
        self._cancel(comparison["job_ids"], wait)
        return self.comparison(cid)

    def delete_job(self, job_id: str) -> None:
        self._job(job_id)
        self._cancel([job_id], wait=3.0)
        self.store.delete_job(job_id)
        self._forget(job_id)
        self.broker.deleted(job_id)

    def delete_comparison(self, cid: str) -> None:
        job_ids = self.comparison(cid)["job_ids"]
        self._cancel(job_ids, wait=3.0)
        self.store.delete_comparison(cid)
        for job_id in job_ids:
            self._forget(job_id)
            self.broker.deleted(job_id)

    def _cancel(self, job_ids: list[str], wait: float) -> None:
        active = [job_id for job_id in job_ids if self._active(job_id)]
        # queued ones first, so a freed slot does not start a job about to be cancelled
        queued = set(self.executor.queued())
        for job_id in sorted(active, key=lambda j: j not in queued):
            self.executor.cancel(job_id)
        deadline = time.monotonic() + wait
        pending = active
        while pending and time.monotonic() < deadline:
            time.sleep(0.02)
            pending = [job_id for job_id in pending if self._active(job_id)]
        known = set(self.executor.running()) | set(self.executor.queued())
        for job_id in pending:
            if job_id not in known:  # the executor does not have it: settle it here
                with self._lock:
                    if self._active(job_id):
                        event = _status_event(self._step(job_id), "cancelled", "cancelled")
                        self.on_event(job_id, event)

    def _active(self, job_id: str) -> bool:
        job = self.store.get_job(job_id)
        return job is not None and job["status"] in ACTIVE_STATUSES

    # ------------------------------------------------------------------ executor callbacks
    def on_event(self, job_id: str, event: dict[str, Any]) -> None:
        """Store an event, update the job's status, publish it (called from any thread)."""
        self.on_events(job_id, [event])

    def on_events(self, job_id: str, events: list[dict[str, Any]]) -> None:
        """Store a job's events (in order, one transaction), update its status, publish
        them (one wake-up of the loop). Events after the job's final status are dropped."""
        if self._stopping:
            return
        with self._lock:
            kept = self._until_final(job_id, events)
            if not kept:
                return
            try:
                event_ids = self.store.append_events(job_id, kept)
                for event in kept:
                    self._record_status(job_id, event)
            except KeyError:  # deleted while its worker still reported
                return
            steps = [event["step"] for event in kept if isinstance(event.get("step"), int)]
            if steps:
                self._last_step[job_id] = steps[-1]
            rows = [
                {"id": event_id, "job_id": job_id, "event": event}
                for event_id, event in zip(event_ids, kept)
            ]
            self.broker.publish(job_id, *rows)

    def _until_final(self, job_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Under the lock: the events up to the job's first final status; the rest are
        logged and dropped (a job ends with exactly one)."""
        ended = job_id in self._final_sent
        kept = []
        for event in events:
            if ended:
                log.warning(
                    "job %s: ignoring a %s event after its final status", job_id, event.get("type")
                )
                continue
            kept.append(event)
            ended = event.get("type") == "status"
        return kept

    def _record_status(self, job_id: str, event: dict[str, Any]) -> None:
        """Under the lock, after the event is stored: the job's status that it implies."""
        kind = event.get("type")
        if kind == "started":  # running already, unless the executor did not say
            self.store.mark_running(job_id)
        elif kind == "status":
            self._final_sent.add(job_id)
            status, message = event.get("status"), str(event.get("message", ""))
            if status not in FINAL_STATUSES:
                message = f"ended with an unknown status {status!r}: {message}"
                status = "failed"
            self.store.set_status(job_id, status, message, event.get("summary") or {})

    def on_launch(self, job_id: str, pid: int | None, started: int | None) -> None:
        """A worker took the job: it is running from now on (recorded with its worker)."""
        if self._stopping:
            return
        with self._lock:
            if job_id in self._final_sent:
                return
            try:
                self.store.mark_running(job_id, pid, started)
            except KeyError:  # deleted meanwhile
                return

    def on_exit(self, job_id: str, error: str | None) -> None:
        """A job's worker is done; give the job a final status if it has none."""
        if self._stopping:
            return
        with self._lock:
            if job_id not in self._final_sent and self.store.get_job(job_id) is not None:
                message = error or "the worker ended without a final status"
                log.warning("job %s: %s", job_id, message)
                self.on_event(job_id, _status_event(self._step(job_id), "failed", message))
            self._forget(job_id)

    def _step(self, job_id: str) -> int:
        return self._last_step.get(job_id, 0)

    def _forget(self, job_id: str) -> None:
        with self._lock:
            self._final_sent.discard(job_id)
            self._last_step.pop(job_id, None)


# ---------------------------------------------------------------------- helpers
def _label(job: JobSpec) -> str:
    return f"{job.optimizer.name} seed={job.seed}"


def _status_event(step: int, status: str, message: str) -> dict[str, Any]:
    return {"type": "status", "step": step, "status": status, "message": message, "summary": {}}


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _strictly(model: Any, data: Any) -> Any:
    """Validate JSON-shaped `data` without pydantic's lax coercions (`true` or `"5"` for a
    number), except that an integral float counts as an integer, as in JSON Schema."""
    validate = model.validate_json if isinstance(model, TypeAdapter) else model.model_validate_json
    text = json.dumps(data, default=str)
    try:
        return validate(text, strict=True)
    except ValidationError as e:
        if not all(_integral_float(error) for error in e.errors()):
            raise
    return validate(text, strict=False)


def _integral_float(error: Any) -> bool:
    value = error.get("input")
    return error["type"] == "int_type" and isinstance(value, float) and value.is_integer()


def _name(spec: Any, where: str) -> str | None:
    """The `name` of a task or optimizer spec, if any; refused unless a string (the preset
    lookup in JobSpec would fail on anything else with a TypeError)."""
    name = spec.get("name") if isinstance(spec, dict) else None
    if name is not None and not isinstance(name, str):
        raise InvalidSpec(f"{where}.name: Input should be a valid string")
    return name


def _validate_optimizer(optimizer: dict[str, Any], task_name: str | None, where: str) -> None:
    """The optimizer spec with the task's preset under it, strictly (as `optimizer_config`
    does it, which JobSpec then calls leniently)."""
    name = _name(optimizer, where)
    try:
        _strictly(
            _OPTIMIZERS, {**TASK_PRESETS.get(task_name or "", {}).get(name or "", {}), **optimizer}
        )
    except ValidationError as e:
        name = optimizer.get("name")
        raise InvalidSpec(validation_message(e, prefix=where, tag=name)) from e


def validation_message(
    error: ValidationError,
    prefix: str = "",
    tag: Any = None,
    tags_after: dict[str, Any] | None = None,
    renames: dict[str, str] | None = None,
) -> str:
    """pydantic's errors as one line naming each field, e.g. `optimizer.lr: Input should be
    greater than 0`. Union tags are dropped from locations: a leading `tag`
    (`adam.lr` → `lr`) and the tag after a key in `tags_after` (`task.rosenbrock.dim` →
    `task.dim`); `renames` replaces a first key; `prefix` goes in front."""
    parts = []
    errors = error.errors(include_url=False)
    for err in errors[:_MAX_ERRORS]:
        loc = list(err["loc"])
        if tag is not None and loc and loc[0] == tag:
            loc = loc[1:]
        if loc and tags_after and len(loc) > 1 and tags_after.get(loc[0]) == loc[1]:
            del loc[1]
        if loc and renames and loc[0] in renames:
            loc[0] = renames[loc[0]]
        field = _loc([prefix, *loc] if prefix else loc) or "body"
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{field}: {message}")
    if len(errors) > _MAX_ERRORS:
        parts.append(f"and {len(errors) - _MAX_ERRORS} more")
    return "; ".join(parts)


def _loc(loc: list[Any]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _check_finite(value: Any, path: str) -> None:
    """JSON allows no NaN or infinity, but Python's parser does: refuse them by name."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidSpec(f"{path or 'body'}: must be a finite number, got {value}")
    if isinstance(value, dict):
        for key, item in value.items():
            _check_finite(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_finite(item, f"{path}[{i}]")
