"""The body of one job's worker process.

`LocalExecutor` starts `run_worker` in a copy of its fork server or in a fresh interpreter
(`server.jobs.pool.worker_context`), so it must stay a module-level function of an
importable module. A worker first ties itself to its server, then warms up (imports torch,
torch._dynamo and the runner with its tasks and optimizers: seconds, unless the fork server
had them imported already), then waits on its order pipe for exactly one job, runs it, sends every
event dict down its own one-way event pipe, and exits: a worker never runs a second job, so
each job starts from a clean process (memory limit, thread count, GPU pinning, torch's
global state). The executor starts workers ahead of need (`server.jobs.pool`), so that a job
finds one warm. A crash, a hang or an out-of-memory kill ends this process only, never the
server. This module imports little at the top, so that `prepare_process` ties the worker to
its server within milliseconds of its start, before torch is loaded.
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import re
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

from server.jobs.processes import die_with_parent

#: how allocation failures read: Python's MemoryError, torch's CPU and CUDA allocators, C++
_OUT_OF_MEMORY = re.compile(
    r"MemoryError|can't allocate memory|Cannot allocate memory|out of memory|bad_alloc",
    re.IGNORECASE,
)
#: what every job needs imported before it arrives: torch._dynamo, imported lazily by the
#: first optimizer (seconds), and the runner with its tasks, optimizers and psgd
WARM_MODULES = ("torch._dynamo", "server.runner")


def run_worker(
    orders: Connection, events: Connection, stop: Any, gpu: str | None, parent_pid: int
) -> None:
    """Warm up, run the one job that arrives on `orders` (a `job_order` dict), and exit.

    `stop` is a shared byte the executor sets to ask the job to end; `gpu`, the one GPU
    this worker may use (set before torch loads). End of file on `orders` instead of a job
    means the executor no longer needs this worker. Every argument is a plain value, pipe
    or shared byte: spawn unpickles them before this runs, before `prepare_process`.
    """
    prepare_process(parent_pid, gpu)
    import_error = warm_up()
    code = 0
    try:
        order = orders.recv()
        orders.close()
        adopt_environment(order["environment"], gpu)
        _run(order, events, stop, import_error)
    except EOFError:  # no job for this worker: the executor has dropped it
        pass
    except BaseException:  # only a broken pipe gets here: run_job turns errors into statuses
        traceback.print_exc()
        code = 1
    finally:
        events.close()
    if multiprocessing.parent_process() is not None:
        # The job is over and its pipe closed: skip the interpreter's teardown, which takes
        # a second or more with torch loaded and would hold the executor's slot meanwhile.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def job_order(
    spec: dict[str, Any],
    threads: int,
    limits: dict[str, Any],
    memory_limit_mb: int | None,
    local_data: str | None = None,
) -> dict[str, Any]:
    """What the executor sends a worker for its job: plain values only."""
    return {
        "spec": spec,
        "threads": threads,
        "limits": limits,
        "memory_limit_mb": memory_limit_mb,
        "local_data": local_data,
        "environment": dict(os.environ),
    }


def prepare_process(parent_pid: int, gpu: str | None) -> None:
    """Set up a fresh worker process before it loads anything heavy."""
    die_with_parent(parent_pid)
    # Ctrl+C reaches the whole process group: the server cancels its jobs in an orderly way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _pin(gpu)


def adopt_environment(environment: dict[str, str], gpu: str | None) -> None:
    """Run the job in the server's environment as it was at the job's launch (as a spawned
    worker would): a forked one has its fork server's, as it was when that started."""
    os.environ.clear()
    os.environ.update(environment)
    _pin(gpu)


def _pin(gpu: str | None) -> None:
    if gpu is not None:  # before CUDA initialises: the job sees its one GPU as cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu


def warm_up() -> str | None:
    """Import what every job needs before a job arrives; None, or what failed to import
    (reported as the job's failure, as it would have been without a warm-up)."""
    try:
        for module in WARM_MODULES:
            importlib.import_module(module)
    except Exception as error:
        return f"{type(error).__name__}: {error}"
    return None


def _run(order: dict[str, Any], conn: Connection, stop: Any, import_error: str | None) -> None:
    from server.errors import InvalidSpec
    from server.events import Status

    memory_limit_mb = order["memory_limit_mb"]

    def failed(message: str) -> dict[str, Any]:
        return Status(step=0, status="failed", message=message).model_dump()

    if import_error is not None:
        conn.send(failed(memory_message(import_error, memory_limit_mb)))
        return
    try:
        import torch

        from server.runner import Limits, run_job
        from server.specs import stored_job
        from server.tasks import cifar

        job = stored_job(order["spec"])  # validated once, when it was submitted
    except InvalidSpec as error:
        conn.send(failed(f"invalid job spec: {error}"))
        return
    except Exception as error:
        conn.send(failed(memory_message(f"{type(error).__name__}: {error}", memory_limit_mb)))
        return
    if stop.value:  # cancelled before the job reached this worker
        conn.send(Status(step=0, status="cancelled", message="cancelled before start").model_dump())
        return
    torch.set_num_threads(max(1, order["threads"]))
    on_cuda = job.device != "cpu" and torch.cuda.is_available()
    if memory_limit_mb and not on_cuda:
        # Not for CUDA jobs: the driver reserves far more address space than it uses.
        limit_address_space(memory_limit_mb)
    else:
        memory_limit_mb = None

    def send(event: Any) -> None:
        data = event.model_dump()
        if data["type"] == "status" and data["status"] == "failed":
            data["message"] = memory_message(data["message"], memory_limit_mb)
        conn.send(data)

    limits = Limits(**order["limits"])
    local = order.get("local_data")
    with cifar.local_data(local) if local else contextlib.nullcontext():  # the CLI's --data
        run_job(job, send, should_stop=lambda: bool(stop.value), limits=limits)


def memory_message(message: str, memory_limit_mb: int | None) -> str:
    """A failure message, said plainly when it is an allocation failure."""
    if not _OUT_OF_MEMORY.search(message):
        return message
    if memory_limit_mb:
        return (
            f"out of memory: the job hit this server's per-job memory limit of "
            f"{memory_limit_mb} MB ({message})"
        )
    return f"out of memory ({message})"


def limit_address_space(megabytes: int) -> None:
    """Cap this process's address space (RLIMIT_AS), never above an existing hard limit."""
    try:
        import resource
    except ImportError:  # not on this platform
        return
    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
