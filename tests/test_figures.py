"""Unit tests of the pure figure builders, the UI's view helpers, presets and SSE parsing."""

from __future__ import annotations

import itertools
import math

import pytest

pytest.importorskip("plotly")

from pydantic import TypeAdapter

from playground import figures, views
from playground.client import parse_sse
from playground.presets import (
    PRESETS,
    comparison_spec,
    decode_setup,
    encode_setup,
    setup_of_spec,
)
from server.events import Event, Metrics, Started, StreamMessage

EVENT: TypeAdapter[Event] = TypeAdapter(Event)


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
    return [EVENT.validate_python(event) for event in events]  # as the client parses them


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
    assert fig.layout.xaxis.title.text == "PC 1 (each run's own basis)"  # an older run
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


def _job(job_id, optimizer_label, seed, **fields):
    """A job as the API answers it, with its identity."""
    optimizer = optimizer_label.split("#")[0]
    identity = {"optimizer": optimizer, "optimizer_label": optimizer_label, "seed": seed}
    return {"id": job_id, **identity, "label": f"{optimizer_label} seed={seed}", **fields}


def test_views_use_each_jobs_own_label_and_seed():
    done = {"final_loss": 0.123456, "best_loss": 0.1, "seconds": 1.0}
    comparison = {
        "spec": {"task": {"name": "rosenbrock"}, "seeds": [0, 1],
                 "optimizers": [{"name": "adam"}, {"name": "adam"}]},
        "job_ids": ["d", "a"],
        # the jobs' own fields, not their places, say which is which
        "jobs": [_job("d", "adam#2", 1, status="succeeded", summary=done),
                 _job("a", "adam", 0, status="queued", summary={})],
    }  # fmt: skip
    headers, rows = views.results_table(comparison)
    assert headers == views.RESULT_COLUMNS
    assert rows == [
        ["adam#2", 1, "succeeded", 0.1235, 0.1, "", "", "", 1.0, "", ""],
        ["adam", 0, "queued", "", "", "", "", "", "", "", ""],
    ]
    figs = views.build_figures(comparison, {"d": _run([1.0, 0.5]), "a": _run([2.0])})
    assert set(figs) == {"loss", "trajectory", "spectrum", "metrics"}
    assert {trace.name for trace in figs["loss"].data} == {"adam", "adam#2"}
    assert "plotly" in views.figures_html(figs)


def test_contour_answers_become_the_trajectory_background():
    answer = {"x": [0.0, 1.0], "y": [0.0, 2.0], "z": [[1.0, None], [0.5, 2.0]]}
    xs, ys, zs = views.contour_grid(answer)
    assert (xs, ys) == ([0.0, 1.0], [0.0, 2.0]) and zs[0][0] == 1.0 and math.isnan(zs[0][1])
    spec = {"task": {"name": "beale"}, "seeds": [0], "optimizers": [{"name": "sgd"}]}
    comparison = {"spec": spec, "job_ids": ["a"], "jobs": [_job("a", "sgd", 0)]}
    started = Started(total_steps=1, meta={"task": {"domain": [[0, 1], [0, 2]]}})
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


def test_parse_sse_gives_the_servers_event_models():
    first = '{"job_id": "j", "id": 3, "event": {"type": "metrics", "step": 1, "loss": null,'
    second = '"grad_norm": 2.0, "lr": 0.1, "step_time": 0.01, "elapsed": 0.01}}'
    lines = [": heartbeat", "", "id: 3", "event: metrics", f"data: {first}", f"data: {second}", ""]
    (message,) = parse_sse(iter(lines))
    assert isinstance(message, StreamMessage) and (message.job_id, message.id) == ("j", 3)
    assert isinstance(message.event, Metrics) and message.event.grad_norm == 2.0
    assert math.isnan(message.event.loss)  # the API's null for a diverged loss


# ---------------------------------------------------------------------- issue 17
def _lab(color: str) -> tuple[float, float, float]:
    """CIELAB (D65) of a #rrggbb colour, for perceptual distances."""
    rgb = [int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb)
    x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047
    y = 0.2126 * r + 0.7152 * g + 0.0722 * b
    z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883
    fx, fy, fz = (t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in (x, y, z))
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


def test_every_two_optimizers_get_clearly_different_colours():
    colors = figures.OPTIMIZER_COLORS

    def distance(a: str, b: str) -> float:  # CIE76 ΔE: about 2.3 is just noticeable
        return math.dist(_lab(colors[a]), _lab(colors[b]))

    closest = min((distance(a, b), a, b) for a, b in itertools.combinations(colors, 2))
    assert closest[0] >= 29, closest  # was 20 (psgd-kron, psgd-diag: two blues)
    # optimizers a preset puts side by side, and the two PSGD flagships, far apart (the
    # dense and Kronecker blues were 32 apart, adam and sgd 40)
    together = {tuple(s["optimizers"]) for s in PRESETS.values()} | {("psgd-dense", "psgd-kron")}
    for names in together:
        for a, b in itertools.combinations(names, 2):
            assert distance(a, b) >= 50, (a, b, distance(a, b))
    assert figures.optimizer_color("psgd-kron#2") == colors["psgd-kron"]  # stable per name


