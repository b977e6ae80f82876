"""The delayed-XOR task: data generator statistics (reference §5.2), model, config."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

import psgd
from server.runner import JobSpec, run_job
from server.tasks.xor import XOR_CONFIGS, XorConfig, xor_batch

N = 50_000


def _batch(T: int, n: int = N, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    return xor_batch(n, T, torch.Generator().manual_seed(seed), "cpu", torch.float32)


def _markers(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(markers per sample, first marked step, last marked step)."""
    marked = x[..., 1] == 1
    steps = torch.arange(x.shape[1]).expand_as(marked)
    first = torch.where(marked, steps, x.shape[1]).min(dim=1).values
    last = torch.where(marked, steps, -1).max(dim=1).values
    return marked.sum(dim=1), first, last


def test_shapes_dtype_and_values():
    x, y = xor_batch(7, 16, torch.Generator().manual_seed(1), "cpu", torch.float64)
    assert x.shape == (7, 16, 2) and y.shape == (7,)
    assert x.dtype == y.dtype == torch.float64
    assert set(x[..., 1].unique().tolist()) <= {0.0, 1.0}
    assert set(y.unique().tolist()) <= {-1.0, 1.0}


def test_channel0_is_iid_plus_minus_one():
    x, _ = _batch(16)
    c0 = x[..., 0]
    assert set(c0.unique().tolist()) == {-1.0, 1.0}
    assert abs(float(c0.mean())) < 0.01  # N·T = 800k values: std of the mean ≈ 0.001
    # Per-position balance too (no position is biased).
    assert float(c0.mean(dim=0).abs().max()) < 0.03


@pytest.mark.parametrize("T", [10, 16, 20, 40, 64])
def test_marker_ranges(T):
    x, _ = _batch(T)
    _, first, last = _markers(x)
    # i1 ≤ ⌈0.1T⌉−1 and i2 ≥ ⌊0.1T⌋, so the first marker is i1 and the last is i2.
    i1_range = set(range(math.ceil(0.1 * T)))
    i2_range = set(range(math.floor(0.1 * T), math.ceil(0.5 * T)))
    assert set(first.unique().tolist()) == i1_range
    assert set(last.unique().tolist()) == i2_range
    if T == 16:
        assert i1_range == {0, 1} and i2_range == set(range(1, 8))


@pytest.mark.parametrize(
    "T, expected",
    [
        (16, 0.375 * 0.0625),  # P(i1 = 1) · P(i2 = 1) = 0.0234
        (64, 0.0625 * 0.6 / 25.6),  # P(i1 = 6) · P(i2 = 6) = 0.00146
        (10, 0.0),  # 0.1T integer: i1 < 0.1T ≤ i2, never coincide
        (20, 0.0),
        (40, 0.0),
    ],
)
def test_marker_coincidence_rate(T, expected):
    x, y = _batch(T)
    count, _, _ = _markers(x)
    assert set(count.unique().tolist()) <= {1, 2}
    rate = float((count == 1).double().mean())
    if expected == 0.0:
        assert rate == 0.0
    else:
        std = math.sqrt(expected * (1 - expected) / N)
        assert abs(rate - expected) < 5 * std, (rate, expected)
        # The single marked value equals itself: label −1.
        assert bool((y[count == 1] == -1).all())


def test_labels_follow_xor_of_marked_values():
    x, y = _batch(16)
    _, first, last = _markers(x)
    rows = torch.arange(x.shape[0])
    a, b = x[rows, first, 0], x[rows, last, 0]
    assert torch.equal(y, torch.where(a == b, -1.0, 1.0))


@pytest.mark.parametrize("T, coincidence", [(20, 0.0), (16, 0.0234)])
def test_label_balance(T, coincidence):
    _, y = _batch(T)
    positive = float((y == 1).double().mean())
    assert abs(positive - 0.5 * (1 - coincidence)) < 0.01


