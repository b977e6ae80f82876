"""The result files of `psgd-playground run`: summary.json, spec.json, metrics.csv and
eval.csv (the job service's export), events/*.jsonl and the static plots (loss.html/png,
trajectory.html/png, its contour map from the tasks' sampler)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from playground.cli_output import RunRecord
from server.jsonable import json_safe

#: grid points per axis of the static trajectory plot's contour map
CONTOUR_RESOLUTION = 121


# ------------------------------------------------------------------------------ files
#: events/*.jsonl is flushed at most this often (and when the job ends).
EVENTS_FLUSH_SECONDS = 1.0


class EventLog:
    """A job's events/<run>.jsonl, written as the events come (one JSON object a line) and
    flushed every `EVENTS_FLUSH_SECONDS`, so a long run can be followed with `tail -f`."""

    def __init__(self, out: Path, record: RunRecord) -> None:
        folder = out / "events"
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / record.events_name
        self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close)
        self._flushed = time.monotonic()

    def write(self, event: Any) -> None:
        self._file.write(json.dumps(json_safe(event.model_dump()), allow_nan=False) + "\n")
        now = time.monotonic()
        if now - self._flushed >= EVENTS_FLUSH_SECONDS:
            self._file.flush()
            self._flushed = now

    def close(self) -> None:
        self._file.close()


def write_results(
    out: Path, records: list[RunRecord], spec: dict[str, Any], metrics: list[dict[str, Any]]
) -> list[str]:
    """summary.json, spec.json, and the job service's metrics export (`metrics`, from
    `server.jobs.export.collect_metrics`) as metrics.csv and eval.csv (when any job was
    evaluated); returns the names."""
    from server.jobs import export

    runs = []
    for r in records:
        runs.append(
            {
                "run": r.index,
                "job_id": r.job_id,
                "label": r.label,
                "optimizer": r.job.optimizer.name,
                "optimizer_config": r.job.optimizer.model_dump(),
                "task": r.job.task.model_dump(),
                "seed": r.seed,
                "status": r.status.status if r.status else None,
                "message": r.status.message if r.status else "",
                "steps": r.status.step if r.status else 0,
                "summary": r.summary,
                "environment": r.meta.get("environment", {}),
                "events": f"events/{r.events_name}",
            }
        )
    written = ["summary.json", "spec.json", "metrics.csv"]
    _dump_json(out / "summary.json", runs)
    _dump_json(out / "spec.json", spec)
    (out / "metrics.csv").write_text(export.metrics_csv(metrics), encoding="utf-8")
    evaluations = export.evaluations_csv(metrics)
    if evaluations is not None:
        (out / "eval.csv").write_text(evaluations, encoding="utf-8")
        written.append("eval.csv")
    return written


def _dump_json(path: Path, value: Any) -> None:
    path.write_text(
        json.dumps(json_safe(value), indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )


# ------------------------------------------------------------------------------ plots
def _contour(record: RunRecord) -> tuple[Any, Any, Any] | None:
    """The landscape under the paths, from the sampler the API's contour route uses."""
    from server.tasks.contours import sample_contour

    contour = sample_contour(record.job.task, record.seed, CONTOUR_RESOLUTION)
    return None if contour is None else (contour["x"], contour["y"], contour["z"])


def write_plots(
    out: Path, records: list[RunRecord], kind: str, warn: Any, x_axis: str = "step"
) -> list[str]:
    """loss.html / loss.png (loss against `x_axis`, a key of `figures.X_AXES`), and
    trajectory.* for 2-D landscapes; returns the names."""
    if kind == "none" or not records:
        return []
    try:
        from playground import figures
    except ImportError:
        warn("plots need plotly (pip install plotly); no plots written")
        return []
    task_name = records[0].job.task.name
    built = {
        "loss": figures.loss_figure(
            ((r.label, r.events) for r in records), title=f"Loss on {task_name}", x_axis=x_axis
        )
    }
    firsts: dict[str, RunRecord] = {}
    for r in records:
        firsts.setdefault(r.label, r)
    if any(figures.path_points(r.events) for r in firsts.values()):
        meta_task = next(iter(firsts.values())).meta.get("task") or {}
        contour = None
        if meta_task.get("domain"):
            try:
                contour = _contour(next(iter(firsts.values())))
            except Exception as error:  # a missing contour only loses the background
                warn(f"no contour map for {task_name}: {error}")
        built["trajectory"] = figures.trajectory_figure(
            ((label, r.events) for label, r in firsts.items()),
            contour=contour,
            task=meta_task,
            title=f"Trajectories on {task_name} (seed {next(iter(firsts.values())).seed} of each)",
        )
    written = []
    if kind in ("html", "both"):
        for name, fig in built.items():
            fig.write_html(out / f"{name}.html", include_plotlyjs=True, full_html=True)
            written.append(f"{name}.html")
    if kind in ("png", "both"):
        written += _write_pngs(out, built, warn)
    return written


def _write_pngs(out: Path, built: dict[str, Any], warn: Any) -> list[str]:
    import importlib.util

    names = ", ".join(f"{n}.png" for n in built)
    if importlib.util.find_spec("kaleido") is None:
        warn(f"PNG plots need the kaleido package (pip install kaleido); skipped {names}")
        return []
    written = []
    for name, fig in built.items():
        try:
            fig.write_image(out / f"{name}.png", width=1000, height=650)
        except Exception as error:  # kaleido needs a browser it may not find
            warn(f"could not write {name}.png: {' '.join(str(error).split())}")
            return written
        written.append(f"{name}.png")
    return written
