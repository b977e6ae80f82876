"""A worker entry point for the event-batching tests: no torch, no runner; its job's spec
says what to send (`{"burst": N, "end": "status" | "crash"}`): N metrics events written in
one go, then a final status, or a SIGKILL of itself (a crash after the events left)."""

from __future__ import annotations

import os
import signal
from multiprocessing.connection import Connection
from typing import Any

from server.jobs.processes import die_with_parent


def run_scripted_worker(
    orders: Connection, events: Connection, stop: Any, gpu: str | None, parent_pid: int
) -> None:
    die_with_parent(parent_pid)
    try:
        spec = orders.recv()["spec"]
    except EOFError:  # no job for this worker
        os._exit(0)
    burst = spec["burst"]
    for step in range(1, burst + 1):
        events.send({"type": "metrics", "step": step, "loss": 1.0 / step})
    if spec["end"] == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    events.send({"type": "status", "step": burst, "status": "succeeded", "message": ""})
    events.close()
    os._exit(0)
