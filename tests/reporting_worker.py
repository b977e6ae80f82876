"""A worker entry point for the pool tests: the real worker, whose job's `started` event
also tells how the job's process was set up (in a module that imports little, so that the
worker ties itself to its server first, as server.jobs.worker does)."""

from __future__ import annotations

import os
import sys
from typing import Any

from server.jobs.processes import die_with_parent


def run_worker_reporting_set_up(*args: Any) -> None:
    """The real worker; `started`'s meta gains "process": pid, torch threads, the GPU the
    process is pinned to, its address-space limit (MB, None for none), whether torch was
    imported before the worker's own code ran (by its fork server) and PSGD_TEST_PROBE
    from the job's environment."""
    torch_preloaded = "torch" in sys.modules
    die_with_parent(args[-1])
    import resource

    import torch

    import server.runner
    from server.jobs.worker import run_worker

    run_job = server.runner.run_job

    def reporting(job: Any, send: Any, **kwargs: Any) -> Any:
        def forward(event: Any) -> None:
            if event.type == "started":
                soft, _ = resource.getrlimit(resource.RLIMIT_AS)
                event.meta["process"] = {
                    "pid": os.getpid(),
                    "threads": torch.get_num_threads(),
                    "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
                    "memory_limit_mb": None if soft == resource.RLIM_INFINITY else soft >> 20,
                    "torch_preloaded": torch_preloaded,
                    "probe": os.environ.get("PSGD_TEST_PROBE"),
                }
            send(event)

        return run_job(job, forward, **kwargs)

    server.runner.run_job = reporting  # type: ignore[assignment]
    run_worker(*args)
