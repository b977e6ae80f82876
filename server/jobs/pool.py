"""Warm job workers: processes started ahead of need, each waiting for exactly one job.

A worker needs torch and the runner imported before it can run anything
(`server.jobs.worker.warm_up`): seconds of CPU. `WorkerPool` keeps `size` such workers
started and idle, so that a job handed to one starts at once; a worker runs one job and
exits, and the pool starts a replacement. On Linux without GPUs the workers come from a fork
server (`worker_context`): one process that imported all that once and never ran a torch op
(a copy of a process whose OpenMP team ran would hang in its first parallel op), so a
replacement is a copy that starts in milliseconds instead of competing with the running job
for the CPU while it imports torch. On a machine with GPUs each worker is pinned to one GPU
when it starts (CUDA_VISIBLE_DEVICES must be set before CUDA initialises), so the idle
workers are spread over the GPUs and a job takes one pinned to the GPU the executor chose
for it. Every method runs on the executor's bookkeeping thread, which therefore starts every
worker (or asks the fork server for it): a spawned worker's parent-death signal is tied to
that thread; a forked one watches its server (`processes.die_with_parent`).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from multiprocessing.process import BaseProcess
from typing import Any

from server.jobs.worker import WARM_MODULES

log = logging.getLogger(__name__)

#: seconds without a new idle worker after one died unexpectedly (no restart loop)
RESTART_DELAY = 1.0


def default_start_method(gpus: Sequence[str]) -> str:
    """ "forkserver" on Linux without GPUs, else "spawn". Spawn on GPU machines: a copy of a
    process that has initialised CUDA cannot use it, and a fresh interpreter per worker is
    sure not to have (torch's import alone does not initialise CUDA, but nothing here checks
    that every imported module leaves it alone). Linux only: a worker started by a fork
    server finds its server through /proc (`processes.die_with_parent`)."""
    return "forkserver" if sys.platform.startswith("linux") and not gpus else "spawn"


def worker_context(start_method: str) -> BaseContext:
    """The multiprocessing context that starts workers. For "forkserver", its fork server
    (one per server process, started with the first worker) imports `WARM_MODULES` and the
    main module, never running torch; where another part of this process started the fork
    server first, the workers import them themselves (slower, still correct)."""
    context = multiprocessing.get_context(start_method)
    if start_method == "forkserver":
        context.set_forkserver_preload(["__main__", "server.jobs.worker", *WARM_MODULES])
    return context


@dataclass(eq=False)
class Worker:
    """A started worker process and its two pipes; it takes one job, then exits."""

    process: BaseProcess
    orders: Connection | None  # write end: the one job; None once it was sent
    events: Connection  # read end: the job's events; end of file once the worker has gone
    stop: Any  # a shared byte the job polls (lock-free: a killed worker can't hold it)
    gpu: str | None

    def hand(self, order: dict[str, Any]) -> None:
        """Send the worker its job without blocking the caller: the worker reads its order
        only once warmed up, and a large order would fill the pipe until then."""
        orders, self.orders = self.orders, None
        assert orders is not None, "a worker takes one job"

        def send() -> None:
            with contextlib.suppress(OSError), orders:  # gone: its exit is reported
                orders.send(order)

        threading.Thread(target=send, name="job-order", daemon=True).start()

    def discard(self) -> None:
        """End an idle worker (it holds no job) and release its pipes."""
        self.process.kill()
        self.process.join(timeout=1.0)
        for conn in (self.orders, self.events):
            if conn is not None:
                conn.close()


class WorkerPool:
    """Keeps `size` idle warm workers (0: none; each job then starts a cold one)."""

    def __init__(
        self,
        context: BaseContext,
        target: Callable[..., None],
        parent_pid: int,
        size: int,
        gpus: Sequence[str],
    ) -> None:
        self._context = context
        self._target = target
        self._parent_pid = parent_pid
        self.size = size
        self._gpus = list(gpus)
        self._idle: list[Worker] = []
        self._count = 0
        self._paused_until = 0.0

    def idle(self) -> list[Worker]:
        return list(self._idle)

    def take(self, gpu: str | None) -> Worker:
        """An idle worker for `gpu` (warm, or still warming up), else a new one."""
        for worker in self._idle:
            if worker.gpu == gpu and worker.process.is_alive():
                self._idle.remove(worker)
                return worker
        return self._start(gpu)

    def fill(self) -> None:
        """Start workers until `size` are idle, the GPUs' shares evened out."""
        while len(self._idle) < self.size and time.monotonic() >= self._paused_until:
            try:
                self._idle.append(self._start(self._emptiest_gpu()))
            except Exception:
                log.exception("job worker pool: could not start a worker")
                self._paused_until = time.monotonic() + RESTART_DELAY

    def lost(self, worker: Worker) -> None:
        """An idle worker exited by itself (killed, crashed while importing): drop it; its
        replacement comes after RESTART_DELAY, so a worker that cannot start is no loop."""
        self._idle.remove(worker)
        worker.discard()
        log.warning(
            "job worker pool: idle worker %s exited with code %s; starting another",
            worker.process.pid,
            worker.process.exitcode,
        )
        self._paused_until = time.monotonic() + RESTART_DELAY

    def close(self) -> None:
        """End every idle worker; none is started after this."""
        self.size = 0
        idle, self._idle = self._idle, []
        for worker in idle:
            worker.discard()

    def _emptiest_gpu(self) -> str | None:
        if not self._gpus:
            return None
        return min(self._gpus, key=lambda gpu: sum(w.gpu == gpu for w in self._idle))

    def _start(self, gpu: str | None) -> Worker:
        orders_in, orders_out = self._context.Pipe(duplex=False)
        events_in, events_out = self._context.Pipe(duplex=False)
        stop = self._context.RawValue("b", 0)
        self._count += 1
        process = self._context.Process(
            target=self._target,
            args=(orders_in, events_out, stop, gpu, self._parent_pid),
            name=f"job-worker-{self._count}",
            daemon=True,
        )
        try:
            process.start()
        except BaseException:
            orders_out.close()
            events_in.close()
            raise
        finally:
            # the worker holds the only other ends: end of file means it has gone
            orders_in.close()
            events_out.close()
        return Worker(process, orders_out, events_in, stop, gpu)
