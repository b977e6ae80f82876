"""Set-up and run seconds side by side in the CLI's summary table and the UI's results."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("plotly")

from playground import views
from playground.cli_output import RunRecord, summary_table
from server.events import Status
from server.runner import JobSpec

SUMMARY = {"steps": 10, "final_loss": 0.5, "best_loss": 0.4, "setup_seconds": 4.52,
           "seconds": 1.45}  # fmt: skip


def test_the_cli_summary_table_shows_set_up_and_run_seconds() -> None:
    job = JobSpec.model_validate({"task": {"name": "rosenbrock"}, "optimizer": {"name": "lbfgs"}})
    record = RunRecord(1, "lbfgs", job, status=Status(step=10, status="succeeded", summary=SUMMARY))
    header, _, row = summary_table([record], target=None).splitlines()[:3]
    assert re.split(r"\s{2,}", header)[-2:] == ["setup (s)", "run (s)"]
    assert row.split()[-2:] == ["4.52", "1.45"]


def test_the_ui_results_table_shows_set_up_and_run_seconds() -> None:
    job = {"id": "a", "optimizer": "lbfgs", "optimizer_label": "lbfgs", "seed": 0,
           "status": "succeeded", "summary": SUMMARY}  # fmt: skip
    comparison = {"spec": {"optimizers": [{"name": "lbfgs"}]}, "job_ids": ["a"], "jobs": [job]}
    headers, (row,) = views.results_table(comparison)
    cells = dict(zip(headers, row))
    assert (cells["run seconds"], cells["setup seconds"]) == (1.45, 4.52)
