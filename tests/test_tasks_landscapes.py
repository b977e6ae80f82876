"""Toy landscapes: values, gradients and Hessians against hand formulas, config validation,
and the Task interface the runner relies on (dtype, position, contour, describe, solved).

Everything is tiny (at most a 100-dim quadratic) so the file runs in about a second.
"""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from server.events import Status
from server.runner import JobSpec, run_job
from server.tasks.landscapes import (
    LANDSCAPE_CONFIGS,
    BealeConfig,
    HimmelblauConfig,
    QuadraticConfig,
    RastriginConfig,
    RosenbrockConfig,
    SaddleConfig,
    StyblinskiTangConfig,
)

CPU = torch.device("cpu")
F64 = torch.float64
ST_MIN = -78.33233140754282


def build(cfg_cls, seed=0, **fields):
    return cfg_cls(dtype="float64", **fields).build(CPU, seed)


def move_to(task, point):
    with torch.no_grad():
        task.params[0].copy_(torch.as_tensor(point, dtype=task.params[0].dtype))


def value_at(task, point):
    move_to(task, point)
    return float(task.loss().detach())


def grad_at(task, point):
    move_to(task, point)
    (g,) = torch.autograd.grad(task.loss(), task.params)
    return g


# ---------------------------------------------------------------------------------------------
# Values


@pytest.mark.parametrize(
    ("cfg_cls", "fields", "point", "expected"),
    [
        (RosenbrockConfig, {}, [1.0, 1.0], 0.0),
        (RosenbrockConfig, {"dim": 6}, [1.0] * 6, 0.0),
        (RastriginConfig, {}, [0.0, 0.0], 0.0),
        (BealeConfig, {}, [3.0, 0.5], 0.0),
        (HimmelblauConfig, {}, [3.0, 2.0], 0.0),
        (HimmelblauConfig, {}, [-2.805118, 3.131312], 0.0),
        (HimmelblauConfig, {}, [-3.779310, -3.283186], 0.0),
        (HimmelblauConfig, {}, [3.584428, -1.848126], 0.0),
        (StyblinskiTangConfig, {}, [-2.903534, -2.903534], ST_MIN),
        (QuadraticConfig, {"dim": 2}, [0.0, 0.0], 0.0),
    ],
)
def test_value_at_known_minimum_is_the_minimum_value(cfg_cls, fields, point, expected):
    task = build(cfg_cls, **fields)
    assert value_at(task, point) == pytest.approx(expected, abs=1e-8)
    assert task.describe()["minimum_value"] == pytest.approx(expected, abs=1e-8)


def test_every_listed_minimum_has_the_minimum_value():
    for cfg_cls in (RosenbrockConfig, RastriginConfig, BealeConfig, HimmelblauConfig, SaddleConfig):
        task = build(cfg_cls)
        facts = task.describe()
        for m in facts["known_minima"]:
            assert value_at(task, m) == pytest.approx(facts["minimum_value"], abs=1e-8)
            assert task.solved(value_at(task, m))


@pytest.mark.parametrize(
    ("cfg_cls", "fields", "point", "expected"),
    [
        (RosenbrockConfig, {}, [-1.5, 2.0], 12.5),  # 100(2 − 2.25)² + 2.5²
        (RosenbrockConfig, {}, [0.0, 0.0], 1.0),
        (RosenbrockConfig, {"dim": 4}, [0.0, 1.0, 2.0, 4.0], 102.0),  # pairs (0,1), (2,4): 101 + 1
        (RastriginConfig, {}, [1.0, 0.5], 21.25),  # 20 + (1 − 10) + (0.25 + 10)
        (BealeConfig, {}, [1.0, 1.5], 41.25),  # 2² + 3.5² + 5²
        (HimmelblauConfig, {}, [0.0, 0.0], 170.0),  # 11² + 7²
        (StyblinskiTangConfig, {}, [1.0, 1.0], -10.0),  # ½·2·(1 − 16 + 5)
        (SaddleConfig, {}, [1.0, 2.0], 2.0),  # 1 + ¼(4 − 2)²
        (SaddleConfig, {}, [0.0, 0.0], 1.0),  # the saddle point
        (QuadraticConfig, {"dim": 3, "rotate": False, "condition_number": 100.0}, [1, 1, 1], 55.5),
    ],
)
def test_value_at_hand_computed_point(cfg_cls, fields, point, expected):
    assert value_at(build(cfg_cls, **fields), point) == pytest.approx(expected, rel=1e-12)


