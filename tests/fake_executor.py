"""A fast in-process Executor for API tests: no worker processes, no torch work.

It follows the Executor contract of server/jobs/executor.py: one thread runs the jobs in
FIFO order and makes every callback; each job is launched (on_launch, with no process of
its own), emits started, `steps` metrics and a final status, then on_exit. Tests steer it:

* `pause()` / `resume()`: while paused, submitted jobs stay queued;
* `hold()` / `release()`: a started job waits before its final status (so it is "running");
* `crash_next`: the next job emits started then exits without a status (a killed worker);
* `diverge_next`: the next job ends "diverged" with a NaN loss in its summary.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from typing import Any

from server.jobs.executor import Executor


class FakeExecutor(Executor):
    def __init__(self, max_steps: int = 5) -> None:
        self.max_steps = max_steps
        self.concurrency = 1
        self.crash_next = False
        self.diverge_next = False
        self.submitted: list[str] = []
        self._cond = threading.Condition()
        self._waiting: deque[tuple[str, dict[str, Any]]] = deque()
        self._running: str | None = None
        self._cancel: set[str] = set()
        self._paused = False
        self._held = False
        self._closed = False
        self._done: dict[str, threading.Event] = {}
        self._thread: threading.Thread | None = None

    # ---- steering
    def pause(self) -> None:
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def hold(self) -> None:
        with self._cond:
            self._held = True

    def release(self) -> None:
        with self._cond:
            self._held = False
            self._cond.notify_all()

    # ---- Executor
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
            self._done[job_id] = threading.Event()
            self._waiting.append((job_id, spec))
            self._cond.notify_all()

    def cancel(self, job_id: str) -> bool:
        with self._cond:
            queued = [item for item in self._waiting if item[0] == job_id]
            if queued:
                self._waiting.remove(queued[0])
            elif self._running == job_id:
                self._cancel.add(job_id)
                self._cond.notify_all()
            else:
                return False
        if queued:
            self.on_event(job_id, _status(0, "cancelled", "cancelled before start"))
            self.on_exit(job_id, "cancelled before start")
            self._done[job_id].set()
        else:
            self._done[job_id].wait(5)
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
            self._held = False
            self._cancel.update(job_id for job_id, _ in self._waiting)
            self._waiting.clear()
            if self._running:
                self._cancel.add(self._running)
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(5)

    # ---- the job thread
    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (self._paused or not self._waiting):
                    self._cond.wait()
                if self._closed:
                    return
                job_id, spec = self._waiting.popleft()
                self._running = job_id
                crash, self.crash_next = self.crash_next, False
                diverge, self.diverge_next = self.diverge_next, False
            try:
                self._run(job_id, spec, crash, diverge)
            finally:
                with self._cond:
                    self._running = None
                    self._cancel.discard(job_id)
                self._done[job_id].set()

    def _run(self, job_id: str, spec: dict[str, Any], crash: bool, diverge: bool) -> None:
        steps = min(spec.get("steps") or self.max_steps, self.max_steps)
        self.on_launch(job_id, None, None)
        self.on_event(job_id, {"type": "started", "step": 0, "total_steps": steps, "meta": {}})
        if crash:
            self.on_exit(job_id, "worker process exited with code -9 before finishing")
            return
        for step in range(1, steps + 1):
            loss = 1.0 / step
            self.on_event(job_id, _metrics(step, loss))
            if step == steps:
                self.on_event(
                    job_id, {"type": "eval", "step": step, "epoch": 0.0, "metrics": {"acc": 0.5}}
                )
        with self._cond:
            while self._held and job_id not in self._cancel:
                self._cond.wait()
            cancelled = job_id in self._cancel
        if cancelled:
            final = _status(steps, "cancelled", "cancelled by request")
        elif diverge:
            final = _status(steps, "diverged", "loss became non-finite")
            final["summary"] = {"final_loss": math.nan, "best_loss": math.inf}
        else:
            final = _status(steps, "succeeded", "")
            final["summary"] = {"final_loss": 1.0 / steps, "best_loss": 1.0 / steps}
        self.on_event(job_id, final)
        self.on_exit(job_id, None)


def _metrics(step: int, loss: float) -> dict[str, Any]:
    return {
        "type": "metrics",
        "step": step,
        "loss": loss,
        "grad_norm": 2 * loss,
        "lr": 0.01,
        "step_time": 0.001,
        "elapsed": 0.001 * step,
    }


def _status(step: int, status: str, message: str) -> dict[str, Any]:
    return {"type": "status", "step": step, "status": status, "message": message, "summary": {}}
