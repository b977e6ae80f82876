"""Public API of the PSGD optimizers: options, fitting modes, persistence and inspection.

Every test uses a tiny fixed problem (a 4-5-3 tanh network, 43 parameters, on one fixed
regression batch) so the whole file runs in seconds on a CPU.
"""

from __future__ import annotations

import copy
import io
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import psgd

FAMILIES = [psgd.Kron, psgd.LRA, psgd.XMat, psgd.Diag, psgd.Dense]
REPO_ROOT = Path(__file__).resolve().parents[1]
NUM_PARAMS = 4 * 5 + 5 + 5 * 3 + 3

families = pytest.mark.parametrize("cls", FAMILIES, ids=lambda cls: cls.__name__)


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Tiny tensors gain nothing from intra-op threads, which thrash on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- helpers
def make_model(seed: int = 0, dtype: torch.dtype = torch.float32) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3)).to(dtype)


def make_batch(dtype: torch.dtype = torch.float32) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(123)
    x = torch.randn(32, 4, generator=gen)
    y = torch.tanh(x @ torch.randn(4, 3, generator=gen))
    return x.to(dtype), y.to(dtype)


def loss_of(model: nn.Module, batch: tuple[Tensor, Tensor]) -> Tensor:
    x, y = batch
    return F.mse_loss(model(x), y)


def whiten_step(model: nn.Module, opt: torch.optim.Optimizer, batch: tuple[Tensor, Tensor]):
    opt.zero_grad()
    loss = loss_of(model, batch)
    loss.backward()
    opt.step()
    return loss.item()


def newton_step(model: nn.Module, opt: torch.optim.Optimizer, batch: tuple[Tensor, Tensor]):
    return opt.step(lambda: loss_of(model, batch))


def stepper(fitting: str):
    return newton_step if fitting == "newton" else whiten_step


