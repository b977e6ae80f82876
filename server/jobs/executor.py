"""Executors: run submitted jobs outside the server and report their events.

An executor takes (job_id, spec dict) pairs, runs each job to its end and calls back
`on_event(job_id, event_dict)` for every event, the final status included, and
`on_exit(job_id, error)` exactly once per job after its last event. `error` is None when the
job sent its own final status, else a message ("cancelled before start", "worker process
exited with code -9 before finishing", ...). An optional `on_launch(job_id, pid, started)`
comes first, as soon as a worker has taken the job (`pid` and `started`, the process's
start time, identify that worker; None where there is no process of its own). Callbacks run
on the executor's own thread, never on the caller's (so never on an asyncio loop), one at
a time. Started with `start_batched`, an executor hands a job's events over as lists
instead (`on_events(job_id, events)`, in order): what `LocalExecutor` read from the job's
pipe in one pass, so that the service stores them in one transaction and wakes the event
loop once; an executor that reads events one at a time inherits a `start_batched` that
passes each as a list of one.

`LocalExecutor` runs each job in a process of its own, so a crash, a hang or an
out-of-memory kill ends that job only. It keeps `pool_size` such interpreters started ahead
of need, torch already imported (`server.jobs.pool`), so that a job starts at once; each runs
one job and exits. It enforces each job's wall-clock limit from outside (set-up included), a
per-job memory limit (`default_memory_limit_mb`) and a per-job torch thread count
(DEFAULT_THREADS_PER_JOB).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from server.events import Status
from server.jobs.pool import WorkerPool, default_start_method, worker_context
from server.jobs.processes import identity
from server.jobs.worker import job_order, run_worker
from server.runner import Limits

log = logging.getLogger(__name__)

DEFAULT_LIMITS = Limits()

EventCallback = Callable[[str, dict[str, Any]], None]
BatchCallback = Callable[[str, list[dict[str, Any]]], None]
ExitCallback = Callable[[str, str | None], None]
LaunchCallback = Callable[[str, int | None, int | None], None]

CANCEL_GRACE = 1.0  # seconds a running job has to stop by itself before it is terminated
KILL_GRACE = 0.5  # seconds after terminate() before kill()
_READ_BATCH = 256  # events read from one job before looking at the others
#: seconds between two reads of a job's pipe once it was drained: the events of a fast job
#: (a landscape sends one per step) then reach the service in batches, one transaction
#: and one SSE write each, instead of one by one; a job's first read is at once
READ_INTERVAL = 0.02
#: seconds past its time limit a job that runs steps gets, so that the runner's own check
#: between steps ends it first (with its summary); the executor ends it only when a step hangs
RUNNER_GRACE = 5.0
MEMORY_FRACTION = 0.75  # of the machine's memory, shared by the jobs that run at once
MIN_MEMORY_LIMIT_MB = 2048  # a CPU worker reserves ≈ 1 GB of address space with torch loaded
#: torch threads per job unless set: the playground's jobs are small, and on a busy machine
#: two threads made a delayed-XOR step 26× slower than one (README "Benchmark")
DEFAULT_THREADS_PER_JOB = 1


def cancelled_status(message: str, step: int = 0) -> dict[str, Any]:
    """The final status event the executor emits for a job whose worker could not send one."""
    return _status(step, "cancelled", message)


def _status(step: int, status: Any, message: str) -> dict[str, Any]:
    return Status(step=step, status=status, message=message).model_dump()


class Executor(ABC):
    """Runs jobs and reports their events; see the module docstring for the contract."""

    @abstractmethod
    def start(
        self,
        on_event: EventCallback,
        on_exit: ExitCallback,
        on_launch: LaunchCallback | None = None,
    ) -> None:
        """Begin running submitted jobs, reporting through the callbacks."""

    def start_batched(
        self,
        on_events: BatchCallback,
        on_exit: ExitCallback,
        on_launch: LaunchCallback | None = None,
    ) -> None:
        """`start`, with each job's events handed over in lists (in order); this default
        hands each event over as a list of one."""
        self.start(lambda job_id, event: on_events(job_id, [event]), on_exit, on_launch)

    @abstractmethod
    def submit(self, job_id: str, spec: dict[str, Any]) -> None:
        """Queue a job (FIFO). The spec is a JobSpec's dump, validated when it was submitted."""

    @abstractmethod
    def cancel(self, job_id: str) -> bool:
        """Cancel a queued or running job; True if it was queued or running here."""

    @abstractmethod
    def running(self) -> list[str]:
        """Ids of the jobs running now."""

    @abstractmethod
    def queued(self) -> list[str]:
        """Ids of the jobs waiting for a slot, in the order they will start."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop accepting jobs, cancel every queued and running one, and join the threads."""