def test_generator_reproducible_and_fresh_batches():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = xor_batch(32, 16, g1), xor_batch(32, 16, g2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    c = xor_batch(32, 16, g1)
    assert not torch.equal(a[0], c[0])

    task = XorConfig(sequence_length=16).build(torch.device("cpu"), 3)
    again = XorConfig(sequence_length=16).build(torch.device("cpu"), 3)
    assert torch.equal(task._x, again._x)
    assert all(torch.equal(p, q) for p, q in zip(task.params, again.params))
    before = task._x.clone()
    task.next_batch()
    assert not torch.equal(before, task._x)


def test_rnn_model_shapes_and_init():
    task = XorConfig(sequence_length=16).build(torch.device("cpu"), 0)
    shapes = [tuple(p.shape) for p in task.params]
    assert shapes == [(2, 30), (30, 30), (30,), (30, 1), ()]
    assert all(p.requires_grad and p.is_leaf and p.dtype == torch.float32 for p in task.params)
    w_x, w_h, b, w_o, b_o = (p.detach() for p in task.params)
    assert torch.allclose(w_h.T @ w_h, torch.eye(30), atol=1e-5)
    assert float(b.abs().max()) == 0.0 and float(b_o) == 0.0
    assert 0.05 < float(w_x.std()) < 0.15 and 0.05 < float(w_o.std()) < 0.15
    out = task.forward(task._x)
    assert out.shape == (128,)
    info = task.describe()
    assert info["num_params"] == 60 + 900 + 30 + 30 + 1
    assert info["sequence_length"] == 16 and info["cell"] == "rnn"
    assert info["solved_threshold"] == 0.1


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_initial_loss_is_log2(seed, cell):
    task = XorConfig(sequence_length=32, cell=cell).build(torch.device("cpu"), seed)
    assert abs(float(task.loss().detach()) - math.log(2)) < 0.05
    metrics = task.evaluate()
    assert set(metrics) == {"accuracy", "eval_loss"}
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert abs(metrics["eval_loss"] - math.log(2)) < 0.05


def test_lstm_forward_backward():
    task = XorConfig(sequence_length=12, hidden_size=8, cell="lstm").build(torch.device("cpu"), 0)
    shapes = [tuple(p.shape) for p in task.params]
    assert shapes == [(2, 32), (8, 32), (32,), (8, 1), ()]
    b = task.params[2].detach()
    assert torch.equal(b[8:16], torch.ones(8))
    assert float(b[:8].abs().sum() + b[16:].abs().sum()) == 0
    loss = task.loss()
    assert loss.shape == ()
    loss.backward()
    for p in task.params:
        assert p.grad is not None and torch.isfinite(p.grad).all()
        assert float(p.grad.abs().sum()) > 0
    assert task.describe()["cell"] == "lstm"


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_model_matches_torch_recurrent_layers(cell):
    """Output, gradient and Hessian-vector product equal torch's own RNN/LSTM layer's.

    Our loop is written for speed (inputs split with unbind); torch's layers are an
    independent implementation of the same recurrence (gate order i, f, g, o for the LSTM).
    """
    task = XorConfig(sequence_length=10, hidden_size=6, cell=cell, dtype="float64").build(
        torch.device("cpu"), 3
    )
    layer_type = torch.nn.RNN if cell == "rnn" else torch.nn.LSTM
    layer = layer_type(2, 6, batch_first=True).double()

    def torch_output(W_x, W_h, b, W_o, b_o):
        weights = {
            "weight_ih_l0": W_x.T,
            "weight_hh_l0": W_h.T,
            "bias_ih_l0": b,
            "bias_hh_l0": torch.zeros_like(b),
        }
        states, _ = torch.func.functional_call(layer, weights, (task._x,))
        return (states[:, -1] @ W_o).squeeze(1) + b_o

    ours, theirs = task.forward(task._x), torch_output(*task.params)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)

    def gradient_and_hvp(loss):
        grads = torch.autograd.grad(loss, task.params, create_graph=True)
        probes = [torch.ones_like(p) for p in task.params]
        return grads, torch.autograd.grad(grads, task.params, probes)

    their_loss = task._logistic(torch_output(*task.params), task._y)
    for mine, reference in zip(gradient_and_hvp(task.loss()), gradient_and_hvp(their_loss)):
        for a, r in zip(mine, reference):
            torch.testing.assert_close(a, r, rtol=1e-10, atol=1e-12)


def test_float64_and_solved():
    task = XorConfig(sequence_length=8, dtype="float64").build(torch.device("cpu"), 0)
    assert all(p.dtype == torch.float64 for p in task.params)
    assert task._x.dtype == torch.float64 and task.loss().dtype == torch.float64
    assert task.solved(0.09) and not task.solved(0.1) and not task.solved(0.7)
    assert task.budget_unit == "steps" and task.target_metric == ("loss", True)


def test_psgd_lra_newton_preset_steps():
    """The PSGD preset runs on the task: step(closure) with the task loss as the closure."""
    task = XorConfig(sequence_length=8).build(torch.device("cpu"), 0)
    opt = psgd.LRA(
        task.params,
        lr=0.01,
        fitting="newton",
        rank=10,
        preconditioner_lr=0.01,
        preconditioner_init_scale=1.0,
        update_clip_norm=1.0,
        preconditioner_update_probability=1.0,
        seed=0,
    )
    before = [p.detach().clone() for p in task.params]
    for _ in range(3):
        loss = opt.step(task.loss)
        assert math.isfinite(float(loss.detach()))
        task.next_batch()
    assert any(not torch.equal(a, p) for a, p in zip(before, task.params))


@pytest.mark.parametrize("cell", ["rnn", "lstm"])
def test_lbfgs_runs_on_xor(cell):
    """Regression: the RNN's W_h came column-major from QR, its gradient too, and torch's
    L-BFGS (which flattens gradients with .view) failed at step 1."""
    task = XorConfig(sequence_length=8, cell=cell).build(torch.device("cpu"), 0)
    assert all(p.is_contiguous() for p in task.params)
    events: list = []
    spec = {"task": {"name": "xor", "sequence_length": 8, "cell": cell}, "steps": 2}
    spec |= {"optimizer": {"name": "lbfgs", "max_iter": 3}, "device": "cpu"}
    status = run_job(JobSpec.model_validate(spec), events.append)
    assert status.status == "succeeded", status.message
    assert math.isfinite(status.summary["final_loss"])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sequence_length": 2},
        {"sequence_length": 513},
        {"cell": "gru"},
        {"hidden_size": 0},
        {"batch_size": 0},
        {"dtype": "float16"},
        {"unknown": 1},
    ],
)
def test_config_validation(kwargs):
    with pytest.raises(ValidationError):
        XorConfig(**kwargs)


def test_config_defaults_and_schema():
    cfg = XorConfig()
    assert (cfg.name, cfg.sequence_length, cfg.hidden_size, cfg.batch_size, cfg.cell) == (
        "xor",
        32,
        30,
        128,
        "rnn",
    )
    assert (XorConfig,) == XOR_CONFIGS
    props = XorConfig.model_json_schema()["properties"]
    for field in ("sequence_length", "hidden_size", "batch_size", "cell"):
        assert props[field].get("description"), field