def params_of(model: nn.Module) -> list[Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def flat(tensors) -> Tensor:
    return torch.cat([t.detach().reshape(-1).double() for t in tensors])


def assert_params_equal(actual: list[Tensor], expected: list[Tensor]) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert torch.equal(a, e), (a - e).abs().max()


def trained(cls, steps: int = 10, **options):
    """A model and optimizer after `steps` whitening steps with the preconditioner fitted."""
    model, batch = make_model(), make_batch()
    options = {"lr": 0.02, "preconditioner_update_probability": 1.0, "seed": 0, **options}
    opt = cls(model.parameters(), **options)
    for _ in range(steps):
        whiten_step(model, opt, batch)
    return model, opt


# ------------------------------------------------------------------- validation
COMMON_INVALID = [
    ("lr", -1),
    ("momentum", 1.0),
    ("momentum", -0.1),
    ("weight_decay", -1),
    ("preconditioner_lr", 0),
    ("preconditioner_lr", 3),
    ("preconditioner_update_probability", 1.5),
    ("preconditioner_update_probability", "x"),
    ("preconditioner_init_scale", 0),
    ("preconditioner_init_scale", -1),
    ("preconditioner_init_scale", math.inf),
    ("update_clip_rms", 0),
    ("update_clip_norm", -1),
    ("damping", -1),
    ("lipschitz_beta", 1.0),
    ("preconditioner_dtype", "fp8"),
]
CONSTRUCTOR_ONLY_INVALID = [("fitting", "adam"), ("hessian_vector_product", "bogus")]
FAMILY_INVALID = [
    (psgd.Kron, "geometry", "XYZ"),
    (psgd.Dense, "geometry", "XYZ"),
    (psgd.Kron, "max_skew", -1),
    (psgd.Kron, "max_size", 0),
    (psgd.Kron, "memory_save_mode", "bad"),
    (psgd.LRA, "rank", -1),
    (psgd.LRA, "rank", 1.5),
    (psgd.Diag, "elementwise_normalizer", "yes"),
]
FAMILY_CASES = [
    pytest.param(cls, name, value, id=f"{cls.__name__}-{name}={value!r}")
    for cls, name, value in FAMILY_INVALID
]


def names_option(name: str) -> str:
    """A regex matching `name` as a whole word ("lr" but not inside "preconditioner_lr")."""
    return rf"\b{name}\b"


@families
@pytest.mark.parametrize(
    ("name", "value"),
    COMMON_INVALID + CONSTRUCTOR_ONLY_INVALID,
    ids=[f"{n}={v!r}" for n, v in COMMON_INVALID + CONSTRUCTOR_ONLY_INVALID],
)
def test_invalid_hyperparameter_raises_value_error_naming_it(cls, name, value):
    model = make_model()
    with pytest.raises(ValueError, match=names_option(name)):
        cls(model.parameters(), **{name: value})


@pytest.mark.parametrize(("cls", "name", "value"), FAMILY_CASES)
def test_invalid_family_option_raises_value_error_naming_it(cls, name, value):
    model = make_model()
    with pytest.raises(ValueError, match=names_option(name)):
        cls(model.parameters(), **{name: value})


@families
@pytest.mark.parametrize(
    ("name", "value"), COMMON_INVALID, ids=[f"{n}={v!r}" for n, v in COMMON_INVALID]
)
def test_invalid_option_in_added_param_group_raises_value_error_naming_it(cls, name, value):
    model = make_model()
    opt = cls(list(model[0].parameters()), lr=0.01)
    with pytest.raises(ValueError, match=names_option(name)):
        opt.add_param_group({"params": list(model[2].parameters()), name: value})


@pytest.mark.parametrize(("cls", "name", "value"), FAMILY_CASES)
def test_invalid_family_option_in_added_param_group_raises_value_error(cls, name, value):
    model = make_model()
    opt = cls(list(model[0].parameters()), lr=0.01)
    with pytest.raises(ValueError, match=names_option(name)):
        opt.add_param_group({"params": list(model[2].parameters()), name: value})


@families
def test_rejected_param_group_is_not_added_to_the_optimizer(cls):
    model, batch = make_model(), make_batch()
    opt = cls(list(model[0].parameters()), lr=0.01, seed=0)
    with pytest.raises(ValueError, match=names_option("lr")):
        opt.add_param_group({"params": list(model[2].parameters()), "lr": -1})
    assert len(opt.param_groups) == 1
    assert all(group["lr"] >= 0 for group in opt.param_groups)
    before = params_of(model)
    whiten_step(model, opt, batch)
    after = params_of(model)
    # Only the first layer is optimised: the rejected group's parameters must not move.
    assert torch.equal(after[2], before[2]) and torch.equal(after[3], before[3])


@families
def test_param_group_accepts_auto_update_clip_rms(cls):
    # "auto" is a documented value of update_clip_rms, and every option but fitting,
    # hessian_vector_product and seed may differ per param group.
    model = make_model()
    opt = cls(
        [
            {"params": list(model[0].parameters())},
            {"params": list(model[2].parameters()), "update_clip_rms": "auto"},
        ],
        lr=0.01,
        update_clip_rms=None,
    )
    assert opt.param_groups[0]["update_clip_rms"] is None
    assert opt.param_groups[1]["update_clip_rms"] == 2.0  # "auto" for whitening


@families
def test_unknown_keyword_argument_raises_type_error(cls):
    model = make_model()
    with pytest.raises(TypeError, match="preconditioner_lr_typo"):
        cls(model.parameters(), preconditioner_lr_typo=0.1)


# --------------------------------------------------------------------- whitening
@families
def test_whitening_plain_loop_decreases_loss(cls):
    model, batch = make_model(), make_batch()
    opt = cls(model.parameters(), lr=0.02, preconditioner_update_probability=1.0, seed=0)
    initial = loss_of(model, batch).item()
    for _ in range(50):
        whiten_step(model, opt, batch)
    final = loss_of(model, batch).item()
    assert final < 0.5 * initial
    assert opt.preconditioner_spectra(), "the preconditioner was never started"


@families
def test_whitening_closure_calling_backward_matches_plain_loop(cls):
    batch = make_batch()
    plain_model, closure_model = make_model(), make_model()
    options = dict(lr=0.02, preconditioner_update_probability=1.0, seed=0)
    plain_opt = cls(plain_model.parameters(), **options)
    closure_opt = cls(closure_model.parameters(), **options)

    def closure():
        closure_opt.zero_grad()
        loss = loss_of(closure_model, batch)
        loss.backward()
        return loss

    initial = loss_of(closure_model, batch).item()
    for _ in range(20):
        plain_loss = whiten_step(plain_model, plain_opt, batch)
        returned = closure_opt.step(closure)
        assert isinstance(returned, Tensor)
        assert returned.item() == plain_loss
    assert_params_equal(params_of(closure_model), params_of(plain_model))
    assert loss_of(closure_model, batch).item() < 0.7 * initial


# ------------------------------------------------------------------------ newton
@families
@pytest.mark.parametrize("hvp_mode", ["exact", "finite_difference"])
def test_newton_closure_decreases_loss(cls, hvp_mode):
    model, batch = make_model(), make_batch()
    opt = cls(
        model.parameters(),
        lr=0.05,
        fitting="newton",
        hessian_vector_product=hvp_mode,
        preconditioner_update_probability=1.0,
        seed=0,
    )
    initial = loss_of(model, batch).item()
    for _ in range(30):
        expected = loss_of(model, batch).item()
        returned = newton_step(model, opt, batch)
        assert isinstance(returned, Tensor) and returned.item() == pytest.approx(expected)
    final = loss_of(model, batch).item()
    assert math.isfinite(final) and final < 0.6 * initial
    assert opt.preconditioner_spectra(), "the preconditioner was never started"


@families
def test_finite_difference_newton_steps_match_exact_steps_in_fp64(cls):
    batch = make_batch(torch.float64)
    models, opts = [], []
    for mode in ("exact", "finite_difference"):
        model = make_model(dtype=torch.float64)
        opt = cls(
            model.parameters(),
            lr=0.05,
            fitting="newton",
            hessian_vector_product=mode,
            preconditioner_update_probability=1.0,
            seed=0,
        )
        models.append(model)
        opts.append(opt)
    start = params_of(models[0])
    calls = [0, 0]
    for _ in range(3):
        for index, (model, opt) in enumerate(zip(models, opts)):

            def closure(index=index, model=model):
                calls[index] += 1
                return loss_of(model, batch)

            opt.step(closure)
    # Finite differences evaluate the closure a second time, at θ + εv, on every fit.
    assert calls == [3, 6]
    exact, finite = flat(params_of(models[0])), flat(params_of(models[1]))
    assert not torch.equal(exact, flat(start))
    torch.testing.assert_close(finite, exact, rtol=1e-6, atol=1e-8)


@families
def test_newton_step_without_closure_raises_runtime_error(cls):
    model, batch = make_model(), make_batch()
    opt = cls(model.parameters(), fitting="newton", seed=0)
    loss_of(model, batch).backward()
    before = params_of(model)
    with pytest.raises(RuntimeError, match="closure"):
        opt.step()
    assert_params_equal(params_of(model), before)


@families
@pytest.mark.parametrize("retain_graph", [False, True])
def test_newton_closure_calling_backward_raises_runtime_error(cls, retain_graph):
    model, batch = make_model(), make_batch()
    opt = cls(model.parameters(), fitting="newton", seed=0)

    def closure():
        loss = loss_of(model, batch)
        loss.backward(retain_graph=retain_graph)
        return loss

    before = params_of(model)
    with pytest.raises(RuntimeError) as error:
        opt.step(closure)
    # The library's own explanation, not autograd's "backward through the graph twice".
    message = str(error.value)
    assert "backward" in message and "closure" in message, message
    assert_params_equal(params_of(model), before)


# ------------------------------------------------------------------ persistence
ROUND_TRIP_CASES = [pytest.param(cls, "whiten", id=f"{cls.__name__}-whiten") for cls in FAMILIES]
ROUND_TRIP_CASES.append(pytest.param(psgd.Kron, "newton", id="Kron-newton"))


@pytest.mark.parametrize(("cls", "fitting"), ROUND_TRIP_CASES)
def test_state_dict_round_trip_gives_identical_next_steps(cls, fitting):
    batch = make_batch()
    step = stepper(fitting)
    options = dict(lr=0.02, momentum=0.9, fitting=fitting, preconditioner_update_probability=0.5)
    model = make_model()
    opt = cls(model.parameters(), seed=1, **options)
    for _ in range(5):
        step(model, opt, batch)
    saved_opt = copy.deepcopy(opt.state_dict())
    saved_model = copy.deepcopy(model.state_dict())
    expected = []
    for _ in range(5):
        step(model, opt, batch)
        expected.append(params_of(model))

    fresh_model = make_model(seed=7)
    fresh_model.load_state_dict(saved_model)
    fresh_opt = cls(fresh_model.parameters(), seed=2, **options)
    fresh_opt.load_state_dict(saved_opt)
    for params in expected:
        step(fresh_model, fresh_opt, batch)
        assert_params_equal(params_of(fresh_model), params)


@pytest.mark.parametrize("cls", [psgd.Kron, psgd.LRA], ids=lambda cls: cls.__name__)
def test_state_dict_with_default_schedule_survives_torch_save_and_load(cls):
    batch = make_batch()
    model = make_model()
    opt = cls(model.parameters(), lr=0.02, seed=1)
    schedule = opt.param_groups[0]["preconditioner_update_probability"]
    assert isinstance(schedule, psgd.ExponentialAnneal)
    for _ in range(3):
        whiten_step(model, opt, batch)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    loaded = torch.load(buffer)
    assert loaded["param_groups"][0]["preconditioner_update_probability"] == schedule

    fresh_model = copy.deepcopy(model)
    fresh_opt = cls(fresh_model.parameters(), lr=0.02, seed=2)
    fresh_opt.load_state_dict(loaded)
    for _ in range(3):
        whiten_step(model, opt, batch)
        whiten_step(fresh_model, fresh_opt, batch)
        assert_params_equal(params_of(fresh_model), params_of(model))


def test_kron_bf16_params_with_bf16_preconditioner_train_without_nan():
    model, batch = make_model(dtype=torch.bfloat16), make_batch(torch.bfloat16)
    opt = psgd.Kron(
        model.parameters(),
        lr=0.02,
        preconditioner_dtype="bf16",
        preconditioner_update_probability=1.0,
        seed=0,
    )
    initial = loss_of(model, batch).float().item()
    for _ in range(50):
        loss = whiten_step(model, opt, batch)
        assert math.isfinite(loss)
    for p in model.parameters():
        assert p.dtype == torch.bfloat16 and torch.isfinite(p).all()
        assert opt.state[p]["Q0"].dtype == torch.bfloat16
        assert opt.state[p]["L"].dtype == torch.float32
    assert loss_of(model, batch).float().item() < 0.5 * initial


def test_kron_fp32_factors_of_bf16_params_stay_fp32_after_load_state_dict():
    model, batch = make_model(dtype=torch.bfloat16), make_batch(torch.bfloat16)
    options = dict(lr=0.02, momentum=0.9, preconditioner_update_probability=1.0)
    opt = psgd.Kron(model.parameters(), seed=0, **options)
    for _ in range(5):
        whiten_step(model, opt, batch)
    fp32_keys = ("Q0", "P0", "L", "momentum_buffer")
    for p in model.parameters():
        for key in fp32_keys:
            assert opt.state[p][key].dtype == torch.float32, key

    fresh_model = copy.deepcopy(model)
    fresh_opt = psgd.Kron(fresh_model.parameters(), seed=1, **options)
    fresh_opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    for p, fresh in zip(model.parameters(), fresh_model.parameters()):
        for key in fp32_keys:
            assert fresh_opt.state[fresh][key].dtype == torch.float32, key
            assert torch.equal(fresh_opt.state[fresh][key], opt.state[p][key]), key
        assert fresh_opt.state[fresh]["updates"].dtype == torch.int64
    for _ in range(3):
        whiten_step(model, opt, batch)
        whiten_step(fresh_model, fresh_opt, batch)
    assert_params_equal(params_of(fresh_model), params_of(model))


# ----------------------------------------------------------------- param groups
def two_group_optimizer(cls, second_preconditioner_lr: float):
    model = make_model()
    opt = cls(
        [
            {"params": list(model[0].parameters()), "lr": 0.02},
            {
                "params": list(model[2].parameters()),
                "lr": 0.0,
                "preconditioner_lr": second_preconditioner_lr,
            },
        ],
        preconditioner_update_probability=1.0,
        seed=0,
    )
    return model, opt


@families
def test_param_groups_use_their_own_lr_and_preconditioner_lr(cls):
    batch = make_batch()
    start = params_of(make_model())
    runs = []
    for second_preconditioner_lr in (0.05, 0.5):
        model, opt = two_group_optimizer(cls, second_preconditioner_lr)
        for _ in range(10):
            whiten_step(model, opt, batch)
        runs.append((params_of(model), opt.preconditioner_spectra()))

    (params_a, spectra_a), (params_b, spectra_b) = runs
    expected_keys = {"p0", "p1", "p2", "p3"} if cls is psgd.Kron else {"group0", "group1"}
    assert set(spectra_a) == set(spectra_b) == expected_keys
    # Group 0 (lr 0.02) moved; group 1 (lr 0) did not.
    assert not torch.equal(params_a[0], start[0])
    assert_params_equal(params_a[2:], start[2:])
    # Group 1's preconditioner_lr changes only group 1's preconditioner.
    assert_params_equal(params_a, params_b)
    second = ["p2", "p3"] if cls is psgd.Kron else ["group1"]
    first = ["p0", "p1"] if cls is psgd.Kron else ["group0"]
    for key in first:
        assert torch.equal(spectra_a[key], spectra_b[key]), key
    assert any(not torch.allclose(spectra_a[key], spectra_b[key]) for key in second)


@families
def test_step_lr_scheduler_changes_group_lr_and_steps_keep_working(cls):
    model, batch = make_model(), make_batch()
    opt = cls(model.parameters(), lr=0.04, preconditioner_update_probability=1.0, seed=0)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    initial = loss_of(model, batch).item()
    for _ in range(6):
        before = params_of(model)
        whiten_step(model, opt, batch)
        scheduler.step()
        assert not torch.equal(flat(params_of(model)), flat(before))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.04 * 0.5**3)
    assert loss_of(model, batch).item() < initial


