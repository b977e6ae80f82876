"""An in-process Executor that really runs jobs (server.runner.run_job) on one thread.

For tests whose outcome depends on the jobs' actual results (sweeps: a trial's value must
depend on its hyperparameters) without the seconds a worker process takes to import torch.
Jobs run one at a time in FIFO order; `cancel` stops a running job between its steps.
`pause()` keeps submitted jobs queued until `resume()`; `step_delay` seconds of sleep
after each metrics event make a job last long enough to be watched while it runs.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

from server.events import Status
from server.jobs.executor import Executor


class ThreadExecutor(Executor):
    def __init__(self, step_delay: float = 0.0) -> None:
        self.step_delay = step_delay
        self.concurrency = 1
        self.submitted: list[str] = []
        self._cond = threading.Condition()
        self._waiting: deque[tuple[str, dict[str, Any]]] = deque()
        self._running: str | None = None
        self._stop_running = False
        self._paused = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def pause(self) -> None:
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def start(self, on_event: Any, on_exit: Any, on_launch: Any = None) -> None:
        self.on_event, self.on_exit = on_event, on_exit
        self.on_launch = on_launch or (lambda job_id, pid, started: None)
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def submit(self, job_id: str, spec: dict[str, Any]) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("executor is shut down")
            self.submitted.append(job_id)
            self._waiting.append((job_id, spec))
            self._cond.notify_all()

    def cancel(self, job_id: str) -> bool:
        with self._cond:
            queued = [item for item in self._waiting if item[0] == job_id]
            if queued:
                self._waiting.remove(queued[0])
            elif self._running == job_id:
                self._stop_running = True
                return True
            else:
                return False
        event = Status(step=0, status="cancelled", message="cancelled before start")
        self.on_event(job_id, event.model_dump())
        self.on_exit(job_id, "cancelled before start")
        return True

    def running(self) -> list[str]:
        with self._cond:
            return [self._running] if self._running else []

    def queued(self) -> list[str]:
        with self._cond:
            return [job_id for job_id, _ in self._waiting]

    def shutdown(self) -> None:
        with self._cond:
            self._closed = True
            self._waiting.clear()
            self._stop_running = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(10)

    def _loop(self) -> None:
        from server.runner import run_job
        from server.specs import JobSpec

        while True:
            with self._cond:
                while not self._closed and (self._paused or not self._waiting):
                    self._cond.wait()
                if self._closed:
                    return
                job_id, spec = self._waiting.popleft()
                self._running, self._stop_running = job_id, False
            self.on_launch(job_id, None, None)
            run_job(
                JobSpec.model_validate(spec),
                lambda event, job_id=job_id: self._emit(job_id, event.model_dump()),
                should_stop=lambda: self._stop_running,
            )
            with self._cond:
                self._running = None
            self.on_exit(job_id, None)

    def _emit(self, job_id: str, event: dict[str, Any]) -> None:
        self.on_event(job_id, event)
        if event["type"] == "metrics" and self.step_delay:
            time.sleep(self.step_delay)
