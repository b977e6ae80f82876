"""A step's per-parameter work is what the preconditioner needs, and no more.

Why: on a GPU a PSGD step that does not fit the preconditioner is launch-bound; each
small op per parameter (an RMS, a clamp, a scale, an add) is a kernel launch. Momentum,
decay, clipping and the update run as torch's multi-tensor (`_foreach_*`) ops over a
whole param group instead; only applying P and scaling a clipped direction stay per
parameter. (The opt-in joint-norm clip, `update_clip_norm`, keeps its per-unit formula:
changing its rounding would change the committed delayed-XOR runs, which use it.)
Counted on CPU as dispatched ops that are not views, not reads of host counters.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from regression_step import regression_step
from torch.utils._python_dispatch import TorchDispatchMode

import psgd


class Kernels(TorchDispatchMode):
    """Counts dispatched ops that would launch work on a device."""

    def __init__(self, host_counters: set[int]) -> None:
        super().__init__()
        self.host_counters = host_counters
        self.count = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        first = args[0] if args else None
        on_host_counter = isinstance(first, torch.Tensor) and first.data_ptr() in self.host_counters
        if not (
            func.is_view or on_host_counter or func is torch.ops.aten._local_scalar_dense.default
        ):
            self.count += 1
        return func(*args, **(kwargs or {}))


def _kernels_in_a_step_without_fitting(cls: type, layers: int, options: dict) -> int:
    torch.manual_seed(0)
    model = torch.nn.Sequential(*[torch.nn.Linear(8, 8, bias=False) for _ in range(layers)])
    opt = cls(
        model.parameters(),
        preconditioner_update_probability=0.0,
        preconditioner_init_scale=1.0,
        **options,
    )
    model(torch.randn(4, 8)).sum().backward()
    opt.step()
    counters = {s["step"].data_ptr() for s in opt.state.values() if "step" in s}
    with Kernels(counters) as kernels:
        opt.step()
    return kernels.count


#: Kron: P's two 8×8 factors applied (two matrix products) and the clip's scale; the
#: whole-vector families apply P once for all and scale each parameter's slice.
PER_PARAMETER = [(psgd.Kron, 3), (psgd.LRA, 1), (psgd.XMat, 1), (psgd.Diag, 1), (psgd.Dense, 1)]


@pytest.mark.parametrize(("cls", "allowed"), PER_PARAMETER)
@pytest.mark.parametrize("options", [{}, {"momentum": 0.9, "weight_decay": 0.1}])
def test_each_further_parameter_adds_only_the_preconditioners_own_ops(
    cls: type, allowed: int, options: dict
) -> None:
    few = _kernels_in_a_step_without_fitting(cls, 4, options)
    many = _kernels_in_a_step_without_fitting(cls, 8, options)
    assert (many - few) / 4 <= allowed


def test_clipping_by_rms_scales_each_parameter_on_its_own() -> None:
    """The multi-tensor RMS clip gives what a per-tensor `d·cap/max(rms, cap)` gives."""
    big, small = torch.nn.Parameter(torch.zeros(4, 4)), torch.nn.Parameter(torch.zeros(3))
    opt = psgd.Diag(
        [big, small],
        lr=1.0,
        preconditioner_init_scale=1.0,
        preconditioner_update_probability=0.0,
        update_clip_rms=2.0,
    )
    big.grad, small.grad = torch.full((4, 4), 8.0), torch.full((3,), 0.5)
    opt.step()
    assert torch.allclose(big, torch.full((4, 4), -2.0)) and torch.allclose(
        small, torch.full((3,), -0.5)
    )


def test_applying_directions_in_chunks_gives_the_same_steps(monkeypatch) -> None:
    """`APPLY_CHUNK` bounds the pending directions' memory; it must not change a step.
    (Kron: one unit per parameter, so a chunk of 1 applies each on its own.)"""

    def train() -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
        opt = psgd.Kron(model.parameters(), momentum=0.9, weight_decay=0.01, update_clip_norm=0.5)
        gen = torch.Generator().manual_seed(1)
        for _ in range(15):
            x, y = torch.randn(16, 6, generator=gen), torch.randn(16, 2, generator=gen)
            regression_step(model, opt, x, y, newton=False)
        return [p.detach().clone() for p in model.parameters()]

    together = train()
    monkeypatch.setattr(psgd.base, "APPLY_CHUNK", 1)  # every unit applied on its own
    one_by_one = train()
    assert all(torch.equal(a, b) for a, b in zip(together, one_by_one))
