"""Hessian-vector products for Newton-type fitting.

The optimizer owns differentiation here: the user's closure only computes the loss, and
the optimizer calls `autograd.grad` once for the gradient and once more for `Hv` (exact),
or evaluates the closure a second time at `θ + εv` (finite differences).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

CLOSURE_HELP = (
    "write it as\n"
    "    def closure():\n"
    "        return loss_fn(model(inputs), targets)   # no zero_grad(), no backward()\n"
    "    optimizer.step(closure)"
)


def _loss_of(result: object) -> Tensor:
    loss = result[0] if isinstance(result, (tuple, list)) and result else result
    if not isinstance(loss, Tensor) or loss.numel() != 1:
        raise TypeError(
            "fitting='newton' needs a closure that returns the scalar loss tensor (or a "
            f"tuple whose first item is it); got {type(loss).__name__}. " + CLOSURE_HELP
        )
    if not loss.requires_grad:
        raise RuntimeError(
            "the closure's loss does not require grad: compute it from the parameters "
            "with autograd enabled. " + CLOSURE_HELP
        )
    return loss


def evaluate(
    closure: Callable[[], object] | None, params: Sequence[Tensor]
) -> tuple[Tensor, Tensor]:
    """Call the closure with grads cleared; return (closure result, loss tensor)."""
    if closure is None:
        raise RuntimeError(
            "fitting='newton' differentiates the loss twice, so step() needs a closure; "
            + CLOSURE_HELP
        )
    for p in params:
        p.grad = None
    with torch.enable_grad():
        result = closure()
    loss = _loss_of(result)
    if any(p.grad is not None for p in params):
        raise RuntimeError(
            "the closure called backward(), but with fitting='newton' the optimizer "
            "computes gradients itself; " + CLOSURE_HELP
        )
    return result, loss


def _zeros_for_none(grads: Sequence[Tensor | None], params: Sequence[Tensor]) -> list[Tensor]:
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params)]


def exact(
    loss: Tensor, params: Sequence[Tensor], probed: Sequence[bool], probes: Sequence[Tensor]
) -> tuple[list[Tensor], list[Tensor]]:
    """Gradient of every param and `H v` for the probed ones (double backward)."""
    need_hvp = any(probed)
    with torch.enable_grad():
        grads = torch.autograd.grad(loss, params, create_graph=need_hvp, allow_unused=True)
        grads = _zeros_for_none(grads, params)
        hvps: list[Tensor] = []
        if need_hvp:
            inputs = [p for p, take in zip(params, probed) if take]
            outputs = [g for g, take in zip(grads, probed) if take]
            pairs = [(o, v) for o, v in zip(outputs, probes) if o.requires_grad]
            if pairs:
                hvps = torch.autograd.grad(
                    [o for o, _ in pairs],
                    inputs,
                    grad_outputs=[v for _, v in pairs],
                    allow_unused=True,
                )
            hvps = _zeros_for_none(hvps or [None] * len(inputs), inputs)
    return [g.detach() for g in grads], [h.detach() for h in hvps]


def finite_difference(
    closure: Callable[[], object],
    loss: Tensor,
    params: Sequence[Tensor],
    probed: Sequence[bool],
    probes: Sequence[Tensor],
    rng_state: tuple[Tensor, list[Tensor]],
) -> tuple[list[Tensor], list[Tensor]]:
    """Gradient and `(∇f(θ + εv) − ∇f(θ)) / ε` with `ε = sqrt(eps)` of ≥ fp32.

    The closure must be stateless (same batch); the RNG state of the first call is
    restored before the second so dropout draws the same masks. Parameters are restored
    from a saved copy, bit-exactly.
    """
    with torch.enable_grad():
        grads = _zeros_for_none(torch.autograd.grad(loss, params, allow_unused=True), params)
    inputs = [p for p, take in zip(params, probed) if take]
    if not inputs:
        return grads, []
    dtype = torch.promote_types(inputs[0].dtype, torch.float32)
    eps = torch.finfo(dtype).eps ** 0.5
    saved = [p.detach().clone() for p in inputs]
    try:
        with torch.no_grad():
            for p, v in zip(inputs, probes):
                p.add_(v.to(p.dtype), alpha=eps)
        cpu_state, cuda_states = rng_state
        torch.set_rng_state(cpu_state)
        if cuda_states:
            torch.cuda.set_rng_state_all(cuda_states)
        with torch.enable_grad():
            shifted = _loss_of(closure())
            shifted_grads = torch.autograd.grad(shifted, inputs, allow_unused=True)
    finally:
        with torch.no_grad():
            for p, copy in zip(inputs, saved):
                p.copy_(copy)
    shifted_grads = _zeros_for_none(shifted_grads, inputs)
    base = [g for g, take in zip(grads, probed) if take]
    hvps = [(g1 - g0) / eps for g1, g0 in zip(shifted_grads, base)]
    return [g.detach() for g in grads], hvps


def capture_rng_state() -> tuple[Tensor, list[Tensor]]:
    """Torch's global RNG state, so a second closure call sees the same random draws."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return torch.get_rng_state(), cuda
