"""GET /api/comparisons/{id}/summary over real runs (the runner in the executor's thread)."""

from __future__ import annotations

from typing import Any

from fake_executor import FakeExecutor
from test_api import wait_for

from server import stats
from server.runner import JobSpec, run_job


class RunnerExecutor(FakeExecutor):
    """The fake executor's queue and callbacks, with the real runner doing each job."""

    def _run(self, job_id: str, spec: dict[str, Any], crash: bool, diverge: bool) -> None:
        self.on_launch(job_id, None, None)
        run_job(JobSpec.model_validate(spec), lambda e: self.on_event(job_id, e.model_dump()))
        self.on_exit(job_id, None)


COMPARISON = {
    "task": {"name": "quadratic", "dim": 4, "noise": 0.1, "condition_number": 10},
    "optimizers": [{"name": "adam", "lr": 0.1}, {"name": "sgd", "lr": 0.001}],
    "seeds": [0, 1, 2],
    "steps": 60,
    "target": 0.05,
    "device": "cpu",
}


def test_a_comparison_summary_agrees_with_its_jobs(make_client) -> None:
    client = make_client(executor=RunnerExecutor(max_steps=60))
    comparison = client.post("/api/comparisons", json=COMPARISON).json()
    jobs = [wait_for(client, job_id, "succeeded", timeout=60) for job_id in comparison["job_ids"]]
    response = client.get(f"/api/comparisons/{comparison['id']}/summary")
    assert response.status_code == 200
    summary = response.json()
    assert (summary["comparison_id"], summary["pending"]) == (comparison["id"], 0)
    assert (summary["metric"], summary["success"], summary["target"]) == ("loss", "target", 0.05)
    adam, sgd = summary["optimizers"]
    assert (adam["label"], sgd["label"]) == ("adam", "sgd")
    finals = [job["summary"]["final_loss"] for job in jobs[:3]]
    interval = stats.mean_interval(finals)
    assert adam["final"]["mean"] == interval.estimate
    assert (adam["final"]["low"], adam["final"]["high"]) == (interval.low, interval.high)
    reached = [job["summary"]["target_step"] for job in jobs[:3]]
    assert adam["success"]["successes"] == sum(step is not None for step in reached)
    spread = stats.censored_spread(reached)
    assert adam["to_target"]["steps"]["median"] == spread.median
    # a first-order step is one gradient evaluation: the two axes agree
    assert adam["to_target"]["evaluations"]["median"] == spread.median
    (pair,) = summary["pairs"]
    assert (pair["a"], pair["b"]) == ("adam", "sgd")
    assert pair["sentence"].startswith(("adam has a lower", "adam vs sgd: no difference"))
    diff = stats.welch(finals, [job["summary"]["final_loss"] for job in jobs[3:]])
    assert diff is not None and pair["beyond_noise"] == diff.beyond_noise


def test_summary_of_an_unknown_comparison_is_404(make_client) -> None:
    client = make_client()
    response = client.get("/api/comparisons/nope/summary")
    assert response.status_code == 404
    assert "no comparison" in response.json()["detail"]


def test_runs_still_queued_are_pending_not_counted(make_client) -> None:
    client = make_client()
    client.executor.pause()
    comparison = client.post(
        "/api/comparisons",
        json={"task": {"name": "rosenbrock"}, "optimizers": [{"name": "adam"}], "seeds": [0, 1]},
    ).json()
    summary = client.get(f"/api/comparisons/{comparison['id']}/summary").json()
    assert summary["pending"] == 2
    assert summary["optimizers"] == [] and summary["pairs"] == []


def test_the_metrics_export_carries_the_work_counts(make_client) -> None:
    client = make_client(executor=RunnerExecutor(max_steps=5))
    job = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "lbfgs"}, "steps": 3}
    job_id = client.post("/api/jobs", json={**job, "device": "cpu"}).json()["id"]
    wait_for(client, job_id, "succeeded", timeout=60)
    points = client.get(f"/api/jobs/{job_id}/metrics").json()["metrics"]
    calls = [p["function_evaluations"] for p in points]
    assert calls == [p["gradient_evaluations"] for p in points] and calls[0] > 1
    assert [p["hessian_vector_products"] for p in points] == [0, 0, 0]
    csv = client.get(f"/api/jobs/{job_id}/metrics", params={"format": "csv"}).text
    assert f",{calls[-1]},{calls[-1]},0" in csv.splitlines()[-1]