def test_default_starts_are_documented_and_rosenbrock_nd_starts_at_zero():
    assert build(RosenbrockConfig).describe()["start"] == [-1.5, 2.0]
    assert build(RosenbrockConfig, dim=8).describe()["start"] == [0.0] * 8
    assert build(RastriginConfig).describe()["start"] == [3.1, -2.3]
    assert build(BealeConfig).describe()["start"] == [1.0, 1.5]
    assert build(HimmelblauConfig).describe()["start"] == [0.0, 0.0]
    assert build(StyblinskiTangConfig).describe()["start"] == [0.5, 0.5]
    assert build(SaddleConfig).describe()["start"] == [1.0, 1e-3]
    assert build(QuadraticConfig, dim=5).describe()["start"] == [1.0] * 5
    task = build(HimmelblauConfig, start=[1.25, -0.5])
    assert task.position() == [1.25, -0.5]


# ---------------------------------------------------------------------------------------------
# Gradients and Hessians against hand formulas


def rosenbrock_grad(x, y):
    return [-400 * x * (y - x * x) - 2 * (1 - x), 200 * (y - x * x)]


def beale_grad(x, y):
    t1, t2, t3 = 1.5 - x + x * y, 2.25 - x + x * y**2, 2.625 - x + x * y**3
    return [
        2 * t1 * (y - 1) + 2 * t2 * (y**2 - 1) + 2 * t3 * (y**3 - 1),
        2 * t1 * x + 4 * t2 * x * y + 6 * t3 * x * y**2,
    ]


def himmelblau_grad(x, y):
    a, b = x * x + y - 11, x + y * y - 7
    return [4 * x * a + 2 * b, 2 * a + 4 * y * b]


def rastrigin_grad(x, y):
    return [t * 2 + 20 * math.pi * math.sin(2 * math.pi * t) for t in (x, y)]


def st_grad(x, y):
    return [0.5 * (4 * t**3 - 32 * t + 5) for t in (x, y)]


@pytest.mark.parametrize(
    ("cfg_cls", "formula"),
    [
        (RosenbrockConfig, rosenbrock_grad),
        (RastriginConfig, rastrigin_grad),
        (BealeConfig, beale_grad),
        (HimmelblauConfig, himmelblau_grad),
        (StyblinskiTangConfig, st_grad),
        (SaddleConfig, lambda x, y: [2 * x, y**3 - 2 * y]),
    ],
)
def test_autograd_gradient_matches_hand_formula(cfg_cls, formula):
    point = (0.7, -1.3)
    g = grad_at(build(cfg_cls), point)
    torch.testing.assert_close(g, torch.tensor(formula(*point), dtype=F64), rtol=1e-12, atol=1e-12)


