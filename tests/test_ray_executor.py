"""`executor=ray` on a real Ray head (127.0.0.1, tests/ray_cluster.py) through the API.

The first tests run against both executors, on one server per executor for the module
(each Ray job pays for an actor and a worker that import torch: seconds), and check that the
API cannot tell them apart: a comparison streamed over SSE and resumed with Last-Event-ID,
cancel, a job ended by its wall-clock limit. The others are Ray's failure paths: a killed
Ray worker, a head that stops mid-run and comes back, a server restart, the settings.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from ray_cluster import RayHead, require_ray
from test_api import read_sse as read_stream

from server.api import create_app
from server.jobs.ray_executor import RayExecutor
from server.settings import Settings

pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("clean_env")]

BASE_URL = "http://127.0.0.1:8000"
LONG_JOB = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "sgd"}, "steps": 1_000_000}
SHORT_JOB = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}, "steps": 5}
COMPARISON = {
    "task": {"name": "rosenbrock"},
    "optimizers": [{"name": "adam"}, {"name": "sgd"}],
    "seeds": [0],
    "steps": 40,
}


@pytest.fixture(scope="module")
def head() -> Iterator[RayHead]:
    require_ray()
    cluster = RayHead(num_cpus=2).start()
    yield cluster
    cluster.close()


def serve(data_dir: Path, **settings: Any) -> TestClient:
    """A started in-process API client (the caller closes it with __exit__)."""
    client = TestClient(create_app(Settings(data_dir=data_dir, **settings)), base_url=BASE_URL)
    client.__enter__()
    return client


@pytest.fixture(scope="module", params=["local", "ray"])
def api(request, head, tmp_path_factory) -> Iterator[TestClient]:
    """One server per executor for the module's shared tests."""
    for name in [n for n in os.environ if n.startswith("PSGD_PLAYGROUND_")]:
        del os.environ[name]  # (clean_env is function-scoped)
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "ray":  # `auto`: the cluster RAY_ADDRESS names (kept for the module:
        os.environ["RAY_ADDRESS"] = head.address  # a `local` cluster must ignore it)
        client = serve(folder, executor="ray", ray_address="auto")
    else:
        client = serve(folder, executor="local", concurrency=2, pool_size=1)
    yield client
    client.__exit__(None, None, None)
    os.environ.pop("RAY_ADDRESS", None)


def wait_for(client: TestClient, job_id: str, *statuses: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.05)


