"""A job's peak memory estimated from its spec alone, so that the server can refuse at
submit time what would exceed its per-job memory limit (422 naming the field to shrink)
instead of starting a job that grows until it is killed.

The estimate is the peak resident memory of a CPU worker: a process with torch loaded
(`BASE_BYTES`), the task's data and constants, parameters and gradients, one step's
activations (doubled when Newton fitting differentiates the gradient again), the
optimizer's state and per-step temporaries (`OptimizerConfig.state_bytes`) and the
runner's trajectory sketch. Each task config says what it holds (`memory_estimate()`).
It errs high: tests/test_memory_estimate.py runs small real jobs and checks the measured
peak lies between half the estimate and the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from server.runner import SKETCH_DIM
from server.specs import JobSpec
from server.tasks.base import MemoryPart

#: peak RSS of a worker running a trivial job: the interpreter with torch, the server's
#: modules and torch's first-step set-up (measured 315–320 MiB on CPU with torch 2.13.0+cpu,
#: 2026-11-30; an earlier environment measured 409–476 MiB), with ~190 MiB to spare for
#: other builds. (A 2048-D quadratic job once seemed to peak 217 MiB above its usual: the
#: test then read ru_maxrss, which Linux carries across exec from the test process itself.)
BASE_BYTES = 512 << 20
#: bytes per parameter of the runner's trajectory sketch (float64 bucket signs and int64
#: bucket indices kept; a float64 copy of the parameters and its signed copy per snapshot)
_SKETCH_BYTES_PER_PARAM = 40
_GIB = 1 << 30


@dataclass(frozen=True)
class MemoryEstimate:
    """Peak bytes of a job and its parts; `fields` name what would shrink the largest."""

    total: int
    parts: dict[str, int]
    shrink: tuple[str, ...]
    change: tuple[str, ...]


def estimate(job: JobSpec, optimizer_at: str = "optimizer") -> MemoryEstimate:
    """The estimate for `job`; `optimizer_at` is where its optimizer sits in the request
    (e.g. `optimizers[2]` in a comparison), for the field names."""
    task = job.task.memory_estimate()
    numel = sum(math.prod(shape) for shape in task.param_shapes)
    sketch = _SKETCH_BYTES_PER_PARAM * numel if numel > SKETCH_DIM else 0
    activations = task.activations.bytes * (2 if job.optimizer.double_backward else 1)
    state = (
        2 * numel * task.element_bytes  # parameters and gradients
        + sketch
        + job.optimizer.state_bytes(task.param_shapes, task.element_bytes)
    )
    optimizer_fields = tuple(f"{optimizer_at}.{f}" for f in job.optimizer.memory_fields)
    candidates = [
        (task.data.bytes, _located(task.data), ()),
        (activations, _located(task.activations), ()),
        (state, _located(task.size), optimizer_fields),
    ]
    _, (shrink, change), extra = max(candidates, key=lambda c: c[0])
    extra_shrink = tuple(f for f in extra if not f.endswith(".name"))
    extra_change = tuple(f for f in extra if f.endswith(".name"))
    return MemoryEstimate(
        total=BASE_BYTES + task.data.bytes + activations + state,
        parts={"base": BASE_BYTES, "data": task.data.bytes, "activations": activations},
        shrink=shrink + extra_shrink,
        change=change + extra_change,
    )


def _located(part: MemoryPart) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(f"task.{f}" for f in part.shrink), tuple(f"task.{f}" for f in part.change)


def refusal(
    job: JobSpec,
    limit_bytes: int,
    optimizer_at: str = "optimizer",
    limit_name: str = "the per-job memory limit",
) -> str | None:
    """Why `job` cannot run under a memory limit, as one line naming the field to shrink
    first; None when its estimate fits."""
    found = estimate(job, optimizer_at)
    if found.total <= limit_bytes:
        return None
    advice = []
    if found.shrink:
        advice.append(f"shrink {' or '.join(found.shrink)}")
    if found.change:
        advice.append(f"change {' or '.join(found.change)}")
    field = (found.shrink or found.change or ("task",))[0]
    return (
        f"{field}: this job needs ≈ {found.total / _GIB:.1f} GB, more than {limit_name} of "
        f"{limit_bytes / _GIB:.1f} GB; {', or '.join(advice)}"
    )
