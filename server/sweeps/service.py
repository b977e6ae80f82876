"""The sweep service: runs sweeps as ordinary jobs of a JobService, from one thread.

    sweeps = SweepService(job_service, SweepStore(job_store.path))
    sweeps.start()                      # resume the sweeps a previous server left running
    sweep = sweeps.create({"task": {"name": "rosenbrock"}, "steps": 200, "trials": 20,
                           "optimizers": [{"name": "adam", "tune": ["lr"]}]})

Each round of the runner thread (every `poll_seconds`, or at once when woken), for each
running sweep:

1. follows its trials in flight: reads their jobs' new events (the objective's metric, for
   the pruner), stops a trial the pruner rejects (its job is cancelled), scores a trial
   whose job ended (search.outcome), and submits again a trial whose job was interrupted
   by a server restart or could not be queued yet (queue full, quota);
2. asks Optuna for new trials while fewer than `parallel` are in flight (trial k of an
   optimizer waits for its trials 0 … k − parallel: see server/sweeps/search.py);
3. once every optimizer has its trials, submits the best configuration of each as one
   ordinary comparison on `seeds` fresh seeds, and ends when that comparison has.

Everything the runner knows is in the store (trials with their params, job ids, status,
values), so a restarted server's runner simply carries on: ended trials stay scored, jobs
still queued are followed again, interrupted ones are submitted again. The service knows
nothing of HTTP; it raises the job service's errors (NotFound, Conflict, InvalidSpec).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

from server.errors import Conflict, InvalidSpec, NotFound, QueueFull
from server.events import ENDED_STATUSES
from server.jobs.quota import QuotaExceeded
from server.jobs.service import JobService
from server.jobs.summary import comparison_summary
from server.sweeps import search
from server.sweeps.spec import SweepSpec
from server.sweeps.store import SweepStore
from server.sweeps.validate import validate_sweep

log = logging.getLogger(__name__)

#: rounds in a row a sweep may fail unexpectedly before it is marked failed
_MAX_ERRORS = 3
_WAITING = (QueueFull, QuotaExceeded)


class SweepService:
    """Creates, follows, cancels and deletes sweeps; every public method is thread-safe."""

    def __init__(self, jobs: JobService, store: SweepStore, poll_seconds: float = 0.2) -> None:
        self.jobs, self.store, self.poll_seconds = jobs, store, poll_seconds
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursors: dict[str, int] = {}  # job id → last event id read
        self._errors: dict[str, int] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> list[str]:
        """Start the runner thread; returns the ids of the sweeps it resumes. Call after
        the job service's start (which settles and resubmits the jobs)."""
        resumed = self.store.active_sweeps()
        for sweep_id in resumed:
            self._event(sweep_id, {"type": "resumed"})
        if resumed:
            log.info("resuming %d sweep(s): %s", len(resumed), ", ".join(resumed))
        self._thread = threading.Thread(target=self._run, name="sweeps", daemon=True)
        self._thread.start()
        return resumed

    def stop(self) -> None:
        """Stop the runner; running sweeps stay running in the store for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stopping.is_set():
            for sweep_id in self.store.active_sweeps():
                if self._stopping.is_set():
                    return
                self._advance_safely(sweep_id)
            self._wake.wait(self.poll_seconds)
            self._wake.clear()

    def _advance_safely(self, sweep_id: str) -> None:
        try:
            with self._lock:
                self._advance(sweep_id)
            self._errors.pop(sweep_id, None)
        except Exception as e:  # a sweep's error must not stop the others
            log.exception("sweep %s: unexpected error", sweep_id)
            self._errors[sweep_id] = self._errors.get(sweep_id, 0) + 1
            if self._errors[sweep_id] >= _MAX_ERRORS:
                self._finish(sweep_id, "failed", f"{type(e).__name__}: {e}")

    # ------------------------------------------------------------------ requests
    def create(self, data: dict[str, Any] | SweepSpec) -> dict[str, Any]:
        """Validate and store a sweep; its runner submits the trials."""
        spec = validate_sweep(self.jobs, data)
        self.jobs.quota.admit(0)  # a full job store refuses the sweep now, not trial by trial
        sweep_id = self.store.create_sweep(spec.model_dump(mode="json"))
        self._event(sweep_id, {"type": "created"})
        self._wake.set()
        return self.sweep(sweep_id)

    def resolve(self, data: dict[str, Any] | SweepSpec) -> dict[str, Any]:
        """The spec as `create` would store it (each `tune` name given its default range),
        without creating anything: for forms that show the ranges before a sweep starts."""
        return validate_sweep(self.jobs, data).model_dump(mode="json")

    def sweep(self, sweep_id: str) -> dict[str, Any]:
        """The sweep with its trials and, per optimizer, its best trial and best-so-far."""
        row = self._row(sweep_id)
        spec = SweepSpec.model_validate(row["spec"])
        trials = self.store.trials(sweep_id)
        minimize = spec.objective.minimize
        optimizers = []
        for i, optimizer in enumerate(spec.optimizers):
            own = [t for t in trials if t["optimizer_index"] == i]
            optimizers.append(
                {
                    "index": i,
                    "name": optimizer.name,
                    "fixed": optimizer.fixed,
                    "space": {k: v.model_dump() for k, v in optimizer.space.items()},
                    "trials_total": spec.trials,
                    "trials_done": sum(t["status"] in search.FINISHED for t in own),
                    "best": search.best_trial(own, minimize),
                    "best_so_far": search.best_so_far(own, minimize),
                }
            )
        names = [o.name for o in spec.optimizers]
        return {
            **row,
            "direction": "minimize" if minimize else "maximize",
            "held_out": spec.task.split_note(),
            "optimizers": optimizers,
            "trials": [{"optimizer": names[t["optimizer_index"]], **t} for t in trials],
            "rerun": self._rerun(row["comparison_id"]),
        }

    def _rerun(self, cid: str | None) -> dict[str, Any] | None:
        """The re-run comparison's status and its statistics summary, once there is one."""
        comparison = None if cid is None else self.jobs.store.get_comparison(cid)
        if comparison is None:
            return None
        return {
            "comparison_id": cid,
            "status": comparison["status"],
            "summary": comparison_summary(self.jobs.store, comparison),
        }

    def list_sweeps(self, offset: int = 0, limit: int = 50) -> tuple[list[dict[str, Any]], int]:
        """One page of sweep summaries (no trials), newest first, and the total."""
        rows, total = self.store.list_sweeps(offset, limit)
        items = []
        for row in rows:
            spec = row.pop("spec")
            trials = self.store.trials(row["id"])
            items.append(
                {
                    **row,
                    "task": spec["task"]["name"],
                    "optimizers": [o["name"] for o in spec["optimizers"]],
                    "objective": spec["objective"],
                    "trials_total": spec["trials"] * len(spec["optimizers"]),
                    "trials_done": sum(t["status"] in search.FINISHED for t in trials),
                }
            )
        return items, total

    def cancel(self, sweep_id: str) -> dict[str, Any]:
        """Stop a running sweep: its trials in flight and its re-runs are cancelled."""
        with self._lock:
            row = self._row(sweep_id)
            if row["status"] != "running":
                raise Conflict(f"sweep {sweep_id} is already {row['status']}")
            self._stop_jobs(sweep_id, row)
            self._finish(sweep_id, "cancelled", "cancelled by request")
        return self.sweep(sweep_id)

    def delete(self, sweep_id: str) -> None:
        """Delete a sweep with its trial jobs and its re-run comparison."""
        with self._lock:
            row = self._row(sweep_id)
            if row["status"] == "running":
                self._stop_jobs(sweep_id, row)
            for trial in self.store.trials(sweep_id):
                if trial["job_id"] is not None:
                    self._quietly(self.jobs.delete_job, trial["job_id"])
            if row["comparison_id"] is not None:
                self._quietly(self.jobs.delete_comparison, row["comparison_id"])
            self.store.delete_sweep(sweep_id)

    def _stop_jobs(self, sweep_id: str, row: dict[str, Any]) -> None:
        for trial in self.store.trials(sweep_id):
            if trial["status"] != "running":
                continue
            if trial["job_id"] is not None:
                self._quietly(self.jobs.cancel_job, trial["job_id"])
            self._end_trial(sweep_id, trial, "cancelled", None, "the sweep was cancelled")
        if row["comparison_id"] is not None:
            self._quietly(self.jobs.cancel_comparison, row["comparison_id"])

    @staticmethod
    def _quietly(action: Any, target_id: str) -> None:
        """Cancel or delete a job or comparison that may have ended or gone meanwhile."""
        with contextlib.suppress(Conflict, NotFound):
            action(target_id)

    def _row(self, sweep_id: str) -> dict[str, Any]:
        row = self.store.get_sweep(sweep_id)
        if row is None:
            raise NotFound(f"no sweep with id {sweep_id!r}")
        return row

    # ------------------------------------------------------------------ one round
    def _advance(self, sweep_id: str) -> None:
        row = self.store.get_sweep(sweep_id)
        if row is None or row["status"] != "running":
            return
        spec = SweepSpec.model_validate(row["spec"])
        if row["phase"] == "rerun":
            self._follow_rerun(sweep_id, spec, row)
            return
        for trial in self.store.trials(sweep_id):
            if trial["status"] == "running":
                self._follow_trial(sweep_id, spec, trial)
        self._ask_trials(sweep_id, spec)
        trials = self.store.trials(sweep_id)
        budget = spec.trials * len(spec.optimizers)
        if len(trials) == budget and all(t["status"] in search.FINISHED for t in trials):
            self._start_rerun(sweep_id, spec, trials)

    def _follow_trial(self, sweep_id: str, spec: SweepSpec, trial: search.Trial) -> None:
        job_id = trial["job_id"]
        if job_id is None:  # not queued yet (queue was full, or a restart came between)
            self._submit_trial(sweep_id, spec, trial)
            return
        job = self.jobs.store.get_job(job_id)
        if job is None:
            self._end_trial(sweep_id, trial, "cancelled", None, "its job was deleted")
            return
        if job["status"] == "interrupted":  # the server stopped under it: run it anew
            self._cursors.pop(job_id, None)
            self._quietly(self.jobs.delete_job, job_id)  # a partial run, not a result
            self._submit_trial(sweep_id, spec, trial)
            return
        trial = {**trial, "intermediate": dict(trial["intermediate"])}
        every = max(1, (spec.steps or 500) // search.CHECKPOINTS)
        events = self._new_events(job_id)
        if search.observe(spec.objective, events, trial["intermediate"], every):
            self.store.update_trial(
                sweep_id,
                trial["optimizer_index"],
                trial["number"],
                intermediate=trial["intermediate"],
            )
        if job["status"] in ENDED_STATUSES:
            self._cursors.pop(job_id, None)
            self._end_trial(
                sweep_id, trial, *search.outcome(spec.objective, job, trial["intermediate"])
            )
        elif spec.pruning is not None and self._prunes(sweep_id, spec, trial):
            self._quietly(self.jobs.cancel_job, job_id)
            self._cursors.pop(job_id, None)
            message = "pruned: worse than the median of finished trials at the same step"
            self._end_trial(sweep_id, trial, "pruned", None, message)

    def _prunes(self, sweep_id: str, spec: SweepSpec, trial: search.Trial) -> bool:
        """Whether the pruner stops this running trial, judged against the optimizer's
        complete trials (their values as the pruner sees them)."""
        assert spec.pruning is not None
        i, objective = trial["optimizer_index"], spec.objective
        complete = [
            {**t, "intermediate": search.reported(objective, t["intermediate"])}
            for t in self.store.trials(sweep_id)
            if t["optimizer_index"] == i and t["status"] == "complete"
        ]
        return search.should_prune(
            spec.pruning,
            spec.optimizers[i],
            complete,
            objective.minimize,
            search.reported(objective, trial["intermediate"]),
        )

    def _new_events(self, job_id: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        while True:
            rows = self.jobs.store.events([job_id], self._cursors.get(job_id, 0), 5000)
            if rows:
                self._cursors[job_id] = rows[-1]["id"]
            events += [row["event"] for row in rows]
            if len(rows) < 5000:
                return events

    def _ask_trials(self, sweep_id: str, spec: SweepSpec) -> None:
        """Ask each optimizer for its next trial in turn while there is room in flight."""
        trials = self.store.trials(sweep_id)
        in_flight = sum(t["status"] == "running" for t in trials)
        asked = True
        while asked and in_flight < spec.parallel:
            asked = False
            for i, optimizer in enumerate(spec.optimizers):
                own = [t for t in trials if t["optimizer_index"] == i]
                number = len(own)
                told = own[: max(0, number - spec.parallel + 1)]
                if number >= spec.trials or any(t["status"] == "running" for t in told):
                    continue
                params = search.ask(
                    optimizer,
                    told,
                    spec.objective.minimize,
                    spec.sampler,
                    search.trial_seed(spec.seed, i, number),
                )
                self.store.add_trial(sweep_id, i, number, params)
                trial = {"optimizer_index": i, "number": number, "params": params}
                trial.update(status="running", value=None, intermediate={}, job_id=None)
                trials.append(trial)
                in_flight += 1
                asked = True
                if not self._submit_trial(sweep_id, spec, trial):
                    return  # the queue is full: no more this round
                if in_flight >= spec.parallel:
                    return

    def _submit_trial(self, sweep_id: str, spec: SweepSpec, trial: search.Trial) -> bool:
        """Queue the trial's job; False when the job service cannot take it now."""
        i, number = trial["optimizer_index"], trial["number"]
        optimizer = spec.optimizers[i]
        job_spec = {
            **spec.job_fields(rerun=False),
            "optimizer": {"name": optimizer.name, **optimizer.fixed, **trial["params"]},
            "seed": spec.seed,
        }
        try:
            job = self.jobs.create_job(job_spec)
        except _WAITING as e:
            self.store.update_trial(sweep_id, i, number, job_id=None)  # submitted next round
            self.store.update_sweep(sweep_id, message=f"waiting to queue trials: {e}")
            return False
        except InvalidSpec as e:  # e.g. a sampled rank whose memory exceeds the limit
            self._end_trial(sweep_id, trial, "failed", None, str(e))
            return True
        self.store.update_trial(sweep_id, i, number, job_id=job["id"], intermediate={})
        self.store.update_sweep(sweep_id, message="")
        self._event(
            sweep_id,
            {
                "type": "trial_started",
                "optimizer": optimizer.name,
                "optimizer_index": i,
                "number": number,
                "params": trial["params"],
                "job_id": job["id"],
            },
        )
        return True

    def _end_trial(
        self, sweep_id: str, trial: search.Trial, status: str, value: float | None, message: str
    ) -> None:
        i, number = trial["optimizer_index"], trial["number"]
        self.store.update_trial(
            sweep_id,
            i,
            number,
            status=status,
            value=value,
            message=message,
            intermediate=trial.get("intermediate") or {},
            finished=time.time(),
        )
        spec = SweepSpec.model_validate(self._row(sweep_id)["spec"])
        own = [t for t in self.store.trials(sweep_id) if t["optimizer_index"] == i]
        best = search.best_trial(own, spec.objective.minimize)
        self._event(
            sweep_id,
            {
                "type": "trial_finished",
                "optimizer": spec.optimizers[i].name,
                "optimizer_index": i,
                "number": number,
                "params": trial["params"],
                "job_id": trial.get("job_id"),
                "status": status,
                "value": value,
                "message": message,
                "best": None if best is None else {k: best[k] for k in ("number", "value")},
            },
        )

    # ------------------------------------------------------------------ re-runs
    def _start_rerun(self, sweep_id: str, spec: SweepSpec, trials: list[search.Trial]) -> None:
        """The best configuration of each optimizer, re-run on fresh seeds as a comparison."""
        best = []
        for i, optimizer in enumerate(spec.optimizers):
            trial = search.best_trial(
                [t for t in trials if t["optimizer_index"] == i], spec.objective.minimize
            )
            if trial is not None:
                best.append({"name": optimizer.name, **optimizer.fixed, **trial["params"]})
        if not best:
            self._finish(sweep_id, "succeeded", "no trial completed: nothing to re-run")
            return
        if spec.seeds == 0:
            self._finish(sweep_id, "succeeded", "")
            return
        comparison = {
            **spec.job_fields(rerun=True),
            "optimizers": best,
            "seeds": spec.rerun_seeds(),
        }
        try:
            cid = self.jobs.create_comparison(comparison)["id"]
        except _WAITING as e:
            self.store.update_sweep(sweep_id, message=f"waiting to queue the re-runs: {e}")
            return
        except InvalidSpec as e:
            self._finish(sweep_id, "failed", f"the re-runs were refused: {e}")
            return
        self.store.update_sweep(sweep_id, phase="rerun", comparison_id=cid, message="")
        self._event(sweep_id, {"type": "phase", "phase": "rerun", "comparison_id": cid})

    def _follow_rerun(self, sweep_id: str, spec: SweepSpec, row: dict[str, Any]) -> None:
        comparison = self.jobs.store.get_comparison(row["comparison_id"])
        if comparison is None:
            self._finish(sweep_id, "failed", "its re-run comparison was deleted")
            return
        jobs = [self.jobs.store.get_job(job_id) for job_id in comparison["job_ids"]]
        if any(job is not None and job["status"] == "interrupted" for job in jobs):
            # the server stopped under the re-runs: run them all again, as one comparison
            self._quietly(self.jobs.delete_comparison, comparison["id"])
            self.store.update_sweep(sweep_id, phase="search", comparison_id=None)
            self._start_rerun(sweep_id, spec, self.store.trials(sweep_id))
            return
        if comparison["status"] == "running":
            return
        counts: dict[str, int] = {}
        for job in jobs:
            if job is not None:
                counts[job["status"]] = counts.get(job["status"], 0) + 1
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        self._finish(sweep_id, "succeeded", f"re-runs: {summary}")

    # ------------------------------------------------------------------ helpers
    def _finish(self, sweep_id: str, status: str, message: str) -> None:
        self.store.update_sweep(sweep_id, status=status, message=message, finished=time.time())
        self._event(sweep_id, {"type": "status", "status": status, "message": message})

    def _event(self, sweep_id: str, event: dict[str, Any]) -> None:
        self.store.append_event(sweep_id, {**event, "time": time.time()})
