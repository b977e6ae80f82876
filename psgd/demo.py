"""A one-minute tour of PSGD on CPU: `python -m psgd.demo` (what `make serve` runs for now).

Two comparisons, printed as they run:
1. 100-D Rosenbrock from 0: `psgd.Dense` with Newton fitting against Adam.
2. A small MLP regression: `psgd.Kron` with gradient whitening against AdamW.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable

import torch

import psgd


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (100 * (x[1::2] - x[::2] ** 2) ** 2 + (1 - x[::2]) ** 2).sum()


def _report(name: str, losses: list[float], every: int, seconds: float) -> None:
    shown = "  ".join(f"{loss:.2e}" for loss in losses[::every])
    print(f"  {name:<28} {shown}   final {losses[-1]:.3e}  ({seconds:.1f} s)")


def _run(steps: int, step_fn: Callable[[], torch.Tensor]) -> tuple[list[float], float]:
    start = time.perf_counter()
    losses = [float(step_fn()) for _ in range(steps)]
    return losses, time.perf_counter() - start


def rosenbrock_demo(steps: int) -> None:
    print(f"100-D Rosenbrock, start at 0, {steps} steps (loss every {steps // 5}):")
    x = torch.zeros(100, requires_grad=True)
    dense = psgd.Dense(
        [x],
        lr=1.0,
        momentum=0.9,
        fitting="newton",
        preconditioner_lr=0.5,
        preconditioner_update_probability=1.0,
        seed=0,
    )
    losses, seconds = _run(steps, lambda: dense.step(lambda: rosenbrock(x)).detach())
    _report("psgd.Dense (Newton)", losses, steps // 5, seconds)

    y = torch.zeros(100, requires_grad=True)
    adam = torch.optim.Adam([y], lr=0.01)

    def adam_step() -> torch.Tensor:
        adam.zero_grad()
        loss = rosenbrock(y)
        loss.backward()
        adam.step()
        return loss.detach()

    losses, seconds = _run(steps, adam_step)
    _report("torch.optim.Adam (lr 0.01)", losses, steps // 5, seconds)


def mlp_demo(steps: int) -> None:
    print(f"MLP regression 16→64→64→1, {steps} steps (loss every {steps // 5}):")
    torch.manual_seed(0)
    x = torch.randn(512, 16)
    y = torch.sin(x[:, :1] * 2) + x[:, 1:2] * x[:, 2:3]
    base = torch.nn.Sequential(
        torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 64), torch.nn.Tanh(),
        torch.nn.Linear(64, 1),
    )  # fmt: skip
    for name, make in (
        ("psgd.Kron (whitening)", lambda p: psgd.Kron(p, lr=3e-3, momentum=0.9, seed=0)),
        ("torch.optim.AdamW (lr 3e-3)", lambda p: torch.optim.AdamW(p, lr=3e-3)),
    ):
        model = copy.deepcopy(base)
        opt = make(model.parameters())

        def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt) -> torch.Tensor:
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            opt.step()
            return loss.detach()

        losses, seconds = _run(steps, step)
        _report(name, losses, steps // 5, seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000, help="steps per run (>= 5)")
    args = parser.parse_args(argv)
    if args.steps < 5:
        parser.error("--steps must be at least 5")
    print(f"psgd {psgd.__version__}, torch {torch.__version__}\n")
    rosenbrock_demo(args.steps)
    print()
    mlp_demo(args.steps)


if __name__ == "__main__":
    main()
