"""Jobs created per minute and the job store's size (server/jobs/quota.py), alone and
through the API (fake executor)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_executor import FakeExecutor

from server.jobs.quota import MB, JobQuota, QuotaExceeded
from server.jobs.store import JobStore
from server.settings import Settings

JOB = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}, "steps": 3}
COMPARISON = {
    "task": {"name": "rosenbrock"},
    "optimizers": [{"name": "adam"}, {"name": "sgd"}],
    "seeds": [0, 1],
    "steps": 3,
}
SPEC = {"task": {"name": "rosenbrock"}}


pytestmark = pytest.mark.usefixtures("clean_env")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fill(store: JobStore, megabytes: float) -> str:
    """A job whose events take about `megabytes` of the store."""
    job_id = store.create_job(SPEC)
    point, step = [0.5] * 1000, 0
    while store.size_bytes() < megabytes * MB:
        store.append_event(job_id, {"type": "trajectory", "step": step, "point": point})
        step += 1
    return job_id


@pytest.fixture
def store(tmp_path: Path):
    with JobStore(tmp_path / "jobs.sqlite") as store:
        yield store


# ---------------------------------------------------------------------- the quota alone
def test_jobs_per_minute_is_a_sliding_window(store: JobStore, tmp_path: Path) -> None:
    clock = Clock()
    quota = JobQuota(store, Settings(data_dir=tmp_path, max_jobs_per_minute=5), clock)
    quota.admit(3)
    clock.now += 30
    quota.admit(2)
    with pytest.raises(QuotaExceeded, match="5 jobs were created in the last minute") as full:
        quota.admit(1)
    assert full.value.retry_after == 30  # when the first 3 age out
    clock.now += 30  # the first 3 left the window
    quota.admit(3)
    with pytest.raises(QuotaExceeded) as full:
        quota.admit(1)
    assert full.value.retry_after == 30
    clock.now += 61
    quota.admit(8)  # more than the window holds, but into an empty one: a big comparison
    with pytest.raises(QuotaExceeded):
        quota.admit(1)


def test_no_job_is_admitted_while_the_store_is_over_its_size(
    store: JobStore, tmp_path: Path
) -> None:
    quota = JobQuota(store, Settings(data_dir=tmp_path, max_store_mb=1))
    quota.admit(1)
    big = fill(store, 1.2)
    assert store.size_bytes() >= MB
    with pytest.raises(QuotaExceeded, match="its limit is 1 MB") as full:
        quota.admit(1)
    assert full.value.retry_after is None  # waiting does not help; deleting does
    store.delete_job(big)
    quota.admit(1)


# ---------------------------------------------------------------------- through the API
def paused() -> FakeExecutor:
    """An executor whose jobs stay queued until cancelled."""
    executor = FakeExecutor()
    executor.pause()
    return executor


def test_cancelled_jobs_still_count_against_jobs_per_minute(make_client) -> None:
    """Create and cancel, again and again: the queue empties each time, the quota does not."""
    client = make_client(paused(), max_jobs_per_minute=6, max_queued=4)
    for _ in range(2):
        job_id = client.post("/api/jobs", json=JOB).json()["id"]
        assert client.post(f"/api/jobs/{job_id}/cancel").json()["status"] == "cancelled"
    comparison = client.post("/api/comparisons", json=COMPARISON)
    assert comparison.status_code == 201  # 2 + 4 = 6 jobs this minute
    client.post(f"/api/comparisons/{comparison.json()['id']}/cancel")
    assert client.get("/api/health").json()["queued"] == 0
    for path, body in (("/api/jobs", JOB), ("/api/comparisons", COMPARISON)):
        refused = client.post(path, json=body)
        assert refused.status_code == 429
        assert refused.json()["detail"] == (
            "6 jobs were created in the last minute and this server creates at most 6 a "
            "minute (max_jobs_per_minute); retry later"
        )
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.get("/api/jobs").json()["total"] == 6  # nothing stored by the refusals


def test_a_full_store_refuses_new_jobs_until_some_are_deleted(make_client) -> None:
    client = make_client(paused(), max_store_mb=1)
    store = client.app.state.service.store  # type: ignore[attr-defined]
    big = fill(store, 1.2)
    refused = client.post("/api/jobs", json=JOB)
    assert refused.status_code == 429 and "Retry-After" not in refused.headers
    assert "(max_store_mb); delete old jobs or comparisons" in refused.json()["detail"]
    assert client.delete(f"/api/jobs/{big}").status_code == 204
    assert client.post("/api/jobs", json=JOB).status_code == 201
