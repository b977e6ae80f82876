"""The /api/sweeps routes: create, follow (detail, SSE, export), cancel, delete, refuse.

Jobs run for real on a thread (tests/thread_executor.py) where the results matter, and on
the fake executor (no torch work, steerable) where only the bookkeeping does.
"""

from __future__ import annotations

import csv
import io
import json
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from thread_executor import ThreadExecutor

SPEC: dict[str, Any] = {
    "task": {"name": "rosenbrock"},
    "steps": 15,
    "trials": 3,
    "seeds": 2,
    "optimizers": [{"name": "adam", "tune": ["lr"]}, {"name": "sgd", "tune": ["lr", "momentum"]}],
}


def wait_for(client: TestClient, sweep_id: str, condition: Any, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        sweep = client.get(f"/api/sweeps/{sweep_id}").json()
        if condition(sweep):
            return sweep
        assert time.monotonic() < deadline, f"timed out; sweep {sweep['status']}"
        time.sleep(0.05)


def sse_events(text: str) -> list[dict[str, Any]]:
    return [
        json.loads(line.removeprefix("data: "))
        for line in text.splitlines()
        if line.startswith("data: ")
    ]


def test_a_sweep_runs_streams_its_log_and_exports_its_trials(make_client: Any) -> None:
    client = make_client(executor=ThreadExecutor())
    created = client.post("/api/sweeps", json=SPEC)
    assert created.status_code == 201, created.text
    sweep_id = created.json()["id"]

    stream = client.get(f"/api/sweeps/{sweep_id}/events")  # follows to the end, then closes
    events = [row["event"] for row in sse_events(stream.text)]
    assert events[0]["type"] == "created" and events[-1] == {
        **events[-1],
        "type": "status",
        "status": "succeeded",
    }
    finished = [e for e in events if e["type"] == "trial_finished"]
    assert len(finished) == 6 and {e["optimizer"] for e in finished} == {"adam", "sgd"}
    assert [e["type"] for e in events].count("phase") == 1

    sweep = client.get(f"/api/sweeps/{sweep_id}").json()
    assert sweep["status"] == "succeeded" and sweep["direction"] == "minimize"
    for trial in sweep["trials"]:  # what a parallel-coordinates plot needs
        assert {"optimizer", "number", "params", "value", "status", "job_id"} <= set(trial)
        assert client.get(f"/api/jobs/{trial['job_id']}").status_code == 200
    for optimizer in sweep["optimizers"]:  # what a best-so-far curve needs
        curve = optimizer["best_so_far"]
        assert [point["number"] for point in curve] == [0, 1, 2]
        assert curve[-1]["best"] == optimizer["best"]["value"]
    assert sweep["rerun"]["status"] == "succeeded"
    assert len(sweep["rerun"]["summary"]["optimizers"]) == 2

    rows = list(
        csv.DictReader(io.StringIO(client.get(f"/api/sweeps/{sweep_id}/trials?format=csv").text))
    )
    assert len(rows) == 6 and rows[0]["param_lr"] and rows[0]["param_momentum"] == ""
    assert float(rows[0]["value"]) == sweep["trials"][0]["value"]
    exported = client.get(f"/api/sweeps/{sweep_id}/trials").json()
    assert [t["params"] for t in exported] == [t["params"] for t in sweep["trials"]]

    page = client.get("/api/sweeps").json()
    assert page["total"] == 1
    assert page["items"][0] | {"trials_done": 6, "trials_total": 6} == page["items"][0]

    resumed = client.get(f"/api/sweeps/{sweep_id}/events", headers={"Last-Event-ID": "0"})
    assert sse_events(resumed.text) == sse_events(stream.text)
    last = sse_events(stream.text)[-2]["id"]
    tail = client.get(f"/api/sweeps/{sweep_id}/events?last_event_id={last}")
    assert [row["event"]["type"] for row in sse_events(tail.text)] == ["status"]


def test_a_dry_run_shows_the_default_ranges_and_starts_nothing(make_client: Any) -> None:
    client = make_client()
    body = {**SPEC, "optimizers": [{"name": "psgd-kron", "tune": ["lr", "fitting"]}]}
    response = client.post("/api/sweeps?dry_run=true", json=body)
    assert response.status_code == 200, response.text
    space = response.json()["optimizers"][0]["space"]
    # around the task's preset (Rosenbrock: lr 1.0), not the schema's default (1e-3)
    assert space["lr"] | {"low": 0.01, "high": 100.0, "log": True} == space["lr"]
    assert space["fitting"]["values"] == ["whiten", "newton"]
    assert client.get("/api/sweeps").json()["total"] == 0
    assert client.get("/api/jobs").json()["total"] == 0
    bad = client.post("/api/sweeps?dry_run=true", json={**SPEC, "trials": 0})
    assert bad.status_code == 422 and bad.json()["detail"].startswith("trials: ")


def test_cancel_stops_the_trials_in_flight_and_a_second_cancel_conflicts(make_client: Any) -> None:
    client = make_client()  # a fake executor, paused: the trials' jobs stay queued
    client.executor.pause()
    sweep_id = client.post("/api/sweeps", json={**SPEC, "parallel": 2}).json()["id"]
    sweep = wait_for(
        client, sweep_id, lambda s: sum(t["job_id"] is not None for t in s["trials"]) == 2
    )
    jobs = [t["job_id"] for t in sweep["trials"]]

    cancelled = client.post(f"/api/sweeps/{sweep_id}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert {t["status"] for t in cancelled.json()["trials"]} == {"cancelled"}
    for job_id in jobs:
        assert client.get(f"/api/jobs/{job_id}").json()["status"] == "cancelled"
    again = client.post(f"/api/sweeps/{sweep_id}/cancel")
    assert again.status_code == 409 and again.json()["detail"].endswith("already cancelled")
    events = sse_events(client.get(f"/api/sweeps/{sweep_id}/events").text)
    assert events[-1]["event"]["status"] == "cancelled"
    time.sleep(0.5)  # the runner submits nothing more
    assert len(client.get(f"/api/sweeps/{sweep_id}").json()["trials"]) == 2


def test_delete_removes_the_sweep_with_its_trial_jobs(make_client: Any) -> None:
    client = make_client()
    client.executor.pause()
    sweep_id = client.post("/api/sweeps", json=SPEC).json()["id"]
    sweep = wait_for(client, sweep_id, lambda s: s["trials"] and s["trials"][0]["job_id"])
    assert client.delete(f"/api/sweeps/{sweep_id}").status_code == 204
    for path in ("", "/events", "/trials", "/cancel"):
        method = client.post if path == "/cancel" else client.get
        response = method(f"/api/sweeps/{sweep_id}{path}")
        assert response.status_code == 404 and sweep_id in response.json()["detail"]
    assert client.get(f"/api/jobs/{sweep['trials'][0]['job_id']}").status_code == 404


def test_trials_count_against_the_job_quota(make_client: Any) -> None:
    client = make_client(max_jobs_per_minute=2)
    client.executor.pause()
    body = {**SPEC, "optimizers": SPEC["optimizers"][:1], "parallel": 3}
    sweep_id = client.post("/api/sweeps", json=body).json()["id"]
    sweep = wait_for(client, sweep_id, lambda s: "max_jobs_per_minute" in s["message"])
    assert sum(t["job_id"] is not None for t in sweep["trials"]) == 2
    assert sweep["status"] == "running"  # it waits for room, it does not fail


def test_mutating_sweep_routes_need_the_token(make_client: Any) -> None:
    client = make_client(token="secret")
    assert client.post("/api/sweeps", json=SPEC).status_code == 401
    assert client.get("/api/sweeps").status_code == 200
    auth = {"Authorization": "Bearer secret"}
    assert client.post("/api/sweeps", json=SPEC, headers=auth).status_code == 201


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"trials": 0}, "trials: Input should be greater than or equal to 1"),
        ({"trials": 600}, "trials: 600 × 2 optimizers = 1200 trials, more than a sweep may run"),
        ({"seeds": 60}, "seeds: 60 × 2 optimizers = 120 re-runs, more than this server queues"),
        ({"parallel": 64, "trials": 100}, "parallel: 64 exceeds the jobs this server queues (50)"),
        ({"steps": 10**7}, "steps: 10000000 exceeds this server's limit"),
        ({"task": {"name": "rosenbrock", "dim": 3}}, "task.dim: rosenbrock dim must be even"),
        ({"optimizers": []}, "optimizers: List should have at least 1 item"),
        ({"optimizers": [{"name": "adamx", "tune": ["lr"]}]}, "optimizers[0].name: unknown"),
        ({"optimizers": [{"name": "adam"}]}, "optimizers[0]: name a hyperparameter to search"),
        ({"optimizers": [{"name": "adam", "tune": ["foo"]}]}, "optimizers[0].tune.foo: no hyper"),
        (
            {"optimizers": [{"name": "adam", "tune": ["weight_decay"]}]},
            "optimizers[0].tune.weight_decay: no default range",
        ),
        (
            {"optimizers": [{"name": "adam", "tune": ["lr"], "beta1": 2}]},
            "optimizers[0].beta1: Input should be less than 1",
        ),
        (
            {
                "optimizers": [
                    {"name": "adam", "space": {"lr": {"type": "float", "low": 1e-3, "high": 1e3}}}
                ]
            },
            "optimizers[0].space.lr: Input should be less than or equal to 100",
        ),
        (
            {
                "optimizers": [
                    {"name": "adam", "space": {"lr": {"type": "float", "low": 1, "high": 0.1}}}
                ]
            },
            "optimizers[0].space.lr: low (1) is above high (0.1)",
        ),
        (
            {
                "optimizers": [
                    {
                        "name": "adam",
                        "space": {"lr": {"type": "float", "low": 0, "high": 1, "log": True}},
                    }
                ]
            },
            "optimizers[0].space.lr: a log range needs low > 0",
        ),
        (
            {
                "optimizers": [
                    {"name": "adam", "space": {"amsgrad": {"type": "choice", "values": [1]}}}
                ]
            },
            "optimizers[0].space.amsgrad: adam has no such hyperparameter",
        ),
        ({"objective": {"kind": "steps_to_target"}}, "objective: kind 'steps_to_target' needs a"),
        ({"objective": {"metric": "f1"}}, "objective: give the direction of metric 'f1'"),
        (
            {"objective": {"kind": "seconds_to_target", "target": 1.0}, "pruning": {}},
            "pruning: only with a final or best objective",
        ),
        ({"sampler": "grid"}, "sampler: Input should be 'tpe' or 'random'"),
        ({"trials": True}, "trials: Input should be a valid integer"),
    ],
)
def test_an_invalid_sweep_is_refused_naming_the_field(
    make_client: Any, change: dict[str, Any], detail: str
) -> None:
    client = make_client(max_queued=50)
    response = client.post("/api/sweeps", json={**SPEC, **change})
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(detail), response.json()["detail"]
    assert client.get("/api/sweeps").json()["total"] == 0
