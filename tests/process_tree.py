"""Finding a server's job workers in /proc (Linux): its spawned children, or the children
of its fork server (`server.jobs.pool.worker_context`)."""

from __future__ import annotations

from pathlib import Path


def job_workers(pid: int) -> list[int]:
    """The job workers of server `pid` (not multiprocessing's resource tracker, nor the fork
    server itself)."""
    workers = []
    for child in children(pid):
        command = cmdline(child)
        if b"spawn_main" in command:
            workers.append(child)
        elif b"multiprocessing.forkserver" in command:
            workers += children(child)
    return workers


def children(pid: int) -> list[int]:
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return []
    found = []
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