def test_quadratic_gradient_is_hessian_times_theta():
    task = build(QuadraticConfig, seed=3, dim=6, negative_eigenvalues=2)
    theta = torch.randn(6, dtype=F64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(grad_at(task, theta), task.hessian() @ theta)


@pytest.mark.parametrize(
    ("cfg_cls", "formula"),
    [
        (
            RosenbrockConfig,
            lambda x, y: [[1200 * x * x - 400 * y + 2, -400 * x], [-400 * x, 200.0]],
        ),
        (
            HimmelblauConfig,
            lambda x, y: [
                [12 * x * x + 4 * y - 42, 4 * x + 4 * y],
                [4 * x + 4 * y, 12 * y * y + 4 * x - 26],
            ],
        ),
        (
            RastriginConfig,
            lambda x, y: torch.diag(
                torch.tensor(
                    [2 + 40 * math.pi**2 * math.cos(2 * math.pi * t) for t in (x, y)], dtype=F64
                )
            ).tolist(),
        ),
        (StyblinskiTangConfig, lambda x, y: [[6 * x * x - 16, 0.0], [0.0, 6 * y * y - 16]]),
        (SaddleConfig, lambda x, y: [[2.0, 0.0], [0.0, 3 * y * y - 2.0]]),
    ],
)
def test_hessian_matches_hand_formula(cfg_cls, formula):
    point = (0.7, -1.3)
    task = build(cfg_cls)
    move_to(task, point)
    h = task.hessian()
    assert h.shape == (2, 2)
    torch.testing.assert_close(h, torch.tensor(formula(*point), dtype=F64), rtol=1e-12, atol=1e-10)


def test_rosenbrock_nd_hessian_is_block_diagonal_over_pairs():
    task = build(RosenbrockConfig, dim=4)
    move_to(task, [0.5, 0.2, -1.0, 2.0])
    h = task.hessian()
    blocks = [
        [[1200 * x * x - 400 * y + 2, -400 * x], [-400 * x, 200.0]]
        for x, y in [(0.5, 0.2), (-1.0, 2.0)]
    ]
    expected = torch.block_diag(*(torch.tensor(b, dtype=F64) for b in blocks))
    torch.testing.assert_close(h, expected)


def test_hessian_is_none_above_64_parameters():
    assert build(RosenbrockConfig, dim=66).hessian() is None
    assert build(QuadraticConfig, dim=100).hessian() is None
    assert build(QuadraticConfig, dim=64).hessian().shape == (64, 64)


# ---------------------------------------------------------------------------------------------
# Quadratic


def test_quadratic_spectrum_has_configured_condition_number_and_negative_count():
    cfg = QuadraticConfig(dtype="float64", dim=8, condition_number=1e3, negative_eigenvalues=3)
    eig = torch.linalg.eigvalsh(cfg.build(CPU, 5).hessian())
    torch.testing.assert_close(eig, torch.sort(cfg.eigenvalues()).values)
    mags = eig.abs()
    assert float(mags.max() / mags.min()) == pytest.approx(1e3, rel=1e-9)
    assert int((eig < 0).sum()) == 3
    # the negated ones are those of smallest magnitude: |λ| = 1, 10^(3/7), 10^(6/7)
    torch.testing.assert_close(eig[:3], -torch.logspace(0, 3, 8, dtype=F64)[:3].flip(0))


def test_quadratic_rotation_depends_on_seed_and_can_be_switched_off():
    h0 = build(QuadraticConfig, seed=0, dim=4).hessian()
    h1 = build(QuadraticConfig, seed=1, dim=4).hessian()
    assert not torch.allclose(h0, h1)
    torch.testing.assert_close(h0, build(QuadraticConfig, seed=0, dim=4).hessian())
    assert (h0 - torch.diag(torch.diagonal(h0))).abs().max() > 1e-3
    plain = build(QuadraticConfig, dim=4, rotate=False, condition_number=8.0).hessian()
    torch.testing.assert_close(plain, torch.diag(torch.tensor([1.0, 2.0, 4.0, 8.0], dtype=F64)))


def test_quadratic_without_noise_is_exactly_half_theta_h_theta():
    task = build(QuadraticConfig, seed=2, dim=5, condition_number=50.0, negative_eigenvalues=1)
    theta = torch.randn(5, dtype=F64, generator=torch.Generator().manual_seed(7))
    move_to(task, theta)
    h = task.hessian()
    assert float(task.loss().detach()) == pytest.approx(float(0.5 * theta @ h @ theta), rel=1e-12)
    task.next_batch()
    assert float(task.loss().detach()) == pytest.approx(float(0.5 * theta @ h @ theta), rel=1e-12)


def test_quadratic_noise_perturbs_gradient_per_batch_but_not_hessian():
    clean = build(QuadraticConfig, seed=4, dim=6)
    noisy = build(QuadraticConfig, seed=4, dim=6, noise=0.5)
    theta = torch.linspace(-1, 1, 6, dtype=F64)
    exact = clean.hessian() @ theta
    g1 = grad_at(noisy, theta)
    noisy.next_batch()
    g2 = grad_at(noisy, theta)
    assert (g1 - exact).norm() > 1e-3 and (g2 - exact).norm() > 1e-3
    assert not torch.allclose(g1, g2)
    torch.testing.assert_close(noisy.hessian(), clean.hessian())
    # Hessian-vector products through the noisy loss (what PSGD's Newton mode uses) are exact.
    v = torch.ones(6, dtype=F64)
    (g,) = torch.autograd.grad(noisy.loss(), noisy.params, create_graph=True)
    (hv,) = torch.autograd.grad(g @ v, noisy.params)
    torch.testing.assert_close(hv, clean.hessian() @ v)
    # the same seed replays the same noise
    again = build(QuadraticConfig, seed=4, dim=6, noise=0.5)
    torch.testing.assert_close(grad_at(again, theta), g1)


def test_quadratic_describe_reports_spectrum_and_minimum():
    pd = build(QuadraticConfig, dim=2, condition_number=10.0).describe()
    assert pd["known_minima"] == [[0.0, 0.0]] and pd["minimum_value"] == 0.0
    assert pd["eigenvalue_range"] == pytest.approx([1.0, 10.0])
    big = build(QuadraticConfig, dim=10).describe()
    assert big["known_minima"] == [] and big["minimum_value"] == 0.0 and big["domain"] is None
    indefinite = build(QuadraticConfig, dim=2, negative_eigenvalues=1).describe()
    assert indefinite["known_minima"] == [] and indefinite["minimum_value"] is None


# ---------------------------------------------------------------------------------------------
# Config validation


@pytest.mark.parametrize(
    ("cfg_cls", "fields", "message"),
    [
        (RosenbrockConfig, {"dim": 3}, "must be even"),
        (RosenbrockConfig, {"dim": 4, "start": [0.0, 0.0]}, "start has 2 values but dim is 4"),
        (RosenbrockConfig, {"dim": 0}, "greater than or equal to 2"),
        (QuadraticConfig, {"dim": 3, "start": [1.0, 2.0]}, "start has 2 values but dim is 3"),
        (QuadraticConfig, {"condition_number": 0.5}, "greater than or equal to 1"),
        (QuadraticConfig, {"condition_number": float("inf")}, "finite"),
        (QuadraticConfig, {"dim": 4, "negative_eigenvalues": 5}, "exceeds dim"),
        (QuadraticConfig, {"noise": -0.1}, "greater than or equal to 0"),
        (QuadraticConfig, {"dim": 5000}, "less than or equal to 4096"),
        (BealeConfig, {"start": [1.0, 2.0, 3.0]}, "at most 2"),
        (HimmelblauConfig, {"start": [float("nan"), 0.0]}, "finite"),
        (SaddleConfig, {"learning_rate": 0.1}, "Extra inputs are not permitted"),
        (RastriginConfig, {"dtype": "float16"}, "pattern"),
        (StyblinskiTangConfig, {"name": "rastrigin"}, "styblinski_tang"),
    ],
)
def test_invalid_config_is_rejected_with_clear_message(cfg_cls, fields, message):
    with pytest.raises(ValidationError, match=message):
        cfg_cls(**fields)


def test_every_config_has_defaults_unique_names_and_described_fields():
    names = [cls().name for cls in LANDSCAPE_CONFIGS]
    assert len(set(names)) == len(names) == 7
    for cls in LANDSCAPE_CONFIGS:
        schema = cls.model_json_schema()
        assert schema.get("description"), cls.__name__
        for field, spec in schema["properties"].items():
            assert spec.get("description"), f"{cls.__name__}.{field}"


def test_configs_round_trip_through_json():
    cfg = QuadraticConfig(dim=4, negative_eigenvalues=1, start=[1, 2, 3, 4], noise=0.1)
    assert QuadraticConfig.model_validate_json(cfg.model_dump_json()) == cfg


# ---------------------------------------------------------------------------------------------
# The Task interface


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("cfg_cls", LANDSCAPE_CONFIGS, ids=lambda c: c.__name__)
def test_dtype_is_honoured_by_params_loss_and_hessian(cfg_cls, dtype):
    fields = {"noise": 0.1} if cfg_cls is QuadraticConfig else {}
    task = cfg_cls(dtype=dtype, **fields).build(CPU, 0)
    want = getattr(torch, dtype)
    (x,) = task.params
    assert x.is_leaf and x.requires_grad and x.dtype == want and x.device == CPU
    loss = task.loss()
    assert loss.dtype == want and loss.shape == ()
    loss.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert task.hessian().dtype == want
    assert task.describe()["num_params"] == x.numel() == task.describe()["dim"]


def test_position_is_two_floats_in_2d_and_none_in_10d():
    for cfg_cls in LANDSCAPE_CONFIGS:
        fields = {"dim": 2} if cfg_cls is QuadraticConfig else {}
        pos = build(cfg_cls, **fields).position()
        assert isinstance(pos, list) and len(pos) == 2
        assert all(type(p) is float for p in pos)
    assert build(RosenbrockConfig, dim=10).position() is None
    assert build(QuadraticConfig, dim=10).position() is None


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_contour_has_grid_shape_and_matches_pointwise_values(dtype):
    gx, gy = torch.meshgrid(
        torch.linspace(-2, 2, 7, dtype=F64), torch.linspace(-1, 3, 5, dtype=F64), indexing="ij"
    )
    for cfg_cls in LANDSCAPE_CONFIGS:
        fields = {"dim": 2} if cfg_cls is QuadraticConfig else {}
        task = cfg_cls(dtype=dtype, **fields).build(CPU, 0)
        z = task.contour(gx, gy)
        assert z.shape == gx.shape and z.dtype == getattr(torch, dtype) and not z.requires_grad
        assert float(z[3, 1]) == pytest.approx(value_at(task, [gx[3, 1], gy[3, 1]]), rel=1e-5)
    assert build(RosenbrockConfig, dim=10).contour(gx, gy) is None
    assert build(QuadraticConfig, dim=10).contour(gx, gy) is None


def test_describe_gives_domain_start_minima_and_dim():
    facts = build(RosenbrockConfig).describe()
    assert facts["domain"] == [[-2.0, 2.0], [-1.0, 3.0]]
    assert facts["known_minima"] == [[1.0, 1.0]] and facts["minimum_value"] == 0.0
    assert facts["num_params"] == facts["dim"] == 2
    assert build(RastriginConfig).describe()["domain"] == [[-5.12, 5.12], [-5.12, 5.12]]
    assert build(BealeConfig).describe()["domain"] == [[-4.5, 4.5], [-4.5, 4.5]]
    assert len(build(HimmelblauConfig).describe()["known_minima"]) == 4
    st = build(StyblinskiTangConfig).describe()
    assert st["minimum_value"] == pytest.approx(ST_MIN) and len(st["local_minima"]) == 3
    saddle = build(SaddleConfig).describe()
    assert saddle["known_minima"] == [[0.0, math.sqrt(2)], [0.0, -math.sqrt(2)]]
    assert saddle["minimum_value"] == 0.0
    nd = build(RosenbrockConfig, dim=10).describe()
    assert nd["domain"] is None and nd["known_minima"] == [[1.0] * 10]
    # a start outside the usual window widens the plotting domain so the whole run shows
    wide = build(HimmelblauConfig, start=[7.0, 0.0]).describe()["domain"]
    assert wide[0][0] == -5.0 and wide[0][1] > 7.0 and wide[1] == [-5.0, 5.0]


def test_solved_within_tolerance_of_minimum_value_only():
    rb = build(RosenbrockConfig)
    assert rb.solved(0.0) and rb.solved(9e-7)
    assert not rb.solved(2e-6) and not rb.solved(float("nan"))
    st = build(StyblinskiTangConfig)
    assert st.solved(ST_MIN) and not st.solved(ST_MIN + 0.01)
    saddle = build(SaddleConfig)
    assert saddle.solved(0.0) and not saddle.solved(1.0)  # a minimum, not the saddle point
    assert not build(QuadraticConfig, negative_eigenvalues=1).solved(-5.0)


def test_noisy_quadratic_solved_judges_the_noise_free_value():
    task = build(QuadraticConfig, dim=4, noise=1.0)
    assert not task.solved(-10.0)  # a lucky noisy batch far from the minimum is not success
    move_to(task, [0.0] * 4)
    assert task.solved(0.3)


def test_next_batch_is_a_no_op_for_deterministic_landscapes():
    task = build(BealeConfig)
    before = float(task.loss().detach())
    task.next_batch()
    assert float(task.loss().detach()) == before


# ---------------------------------------------------------------------------------------------
# The saddle: a saddle point between two minima, bounded below


def test_saddle_hessian_is_indefinite_at_the_saddle_and_positive_at_the_minima():
    task = build(SaddleConfig)
    assert grad_at(task, [0.0, 0.0]).abs().max() == 0.0
    torch.testing.assert_close(task.hessian(), torch.tensor([[2.0, 0.0], [0.0, -2.0]], dtype=F64))
    for m in task.describe()["known_minima"]:
        assert grad_at(task, m).abs().max() < 1e-12
        assert torch.linalg.eigvalsh(task.hessian()).min() > 0  # diag(2, 4): a strict minimum


def test_saddle_is_bounded_below_by_its_minimum_value():
    task = build(SaddleConfig)
    grid = torch.linspace(-1e3, 1e3, 2001, dtype=F64)
    gx, gy = torch.meshgrid(grid, grid, indexing="ij")
    assert float(task.contour(gx, gy).min()) >= task.describe()["minimum_value"]


@pytest.mark.parametrize("optimizer", ["psgd-dense", "sgd", "adam"])
def test_saddle_preset_optimizers_escape_to_a_minimum(optimizer):
    events: list = []
    spec = {
        "task": {"name": "saddle"},
        "optimizer": {"name": optimizer},
        "steps": 200,
        "seed": 0,
        "device": "cpu",
    }
    status = run_job(JobSpec.model_validate(spec), events.append)
    assert isinstance(status, Status) and status.status == "succeeded", status.message
    assert status.summary["solved_step"] is not None
    assert status.summary["final_loss"] < 1e-6  # stays in the minimum, far below the saddle's 1
