"""psgd.LRA's options toward the 2022 reference (issue 16 (a)–(d)): random U/V start,
norm-only balancing, the per-fit gradient-norm step normaliser and the switch to
finite-difference Hessian-vector products; each checked against dense math on small
tensors, and through the registry's psgd-lra schema."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

import psgd
from psgd import lra
from psgd.optimizers import NORM_BALANCE_PROBABILITY
from server.optimizers import optimizer_config
from server.specs import ComparisonSpec

DT = torch.float64


def _lra_state(opt: psgd.LRA) -> dict[str, torch.Tensor]:
    holder = opt.param_groups[0]["params"][0]
    return opt.state[holder]


# ------------------------------------------------------------------------ (a) start
def test_random_uv_start_has_the_references_scale_and_moves_the_first_step() -> None:
    n, rank = 400, 10
    steps = {}
    for uv_init in ("zero_v", "random"):
        x = torch.ones(n, dtype=DT, requires_grad=True)
        opt = psgd.LRA(
            [x],
            lr=0.1,
            rank=rank,
            uv_init=uv_init,
            preconditioner_init_scale=1.0,
            preconditioner_update_probability=0.0,  # P stays Q₀ᵀQ₀
            update_clip_rms=None,
            seed=3,
        )
        grad = torch.linspace(-1, 1, n, dtype=DT)
        x.grad = grad.clone()
        opt.step()
        state = _lra_state(opt)
        assert state["U"].shape == state["V"].shape == (n, rank)
        steps[uv_init] = (torch.ones(n, dtype=DT) - x.detach()) / 0.1
        if uv_init == "random":
            # every entry N(0, 1/(n·r)): Frobenius norms ≈ 1, no zero factor
            for key in ("U", "V"):
                assert 0.9 < float(state[key].norm()) < 1.1
                assert abs(float(state[key].std()) * (n * rank) ** 0.5 - 1) < 0.05
            q = lra.dense_q(state["U"], state["V"], state["d"])
            assert torch.allclose(steps[uv_init], q.T @ q @ grad, atol=1e-12)
        else:
            assert torch.count_nonzero(state["V"]) == 0
    assert torch.allclose(steps["zero_v"], grad, rtol=0, atol=1e-12)  # Q₀ = I: SGD's step
    assert not torch.allclose(steps["random"], grad, atol=1e-3)


# --------------------------------------------------------------------- (b) balance
def test_norm_balancing_equalises_norms_without_rotating() -> None:
    gen = torch.Generator().manual_seed(1)
    u = torch.randn(15, 4, generator=gen, dtype=DT) * 3
    v = torch.randn(15, 4, generator=gen, dtype=DT) / 3
    product = u @ v.T
    rotated_u, rotated_v = u.clone(), v.clone()
    balanced_u, balanced_v = u.clone(), v.clone()
    lra.balance(balanced_u, balanced_v, rotate=False)
    lra.balance(rotated_u, rotated_v)
    assert torch.allclose(balanced_u @ balanced_v.T, product, rtol=1e-12, atol=1e-12)
    assert abs(float(balanced_u.norm() / balanced_v.norm()) - 1) < 1e-12
    rho = float(u.norm() / balanced_u.norm())
    assert torch.allclose(balanced_u * rho, u, rtol=1e-12, atol=0)  # a scaling, nothing else
    assert torch.allclose(balanced_v / rho, v, rtol=1e-12, atol=0)
    assert not torch.allclose(rotated_u * rho, u, rtol=1e-3, atol=0)  # the default rotates


@pytest.mark.parametrize("uv_balance", ["rotate", "norms"])
def test_norm_balancing_happens_with_the_references_probability(
    uv_balance: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[bool] = []
    original = lra.balance

    def counting(u: torch.Tensor, v: torch.Tensor, rotate: bool = True) -> None:
        calls.append(rotate)
        original(u, v, rotate)

    monkeypatch.setattr(lra, "balance", counting)
    x = torch.zeros(8, requires_grad=True)
    opt = psgd.LRA(
        [x], rank=2, uv_balance=uv_balance, preconditioner_update_probability=1.0, seed=0
    )
    fits = 600
    for step in range(fits):
        x.grad = torch.sin(torch.arange(8.0) + step)
        opt.step()
    if uv_balance == "rotate":
        assert calls == [True] * fits
    else:
        assert calls and not any(calls)
        expected = fits * NORM_BALANCE_PROBABILITY
        assert 0 < len(calls) <= 3 * expected  # Binomial(600, 0.01): 6 expected


# ------------------------------------------------------------------ (c) normaliser
def _fit_inputs(seed: int, rank: int) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    n = 12
    u = torch.randn(n, rank, generator=gen, dtype=DT) / 3
    v = torch.randn(n, rank, generator=gen, dtype=DT) / 3
    d = torch.rand(n, generator=gen, dtype=DT) + 0.5
    probe = torch.randn(n, generator=gen, dtype=DT)
    h = torch.randn(n, generator=gen, dtype=DT)
    return u, v, d, probe, h


@pytest.mark.parametrize("update_u", [True, False])
def test_gradient_norm_normaliser_divides_by_this_fits_gradient_norms(update_u: bool) -> None:
    u, v, d, probe, h = _fit_inputs(seed=4, rank=3)
    lr = 0.3
    eye_n, eye_r = torch.eye(d.numel(), dtype=DT), torch.eye(3, dtype=DT)
    q = lra.dense_q(u, v, d)
    p = q.T @ q
    grad_d = (p @ h) * h - probe * torch.linalg.solve(p, probe)
    expected_d = d - lr / grad_d.abs().max() * grad_d * d
    alpha, beta = q @ h, torch.linalg.solve(q.T, probe)
    error = torch.outer(alpha, alpha) - torch.outer(beta, beta)
    if update_u:
        grad = error @ v
        norm = torch.linalg.matrix_norm(grad @ v.T)  # Frobenius, of an n × n matrix
        expected = (u - lr / norm * grad @ (eye_r + v.T @ u), v)
    else:
        grad = error @ u
        norm = torch.linalg.matrix_norm(u @ grad.T)
        expected = (u, v - lr / norm * (eye_n + v @ u.T) @ grad)

    results = {}
    for normalizer in ("gradient_norm", "lipschitz"):
        uu, vv, dd, bound = u.clone(), v.clone(), d.clone(), torch.zeros(3)
        lra.fit(uu, vv, dd, bound, probe, h, lr, update_u, 0.9, "none", normalizer)
        results[normalizer] = (uu, vv, dd, bound)
    uu, vv, dd, bound = results["gradient_norm"]
    assert torch.allclose(dd, expected_d, rtol=1e-6, atol=0)  # the step size is fp32
    assert torch.allclose(uu, expected[0], rtol=1e-6, atol=0)  # the step size is fp32
    assert torch.allclose(vv, expected[1], rtol=1e-6, atol=0)  # the step size is fp32
    assert bound[0] == pytest.approx(float(grad_d.abs().max()), rel=1e-6)
    assert bound[1 if update_u else 2] == pytest.approx(float(norm), rel=1e-6)
    moved = 0 if update_u else 1
    assert not torch.allclose(results["lipschitz"][moved], expected[moved], rtol=1e-3)
    assert not torch.allclose(results["lipschitz"][2], expected_d, rtol=1e-3)


def test_gradient_norm_normaliser_at_rank_zero() -> None:
    _, _, d, probe, h = _fit_inputs(seed=5, rank=0)
    empty = torch.zeros(d.numel(), 0, dtype=DT)
    grad_d = (d * h).square() - (probe / d).square()
    expected = d - 0.2 / grad_d.abs().max() * grad_d * d
    lra.fit(empty, empty, d, torch.zeros(3), probe, h, 0.2, True, normalizer="gradient_norm")
    assert torch.allclose(d, expected, rtol=1e-6, atol=0)  # the step size is fp32


def test_the_optimizer_passes_its_normaliser_to_every_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str]] = []
    original = lra.fit

    def spy(*args: object, **kwargs: object) -> None:
        seen.append((str(args[9]), str(args[10])))
        original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(lra, "fit", spy)
    x = torch.zeros(5, requires_grad=True)
    opt = psgd.LRA([x], rank=2, step_normalizer="gradient_norm", uv_balance="norms", seed=0)
    x.grad = torch.ones(5)
    opt.step()
    assert len(seen) == 1 and seen[0][1] == "gradient_norm" and seen[0][0] in ("norms", "none")


# ---------------------------------------------------------- (d) finite differences
def _quadratic() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(6)
    m = torch.randn(6, 6, generator=gen, dtype=DT)
    return m @ m.T + torch.eye(6, dtype=DT), torch.randn(6, generator=gen, dtype=DT)


def _newton_lra(x: torch.Tensor, **options: object) -> psgd.LRA:
    return psgd.LRA(
        [x],
        lr=0.1,
        rank=2,
        fitting="newton",
        preconditioner_init_scale=1.0,
        preconditioner_update_probability=1.0,
        seed=2,
        **options,  # type: ignore[arg-type]
    )


def _newton_run(steps: int, **options: object) -> tuple[psgd.LRA, torch.Tensor]:
    a, start = _quadratic()
    x = start.clone().requires_grad_()
    opt = _newton_lra(x, **options)
    for _ in range(steps):
        opt.step(lambda: 0.5 * x @ a @ x)
    return opt, x.detach().clone()


def test_finite_difference_after_switches_at_that_step() -> None:
    exact, x_exact = _newton_run(8)
    switched, x_switched = _newton_run(8, finite_difference_after=3)
    assert exact.work == {
        "function_evaluations": 8,
        "gradient_evaluations": 8,
        "hessian_vector_products": 8,
    }
    # three exact steps, then five with a second closure call and gradient at θ + εv
    assert switched.work == {
        "function_evaluations": 13,
        "gradient_evaluations": 13,
        "hessian_vector_products": 3,
    }
    _, x_three = _newton_run(3)
    _, x_three_switched = _newton_run(3, finite_difference_after=3)
    assert torch.equal(x_three, x_three_switched)  # identical before the switch
    # after it, the finite-difference Hv of a quadratic is A v up to ~√eps: same path
    assert not torch.equal(x_exact, x_switched)
    assert torch.allclose(x_switched, x_exact, rtol=1e-6, atol=1e-9)


def test_finite_difference_after_is_validated() -> None:
    x = torch.zeros(3, requires_grad=True)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="finite_difference_after"):
            psgd.LRA([x], fitting="newton", finite_difference_after=bad)
    with pytest.raises(ValueError, match="finite_difference_after"):
        psgd.LRA(
            [x],
            fitting="newton",
            hessian_vector_product="finite_difference",
            finite_difference_after=10,
        )


@pytest.mark.parametrize(
    ("name", "value"),
    [("uv_init", "gaussian"), ("uv_balance", "sometimes"), ("step_normalizer", "exact")],
)
def test_unknown_choices_are_refused_by_name(name: str, value: str) -> None:
    x = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match=name):
        psgd.LRA([x], **{name: value})


# ------------------------------------------------------------------ persistence
REFERENCE_OPTIONS = {
    "uv_init": "random",
    "uv_balance": "norms",
    "step_normalizer": "gradient_norm",
    "finite_difference_after": 4,
}


def test_state_dict_round_trip_with_every_option() -> None:
    a, start = _quadratic()
    x = start.clone().requires_grad_()
    opt = _newton_lra(x, **REFERENCE_OPTIONS)
    for _ in range(3):
        opt.step(lambda: 0.5 * x @ a @ x)
    saved = opt.state_dict()
    y = x.detach().clone().requires_grad_()
    resumed = _newton_lra(y, **REFERENCE_OPTIONS)
    resumed.load_state_dict(saved)
    for _ in range(4):  # crosses the switch to finite differences at step 4
        opt.step(lambda: 0.5 * x @ a @ x)
        resumed.step(lambda: 0.5 * y @ a @ y)
    assert torch.equal(x.detach(), y.detach())
    assert resumed.work == opt.work
    group = resumed.param_groups[0]
    assert {k: group[k] for k in ("uv_init", "uv_balance", "step_normalizer")} == {
        "uv_init": "random",
        "uv_balance": "norms",
        "step_normalizer": "gradient_norm",
    }


# ------------------------------------------------------------------------ registry
def test_the_registry_schema_sets_every_option() -> None:
    config = optimizer_config({"name": "psgd-lra", **REFERENCE_OPTIONS}, "xor")
    assert config.fitting == "newton"  # the xor preset still applies
    opt = config.build([torch.zeros(4, requires_grad=True)], seed=0)
    group = opt.param_groups[0]
    assert group["uv_init"] == "random" and group["uv_balance"] == "norms"
    assert group["step_normalizer"] == "gradient_norm"
    assert opt.finite_difference_after == 4
    default = optimizer_config({"name": "psgd-lra"}).build(
        [torch.zeros(4, requires_grad=True)], seed=0
    )
    assert default.param_groups[0]["uv_init"] == "zero_v"
    assert default.finite_difference_after is None
    # the xor preset takes the reference's four choices (the xor suite's T = 64 ablation)
    preset = optimizer_config({"name": "psgd-lra"}, "xor")
    assert (preset.uv_init, preset.uv_balance) == ("random", "norms")
    assert (preset.step_normalizer, preset.finite_difference_after) == ("gradient_norm", 1000)


@pytest.mark.parametrize(
    "fields",
    [
        {"uv_init": "gaussian"},
        {"uv_balance": "never"},
        {"step_normalizer": "max"},
        {"finite_difference_after": -1},
        {"finite_difference_after": 5, "hessian_vector_product": "finite_difference"},
    ],
)
def test_the_registry_refuses_bad_values(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match=next(iter(fields))):
        optimizer_config({"name": "psgd-lra", **fields}, "xor")


def test_a_comparison_spec_takes_the_ablations() -> None:
    spec = ComparisonSpec.model_validate(
        {
            "task": {"name": "xor", "sequence_length": 8},
            "steps": 5,
            "optimizers": [{"name": "psgd-lra", **REFERENCE_OPTIONS}],
        }
    )
    dumped = spec.optimizers[0].model_dump()
    assert {k: dumped[k] for k in REFERENCE_OPTIONS} == REFERENCE_OPTIONS
    assert spec.optimizers[0].double_backward
    zero = optimizer_config({"name": "psgd-lra", "finite_difference_after": 0}, "xor")
    assert not zero.double_backward  # no step ever keeps the gradient's graph
