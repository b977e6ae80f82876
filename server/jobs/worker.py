"""The body of one job's worker process.

`LocalExecutor` starts `run_worker` in a fresh interpreter (multiprocessing "spawn"), so it
must stay a module-level function of an importable module. The worker validates the spec,
runs the job and sends every event dict down its own one-way pipe; a crash, a hang or an
out-of-memory kill ends this process only, never the server.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

from pydantic import ValidationError

from server.events import Status


def run_worker(
    spec: dict[str, Any],
    conn: Connection,
    stop: Any,
    threads: int,
    limits: Any,
    memory_limit_mb: int | None,
    gpu: str | None,
) -> None:
    """Run one job; `stop` is a shared byte the executor sets to ask the job to end."""
    # Ctrl+C reaches the whole process group: the server cancels its jobs in an orderly way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if gpu is not None:  # before the first CUDA call: the job sees its one GPU as cuda:0
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    code = 0
    try:
        _run(spec, conn, stop, threads, limits, memory_limit_mb)
    except BaseException:  # only a broken pipe gets here: run_job turns errors into statuses
        traceback.print_exc()
        code = 1
    finally:
        conn.close()
    if multiprocessing.parent_process() is not None:
        # The job is over and its pipe closed: skip the interpreter's teardown, which takes
        # a second or more with torch loaded and would hold the executor's slot meanwhile.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _run(
    spec: dict[str, Any],
    conn: Connection,
    stop: Any,
    threads: int,
    limits: Any,
    memory_limit_mb: int | None,
) -> None:
    try:
        import torch

        from server.runner import JobSpec, run_job

        job = JobSpec.model_validate(spec)
    except ValidationError as error:
        conn.send(_failed(f"invalid job spec: {_describe(error)}"))
        return
    except Exception as error:
        conn.send(_failed(f"{type(error).__name__}: {error}"))
        return
    if stop.value:  # cancelled while this interpreter was starting
        conn.send(Status(step=0, status="cancelled", message="cancelled before start").model_dump())
        return
    torch.set_num_threads(max(1, threads))
    on_cuda = job.device != "cpu" and torch.cuda.is_available()
    if memory_limit_mb and not on_cuda:
        # Not for CUDA jobs: the driver reserves far more address space than it uses.
        _limit_address_space(memory_limit_mb)
    run_job(
        job,
        lambda event: conn.send(event.model_dump()),
        should_stop=lambda: bool(stop.value),
        limits=limits,
    )


def _failed(message: str) -> dict[str, Any]:
    return Status(step=0, status="failed", message=message).model_dump()


def _describe(error: ValidationError) -> str:
    """One line naming each bad field, instead of pydantic's multi-line report."""
    parts = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "spec"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def _limit_address_space(megabytes: int) -> None:
    try:
        import resource
    except ImportError:  # not on this platform
        return
    limit = megabytes * 1024 * 1024
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
