"""`executor=ray`: run each job on a Ray cluster, reporting events as `LocalExecutor` does.

Each job becomes a Ray actor (`server.jobs.ray_actor.JobActor`) that asks the cluster for
the job's resources (CPUs, a whole or fractional GPU for a cuda job, the job's estimated
memory) and runs the job in its own worker process with the local executor's limits. The
Ray driver lives in a bridge process (`server.jobs.ray_bridge`), so that a cluster going
away never takes the server with it: the executor then reports the cluster down (for
`/api/health`), ends the jobs that were running on it as failed with the reason, keeps the
queued ones, and starts a new bridge every `reconnect_seconds` until the cluster answers
(with `address="local"` the new bridge starts a new private cluster).

A job is queued until its actor has been placed on a node, then running; Ray decides which
waiting job gets free resources first, so the start order is not strictly FIFO. Callbacks
run on this executor's one thread, as the Executor contract requires.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import logging
import multiprocessing
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from server import memory
from server.jobs.executor import (
    DEFAULT_LIMITS,
    DEFAULT_THREADS_PER_JOB,
    ThreadedExecutor,
    cancelled_status,
)
from server.jobs.ray_bridge import SHUTDOWN_SECONDS, run_bridge
from server.jobs.ray_env import MISSING_RAY
from server.runner import Limits
from server.specs import stored_job

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _RayJob:
    id: str
    spec: dict[str, Any]
    sent: bool = False  # handed to the current bridge
    launched: bool = False  # its actor was placed on a node: running
    cancelled: bool = False
    where: dict[str, Any] | None = None


class RayExecutor(ThreadedExecutor):
    """Runs jobs on the Ray cluster at `address` (`local`, `auto`, `host:port` or
    `ray://host:port`; see `server.settings`)."""

    thread_name = "ray-executor"

    def __init__(
        self,
        address: str = "local",
        limits: Limits = DEFAULT_LIMITS,
        memory_limit_mb: int | None = None,
        threads_per_job: int | None = None,
        cpus_per_job: float | None = None,
        gpus_per_job: float = 1.0,
        num_cpus: int | None = None,
        node_ip_address: str | None = None,
        max_retries: int = 0,
        reconnect_seconds: float = 5.0,
    ) -> None:
        """`memory_limit_mb`: each job's address-space limit; None for what the local
        executor would choose on the job's node, 0 for none."""
        if importlib.util.find_spec("ray") is None:
            raise ImportError(MISSING_RAY)
        self.address = address
        self.limits = limits
        self.memory_limit_mb = memory_limit_mb or None  # what the server can check up front
        self._memory_limit_mb = memory_limit_mb
        self.threads_per_job = threads_per_job or DEFAULT_THREADS_PER_JOB
        self.cpus_per_job = cpus_per_job or float(self.threads_per_job)
        self.gpus_per_job = gpus_per_job
        self.max_retries = max_retries
        self.reconnect_seconds = reconnect_seconds
        self._bridge_config = {
            "address": address,
            "num_cpus": num_cpus,
            "node_ip_address": node_ip_address,
            "max_retries": max_retries,
        }
        super().__init__()
        self._ctx = multiprocessing.get_context("spawn")
        self._send_lock = threading.Lock()
        self._jobs: dict[str, _RayJob] = {}  # submitted, not yet reported as exited
        self._unsent_cancels: deque[_RayJob] = deque()
        self._bridge: BaseProcess | None = None
        self._conn: Connection | None = None
        self._connected = False
        self._connect_at = 0.0
        self._cluster: dict[str, Any] = {"state": "connecting", "message": None}

    # --- public API -----------------------------------------------------------------

    def submit(self, job_id: str, spec: dict[str, Any]) -> None:
        with self._lock:
            self._refuse_unless_new(job_id, self._jobs)
            self._jobs[job_id] = _RayJob(job_id, spec)
        self._wake()

    def cancel(self, job_id: str) -> bool:
        """A job not yet handed to the cluster is reported cancelled by this executor's
        thread; one on the cluster is cancelled there (stop flag, then terminate and kill,
        as locally; its actor is killed if it does not answer within seconds)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            if job.cancelled:
                return True
            job.cancelled = True
            if not job.sent:
                del self._jobs[job_id]
                self._unsent_cancels.append(job)
        if job.sent:
            self._send(("cancel", job_id))
        self._wake()
        return True

    def running(self) -> list[str]:
        with self._lock:
            return [job.id for job in self._jobs.values() if job.launched]

    def queued(self) -> list[str]:
        with self._lock:
            return [job.id for job in self._jobs.values() if not job.launched]

    def placement(self, job_id: str) -> dict[str, Any] | None:
        """Where a running job runs: its node, its actor's and worker's process ids."""
        with self._lock:
            job = self._jobs.get(job_id)
            return None if job is None else job.where

    def cluster(self) -> dict[str, Any]:
        """The cluster as last seen: state (connecting, connected, down), a message when
        down, and when connected its alive nodes, CPUs, GPUs and memory."""
        with self._lock:
            return {"address": self.address, **self._cluster}

    #: cuda jobs are accepted: they ask the cluster for `gpus_per_job` GPUs, and fail at
    #: once (with the reason) when the cluster has none
    offers_cuda = True

    @property
    def concurrency(self) -> int | None:
        """Jobs the cluster can run at once by CPUs (None while it is not connected)."""
        cpus = self.cluster().get("cpus")
        return int(cpus // self.cpus_per_job) if cpus else None

    def shutdown(self) -> None:
        """Cancel every job on the cluster (their statuses still reach on_event), stop the
        bridge (and with `local` the private cluster), join the thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        self._wake()
        if thread is not None:
            thread.join(SHUTDOWN_SECONDS + 10.0)
        else:
            self._stop_bridge()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    # --- bookkeeping thread -----------------------------------------------------------

    def _send(self, message: tuple) -> None:
        with self._send_lock:
            if self._conn is None:
                return  # the bridge has gone: its exit is handled on the thread
            with contextlib.suppress(OSError, ValueError):  # idem
                self._conn.send(message)

    def _loop(self) -> None:
        try:
            while not self._closed:
                try:
                    self._iterate()
                except Exception:  # keep serving the other jobs
                    log.exception("ray executor: unexpected error")
                    time.sleep(0.1)
        finally:
            self._stop_bridge()

    def _iterate(self) -> None:
        now = time.monotonic()
        if self._bridge is None and now >= self._connect_at:
            self._start_bridge()
        self._report_unsent_cancels()
        if self._connected:
            self._send_new_jobs()
        channels: list[Any] = [self._wake_r]
        if self._bridge is not None and self._conn is not None:
            channels += [self._conn, self._bridge.sentinel]
        timeout = 1.0 if self._bridge is not None else max(0.0, self._connect_at - now)
        ready = wait(channels, min(timeout, 1.0))
        if self._wake_r in ready:
            self._drain_wake()
        if self._conn is not None and self._conn in ready:
            self._receive()
        if self._bridge is not None and self._bridge.sentinel in ready:
            self._receive()  # what it said before going
            self._bridge_gone()

    def _start_bridge(self) -> None:
        parent_end, child_end = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(
            target=run_bridge,
            args=(child_end, os.getpid(), self._bridge_config),
            name="ray-bridge",
            daemon=True,
        )
        try:
            process.start()
        except Exception as error:
            log.exception("ray executor: could not start its bridge process")
            self._set_cluster("down", f"could not start the Ray bridge process: {error}")
            self._connect_at = time.monotonic() + self.reconnect_seconds
            parent_end.close()
            return
        finally:
            child_end.close()
        self._bridge, self._conn = process, parent_end
        if self.cluster()["state"] != "down":
            self._set_cluster("connecting", None)

    def _send_new_jobs(self) -> None:
        with self._lock:
            new = [job for job in self._jobs.values() if not job.sent and not job.cancelled]
            for job in new:
                job.sent = True
        for job in new:
            self._send(("submit", job.id, job.spec, self._resources(job.spec)))

    def _resources(self, spec: dict[str, Any]) -> dict[str, Any]:
        """What the job's actor asks of the cluster, and the limits it runs under."""
        return {
            "num_cpus": self.cpus_per_job,
            "num_gpus": self.gpus_per_job if spec.get("device") == "cuda" else 0,
            "memory": _estimated_bytes(spec),
            "limits": dataclasses.asdict(self.limits),
            "memory_limit_mb": self._memory_limit_mb,
            "threads": self.threads_per_job,
        }

    def _report_unsent_cancels(self) -> None:
        with self._lock:
            cancels = list(self._unsent_cancels)
            self._unsent_cancels.clear()
        for job in cancels:
            self._emit(job.id, [cancelled_status("cancelled before start")])
            self._finish(job.id, "cancelled before start")

    def _receive(self) -> None:
        assert self._conn is not None
        while True:
            try:
                if not self._conn.poll():
                    return
                message = self._conn.recv()
            except (EOFError, OSError):
                return
            self._handle(message)

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "cluster":
            self._connected = True
            self._set_cluster("connected", None, message[1])
        elif kind == "down":
            if self.cluster()["state"] != "down":
                log.error("ray executor: %s", message[1])
            self._set_cluster("down", message[1])
        elif kind == "launch":
            _, job_id, where = message
            with self._lock:
                job = self._jobs.get(job_id)
                if job is None:
                    return
                job.launched, job.where = True, where
            try:
                self._on_launch(job_id, None, None)  # no process of this machine's
            except Exception:
                log.exception("job %s: on_launch callback failed", job_id)
        elif kind == "events":
            self._emit(message[1], message[2])
        elif kind == "exit":
            self._finish(message[1], message[2])

    def _bridge_gone(self) -> None:
        """The bridge exited: the cluster is unreachable (or the bridge crashed). Jobs
        that ran there end failed; queued ones wait for the next bridge."""
        assert self._bridge is not None
        self._bridge.join(timeout=1.0)
        code = self._bridge.exitcode
        self._bridge.close()
        with self._send_lock:
            if self._conn is not None:
                self._conn.close()
            self._bridge, self._conn = None, None
        self._connected = False
        state = self.cluster()
        reason = state["message"] if state["state"] == "down" else None
        reason = reason or f"the Ray bridge process exited with code {code}"
        if self._closed:
            return
        if state["state"] != "down":
            log.error("ray executor: %s", reason)
        self._set_cluster("down", reason)
        self._connect_at = time.monotonic() + self.reconnect_seconds
        with self._lock:
            lost = [job for job in self._jobs.values() if job.launched or job.cancelled]
            for job in self._jobs.values():
                job.sent = False
        for job in lost:
            if job.launched:
                self._finish(job.id, f"the Ray cluster went away while the job ran ({reason})")
            else:  # cancelled while waiting for resources
                self._emit(job.id, [cancelled_status("cancelled before start")])
                self._finish(job.id, "cancelled before start")

    def _stop_bridge(self) -> None:
        """At shutdown: let the bridge cancel its jobs (their events still flow), then end it."""
        if self._bridge is None:
            return
        self._send(("shutdown",))
        deadline = time.monotonic() + SHUTDOWN_SECONDS + 5.0
        while self._bridge.is_alive() and time.monotonic() < deadline:
            if self._conn is not None and self._conn.poll(0.1):
                self._receive()
        if self._bridge.is_alive():
            self._bridge.kill()
        self._bridge.join(timeout=5.0)
        with self._send_lock:
            if self._conn is not None:
                self._conn.close()
            self._bridge, self._conn = None, None

    def _set_cluster(
        self, state: str, message: str | None, facts: dict[str, Any] | None = None
    ) -> None:
        with self._lock:
            self._cluster = {"state": state, "message": message, **(facts or {})}

    def _emit(self, job_id: str, events: list[dict[str, Any]]) -> None:
        try:
            self._on_events(job_id, events)
        except Exception:
            log.exception("job %s: on_event callback failed", job_id)

    def _finish(self, job_id: str, error: str | None) -> None:
        with self._lock:
            self._jobs.pop(job_id, None)
        try:
            self._on_exit(job_id, error)
        except Exception:
            log.exception("job %s: on_exit callback failed", job_id)


def _estimated_bytes(spec: dict[str, Any]) -> int | None:
    """The job's estimated peak memory (`server.memory`), reserved on its node; None when
    the spec cannot be read here (the worker then reports what is wrong with it)."""
    try:
        return memory.estimate(stored_job(spec)).total  # validated when submitted
    except Exception:
        return None
