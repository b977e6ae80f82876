"""What the UI shows for one comparison: figures and the results table, from API data.

Pure functions of a comparison (as `GET /api/comparisons/{id}` answers: each job with its
`optimizer_label` and `seed`), its events per job (`server.events` models, as the client
parses them) and, for 2-D landscapes, the contour map the API samples (`contour_grid`).
"""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

from playground import figures
from server.events import ACTIVE_STATUSES, Event, Metrics, Started
from server.jobs.summary import evaluations_to, number_text, spread_text

#: the results table's columns; each final evaluation metric (e.g. CIFAR's test accuracy)
#: gets one after "best loss", and "message" says why a run failed, diverged or stopped.
#: Run seconds count from step 1 (as do seconds to target); set-up (task, optimizer, the
#: step-0 snapshot) is apart.
RESULT_COLUMNS = [
    "optimizer",
    "seed",
    "status",
    "final loss",
    "best loss",
    "steps to target",
    "evaluations to target",
    "seconds to target",
    "run seconds",
    "setup seconds",
    "message",
]
#: the statuses whose message the status line repeats (the user did not ask for them)
PROBLEMS = ("failed", "diverged", "interrupted")


def task_meta(events: dict[str, list[Event]]) -> dict[str, Any]:
    for job_events in events.values():
        for e in job_events:
            if isinstance(e, Started):
                return e.meta.get("task") or {}
    return {}


def contour_grid(answer: dict[str, Any]) -> tuple[list, list, list[list[float]]]:
    """(xs, ys, zs) of a `GET /api/tasks/{name}/contour` answer, nulls (overflow) as NaN."""
    zs = [[math.nan if v is None else v for v in row] for row in answer["z"]]
    return answer["x"], answer["y"], zs


def finished(comparison: dict[str, Any]) -> bool:
    """Whether every job of the comparison has ended (nothing more will arrive)."""
    if "status" in comparison:  # running, succeeded or finished
        return comparison["status"] != "running"
    jobs = comparison.get("jobs") or []
    return bool(jobs) and all(job.get("status") not in ACTIVE_STATUSES for job in jobs)


def _runs(comparison: dict[str, Any], events: dict[str, list[Event]]) -> list[tuple[str, Any]]:
    return [(job["optimizer_label"], events.get(job["id"], [])) for job in comparison["jobs"]]


def has_points(events: dict[str, list[Event]]) -> bool:
    """Whether any job has reported a loss value yet (the loss figure has a point)."""
    return any(isinstance(e, Metrics) for job_events in events.values() for e in job_events)


def loss_view(
    comparison: dict[str, Any], events: dict[str, list[Event]], x_axis: str = "step"
) -> go.Figure:
    """The loss figure alone: the cheapest one, which the UI draws before the others."""
    name = (comparison.get("spec") or {}).get("task", {}).get("name", "task")
    return figures.loss_figure(_runs(comparison, events), title=f"Loss on {name}", x_axis=x_axis)


def build_figures(
    comparison: dict[str, Any],
    events: dict[str, list[Event]],
    contour: tuple[Any, Any, Any] | None = None,
    x_axis: str = "step",
) -> dict[str, go.Figure]:
    """The four live figures: loss (against `x_axis`, a key of `figures.X_AXES`),
    trajectory (over `contour`, see `contour_grid`), spectrum, metrics."""
    runs = _runs(comparison, events)
    firsts: dict[str, list[Event]] = {}
    for label, job_events in runs:
        firsts.setdefault(label, job_events)
    task = task_meta(events)
    trajectory = figures.trajectory_figure(
        list(firsts.items()),
        contour=contour,
        task=task,
        title="Trajectories (first seed of each)",
    )
    trajectory.update_layout(
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "xanchor": "left", "x": 0}
    )
    return {
        "loss": loss_view(comparison, events, x_axis),
        "trajectory": trajectory,
        "spectrum": figures.spectrum_figure(list(firsts.items())),
        "metrics": figures.metrics_figure(runs, task=task, finished=finished(comparison)),
    }


def _number(value: Any) -> Any:
    if isinstance(value, float):
        return float(f"{value:.4g}") if math.isfinite(value) else str(value)
    return "" if value is None else value


def _eval_columns(jobs: list[dict[str, Any]]) -> list[str]:
    """The final evaluation metrics any job reports, accuracies first."""
    keys = {k for job in jobs for k in ((job.get("summary") or {}).get("final_eval") or {})}
    return sorted(keys, key=lambda k: ("accuracy" not in k, k))


