"""The job service: applies this server's limits to specs, stores jobs, hands them to an
executor, records events. Specs arrive typed (`server.specs`: the API's bodies) or as dicts
(CLI, sweeps), which it validates into them, once.

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
The service knows nothing of HTTP; the API maps its errors (`server.errors`: `NotFound` 404,
`InvalidSpec` 422, `Conflict` 409, `QueueFull` 429) to responses.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from server import memory
from server.errors import Conflict, InvalidSpec, NotFound, QueueFull
from server.events import ACTIVE_STATUSES, FINAL_STATUSES
from server.jobs import processes
from server.jobs.broker import Broker
from server.jobs.executor import Executor
from server.jobs.quota import JobQuota
from server.jobs.store import JobStore
from server.settings import Settings
from server.specs import (
    ComparisonSpec,
    JobSpec,
    LabelledJob,
    expand,
    job_label,
    parse_comparison,
    parse_job,
)
from server.version import package_version

log = logging.getLogger(__name__)


class JobService:
    """Joins the store, an executor and the broker; every method is thread-safe.

    Without a broker nothing is published: readers follow the store (the CLI does)."""

    def __init__(
        self, store: JobStore, executor: Executor, broker: Broker | None, settings: Settings
    ) -> None:
        self.store, self.executor, self.broker, self.settings = store, executor, broker, settings
        self._lock = threading.RLock()
        self._submit_lock = threading.Lock()
        self._final_sent: set[str] = set()
        self._last_step: dict[str, int] = {}
        self._stopping = False
        # the executor's GPUs may be elsewhere (a Ray cluster's nodes)
        self._cuda = cuda_available() or bool(getattr(executor, "offers_cuda", False))
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
    def create_job(self, spec: dict[str, Any] | JobSpec) -> dict[str, Any]:
        """Store and submit one job (a dict is validated into a JobSpec first); returns
        the stored job."""
        job = self.validate_job(spec)
        name = job.optimizer.name
        with self._submit_lock:
            self._check_queue(1)
            self.quota.admit(1)
            job_id = self.store.create_job(
                job.model_dump(mode="json"), label=job_label(name, job.seed), optimizer_label=name
            )
        self._submit(job_id)
        return self._job(job_id)

    def create_comparison(self, spec: dict[str, Any] | ComparisonSpec) -> dict[str, Any]:
        """Store a comparison with one job per optimizer × seed and submit them (a dict is
        validated into a ComparisonSpec first)."""
        comparison, jobs = self.validate_comparison(spec)
        with self._submit_lock:
            self._check_queue(len(jobs))
            self.quota.admit(len(jobs))
            cid = self.store.create_comparison(comparison.model_dump(mode="json"))
            ids = [
                self.store.create_job(
                    job.spec.model_dump(mode="json"), cid, job.label, job.optimizer_label
                )
                for job in jobs
            ]
        for job_id in ids:
            self._submit(job_id)
        return self.comparison(cid)

    def validate_job(self, spec: dict[str, Any] | JobSpec) -> JobSpec:
        """The spec as a JobSpec with this server's limits and device applied, or InvalidSpec."""
        return self._apply_server_limits(parse_job(spec))

    def validate_comparison(
        self, spec: dict[str, Any] | ComparisonSpec
    ) -> tuple[ComparisonSpec, list[LabelledJob]]:
        """The comparison and its jobs, each with this server's limits and device applied."""
        comparison = parse_comparison(spec)
        seeds = len(comparison.seeds)
        jobs = [
            job._replace(spec=self._apply_server_limits(job.spec, f"optimizers[{i // seeds}]"))
            for i, job in enumerate(expand(comparison))
        ]
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

    def comparison_detail(self, cid: str) -> dict[str, Any]:
        """The comparison with its jobs (a job deleted meanwhile is left out)."""
        return self._with_jobs(self.comparison(cid))

    def _with_jobs(self, comparison: dict[str, Any]) -> dict[str, Any]:
        jobs = [job for job in map(self.store.get_job, comparison["job_ids"]) if job]
        return {**comparison, "jobs": jobs}

    def list_jobs(self, offset: int = 0, limit: int = 50, **filters: str | None) -> dict[str, Any]:
        """One page of jobs, newest first, without their specs; `filters`: the store's
        (`status`, `comparison_id`)."""
        items, total = self.store.list_jobs(offset, limit, brief=True, **filters)
        return {"items": items, "total": total, "offset": offset, "limit": limit}

    def list_comparisons(self, offset: int = 0, limit: int = 50) -> dict[str, Any]:
        """One page of comparisons, newest first, without their specs."""
        items, total = self.store.list_comparisons(offset, limit, brief=True)
        return {"items": items, "total": total, "offset": offset, "limit": limit}

    def health(self) -> dict[str, Any]:
        """What the server runs and how busy it is; the counts come from one read of the
        store, so no job is counted twice."""
        counts = self.store.count_by_status()
        return {
            "version": package_version(),
            "executor": self.settings.executor,
            "concurrency": getattr(self.executor, "concurrency", None),
            "queued": counts["queued"],
            "running": counts["running"],
            "auth": self.settings.token is not None,
            "cluster": getattr(self.executor, "cluster", lambda: None)(),
        }

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
        if self.broker is not None:
            self.broker.deleted(job_id)

    def delete_comparison(self, cid: str) -> None:
        job_ids = self.comparison(cid)["job_ids"]
        self._cancel(job_ids, wait=3.0)
        self.store.delete_comparison(cid)
        for job_id in job_ids:
            self._forget(job_id)
            if self.broker is not None:
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
            if self.broker is not None:
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
def _status_event(step: int, status: str, message: str) -> dict[str, Any]:
    return {"type": "status", "step": step, "status": status, "message": message, "summary": {}}


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()