def read_sse(client: TestClient, url: str, last_event_id: int | None = None) -> list[dict]:
    """Every stream message until the server ends the stream (the job's or comparison's
    end): {"id", "job_id", "event"}."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    return [message["data"] for message in read_stream(client, url, headers=headers)]


# ------------------------------------------------------------------ both executors
def test_comparison_streams_in_order_and_resumes_after_last_event_id(api: TestClient) -> None:
    comparison = api.post("/api/comparisons", json=COMPARISON).json()
    url = f"/api/comparisons/{comparison['id']}/events"
    full = read_sse(api, url)
    ids = [event["id"] for event in full]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for job_id in comparison["job_ids"]:
        kinds = [e["event"]["type"] for e in full if e["job_id"] == job_id]
        assert kinds[0] == "started" and kinds[-1] == "status" and kinds.count("status") == 1
        assert kinds.count("metrics") == COMPARISON["steps"]
        steps = [e["event"]["step"] for e in full if e["job_id"] == job_id]
        assert steps == sorted(steps)
    assert {e["event"]["status"] for e in full if e["event"]["type"] == "status"} == {"succeeded"}
    resumed = read_sse(api, url, last_event_id=full[10]["id"])
    assert resumed == full[11:]
    detail = api.get(f"/api/comparisons/{comparison['id']}").json()
    assert detail["status"] == "succeeded"


def test_cancel_stops_a_running_job_within_seconds(api: TestClient) -> None:
    job_id = api.post("/api/jobs", json=LONG_JOB).json()["id"]
    wait_for(api, job_id, "running")
    response = api.post(f"/api/jobs/{job_id}/cancel")  # waits ≤ 3 s for the final status
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    events = [e["event"] for e in read_sse(api, f"/api/jobs/{job_id}/events")]
    assert [e["status"] for e in events if e["type"] == "status"] == ["cancelled"]


def test_a_job_past_its_wall_clock_limit_fails_with_the_reason(api: TestClient) -> None:
    job_id = api.post("/api/jobs", json={**LONG_JOB, "max_seconds": 2}).json()["id"]
    job = wait_for(api, job_id, "failed", "succeeded", "cancelled")
    assert job["status"] == "failed" and "time limit of 2 s" in job["message"], job


def test_health_names_the_executor_and_the_cluster(api: TestClient, head: RayHead) -> None:
    health = api.get("/api/health").json()
    if health["executor"] == "local":
        assert health["cluster"] is None
        return
    cluster = health["cluster"]
    assert cluster["address"] == "auto" and cluster["state"] == "connected"
    assert cluster["nodes"] == 1 and cluster["cpus"] == 2.0
    assert health["concurrency"] == 2


# ------------------------------------------------------------------ Ray's failure paths
def test_the_per_job_memory_limit_holds_on_the_cluster(head) -> None:
    """A job over `memory_limit_mb` fails saying so, as with the local executor."""
    homes = set(Path(tempfile.gettempdir()).glob("psgd-ray-home-*"))
    events: list[dict[str, Any]] = []
    ended = threading.Event()
    executor = RayExecutor(address=head.address, memory_limit_mb=800)
    executor.start(lambda job_id, event: events.append(event), lambda job_id, e: ended.set())
    try:  # a 3000² Hessian: 72 MB more than a worker with torch loaded has under 800 MB
        big = {"task": {"name": "quadratic", "dim": 3000}, "optimizer": {"name": "adam"}}
        executor.submit("big", {**big, "steps": 5})
        assert ended.wait(120)
    finally:
        executor.shutdown()
    final = events[-1]
    assert final["type"] == "status" and final["status"] == "failed", final
    prefix = "out of memory: the job hit this server's per-job memory limit of 800 MB ("
    assert final["message"].startswith(prefix), final["message"]
    # the bridge's HOME (the bootstrap file's folder) went with it
    assert set(Path(tempfile.gettempdir()).glob("psgd-ray-home-*")) <= homes


def test_a_killed_ray_worker_fails_its_job_with_the_reason(head, tmp_path) -> None:
    client = serve(tmp_path, executor="ray", ray_address=head.address)
    try:
        job_id = client.post("/api/jobs", json=LONG_JOB).json()["id"]
        wait_for(client, job_id, "running")
        where = client.app.state.service.executor.placement(job_id)
        assert where["node"] == "127.0.0.1"
        os.kill(where["actor_pid"], signal.SIGKILL)  # the Ray worker process of the job
        job = wait_for(client, job_id, "failed", timeout=30)
        assert "its Ray worker died" in job["message"], job
        # the cluster and the server carry on
        assert wait_for(client, client.post("/api/jobs", json=SHORT_JOB).json()["id"], "succeeded")
        # a cuda job on a cluster without GPUs fails at once, saying why (not queued for ever)
        response = client.post("/api/jobs", json={**SHORT_JOB, "device": "cuda"})
        assert response.status_code == 201, response.text
        job = wait_for(client, response.json()["id"], "failed", timeout=30)
        assert job["message"].startswith("no node of the Ray cluster has 1 GPU"), job
    finally:
        client.__exit__(None, None, None)


def test_with_retries_a_killed_ray_worker_reruns_the_job_without_repeating_events(
    head, tmp_path
) -> None:
    client = serve(tmp_path, executor="ray", ray_address=head.address, ray_max_retries=1)
    try:
        spec = {**LONG_JOB, "steps": 3000}
        job_id = client.post("/api/jobs", json=spec).json()["id"]
        deadline = time.monotonic() + 60
        while not client.get(f"/api/jobs/{job_id}/metrics").json()["metrics"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(client.app.state.service.executor.placement(job_id)["actor_pid"], signal.SIGKILL)
        job = wait_for(client, job_id, "succeeded", "failed", timeout=90)
        assert job["status"] == "succeeded", job
        events = read_sse(client, f"/api/jobs/{job_id}/events")
        kinds = [e["event"]["type"] for e in events]
        assert kinds.count("started") == 1 and kinds.count("status") == 1
        steps = [e["event"]["step"] for e in events if e["event"]["type"] == "metrics"]
        assert steps == sorted(set(steps)) and steps[-1] == 3000
    finally:
        client.__exit__(None, None, None)


# slow: it starts and stops a Ray head twice (≈ 65 s serial, ≈ 85 s beside another test
# process on 2 cores), the costliest test of CI's run; `make test-all` runs it
@pytest.mark.slow
def test_the_server_survives_its_head_stopping_and_reconnects(tmp_path) -> None:
    require_ray()
    lone = RayHead(num_cpus=1).start()
    client = serve(tmp_path, executor="ray", ray_address=lone.address, ray_reconnect_seconds=1.0)
    try:
        running = client.post("/api/jobs", json=LONG_JOB).json()["id"]
        wait_for(client, running, "running")
        lone.stop()
        job = wait_for(client, running, "failed", timeout=60)
        # the stopping head kills its actors first, or its bridge goes before it hears
        assert "Ray worker died" in job["message"] or "Ray cluster went away" in job["message"]
        deadline = time.monotonic() + 30
        while (health := client.get("/api/health").json())["cluster"]["state"] != "down":
            assert time.monotonic() < deadline, health
            time.sleep(0.1)
        assert health["cluster"]["message"]
        waiting = client.post("/api/jobs", json=SHORT_JOB).json()["id"]  # kept queued
        assert client.get(f"/api/jobs/{waiting}").json()["status"] == "queued"
        lone.start()
        assert wait_for(client, waiting, "succeeded", timeout=90)
        assert client.get("/api/health").json()["cluster"]["state"] == "connected"
    finally:
        client.__exit__(None, None, None)
        lone.close()


def test_a_restart_marks_jobs_left_on_the_cluster_interrupted(head, tmp_path) -> None:
    client = serve(tmp_path, executor="ray", ray_address=head.address)
    job_id = client.post("/api/jobs", json=LONG_JOB).json()["id"]
    wait_for(client, job_id, "running")
    actor_pid = client.app.state.service.executor.placement(job_id)["actor_pid"]
    client.__exit__(None, None, None)  # the server stops; its job is still "running"
    deadline = time.monotonic() + 30
    while _alive(actor_pid):  # the job's actor is gone, its worker with it
        assert time.monotonic() < deadline, "the job's Ray actor outlived the server"
        time.sleep(0.1)
    again = serve(tmp_path, executor="ray", ray_address=head.address)
    try:
        job = again.get(f"/api/jobs/{job_id}").json()
        assert job["status"] == "interrupted" and job["message"], job
    finally:
        again.__exit__(None, None, None)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def test_a_local_address_starts_a_private_cluster_on_loopback(head, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", head.address)  # ignored: `local` is a cluster of its own
    client = serve(tmp_path, executor="ray", ray_address="local", ray_num_cpus=1)
    try:
        job_id = client.post("/api/jobs", json=SHORT_JOB).json()["id"]
        assert wait_for(client, job_id, "succeeded", timeout=120)
        cluster = client.get("/api/health").json()["cluster"]
        assert cluster["state"] == "connected" and cluster["nodes"] == 1 and cluster["cpus"] == 1
    finally:
        client.__exit__(None, None, None)


# ------------------------------------------------------------------ settings
def test_ray_without_the_package_is_an_error_naming_the_extra(monkeypatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a)
    )
    with pytest.raises(ValueError, match=r"pip install 'psgd-playground\[ray\]'"):
        Settings(executor="ray")


@pytest.mark.parametrize("address", ["", "nowhere", "ray://host", "host:99999", "http://h:1"])
def test_a_bad_ray_address_is_refused_by_name(address: str) -> None:
    with pytest.raises(ValueError, match="ray_address"):
        Settings(executor="ray", ray_address=address)


@pytest.mark.parametrize("address", ["local", "auto", "10.0.0.5:6379", "ray://head:10001"])
def test_ray_addresses(address: str) -> None:
    assert Settings(executor="ray", ray_address=address).ray_address == address


@pytest.mark.parametrize(
    ("address", "ray_address_env", "node_ip"),
    [
        ("local", None, "127.0.0.1"),
        ("auto", None, "127.0.0.1"),  # the cluster started on this machine
        ("auto", "127.0.0.1:6379", "127.0.0.1"),
        ("auto", "10.0.0.1:6379", None),  # a remote head: Ray finds this machine's address
        ("127.0.0.1:6379", None, "127.0.0.1"),
        ("10.0.0.1:6379", None, None),
        ("ray://127.0.0.1:10001", None, None),  # Ray Client: no node of its own
    ],
)
def test_the_node_stays_on_loopback_for_a_loopback_cluster(
    address: str, ray_address_env: str | None, node_ip: str | None, monkeypatch
) -> None:
    from server.jobs.ray_env import init_arguments

    if ray_address_env is None:
        monkeypatch.delenv("RAY_ADDRESS", raising=False)
    else:
        monkeypatch.setenv("RAY_ADDRESS", ray_address_env)
    arguments = init_arguments(address, num_cpus=2)
    assert arguments.get("_node_ip_address") == node_ip
    if address == "local":
        assert arguments["include_dashboard"] is False and arguments["num_cpus"] == 2
    else:
        assert arguments["address"] == address and "num_cpus" not in arguments
