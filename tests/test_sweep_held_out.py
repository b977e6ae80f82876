"""Held-out selection: a sweep on a task with data selects on a validation split carved
from the training images and only its re-runs score the test split.

The end-to-end test runs real CIFAR jobs in-process (tests/thread_executor.py) on the
shared subset with tiny sizes (one step each); it is skipped without the subset, as the
CIFAR task tests are (tests/test_tasks_cifar.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from test_sweeps import sweep_service, wait_for

from playground.cli_sweep import report
from server.errors import InvalidSpec
from server.jobs.service import JobService
from server.jobs.store import JobStore
from server.settings import Settings
from server.sweeps.validate import validate_sweep
from server.tasks import cifar

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
ARCHIVE = Path(os.environ.get("PSGD_PLAYGROUND_CIFAR") or SHARED / cifar.ARCHIVE_NAMES[1])
TINY = {
    "name": "cifar10",
    "dataset": ARCHIVE.name,
    "train_size": 200,
    "test_size": 100,
    "train_eval_size": 100,
    "batch_size": 100,
}
SPEC: dict[str, Any] = {
    "task": TINY,
    "epochs": 1,
    "trials": 2,
    "seeds": 1,
    "sampler": "random",
    "optimizers": [{"name": "sgd", "tune": ["lr"]}],
}


@pytest.fixture
def jobs(tmp_path: Path, clean_env: None) -> JobService:
    settings = Settings(data_dir=tmp_path)
    return JobService(JobStore(settings.db_path), None, None, settings)


def test_a_data_task_is_searched_on_a_validation_split_by_default(jobs: JobService) -> None:
    spec = validate_sweep(jobs, SPEC)
    assert spec.task.validation_size == 20  # 10 % of train_size, as many per class
    assert spec.task.evaluate_test is False  # stored as its trials run it
    assert spec.objective.metric == "val_accuracy" and not spec.objective.minimize
    trial, rerun = spec.job_fields(rerun=False), spec.job_fields(rerun=True)
    assert trial["task"]["evaluate_test"] is False and rerun["task"]["evaluate_test"] is True
    assert trial["task"]["validation_size"] == rerun["task"]["validation_size"] == 20
    given = validate_sweep(jobs, {**SPEC, "task": {**TINY, "validation_size": 50}})
    assert given.task.validation_size == 50
    landscape = validate_sweep(jobs, {**SPEC, "epochs": None, "task": {"name": "rosenbrock"}})
    assert landscape.objective.metric == "loss"  # no data: the task's own metric, as before
    assert landscape.task.split_note() is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"objective": {"metric": "test_accuracy"}}, "objective.metric: 'test_accuracy' is"),
        ({"objective": {"kind": "best", "metric": "test_loss"}}, "objective.metric: 'test_loss'"),
        ({"task": {**TINY, "validation_size": 0}}, "task.validation_size: a sweep selects on"),
        ({"task": {**TINY, "validation_size": 150}}, "task.validation_size: carving 150"),
    ],
)
def test_selection_on_the_test_split_is_refused(
    jobs: JobService, change: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidSpec) as error:
        validate_sweep(jobs, {**SPEC, **change})
    assert str(error.value).startswith(message)


def test_the_api_answers_422_naming_the_objective_metric(make_client: Any) -> None:
    client = make_client()
    body = {**SPEC, "objective": {"metric": "test_accuracy"}}
    response = client.post("/api/sweeps", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith("objective.metric: 'test_accuracy' is scored")


@pytest.mark.slow  # three one-step CIFAR jobs: seconds, or a minute on a loaded machine
def test_trials_never_score_the_test_split_and_the_reruns_report_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    if not ARCHIVE.exists():
        pytest.skip(f"CIFAR-10 subset not found at {ARCHIVE} (set PSGD_PLAYGROUND_CIFAR)")
    monkeypatch.setenv(cifar.DATA_DIR_ENV, str(ARCHIVE.parent))
    scored: list[bool] = []
    real = cifar.CifarTask.score_test
    monkeypatch.setattr(
        cifar.CifarTask,
        "score_test",
        lambda self, x, y: (scored.append(self.config.evaluate_test), real(self, x, y))[1],
    )
    with sweep_service(tmp_path) as sweeps:
        sweep_id = sweeps.create(SPEC)["id"]
        wait_for(lambda: sweeps.sweep(sweep_id)["status"] != "running", timeout=600)
        sweep = sweeps.sweep(sweep_id)
        assert sweep["status"] == "succeeded", sweep["message"]
        store = sweeps.jobs.store
        comparison = store.get_comparison(sweep["comparison_id"])
        assert comparison is not None
        trial_ids = [t["job_id"] for t in sweep["trials"]]
        rerun_ids = comparison["job_ids"]

        def evaluated(job_id: str) -> list[set[str]]:
            events = [row["event"] for row in store.events([job_id], 0, 1000)]
            return [set(e["metrics"]) for e in events if e["type"] == "eval"]

        for job_id in trial_ids:
            assert evaluated(job_id)
            for keys in evaluated(job_id):
                assert "val_accuracy" in keys and not any(k.startswith("test") for k in keys)
        for trial in sweep["trials"]:
            job = store.get_job(trial["job_id"])
            assert job is not None
            assert trial["value"] == job["summary"]["final_eval"]["val_accuracy"]
        rerun_evals = [keys for job_id in rerun_ids for keys in evaluated(job_id)]
        assert rerun_evals and all({"val_accuracy", "test_accuracy"} <= k for k in rerun_evals)
    assert scored == [True] * len(rerun_evals)  # the test split: re-runs only
    assert sweep["held_out"] == (
        "selected on validation (20 images carved from train; 180 trained on); "
        "test (100 images) reported for the re-runs only"
    )
    assert sweep["rerun"]["summary"]["metric_name"] == "final test accuracy"
    assert f"data: {sweep['held_out']}" in report(sweep)  # the CLI's summary says so too
