"""Plotly figures built from job events: pure functions, no I/O.

Every builder takes events as the runner emits them (`server.events` models) or as their
JSON dumps (dicts, e.g. read back from an SSE stream or an `events/*.jsonl` file) and
returns a `plotly.graph_objects.Figure`. The CLI writes them to HTML/PNG; the UI shows them.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

#: Stable colours per optimizer, one qualitative palette: every pair differs clearly (CIELAB
#: ΔE ≥ 29, tests/test_figures.py), PSGD variants included, and none is grey on the contour
#: map or near the gold ★ of the minima except where two rarely meet.
OPTIMIZER_COLORS: dict[str, str] = {
    "psgd-dense": "#0072b2",  # blue
    "psgd-kron": "#009e73",  # bluish green
    "psgd-lra": "#cc79a7",  # reddish purple
    "psgd-xmat": "#00ced1",  # turquoise
    "psgd-diag": "#1b2a6b",  # navy
    "sgd": "#e41a1c",  # red
    "sgd-nesterov": "#8e44ad",  # purple
    "adam": "#e69f00",  # orange
    "adamw": "#a65628",  # brown
    "rmsprop": "#66a61e",  # green
    "adagrad": "#7f7f7f",  # grey
    "lbfgs": "#1a1a1a",  # near black
    "muon": "#f0027f",  # magenta
    "adafactor": "#bcbd22",  # olive
}
_FALLBACK = ("#6a3d9a", "#b15928", "#fb6a4a", "#2b8cbe", "#31a354", "#636363")
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")

#: Fixed `layout.uirevision` of every figure: zoom and hidden traces survive live updates.
UIREVISION = "psgd-playground"

EventLike = Any  # a `server.events` model or its `model_dump()` dict
Runs = Iterable[tuple[str, Sequence[EventLike]]]


def _get(event: EventLike, key: str) -> Any:
    return event.get(key) if isinstance(event, Mapping) else getattr(event, key, None)


def _of_type(events: Iterable[EventLike], kind: str) -> list[EventLike]:
    return [e for e in events if _get(e, "type") == kind]


def base_name(label: str) -> str:
    """The optimizer name of a run label: "adam#2" → "adam"."""
    return label.split("#", 1)[0]


def optimizer_color(label: str) -> str:
    """The colour of an optimizer (or run label), the same in every figure."""
    name = base_name(label)
    if name in OPTIMIZER_COLORS:
        return OPTIMIZER_COLORS[name]
    return _FALLBACK[sum(map(ord, name)) % len(_FALLBACK)]


def _dash(label: str) -> str:
    suffix = label.split("#", 1)[1] if "#" in label else "1"
    index = int(suffix) - 1 if suffix.isdigit() else 0
    return _DASHES[index % len(_DASHES)]


def _rgba(color: str, alpha: float) -> str:
    r, g, b = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _band(steps: list, lows: list, highs: list, color: str, label: str, what: str) -> go.Scatter:
    """A filled band between two curves, grouped with (and hidden behind) its line."""
    return go.Scatter(
        x=[*steps, *reversed(steps)],
        y=[*highs, *reversed(lows)],
        mode="lines",  # no vertex markers (plotly adds them to short traces by default)
        fill="toself",
        fillcolor=_rgba(color, 0.18),
        line={"width": 0},
        hoverinfo="skip",
        legendgroup=label,
        showlegend=False,
        name=f"{label} {what}",
    )


def _group(runs: Runs) -> dict[str, list[Sequence[EventLike]]]:
    groups: dict[str, list[Sequence[EventLike]]] = {}
    for label, events in runs:
        groups.setdefault(label, []).append(events)
    return groups


def _decimate(steps: list, max_points: int) -> list:
    if len(steps) <= max_points:
        return steps
    stride = math.ceil(len(steps) / max_points)
    kept = steps[::stride]
    return kept if kept[-1] == steps[-1] else [*kept, steps[-1]]


#: the loss figure's x axes: key → (title, the value of a metrics event on that axis).
#: "evaluations" counts gradients and Hessian-vector products alike, the work of a step
#: whatever the optimizer (an L-BFGS step evaluates up to `max_iter` gradients; a Newton
#: PSGD step one gradient and one Hvp); runs recorded before the counters have no work axes.
X_AXES: dict[str, tuple[str, Any]] = {
    "step": ("step", lambda m: _get(m, "step")),
    "evaluations": (
        "gradient evaluations + Hessian-vector products",
        lambda m: _sum_or_none(_get(m, "gradient_evaluations"), _get(m, "hessian_vector_products")),
    ),
    "function_evaluations": ("function evaluations", lambda m: _get(m, "function_evaluations")),
    "seconds": ("seconds since step 1", lambda m: _get(m, "elapsed")),
}


def _sum_or_none(*values: Any) -> float | None:
    return None if any(v is None for v in values) else sum(values)


def _curve(events: Sequence[EventLike], x_of: Any) -> tuple[list, list[float]]:
    """A run's (x, loss) points with finite losses, x non-decreasing (as the runner sends)."""
    xs, losses = [], []
    for m in _of_type(events, "metrics"):
        x, loss = x_of(m), _get(m, "loss")
        if x is not None and loss is not None and math.isfinite(loss):
            xs.append(x)
            losses.append(float(loss))
    return xs, losses