@families
def test_step_uses_the_lr_set_in_param_groups(cls):
    model, batch = make_model(), make_batch()
    opt = cls(model.parameters(), lr=0.04, preconditioner_update_probability=1.0, seed=0)
    whiten_step(model, opt, batch)
    opt.param_groups[0]["lr"] = 0.0
    before = params_of(model)
    whiten_step(model, opt, batch)
    assert_params_equal(params_of(model), before)


# ------------------------------------------------------------- reproducibility
def run_whitening(cls, seed, steps: int = 10) -> list[Tensor]:
    model, batch = make_model(), make_batch()
    opt = cls(model.parameters(), lr=0.02, preconditioner_update_probability=0.5, seed=seed)
    for _ in range(steps):
        whiten_step(model, opt, batch)
    return params_of(model)


@families
def test_same_seed_gives_identical_params(cls):
    assert_params_equal(run_whitening(cls, seed=3), run_whitening(cls, seed=3))


@families
def test_different_seeds_give_different_params(cls):
    first, second = run_whitening(cls, seed=3), run_whitening(cls, seed=4)
    assert not torch.equal(flat(first), flat(second))


@families
def test_seed_none_is_reproducible_under_torch_manual_seed(cls):
    seeds, params = [], []
    for _ in range(2):
        model, batch = make_model(), make_batch()  # make_model calls torch.manual_seed(0)
        opt = cls(model.parameters(), lr=0.02, preconditioner_update_probability=0.5)
        for _ in range(5):
            whiten_step(model, opt, batch)
        seeds.append(opt.seed)
        params.append(params_of(model))
    assert seeds[0] == seeds[1]
    assert_params_equal(params[0], params[1])


