"""A real server (`psgd-playground serve` in a subprocess, 127.0.0.1, real LocalExecutor with
2 worker processes) driven over HTTP with httpx: a comparison followed over SSE with a
reconnect, cancel, a killed worker, then a restart on the same data folder.

The tests share one server (and run in file order): the last one restarts it and checks
what the others left. Each job's worker imports torch (~2 s), so the jobs are small.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from process_tree import job_workers
from threaded_server import free_port

ROOT = Path(__file__).resolve().parents[1]
LONG_JOB = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "sgd"}, "steps": 1_000_000}
COMPARISON = {
    "task": {"name": "rosenbrock"},
    "optimizers": [{"name": "adam"}, {"name": "sgd"}],
    "seeds": [0],
    "steps": 60,
}

pytestmark = pytest.mark.timeout(180)


class Server:
    """`psgd-playground serve` on a free loopback port, its output in a log file."""

    def __init__(self, data_dir: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = data_dir / "jobs.sqlite"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PSGD_PLAYGROUND_")}
        env.update(PSGD_PLAYGROUND_CONCURRENCY="2", PYTHONUNBUFFERED="1")
        self.log = log
        command = [sys.executable, "-m", "playground.cli", "serve", "--port", str(self.port)]
        command += ["--data-dir", str(data_dir)]
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        self.client = httpx.Client(base_url=self.url, timeout=30)
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, f"server exited:\n{log.read_text()}"
            try:
                if self.client.get("/api/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"server did not start:\n{log.read_text()}"
            time.sleep(0.1)

    def stop(self) -> None:
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise AssertionError(f"server ignored SIGINT:\n{self.log.read_text()}") from None
        assert self.process.returncode == 0, self.log.read_text()

    def workers(self) -> list[int]:
        """Pids of the server's job worker processes running a job
        (not the idle warm ones of its pool): those the store records for a running job."""
        db = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT worker_pid FROM jobs WHERE status = 'running'")
            busy = {pid for (pid,) in rows}
        finally:
            db.close()
        return [pid for pid in job_workers(self.process.pid) if pid in busy]

    def wait_for(self, job_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = self.client.get(f"/api/jobs/{job_id}").json()
            if job["status"] in statuses:
                return job
            assert time.monotonic() < deadline, job
            time.sleep(0.05)


#: what the first tests leave for the restart test to check
LEFT: dict[str, Any] = {}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("live")


@pytest.fixture(scope="module")
def servers(folder):
    started: list[Server] = []
    yield started
    for server in started:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


@pytest.fixture
def server(folder, servers) -> Server:
    """The running server, started on first use (again after a test stopped it)."""
    if not servers or servers[-1].process.poll() is not None:
        servers.append(Server(folder / "data", folder / "server.log"))
    return servers[-1]


def read_sse(
    client: httpx.Client, url: str, last_event_id: int | None = None, stop_after: int = 0
) -> list[dict[str, Any]]:
    """Events of a stream until the server ends it (or `stop_after` events, then hang up)."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    events: list[dict[str, Any]] = []
    current: dict[str, str] = {}
    with client.stream("GET", url, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line:
                if "data" in current:
                    data = json.loads(current["data"])
                    assert (
                        data["id"] == int(current["id"])
                        and current["event"] == data["event"]["type"]
                    )
                    events.append(data)
                    if len(events) == stop_after:
                        break
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = value
    return events


def test_comparison_over_sse_with_reconnect(server: Server) -> None:
    response = server.client.post("/api/comparisons", json=COMPARISON)
    assert response.status_code == 201, response.text
    comparison = response.json()
    cid, job_ids = comparison["id"], comparison["job_ids"]
    assert [job["label"] for job in comparison["jobs"]] == ["adam seed=0", "sgd seed=0"]

    url = f"/api/comparisons/{cid}/events"
    head = read_sse(server.client, url, stop_after=3)  # hang up early, mid-run
    tail = read_sse(server.client, url, last_event_id=head[-1]["id"])
    full = read_sse(server.client, url)  # after the end: a full replay, then the stream ends
    assert [e["id"] for e in head + tail] == [e["id"] for e in full]
    assert head + tail == full
    for job_id in job_ids:
        kinds = [e["event"]["type"] for e in full if e["job_id"] == job_id]
        assert kinds[0] == "started" and kinds[-1] == "status"
        assert kinds.count("metrics") == COMPARISON["steps"] and kinds.count("status") == 1
    assert {e["event"]["status"] for e in full if e["event"]["type"] == "status"} == {"succeeded"}

    detail = server.client.get(f"/api/comparisons/{cid}").json()
    assert detail["status"] == "succeeded"
    csv = server.client.get(f"/api/comparisons/{cid}/metrics", params={"format": "csv"}).text
    assert len(csv.strip().splitlines()) == 1 + 2 * COMPARISON["steps"]
    LEFT["comparison"] = (detail, full)


def test_cancel_and_worker_crash(server: Server) -> None:
    cancel_me = server.client.post("/api/jobs", json=LONG_JOB).json()["id"]
    kill_me = server.client.post("/api/jobs", json={**LONG_JOB, "seed": 1}).json()["id"]
    # queued behind them (concurrency 2); starts when the cancel frees a slot
    interrupt_me = server.client.post("/api/jobs", json={**LONG_JOB, "seed": 2}).json()["id"]
    server.wait_for(cancel_me, "running")
    server.wait_for(kill_me, "running")
    assert server.client.get(f"/api/jobs/{interrupt_me}").json()["status"] == "queued"
    first_two = set(server.workers())
    assert len(first_two) == 2

    began = time.monotonic()
    response = server.client.post(f"/api/jobs/{cancel_me}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert time.monotonic() - began < 3
    events = read_sse(server.client, f"/api/jobs/{cancel_me}/events")
    assert [e["event"]["type"] for e in events].count("status") == 1

    deadline = time.monotonic() + 10
    while len(first_two & set(server.workers())) != 1:  # the cancelled job's worker is gone
        assert time.monotonic() < deadline, server.workers()
        time.sleep(0.05)
    (kill_pid,) = first_two & set(server.workers())
    os.kill(kill_pid, signal.SIGKILL)
    crashed = server.wait_for(kill_me, "failed", timeout=10)
    assert "exited with code -9" in crashed["message"]
    final = read_sse(server.client, f"/api/jobs/{kill_me}/events")[-1]["event"]
    assert final["type"] == "status" and final["status"] == "failed"

    # the server keeps working: the queued job runs (the restart test interrupts it)
    server.wait_for(interrupt_me, "running")
    LEFT["jobs"] = (cancel_me, kill_me, interrupt_me)


def test_restart_keeps_finished_jobs_and_interrupts_running_ones(server: Server) -> None:
    if set(LEFT) != {"comparison", "jobs"}:
        pytest.skip("needs the two tests above, in the same run")
    server.stop()  # Ctrl-C: graceful; the running job stays "running" in the store
    again = Server(server.log.parent / "data", server.log)
    try:
        detail, full = LEFT["comparison"]
        cid = detail["id"]
        assert again.client.get(f"/api/comparisons/{cid}").json() == detail
        assert read_sse(again.client, f"/api/comparisons/{cid}/events") == full

        cancel_me, kill_me, interrupt_me = LEFT["jobs"]
        job = again.client.get(f"/api/jobs/{interrupt_me}").json()
        assert job["status"] == "interrupted" and job["finished"] is not None
        events = read_sse(again.client, f"/api/jobs/{interrupt_me}/events")  # ends, too
        statuses = [e["event"] for e in events if e["event"]["type"] == "status"]
        assert [(s["status"], s["message"]) for s in statuses] == [("interrupted", job["message"])]
        assert events[-1]["event"] is statuses[0]
        assert again.client.get(f"/api/jobs/{cancel_me}").json()["status"] == "cancelled"
        assert again.client.get(f"/api/jobs/{kill_me}").json()["status"] == "failed"
        assert again.client.get("/api/jobs").json()["total"] == 5
        assert again.workers() == []
    finally:
        again.stop()
