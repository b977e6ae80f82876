"""The one metrics export (server.jobs.export): the API's /metrics routes and the CLI's
metrics.csv / eval.csv both come from it."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from server.jobs.export import collect_metrics, evaluations_csv, metrics_csv
from server.jobs.store import JobStore

SPEC = {"task": {"name": "xor"}, "optimizer": {"name": "adam"}, "seed": 2}


def _metrics(step: int, loss: float) -> dict:
    return {
        "type": "metrics",
        "step": step,
        "loss": loss,
        "grad_norm": 1.0,
        "lr": 0.1,
        "step_time": 0.01,
        "elapsed": 0.01 * step,
    }


def test_rows_per_job_and_step_with_evaluations_merged(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as store:
        job_id = store.create_job(SPEC, label="adam#2 seed=2", optimizer_label="adam#2")
        store.append_events(job_id, [{"type": "started", "total_steps": 3, "meta": {}}])
        store.append_events(job_id, [_metrics(1, 2.0), _metrics(2, float("nan"))])
        store.append_events(
            job_id, [{"type": "eval", "step": 2, "epoch": 0.5, "metrics": {"accuracy": 0.75}}]
        )
        exported = collect_metrics(store, [store.get_job(job_id)])

    (job,) = exported
    assert (job["optimizer_label"], job["seed"], job["label"]) == ("adam#2", 2, "adam#2 seed=2")
    assert [p["step"] for p in job["metrics"]] == [1, 2]
    assert job["metrics"][1]["loss"] is None  # strict JSON: NaN as null
    rows = list(csv.DictReader(io.StringIO(metrics_csv(exported))))
    assert [(r["job_id"], r["optimizer_label"], r["seed"], r["step"]) for r in rows] == [
        (job_id, "adam#2", "2", "1"),
        (job_id, "adam#2", "2", "2"),
    ]
    assert rows[0]["eval_accuracy"] == "" and rows[1]["eval_accuracy"] == "0.75"
    assert rows[1]["loss"] == ""
    evals = list(csv.DictReader(io.StringIO(evaluations_csv(exported) or "")))
    assert evals == [
        {
            "job_id": job_id,
            "label": "adam#2 seed=2",
            "optimizer_label": "adam#2",
            "seed": "2",
            "step": "2",
            "epoch": "0.5",
            "accuracy": "0.75",
        }
    ]


def test_no_evaluation_no_eval_csv(tmp_path: Path) -> None:
    with JobStore(tmp_path / "jobs.sqlite") as store:
        job_id = store.create_job(SPEC, label="adam seed=2")
        store.append_events(job_id, [_metrics(1, 1.0)])
        exported = collect_metrics(store, [store.get_job(job_id)])
    assert exported[0]["optimizer_label"] == "adam"  # the optimizer's name by default
    assert evaluations_csv(exported) is None
    header = metrics_csv(exported).splitlines()[0]
    assert header.endswith(
        "elapsed,function_evaluations,gradient_evaluations,hessian_vector_products"
    )


@pytest.mark.parametrize("pages", [1, 3])
def test_long_runs_are_read_in_pages(
    tmp_path: Path, pages: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.jobs import export

    monkeypatch.setattr(export, "_PAGE", 4)
    with JobStore(tmp_path / "jobs.sqlite", max_metric_points=100) as store:
        ids = [store.create_job(SPEC, label=f"adam seed={i}") for i in range(2)]
        for job_id in ids:
            store.append_events(job_id, [_metrics(s, 1.0 / s) for s in range(1, 4 * pages + 1)])
        exported = collect_metrics(store, [store.get_job(i) for i in ids])
    assert [len(job["metrics"]) for job in exported] == [4 * pages, 4 * pages]
