"""Keeping job workers tied to their server, and recognising them after a restart.

A worker must never outlive the server that started it: a killed server would otherwise
leave it running (adopted by init) while the restarted server runs the same job again.
`die_with_parent` is the worker's side: the kernel's parent-death signal on Linux, and a
watchdog thread everywhere. A worker's parent is its server, or the server's fork server
(`server.jobs.pool`), which exits once the server and all its workers have.
`identity` / `kill_leftover` are the server's side: it records each worker's pid and start
time when the worker takes a job, and at the next start kills a recorded worker that is
still alive, after checking that the pid still names that worker.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import threading
import time
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
ORPHANED_EXIT_CODE = 75  # what a worker exits with when its server has gone
PARENT_POLL_SECONDS = 0.5
#: in the command line of every spawned worker, and of every worker a fork server started
_WORKER_MARKS = (b"multiprocessing.spawn", b"multiprocessing.forkserver")


def die_with_parent(server_pid: int) -> None:
    """End this process as soon as its server `server_pid` is gone; call it first thing.

    Linux sends SIGKILL when the parent *thread* that started us ends: for a spawned worker
    the executor's bookkeeping thread (it lives as long as the executor). A fork server's
    worker has the fork server for parent, which outlives the server as long as any of its
    workers holds its pipe: the watchdog thread ends such a worker within
    PARENT_POLL_SECONDS of its server's death, and covers other systems and the moment
    before the signal was armed.
    """
    _arm_parent_death_signal()
    if not _served_by(server_pid):  # the server died before the signal was armed
        _exit_orphaned()
    watchdog = threading.Thread(
        target=_watch_server, args=(server_pid,), name="parent-watchdog", daemon=True
    )
    watchdog.start()


def _served_by(server_pid: int) -> bool:
    """Whether `server_pid` is this process's parent, or its parent's (a fork server's)."""
    parent = os.getppid()
    return server_pid in (parent, parent_of(parent))


def _arm_parent_death_signal() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_server(server_pid: int) -> None:
    while _served_by(server_pid):
        time.sleep(PARENT_POLL_SECONDS)
    _exit_orphaned()


def _exit_orphaned() -> None:
    with contextlib.suppress(OSError):
        os.write(2, b"job worker: its server has gone; exiting\n")
    os._exit(ORPHANED_EXIT_CODE)


def identity(pid: int) -> int | None:
    """The process's start time (clock ticks after boot): with the pid, it names one
    process, since a reused pid has a later start. None where /proc cannot tell (not
    Linux, or the process is gone or a zombie)."""
    fields = _stat_fields(pid)
    if fields is None:
        return None
    state, start = fields[0], fields[19]  # fields 3 and 22 of proc(5)
    return None if state in ("Z", "X") else int(start)


def parent_of(pid: int) -> int | None:
    """The parent process id of `pid`; None where /proc cannot tell."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[1])  # field 4 of proc(5)


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from its third field on (after the command name, which may hold
    spaces)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()


def is_leftover_worker(pid: int, started: int) -> bool:
    """Whether `pid` is still the worker recorded with start time `started`."""
    if identity(pid) != started:
        return False
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return any(mark in command for mark in _WORKER_MARKS)


def kill_leftover(pid: int, started: int | None, timeout: float = 5.0) -> bool:
    """Kill a worker a previous server left running; True once no such worker is alive.

    Without a recorded start time (not Linux) there is no telling the worker from a
    process that reused its pid, so nothing is killed; there the worker's watchdog has
    already ended it within PARENT_POLL_SECONDS of its server's death.
    """
    if started is None or not is_leftover_worker(pid, started):
        return True
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    except OSError:  # not ours to kill after all
        return False
    deadline = time.monotonic() + timeout
    while identity(pid) == started:  # a zombie no longer counts: it runs nothing
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True
