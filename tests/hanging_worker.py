"""Worker entry points for the lifecycle tests, in a module that imports little, so that a
spawned worker ties itself to its server as soon as it starts (as server.jobs.worker does).
"""

from __future__ import annotations

import time
from typing import Any

from server.jobs.processes import die_with_parent


def run_worker_hanging_in_setup(*args: Any) -> None:
    """The real worker, with the Rosenbrock task's `build` replaced by an endless sleep (as
    a dataset read from /dev/zero once hung a worker's set-up)."""
    die_with_parent(args[-1])  # first, as run_worker does: the imports below take seconds
    from server.jobs.worker import run_worker
    from server.tasks.landscapes import RosenbrockConfig

    def hang(self: Any, device: Any, seed: int) -> Any:
        sleep_forever()

    RosenbrockConfig.build = hang  # type: ignore[method-assign]
    run_worker(*args)


def sleep_forever() -> None:
    """Also a stand-in for a worker a dead server left behind (spawned, so it looks like one)."""
    while True:
        time.sleep(60)
