"""`psgd-playground run`'s jobs, run the way the server runs them.

One `JobService` in this process, as `serve` builds it: the local executor (each job in
its own worker process, one at a time, `--threads` torch threads, 1 as on the server) and
a job store in a temporary folder, or in `--store DIR` to keep it (`serve --data-dir DIR`
then shows the runs in the UI). So a job has one path from spec to optimizer, one label
scheme, one metrics export (`server.jobs.export`) and one contour sampler, whoever submits
it. The workers are forked from this process once it has imported what a worker needs
(`_start_method`), so a job starts in milliseconds.

What the CLI keeps for itself: the store keeps every metrics row (no thinning, so
metrics.csv holds every step), no per-job memory limit (its own check compares a job with
this machine's memory first), and `--data PATH` reaches the workers through the executor
(`LocalExecutor(local_data=...)`), never through a spec, so API clients cannot name paths.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import TypeAdapter

from server.events import Event

#: metrics rows the CLI's store keeps per job before thinning: in effect, all of them
_EVERY_POINT = 2**62
#: seconds between two reads of the store while nothing new came
_POLL_SECONDS = 0.05
#: how long a cancel waits for a running job's final status before reading on
_CANCEL_WAIT = 3.0
_EVENT: TypeAdapter[Any] = TypeAdapter(Event)


def parse_event(data: dict[str, Any]) -> Any:
    """A stored event dict as its typed model (Started, Metrics, ..., Status)."""
    return _EVENT.validate_python(data)


def _start_method() -> str:
    """Fork the workers from this process, warmed up once (torch, its compiler front end and
    the runner imported): a spawned worker imports all that anew, seconds a job, which the
    CLI's short jobs in a row would each wait for. Not with CUDA about: a copy of a process
    that has initialised CUDA cannot use it. (OpenMP's thread teams belong to the threads
    that ran them; the executor's thread, which forks every worker, never runs torch, so a
    copy starts without a team, whatever this process computed before.)"""
    import torch

    from server.jobs.worker import warm_up

    if torch.cuda.is_available():
        return "spawn"
    warm_up()  # what a worker imports before its job: the forked copies then have it
    return "fork"


class LocalJobs:
    """The job service of one `run`; a context manager that starts and stops it."""

    def __init__(
        self,
        store_dir: str | None,
        data: str | None,
        jobs: int,
        threads: int,
        concurrency: int = 1,
        device: str = "auto",
    ) -> None:
        self._store_dir = store_dir
        self._threads = threads
        self._concurrency = concurrency
        self._device = device
        self._data = data
        self._jobs = jobs
        self._temporary: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> LocalJobs:
        from server.jobs.executor import LocalExecutor
        from server.jobs.service import JobService
        from server.jobs.store import JobStore
        from server.settings import DB_NAME, Settings

        if self._store_dir is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="psgd-playground-")
        folder = Path(self._temporary.name if self._temporary else self._store_dir or "")
        self.store = JobStore(folder.expanduser() / DB_NAME, max_metric_points=_EVERY_POINT)
        settings = Settings(
            data_dir=folder,
            device=self._device,
            max_steps=2**62,
            max_queued=max(100, self._jobs),
            max_jobs_per_minute=max(300, self._jobs),
            requeue_interrupted=False,
        )
        executor = LocalExecutor(
            concurrency=self._concurrency,
            # the next jobs' workers warm meanwhile; none when every job starts at once
            pool_size=min(self._concurrency, max(0, self._jobs - self._concurrency)),
            memory_limit_mb=0,
            threads_per_job=self._threads,
            local_data=self._data,
            start_method=_start_method(),
        )
        self.service = JobService(self.store, executor, None, settings)
        self.service.start()
        self.leftovers = self._cancel_leftovers()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.service.stop()
        self.store.close()
        if self._temporary is not None:
            self._temporary.cleanup()

    def _cancel_leftovers(self) -> int:
        """Cancel the jobs a killed earlier run left queued in a kept store: the service
        would run them first, and this run runs what it was asked."""
        queued, _ = self.store.list_jobs(limit=1000, status="queued")
        for job in queued:
            self.service.cancel_job(job["id"], wait=0)
        return len(queued)

    def submit(self, spec: Any) -> list[dict[str, Any]]:
        """Store and queue a comparison's jobs; returns the stored jobs, in run order."""
        comparison = self.service.create_comparison(spec)
        self.comparison_id = comparison["id"]
        return [self.service.job(job_id) for job_id in comparison["job_ids"]]

    def job(self, job_id: str) -> dict[str, Any]:
        return self.service.job(job_id)

    def follow(
        self,
        job_ids: list[str],
        on_event: Callable[[str, Any], None],
        stop: threading.Event,
    ) -> None:
        """Hand every event of these jobs to `on_event(job_id, event)`, in order, until
        each has its final status; once `stop` is set, cancel those not yet ended."""
        pending, after, cancelled = set(job_ids), 0, False
        while pending:
            if stop.is_set() and not cancelled:
                cancelled = True
                self.service.cancel_comparison(self.comparison_id, wait=_CANCEL_WAIT)
            rows = self.store.events(job_ids, after, 1000)
            for row in rows:
                after = row["id"]
                event = parse_event(row["event"])
                on_event(row["job_id"], event)
                if event.type == "status":
                    pending.discard(row["job_id"])
            if not rows:
                time.sleep(_POLL_SECONDS)
