"""One step of a small least-squares regression, for every family and fitting mode."""

from __future__ import annotations

import torch


def regression_step(
    model: torch.nn.Module,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    newton: bool,
) -> None:
    """Newton fitting needs a closure (its Hv products); whitening takes a plain step."""
    if newton:
        opt.step(lambda: ((model(x) - y) ** 2).mean())
        return
    opt.zero_grad()
    ((model(x) - y) ** 2).mean().backward()
    opt.step()