def test_spectrum_figure_titles_and_legend_do_not_overlap():
    runs = [
        ("psgd-dense", _run([1.0], spectra=[[0.1, 1.0]], inverse=[0.5, 0.01])),
        ("psgd-kron", _run([1.0], spectra=[[0.2, 2.0]])),
    ]
    fig = figures.spectrum_figure(runs)
    assert fig.layout.yaxis.title.text == "eigenvalue (log scale)"
    assert not fig.layout.yaxis2.title.text  # a second y title sat on the first panel
    legend = fig.layout.legend
    # below the plot in the container's own coordinates, with the margin made for it, so it
    # no longer covers the x-axis titles (it sat at paper y = -0.2)
    assert (legend.yref, legend.y, legend.yanchor) == ("container", 0, "bottom")
    assert fig.layout.margin.b >= 80
    shown = [t.name for t in fig.data if t.showlegend is not False]
    assert shown == ["psgd-dense", "psgd-kron"]  # one entry per optimizer
    bands = [t for t in fig.data if t.fill == "toself"]
    assert bands and all(t.mode == "lines" for t in bands)  # no stray vertex markers


def test_an_empty_trajectory_figure_says_so_without_axes():
    fig = figures.trajectory_figure([("adam", _run([1.0]))])
    assert fig.layout.xaxis.visible is False and fig.layout.yaxis.visible is False
    assert "once the runs report" in fig.layout.annotations[0].text
    assert fig.layout.uirevision == figures.UIREVISION


def test_metrics_figure_says_why_it_is_empty_once_runs_ended():
    saddle = {"name": "saddle", "dim": 2, "known_minima": []}
    quadratic = {"name": "quadratic", "dim": 20, "known_minima": []}
    runs = [("adam", _run([1.0, 0.5]))]
    waiting = figures.metrics_figure(runs, task=saddle)
    assert "appear here as runs report" in waiting.layout.annotations[0].text
    ended = figures.metrics_figure(runs, task=saddle, finished=True)
    text = ended.layout.annotations[0].text
    assert "Nothing beyond the loss" in text and "no minimum" in text
    assert "no evaluations yet" not in text
    text = figures.metrics_figure(runs, task=quadratic, finished=True).layout.annotations[0].text
    assert "20-D path" in text
    # a finished 2-D landscape with a minimum shows the distance it promises
    landscape = [("sgd", _run([1.0], points=[[0, 0], [3, 4]]))]
    task = {"name": "rosenbrock", "dim": 2, "known_minima": [[3, 0]]}
    fig = figures.metrics_figure(landscape, task=task, finished=True)
    assert list(fig.data[0].y) == [3.0, 4.0]


def _cifar_comparison():
    summary = {
        "final_loss": 1.2,
        "best_loss": 1.1,
        "seconds": 3.0,
        "final_eval": {"test_loss": 1.3, "test_accuracy": 0.41234, "train_accuracy": 0.5},
    }
    missing = (
        "CIFAR-10 not found in this server's data folders: run `psgd-playground data download`"
    )
    return {
        "id": "c1", "status": "finished",
        "spec": {"task": {"name": "cifar10"}, "seeds": [0],
                 "optimizers": [{"name": "psgd-kron"}, {"name": "sgd"}, {"name": "adamw"}]},
        "job_ids": ["a", "b", "c"],
        "jobs": [
            _job("a", "psgd-kron", 0, status="succeeded", message="", summary=summary),
            _job("b", "sgd", 0, status="failed", message=missing, summary={"seconds": 0.1}),
            _job("c", "adamw", 0, status="failed", message=missing, summary={}),
        ],
    }  # fmt: skip


def test_results_table_has_final_accuracy_and_each_jobs_message():
    headers, rows = views.results_table(_cifar_comparison())
    assert headers[:5] == ["optimizer", "seed", "status", "final loss", "best loss"]
    assert headers[5:8] == ["test accuracy", "train accuracy", "test loss"]  # accuracies first
    assert headers[-1] == "message"
    assert rows[0][5:8] == [0.4123, 0.5, 1.3]
    assert rows[1][5:8] == ["", "", ""]
    assert rows[1][-1].startswith("CIFAR-10 not found") and rows[0][-1] == ""


def test_problems_name_the_runs_and_their_message_once():
    lines = views.problems(_cifar_comparison())
    assert lines == [
        "failed (sgd, adamw): CIFAR-10 not found in this server's data folders: "
        "run `psgd-playground data download`"
    ]
    comparison = _cifar_comparison()
    comparison["spec"]["seeds"] = [0, 1]
    comparison["jobs"][0].update(status="diverged", message="x" * 500)
    first = views.problems(comparison, max_chars=50)[0]
    assert first.startswith("diverged (psgd-kron seed 0): xxx") and first.endswith("x…")


def test_finished_means_every_job_ended():
    assert views.finished({"status": "finished"}) and not views.finished({"status": "running"})
    assert views.finished({"jobs": [{"status": "failed"}, {"status": "succeeded"}]})
    assert not views.finished({"jobs": [{"status": "failed"}, {"status": "queued"}]})


def test_a_comparisons_setup_is_what_its_spec_was_made_from():
    for name, setup in PRESETS.items():
        full = {"device": "auto", "steps": None, "epochs": None, "target": None, **setup}
        assert setup_of_spec(comparison_spec(setup)) == full, name