# ------------------------------------------------------------------- inspection
@families
def test_spectra_are_sorted_positive_float32_cpu_and_capped(cls):
    model, opt = trained(cls)
    spectra = opt.preconditioner_spectra(max_values=8)
    if cls is psgd.Kron:
        sizes = {f"p{i}": p.numel() for i, p in enumerate(model.parameters())}
    else:
        sizes = {"all": NUM_PARAMS}
    assert set(spectra) == set(sizes)
    for key, values in spectra.items():
        assert values.dim() == 1 and values.dtype == torch.float32
        assert values.device.type == "cpu"
        assert values.numel() == min(sizes[key], 8)
        assert torch.isfinite(values).all() and (values > 0).all()
        assert (values[1:] >= values[:-1]).all()


@families
def test_spectra_reject_max_values_below_two(cls):
    _, opt = trained(cls, steps=1)
    with pytest.raises(ValueError, match="max_values"):
        opt.preconditioner_spectra(max_values=1)


@families
def test_preconditioner_matrix_is_spd_and_its_eigenvalues_are_the_spectra(cls):
    _, opt = trained(cls)
    matrix = opt.preconditioner_matrix()
    assert matrix.shape == (NUM_PARAMS, NUM_PARAMS)
    assert matrix.dtype == torch.float64 and matrix.device.type == "cpu"
    torch.testing.assert_close(matrix, matrix.T, rtol=0, atol=1e-12 * matrix.abs().max().item())
    eigenvalues = torch.linalg.eigvalsh(matrix)
    assert eigenvalues.min() > 0
    assert eigenvalues.max() > 1.01 * eigenvalues.min(), "P was never fitted"
    spectra = opt.preconditioner_spectra(max_values=4096)
    combined = torch.cat(list(spectra.values())).double().sort().values
    torch.testing.assert_close(combined, eigenvalues, rtol=1e-4, atol=0)
    info = opt.preconditioner_spectra_info(max_values=4096)
    assert all(s.exact and s.rank_error == 0 for s in info.values()), "small P: exact"


