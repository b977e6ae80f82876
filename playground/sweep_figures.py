"""The Sweeps tab's table and figures, built from a sweep as `GET /api/sweeps/{id}` returns it.

Pure functions of the stored trials (no Gradio, no requests), so a finished sweep and a
running one draw the same way and the tests can feed stored dicts. Colours are the
compare view's, per optimizer (`figures.optimizer_color`).
"""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from playground.figures import UIREVISION, empty_figure, optimizer_color
from server.jobs.summary import number_text

TRIAL_COLUMNS = ["optimizer", "trial", "params", "value", "status", "job"]
#: hyperparameters drawn side by side in the slice plot; more would be unreadable
MAX_SLICES = 6


def objective_name(sweep: dict[str, Any]) -> str:
    """What a trial's value is, in words: `final loss (minimize)`."""
    objective = (sweep.get("spec") or {}).get("objective") or {}
    kind = objective.get("kind", "final")
    if kind.endswith("_to_target"):
        what = kind.replace("_", " ")
        if kind == "evaluations_to_target" and objective.get("counter") != "evaluations":
            what = f"{objective.get('counter', '').replace('_', ' ')} to target"
        what = f"{what} {number_text(objective.get('target'))}"
    else:
        what = f"{kind} {objective.get('metric', 'loss')}"
    return f"{what} ({sweep.get('direction', 'minimize')})"


def params_text(params: dict[str, Any]) -> str:
    """`lr=0.0157, fitting=newton`: numbers to three significant digits, choices as given."""
    return ", ".join(f"{name}={_value_text(value)}" for name, value in params.items())


def _value_text(value: Any) -> str:
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return number_text(value) if numeric else str(value)


def trials_table(sweep: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """One row per trial, the latest first (trials in flight say so in `status`)."""
    trials = sorted(
        sweep.get("trials") or [],
        key=lambda t: (t.get("finished") or math.inf, t.get("created") or 0),
        reverse=True,
    )
    rows = [
        [
            t["optimizer"],
            t["number"],
            params_text(t.get("params") or {}),
            number_text(t.get("value")),
            f"{t['status']}: {t['message']}" if t.get("message") else t["status"],
            t.get("job_id") or "",
        ]
        for t in trials
    ]
    return TRIAL_COLUMNS, rows


def _log_scale(values: list[float]) -> bool:
    """A log axis when every value is positive and they span more than a decade."""
    return bool(values) and min(values) > 0 and max(values) / min(values) > 10


def best_so_far_figure(sweep: dict[str, Any]) -> go.Figure:
    """Per optimizer, the best value after each finished trial (a line) over each complete
    trial's own value (dots): how fast each optimizer's search found its best."""
    curves = [(o["name"], o.get("best_so_far") or []) for o in sweep.get("optimizers") or []]
    if not any(point["best"] is not None for _, points in curves for point in points):
        return empty_figure("The best value so far per optimizer appears here", title="Best so far")
    fig = go.Figure()
    values: list[float] = []
    for name, points in curves:
        color = optimizer_color(name)
        x = [p["number"] + 1 for p in points]
        best = [p["best"] for p in points]
        fig.add_trace(
            go.Scatter(x=x, y=best, mode="lines", name=name, line={"color": color, "shape": "hv"})
        )
        own = [(p["number"] + 1, p["value"]) for p in points if p["value"] is not None]
        fig.add_trace(
            go.Scatter(
                x=[n for n, _ in own],
                y=[v for _, v in own],
                mode="markers",
                name=f"{name} trials",
                marker={"color": color, "size": 6, "opacity": 0.5},
                showlegend=False,
            )
        )
        values += [b for b in best if b is not None] + [v for _, v in own]
    log = _log_scale(values)
    fig.update_layout(
        title={"text": "Best so far per optimizer"},
        template="plotly_white",
        xaxis={"title": {"text": "trials finished"}, "dtick": 1 if len(values) < 40 else None},
        yaxis={
            "title": {"text": f"{objective_name(sweep)}{' (log scale)' if log else ''}"},
            "type": "log" if log else "linear",
        },
        legend={"orientation": "h", "y": -0.2},
        uirevision=UIREVISION,
    )
    return fig


def _param_spaces(sweep: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Hyperparameter name → its range (the first optimizer's, for the axis type)."""
    spaces: dict[str, dict[str, Any]] = {}
    for optimizer in sweep.get("optimizers") or []:
        for name, param in (optimizer.get("space") or {}).items():
            spaces.setdefault(name, param)
    return spaces


def slice_figure(sweep: dict[str, Any]) -> go.Figure:
    """A panel per searched hyperparameter: each complete trial's value against the value
    it tried, per optimizer, so the good region of each range shows."""
    complete = [t for t in sweep.get("trials") or [] if t.get("value") is not None]
    spaces = list(_param_spaces(sweep).items())[:MAX_SLICES]
    if not complete or not spaces:
        return empty_figure("Each trial's value against its hyperparameters", title="Trials")
    fig = make_subplots(rows=1, cols=len(spaces), shared_yaxes=True)
    seen: set[str] = set()
    for col, (name, param) in enumerate(spaces, start=1):
        for optimizer in dict.fromkeys(t["optimizer"] for t in complete):
            own = [t for t in complete if t["optimizer"] == optimizer and name in t["params"]]
            if not own:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[_axis_value(t["params"][name]) for t in own],
                    y=[t["value"] for t in own],
                    mode="markers",
                    name=optimizer,
                    legendgroup=optimizer,
                    showlegend=optimizer not in seen,
                    marker={"color": optimizer_color(optimizer), "size": 7, "opacity": 0.7},
                    text=[f"trial {t['number']}: {params_text(t['params'])}" for t in own],
                    hovertemplate="%{text}<br>value %{y}<extra>%{fullData.name}</extra>",
                ),
                row=1,
                col=col,
            )
            seen.add(optimizer)
        log = " (log scale)" if param.get("log") else ""
        fig.update_xaxes(
            title={"text": f"{name}{log}"},
            type="log" if param.get("log") else ("category" if param["type"] == "choice" else None),
            row=1,
            col=col,
        )
    log = _log_scale([t["value"] for t in complete])
    fig.update_yaxes(type="log" if log else "linear", row=1, col=1)
    fig.update_yaxes(title={"text": f"{objective_name(sweep)}{' (log)' if log else ''}"}, col=1)
    fig.update_layout(
        title={"text": "Trials: value against each hyperparameter"},
        template="plotly_white",
        legend={"orientation": "h", "y": -0.25},
        uirevision=UIREVISION,
    )
    return fig


def _axis_value(value: Any) -> Any:
    """Choices (strings, booleans, None) as category labels; numbers as they are."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return str(value)
    return value


def sweep_status(sweep: dict[str, Any]) -> str:
    """The line above the trials: state, phase, progress, the best per optimizer."""
    done = sum(o.get("trials_done", 0) for o in sweep.get("optimizers") or [])
    total = sum(o.get("trials_total", 0) for o in sweep.get("optimizers") or [])
    task = ((sweep.get("spec") or {}).get("task") or {}).get("name", "?")
    line = (
        f"Sweep `{sweep['id']}` on **{task}** — {sweep['status']}, {sweep.get('phase')} phase, "
        f"{done}/{total} trials"
    )
    if sweep.get("message"):
        line += f" ({sweep['message']})"
    bests = [
        f"- **{o['name']}**: best {number_text(o['best']['value'])} at "
        f"{params_text(o['best']['params'])} (trial {o['best']['number']})"
        for o in sweep.get("optimizers") or []
        if o.get("best")
    ]
    return "\n".join([line, *bests])
