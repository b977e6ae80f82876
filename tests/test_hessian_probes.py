"""The flatness estimators (server/tasks/hessian_probes.py) against Hessians known exactly,
and the cifar10 task's `flatness_probes` option that reports them."""

from __future__ import annotations

import math

import pytest
import torch
from pydantic import ValidationError

from server.tasks import cifar
from server.tasks.cifar import CifarConfig
from server.tasks.hessian_probes import (
    hessian_product,
    hutchinson_trace,
    sharpness,
    top_eigenvalue,
)
from tests.test_tasks_cifar import ARCHIVE, CPU


def _quadratic(matrix: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """½ θᵀAθ + bᵀθ at a random θ: its Hessian is A wherever it is evaluated."""
    generator = torch.Generator().manual_seed(5)
    theta = torch.randn(matrix.shape[0], generator=generator, dtype=torch.float64)
    theta.requires_grad_(True)
    b = torch.randn(matrix.shape[0], generator=generator, dtype=torch.float64)
    return 0.5 * theta @ matrix @ theta + b @ theta, [theta]


def _symmetric(eigenvalues: list[float]) -> torch.Tensor:
    generator = torch.Generator().manual_seed(3)
    n = len(eigenvalues)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return q @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ q.T


def test_hessian_product_is_the_exact_hessian_times_the_vector_on_a_small_network() -> None:
    generator = torch.Generator().manual_seed(0)
    w1 = torch.randn(3, 4, generator=generator, dtype=torch.float64, requires_grad=True)
    w2 = torch.randn(2, 3, generator=generator, dtype=torch.float64, requires_grad=True)
    x = torch.randn(5, 4, generator=generator, dtype=torch.float64)

    def loss_of(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(x @ a.T) @ b.T).pow(2).sum()

    product = hessian_product(loss_of(w1, w2), [w1, w2])
    v1 = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    v2 = torch.randn(2, 3, generator=generator, dtype=torch.float64)
    flat = torch.autograd.functional.hessian(
        lambda f: loss_of(f[:12].reshape(3, 4), f[12:].reshape(2, 3)),
        torch.cat([w1.detach().flatten(), w2.detach().flatten()]),
    )
    expected = flat @ torch.cat([v1.flatten(), v2.flatten()])
    got = torch.cat([h.flatten() for h in product([v1, v2])])
    torch.testing.assert_close(got, expected)


def test_power_iteration_finds_the_top_eigenvalue_of_a_known_hessian() -> None:
    loss, params = _quadratic(_symmetric([5.0, 2.0, 1.0, 0.5, -0.3, 0.1]))
    found = top_eigenvalue(hessian_product(loss, params), params, 60, torch.Generator())
    assert found == pytest.approx(5.0, rel=1e-6)


def test_power_iteration_gives_the_largest_magnitude_which_may_be_negative() -> None:
    loss, params = _quadratic(_symmetric([1.0, 0.5, -4.0]))
    found = top_eigenvalue(hessian_product(loss, params), params, 80, torch.Generator())
    assert found == pytest.approx(-4.0, rel=1e-6)


def test_hutchinson_is_exact_for_a_diagonal_hessian() -> None:
    """vᵀDv = Σ dᵢvᵢ² = tr D for every ±1 probe: no spread at all."""
    diagonal = torch.diag(torch.tensor([3.0, -1.0, 0.25, 7.0], dtype=torch.float64))
    loss, params = _quadratic(diagonal)
    trace, stderr = hutchinson_trace(hessian_product(loss, params), params, 4, torch.Generator())
    assert trace == pytest.approx(9.25, abs=1e-12)
    assert stderr == pytest.approx(0.0, abs=1e-12)


def test_hutchinson_converges_to_the_trace_within_its_standard_error() -> None:
    loss, params = _quadratic(_symmetric([5.0, 2.0, 1.0, 0.5, -0.3, 0.1]))
    generator = torch.Generator().manual_seed(11)
    trace, stderr = hutchinson_trace(hessian_product(loss, params), params, 400, generator)
    assert stderr > 0
    assert abs(trace - 8.3) < 4 * stderr
    assert stderr < 0.5


def test_estimates_repeat_for_a_seed_and_count_their_products() -> None:
    matrix = _symmetric([5.0, 2.0, 1.0, 0.5, -0.3, 0.1])
    first = sharpness(*_quadratic(matrix), probes=7, seed=4)
    again = sharpness(*_quadratic(matrix), probes=7, seed=4)
    assert first == again
    assert first.products == 14


@pytest.mark.parametrize("count", [0, -1])
def test_estimators_refuse_fewer_than_one_vector(count: int) -> None:
    loss, params = _quadratic(_symmetric([1.0, 2.0]))
    product = hessian_product(loss, params)
    with pytest.raises(ValueError, match="at least 1"):
        top_eigenvalue(product, params, count, torch.Generator())
    with pytest.raises(ValueError, match="at least 1"):
        hutchinson_trace(product, params, count, torch.Generator())


# ------------------------------------------------------------- the cifar10 task's option
@pytest.mark.parametrize("value", [-1, 101, 2.5])
def test_flatness_probes_out_of_range_is_refused_by_name(value: object) -> None:
    with pytest.raises(ValidationError, match="flatness_probes"):
        CifarConfig(flatness_probes=value)


def _task(**overrides: object) -> cifar.CifarTask:
    if not ARCHIVE.exists():
        pytest.skip(f"CIFAR-10 subset not found at {ARCHIVE} (set PSGD_PLAYGROUND_CIFAR)")
    fields = {"train_size": 300, "validation_size": 100, "test_size": 100, "batch_size": 50}
    with cifar.local_data(ARCHIVE):
        return CifarConfig(**{**fields, **overrides}).build(CPU, 0)


@pytest.mark.slow  # Hessian-vector products of a real CNN: seconds on a CPU
def test_evaluation_reports_the_hessian_only_when_asked() -> None:
    assert "hessian_trace" not in _task().evaluate()
    metrics = _task(flatness_probes=2).evaluate()
    assert {"hessian_top_eigenvalue", "hessian_trace", "hessian_trace_stderr"} <= set(metrics)
    assert all(math.isfinite(metrics[k]) for k in metrics)
    assert metrics["hessian_trace_stderr"] > 0


@pytest.mark.slow  # Hessian-vector products of a real CNN: seconds on a CPU
def test_flatness_measures_the_model_as_evaluated_without_side_effects() -> None:
    """Eval mode (BatchNorm's running statistics untouched), the model left in its mode,
    no gradients left on the parameters, the same numbers from the same state."""
    task = _task(flatness_probes=1)
    task.next_batch()
    task.loss().backward()
    task.model.zero_grad(set_to_none=True)
    buffers = [b.clone() for b in task.model.buffers()]
    first = task.evaluate()
    assert task.model.training
    assert all(p.grad is None for p in task.params)
    assert all(torch.equal(a, b) for a, b in zip(buffers, task.model.buffers()))
    assert task.evaluate() == first


def test_flatness_uses_class_balanced_images_from_those_trained_on() -> None:
    task = _task(flatness_probes=1)
    assert task._flat_y.numel() == 200  # at most the 200 trained on (FLATNESS_IMAGES 250)
    assert torch.bincount(task._flat_y, minlength=10).tolist() == [20] * 10
    assert not _task()._flat_y.numel()


def test_memory_estimate_counts_the_double_backward_graph() -> None:
    plain = CifarConfig().memory_estimate().activations.bytes
    measured = CifarConfig(flatness_probes=5).memory_estimate().activations.bytes
    assert measured > plain
