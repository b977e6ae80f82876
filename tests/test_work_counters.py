"""The work counters: evaluations per step for first-order, closure and Newton optimizers."""

from __future__ import annotations

import pytest
import torch

import psgd
from server.events import Metrics
from server.runner import JobSpec, run_job

COUNTS = ("function_evaluations", "gradient_evaluations", "hessian_vector_products")


def _metrics(spec: dict) -> tuple[list[Metrics], dict]:
    events: list = []
    status = run_job(JobSpec.model_validate({"device": "cpu", **spec}), events.append)
    assert status.status == "succeeded", status.message
    return [e for e in events if isinstance(e, Metrics)], status.summary


def _counts(event: Metrics) -> tuple[int | None, ...]:
    return tuple(getattr(event, key) for key in COUNTS)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_a_first_order_step_is_one_function_and_one_gradient_evaluation(name: str) -> None:
    metrics, summary = _metrics(
        {"task": {"name": "rosenbrock"}, "optimizer": {"name": name}, "steps": 7}
    )
    assert [_counts(m) for m in metrics] == [(k, k, 0) for k in range(1, 8)]
    assert summary["work"] == dict(zip(COUNTS, (7, 7, 0)))


def _manual_lbfgs_evaluations(spec: JobSpec, steps: int) -> list[int]:
    """Every step's closure calls of the same L-BFGS run, counted by hand."""
    torch.manual_seed(spec.seed)
    task = spec.task.build(torch.device("cpu"), spec.seed)
    opt = spec.optimizer.build(task.params, spec.seed)
    calls, per_step = 0, []

    def closure() -> torch.Tensor:
        nonlocal calls
        calls += 1
        opt.zero_grad()
        loss = task.loss()
        loss.backward()
        return loss

    for _ in range(steps):
        opt.step(closure)
        per_step.append(calls)
    return per_step


def test_lbfgs_counts_every_inner_evaluation_of_a_step() -> None:
    raw = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "lbfgs"}, "steps": 3}
    metrics, summary = _metrics(raw)
    expected = _manual_lbfgs_evaluations(JobSpec.model_validate({"device": "cpu", **raw}), 3)
    assert [m.function_evaluations for m in metrics] == expected
    assert [m.gradient_evaluations for m in metrics] == expected
    assert all(m.hessian_vector_products == 0 for m in metrics)
    per_step = [b - a for a, b in zip([0, *expected], expected)]
    assert per_step[0] > 1  # the inner iterations count, not the step
    assert max(per_step) <= 25  # torch's max_eval for max_iter 20: 20 × 5/4
    assert summary["work"]["function_evaluations"] == expected[-1]


@pytest.mark.parametrize(
    ("hvp", "per_step"),
    [("exact", (1, 1, 1)), ("finite_difference", (2, 2, 0))],
)
def test_newton_fitting_psgd_counts_its_hessian_vector_products(
    hvp: str, per_step: tuple[int, int, int]
) -> None:
    optimizer = {
        "name": "psgd-dense",
        "fitting": "newton",
        "hessian_vector_product": hvp,
        "preconditioner_update_probability": 1.0,
    }
    metrics, _ = _metrics({"task": {"name": "rosenbrock"}, "optimizer": optimizer, "steps": 5})
    assert [_counts(m) for m in metrics] == [tuple(k * n for n in per_step) for k in range(1, 6)]


def _newton_dense(probability: float) -> tuple[psgd.Dense, torch.Tensor]:
    x = torch.tensor([-1.0, 1.5], requires_grad=True)
    opt = psgd.Dense(
        [x],
        lr=0.1,
        fitting="newton",
        preconditioner_update_probability=probability,
        preconditioner_init_scale=1.0,
        seed=3,
    )
    return opt, x


def _rosenbrock(x: torch.Tensor) -> torch.Tensor:
    return 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2


def test_a_newton_step_that_does_not_fit_makes_no_hessian_vector_product() -> None:
    opt, x = _newton_dense(probability=0.5)
    fits = 0
    for _ in range(40):
        updates = int(opt.state[x].get("updates", torch.tensor(0)))
        opt.step(lambda: _rosenbrock(x))
        fits += int(opt.state[x]["updates"]) - updates
    assert 0 < fits < 40
    assert opt.work == {
        "function_evaluations": 40,
        "gradient_evaluations": 40,
        "hessian_vector_products": fits,
    }


def test_work_survives_a_state_dict_round_trip_and_old_state_loads_as_zero() -> None:
    opt, x = _newton_dense(probability=1.0)
    for _ in range(3):
        opt.step(lambda: _rosenbrock(x))
    saved = opt.state_dict()
    fresh, y = _newton_dense(probability=1.0)
    fresh.load_state_dict(saved)
    assert fresh.work == {key: 3 for key in COUNTS}
    fresh.step(lambda: _rosenbrock(y))
    assert fresh.work["hessian_vector_products"] == 4
    del saved["psgd"]["work"]  # a state dict saved before the counters existed
    older, _ = _newton_dense(probability=1.0)
    older.load_state_dict(saved)
    assert older.work == dict.fromkeys(COUNTS, 0)


def test_whitening_counts_a_closure_but_not_the_callers_own_backward() -> None:
    x = torch.tensor([-1.0, 1.5], requires_grad=True)
    opt = psgd.Dense([x], lr=0.01, seed=0)
    _rosenbrock(x).backward()
    opt.step()
    assert opt.work == dict.fromkeys(COUNTS, 0)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _rosenbrock(x)
        loss.backward()
        return loss

    opt.step(closure)
    assert opt.work == {
        "function_evaluations": 1,
        "gradient_evaluations": 1,
        "hessian_vector_products": 0,
    }


def test_seconds_to_target_and_solve_come_with_the_work_it_took() -> None:
    metrics, summary = _metrics(
        {
            "task": {"name": "rosenbrock"},
            "optimizer": {"name": "lbfgs"},
            "steps": 30,
            "target": 1e-3,
        }
    )
    at = next(i for i, m in enumerate(metrics) if m.step == summary["target_step"])
    assert summary["target_work"] == dict(zip(COUNTS, _counts(metrics[at])))
    before = metrics[at - 1].elapsed if at else 0.0
    assert before <= summary["target_seconds"] <= metrics[at].elapsed
    solved = next(m for m in metrics if m.step == summary["solved_step"])
    assert summary["solved_work"] == dict(zip(COUNTS, _counts(solved)))
    assert summary["solved_seconds"] is not None
