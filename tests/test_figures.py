"""Unit tests of the pure figure builders, the UI's view helpers, presets and SSE parsing."""

from __future__ import annotations

import math

import pytest

pytest.importorskip("plotly")

from playground import figures, views
from playground.client import parse_sse
from playground.presets import PRESETS, comparison_spec, decode_setup, encode_setup


def _run(losses, *, points=None, spectra=None, inverse=None, evals=None, path=None):
    events = [{"type": "started", "step": 0, "total_steps": len(losses), "meta": {}}]
    for step, loss in enumerate(losses, 1):
        events.append({"type": "metrics", "step": step, "loss": loss, "grad_norm": 1.0,
                       "lr": 0.1, "step_time": 0.01, "elapsed": step * 0.01})  # fmt: skip
    for step, point in enumerate(points or []):
        events.append({"type": "trajectory", "step": step, "point": point})
    if path:
        events.append({"type": "trajectory", "step": len(path), "path": path,
                       "path_steps": list(range(len(path)))})  # fmt: skip
    for step, values in enumerate(spectra or [], 1):
        events.append({"type": "spectrum", "step": step * 10, "spectra": {"all": values},
                       "inverse_hessian": inverse})  # fmt: skip
    for step, metrics in enumerate(evals or [], 1):
        events.append({"type": "eval", "step": step * 10, "epoch": step, "metrics": metrics})
    return events


def test_every_figure_keeps_zoom_with_a_fixed_uirevision():
    runs = [("adam", _run([1.0, 0.5], points=[[0, 0], [1, 1]]))]
    built = [
        figures.loss_figure(runs),
        figures.trajectory_figure(runs),
        figures.spectrum_figure(runs),
        figures.metrics_figure(runs),
        figures.empty_figure("nothing yet"),
    ]
    assert {fig.layout.uirevision for fig in built} == {figures.UIREVISION}


def test_loss_figure_mean_and_band_over_seeds_on_a_log_axis():
    runs = [("adam", _run([4.0, 2.0])), ("adam", _run([2.0, 1.0])), ("sgd", _run([3.0]))]
    fig = figures.loss_figure(runs)
    assert fig.layout.yaxis.type == "log"
    adam = next(t for t in fig.data if t.name.startswith("adam (mean"))
    assert list(adam.y) == [3.0, 1.5]
    band = next(t for t in fig.data if t.name == "adam min–max")
    assert list(band.y) == [4.0, 2.0, 1.0, 2.0]
    assert not [t for t in fig.data if t.name == "sgd min–max"]


def test_trajectory_over_contour_with_start_end_and_minima():
    runs = [("psgd-dense", _run([1.0], points=[[-1, 2], [0, 1], [1, 1]]))]
    contour = ([0.0, 1.0], [0.0, 1.0], [[0.0, 1.0], [2.0, 3.0]])
    task = {"domain": [[-2, 2], [-1, 3]], "known_minima": [[1.0, 1.0]]}
    fig = figures.trajectory_figure(runs, contour=contour, task=task)
    names = [t.name for t in fig.data]
    assert names[:2] == ["landscape", "known minima"]
    assert {"psgd-dense", "psgd-dense start", "psgd-dense end"} <= set(names)
    assert list(fig.layout.xaxis.range) == [-2, 2]


def test_trajectory_falls_back_to_the_pca_path_of_high_dimensional_runs():
    runs = [("adam", _run([1.0], path=[[0.0, 0.0], [1.0, 0.5], [2.0, 0.2]]))]
    fig = figures.trajectory_figure(runs, contour=([0], [0], [[0]]), task={"known_minima": [[1]]})
    assert fig.layout.xaxis.title.text == "PC 1"
    path = next(t for t in fig.data if t.name == "adam")
    assert list(path.x) == [0.0, 1.0, 2.0]
    assert "landscape" not in [t.name for t in fig.data]


def test_spectrum_figure_shows_p_over_time_beside_the_exact_inverse_hessian():
    runs = [
        ("psgd-dense", _run([1.0], spectra=[[0.1, 1.0], [0.2, 2.0, 0.5]], inverse=[0.5, 0.01])),
        ("adam", _run([1.0], spectra=[[]], inverse=[0.4, 0.02])),
    ]
    fig = figures.spectrum_figure(runs)
    names = [t.name for t in fig.data]
    median = fig.data[names.index("psgd-dense: P (median, band min–max)")]
    assert list(median.x) == [10, 20] and list(median.y) == [1.0, 0.5]
    latest = fig.data[names.index("psgd-dense: P at step 20")]
    assert list(latest.y) == [0.2, 0.5, 2.0]
    exact = [n for n in names if "|H|⁻¹ (exact)" in n]
    assert exact == ["psgd-dense: |H|⁻¹ (exact) at step 20", "adam: |H|⁻¹ (exact) at step 10"]
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"


