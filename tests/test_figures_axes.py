"""The loss figure's x axes: step, work (evaluations) and seconds."""

from __future__ import annotations

import pytest

pytest.importorskip("plotly")

from playground import figures


def _run(points: list[tuple[int, float, int, int, float]]) -> list[dict]:
    """Metrics events from (step, loss, gradient evaluations, Hvps, seconds)."""
    return [
        {
            "type": "metrics",
            "step": step,
            "loss": loss,
            "elapsed": seconds,
            "function_evaluations": gradients,
            "gradient_evaluations": gradients,
            "hessian_vector_products": hvps,
        }
        for step, loss, gradients, hvps, seconds in points
    ]


def _mean(fig, label: str):
    return next(t for t in fig.data if t.name.startswith(label) and t.fill != "toself")


def test_seeds_are_compared_at_equal_work_not_at_equal_step() -> None:
    # two L-BFGS-like seeds whose steps cost different numbers of evaluations
    a = _run([(1, 2.0, 5, 0, 0.1), (2, 1.0, 10, 0, 0.2)])
    b = _run([(1, 4.0, 3, 0, 0.1), (2, 0.5, 12, 0, 0.3)])
    fig = figures.loss_figure([("lbfgs", a), ("lbfgs", b)], x_axis="evaluations")
    mean = _mean(fig, "lbfgs")
    # at 3 only b has started; at 5 and 10 b still sits at its 3-evaluation loss; at 12
    # a has ended (it never got that far) and only b counts
    assert list(mean.x) == [3, 5, 10, 12]
    assert list(mean.y) == [4.0, 3.0, 2.5, 0.5]
    assert fig.layout.xaxis.title.text == "gradient evaluations + Hessian-vector products"
    by_step = _mean(figures.loss_figure([("lbfgs", a), ("lbfgs", b)]), "lbfgs")
    assert list(by_step.x) == [1, 2] and list(by_step.y) == [3.0, 0.75]


def test_hessian_vector_products_count_as_work_and_seconds_use_elapsed() -> None:
    newton = _run([(1, 1.0, 1, 1, 0.5), (2, 0.1, 2, 2, 1.0)])
    work = _mean(figures.loss_figure([("psgd-dense", newton)], x_axis="evaluations"), "psgd")
    assert list(work.x) == [2, 4]
    calls = figures.loss_figure([("psgd-dense", newton)], x_axis="function_evaluations")
    assert list(_mean(calls, "psgd").x) == [1, 2]
    assert calls.layout.xaxis.title.text == "function evaluations"
    seconds = figures.loss_figure([("psgd-dense", newton)], x_axis="seconds")
    assert list(_mean(seconds, "psgd").x) == [0.5, 1.0]
    assert seconds.layout.xaxis.title.text == "seconds since step 1"


def test_runs_recorded_before_the_counters_are_left_off_work_axes() -> None:
    old = [{"type": "metrics", "step": 1, "loss": 1.0, "elapsed": 0.1}]
    new = _run([(1, 2.0, 1, 0, 0.1)])
    fig = figures.loss_figure([("adam", old), ("adam", new)], x_axis="evaluations")
    assert _mean(fig, "adam").name == "adam"  # one run on this axis, not "mean of 2"
    assert list(_mean(fig, "adam").y) == [2.0]
    assert "mean of 2" in _mean(figures.loss_figure([("adam", old), ("adam", new)]), "adam").name


def test_an_unknown_axis_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="x_axis must be one of"):
        figures.loss_figure([], x_axis="epochs")
