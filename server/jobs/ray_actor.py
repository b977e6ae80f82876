"""One job on a Ray node: a Ray actor that runs it as the local executor would.

The actor holds a `LocalExecutor` of one slot and no warm workers, so the job runs in its
own spawned worker process (`server.jobs.worker`) with the same per-job limits as on a
server of its own: the address-space limit, the wall-clock limit counted from launch (set-up
included), the torch thread count, cancel escalation (stop flag → terminate → kill) and the
reasons a crashed worker is reported with. The worker dies with the actor (its
parent-death signal), so a killed actor or node leaves no job running.

The bridge (`server.jobs.ray_bridge`) creates one such actor per job with the job's
resources and long-polls `events`; Ray imports this module on the node by name, so the
package must be installed there (the docker image is).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from server.jobs.executor import LocalExecutor, default_concurrency, default_memory_limit_mb
from server.runner import Limits

#: seconds `events` waits for news before answering with none (the bridge asks again)
POLL_SECONDS = 0.5


class JobActor:
    """Runs one job from construction on; `events` hands its events over in order."""

    def __init__(
        self,
        job_id: str,
        spec: dict[str, Any],
        limits: dict[str, Any],
        memory_limit_mb: int | None,
        threads_per_job: int,
        uses_gpu: bool,
    ) -> None:
        """`memory_limit_mb`: None for the limit the local executor would use on this node.
        `uses_gpu`: whether the job reserved a GPU (Ray then makes it the one visible);
        without one the job must not use any, whatever its device says."""
        if not uses_gpu:  # before CUDA initialises here or in the job's worker
            os.environ["CUDA_VISIBLE_DEVICES"] = ""
        if memory_limit_mb is None:
            memory_limit_mb = default_memory_limit_mb(default_concurrency())
        self._job_id = job_id
        self._events: list[dict[str, Any]] = []
        self._exit: tuple[str | None] | None = None  # (error,) once the job's worker is done
        self._worker_pid: int | None = None
        self._news = threading.Condition()
        self._executor = LocalExecutor(
            concurrency=1,
            limits=Limits(**limits),
            memory_limit_mb=memory_limit_mb,
            pool_size=0,
            threads_per_job=threads_per_job,
            start_method="spawn",  # one job per actor: a fork server would only add a process
        )
        self._executor.start(self._on_event, self._on_exit, self._on_launch)
        self._executor.submit(job_id, spec)

    def where(self) -> dict[str, Any]:
        """Where the job runs: the node's address, this actor's process id, the job's
        worker process id (None until launched: this is asked right after start)."""
        import ray

        return {
            "node": ray.util.get_node_ip_address(),
            "actor_pid": os.getpid(),
            "worker_pid": self._worker_pid,
        }

    def events(self, wait: float = POLL_SECONDS) -> tuple[list[dict[str, Any]], tuple | None]:
        """The events since the last call, and `(error,)` once the job is over (after its
        last event); waits up to `wait` seconds for either."""
        with self._news:
            self._news.wait_for(lambda: self._events or self._exit is not None, wait)
            events, self._events = self._events, []
            return events, self._exit

    def cancel(self) -> None:
        self._executor.cancel(self._job_id)

    def _on_event(self, job_id: str, event: dict[str, Any]) -> None:
        with self._news:
            self._events.append(event)
            self._news.notify_all()

    def _on_launch(self, job_id: str, pid: int | None, started: int | None) -> None:
        self._worker_pid = pid

    def _on_exit(self, job_id: str, error: str | None) -> None:
        with self._news:
            self._exit = (error,)
            self._news.notify_all()
