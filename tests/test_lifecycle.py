"""Job lifecycle across worker launches and server deaths.

* a job is `running` from the moment a worker takes it (not only once it reports);
* a job whose set-up hangs ends `failed` at its time limit;
* a restart kills a worker its predecessor left alive before rerunning the job, and ends
  an interrupted job with one `interrupted` status event;
* workers, busy or idle in the warm pool, die with a server killed by SIGKILL (a real
  server process on loopback).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fake_executor import FakeExecutor
from fastapi.testclient import TestClient
from hanging_setup import HangingSetupExecutor
from hanging_worker import sleep_forever
from process_tree import job_workers
from threaded_server import free_port

from server.api import create_app
from server.jobs import processes
from server.jobs.store import JobStore
from server.settings import Settings

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parent.parent
JOB = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}, "steps": 40}


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return result


def events_of(client: TestClient | httpx.Client, job_id: str) -> list[dict[str, Any]]:
    """The job's stored events, from its SSE stream (which ends after the final status)."""
    text = client.get(f"/api/jobs/{job_id}/events").text
    return [json.loads(line[6:])["event"] for line in text.splitlines() if line[:6] == "data: "]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """serve(executor, **settings) -> a started TestClient on one data folder."""
    clients: list[TestClient] = []

    def make(executor: Any, **overrides: Any) -> TestClient:
        settings = Settings(**{"data_dir": tmp_path / "data", **overrides})
        client = TestClient(create_app(settings, executor=executor), base_url="http://127.0.0.1")
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


def test_a_job_runs_from_launch_and_a_hung_set_up_ends_at_its_time_limit(serve) -> None:
    client = serve(HangingSetupExecutor(concurrency=1))
    job_id = client.post("/api/jobs", json={**JOB, "max_seconds": 4}).json()["id"]
    job = wait_until(
        lambda: (j := client.get(f"/api/jobs/{job_id}").json())["status"] != "queued" and j,
        "the job to leave the queue",
    )
    # its worker is still setting up (it never sends `started`), and it is running
    assert job["status"] == "running" and job["started"] is not None
    health = client.get("/api/health").json()
    assert (health["queued"], health["running"]) == (0, 1)

    job = wait_until(
        lambda: (j := client.get(f"/api/jobs/{job_id}").json())["status"] != "running" and j,
        "the time limit",
    )
    assert job["status"] == "failed"
    assert job["message"] == "time limit of 4 s reached during set-up"
    assert job["finished"] - job["started"] >= 4
    statuses = [e for e in events_of(client, job_id) if e["type"] == "status"]
    assert [(e["status"], e["message"]) for e in statuses] == [("failed", job["message"])]
    assert client.get("/api/health").json()["running"] == 0


def _store_with_a_job_left_running(folder: Path, pid: int, started: int | None) -> str:
    """What a killed server leaves: a job running, with a recorded worker and some events."""
    with JobStore(folder / "jobs.sqlite") as store:
        job_id = store.create_job({**JOB, "device": "auto", "seed": 0})
        assert store.mark_running(job_id, pid, started)
        store.append_event(job_id, {"type": "started", "step": 0, "total_steps": 40, "meta": {}})
        metrics = {"loss": 1.0, "grad_norm": 1.0, "lr": 0.1, "step_time": 0.0, "elapsed": 0.0}
        store.append_event(job_id, {"type": "metrics", "step": 7, **metrics})
    return job_id


@pytest.fixture(params=["spawn", "forkserver"])
def leftover(request: pytest.FixtureRequest) -> Iterator[multiprocessing.process.BaseProcess]:
    """A live process standing for a worker whose server died (it has no parent-death
    signal, as a worker of an older server would not), spawned or from a fork server."""
    context = multiprocessing.get_context(request.param)
    process = context.Process(target=sleep_forever, daemon=True)
    process.start()
    wait_until(lambda: processes.identity(process.pid) is not None, "the process")
    yield process
    if process.is_alive():
        process.kill()
    process.join(5)