def _at(curve: tuple[list, list[float]], x: float) -> float | None:
    """The run's loss at `x`: its last point at or before it; None outside the run."""
    xs, losses = curve
    if not xs or x < xs[0] or x > xs[-1]:
        return None
    return losses[bisect.bisect_right(xs, x) - 1]


def loss_figure(
    runs: Runs, *, title: str | None = None, max_points: int = 2000, x_axis: str = "step"
) -> go.Figure:
    """Training loss vs `x_axis` (a key of `X_AXES`): per label a mean line over its runs
    (seeds) and a min–max band.

    `runs` is an iterable of (label, events) with one entry per run; runs sharing a label
    are aggregated at each x any of them reached, each contributing its loss at its last
    point at or before x (a run that stopped early, e.g. diverged, only counts up to its
    last point): on the step axis that is step by step; on work or time axes it compares
    seeds at equal work or time. The y axis is logarithmic unless some loss is negative;
    exact zeros are drawn at the smallest positive loss. Long runs are decimated to
    `max_points` for drawing.
    """
    if x_axis not in X_AXES:
        raise ValueError(f"x_axis must be one of {sorted(X_AXES)}, got {x_axis!r}")
    x_title, x_of = X_AXES[x_axis]
    series: dict[str, tuple[list, list[float], list[float], list[float], int]] = {}
    lowest_positive, any_negative = math.inf, False
    for label, group in _group(runs).items():
        curves = [_curve(events, x_of) for events in group]
        grid = _decimate(sorted({x for xs, _ in curves for x in xs}), max_points)
        xs, values = [], []
        for x in grid:
            at_x = [v for curve in curves if (v := _at(curve, x)) is not None]
            if at_x:
                xs.append(x)
                values.append(at_x)
        for vs in values:
            positive = [v for v in vs if v > 0]
            lowest_positive = min([lowest_positive, *positive])
            any_negative = any_negative or any(v < 0 for v in vs)
        means = [sum(vs) / len(vs) for vs in values]
        series[label] = (
            xs,
            means,
            [min(vs) for vs in values],
            [max(vs) for vs in values],
            sum(1 for xs, _ in curves if xs),  # runs on this axis (older ones lack work)
        )

    log_y = not any_negative and math.isfinite(lowest_positive)
    floor = lowest_positive if log_y else -math.inf

    def clip(values: list[float]) -> list[float]:
        return [max(v, floor) for v in values] if log_y else values

    fig = go.Figure()
    for label, (steps, means, lows, highs, n) in series.items():
        color = optimizer_color(label)
        if n > 1 and steps:
            fig.add_trace(_band(steps, clip(lows), clip(highs), color, label, "min–max"))
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=clip(means),
                mode="lines",
                line={"color": color, "width": 2, "dash": _dash(label)},
                legendgroup=label,
                name=f"{label} (mean of {n} seeds)" if n > 1 else label,
                hovertemplate=f"{label}<br>{x_title} %{{x:.4g}}<br>loss %{{y:.4g}}<extra></extra>",
            )
        )
    y_title = "training loss (log scale)" if log_y else "training loss (linear scale)"
    if n_runs := sum(n for *_, n in series.values()):
        band = " · band: min–max over seeds" if any(n > 1 for *_, n in series.values()) else ""
        subtitle = f"{n_runs} runs{band}"
    else:
        subtitle = "no metrics yet"
    fig.update_layout(
        title={"text": f"{title or 'Loss'}<br><sup>{subtitle}</sup>"},
        xaxis_title=x_title,
        yaxis_title=y_title,
        yaxis_type="log" if log_y else "linear",
        yaxis_exponentformat="power",
        template="plotly_white",
        hovermode="x unified",
        legend={"title": {"text": "optimizer"}},
        uirevision=UIREVISION,
    )
    return fig