def test_metrics_figure_eval_curves_and_landscape_distance():
    acc = "test_accuracy"
    runs = [("adam", _run([1.0], evals=[{acc: 0.2}, {acc: 0.4}])),
            ("adam", _run([1.0], evals=[{acc: 0.4}, {acc: 0.6}]))]  # fmt: skip
    fig = figures.metrics_figure(runs)
    assert [t.name for t in fig.data] == ["adam: test_accuracy"]
    assert list(fig.data[0].y) == pytest.approx([0.3, 0.5])
    landscape = [("sgd", _run([1.0], points=[[0, 0], [3, 4]]))]
    fig = figures.metrics_figure(landscape, task={"known_minima": [[0, 0], [3, 0]]})
    assert list(fig.data[0].y) == [pytest.approx(1e-12), 4.0]
    assert fig.layout.yaxis.type == "log"


def test_views_label_runs_and_fill_the_results_table():
    comparison = {
        "spec": {"task": {"name": "rosenbrock"}, "seeds": [0, 1],
                 "optimizers": [{"name": "adam"}, {"name": "adam"}]},
        "job_ids": ["a", "b", "c", "d"],
        "jobs": [{"id": "a", "status": "succeeded",
                  "summary": {"final_loss": 0.123456, "best_loss": 0.1, "seconds": 1.0}}],
    }  # fmt: skip
    assert views.run_labels(comparison) == {
        "a": ("adam", 0), "b": ("adam", 1), "c": ("adam#2", 0), "d": ("adam#2", 1),
    }  # fmt: skip
    assert views.results_rows(comparison) == [["adam", 0, "succeeded", 0.1235, 0.1, "", "", 1.0]]
    figs = views.build_figures(comparison, {"a": _run([1.0, 0.5])})
    assert set(figs) == {"loss", "trajectory", "spectrum", "metrics"}
    assert "plotly" in views.figures_html(figs)


def test_contour_answers_become_the_trajectory_background():
    answer = {"x": [0.0, 1.0], "y": [0.0, 2.0], "z": [[1.0, None], [0.5, 2.0]]}
    xs, ys, zs = views.contour_grid(answer)
    assert (xs, ys) == ([0.0, 1.0], [0.0, 2.0]) and zs[0][0] == 1.0 and math.isnan(zs[0][1])
    spec = {"task": {"name": "beale"}, "seeds": [0], "optimizers": [{"name": "sgd"}]}
    comparison = {"spec": spec, "job_ids": ["a"], "jobs": []}
    started = {"type": "started", "meta": {"task": {"domain": [[0, 1], [0, 2]]}}}
    events = {"a": [started, *_run([1.0], points=[[0.5, 0.5]])]}
    assert views.task_meta(events) == {"domain": [[0, 1], [0, 2]]}
    drawn = views.build_figures(comparison, events, (xs, ys, zs))["trajectory"]
    assert drawn.data[0].name == "landscape" and drawn.data[0].z[0][1] is None
    assert "landscape" not in [
        t.name for t in views.build_figures(comparison, events)["trajectory"].data
    ]


def test_presets_share_round_trip_and_spec():
    for name, setup in PRESETS.items():
        assert decode_setup(encode_setup(setup)) == setup, name
        spec = comparison_spec(setup)
        assert [o["name"] for o in spec["optimizers"]] == setup["optimizers"]
    spec = comparison_spec(PRESETS["Rosenbrock: PSGD vs Adam vs L-BFGS"])
    assert {"name": "adam", "lr": 0.05} in spec["optimizers"]
    with pytest.raises(ValueError):
        decode_setup("not-base64-json")


def test_parse_sse_skips_comments_and_joins_data_lines():
    lines = [": heartbeat", "", "id: 3", "event: metrics", 'data: {"id": 3,', 'data: "x": 1}', ""]
    assert list(parse_sse(iter(lines))) == [{"id": 3, "x": 1}]