@families
def test_preconditioner_matrix_is_the_matrix_the_step_applies(cls):
    model, opt = trained(cls)
    batch = make_batch()
    for group in opt.param_groups:
        group["preconditioner_update_probability"] = 0.0
        group["update_clip_rms"] = None
    matrix = opt.preconditioner_matrix()
    before = flat(model.parameters())
    opt.zero_grad()
    loss_of(model, batch).backward()
    grad = flat(p.grad for p in model.parameters())
    opt.step()
    expected = before - 0.02 * (matrix @ grad)
    torch.testing.assert_close(flat(model.parameters()), expected, rtol=1e-5, atol=1e-6)


@families
def test_preconditioner_matrix_refuses_more_than_4096_parameters(cls):
    weight = nn.Parameter(torch.zeros(65, 64))
    opt = cls([weight], lr=0.01)
    with pytest.raises(ValueError, match="4096"):
        opt.preconditioner_matrix()


def test_preconditioner_matrix_of_unstarted_preconditioner_is_identity_up_to_4096():
    weight = nn.Parameter(torch.zeros(64, 64))
    matrix = psgd.Kron([weight], lr=0.01).preconditioner_matrix()
    assert matrix.shape == (4096, 4096)
    assert torch.equal(matrix.diagonal(), torch.ones(4096, dtype=torch.float64))
    assert matrix.count_nonzero() == 4096