def results_table(comparison: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """(headers, rows) of the results table: one row per job, its final evaluation
    metrics in their own columns, and the job's message (why it failed, diverged, …)."""
    jobs = list(comparison.get("jobs") or [])
    evals = _eval_columns(jobs)
    at = RESULT_COLUMNS.index("best loss") + 1
    headers = [*RESULT_COLUMNS[:at], *(k.replace("_", " ") for k in evals), *RESULT_COLUMNS[at:]]
    rows = []
    for job in jobs:
        label, seed = job["optimizer_label"], job["seed"]
        s = job.get("summary") or {}
        final = s.get("final_eval") or {}
        rows.append(
            [
                label,
                seed,
                job.get("status", "?"),
                _number(s.get("final_loss")),
                _number(s.get("best_loss")),
                *(_number(final.get(k)) for k in evals),
                _number(s.get("target_step") or s.get("solved_step")),
                _number(evaluations_to(s, "target" if s.get("target_step") else "solved")),
                _number(s.get("target_seconds")),
                _number(s.get("seconds")),
                _number(s.get("setup_seconds")),
                job.get("message") or "",
            ]
        )
    return headers, rows


def statistics_markdown(summary: dict[str, Any]) -> str:
    """The comparison's statistics over seeds (`GET /api/comparisons/{id}/summary`) as a
    table per optimizer and one sentence per pair; empty while no optimizer has two runs."""
    rows = summary.get("optimizers") or []
    if not any(row.get("counted", 0) >= 2 for row in rows):
        return ""
    metric = summary.get("metric_name", "final loss")
    success = summary.get("success")
    header = ["optimizer", "runs", f"{metric}: mean [95 % CI]"]
    if success:
        reached = "reached target" if success == "target" else "solved"
        verb = "to target" if success == "target" else "to solve"
        header += [f"{reached} [95 % Wilson]", f"steps {verb}", f"evaluations {verb}",
                   f"seconds {verb}"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        final = row.get("final") or {}
        cells = [row["label"], str(row.get("counted", 0))]
        interval = (
            f" [{number_text(final.get('low'))}, {number_text(final.get('high'))}]"
            if final.get("low") is not None
            else ""
        )
        cells.append(f"{number_text(final.get('mean'))}{interval}" if final else "–")
        if success:
            rate, to = row.get("success") or {}, row.get("to_target") or {}
            cells.append(
                f"{rate['successes']}/{rate['n']} [{rate['low']:.0%}, {rate['high']:.0%}]"
                if rate
                else "–"
            )
            cells += [spread_text(to.get(axis)) for axis in ("steps", "evaluations", "seconds")]
        lines.append("| " + " | ".join(cells) + " |")
    pending = summary.get("pending") or 0
    note = f" {pending} runs still going are not in it yet." if pending else ""
    head = (
        "**Over seeds** — means with Student-t 95 % intervals, success rates with Wilson "
        "intervals; runs that never got there count as beyond the budget (censored), "
        f"evaluations = gradients + Hessian-vector products; failed runs left out.{note}"
    )
    pairs = [f"- {pair['sentence']}" for pair in summary.get("pairs") or []]
    return "\n".join([head, "", *lines, "", *pairs])


def problems(comparison: dict[str, Any], max_chars: int = 300) -> list[str]:
    """One line per distinct message of the jobs that failed, diverged or were interrupted,
    naming the runs it concerns: "failed (adam, sgd): <message>"."""
    several_seeds = len((comparison.get("spec") or {}).get("seeds") or [0]) > 1
    grouped: dict[tuple[str, str], list[str]] = {}
    for job in comparison.get("jobs") or []:
        if job.get("status") not in PROBLEMS:
            continue
        label, seed = job["optimizer_label"], job["seed"]
        run = f"{label} seed {seed}" if several_seeds else label
        message = (job.get("message") or "no message").strip()
        if len(message) > max_chars:
            message = message[: max_chars - 1] + "…"
        grouped.setdefault((job["status"], message), []).append(run)
    return [f"{status} ({', '.join(runs)}): {text}" for (status, text), runs in grouped.items()]


def figures_html(figs: dict[str, go.Figure]) -> str:
    """One self-contained HTML page of the figures (plotly.js inlined once: offline)."""
    parts = []
    for index, fig in enumerate(figs.values()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=index == 0))
    body = "\n".join(parts)
    return f"<!doctype html><html><head><meta charset='utf-8'></head><body>{body}</body></html>"
