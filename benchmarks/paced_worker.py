"""A job worker for benchmarks/event_path.py: no torch and no runner, so that only the
server's side of a job's events is measured. Its job's spec says what it sends: `events`
metrics events shaped like the runner's, one every `pace` seconds, then a final status."""

from __future__ import annotations

import os
import time
from multiprocessing.connection import Connection
from typing import Any

from server.jobs.processes import die_with_parent


def run_paced_worker(
    orders: Connection, events: Connection, stop: Any, gpu: str | None, parent_pid: int
) -> None:
    """The `LocalExecutor.worker_main` contract: one job from `orders`, its events on
    `events`, then exit."""
    die_with_parent(parent_pid)
    try:
        spec = orders.recv()["spec"]
    except EOFError:  # no job for this worker
        os._exit(0)
    count, pace = spec["events"], spec["pace"]
    began = time.perf_counter()
    events.send({"type": "started", "step": 0, "total_steps": count, "meta": {}})
    for step in range(1, count + 1):
        time.sleep(pace)
        events.send(
            {
                "type": "metrics",
                "step": step,
                "loss": 1.0 / step,
                "grad_norm": 0.5,
                "lr": 0.01,
                "step_time": pace,
                "elapsed": time.perf_counter() - began,
                "function_evaluations": step,
                "gradient_evaluations": step,
                "hessian_vector_products": 0,
            }
        )
    events.send({"type": "status", "step": count, "status": "succeeded", "message": ""})
    events.close()
    os._exit(0)
