"""The SQLite job store: schema migrations, CRUD, pagination, event replay, metrics
thinning, crash recovery, persistence and thread safety."""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.jobs import store as store_module
from server.jobs.store import JobStore

SPEC = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam", "lr": 0.01}, "steps": 10}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "data" / "jobs.sqlite"


@pytest.fixture
def store(db: Path) -> Iterator[JobStore]:
    with JobStore(db) as s:
        yield s


def metrics(step: int, loss: float = 1.0) -> dict:
    return {
        "type": "metrics",
        "step": step,
        "loss": loss,
        "grad_norm": 0.5,
        "lr": 0.01,
        "step_time": 0.001,
        "elapsed": step * 0.001,
    }


def status_event(status: str = "succeeded", step: int = 10) -> dict:
    return {"type": "status", "step": step, "status": status, "message": "", "summary": {}}


def user_version(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("PRAGMA user_version").fetchone()[0]


# ---- migrations -----------------------------------------------------------------------------


def test_new_database_is_created_at_the_latest_schema_version_and_reopens(db: Path) -> None:
    JobStore(db).close()
    assert user_version(db) == len(store_module.MIGRATIONS)
    with JobStore(db) as reopened:
        assert reopened.schema_version == len(store_module.MIGRATIONS)
    assert user_version(db) == len(store_module.MIGRATIONS)


def test_database_uses_wal_journal(db: Path) -> None:
    JobStore(db).close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_reopening_applies_only_the_pending_migrations(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with JobStore(db) as s:
        job = s.create_job(SPEC)
    latest = len(store_module.MIGRATIONS) + 1
    monkeypatch.setattr(
        store_module, "MIGRATIONS", (*store_module.MIGRATIONS, "CREATE TABLE extra (x INTEGER)")
    )
    for _ in range(2):  # re-running the new version would fail: the table already exists
        with JobStore(db) as s:
            assert s.schema_version == latest
            assert s.get_job(job) is not None
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM extra").fetchone()[0] == 0


def test_failed_migration_leaves_database_at_previous_version(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    JobStore(db).close()
    previous = len(store_module.MIGRATIONS)
    monkeypatch.setattr(
        store_module,
        "MIGRATIONS",
        (*store_module.MIGRATIONS, "CREATE TABLE half (x); THIS IS NOT SQL"),
    )
    with pytest.raises(sqlite3.OperationalError):
        JobStore(db)
    assert user_version(db) == previous
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "half" not in tables


def test_database_from_a_newer_server_is_refused(db: Path) -> None:
    JobStore(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(RuntimeError, match="newer"):
        JobStore(db)


# ---- jobs -----------------------------------------------------------------------------------


def test_created_job_is_queued_with_its_spec_and_label(store: JobStore) -> None:
    job_id = store.create_job(SPEC, label="adam seed=0")
    job = store.get_job(job_id)
    assert job is not None
    assert len(job_id) == 12
    assert job == {
        "id": job_id,
        "comparison_id": None,
        "optimizer": "adam",
        "optimizer_label": "adam",  # the optimizer's name unless given
        "seed": None,  # SPEC has none (a validated JobSpec always has one)
        "label": "adam seed=0",
        "status": "queued",
        "message": "",
        "summary": {},
        "spec": SPEC,
        "created": job["created"],
        "started": None,
        "finished": None,
    }
    assert isinstance(job["created"], float)


def test_a_job_stored_before_optimizer_labels_reads_its_optimizer_name(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "MIGRATIONS", store_module.MIGRATIONS[:2])
    JobStore(db).close()  # a database at version 2
    monkeypatch.undo()
    with sqlite3.connect(db) as conn:  # a row as a version-2 server wrote it
        conn.execute(
            "INSERT INTO jobs (id, label, spec, status, created) VALUES (?, ?, ?, 'queued', 0)",
            ("old1", "sgd seed=2", json.dumps({**SPEC, "optimizer": {"name": "sgd"}, "seed": 2})),
        )
    with JobStore(db) as store:
        job = store.get_job("old1")
    assert job is not None
    assert (job["optimizer"], job["optimizer_label"], job["seed"]) == ("sgd", "sgd", 2)


def test_a_job_keeps_its_identity_in_full_and_in_lists(store: JobStore) -> None:
    cid = store.create_comparison({"optimizers": [{"name": "adam"}, {"name": "adam"}]})
    spec = {**SPEC, "seed": 4}
    job_id = store.create_job(spec, cid, "adam#2 seed=4", optimizer_label="adam#2")
    identity = {"optimizer": "adam", "optimizer_label": "adam#2", "seed": 4}
    job = store.get_job(job_id)
    assert job is not None and identity.items() <= job.items()
    (brief,), _ = store.list_jobs(brief=True)
    assert identity.items() <= brief.items() and "spec" not in brief


def test_unknown_job_is_none(store: JobStore) -> None:
    assert store.get_job("nope") is None


def test_job_in_unknown_comparison_is_refused(store: JobStore) -> None:
    with pytest.raises(KeyError):
        store.create_job(SPEC, comparison_id="nope")


def test_status_changes_stamp_started_and_finished(store: JobStore) -> None:
    job_id = store.create_job(SPEC)
    store.set_status(job_id, "running")
    running = store.get_job(job_id)
    assert running is not None
    assert running["status"] == "running"
    assert running["started"] is not None and running["finished"] is None
    store.set_status(job_id, "diverged", "loss became nan", {"final_loss": math.inf})
    done = store.get_job(job_id)
    assert done is not None
    assert done["status"] == "diverged" and done["message"] == "loss became nan"
    assert done["summary"] == {"final_loss": math.inf}
    assert done["started"] == running["started"]
    assert done["finished"] >= done["started"]


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled", "interrupted"])
def test_every_ending_status_stamps_finished(store: JobStore, status: str) -> None:
    job_id = store.create_job(SPEC)
    store.set_status(job_id, status)
    job = store.get_job(job_id)
    assert job is not None and job["finished"] is not None


def test_status_without_summary_keeps_the_stored_summary(store: JobStore) -> None:
    job_id = store.create_job(SPEC)
    store.set_status(job_id, "failed", "boom", {"steps": 3})
    store.set_status(job_id, "failed", "boom again")
    job = store.get_job(job_id)
    assert job is not None and job["summary"] == {"steps": 3} and job["message"] == "boom again"


def test_requeued_job_forgets_its_previous_run_times(store: JobStore) -> None:
    job_id = store.create_job(SPEC)
    store.set_status(job_id, "running")
    store.set_status(job_id, "interrupted")
    store.set_status(job_id, "queued")
    job = store.get_job(job_id)
    assert job is not None and job["started"] is None and job["finished"] is None


def test_unknown_status_or_job_is_refused(store: JobStore) -> None:
    job_id = store.create_job(SPEC)
    with pytest.raises(ValueError, match="unknown status"):
        store.set_status(job_id, "exploded")
    with pytest.raises(KeyError):
        store.set_status("nope", "running")


def test_job_list_pages_newest_first_with_total(store: JobStore) -> None:
    ids = [store.create_job(SPEC, label=str(i)) for i in range(7)]
    newest_first = ids[::-1]
    page, total = store.list_jobs(offset=0, limit=3)
    assert total == 7 and [j["id"] for j in page] == newest_first[:3]
    page, total = store.list_jobs(offset=3, limit=3)
    assert total == 7 and [j["id"] for j in page] == newest_first[3:6]
    page, total = store.list_jobs(offset=6, limit=3)
    assert [j["id"] for j in page] == newest_first[6:]
    page, total = store.list_jobs(offset=50)
    assert page == [] and total == 7


def test_job_list_filters_by_status_and_comparison(store: JobStore) -> None:
    cid = store.create_comparison({"optimizers": []})
    in_comparison = [store.create_job(SPEC, comparison_id=cid) for _ in range(3)]
    alone = store.create_job(SPEC)
    store.set_status(in_comparison[0], "running")
    store.set_status(alone, "running")

    page, total = store.list_jobs(status="running")
    assert total == 2 and {j["id"] for j in page} == {alone, in_comparison[0]}
    page, total = store.list_jobs(comparison_id=cid)
    assert total == 3 and {j["id"] for j in page} == set(in_comparison)
    page, total = store.list_jobs(status="queued", comparison_id=cid)
    assert total == 2 and {j["id"] for j in page} == set(in_comparison[1:])


# ---- comparisons ----------------------------------------------------------------------------


def test_comparison_lists_its_jobs_in_creation_order(store: JobStore) -> None:
    spec = {"task": {"name": "rosenbrock"}, "optimizers": [{"name": "adam"}], "seeds": [0, 1]}
    cid = store.create_comparison(spec)
    jobs = [store.create_job(SPEC, comparison_id=cid, label=f"adam seed={k}") for k in (0, 1)]
    comparison = store.get_comparison(cid)
    assert comparison is not None
    assert comparison["id"] == cid and comparison["spec"] == spec
    assert comparison["job_ids"] == jobs
    assert isinstance(comparison["created"], float)
    assert store.get_job(jobs[0])["comparison_id"] == cid  # type: ignore[index]


@pytest.mark.parametrize(
    ("statuses", "aggregate"),
    [
        (["queued", "succeeded"], "running"),
        (["running", "failed"], "running"),
        (["succeeded", "succeeded"], "succeeded"),
        (["succeeded", "diverged"], "finished"),
        (["cancelled", "interrupted"], "finished"),
    ],
)
def test_comparison_status_summarises_its_jobs(
    store: JobStore, statuses: list[str], aggregate: str
) -> None:
    cid = store.create_comparison({})
    for status in statuses:
        store.set_status(store.create_job(SPEC, comparison_id=cid), status)
    comparison = store.get_comparison(cid)
    assert comparison is not None and comparison["status"] == aggregate


def test_unknown_comparison_is_none(store: JobStore) -> None:
    assert store.get_comparison("nope") is None


def test_comparison_list_pages_newest_first_with_total(store: JobStore) -> None:
    ids = [store.create_comparison({"n": i}) for i in range(5)]
    store.create_job(SPEC, comparison_id=ids[-1])
    page, total = store.list_comparisons(offset=0, limit=2)
    assert total == 5 and [c["id"] for c in page] == [ids[4], ids[3]]
    assert len(page[0]["job_ids"]) == 1 and page[0]["status"] == "running"
    page, total = store.list_comparisons(offset=4, limit=2)
    assert [c["id"] for c in page] == [ids[0]]


def test_deleting_a_job_removes_its_events(store: JobStore) -> None:
    doomed, kept = store.create_job(SPEC), store.create_job(SPEC)
    store.append_event(doomed, metrics(1))
    kept_event = store.append_event(kept, metrics(1))
    assert store.delete_job(doomed) is True
    assert store.get_job(doomed) is None
    assert store.events([doomed]) == []
    assert [row["id"] for row in store.events([kept])] == [kept_event]
    assert store.delete_job(doomed) is False


def test_deleting_a_comparison_removes_its_jobs_and_their_events(store: JobStore) -> None:
    cid = store.create_comparison({})
    jobs = [store.create_job(SPEC, comparison_id=cid) for _ in range(2)]
    other = store.create_job(SPEC)
    for job_id in [*jobs, other]:
        store.append_event(job_id, metrics(1))
    assert store.delete_comparison(cid) is True
    assert store.get_comparison(cid) is None
    assert all(store.get_job(job_id) is None for job_id in jobs)
    assert store.events(jobs) == []
    assert len(store.events([other])) == 1 and store.get_job(other) is not None
    assert store.delete_comparison(cid) is False


# ---- events ---------------------------------------------------------------------------------


def test_events_replay_in_id_order_across_jobs(store: JobStore) -> None:
    a, b = store.create_job(SPEC), store.create_job(SPEC)
    appended = []
    for step in range(5):
        for job_id in (a, b):
            appended.append((store.append_event(job_id, metrics(step)), job_id, step))
    rows = store.events([a, b])
    assert [(r["id"], r["job_id"], r["event"]["step"]) for r in rows] == appended
    assert rows[0]["event"] == metrics(0)
    assert [r["id"] for r in store.events([b])] == [i for i, job, _ in appended if job == b]


def test_events_after_an_id_are_the_missed_ones_and_limit_caps_them(store: JobStore) -> None:
    job_id = store.create_job(SPEC)
    ids = [store.append_event(job_id, metrics(step)) for step in range(6)]
    assert [r["id"] for r in store.events([job_id], after=ids[2])] == ids[3:]
    assert [r["id"] for r in store.events([job_id], after=ids[2], limit=2)] == ids[3:5]
    assert store.events([job_id], after=ids[-1]) == []


def test_events_of_no_jobs_or_unknown_jobs_are_empty(store: JobStore) -> None:
    assert store.events([]) == []
    assert store.events(["nope"]) == []


def test_event_for_an_unknown_job_is_refused(store: JobStore) -> None:
    with pytest.raises(KeyError):
        store.append_event("nope", metrics(1))
    job_id = store.create_job(SPEC)
    store.delete_job(job_id)
    with pytest.raises(KeyError):
        store.append_event(job_id, status_event("cancelled"))


def test_event_ids_are_never_reused_after_deletes(store: JobStore) -> None:
    first = store.create_job(SPEC)
    last_id = store.append_event(first, metrics(1))
    store.delete_job(first)
    second = store.create_job(SPEC)
    assert store.append_event(second, metrics(1)) > last_id


def test_nan_and_infinite_values_round_trip(store: JobStore) -> None:
    job_id = store.create_job(SPEC)
    store.append_event(job_id, metrics(1, loss=math.nan))
    store.append_event(job_id, metrics(2, loss=-math.inf))
    losses = [row["event"]["loss"] for row in store.events([job_id])]
    assert math.isnan(losses[0]) and losses[1] == -math.inf


# ---- metrics thinning -----------------------------------------------------------------------


def test_long_run_metrics_are_thinned_keeping_first_last_and_minimum(db: Path) -> None:
    with JobStore(db, max_metric_points=100) as s:
        job_id = s.create_job(SPEC)
        ids = {}
        for step in range(1, 1001):
            loss = 0.001 if step == 537 else 1.0 + step % 7
            ids[step] = s.append_event(job_id, metrics(step, loss))
        rows = s.events([job_id])
    steps = [row["event"]["step"] for row in rows]
    assert 100 <= len(rows) <= 200
    assert {1, 537, 1000} <= set(steps)
    kept_ids = [row["id"] for row in rows]
    assert kept_ids == sorted(kept_ids)
    assert all(row["id"] == ids[row["event"]["step"]] for row in rows)  # ids never change


def test_thinning_keeps_the_whole_run_evenly_covered(db: Path) -> None:
    with JobStore(db, max_metric_points=100) as s:
        job_id = s.create_job(SPEC)
        for step in range(1, 3001):
            s.append_event(job_id, metrics(step))
        steps = [row["event"]["step"] for row in s.events([job_id])]
    per_tenth = [sum(1 for step in steps if k * 300 < step <= (k + 1) * 300) for k in range(10)]
    assert min(per_tenth) >= 5, per_tenth  # early steps are not thinned away run after run


def test_thinning_never_touches_other_event_types_or_jobs(db: Path) -> None:
    with JobStore(db, max_metric_points=20) as s:
        job_id, neighbour = s.create_job(SPEC), s.create_job(SPEC)
        started = s.append_event(job_id, {"type": "started", "step": 0, "total_steps": 500})
        others = [started]
        neighbour_ids = [s.append_event(neighbour, metrics(step)) for step in range(30)]
        for step in range(1, 501):
            s.append_event(job_id, metrics(step))
            if step % 10 == 0:
                others.append(s.append_event(job_id, {"type": "spectrum", "step": step}))
        others.append(s.append_event(job_id, status_event(step=500)))
        rows = s.events([job_id])
        assert [r["id"] for r in rows if r["event"]["type"] != "metrics"] == others
        assert 20 <= sum(r["event"]["type"] == "metrics" for r in rows) <= 40
        assert [r["id"] for r in s.events([neighbour])] == neighbour_ids


def test_non_finite_losses_never_count_as_the_minimum(db: Path) -> None:
    with JobStore(db, max_metric_points=10) as s:
        job_id = s.create_job(SPEC)
        for step in range(1, 101):
            loss = {40: -math.inf, 50: math.nan, 77: -5.0}.get(step, float(step))
            s.append_event(job_id, metrics(step, loss))
        steps = {row["event"]["step"] for row in s.events([job_id])}
    assert 77 in steps


def test_thinning_resumes_from_stored_counts_after_reopen(db: Path) -> None:
    with JobStore(db, max_metric_points=50) as s:
        job_id = s.create_job(SPEC)
        for step in range(1, 91):
            s.append_event(job_id, metrics(step))
    with JobStore(db, max_metric_points=50) as s:
        for step in range(91, 131):
            s.append_event(job_id, metrics(step))
        assert len(s.events([job_id])) <= 100


# ---- recovery and persistence ---------------------------------------------------------------


def _jobs_in_every_state(s: JobStore) -> dict[str, str]:
    jobs = {}
    for status in ("queued", "running", "succeeded", "cancelled"):
        jobs[status] = s.create_job(SPEC)
        if status != "queued":
            s.set_status(jobs[status], "running")
        if status not in ("queued", "running"):
            s.set_status(jobs[status], status)
    return jobs


def test_recover_marks_jobs_left_running_as_interrupted(db: Path) -> None:
    with JobStore(db) as s:
        jobs = _jobs_in_every_state(s)
    with JobStore(db) as s:
        assert s.recover(requeue=False) == [jobs["running"]]
        statuses = {name: s.get_job(job_id)["status"] for name, job_id in jobs.items()}  # type: ignore[index]
        interrupted = s.get_job(jobs["running"])
        assert s.recover(requeue=False) == []
    assert statuses == {
        "queued": "queued",
        "running": "interrupted",
        "succeeded": "succeeded",
        "cancelled": "cancelled",
    }
    assert interrupted is not None and interrupted["finished"] is not None
    assert interrupted["message"]


def test_recover_ends_each_interrupted_job_with_one_interrupted_status_event(db: Path) -> None:
    with JobStore(db) as s:
        jobs = _jobs_in_every_state(s)
        s.append_event(jobs["running"], {"type": "metrics", "step": 3, "loss": 1.0})
        before = s.events([jobs["running"]])
    with JobStore(db) as s:
        s.recover(requeue=False)
        events = s.events([jobs["running"]])
        job = s.get_job(jobs["running"])
        assert s.events([jobs["succeeded"]]) == []  # finished jobs are left as they were
    assert job is not None and events[:-1] == before
    assert events[-1]["event"] == {
        "type": "status",
        "step": 3,
        "status": "interrupted",
        "message": job["message"],
        "summary": {},
    }


def test_recover_does_not_requeue_a_job_whose_worker_survived(db: Path) -> None:
    with JobStore(db) as s:
        jobs = [s.create_job(SPEC) for _ in range(2)]
        for job_id in jobs:
            s.mark_running(job_id)
    with JobStore(db) as s:
        assert s.recover(requeue=True, keep_interrupted={jobs[1]}) == jobs
        requeued, kept = (s.get_job(job_id) for job_id in jobs)
        assert [row["event"]["status"] for row in s.events([jobs[1]])] == ["interrupted"]
    assert requeued is not None and requeued["status"] == "queued"
    assert kept is not None and kept["status"] == "interrupted"
    assert "could not be stopped" in kept["message"]


def test_a_worker_taking_a_job_makes_it_running_and_is_recorded(store: JobStore) -> None:
    job_id = store.create_job(SPEC)
    assert store.mark_running(job_id, 4321, 99) is True
    running = store.get_job(job_id)
    assert running is not None and running["status"] == "running" and running["started"]
    assert store.leftover_workers() == [(job_id, 4321, 99)]
    assert store.mark_running(job_id) is False  # its `started` event later changes nothing
    assert store.get_job(job_id) == running
    store.set_status(job_id, "succeeded")
    assert store.leftover_workers() == []  # an ended job has no worker
    assert store.mark_running(job_id) is False
    assert store.get_job(job_id)["status"] == "succeeded"  # type: ignore[index]
    with pytest.raises(KeyError):
        store.mark_running("nope")


def test_status_counts_list_every_status(store: JobStore) -> None:
    _jobs_in_every_state(store)
    assert store.count_by_status() == {
        "queued": 1,
        "running": 1,
        "succeeded": 1,
        "diverged": 0,
        "failed": 0,
        "cancelled": 1,
        "interrupted": 0,
    }


def test_recover_with_requeue_queues_jobs_left_running_again(db: Path) -> None:
    with JobStore(db) as s:
        jobs = _jobs_in_every_state(s)
        s.append_event(jobs["running"], {"type": "started", "step": 0})
        s.append_event(jobs["succeeded"], {"type": "started", "step": 0})
    with JobStore(db) as s:
        assert s.recover(requeue=True) == [jobs["running"]]
        requeued = s.get_job(jobs["running"])
        assert s.get_job(jobs["queued"])["status"] == "queued"  # type: ignore[index]
        assert s.events([jobs["running"]]) == []  # the rerun's stream starts afresh
        assert len(s.events([jobs["succeeded"]])) == 1
    assert requeued is not None
    assert requeued["status"] == "queued" and requeued["started"] is None


def test_finished_jobs_and_events_survive_close_and_reopen(db: Path) -> None:
    with JobStore(db) as s:
        cid = s.create_comparison({"seeds": [0]})
        job_id = s.create_job(SPEC, comparison_id=cid, label="adam seed=0")
        s.set_status(job_id, "running")
        s.append_event(job_id, metrics(1))
        s.append_event(job_id, status_event())
        s.set_status(job_id, "succeeded", "", {"final_loss": 0.5})
        job_before, events_before = s.get_job(job_id), s.events([job_id])
    with JobStore(db) as s:
        assert s.get_job(job_id) == job_before
        assert s.events([job_id]) == events_before
        assert s.get_comparison(cid)["status"] == "succeeded"  # type: ignore[index]


def test_closed_store_can_be_closed_again_but_not_used(db: Path) -> None:
    s = JobStore(db)
    s.close()
    s.close()
    with pytest.raises(sqlite3.ProgrammingError):
        s.get_job("x")


# ---- concurrency ----------------------------------------------------------------------------


def test_concurrent_appends_from_four_threads_get_unique_ordered_ids(store: JobStore) -> None:
    jobs = [store.create_job(SPEC) for _ in range(4)]
    shared = store.create_job(SPEC)
    results: dict[int, list[int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(k: int) -> None:
        try:
            barrier.wait()
            ids = []
            for step in range(200):
                ids.append(store.append_event(jobs[k], metrics(step)))
                ids.append(store.append_event(shared, {"type": "eval", "step": step, "k": k}))
                if step % 50 == 0:
                    store.list_jobs()
                    store.set_status(jobs[k], "running")
            results[k] = ids
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    all_ids = [i for ids in results.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)) == 4 * 400
    for ids in results.values():
        assert ids == sorted(ids)  # each thread sees its own appends in order
    assert len(store.events([shared])) == 800
    for k, job_id in enumerate(jobs):
        assert [r["event"]["step"] for r in store.events([job_id])] == list(range(200))
        assert [r["id"] for r in store.events([job_id])] == results[k][::2]
