"""A few-second tour of PSGD on CPU: `python -m psgd.demo`.

Rosenbrock's function, in 2-D from (−1.5, 2) and in 100-D from 0 (the reference's own demo:
`psgd.Dense` with Newton fitting, lr 1.0, preconditioner lr 0.5, momentum 0.9). Every
optimizer gets the same budget of work, counted as gradient evaluations plus Hessian-vector
products (a Newton-fitting PSGD step costs one of each, an L-BFGS step one gradient per
line-search trial), and stops early once f ≤ 1e-10. The table shows what each did with it:
steps, gradients, Hvps, seconds spent in `step`, and f at the end — whoever wins.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

import psgd

#: a run stops once f falls to this value (fp32 Rosenbrock bottoms out near 1e-14).
TARGET = 1e-10
#: Adam's lr per problem: the best of {1e-3, 3e-3, 1e-2, 3e-2, 0.1} measured here.
ADAM_LR = {2: 0.1, 100: 3e-3}

Closure = Callable[[], torch.Tensor]


def rosenbrock(x: torch.Tensor) -> torch.Tensor:
    """Σ 100 (x_{2i+1} − x_{2i}²)² + (1 − x_{2i})²; 0 at all ones."""
    return (100 * (x[1::2] - x[::2] ** 2) ** 2 + (1 - x[::2]) ** 2).sum()


@dataclass
class Tally:
    """What a run spent: steps, gradient evaluations, Hvps, seconds inside `step`."""

    steps: int = 0
    grads: int = 0
    hvps: int = 0
    seconds: float = 0.0

    @property
    def work(self) -> int:
        return self.grads + self.hvps


class Contender:
    """An optimizer on one point `x`, stepping with a closure that counts its calls."""

    def __init__(self, name: str, x: torch.Tensor) -> None:
        self.name, self.x, self.tally = name, x, Tally()

    def loss(self) -> torch.Tensor:
        self.tally.grads += 1  # every caller differentiates what the closure returns
        return rosenbrock(self.x)

    def step(self) -> None:
        raise NotImplementedError


class Dense(Contender):
    """`psgd.Dense` with the reference's Rosenbrock settings; its closure must not backward."""

    def __init__(self, x: torch.Tensor) -> None:
        super().__init__("psgd.Dense (Newton)", x)
        self.opt = psgd.Dense(
            [x],
            lr=1.0,
            momentum=0.9,
            fitting="newton",
            preconditioner_lr=0.5,
            preconditioner_update_probability=1.0,
            seed=0,
        )

    def step(self) -> None:
        self.opt.step(self.loss)
        # one Hvp per preconditioner fit (every step at update probability 1)
        self.tally.hvps = sum(int(s["updates"]) for s in self.opt.state.values())


class TorchOptimizer(Contender):
    """A torch.optim optimizer with the usual closure that calls backward."""

    def __init__(self, name: str, x: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        super().__init__(name, x)
        self.opt = opt

    def backward_loss(self) -> torch.Tensor:
        self.opt.zero_grad()
        loss = self.loss()
        loss.backward()
        return loss

    def step(self) -> None:
        self.opt.step(self.backward_loss)


class LBFGS(TorchOptimizer):
    """torch's L-BFGS: a step runs up to 20 iterations; `steps` counts iterations."""

    def __init__(self, x: torch.Tensor) -> None:
        opt = torch.optim.LBFGS([x], line_search_fn="strong_wolfe")
        super().__init__("torch L-BFGS (strong Wolfe)", x, opt)
        self.budget = 0

    def step(self) -> None:
        # stop the step's iterations once the budget is spent (a line search may add ≤ 25)
        self.opt.param_groups[0]["max_eval"] = max(1, self.budget - self.tally.work)
        super().step()

    def iterations(self) -> int:
        return int(self.opt.state[self.x].get("n_iter", 0))


def contenders(x0: torch.Tensor) -> list[Contender]:
    def point() -> torch.Tensor:
        return x0.clone().requires_grad_(True)

    lbfgs_x, adam_x = point(), point()
    lr = ADAM_LR[x0.numel()]
    return [
        Dense(point()),
        LBFGS(lbfgs_x),
        TorchOptimizer(f"torch Adam (lr {lr:g})", adam_x, torch.optim.Adam([adam_x], lr=lr)),
    ]


def race(contender: Contender, budget: int) -> float:
    """Step until the work budget is spent or f ≤ TARGET; return the final f."""
    tally = contender.tally
    if isinstance(contender, LBFGS):
        contender.budget = budget
    f = float(rosenbrock(contender.x.detach()))
    while tally.work < budget and f > TARGET:
        start = time.perf_counter()
        contender.step()
        tally.seconds += time.perf_counter() - start
        tally.steps += 1
        f = float(rosenbrock(contender.x.detach()))
    if isinstance(contender, LBFGS):
        tally.steps = contender.iterations()
    return f


def compare(title: str, x0: torch.Tensor, budget: int) -> list[tuple[Contender, float]]:
    print(f"{title}: f₀ = {float(rosenbrock(x0)):.4g}, budget {budget} gradients + Hvps each")
    print(f"  {'optimizer':<28} {'steps':>6} {'grads':>6} {'Hvps':>6} {'seconds':>8}  final f")
    results = []
    for contender in contenders(x0):
        f = race(contender, budget)
        t = contender.tally
        note = f"  (f ≤ {TARGET:g}: stopped)" if f <= TARGET else ""
        print(
            f"  {contender.name:<28} {t.steps:>6} {t.grads:>6} {t.hvps:>6} "
            f"{t.seconds:>8.2f}  {f:.2e}{note}"
        )
        results.append((contender, f))
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--budget",
        type=int,
        default=4000,
        help="gradients + Hvps per optimizer on 100-D Rosenbrock (the reference's 2,000 "
        "Newton steps); 2-D gets half (default 4000, at least 10)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (default 1: on these tiny problems more threads only wait on "
        "each other; on a loaded 2-core machine 2 threads made a 100-D Dense step 15× slower)",
    )
    args = parser.parse_args(argv)
    if args.budget < 10:
        parser.error("--budget must be at least 10")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    torch.set_num_threads(args.threads)
    print(
        f"psgd {psgd.__version__}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU thread(s), float32\n"
    )
    compare("2-D Rosenbrock from (-1.5, 2)", torch.tensor([-1.5, 2.0]), args.budget // 2)
    print()
    compare("100-D Rosenbrock from 0", torch.zeros(100), args.budget)


if __name__ == "__main__":
    main()