def default_concurrency() -> int:
    """One job per CUDA GPU, else one per two CPU cores."""
    import torch

    if torch.cuda.is_available():
        return max(1, torch.cuda.device_count())
    return max(1, (os.cpu_count() or 1) // 2)


def default_memory_limit_mb(concurrency: int, total_mb: int | None = None) -> int:
    """Each job's share of MEMORY_FRACTION of the machine's memory, at least
    MIN_MEMORY_LIMIT_MB: so that `concurrency` jobs at their limit leave the server room."""
    total = total_memory_mb() if total_mb is None else total_mb
    return max(MIN_MEMORY_LIMIT_MB, int(total * MEMORY_FRACTION / max(1, concurrency)))


def total_memory_mb() -> int:
    """The machine's physical memory, or a smaller cgroup (container) limit, in MB."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as file:
                text = file.read().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return total // 2**20


def _oom_kills() -> int | None:
    """How many processes the kernel's out-of-memory killer has killed since boot (Linux)."""
    try:
        with open("/proc/vmstat") as file:
            for line in file:
                if line.startswith("oom_kill "):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _time_limit(spec: dict[str, Any], limits: Limits) -> float:
    """The job's own `max_seconds` when valid and smaller, else the server's."""
    own = spec.get("max_seconds")
    if isinstance(own, (int, float)) and not isinstance(own, bool) and own > 0:
        return min(float(own), limits.max_seconds)
    return limits.max_seconds


def _visible_gpus() -> list[str]:
    """The GPU ids a worker may be pinned to, honouring the server's CUDA_VISIBLE_DEVICES."""
    import torch

    if not torch.cuda.is_available():
        return []
    count = torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        ids = [part.strip() for part in visible.split(",") if part.strip()]
        return ids[:count]
    return [str(i) for i in range(count)]


@dataclass(eq=False)
class _Job:
    id: str
    spec: dict[str, Any]
    #: a shared byte (lock-free, so a killed worker can't leave it locked); the worker's
    #: own once the job has one
    stop: Any
    process: BaseProcess | None = None
    conn: Connection | None = None
    pid: int | None = None
    gpu: str | None = None
    time_limit: float = math.inf  # seconds
    cancel_reason: str | None = None  # set once a cancel was requested
    limit_message: str | None = None  # set once the time limit ended the job
    deadline: float | None = None  # when to escalate to terminate() / kill()
    limit_at: float | None = None  # when the time limit ends the job (monotonic)
    read_after: float = 0.0  # when its drained pipe is read again (monotonic)
    terminated: bool = False
    final: bool = False  # the worker sent its final status
    started: bool = False  # the worker sent `started`: set-up is over
    step: int = 0  # step of the last event seen
    oom_kills: int | None = None  # the kernel's OOM kill count when the worker started
    done: threading.Event = field(default_factory=threading.Event)


class ThreadedExecutor(Executor):
    """What the executors share: one bookkeeping thread (`_loop`, named `thread_name`) that
    makes every callback, woken through a self-pipe when a caller submits or cancels, so
    that callbacks never run on a caller's thread nor two at a time."""

    thread_name = "job-executor"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._on_events: BatchCallback = lambda job_id, events: None
        self._on_exit: ExitCallback = lambda job_id, error: None
        self._on_launch: LaunchCallback = lambda job_id, pid, started: None
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def start(
        self,
        on_event: EventCallback,
        on_exit: ExitCallback,
        on_launch: LaunchCallback | None = None,
    ) -> None:
        def one_by_one(job_id: str, events: list[dict[str, Any]]) -> None:
            for event in events:
                on_event(job_id, event)

        self.start_batched(one_by_one, on_exit, on_launch)

    def start_batched(
        self,
        on_events: BatchCallback,
        on_exit: ExitCallback,
        on_launch: LaunchCallback | None = None,
    ) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("executor is shut down")
            if self._thread is not None:
                raise RuntimeError("executor already started")
            self._on_events, self._on_exit = on_events, on_exit
            if on_launch is not None:
                self._on_launch = on_launch
            self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
            self._thread.start()

    @abstractmethod
    def _loop(self) -> None:
        """The bookkeeping thread's body; returns once the executor is shut down."""

    def _refuse_unless_new(self, job_id: str, jobs: Collection[str]) -> None:
        """Under the lock: a job is submitted once, and never after shutdown."""
        if self._closed:
            raise RuntimeError("executor is shut down")
        if job_id in jobs:
            raise ValueError(f"job {job_id} is already queued or running")

    def _wake(self) -> None:
        # A full pipe means a wake-up is pending anyway; a closed one, that we are shut down.
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except OSError:
            pass


class LocalExecutor(ThreadedExecutor):
    """Runs each job in its own spawned worker process, `concurrency` at a time.

    One thread does all the bookkeeping: it hands queued jobs to idle warm workers (or to
    new ones) when a slot is free, keeps `pool_size` warm workers idle, forwards each
    worker's events from its pipe, notices exited workers, escalates
    cancellations (stop flag → terminate() after CANCEL_GRACE → kill() after KILL_GRACE),
    ends jobs at their time limit (terminate(), then kill()) and calls the callbacks.
    Workers die with the process that runs this thread (`processes.die_with_parent`).
    Each worker has its own pipe and stop flag, so a worker killed mid-write cannot
    corrupt or lock another job's channel.
    """

    #: the function a worker process runs (module-level, so that spawn can import it)
    worker_main = staticmethod(run_worker)

    def __init__(
        self,
        concurrency: int | None = None,
        limits: Limits = DEFAULT_LIMITS,
        memory_limit_mb: int | None = None,
        pool_size: int | None = None,
        threads_per_job: int | None = None,
        local_data: str | None = None,
        start_method: str | None = None,
    ) -> None:
        """`memory_limit_mb`: each CPU worker's address-space limit; None for
        `default_memory_limit_mb`, 0 for none (then `self.memory_limit_mb` is None).
        `pool_size`: warm workers kept idle; None for `concurrency`, 0 for none (each job
        then waits for a new interpreter to import torch). `threads_per_job`: torch threads
        of each job; None for DEFAULT_THREADS_PER_JOB. `local_data`: a CIFAR-10 archive or
        folder that cifar10 jobs read instead of the data folders (the CLI's `--data`: an
        argument of whoever builds the executor, never a setting or a spec field, so no
        API client can name a path). `start_method`: None for `pool.default_start_method`;
        "forkserver", a copy of a fork server that imported torch once (milliseconds);
        "spawn", a fresh interpreter per worker that imports torch (seconds); or "fork", a
        copy of this process with torch already imported (milliseconds): only for a process
        that has not initialised CUDA and whose workers need not be recognised after a
        restart (`processes.is_leftover_worker` knows the other two), as the CLI's `run`.
        With "fork" the bookkeeping thread forks, and it never runs torch: a copy inherits
        no OpenMP team (one would hang its first parallel region)."""
        if concurrency is not None and concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if memory_limit_mb is not None and memory_limit_mb < 0:
            raise ValueError("memory_limit_mb must be 0 (no limit) or more")
        if pool_size is not None and pool_size < 0:
            raise ValueError("pool_size must be 0 (no warm workers) or more")
        if threads_per_job is not None and threads_per_job < 1:
            raise ValueError("threads_per_job must be at least 1")
        self.concurrency = concurrency or default_concurrency()
        self.limits = limits
        if memory_limit_mb is None:
            memory_limit_mb = default_memory_limit_mb(self.concurrency)
        self.memory_limit_mb: int | None = memory_limit_mb or None
        self.threads_per_job = threads_per_job or DEFAULT_THREADS_PER_JOB
        self.local_data = local_data
        self.pool_size = self.concurrency if pool_size is None else pool_size
        self._gpus = _visible_gpus()
        self._ctx = worker_context(start_method or default_start_method(self._gpus))
        self._pool = WorkerPool(
            self._ctx, self.worker_main, os.getpid(), self.pool_size, self._gpus
        )
        super().__init__()
        self._jobs: dict[str, _Job] = {}  # queued or running, not yet reported as exited
        self._waiting: deque[str] = deque()
        self._running: dict[str, _Job] = {}
        self._unstarted_cancels: deque[_Job] = deque()  # cancelled while queued, to report
        self._stopping = False

    # --- public API -----------------------------------------------------------------

    def submit(self, job_id: str, spec: dict[str, Any]) -> None:
        with self._lock:
            self._refuse_unless_new(job_id, self._jobs)
            job = _Job(job_id, spec, self._ctx.RawValue("b", 0))
            job.time_limit = _time_limit(spec, self.limits)
            self._jobs[job_id] = job
            self._waiting.append(job_id)
        self._wake()

    def cancel(self, job_id: str, wait: bool = False) -> bool:
        """Cancel a job without blocking; with `wait`, return once its on_exit was called.

        A queued job is dropped and reported cancelled (status, then on_exit) by the
        executor's thread. A running job is asked to stop; a worker still alive after
        CANCEL_GRACE is terminated, then killed, and a cancelled status is reported for it.
        Either way on_exit follows within about a second (≤ CANCEL_GRACE + KILL_GRACE).
        """
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                return False
            self._request_cancel(job, "")
        self._wake()
        if wait and self._thread is not None and threading.current_thread() is not self._thread:
            job.done.wait(CANCEL_GRACE + KILL_GRACE + 1.0)
        return True

    def running(self) -> list[str]:
        with self._lock:
            return list(self._running)

    def queued(self) -> list[str]:
        with self._lock:
            return list(self._waiting)

    def idle_workers(self) -> list[int]:
        """The process ids of the warm workers waiting for a job."""
        return [worker.process.pid for worker in self._pool.idle()]

    def pid(self, job_id: str) -> int | None:
        """The worker process id of a running job (None if queued or unknown)."""
        with self._lock:
            job = self._jobs.get(job_id)
            return job.pid if job is not None else None

    def shutdown(self) -> None:
        with self._lock:
            if self._closed and self._stopping:
                return
            self._closed = True
            jobs = list(self._jobs.values())
            for job in jobs:
                self._request_cancel(job, "executor shutting down")
            thread = self._thread
        self._wake()
        if thread is not None:
            deadline = time.monotonic() + CANCEL_GRACE + KILL_GRACE + 2.0
            for job in jobs:
                job.done.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            self._stopping = True
        self._wake()
        if thread is not None:
            thread.join(timeout=5.0)
        with self._lock:  # whatever the thread could not finish
            leftovers = list(self._running.values())
            self._running.clear()
            self._jobs.clear()
            self._waiting.clear()
        for job in leftovers:
            if job.process is not None:
                job.process.kill()
                job.process.join(timeout=1.0)
            if job.conn is not None:
                job.conn.close()
        if thread is None or not thread.is_alive():
            self._pool.close()  # a no-op unless the thread never ran: it closes the pool
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)

    # --- bookkeeping thread -----------------------------------------------------------

    def _request_cancel(self, job: _Job, reason: str) -> None:
        """Under the lock: drop a queued job, or flag a running one to stop."""
        if job.cancel_reason is not None or job.limit_message is not None:
            return  # already being stopped
        job.cancel_reason = reason
        if job.id in self._waiting:  # stays in self._jobs until it is reported
            self._waiting.remove(job.id)
            self._unstarted_cancels.append(job)
        else:
            job.stop.value = 1
            job.deadline = time.monotonic() + CANCEL_GRACE

    def _loop(self) -> None:
        try:
            while True:
                try:
                    if not self._iterate():
                        return
                except Exception:  # keep serving the other jobs
                    log.exception("job executor: unexpected error")
                    time.sleep(0.1)
        finally:
            self._pool.close()

    def _iterate(self) -> bool:
        with self._lock:
            if self._stopping:
                return False
            closed = self._closed
            unstarted = list(self._unstarted_cancels)
            self._unstarted_cancels.clear()
            starts = []
            while self._waiting and len(self._running) < self.concurrency:
                job = self._jobs[self._waiting.popleft()]
                job.gpu = self._pick_gpu()
                self._running[job.id] = job
                starts.append(job)
        for job in unstarted:
            message = "cancelled before start"
            if job.cancel_reason:
                message += f" ({job.cancel_reason})"
            self._emit(job, cancelled_status(message))
            self._finish(job, "cancelled before start")
        for job in starts:
            self._launch(job)
        if closed:
            self._pool.close()
        else:
            self._pool.fill()  # after the launches, which take idle workers first

        with self._lock:
            active = [job for job in self._running.values() if job.process is not None]
        idle = {worker.process.sentinel: worker for worker in self._pool.idle()}
        channels: list[Any] = [self._wake_r, *idle]
        by_sentinel: dict[int, _Job] = {}
        by_conn: dict[int, _Job] = {}
        deadlines = []
        now = time.monotonic()
        for job in active:
            by_sentinel[job.process.sentinel] = job
            channels.append(job.process.sentinel)
            if job.conn is not None and job.read_after <= now:
                by_conn[id(job.conn)] = job
                channels.append(job.conn)
            elif job.conn is not None:
                deadlines.append(job.read_after)
            deadlines += [at for at in (job.deadline, job.limit_at) if at is not None]
        timeout = 1.0
        if deadlines:
            timeout = min(timeout, max(0.0, min(deadlines) - time.monotonic()))
        ready = wait(channels, timeout)

        exited = []
        for item in ready:
            if item is self._wake_r:
                self._drain_wake()
            elif item in idle:
                self._pool.lost(idle[item])
            elif isinstance(item, int):
                exited.append(by_sentinel[item])
            else:
                job = by_conn[id(item)]
                if self._read(job, _READ_BATCH):
                    job.read_after = time.monotonic() + READ_INTERVAL
        for job in exited:
            self._reap(job)
        now = time.monotonic()
        for job in active:
            if job in exited:
                continue
            if job.limit_at is not None and job.limit_at <= now:
                self._end_at_time_limit(job, now)
            elif job.deadline is not None and job.deadline <= now:
                self._escalate(job, now)
        return True

    def _pick_gpu(self) -> str | None:
        """Under the lock: the visible GPU running the fewest jobs, if any."""
        if not self._gpus:
            return None
        load = dict.fromkeys(self._gpus, 0)
        for job in self._running.values():
            if job.gpu in load:
                load[job.gpu] += 1
        return min(self._gpus, key=lambda gpu: load[gpu])

    def _launch(self, job: _Job) -> None:
        """Hand the job to an idle warm worker pinned to its GPU, else to a new worker."""
        try:
            worker = self._pool.take(job.gpu)
        except Exception as error:
            log.exception("job %s: could not start its worker", job.id)
            self._finish(job, f"could not start the worker process: {error}")
            return
        with self._lock:
            if job.stop.value:  # cancelled since it left the queue
                worker.stop.value = 1
            job.stop = worker.stop
            job.process, job.conn, job.pid = worker.process, worker.events, worker.process.pid
            job.limit_at = time.monotonic() + job.time_limit
            job.oom_kills = _oom_kills()
        # plain values only: a worker that has not yet imported the runner can unpickle them
        limits = dataclasses.asdict(self.limits)
        order = job_order(
            job.spec, self.threads_per_job, limits, self.memory_limit_mb, self.local_data
        )
        worker.hand(order)
        process = worker.process
        try:
            self._on_launch(job.id, process.pid, identity(process.pid))
        except Exception:
            log.exception("job %s: on_launch callback failed", job.id)

    def _read(self, job: _Job, limit: int | None) -> bool:
        """Forward up to `limit` pending events of a job, as one batch; close its pipe at end
        of file. True when it read all that was pending (it stopped below the limit)."""
        events: list[dict[str, Any]] = []
        count = 0
        try:
            while limit is None or count < limit:
                message = self._receive(job)
                if message is None:
                    return True
                count += 1
                if isinstance(message, dict):
                    self._note(job, message)
                    events.append(message)
            return False
        finally:  # what was read before an end of file or a bad message goes out too
            if events:
                self._emit_batch(job, events)

    def _receive(self, job: _Job) -> Any:
        """The next message on the job's pipe; None when none is pending or the pipe is
        closed (at end of file, or after an undecodable message: the channel is unusable)."""
        if job.conn is None:
            return None
        try:
            if job.conn.poll():
                return job.conn.recv()
            return None
        except (EOFError, OSError):
            pass
        except Exception:
            log.exception("job %s: bad message from its worker", job.id)
        job.conn.close()
        job.conn = None
        return None

    def _note(self, job: _Job, event: dict[str, Any]) -> None:
        """What an event from the worker tells the executor about its job."""
        if event.get("type") == "status":
            job.final = True
        elif event.get("type") == "started" and not job.started and job.limit_at is not None:
            # set-up is over: the runner checks the limit between steps from now on
            job.started = True
            job.limit_at = time.monotonic() + job.time_limit + RUNNER_GRACE
        if isinstance(event.get("step"), int):
            job.step = event["step"]

    def _reap(self, job: _Job) -> None:
        """The worker has exited: forward what it left in the pipe, then report its end."""
        self._read(job, None)  # its writes are complete: this ends at end of file
        if job.conn is not None:  # some other process still holds the write end
            job.conn.close()
            job.conn = None
        assert job.process is not None
        job.process.join(timeout=1.0)
        code = job.process.exitcode
        job.process.close()
        if job.final:
            error = None
        elif job.limit_message is not None:
            error = job.limit_message
            self._emit(job, _status(job.step, "failed", error))
        elif job.cancel_reason is not None:
            how = "terminated" if job.terminated else f"exited with code {code}"
            error = f"worker process {how} after a cancel request"
            message = f"cancelled ({job.cancel_reason})" if job.cancel_reason else "cancelled"
            message += f"; its worker was {how}"
            self._emit(job, cancelled_status(message, job.step))
        else:
            error = f"worker process exited with code {code} before finishing"
            if code == -signal.SIGKILL and _oom_kills() not in (None, job.oom_kills):
                error += (
                    "; the kernel's out-of-memory killer ran meanwhile: it most likely "
                    "killed the job for using too much memory"
                )
        self._finish(job, error)

    def _end_at_time_limit(self, job: _Job, now: float) -> None:
        """The job's wall-clock limit has passed: end it, whatever it is doing."""
        job.limit_at = None
        if job.final or job.cancel_reason is not None:
            return  # ending anyway
        when = f"after {job.step} steps" if job.started else "during set-up"
        job.limit_message = f"time limit of {job.time_limit:g} s reached {when}"
        log.warning("job %s: %s; terminating its worker", job.id, job.limit_message)
        job.terminated = True
        job.deadline = now + KILL_GRACE
        assert job.process is not None
        job.process.terminate()

    def _escalate(self, job: _Job, now: float) -> None:
        """A cancelled job's grace period is over: terminate it, later kill it."""
        assert job.process is not None
        if not job.terminated:
            log.warning("job %s: no exit %.1f s after cancel; terminating", job.id, CANCEL_GRACE)
            job.terminated = True
            job.deadline = now + KILL_GRACE
            job.process.terminate()
        else:
            job.deadline = now + KILL_GRACE
            job.process.kill()

    def _emit(self, job: _Job, event: dict[str, Any]) -> None:
        self._emit_batch(job, [event])

    def _emit_batch(self, job: _Job, events: list[dict[str, Any]]) -> None:
        try:
            self._on_events(job.id, events)
        except Exception:
            log.exception("job %s: on_event callback failed", job.id)

    def _finish(self, job: _Job, error: str | None) -> None:
        with self._lock:
            self._running.pop(job.id, None)
            self._jobs.pop(job.id, None)
        try:
            self._on_exit(job.id, error)
        except Exception:
            log.exception("job %s: on_exit callback failed", job.id)
        finally:
            job.done.set()
