"""The fake executor's queue and steering, with jobs that really run (server.runner.run_job).

For tests whose outcome depends on the jobs' actual results (sweeps: a trial's value must
depend on its hyperparameters) without the seconds a worker process takes to import torch.
Jobs run one at a time on the executor's thread, in FIFO order; `pause()` / `resume()` as
in FakeExecutor; `cancel` stops a running job between its steps. `step_delay` seconds of
sleep after each metrics event make a job last long enough to be watched while it runs.
"""

from __future__ import annotations

import time
from typing import Any

from fake_executor import FakeExecutor

from server.runner import run_job
from server.specs import JobSpec


class ThreadExecutor(FakeExecutor):
    def __init__(self, step_delay: float = 0.0) -> None:
        super().__init__()
        self.step_delay = step_delay

    def _run(self, job_id: str, spec: dict[str, Any], crash: bool, diverge: bool) -> None:
        self.on_launch(job_id, None, None)
        run_job(
            JobSpec.model_validate(spec),
            lambda event: self._emit(job_id, event.model_dump()),
            should_stop=lambda: job_id in self._cancel,
        )
        self.on_exit(job_id, None)

    def _emit(self, job_id: str, event: dict[str, Any]) -> None:
        self.on_event(job_id, event)
        if event["type"] == "metrics" and self.step_delay:
            time.sleep(self.step_delay)
