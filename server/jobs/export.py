"""Jobs' recorded metrics for export: the one aggregation and the CSV files behind the
API's `/metrics` routes and the CLI's metrics.csv and eval.csv.

`collect_metrics` reads each job's metrics and evaluation events from the store (in pages,
so a long comparison is never read at once); `metrics_csv` writes one row per job and
step, the evaluation metrics as `eval_<metric>` columns; `evaluations_csv` one row per
evaluation, with its epoch.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from server.jobs.store import JobStore
from server.jsonable import json_safe

#: the per-step fields of a metrics event that are exported (the work counts are empty for
#: runs recorded before the runner counted them)
METRIC_FIELDS = (
    "loss",
    "grad_norm",
    "lr",
    "step_time",
    "elapsed",
    "function_evaluations",
    "gradient_evaluations",
    "hessian_vector_products",
)
#: each job's identity, the first columns of every CSV
IDENTITY_FIELDS = ("job_id", "label", "optimizer_label", "seed")
_PAGE = 5000


def collect_metrics(store: JobStore, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per job (stored job dicts, in order): its identity, status, metrics per step and
    evaluations, with non-finite numbers as None (strict JSON)."""
    by_job = {
        job["id"]: {
            "job_id": job["id"],
            "label": job["label"],
            "optimizer_label": job["optimizer_label"],
            "seed": job["seed"],
            "status": job["status"],
            "metrics": [],
            "evaluations": [],
        }
        for job in jobs
    }
    after = 0
    while by_job:
        rows = store.events(list(by_job), after, _PAGE)
        for row in rows:
            event, into = row["event"], by_job[row["job_id"]]
            if event.get("type") == "metrics":
                point = {"step": event.get("step", 0)}
                point.update({key: event.get(key) for key in METRIC_FIELDS})
                into["metrics"].append(point)
            elif event.get("type") == "eval":
                into["evaluations"].append(
                    {
                        "step": event.get("step", 0),
                        "epoch": event.get("epoch"),
                        "metrics": event.get("metrics") or {},
                    }
                )
        if len(rows) < _PAGE:
            break
        after = rows[-1]["id"]
    return json_safe(list(by_job.values()))


def metrics_csv(metrics: list[dict[str, Any]]) -> str:
    """One row per job and step (`collect_metrics`' answer): identity, step, the metrics,
    then an `eval_<metric>` column per evaluation metric (empty where none was taken)."""
    keys = _eval_keys(metrics)
    out, writer = _writer()
    writer.writerow([*IDENTITY_FIELDS, "step", *METRIC_FIELDS, *(f"eval_{k}" for k in keys)])
    for job in metrics:
        rows: dict[int, dict[str, Any]] = {}
        for point in job["metrics"]:
            rows.setdefault(point["step"], {}).update(point)
        for evaluation in job["evaluations"]:
            values = {f"eval_{k}": v for k, v in evaluation["metrics"].items()}
            rows.setdefault(evaluation["step"], {}).update(values)
        for step in sorted(rows):
            row = rows[step]
            cells = [*METRIC_FIELDS, *(f"eval_{k}" for k in keys)]
            writer.writerow([*_identity(job), step, *(_cell(row.get(c)) for c in cells)])
    return out.getvalue()


def evaluations_csv(metrics: list[dict[str, Any]]) -> str | None:
    """One row per evaluation: identity, step, epoch and each metric; None when no job
    was evaluated."""
    keys = _eval_keys(metrics)
    if not keys:
        return None
    out, writer = _writer()
    writer.writerow([*IDENTITY_FIELDS, "step", "epoch", *keys])
    for job in metrics:
        for e in job["evaluations"]:
            values = [_cell(e["metrics"].get(k)) for k in keys]
            writer.writerow([*_identity(job), e["step"], _cell(e["epoch"]), *values])
    return out.getvalue()


def _eval_keys(metrics: list[dict[str, Any]]) -> list[str]:
    return sorted({key for job in metrics for e in job["evaluations"] for key in e["metrics"]})


def _writer() -> tuple[io.StringIO, Any]:
    out = io.StringIO()
    return out, csv.writer(out, lineterminator="\n")


def _identity(job: dict[str, Any]) -> list[Any]:
    return [job[key] for key in IDENTITY_FIELDS]


def _cell(value: Any) -> Any:
    return "" if value is None else value
