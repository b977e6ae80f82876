"""Plotly figures built from job events: pure functions, no I/O.

Every builder takes events as the runner emits them (`server.events` models) or as their
JSON dumps (dicts, e.g. read back from an SSE stream or an `events/*.jsonl` file) and
returns a `plotly.graph_objects.Figure`. The CLI writes them to HTML/PNG; the UI shows them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import plotly.graph_objects as go

#: Stable colours per optimizer: PSGD variants in blues/violets, baselines in other hues.
OPTIMIZER_COLORS: dict[str, str] = {
    "psgd-kron": "#1f77b4",
    "psgd-dense": "#0b3d91",
    "psgd-lra": "#6f4fc9",
    "psgd-xmat": "#17a2b8",
    "psgd-diag": "#7aa6e8",
    "sgd": "#d62728",
    "sgd-nesterov": "#f08080",
    "adam": "#ff7f0e",
    "adamw": "#b8590b",
    "rmsprop": "#2ca02c",
    "adagrad": "#8fbc5a",
    "lbfgs": "#8c564b",
    "muon": "#e377c2",
    "adafactor": "#7f7f7f",
}
_FALLBACK = ("#bcbd22", "#9467bd", "#17becf", "#393b79", "#637939", "#843c39")
_DASHES = ("solid", "dash", "dot", "dashdot", "longdash")

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


def _group(runs: Runs) -> dict[str, list[Sequence[EventLike]]]:
    groups: dict[str, list[Sequence[EventLike]]] = {}
    for label, events in runs:
        groups.setdefault(label, []).append(events)
    return groups


def _decimate(steps: list[int], max_points: int) -> list[int]:
    if len(steps) <= max_points:
        return steps
    stride = math.ceil(len(steps) / max_points)
    kept = steps[::stride]
    return kept if kept[-1] == steps[-1] else [*kept, steps[-1]]


def loss_figure(runs: Runs, *, title: str | None = None, max_points: int = 2000) -> go.Figure:
    """Training loss vs step: per label a mean line over its runs (seeds) and a min–max band.

    `runs` is an iterable of (label, events) with one entry per run; runs sharing a label
    are aggregated step by step (a run that stopped early, e.g. diverged, only counts up to
    its last step). The y axis is logarithmic unless some loss is negative; exact zeros are
    drawn at the smallest positive loss. Long runs are decimated to `max_points` for drawing.
    """
    series: dict[str, tuple[list[int], list[float], list[float], list[float], int]] = {}
    lowest_positive, any_negative = math.inf, False
    for label, group in _group(runs).items():
        by_step: dict[int, list[float]] = {}
        for events in group:
            for m in _of_type(events, "metrics"):
                loss = _get(m, "loss")
                if loss is not None and math.isfinite(loss):
                    by_step.setdefault(int(_get(m, "step")), []).append(float(loss))
        steps = _decimate(sorted(by_step), max_points)
        values = [by_step[s] for s in steps]
        for vs in values:
            positive = [v for v in vs if v > 0]
            lowest_positive = min([lowest_positive, *positive])
            any_negative = any_negative or any(v < 0 for v in vs)
        means = [sum(vs) / len(vs) for vs in values]
        series[label] = (
            steps,
            means,
            [min(vs) for vs in values],
            [max(vs) for vs in values],
            len(group),
        )

    log_y = not any_negative and math.isfinite(lowest_positive)
    floor = lowest_positive if log_y else -math.inf

    def clip(values: list[float]) -> list[float]:
        return [max(v, floor) for v in values] if log_y else values

    fig = go.Figure()
    for label, (steps, means, lows, highs, n) in series.items():
        color = optimizer_color(label)
        if n > 1 and steps:
            fig.add_trace(
                go.Scatter(
                    x=[*steps, *reversed(steps)],
                    y=clip([*highs, *reversed(lows)]),
                    fill="toself",
                    fillcolor=_rgba(color, 0.18),
                    line={"width": 0},
                    hoverinfo="skip",
                    legendgroup=label,
                    showlegend=False,
                    name=f"{label} min–max",
                )
            )
        fig.add_trace(
            go.Scatter(
                x=steps,
                y=clip(means),
                mode="lines",
                line={"color": color, "width": 2, "dash": _dash(label)},
                legendgroup=label,
                name=f"{label} (mean of {n} seeds)" if n > 1 else label,
                hovertemplate=f"{label}<br>step %{{x}}<br>loss %{{y:.4g}}<extra></extra>",
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
        xaxis_title="step",
        yaxis_title=y_title,
        yaxis_type="log" if log_y else "linear",
        yaxis_exponentformat="power",
        template="plotly_white",
        hovermode="x unified",
        legend={"title": {"text": "optimizer"}},
    )
    return fig


def landscape_grid(
    domain: Sequence[Sequence[float]], n: int = 121
) -> tuple[list[float], list[float]]:
    """`n` evenly spaced x and y coordinates spanning a 2-D `domain` [[x0, x1], [y0, y1]]."""
    (x0, x1), (y0, y1) = domain

    def axis(lo: float, hi: float) -> list[float]:
        return [lo + (hi - lo) * i / (n - 1) for i in range(n)]

    return axis(x0, x1), axis(y0, y1)


def path_points(events: Sequence[EventLike]) -> list[list[float]]:
    """The 2-D positions of a run's trajectory events, in order."""
    return [list(p) for e in _of_type(events, "trajectory") if (p := _get(e, "point")) is not None]


def trajectory_figure(
    runs: Runs,
    *,
    contour: tuple[Sequence[float], Sequence[Sequence[float]] | Sequence[float], Any] | None = None,
    task: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> go.Figure:
    """Paths of 2-D landscape runs, over the landscape's contour map when given.

    `runs`: (label, events) per path drawn (e.g. the first seed of each optimizer).
    `contour`: (xs, ys, zs) with zs[i][j] the objective at (xs[j], ys[i]); it is drawn as
    log10(1 + f − min f) so valleys stay visible. `task`: the task facts of the Started
    event (`domain`, `known_minima`) for the axis ranges and the ★ markers.
    """
    fig = go.Figure()
    task = task or {}
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
    for label, events in runs:
        points = path_points(events)
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
                customdata=[
                    _get(e, "step") for e in _of_type(events, "trajectory") if _get(e, "point")
                ],
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
    layout: dict[str, Any] = {
        "title": {"text": f"{title or 'Trajectories'}<br><sup>● start · ✕ end · ★ minimum</sup>"},
        "xaxis_title": "x",
        "yaxis_title": "y",
        "template": "plotly_white",
        "xaxis": {"constrain": "domain"},
        "yaxis": {"scaleanchor": "x", "scaleratio": 1, "constrain": "domain"},
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1},
    }
    domain = task.get("domain")
    if domain:
        layout["xaxis"]["range"], layout["yaxis"]["range"] = list(domain[0]), list(domain[1])
    fig.update_layout(**layout)
    return fig
