"""Run one job: build the task and optimizer, step, and emit typed events to a sink.

The runner knows nothing of HTTP, storage or terminals: the CLI, the job store and tests
all hand it a sink (any callable taking an event) and a `should_stop` callable checked
between steps. Results are deterministic for a given seed on CPU.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

import psgd
from server.cadence import EVALUATION_SHARE, SNAPSHOT_SHARE, TRAJECTORY_SHARE, Cadence
from server.curvature import (
    inverse_hessian_spectrum,
    preconditioner_fit,
    small_hessian,
)
from server.events import Evaluation, Event, Metrics, Spectrum, Started, Status, Trajectory
from server.specs import JobSpec
from server.tasks.base import Task

Sink = Callable[[Event], None]

_SPECTRUM_VALUES = 256
#: dimensions of the shared parameter projection: each trajectory event of a high-dimensional
#: task carries at most this many floats (≈ 1.3 KB of JSON)
SKETCH_DIM = 64
#: the projection's seed: a constant, so that every run of a task projects alike
SKETCH_SEED = 0x5EED


@dataclass(frozen=True)
class Limits:
    """Per-job ceilings, so a runaway job ends as failed instead of running forever."""

    max_steps: int = 1_000_000
    max_seconds: float = 6 * 3600


def resolve_device(device: str) -> torch.device:
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def environment(device: torch.device, seed: int) -> dict[str, Any]:
    """What a result needs to be reproduced: versions, device and seed."""
    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "psgd": psgd.__version__,
        "platform": platform.platform(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "seed": seed,
    }


class ParameterSketch:
    """The parameters as a point of one fixed random projection shared by every run.

    Why: a comparison's runs live in separate worker processes, so no runner sees the
    others' paths; each run sends its points in the same low-dimensional coordinates and
    the trajectory figure finds one PCA basis for all of them (playground/figures.py). The
    projection's seed is a constant, never the job's, so equal parameters give equal points
    in every run of a task. Up to `SKETCH_DIM` parameters are sent as they are (exact);
    beyond, a CountSketch (each parameter added with a random sign to one of `SKETCH_DIM`
    buckets) keeps squared distances in expectation (relative spread ≈ √(2/64) ≈ 18 %),
    costs one pass over the parameters and holds two numbers per parameter.
    """

    def __init__(self, numel: int) -> None:
        self.numel = numel
        if numel > SKETCH_DIM:
            gen = torch.Generator().manual_seed(SKETCH_SEED)
            self.buckets = torch.randint(0, SKETCH_DIM, (numel,), generator=gen)
            self.signs = torch.randint(0, 2, (numel,), generator=gen).double() * 2 - 1

    def point(self, params: list[Tensor]) -> list[float]:
        flat = torch.cat([p.detach().reshape(-1).double().cpu() for p in params])
        if self.numel > SKETCH_DIM:
            flat = torch.zeros(SKETCH_DIM, dtype=torch.float64).index_add_(
                0, self.buckets, flat * self.signs
            )
        return flat.tolist()


def _step_health(loss: Tensor, params: list[Tensor]) -> tuple[float, float, bool]:
    """The step's loss, the gradient norm, and whether every parameter is finite.

    Why fused: reading each value on its own cost one host synchronisation per parameter
    per step (a stall on a GPU); here one foreach kernel takes every norm on the device
    and one small tensor comes back. Norms accumulate in fp64, so a finite fp32 tensor
    never overflows to inf, and a tensor's norm is finite exactly when its entries are.
    """
    grads = [p.grad.detach() for p in params if p.grad is not None]
    norms = torch._foreach_norm([*grads, *(p.detach() for p in params)], 2, dtype=torch.float64)
    values = torch.stack([*norms, loss.detach().double()]).tolist()
    grad_norm = math.sqrt(math.fsum(v * v for v in values[: len(grads)]))
    return values[-1], grad_norm, all(map(math.isfinite, values[len(grads) : -1]))


@dataclass
class Work:
    """The evaluations a job's optimizer made so far, cumulative (sent with each metrics
    event): comparable across optimizers whose steps cost very differently (an L-BFGS step
    evaluates the loss up to `max_iter` times; a Newton-fitting PSGD step adds a
    Hessian-vector product)."""

    function_evaluations: int = 0
    gradient_evaluations: int = 0
    hessian_vector_products: int = 0

    def counts(self) -> dict[str, int]:
        return asdict(self)


def _take_step(kind: str, opt: Any, task: Task, work: Work) -> Tensor:
    """One optimizer step, its evaluations added to `work`: every call of the closure the
    optimizer gets is one function evaluation (and one gradient evaluation when it calls
    backward); Newton-fitting PSGD differentiates itself and reports its gradients and
    Hessian-vector products in `opt.work`."""
    if kind == "newton":

        def loss_only() -> Tensor:
            work.function_evaluations += 1
            return task.loss()

        before = dict(opt.work)
        loss = opt.step(loss_only)
        work.gradient_evaluations += (
            opt.work["gradient_evaluations"] - before["gradient_evaluations"]
        )
        work.hessian_vector_products += (
            opt.work["hessian_vector_products"] - before["hessian_vector_products"]
        )
        return loss
    if kind == "closure":

        def closure() -> Tensor:
            opt.zero_grad()
            loss = task.loss()
            loss.backward()
            work.function_evaluations += 1
            work.gradient_evaluations += 1
            return loss

        return opt.step(closure)
    opt.zero_grad()
    loss = task.loss()
    loss.backward()
    work.function_evaluations += 1
    work.gradient_evaluations += 1
    opt.step()
    return loss


class _Run:
    """One job's mutable progress: best values, time to target, snapshots.

    Two clocks: set-up (building the task and optimizer, which on a fresh worker includes
    torch's lazy imports, and the step-0 snapshot) runs from `start` to `run_start`, the
    start of step 1; the run's seconds, `elapsed` and the time to target count from there.
    """

    def __init__(self, spec: JobSpec, sink: Sink, limits: Limits) -> None:
        self.spec, self.sink, self.limits = spec, sink, limits
        self.best_loss = math.inf
        self.last_loss = math.nan
        self.target_step: int | None = None
        self.target_seconds: float | None = None
        self.target_work: dict[str, int] | None = None
        self.solved_step: int | None = None
        self.solved_seconds: float | None = None
        self.solved_work: dict[str, int] | None = None
        self.work = Work()
        self.last_eval: dict[str, float] = {}
        self.step = 0
        self.step_seconds = 0.0  # in the optimizer steps alone
        self.cadences: dict[str, Cadence] = {}
        self.start = time.perf_counter()
        self.run_start: float | None = None  # set as step 1 begins

    def elapsed(self) -> float:
        """Seconds since step 1 began (0 before it)."""
        return 0.0 if self.run_start is None else time.perf_counter() - self.run_start

    def setup_seconds(self) -> float:
        end = time.perf_counter() if self.run_start is None else self.run_start
        return end - self.start

    def note_target(self, step: int, value: float, lower_is_better: bool) -> None:
        target = self.spec.target
        if target is None or self.target_step is not None:
            return
        if (value <= target) if lower_is_better else (value >= target):
            self.target_step, self.target_seconds = step, self.elapsed()
            self.target_work = self.work.counts()

    def reached(self) -> str | None:
        """What ends a `stop_when_solved` job: the target when one is given, else solved."""
        if self.spec.target is not None:
            return None if self.target_step is None else "target reached"
        return None if self.solved_step is None else "solved"

    def note_solved(self, step: int) -> None:
        if self.solved_step is None:
            self.solved_step, self.solved_seconds = step, self.elapsed()
            self.solved_work = self.work.counts()

    def summary(self, step: int) -> dict[str, Any]:
        return {
            "steps": step,
            "setup_seconds": self.setup_seconds(),
            "seconds": self.elapsed(),
            "final_loss": self.last_loss,
            "best_loss": self.best_loss if math.isfinite(self.best_loss) else None,
            "target": self.spec.target,
            "target_step": self.target_step,
            "target_seconds": self.target_seconds,
            "target_work": self.target_work,
            "solved_step": self.solved_step,
            "solved_seconds": self.solved_seconds,
            "solved_work": self.solved_work,
            "work": self.work.counts(),
            "final_eval": self.last_eval,
            "overhead": {
                "step_seconds": self.step_seconds,
                **{name: c.report() for name, c in self.cadences.items()},
            },
        }

    def observe(self, name: str, step: int, observation: Callable[[], bool]) -> None:
        """Run a snapshot or evaluation and charge its wall time to its cadence (unless
        there was nothing to observe: a task without evaluation).

        One before step 1 (the step-0 snapshot) is set-up: its time is in `setup_seconds`,
        and it neither counts in the cadence's totals (shares of the run's seconds) nor
        spaces the next one, since it often carries one-time costs (the first LAPACK or
        autograd call of a process) that, under load, pushed the next snapshot past the
        end of a short run.
        """
        began = time.perf_counter()
        if observation() and self.run_start is not None:
            self.cadences[name].record(step, time.perf_counter() - began)


def run_job(
    spec: JobSpec,
    sink: Sink,
    should_stop: Callable[[], bool] = lambda: False,
    limits: Limits = Limits(),
) -> Status:
    """Run `spec` to its end and return the final status event (also sent to the sink)."""
    run = _Run(spec, sink, limits)
    try:
        status = _run(run, should_stop)
    except Exception as error:  # a job's failure must become a status, never a crash
        message = f"{type(error).__name__}: {error}"
        status = Status(step=run.step, status="failed", message=message)
    if not status.summary:
        status.summary = run.summary(status.step)
    sink(status)
    return status


def _run(run: _Run, should_stop: Callable[[], bool]) -> Status:
    spec = run.spec
    device = resolve_device(spec.device)
    torch.manual_seed(spec.seed)
    task = spec.task.build(device, spec.seed)
    opt = spec.optimizer.build(task.params, spec.seed)
    kind = spec.optimizer.step_kind
    per_epoch = task.steps_per_epoch
    if task.budget_unit == "epochs" and spec.steps is None:
        total = (spec.epochs or 5) * (per_epoch or 1)
    else:
        total = spec.steps or 500
    if total > run.limits.max_steps:
        return Status(
            step=0,
            status="failed",
            message=f"{total} steps exceed this server's limit of {run.limits.max_steps}",
        )
    max_seconds = min(spec.max_seconds or math.inf, run.limits.max_seconds)
    snapshots = Cadence(total, SNAPSHOT_SHARE, spec.snapshot_every)
    trajectories = Cadence(total, TRAJECTORY_SHARE, spec.snapshot_every)
    evaluations = Cadence(total, EVALUATION_SHARE, spec.snapshot_every)
    run.cadences = {
        "snapshots": snapshots,
        "trajectories": trajectories,
        "evaluations": evaluations,
    }
    numel = sum(p.numel() for p in task.params)
    two_d = task.position() is not None
    sketch = None if two_d else ParameterSketch(numel)
    metric, lower_is_better = task.target_metric
    run.sink(
        Started(
            total_steps=total,
            meta={
                "environment": environment(device, spec.seed),
                "task": {**spec.task.model_dump(), **task.describe()},
                "optimizer": spec.optimizer.model_dump(),
                "budget_unit": task.budget_unit,
                "steps_per_epoch": per_epoch,
                "target_metric": metric,
                "target_lower_is_better": lower_is_better,
            },
        )
    )

    def snapshot(step: int) -> None:
        run.observe("snapshots", step, lambda: _spectrum_snapshot(run, task, opt, step))

    def trajectory(step: int) -> None:
        run.observe("trajectories", step, lambda: _trajectory_point(run, task, sketch, step))

    def evaluate(step: int) -> None:
        run.observe(
            "evaluations",
            step,
            lambda: _evaluate(run, task, step, per_epoch, metric, lower_is_better),
        )

    snapshot(0)
    trajectory(0)
    run.run_start = time.perf_counter()
    for step in range(1, total + 1):
        if should_stop():
            return Status(step=step - 1, status="cancelled", message="cancelled by request")
        if time.perf_counter() - run.start > max_seconds:  # the job's whole wall time
            return Status(
                step=step - 1,
                status="failed",
                message=f"time limit of {max_seconds:g} s reached after {step - 1} steps",
            )
        task.next_batch()
        began = time.perf_counter()
        loss = _take_step(kind, opt, task, run.work)
        step_time = time.perf_counter() - began
        loss_value, grad_norm, params_finite = _step_health(loss, task.params)
        run.step = step
        run.step_seconds += step_time
        run.last_loss = loss_value
        if not math.isfinite(loss_value) or not params_finite:
            return Status(
                step=step,
                status="diverged",
                message=f"loss or parameters became non-finite at step {step}",
            )
        run.best_loss = min(run.best_loss, loss_value)
        if metric == "loss":
            run.note_target(step, loss_value, lower_is_better)
        if run.solved_step is None and task.solved(loss_value):
            run.note_solved(step)
        run.sink(
            Metrics(
                step=step,
                loss=loss_value,
                grad_norm=grad_norm,
                lr=float(opt.param_groups[0]["lr"]),
                step_time=step_time,
                elapsed=run.elapsed(),
                **run.work.counts(),
            )
        )
        mean_step = run.step_seconds / step
        stopping = spec.stop_when_solved and run.reached() is not None
        if per_epoch is not None:
            if step % per_epoch == 0 or stopping:
                evaluate(step)  # every epoch, whatever it costs (the cost is in the summary)
        elif stopping or evaluations.due(step, mean_step):
            evaluate(step)
        if stopping or snapshots.due(step, mean_step):
            snapshot(step)  # the last step is always observed, an early one too
        if stopping or trajectories.due(step, mean_step):
            trajectory(step)
        if spec.stop_when_solved and run.reached() is not None:  # an evaluation may reach it
            return Status(step=step, status="succeeded", message=f"{run.reached()} at step {step}")
    return Status(step=total, status="succeeded")


def _evaluate(
    run: _Run, task: Task, step: int, per_epoch: int | None, metric: str, lower: bool
) -> bool:
    metrics = task.evaluate()
    if not metrics:
        return False
    run.last_eval = metrics
    epoch = step / per_epoch if per_epoch else 0.0
    run.sink(Evaluation(step=step, epoch=epoch, metrics=metrics))
    if metric in metrics:
        run.note_target(step, metrics[metric], lower)
    return True


def _spectrum_snapshot(run: _Run, task: Task, opt: Any, step: int) -> bool:
    spectra_of = getattr(opt, "preconditioner_spectra_info", None)
    spectra = spectra_of(_SPECTRUM_VALUES) if spectra_of else {}
    hessian = small_hessian(task)
    if spectra or hessian is not None:
        fit = preconditioner_fit(opt, hessian) if spectra else None
        run.sink(
            Spectrum(
                step=step,
                spectra={k: s.values.tolist() for k, s in spectra.items()},
                estimated=[k for k, s in spectra.items() if not s.exact],
                inverse_hessian=None if hessian is None else inverse_hessian_spectrum(hessian),
                fit_error=None if fit is None else fit.error,
                fit_along=None if fit is None else fit.along_eigenvectors,
            )
        )
        return True
    return False  # nothing to observe (no preconditioner, no small Hessian): not counted


def _trajectory_point(run: _Run, task: Task, sketch: ParameterSketch | None, step: int) -> bool:
    """The position (2-D landscapes) or the parameters' sketch: cheap, so on its own
    cadence, which keeps ≈ 100 points a job where spectra are dear (a trajectory drawn
    from a handful of spectrum snapshots was a few straight segments)."""
    if sketch is None:
        run.sink(Trajectory(step=step, point=task.position()))
    else:
        run.sink(Trajectory(step=step, sketch=sketch.point(task.params)))
    return True