def test_a_restart_kills_a_leftover_worker_before_rerunning_its_job(
    serve, tmp_path: Path, leftover
) -> None:
    pid = leftover.pid
    job_id = _store_with_a_job_left_running(tmp_path / "data", pid, processes.identity(pid))
    client = serve(FakeExecutor(), requeue_interrupted=True)
    leftover.join(5)
    assert leftover.exitcode == -signal.SIGKILL  # killed before the job was run again
    wait_until(lambda: client.get(f"/api/jobs/{job_id}").json()["status"] == "succeeded", "rerun")
    kinds = [e["type"] for e in events_of(client, job_id)]
    assert kinds.count("started") == 1 and kinds.count("status") == 1  # only the rerun


def test_a_restart_leaves_alone_a_process_that_reused_the_pid(
    serve, tmp_path: Path, leftover
) -> None:
    pid = leftover.pid
    other_start = processes.identity(pid) - 1  # the recorded worker started earlier
    job_id = _store_with_a_job_left_running(tmp_path / "data", pid, other_start)
    client = serve(FakeExecutor(), requeue_interrupted=True)
    wait_until(lambda: client.get(f"/api/jobs/{job_id}").json()["status"] == "succeeded", "rerun")
    assert leftover.is_alive()


def test_a_job_whose_worker_survives_the_restart_is_not_rerun(
    serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(processes, "kill_leftover", lambda pid, started: False)
    job_id = _store_with_a_job_left_running(tmp_path / "data", 1234, 5678)
    executor = FakeExecutor()
    client = serve(executor, requeue_interrupted=True)
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "interrupted" and "could not be stopped" in job["message"]
    assert executor.submitted == []


def test_an_interrupted_job_ends_with_one_interrupted_status_event(serve, tmp_path) -> None:
    job_id = _store_with_a_job_left_running(tmp_path / "data", 1234, None)
    client = serve(FakeExecutor())
    job = client.get(f"/api/jobs/{job_id}").json()
    events = events_of(client, job_id)  # the stream ends after it
    assert [e["type"] for e in events] == ["started", "metrics", "status"]
    assert events[-1] == {
        "type": "status",
        "step": 7,
        "status": "interrupted",
        "message": job["message"],
        "summary": {},
    }
    assert job["status"] == "interrupted"


# ---- a real server process killed with SIGKILL --------------------------------------------


def _launch(command: list[str], data_dir: Path, log: Path, **env: str) -> tuple[Any, httpx.Client]:
    """Start a server on a free loopback port; returns (process, client) once it answers."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PSGD_PLAYGROUND_")}
    environment.update(PSGD_PLAYGROUND_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **env)
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def answers() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return client.get("/api/health").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(answers, "the server")
    return process, client


def _maps(pid: int) -> bytes:
    return Path(f"/proc/{pid}/maps").read_bytes()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_die_with_a_killed_server_and_the_restart_runs_the_job_once(
    tmp_path: Path,
) -> None:
    data, log = tmp_path / "data", tmp_path / "server.log"
    hanging = [sys.executable, "-m", "uvicorn", "--factory", "hanging_setup:hanging_app"]
    first, client = _launch([*hanging, "--app-dir", "tests"], data, log)
    try:
        job_id = client.post("/api/jobs", json=JOB).json()["id"]
        wait_until(lambda: client.get(f"/api/jobs/{job_id}").json()["status"] == "running", "run")
        # the job's worker and the warm one that replaced it in the pool (pool size 1)
        workers = wait_until(lambda: len(w := job_workers(first.pid)) == 2 and w, "two workers")
        # torch loaded, which a worker does after `die_with_parent`: the job's worker is in
        # its set-up, the idle one has warmed up or is warming up
        wait_until(lambda: all(b"libtorch" in _maps(w) for w in workers), "torch in both")
        first.kill()  # SIGKILL: no clean-up at all; the workers are busy or idle, silent
        first.wait()
        client.close()
        wait_until(
            lambda: all(processes.identity(w) is None for w in workers), "their deaths", timeout=5
        )
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    serve = [sys.executable, "-m", "playground.cli", "serve"]
    again, client = _launch(serve, data, log, PSGD_PLAYGROUND_REQUEUE_INTERRUPTED="true")
    try:
        done = wait_until(
            lambda: (j := client.get(f"/api/jobs/{job_id}").json())["status"] == "succeeded" and j,
            "the rerun",
        )
        assert done["summary"]["steps"] == JOB["steps"]
        kinds = [e["type"] for e in events_of(client, job_id)]
        assert kinds.count("started") == 1 and kinds.count("status") == 1
    finally:
        client.close()
        again.send_signal(signal.SIGINT)
        again.wait(20)
