"""The result files of `psgd-playground run`: summary.json, spec.json, metrics.csv,
eval.csv, events/*.jsonl and the static plots (loss.html/png, trajectory.html/png)."""

from __future__ import annotations

import csv
import json
import math
import time
from pathlib import Path
from typing import Any

from playground.cli_output import RunRecord


# ------------------------------------------------------------------------------ files
def jsonable(value: Any) -> Any:
    """`value` with non-finite floats as null, so the output is strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


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
        self._file.write(json.dumps(jsonable(event.model_dump()), allow_nan=False) + "\n")
        now = time.monotonic()
        if now - self._flushed >= EVENTS_FLUSH_SECONDS:
            self._file.flush()
            self._flushed = now

    def close(self) -> None:
        self._file.close()


def write_results(out: Path, records: list[RunRecord], spec: dict[str, Any]) -> list[str]:
    """summary.json, spec.json, metrics.csv and eval.csv (when any); returns the names."""
    runs = []
    for r in records:
        runs.append(
            {
                "run": r.index,
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
    with open(out / "metrics.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["run", "optimizer", "seed", "step", "loss", "grad_norm", "lr", "step_time", "elapsed"]
        )
        for r in records:
            for e in r.events:
                if e.type == "metrics":
                    w.writerow(
                        [
                            r.index,
                            r.label,
                            r.seed,
                            e.step,
                            e.loss,
                            e.grad_norm,
                            e.lr,
                            e.step_time,
                            e.elapsed,
                        ]
                    )
    keys = sorted({k for r in records for e in r.events if e.type == "eval" for k in e.metrics})
    if keys:
        with open(out / "eval.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["run", "optimizer", "seed", "step", "epoch", *keys])
            for r in records:
                for e in r.events:
                    if e.type == "eval":
                        values = [e.metrics.get(k, "") for k in keys]
                        w.writerow([r.index, r.label, r.seed, e.step, e.epoch, *values])
        written.append("eval.csv")
    return written


def _dump_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(jsonable(value), indent=2, allow_nan=False) + "\n", encoding="utf-8")


# ------------------------------------------------------------------------------ plots
def _contour(record: RunRecord, domain: list[list[float]]) -> tuple[Any, Any, Any] | None:
    """The landscape over its domain, when the task exposes `contour(grid_x, grid_y)`."""
    import torch

    from playground.figures import landscape_grid

    task = record.job.task.build(torch.device("cpu"), record.seed)
    contour = getattr(task, "contour", None)
    if contour is None:
        return None
    xs, ys = landscape_grid(domain)
    grid_y, grid_x = torch.meshgrid(
        torch.tensor(ys, dtype=torch.float64), torch.tensor(xs, dtype=torch.float64), indexing="ij"
    )
    zs = contour(grid_x, grid_y)
    return None if zs is None else (xs, ys, zs.double().cpu().tolist())


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
                contour = _contour(next(iter(firsts.values())), meta_task["domain"])
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