def test_kron_spectrum_quantiles_keep_the_true_extreme_eigenvalues():
    gen = torch.Generator().manual_seed(0)
    weight = nn.Parameter(torch.zeros(300, 200))
    opt = psgd.Kron(
        [weight], lr=0.01, preconditioner_lr=0.5, preconditioner_update_probability=1.0, seed=0
    )
    row_scale = torch.logspace(-1, 1, 300)[:, None]
    col_scale = torch.logspace(-1, 1, 200)[None, :]
    for _ in range(10):
        weight.grad = torch.randn(300, 200, generator=gen) * row_scale * col_scale
        opt.step()
    state = opt.state[weight]
    rows, cols = state["Q0"].double(), state["Q1"].double()
    assert rows.shape == (300,) and cols.shape == (200, 200)  # diagonal x dense
    row_eigs = rows.square()
    col_eigs = torch.linalg.eigvalsh(cols.T @ cols)
    true_min = (row_eigs.min() * col_eigs.min()).item()
    true_max = (row_eigs.max() * col_eigs.max()).item()
    assert true_max > 10 * true_min, "the spectrum should have spread during fitting"

    values = opt.preconditioner_spectra(max_values=256)["p0"]
    assert values.numel() == 256
    assert values[0].item() == pytest.approx(true_min, rel=1e-4)
    assert values[-1].item() == pytest.approx(true_max, rel=1e-4)