def path_points(events: Sequence[EventLike]) -> list[list[float]]:
    """The 2-D positions of a run's trajectory events, in order."""
    return [list(p) for e in _of_type(events, "trajectory") if (p := _get(e, "point")) is not None]


def pca_path(events: Sequence[EventLike]) -> tuple[list[list[float]], list[int]]:
    """The latest per-run PCA projection of an older high-dimensional run's path (runs
    before the common basis sent it), and its steps."""
    for e in reversed(_of_type(events, "trajectory")):
        path = _get(e, "path")
        if path:
            steps = _get(e, "path_steps") or list(range(len(path)))
            return [list(p[:2]) + [0.0] * (2 - len(p[:2])) for p in path], list(steps)
    return [], []


def sketch_path(events: Sequence[EventLike]) -> tuple[list[list[float]], list[int]]:
    """A high-dimensional run's parameters at each snapshot, in the runner's shared random
    projection (the trajectory events' `sketch`), and their steps."""
    kept = [e for e in _of_type(events, "trajectory") if _get(e, "sketch")]
    return [list(_get(e, "sketch")) for e in kept], [int(_get(e, "step")) for e in kept]


#: points per run that enter the common PCA and the figure (evenly thinned beyond)
PCA_POINTS = 1000


def common_pca(
    paths: Sequence[Sequence[Sequence[float]]],
) -> tuple[list[list[list[float]]], list[float]]:
    """Every path on the two principal axes of all paths' points together, and each axis's
    share of their variance.

    One basis for all runs, so that equal points (e.g. a shared start) land at one place.
    Each axis is oriented so that the runs move towards its positive side on the whole
    (their end points minus their start points sum to ≥ 0 along it).
    """
    import torch  # lazily: only high-dimensional runs need it

    sizes = [len(path) for path in paths]
    if not sum(sizes):
        return [[] for _ in paths], [0.0, 0.0]
    points = torch.tensor([p for path in paths for p in path], dtype=torch.float64)
    centred = points - points.mean(dim=0)
    eigenvalues, eigenvectors = torch.linalg.eigh(centred.T @ centred)
    variances = eigenvalues.flip(0).clamp(min=0)
    axes = eigenvectors.flip(1)[:, :2]
    coords = centred @ axes
    if coords.shape[1] < 2:  # a one-parameter task: the second axis is flat
        coords = torch.nn.functional.pad(coords, (0, 2 - coords.shape[1]))
    parts = list(torch.split(coords, sizes))
    moves = sum(
        (part[-1] - part[0] for part in parts if len(part)), torch.zeros(2, dtype=torch.float64)
    )
    signs = torch.where(moves < 0, -1.0, 1.0)
    total = float(variances.sum())
    shares = [float(v) / total if total > 0 else 0.0 for v in variances[:2]]
    return [(part * signs).tolist() for part in parts], [*shares, 0.0][:2]


def _projected_paths(
    runs: Sequence[tuple[str, Sequence[EventLike]]],
) -> tuple[list[tuple[list[list[float]], list[int]]], tuple[str, str], str] | None:
    """High-dimensional runs' paths in 2-D, the axis titles and a note for the subtitle, or
    None when no run has a path. On one PCA basis of all runs' sketched points; runs
    recorded before the common basis draw their own per-run PCA, and the figure says so."""
    sketched = [sketch_path(events) for _, events in runs]
    if any(points for points, _ in sketched):
        thinned = []
        for points, steps in sketched:
            kept = _decimate(list(range(len(points))), PCA_POINTS) if points else []
            thinned.append(([points[i] for i in kept], [steps[i] for i in kept]))
        coords, shares = common_pca([points for points, _ in thinned])
        titles = (  # the y title short: a flat plot's y axis is short too
            f"PC1 (common basis of all runs, {100 * shares[0]:.0f} % of variance)",
            f"PC2 ({100 * shares[1]:.0f} % of variance)",
        )
        paths = [(xy, steps) for xy, (_, steps) in zip(coords, thinned)]
        older = sum(not xy and bool(pca_path(events)[0]) for xy, (_, events) in zip(coords, runs))
        note = "one PCA of all runs' parameter paths"
        return paths, titles, f"{note} ({older} older runs not drawn)" if older else note
    own = [pca_path(events) for _, events in runs]
    if not any(points for points, _ in own):
        return None
    titles = ("PC 1 (each run's own basis)", "PC 2 (each run's own basis)")
    return own, titles, "older runs: each path on its own PCA basis, not comparable"


