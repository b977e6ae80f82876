"""The optimizers as a whole: Hvp, SGD equivalence, speed-ups and guards (§8 tests 12–18)."""

from __future__ import annotations

import math

import pytest
import torch

import psgd
from psgd import hvp

DT = torch.float64


def _sine_quadratic(theta: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return 0.5 * theta @ a @ theta + torch.sin(theta).sum()


def test_exact_hessian_vector_product_matches_analytic_curvature() -> None:
    gen = torch.Generator().manual_seed(0)
    m = torch.randn(6, 6, generator=gen, dtype=DT)
    a = m + m.T
    theta = torch.randn(6, generator=gen, dtype=DT, requires_grad=True)
    v = torch.randn(6, generator=gen, dtype=DT)
    _, hvps = hvp.exact(_sine_quadratic(theta, a), [theta], [True], [v])
    expected = (a - torch.diag(torch.sin(theta.detach()))) @ v
    assert torch.allclose(hvps[0], expected, rtol=0, atol=1e-10)


def test_finite_difference_hvp_is_accurate_in_fp32_and_restores_parameters() -> None:
    gen = torch.Generator().manual_seed(1)
    m = torch.randn(6, 6, generator=gen)
    a = m + m.T
    theta = torch.randn(6, generator=gen, requires_grad=True)
    before = theta.detach().clone()
    v = torch.randn(6, generator=gen)

    def closure() -> torch.Tensor:
        return _sine_quadratic(theta, a)

    rng = hvp.capture_rng_state()
    _, hvps = hvp.finite_difference(closure, closure(), [theta], [True], [v], rng)
    expected = (a - torch.diag(torch.sin(before))) @ v
    assert float((hvps[0] - expected).norm() / expected.norm()) < 1e-2
    assert torch.equal(theta.detach(), before)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_update_probability_zero_reduces_to_sgd_with_scaled_lr(momentum: float) -> None:
    """Never fitted, P = s²I: PSGD is SGD with the same EMA momentum and lr μ s²."""
    gen = torch.Generator().manual_seed(2)
    target = torch.randn(5, 3, generator=gen, dtype=DT)
    start = torch.randn(5, 3, generator=gen, dtype=DT)
    scale, lr = 0.7, 0.05
    for cls in (psgd.Kron, psgd.LRA, psgd.XMat, psgd.Diag, psgd.Dense):
        w = start.clone().requires_grad_()
        opt = cls(
            [w],
            lr=lr,
            momentum=momentum,
            preconditioner_update_probability=0.0,
            preconditioner_init_scale=scale,
            update_clip_rms=None,
        )
        ref = start.clone()
        buf = torch.zeros_like(ref)
        for t in range(20):
            loss = ((w - target) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            grad = 2 * (ref - target)
            beta = min(t / (t + 1), momentum)
            buf = beta * buf + (1 - beta) * grad if momentum else grad
            ref = ref - lr * scale**2 * buf
        assert torch.allclose(w.detach(), ref, rtol=0, atol=1e-12), cls.__name__


def _ill_conditioned_quadratic(n: int, gen: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=DT))
    return q @ torch.diag(torch.logspace(0, 3, n, dtype=DT)) @ q.T


@pytest.mark.slow
def test_dense_newton_solves_ill_conditioned_quadratic_3x_faster_than_tuned_gd() -> None:
    gen = torch.Generator().manual_seed(3)
    h_mat = _ill_conditioned_quadratic(50, gen)
    start = torch.randn(50, generator=gen, dtype=DT)

    def loss_of(x: torch.Tensor) -> torch.Tensor:
        return 0.5 * x @ h_mat @ x

    f0 = float(loss_of(start))
    x = start.clone()
    gd_lr = 2 / (1e3 + 1)
    gd_steps = 0
    while float(loss_of(x)) >= 1e-8 * f0:
        x = x - gd_lr * (h_mat @ x)
        gd_steps += 1
    theta = start.clone().requires_grad_()
    opt = psgd.Dense(
        [theta],
        lr=1.0,
        fitting="newton",
        geometry="EQ",
        preconditioner_lr=0.5,
        preconditioner_update_probability=1.0,
        damping=0.0,
        seed=0,
    )
    psgd_steps = 0
    while float(loss_of(theta.detach())) >= 1e-8 * f0 and psgd_steps < gd_steps:
        opt.step(lambda: loss_of(theta))
        psgd_steps += 1
    assert psgd_steps * 3 <= gd_steps, (psgd_steps, gd_steps)


def _rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return (100 * (x[1::2] - x[::2] ** 2) ** 2 + (1 - x[::2]) ** 2).sum()


@pytest.mark.slow
def test_dense_newton_minimises_100d_rosenbrock() -> None:
    torch.manual_seed(4)
    x = torch.zeros(100, requires_grad=True)
    opt = psgd.Dense(
        [x],
        lr=1.0,
        momentum=0.9,
        fitting="newton",
        preconditioner_lr=0.5,
        preconditioner_update_probability=1.0,
        seed=4,
    )
    for _ in range(2000):
        loss = opt.step(lambda: _rosenbrock(x))
        assert math.isfinite(float(loss.detach()))
    assert float(_rosenbrock(x.detach())) < 1e-4


def _finite_state(opt: torch.optim.Optimizer) -> bool:
    return all(
        bool(torch.isfinite(t.float()).all())
        for state in opt.state.values()
        for t in state.values()
        if isinstance(t, torch.Tensor)
    )


@pytest.mark.parametrize("cls", [psgd.Kron, psgd.LRA, psgd.XMat, psgd.Diag, psgd.Dense])
def test_all_zero_gradients_produce_no_nan(cls: type) -> None:
    w = torch.randn(4, 6, requires_grad=True)
    opt = cls([w], lr=0.01, preconditioner_update_probability=1.0)
    for _ in range(1000 if cls is psgd.Kron else 100):
        opt.zero_grad()
        (0 * w).sum().backward()
        opt.step()
    assert bool(torch.isfinite(w).all())
    assert _finite_state(opt)


@pytest.mark.slow
def test_bf16_kron_preconditioner_stays_finite_for_1000_steps() -> None:
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 4)).to(
        torch.bfloat16
    )
    opt = psgd.Kron(
        model.parameters(),
        lr=1e-3,
        preconditioner_lr=0.1,
        preconditioner_dtype="bf16",
        preconditioner_update_probability=1.0,
    )
    x, y = torch.randn(32, 8).bfloat16(), torch.randn(32, 4).bfloat16()
    for step in range(1000):
        opt.zero_grad()
        batch = torch.zeros_like(x) if step % 10 == 0 else x
        ((model(batch) - y) ** 2).mean().backward()
        opt.step()
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert _finite_state(opt)
    assert any(t.dtype == torch.bfloat16 for s in opt.state.values() for t in s.values())