NUMEL_CASES = [
    # (10, 50): a dense 10x10 factor (Q0 and its cached P0), a diagonal 50 factor (Q1, P1),
    # and L with one Lipschitz bound per factor. The int "updates" counter is no float.
    pytest.param(psgd.Kron, {}, 2 * 10 * 10 + 2 * 50 + 2, id="Kron"),
    # One dense 500x500 factor Q0 and its cache P0, one bound.
    pytest.param(psgd.Dense, {}, 2 * 500 * 500 + 1, id="Dense"),
    # U, V (500 x rank), d (500) and three bounds (d, U, V).
    pytest.param(psgd.LRA, {"rank": 3}, (2 * 3 + 1) * 500 + 3, id="LRA-rank3"),
    # a, b (500 each) and one bound.
    pytest.param(psgd.XMat, {}, 2 * 500 + 1, id="XMat"),
    # q and one bound per coordinate, or q and one global bound.
    pytest.param(psgd.Diag, {}, 500 + 500, id="Diag-elementwise"),
    pytest.param(psgd.Diag, {"elementwise_normalizer": False}, 500 + 1, id="Diag-global"),
]


@pytest.mark.parametrize(("cls", "options", "expected"), NUMEL_CASES)
def test_preconditioner_numel_counts_factors_caches_and_bounds(cls, options, expected):
    gen = torch.Generator().manual_seed(0)
    weight = nn.Parameter(torch.randn(10, 50, generator=gen))
    opt = cls(
        [weight],
        lr=0.01,
        momentum=0.9,  # the momentum buffer is optimizer state but not preconditioner state
        preconditioner_update_probability=1.0,
        seed=0,
        **options,
    )
    assert opt.preconditioner_numel() == 0
    weight.grad = torch.randn(10, 50, generator=gen)
    opt.step()
    assert "momentum_buffer" in opt.state[weight]
    assert opt.preconditioner_numel() == expected


# -------------------------------------------------------------- zero gradients
@families
def test_all_zero_first_gradients_postpone_automatic_initialisation(cls):
    model, batch = make_model(), make_batch()
    opt = cls(model.parameters(), lr=0.02, preconditioner_update_probability=1.0, seed=0)
    before = params_of(model)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert opt.preconditioner_spectra() == {}
    assert opt.preconditioner_numel() == 0
    assert_params_equal(params_of(model), before)

    whiten_step(model, opt, batch)
    spectra = opt.preconditioner_spectra()
    assert spectra, "a non-zero gradient should start the preconditioner"
    for values in spectra.values():
        assert torch.isfinite(values).all() and (values > 0).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())


# --------------------------------------------------------------- weight decay
@families
def test_weight_decay_is_decoupled_from_the_preconditioner(cls):
    # P ≈ 3² I (never fitted: probability 0): a coupled (L2) decay would be preconditioned
    # to about 1 − lr·9·wd = 0.55; the decoupled one scales by exactly 1 − lr·wd = 0.95.
    model = make_model()
    opt = cls(
        model.parameters(),
        lr=0.1,
        weight_decay=0.5,
        preconditioner_update_probability=0.0,
        preconditioner_init_scale=3.0,
        update_clip_rms=None,
        seed=0,
    )
    before = params_of(model)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    # P ≈ 9 I (LRA starts with small random U, V, so only approximately).
    spectra = opt.preconditioner_spectra()
    assert spectra and all(values.min() > 4 for values in spectra.values())
    for after, start in zip(params_of(model), before):
        torch.testing.assert_close(after, start * (1 - 0.1 * 0.5), rtol=1e-6, atol=0)


# ----------------------------------------------------- whole-vector edge cases
@pytest.mark.parametrize(
    "cls", [psgd.LRA, psgd.XMat, psgd.Diag, psgd.Dense], ids=lambda cls: cls.__name__
)
def test_whole_vector_family_steps_when_a_parameter_has_no_gradient(cls):
    gen = torch.Generator().manual_seed(0)
    used = nn.Parameter(torch.randn(3, generator=gen))
    unused = nn.Parameter(torch.randn(2, generator=gen))
    opt = cls([used, unused], lr=0.02, preconditioner_update_probability=1.0, seed=0)
    for _ in range(3):
        opt.zero_grad()
        used.square().sum().backward()
        assert unused.grad is None
        opt.step()
    assert torch.isfinite(used).all()
    assert opt.preconditioner_spectra(), "the preconditioner should have started"
    assert torch.isfinite(unused).all()


# -------------------------------------------------------------------- packaging
def test_import_psgd_does_not_import_the_web_stack():
    code = (
        "import sys, psgd\n"
        "assert hasattr(psgd, 'Kron'), psgd\n"
        "web = {'fastapi', 'gradio', 'server', 'playground', 'uvicorn'}\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in web)\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
