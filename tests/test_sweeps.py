"""Sweeps in the service: search spaces from the schemas, determinism, resume after a
restart, pruning, and the Optuna glue as pure functions.

The jobs really run (tests/thread_executor.py: run_job on a thread, no worker process),
on Rosenbrock for a few dozen steps, so a trial's value depends on its hyperparameters.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from thread_executor import ThreadExecutor

from server.jobs.service import JobService
from server.jobs.store import JobStore
from server.optimizers import REGISTRY
from server.settings import Settings
from server.sweeps import search
from server.sweeps.service import SweepService
from server.sweeps.space import Param, SpaceError, default_param
from server.sweeps.spec import Objective, Pruning, SweepOptimizer
from server.sweeps.store import SweepStore

SPEC: dict[str, Any] = {
    "task": {"name": "rosenbrock"},
    "steps": 20,
    "trials": 3,
    "parallel": 2,
    "seeds": 1,
    "optimizers": [{"name": "adam", "tune": ["lr"]}, {"name": "sgd", "tune": ["lr", "momentum"]}],
}


@contextlib.contextmanager
def sweep_service(folder: Path, executor: ThreadExecutor | None = None) -> Iterator[SweepService]:
    """A started JobService and SweepService on the job store in `folder`, as the server's
    lifespan makes them; stopped (not cancelled) at the end, as a server shutdown does."""
    settings = Settings(data_dir=folder)
    store = JobStore(settings.db_path)
    jobs = JobService(store, executor or ThreadExecutor(), None, settings)
    jobs.start()
    sweeps = SweepService(jobs, SweepStore(settings.db_path), poll_seconds=0.02)
    sweeps.start()
    try:
        yield sweeps
    finally:
        sweeps.stop()
        sweeps.store.close()
        jobs.stop()
        store.close()


def wait_for(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def run_to_end(sweeps: SweepService, spec: dict[str, Any]) -> dict[str, Any]:
    sweep_id = sweeps.create(spec)["id"]
    wait_for(lambda: sweeps.sweep(sweep_id)["status"] != "running")
    return sweeps.sweep(sweep_id)


def outcomes(sweep: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [
        (t["optimizer"], t["number"], t["params"], t["status"], t["value"]) for t in sweep["trials"]
    ]


# ---------------------------------------------------------------------- end to end
def test_a_sweep_searches_each_optimizer_then_reruns_each_best_on_fresh_seeds(
    tmp_path: Path, clean_env: None
) -> None:
    with sweep_service(tmp_path) as sweeps:
        sweep = run_to_end(sweeps, SPEC)
        jobs = sweeps.jobs
        assert sweep["status"] == "succeeded", sweep["message"]
        assert [(t["optimizer"], t["number"]) for t in sweep["trials"]] == [
            (name, k) for name in ("adam", "sgd") for k in range(3)
        ]
        for trial in sweep["trials"]:  # each trial is an ordinary job with its params
            job = jobs.job(trial["job_id"])
            for key, value in trial["params"].items():
                assert job["spec"]["optimizer"][key] == value
            assert job["spec"]["steps"] == 20 and job["spec"]["seed"] == 0
            if trial["status"] == "complete":
                assert trial["value"] == job["summary"]["final_loss"]
        space = sweep["optimizers"][1]["space"]  # sgd's, derived from its schema
        assert space["momentum"] == {
            "type": "float",
            "low": 0.0,
            "high": pytest.approx(0.999),
            "log": False,
            "values": None,
        }
        comparison = jobs.comparison(sweep["comparison_id"])
        rerun_specs = [jobs.job(job_id)["spec"] for job_id in comparison["job_ids"]]
        assert [s["seed"] for s in rerun_specs] == [1, 1]  # the next seed after the trials'
        for optimizer, rerun in zip(sweep["optimizers"], rerun_specs):
            best = optimizer["best"]
            complete = [
                t
                for t in sweep["trials"]
                if t["optimizer"] == optimizer["name"] and t["status"] == "complete"
            ]
            assert best["value"] == min(t["value"] for t in complete)
            assert {k: rerun["optimizer"][k] for k in best["params"]} == best["params"]
        assert sweep["rerun"]["summary"]["optimizers"][0]["label"] == "adam"


def test_the_same_sweep_twice_gives_the_same_trials(tmp_path: Path, clean_env: None) -> None:
    with sweep_service(tmp_path) as sweeps:
        first, second = run_to_end(sweeps, SPEC), run_to_end(sweeps, SPEC)
    assert outcomes(first) == outcomes(second)
    assert len({str(t["params"]) for t in first["trials"]}) == 6  # the trials differ


def test_a_sweep_stopped_mid_search_resumes_where_it_was_and_ends_as_an_unbroken_one(
    tmp_path: Path, clean_env: None
) -> None:
    spec = {**SPEC, "optimizers": SPEC["optimizers"][:1], "trials": 6}
    with sweep_service(tmp_path / "unbroken") as sweeps:
        unbroken = run_to_end(sweeps, spec)

    slow = ThreadExecutor(step_delay=0.02)  # a trial's job runs ≈ 0.4 s: one is caught running
    with sweep_service(tmp_path / "restarted", slow) as sweeps:
        sweep_id = sweeps.create(spec)["id"]

        def caught() -> list[dict[str, Any]]:
            trials = sweeps.store.trials(sweep_id)
            if not any(t["status"] == "complete" for t in trials):
                return []
            jobs = [sweeps.jobs.store.get_job(t["job_id"]) for t in trials if t["job_id"]]
            return [job for job in jobs if job and job["status"] == "running"]

        wait_for(caught)
        running_job = caught()[0]["id"]
    # the server stopped: the sweep and its trials in flight are left running
    with contextlib.closing(SweepStore(tmp_path / "restarted" / "jobs.sqlite")) as left:
        assert left.get_sweep(sweep_id)["status"] == "running"
        finished = [t for t in left.trials(sweep_id) if t["status"] != "running"]
        assert 1 <= len(finished) < 6
        rerun = next(t for t in left.trials(sweep_id) if t["job_id"] == running_job)

    with sweep_service(tmp_path / "restarted") as sweeps:  # a new server on the same store
        wait_for(lambda: sweeps.sweep(sweep_id)["status"] != "running")
        resumed = sweeps.sweep(sweep_id)
        events = [row["event"]["type"] for row in sweeps.store.events(sweep_id)]
        # the trial whose job the stop interrupted ran again as a new job; the partial
        # run is gone
        again = resumed["trials"][rerun["number"]]
        assert again["job_id"] != running_job and again["status"] == "complete"
        assert sweeps.jobs.store.get_job(running_job) is None
    assert resumed["status"] == "succeeded"
    assert "resumed" in events
    assert outcomes(resumed) == outcomes(unbroken)


def test_pruning_stops_trials_worse_than_the_median_and_cancels_their_jobs(
    tmp_path: Path, clean_env: None
) -> None:
    spec = {
        "task": {"name": "rosenbrock"},
        "steps": 40,
        "trials": 4,
        "seeds": 0,
        "sampler": "random",
        "seed": 4,  # the random sampler's draws for it: 0.01, then 1e-6 three times
        "pruning": {"startup_trials": 1},
        # Adam at 1e-6 hardly moves: its loss stays above the complete trials' from step 2
        "optimizers": [
            {"name": "adam", "space": {"lr": {"type": "choice", "values": [0.01, 1e-6]}}}
        ],
    }
    with sweep_service(tmp_path, ThreadExecutor(step_delay=0.01)) as sweeps:
        sweep = run_to_end(sweeps, spec)
        trials = sweep["trials"]
        assert [t["params"]["lr"] for t in trials] == [0.01, 1e-6, 1e-6, 1e-6]
        assert [t["status"] for t in trials] == ["complete", "pruned", "pruned", "pruned"]
        for trial in trials[1:]:
            assert sweeps.jobs.job(trial["job_id"])["status"] == "cancelled"
            assert 2 <= max(map(int, trial["intermediate"])) < 40  # stopped on the way


# ---------------------------------------------------------------------- spaces
@pytest.mark.parametrize(
    ("optimizer", "field", "default", "expected"),
    [
        ("adam", "lr", 0.01, Param(type="float", low=1e-4, high=1.0, log=True)),
        ("adam", "eps", 1e-8, Param(type="float", low=1e-10, high=1e-6, log=True)),
        ("sgd", "momentum", 0.0, Param(type="float", low=0.0, high=0.999, log=False)),
        ("lbfgs", "history_size", 100, Param(type="int", low=10, high=1000, log=True)),
        ("psgd-kron", "fitting", "whiten", Param(type="choice", values=["whiten", "newton"])),
        (
            "psgd-kron",
            "preconditioner_dtype",
            None,
            Param(type="choice", values=["fp32", "bf16", "fp64", None]),
        ),
    ],
)
def test_default_ranges_come_from_the_schema_bounds_and_the_default(
    optimizer: str, field: str, default: Any, expected: Param
) -> None:
    param = default_param(REGISTRY[optimizer], field, default)
    assert param.type == expected.type and param.log == expected.log
    assert param.values == expected.values
    if expected.low is not None:
        assert (param.low, param.high) == (
            pytest.approx(expected.low),
            pytest.approx(expected.high),
        )


@pytest.mark.parametrize(
    ("optimizer", "field", "message"),
    [
        ("adam", "weight_decay", "no default range for 'weight_decay'"),
        ("psgd-kron", "update_clip_norm", "no default range"),
        ("adam", "momentum", "no hyperparameter 'momentum'"),
    ],
)
def test_a_field_without_a_sensible_default_range_is_named(
    optimizer: str, field: str, message: str
) -> None:
    schema = REGISTRY[optimizer]
    default = schema.model_fields[field].default if field in schema.model_fields else None
    with pytest.raises(SpaceError, match=message):
        default_param(schema, field, default)


# ---------------------------------------------------------------------- search, pure
ADAM = SweepOptimizer.model_validate(
    {"name": "adam", "space": {"lr": {"type": "float", "low": 1e-4, "high": 1.0, "log": True}}}
)


def trial(number: int, value: float | None, status: str = "complete", **inter: float) -> dict:
    return {
        "number": number,
        "params": {"lr": 0.001 * (number + 1)},
        "status": status,
        "value": value,
        "intermediate": {str(k.removeprefix("s")): v for k, v in inter.items()},
    }


def test_ask_depends_only_on_the_told_trials_and_the_seed() -> None:
    told = [trial(0, 3.0), trial(1, None, "diverged")]
    first = search.ask(ADAM, told, True, "tpe", 7)
    assert search.ask(ADAM, told, True, "tpe", 7) == first
    assert search.ask(ADAM, told, True, "tpe", 8) != first
    assert 1e-4 <= first["lr"] <= 1.0


def test_median_pruner_stops_a_trial_worse_than_the_median_at_its_step() -> None:
    finished = [trial(i, 1.0, s5=1.0 + i) for i in range(3)]  # median at step 5: 2.0
    pruning = Pruning(startup_trials=3)
    assert search.should_prune(pruning, ADAM, finished, True, {5: 2.5})
    assert not search.should_prune(pruning, ADAM, finished, True, {5: 1.5})
    assert not search.should_prune(Pruning(startup_trials=4), ADAM, finished, True, {5: 9.0})
    assert not search.should_prune(pruning, ADAM, finished, False, {5: 2.5})  # maximising


def test_outcome_scores_the_objective_and_names_why_a_trial_has_no_value() -> None:
    done = {"status": "succeeded", "message": "", "summary": {"final_loss": 0.5}}
    done["summary"].update(best_loss=0.25, target_step=None, target_work=None)
    assert search.outcome(Objective(), done, {}) == ("complete", 0.5, "")
    assert search.outcome(Objective(kind="best"), done, {})[1] == 0.25
    to_target = Objective(kind="steps_to_target", target=0.1)
    assert search.outcome(to_target, done, {})[0] == "missed"
    reached = {
        **done,
        "summary": {
            "target_step": 40,
            "target_work": {
                "gradient_evaluations": 40,
                "hessian_vector_products": 40,
                "function_evaluations": 80,
            },
        },
    }
    assert search.outcome(to_target, reached, {})[1] == 40
    work = Objective(kind="evaluations_to_target", target=0.1)
    assert search.outcome(work, reached, {})[1] == 80
    accuracy = Objective(kind="best", metric="accuracy")
    assert search.outcome(accuracy, done, {"3": 0.5, "6": 0.75, "9": 0.625})[1] == 0.75
    diverged = {"status": "diverged", "message": "loss became non-finite", "summary": {}}
    assert search.outcome(Objective(), diverged, {})[:2] == ("diverged", None)


def test_the_sweep_tables_keep_their_own_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with JobStore(path) as jobs:
        version = jobs.schema_version
        for _ in range(2):  # opening again migrates nothing
            SweepStore(path).close()
        assert jobs.schema_version == version  # the job store's PRAGMA user_version
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE sweep_schema SET version = 99")
    with pytest.raises(RuntimeError, match="sweep tables have schema version 99, newer"):
        SweepStore(path)