def trajectory_figure(
    runs: Runs,
    *,
    contour: tuple[Sequence[float], Sequence[Sequence[float]] | Sequence[float], Any] | None = None,
    task: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Paths of 2-D landscape runs, over the landscape's contour map when given; on
    high-dimensional tasks, the runs' parameter paths on one PCA basis (`common_pca`).

    `runs`: (label, events) per path drawn (e.g. the first seed of each optimizer).
    `contour`: (xs, ys, zs) with zs[i][j] the objective at (xs[j], ys[i]); it is drawn as
    log10(1 + f − min f) so valleys stay visible. `task`: the task facts of the Started
    event (`domain`, `known_minima`) for the axis ranges and the ★ markers.
    """
    fig = go.Figure()
    task = task or {}
    runs = list(runs)
    projected = None if any(path_points(e) for _, e in runs) else _projected_paths(runs)
    if projected is not None:
        contour, task = None, {}
    if contour is not None:
        xs, ys, zs = contour
        flat = [float(v) for row in zs for v in row if math.isfinite(v)]
        low = min(flat) if flat else 0.0
        shown = [
            [math.log10(1.0 + v - low) if math.isfinite(v) else None for v in row] for row in zs
        ]
        fig.add_trace(
            go.Contour(
                x=list(xs),
                y=list(ys),
                z=shown,
                colorscale="Greys",
                reversescale=True,
                ncontours=30,
                opacity=0.75,
                line={"width": 0.5},
                colorbar={"title": {"text": "log10(1 + f − min f)"}},
                hoverinfo="skip",
                name="landscape",
            )
        )
    minima = task.get("known_minima") or []
    if minima:
        fig.add_trace(
            go.Scatter(
                x=[m[0] for m in minima if len(m) >= 2],
                y=[m[1] for m in minima if len(m) >= 2],
                mode="markers",
                marker={"symbol": "star", "size": 14, "color": "gold", "line": {"width": 1}},
                name="known minima",
                hovertemplate="minimum (%{x:.4g}, %{y:.4g})<extra></extra>",
            )
        )
    for index, (label, events) in enumerate(runs):
        if projected is not None:
            points, steps = projected[0][index]
        else:
            points = path_points(events)
            steps = [_get(e, "step") for e in _of_type(events, "trajectory") if _get(e, "point")]
        if not points:
            continue
        color = optimizer_color(label)
        xs_, ys_ = [p[0] for p in points], [p[1] for p in points]
        fig.add_trace(
            go.Scatter(
                x=xs_,
                y=ys_,
                mode="lines+markers",
                marker={"size": 3, "color": color},
                line={"color": color, "width": 2, "dash": _dash(label)},
                name=label,
                legendgroup=label,
                customdata=steps,
                hovertemplate=f"{label}<br>step %{{customdata}}<br>"
                "(%{x:.4g}, %{y:.4g})<extra></extra>",
            )
        )
        for index, symbol, what in ((0, "circle", "start"), (-1, "x", "end")):
            fig.add_trace(
                go.Scatter(
                    x=[xs_[index]],
                    y=[ys_[index]],
                    mode="markers",
                    marker={"symbol": symbol, "size": 11, "color": color, "line": {"width": 1}},
                    legendgroup=label,
                    showlegend=False,
                    name=f"{label} {what}",
                    hovertemplate=f"{label} {what}<br>(%{{x:.4g}}, %{{y:.4g}})<extra></extra>",
                )
            )
    if not fig.data:  # no map and no path yet: axes without data draw jumbled ticks
        return empty_figure(
            "Paths appear here once the runs report their positions",
            title=title or "Trajectories",
        )
    what = f"{projected[2]} · " if projected is not None else ""
    axis_titles = projected[1] if projected is not None else ("x", "y")
    layout: dict[str, Any] = {
        "title": {
            "text": f"{title or 'Trajectories'}<br><sup>{what}● start · ✕ end · ★ minimum</sup>"
        },
        "xaxis_title": axis_titles[0],
        "yaxis_title": axis_titles[1],
        "template": "plotly_white",
        "uirevision": UIREVISION,
        "xaxis": {"constrain": "domain"},
        "yaxis": {"scaleanchor": "x", "scaleratio": 1, "constrain": "domain"},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
    }
    domain = task.get("domain")
    if domain:
        layout["xaxis"]["range"], layout["yaxis"]["range"] = list(domain[0]), list(domain[1])
    fig.update_layout(**layout)
    return fig


# ---------------------------------------------------------------------- UI figures
def empty_figure(message: str, *, title: str = "") -> go.Figure:
    """A blank figure that says what it will show (the empty state of a plot)."""
    fig = go.Figure()
    fig.update_layout(
        title={"text": title},
        template="plotly_white",
        xaxis={"visible": False},
        yaxis={"visible": False},
        annotations=[
            {
                "text": message,
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "font": {"size": 14, "color": "#666"},
            }
        ],
        uirevision=UIREVISION,
    )
    return fig


def _eigenvalues(event: EventLike) -> list[float]:
    values = [v for vs in (_get(event, "spectra") or {}).values() for v in vs]
    return sorted(float(v) for v in values if v is not None and math.isfinite(v) and v > 0)


def legend_key(label: str, color: str, *, text: str | None = None) -> go.Scatter:
    """A legend-only entry for a label's group: one short entry per optimizer, which shows
    or hides every trace of the group (their own names stay for hover and tests)."""
    return go.Scatter(
        x=[None],
        y=[None],
        mode="lines+markers",
        line={"color": color, "width": 2},
        marker={"color": color, "size": 6},
        legendgroup=label,
        name=text or label,
        hoverinfo="skip",
    )


def _legend_below(fig: go.Figure, entries: int, *, axis_title_px: int = 60) -> None:
    """A horizontal legend at the bottom of the figure, under the x-axis titles (not over
    them): anchored to the container, with the bottom margin sized for its rows."""
    rows = max(1, math.ceil(entries / 2))  # two entries fit a row of half a page
    fig.update_layout(
        legend={
            "orientation": "h",
            "yref": "container",
            "y": 0,
            "yanchor": "bottom",
            "x": 0,
            "xanchor": "left",
        },
        margin={"b": axis_title_px + 22 * rows},
    )


def spectrum_figure(runs: Runs, *, title: str | None = None) -> go.Figure:
    """Preconditioner spectra: left, the range (min–max band) and median of P's eigenvalues
    vs step per run; right, the latest snapshot's sorted eigenvalues, beside the exact |H|⁻¹
    eigenvalues at that run's point when the task reports them (small problems).

    `runs`: (label, events) per run drawn (e.g. the first seed of each optimizer). The
    legend has one entry per label; the subplot titles say which mark is which. Below, a
    strip of P's fit error against |H|⁻¹ when runs report it (`add_fit_error`).
    """
    from plotly.subplots import make_subplots

    runs = list(runs)  # read twice: here and by `add_fit_error`
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("P over steps", "latest P ● · exact |H|⁻¹ ◇"),
        horizontal_spacing=0.16,  # room for the right panel's tick labels
    )
    fig.update_annotations(font_size=12)  # the subplot titles: side by side in half a page
    drawn = estimates = keys = 0
    for label, events in runs:
        color = optimizer_color(label)
        snapshots = [
            (int(_get(e, "step")), _eigenvalues(e), e) for e in _of_type(events, "spectrum")
        ]
        with_p = [(s, vs) for s, vs, _ in snapshots if vs]
        # Large LRA / Kronecker spectra are bounded estimates (README, Inspection).
        estimated = any(_get(e, "estimated") for _, vs, e in snapshots if vs)
        mark = " (estimate)" if estimated else ""
        estimates += estimated
        exact = [
            (s, sorted(v for v in (_get(e, "inverse_hessian") or []) if v and v > 0))
            for s, _, e in snapshots
        ]
        exact = [(s, vs) for s, vs in exact if vs]
        if with_p or exact:
            fig.add_trace(legend_key(label, color, text=f"{label}{mark}"), row=1, col=1)
            keys += 1
        hidden = {"legendgroup": label, "showlegend": False}
        if with_p:
            steps = [s for s, _ in with_p]
            lows, highs = [vs[0] for _, vs in with_p], [vs[-1] for _, vs in with_p]
            fig.add_trace(_band(steps, lows, highs, color, label, "P range"), row=1, col=1)
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=[vs[len(vs) // 2] for _, vs in with_p],
                    mode="lines",
                    line={"color": color, "width": 2},
                    name=f"{label}: P{mark} (median, band min–max)",
                    hovertemplate=f"{label}<br>step %{{x}}<br>λ %{{y:.3g}}<extra></extra>",
                    **hidden,
                ),
                row=1,
                col=1,
            )
            latest = with_p[-1][1]
            fig.add_trace(
                go.Scatter(
                    x=list(range(1, len(latest) + 1)),
                    y=latest,
                    mode="lines+markers",
                    marker={"color": color, "size": 6},
                    line={"color": color},
                    name=f"{label}: P{mark} at step {with_p[-1][0]}",
                    **hidden,
                ),
                row=1,
                col=2,
            )
            drawn += 1
        if exact:
            step, values = exact[-1]
            fig.add_trace(
                go.Scatter(
                    x=list(range(1, len(values) + 1)),
                    y=values,
                    mode="lines+markers",
                    marker={"color": color, "symbol": "diamond-open", "size": 9},
                    line={"color": color, "dash": "dot"},
                    name=f"{label}: |H|⁻¹ (exact) at step {step}",
                    **hidden,
                ),
                row=1,
                col=2,
            )
            drawn += 1
    subtitle = "log scales · line: median, band: min–max" if drawn else "no spectrum yet"
    if estimates:
        subtitle += "<br>(estimate): bounds within a few ranks, extremes exact"
    elif not drawn:
        subtitle += " (baselines have no P)"
    fig.update_layout(
        title={"text": f"{title or 'Preconditioner spectrum'}<br><sup>{subtitle}</sup>"},
        template="plotly_white",
        margin={"t": 110 if estimates else 90},
        uirevision=UIREVISION,
    )
    _legend_below(fig, keys)
    # one y title: both panels show eigenvalues, and a second title would sit on the first
    fig.update_yaxes(type="log", exponentformat="power")
    fig.update_yaxes(title_text="eigenvalue (log scale)", row=1, col=1)
    fig.update_xaxes(title_text="step", row=1, col=1)
    fig.update_xaxes(title_text="eigenvalue index (sorted)", row=1, col=2)
    return add_fit_error(fig, runs)


def fit_errors(events: Sequence[EventLike]) -> tuple[list[int], list[float]]:
    """A run's fit error of P against the exact |H|⁻¹ (the spectrum events' `fit_error`:
    decades off in the worst direction) and the steps it was measured at."""
    kept = [
        e
        for e in _of_type(events, "spectrum")
        if isinstance(_get(e, "fit_error"), (int, float)) and math.isfinite(_get(e, "fit_error"))
    ]
    return [int(_get(e, "step")) for e in kept], [float(_get(e, "fit_error")) for e in kept]


#: why P's large eigenvalues trail |H|⁻¹'s for long (README, Inspection), under the strip
SLOW_FIT_NOTE = (
    "PSGD fits flat directions slowly: each step on Q is scaled by the stiffest curvature, so"
    "<br>P's largest eigenvalues move by tiny relative steps (noisy ones at a large"
    " preconditioner lr)"
)


def add_fit_error(fig: go.Figure, runs: Runs) -> go.Figure:
    """Add a strip under the spectrum panels: each run's fit error of P against |H|⁻¹ over
    the steps (small problems with an exact Hessian), and why it falls slowly. Returns
    `fig` unchanged when no run reports a fit error."""
    series = [(label, *fit_errors(events)) for label, events in runs]
    series = [(label, steps, errors) for label, steps, errors in series if steps]
    if not series:
        return fig
    top, strip = 0.5, 0.24
    fig.update_layout(
        height=max(fig.layout.height or 0, 640),
        yaxis={"domain": [top, 1]},
        yaxis2={"domain": [top, 1]},
        xaxis3={"domain": [0, 1], "anchor": "y3", "title": {"text": "step"}},
        yaxis3={
            "domain": [0, strip],
            "anchor": "x3",
            "rangemode": "tozero",
            "title": {"text": "decades off"},
        },
    )
    fig.add_annotation(
        text="fit error of P vs |H|⁻¹: max |log10 λ(P|H|)|, worst direction (0 = exact)"
        f"<br><span style='font-size:10px'>{SLOW_FIT_NOTE}</span>",
        xref="paper",
        yref="paper",
        x=0,
        y=strip + 0.02,
        xanchor="left",
        yanchor="bottom",
        align="left",
        showarrow=False,
        font={"size": 12},
    )
    for label, steps, errors in series:
        color = optimizer_color(label)
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=errors,
                xaxis="x3",
                yaxis="y3",
                mode="lines+markers",
                marker={"color": color, "size": 4},
                line={"color": color, "width": 2},
                legendgroup=label,
                showlegend=False,
                name=f"{label}: fit error of P vs |H|⁻¹",
                hovertemplate=f"{label}<br>step %{{x}}<br>%{{y:.3g}} decades<extra></extra>",
            )
        )
    return fig


def _distance_to_minimum(events: Sequence[EventLike], minima: Sequence[Sequence[float]]):
    steps, distances = [], []
    for e in _of_type(events, "trajectory"):
        p = _get(e, "point")
        if p is None:
            continue
        steps.append(int(_get(e, "step")))
        distances.append(min(math.dist(p[:2], m[:2]) for m in minima))
    return steps, distances


def metrics_figure(
    runs: Runs,
    *,
    task: Mapping[str, Any] | None = None,
    title: str | None = None,
    finished: bool = False,
) -> go.Figure:
    """Task metrics vs step: evaluation metrics (accuracy, solved, …) averaged over the runs
    of a label; for landscapes without evaluations, the distance of the first run of each
    label to the nearest known minimum (log scale). With neither, an empty figure that says
    so: "not yet" while runs go on, and why there is nothing once they all `finished`."""
    groups = _group(runs)
    fig = go.Figure()
    keys: list[str] = []
    for label, group in groups.items():
        per_key: dict[str, dict[int, list[float]]] = {}
        for events in group:
            for e in _of_type(events, "eval"):
                for key, value in (_get(e, "metrics") or {}).items():
                    if value is not None and math.isfinite(value):
                        per_key.setdefault(key, {}).setdefault(int(_get(e, "step")), []).append(
                            float(value)
                        )
        for index, (key, by_step) in enumerate(sorted(per_key.items())):
            keys.append(key)
            steps = sorted(by_step)
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=[sum(by_step[s]) / len(by_step[s]) for s in steps],
                    mode="lines+markers",
                    marker={"size": 4},
                    line={"color": optimizer_color(label), "dash": _DASHES[index % len(_DASHES)]},
                    legendgroup=label,
                    name=f"{label}: {key}",
                )
            )
    minima = (task or {}).get("known_minima") or []
    layout: dict[str, Any] = {"yaxis_title": "value (mean over seeds)"}
    if not keys and minima:
        for label, group in groups.items():
            steps, distances = _distance_to_minimum(group[0], minima)
            if steps:
                keys.append("distance")
                fig.add_trace(
                    go.Scatter(
                        x=steps,
                        y=[max(d, 1e-12) for d in distances],
                        mode="lines",
                        line={"color": optimizer_color(label), "width": 2},
                        name=f"{label}: distance to nearest minimum",
                    )
                )
        layout = {
            "yaxis_title": "distance to nearest minimum (log scale)",
            "yaxis_type": "log",
            "yaxis_exponentformat": "power",
        }
    if not keys:
        return empty_figure(_no_metrics(task or {}, finished), title=title or "Task metrics")
    subtitle = ", ".join(dict.fromkeys(keys))
    fig.update_layout(
        title={"text": f"{title or 'Task metrics'}<br><sup>{subtitle}</sup>"},
        xaxis_title="step",
        template="plotly_white",
        uirevision=UIREVISION,
        **layout,
    )
    return fig


def _no_metrics(task: Mapping[str, Any], finished: bool) -> str:
    """Why the metrics panel is empty, in words (a line break keeps it inside half a page)."""
    if not finished:
        return "Accuracy, solved or the distance to a minimum<br>appear here as runs report them"
    name, dim = task.get("name") or "this task", task.get("dim")
    if dim is not None and dim != 2:
        why = f"{name} reports no evaluations, and its {dim}-D path<br>is a projection: no distance"
    elif dim == 2:
        why = f"{name} reports no evaluations<br>and has no minimum to measure a distance to"
    else:
        why = f"{name} reported no evaluations"
    return f"Nothing beyond the loss to show:<br>{why}"
