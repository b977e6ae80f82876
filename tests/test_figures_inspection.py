"""The trajectory figure's common PCA basis and the spectrum figure's fit-error strip."""

from __future__ import annotations

import pytest

pytest.importorskip("plotly")

from playground import figures
from server.runner import JobSpec, run_job


def _sketched(points: list[list[float]]) -> list[dict]:
    return [{"type": "trajectory", "step": 10 * i, "sketch": p} for i, p in enumerate(points)]


def _trace(fig, name: str):
    return next(t for t in fig.data if t.name == name)


def test_runs_share_one_pca_basis_and_a_shared_start_is_one_point() -> None:
    start = [1.0, 2.0, 3.0, 4.0]
    runs = [
        ("adam", _sketched([start, [2.0, 2.0, 3.0, 4.0], [3.0, 2.5, 3.0, 4.0]])),
        ("sgd", _sketched([start, [1.0, 1.0, 3.0, 4.0], [1.0, 0.0, 3.5, 4.0]])),
    ]
    fig = figures.trajectory_figure(runs)
    adam, sgd = _trace(fig, "adam start"), _trace(fig, "sgd start")
    assert (adam.x[0], adam.y[0]) == pytest.approx((sgd.x[0], sgd.y[0]), abs=1e-12)
    assert list(_trace(fig, "adam").customdata) == [0, 10, 20]
    x_title, y_title = fig.layout.xaxis.title.text, fig.layout.yaxis.title.text
    assert x_title.startswith("PC1 (common basis of all runs, ") and "% of variance" in x_title
    assert y_title.startswith("PC2 (") and y_title.endswith("% of variance)")
    assert "one PCA of all runs" in fig.layout.title.text


def test_the_common_basis_keeps_distances_within_the_plane_of_the_paths() -> None:
    """Paths in a 2-D plane of 5-D space come out isometric: the projection loses nothing."""
    paths = [
        [[0, 0, 1, 1, 1], [3, 0, 1, 1, 1], [3, 4, 1, 1, 1]],
        [[0, 0, 1, 1, 1], [0, -1, 1, 1, 1]],
    ]
    coords, shares = figures.common_pca(paths)
    assert sum(shares) == pytest.approx(1.0)
    first = coords[0]
    assert abs(complex(*first[2]) - complex(*first[0])) == pytest.approx(5.0)
    assert abs(complex(*coords[1][1]) - complex(*coords[1][0])) == pytest.approx(1.0)


def test_older_runs_without_sketches_draw_their_own_pca_and_say_so() -> None:
    old = [{"type": "trajectory", "step": 3, "path": [[0.0, 0.0], [1.0, 0.5], [2.0, 0.2]],
            "path_steps": [0, 1, 2]}]  # fmt: skip
    fig = figures.trajectory_figure([("adam", old)])
    assert list(_trace(fig, "adam").x) == [0.0, 1.0, 2.0]
    assert fig.layout.xaxis.title.text == "PC 1 (each run's own basis)"
    assert "not comparable" in fig.layout.title.text


def _events(optimizer: dict, seed: int) -> list[dict]:
    events: list = []
    spec = {"task": {"name": "rosenbrock", "dim": 100}, "optimizer": optimizer, "seed": seed,
            "steps": 30, "snapshot_every": 10, "device": "cpu"}  # fmt: skip
    run_job(JobSpec.model_validate(spec), lambda e: events.append(e.model_dump()))
    return events


def test_real_runs_from_one_start_begin_at_one_place_on_the_common_axes() -> None:
    """The issue's picture: per-run PCA put one start point at a different place per run."""
    runs = [("adam", _events({"name": "adam", "lr": 0.01}, 0)),
            ("sgd", _events({"name": "sgd", "lr": 1e-3}, 1))]  # fmt: skip
    fig = figures.trajectory_figure(runs)
    adam, sgd = _trace(fig, "adam start"), _trace(fig, "sgd start")
    assert (adam.x[0], adam.y[0]) == pytest.approx((sgd.x[0], sgd.y[0]), abs=1e-9)
    assert _trace(fig, "adam end").x[0] != pytest.approx(_trace(fig, "sgd end").x[0])


def _spectrum(step: int, fit_error: float | None) -> dict:
    return {"type": "spectrum", "step": step, "spectra": {"all": [0.01, 0.1]},
            "inverse_hessian": [0.001, 2.5], "fit_error": fit_error}  # fmt: skip


def test_the_spectrum_figure_shows_the_fit_error_over_steps_and_why_it_is_slow() -> None:
    runs = [
        ("psgd-dense", [_spectrum(0, None), _spectrum(10, 2.0), _spectrum(20, 1.5)]),
        ("adam", [{**_spectrum(10, None), "spectra": {}}]),
    ]
    fig = figures.spectrum_figure(runs)
    strip = _trace(fig, "psgd-dense: fit error of P vs |H|⁻¹")
    assert list(strip.x) == [10, 20] and list(strip.y) == [2.0, 1.5]
    assert strip.yaxis == "y3" and fig.layout.yaxis3.type != "log"
    assert not [t for t in fig.data if t.name == "adam: fit error of P vs |H|⁻¹"]
    notes = " ".join(a.text for a in fig.layout.annotations)
    assert "fits flat directions slowly" in notes and "max |log10 λ(P|H|)|" in notes


def test_without_fit_errors_the_spectrum_figure_has_no_strip() -> None:
    fig = figures.spectrum_figure([("psgd-dense", [_spectrum(10, None)])])
    assert "yaxis3" not in fig.layout.to_plotly_json()
    assert not any("fit error" in (t.name or "") for t in fig.data)
