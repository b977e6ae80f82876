"""The HTTP API in-process (TestClient) with a fake executor: every endpoint and error.

The fake (tests/fake_executor.py) keeps these tests fast; tests/test_api_live.py runs the
real LocalExecutor behind a real server.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.jobs.broker import Broker
from server.settings import Settings

JOB = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam", "lr": 0.01}, "steps": 3}
COMPARISON = {
    "task": {"name": "rosenbrock"},
    "optimizers": [{"name": "psgd-dense"}, {"name": "adam"}],
    "seeds": [0, 1],
    "steps": 3,
}


pytestmark = pytest.mark.usefixtures("clean_env")


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def read_sse(client: TestClient, url: str, **kwargs: Any) -> list[dict[str, Any]]:
    """Every event of a stream until the server closes it: {"id", "type", "data"}."""
    events, current = [], {}
    with client.stream("GET", url, **kwargs) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if "data" in current:
                    events.append(current)
                current = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                current[key] = value
    return [{"id": int(e["id"]), "type": e["event"], "data": json.loads(e["data"])} for e in events]


def wait_for(client: TestClient, job_id: str, *statuses: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/api/jobs/{job_id}").json()
        if job["status"] in statuses or time.monotonic() > deadline:
            assert job["status"] in statuses, job
            return job
        time.sleep(0.01)


# ---------------------------------------------------------------------- info
def test_health_and_catalogues(client: TestClient) -> None:
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["queued"] == 0 and health["auth"] is False
    tasks = client.get("/api/tasks").json()
    assert "rosenbrock" in {t["name"] for t in tasks}
    assert all("properties" in t["schema"] for t in tasks)
    optimizers = {o["name"]: o for o in client.get("/api/optimizers").json()}
    assert {"adam", "psgd-kron"} <= set(optimizers)
    assert "lr" in optimizers["adam"]["schema"]["properties"]


def test_tasks_list_their_optimizer_presets(client: TestClient) -> None:
    tasks = {t["name"]: t for t in client.get("/api/tasks").json()}
    assert tasks["rosenbrock"]["presets"]["adam"] == {"lr": 0.01}
    assert tasks["xor"]["presets"]["psgd-lra"]["fitting"] == "newton"
    assert "psgd-dense" not in tasks["cifar10"]["presets"]


def test_contour_samples_a_2d_landscape_on_a_grid(client: TestClient) -> None:
    response = client.get("/api/tasks/rosenbrock/contour", params={"resolution": 21})
    assert response.status_code == 200, response.text
    contour = response.json()
    assert contour["domain"] == [[-2.0, 2.0], [-1.0, 3.0]] and contour["known_minima"] == [[1, 1]]
    xs, ys, zs = contour["x"], contour["y"], contour["z"]
    assert len(xs) == len(ys) == len(zs) == 21 and all(len(row) == 21 for row in zs)
    assert xs[0] == -2.0 and ys[-1] == 3.0 and xs[10] == pytest.approx(0.0, abs=1e-9)
    i, j = (min(range(21), key=lambda k: abs(axis[k] - 1.0)) for axis in (ys, xs))
    assert zs[i][j] == pytest.approx(0.0, abs=1e-4)
    assert zs[0][0] == pytest.approx(100 * (-1 - 4) ** 2 + 9)
    wide = client.get(
        "/api/tasks/rosenbrock/contour", params={"options": '{"start": [4, 0]}', "resolution": 11}
    ).json()
    assert wide["domain"][0][1] > 4  # the domain covers the start
    quadratic = '/api/tasks/quadratic/contour?options={"dim": 2}&resolution=11'
    seeds = [client.get(f"{quadratic}&seed={seed}").json()["z"] for seed in (0, 1)]
    assert seeds[0] != seeds[1]  # the rotation is drawn from the seed


@pytest.mark.parametrize(
    ("url", "status", "detail"),
    [
        ("/api/tasks/nope/contour", 404, "unknown task 'nope'"),
        ("/api/tasks/xor/contour", 422, "task: xor has no contour map"),
        ('/api/tasks/rosenbrock/contour?options={"dim": 4}', 422, "options.dim: rosenbrock"),
        ('/api/tasks/rosenbrock/contour?options={"dim": 3}', 422, "options"),
        ('/api/tasks/beale/contour?options={"lr": 1}', 422, "options.lr: unknown field (valid: "),
        ("/api/tasks/beale/contour?options=[1]", 422, "options: must be a JSON object"),
        ("/api/tasks/beale/contour?options={", 422, "options: not JSON"),
        ("/api/tasks/beale/contour?resolution=202", 422, "query.resolution"),
        ("/api/tasks/beale/contour?seed=-1", 422, "query.seed"),
    ],
)
def test_contour_refuses_what_has_no_map(
    client: TestClient, url: str, status: int, detail: str
) -> None:
    response = client.get(url)
    assert response.status_code == status
    assert response.json()["detail"].startswith(detail), response.json()


# ---------------------------------------------------------------------- jobs
def test_job_runs_and_streams_to_its_end(client: TestClient) -> None:
    response = client.post("/api/jobs", json=JOB)
    assert response.status_code == 201
    job = response.json()
    assert job["label"] == "adam seed=0" and job["comparison_id"] is None
    assert job["spec"]["optimizer"]["beta1"] == 0.9  # stored validated, defaults filled
    events = read_sse(client, f"/api/jobs/{job['id']}/events")
    types = [e["type"] for e in events]
    assert types == ["started", "metrics", "metrics", "metrics", "eval", "status"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert all(e["data"]["job_id"] == job["id"] and e["data"]["id"] == e["id"] for e in events)
    assert events[-1]["data"]["event"]["status"] == "succeeded"

    done = client.get(f"/api/jobs/{job['id']}").json()
    assert done["status"] == "succeeded" and done["started"] and done["finished"]
    assert done["summary"]["final_loss"] == pytest.approx(1 / 3)

    metrics = client.get(f"/api/jobs/{job['id']}/metrics").json()
    assert [p["step"] for p in metrics["metrics"]] == [1, 2, 3]
    assert (metrics["optimizer_label"], metrics["seed"]) == ("adam", 0)  # its identity
    assert metrics["evaluations"] == [{"step": 3, "epoch": 0.0, "metrics": {"acc": 0.5}}]
    csv = client.get(f"/api/jobs/{job['id']}/metrics", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0] == (
        "job_id,label,optimizer_label,seed,step,loss,grad_norm,lr,step_time,elapsed,"
        "function_evaluations,gradient_evaluations,hessian_vector_products,eval_acc"
    )
    assert len(lines) == 4 and lines[3].endswith(",0.5") and lines[1].endswith(",")


def test_job_stream_resumes_after_last_event_id(client: TestClient) -> None:
    job_id = client.post("/api/jobs", json=JOB).json()["id"]
    full = read_sse(client, f"/api/jobs/{job_id}/events")
    cut = full[2]["id"]
    by_header = read_sse(client, f"/api/jobs/{job_id}/events", headers={"Last-Event-ID": str(cut)})
    assert [e["id"] for e in by_header] == [e["id"] for e in full[3:]]
    by_query = read_sse(client, f"/api/jobs/{job_id}/events?last_event_id={cut}")
    assert by_query == by_header
    # the header wins over the query (a browser reconnecting sends the newer id)
    both = read_sse(
        client,
        f"/api/jobs/{job_id}/events?last_event_id=0",
        headers={"Last-Event-ID": str(full[-2]["id"])},
    )
    assert [e["id"] for e in both] == [full[-1]["id"]]
    assert read_sse(client, f"/api/jobs/{job_id}/events?last_event_id={full[-1]['id']}") == []


def test_live_stream_follows_a_running_job(client: TestClient) -> None:
    client.executor.hold()
    job_id = client.post("/api/jobs", json=JOB).json()["id"]
    wait_for(client, job_id, "running")
    threading.Timer(0.3, client.executor.release).start()
    events = read_sse(client, f"/api/jobs/{job_id}/events")
    assert [e["type"] for e in events][-1] == "status"
    assert len({e["id"] for e in events}) == len(events) == 6  # no duplicates, no gaps


def test_a_lagging_stream_catches_up_from_the_store(client: TestClient) -> None:
    client.app.state.service.broker.queue_size = 1  # overflows at once
    client.executor.pause()
    job_id = client.post("/api/jobs", json=JOB).json()["id"]
    threading.Timer(0.3, client.executor.resume).start()
    events = read_sse(client, f"/api/jobs/{job_id}/events")
    assert [e["type"] for e in events] == [
        "started",
        "metrics",
        "metrics",
        "metrics",
        "eval",
        "status",
    ]
    assert [e["id"] for e in events] == sorted({e["id"] for e in events})


def test_idle_streams_send_heartbeats(make_client) -> None:
    client = make_client(heartbeat_seconds=0.05)
    client.executor.hold()
    job_id = client.post("/api/jobs", json=JOB).json()["id"]
    wait_for(client, job_id, "running")
    threading.Timer(0.5, client.executor.release).start()
    with client.stream("GET", f"/api/jobs/{job_id}/events") as response:
        lines = list(response.iter_lines())
    assert lines.count(": heartbeat") >= 3
    data = [line for line in lines if line.startswith("data: ")]
    assert len(data) == 6 and '"status":"succeeded"' in data[-1]


def test_list_jobs_pages_and_filters(client: TestClient) -> None:
    ids = [client.post("/api/jobs", json={**JOB, "seed": k}).json()["id"] for k in range(3)]
    for job_id in ids:
        wait_for(client, job_id, "succeeded")
    page = client.get("/api/jobs", params={"limit": 2}).json()
    assert page["total"] == 3 and page["offset"] == 0 and page["limit"] == 2
    assert [j["id"] for j in page["items"]] == ids[::-1][:2]  # newest first
    rest = client.get("/api/jobs", params={"offset": 2, "limit": 2}).json()
    assert [j["id"] for j in rest["items"]] == [ids[0]]
    assert client.get("/api/jobs", params={"status": "failed"}).json()["total"] == 0
    assert client.get("/api/jobs", params={"status": "succeeded"}).json()["total"] == 3


def test_lists_give_summaries_without_specs(client: TestClient) -> None:
    """A spec's size is the client's choice; a page of 500 of them must not be (issue 11)."""
    job = client.post("/api/jobs", json={**JOB, "seed": 7}).json()
    comparison = client.post("/api/comparisons", json=COMPARISON).json()
    item = next(j for j in client.get("/api/jobs").json()["items"] if j["id"] == job["id"])
    assert "spec" not in item
    assert (item["task"], item["optimizer"], item["seed"], item["steps"]) == (
        "rosenbrock",
        "adam",
        7,
        3,
    )
    assert item["label"] == "adam seed=7" and item["epochs"] is None
    listed = client.get("/api/comparisons").json()["items"][0]
    assert "spec" not in listed
    assert listed == {
        "id": comparison["id"],
        "created": comparison["created"],
        "job_ids": comparison["job_ids"],
        "status": listed["status"],
        "task": "rosenbrock",
        "optimizers": ["psgd-dense", "adam"],
        "seeds": [0, 1],
        "steps": 3,
        "epochs": None,
    }
    assert client.get(f"/api/jobs/{job['id']}").json()["spec"]["seed"] == 7  # one job: full
    assert client.get(f"/api/comparisons/{comparison['id']}").json()["spec"]["seeds"] == [0, 1]


def test_cancel_queued_running_and_finished_jobs(client: TestClient) -> None:
    client.executor.hold()
    running = client.post("/api/jobs", json=JOB).json()["id"]
    queued = client.post("/api/jobs", json=JOB).json()["id"]
    wait_for(client, running, "running")
    assert client.get(f"/api/jobs/{queued}").json()["status"] == "queued"

    response = client.post(f"/api/jobs/{queued}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert response.json()["message"] == "cancelled before start"
    response = client.post(f"/api/jobs/{running}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    statuses = [e for e in read_sse(client, f"/api/jobs/{running}/events") if e["type"] == "status"]
    assert len(statuses) == 1  # exactly one final status

    again = client.post(f"/api/jobs/{running}/cancel")
    assert again.status_code == 409 and "already cancelled" in again.json()["detail"]


def test_delete_jobs(client: TestClient) -> None:
    done = client.post("/api/jobs", json=JOB).json()["id"]
    wait_for(client, done, "succeeded")
    assert client.delete(f"/api/jobs/{done}").status_code == 204
    assert client.get(f"/api/jobs/{done}").status_code == 404
    assert client.delete(f"/api/jobs/{done}").status_code == 404

    client.executor.hold()
    running = client.post("/api/jobs", json=JOB).json()["id"]
    wait_for(client, running, "running")
    assert client.delete(f"/api/jobs/{running}").status_code == 204  # cancelled, then deleted
    assert client.get(f"/api/jobs/{running}").status_code == 404
    assert client.get("/api/jobs").json()["total"] == 0


def test_worker_crash_ends_the_job_as_failed(client: TestClient) -> None:
    client.executor.crash_next = True
    job_id = client.post("/api/jobs", json=JOB).json()["id"]
    events = read_sse(client, f"/api/jobs/{job_id}/events")
    assert [e["type"] for e in events] == ["started", "status"]
    final = events[-1]["data"]["event"]
    assert final["status"] == "failed" and "code -9" in final["message"]
    job = client.get(f"/api/jobs/{job_id}").json()
    assert job["status"] == "failed" and "code -9" in job["message"]
    # the server keeps working
    assert wait_for(client, client.post("/api/jobs", json=JOB).json()["id"], "succeeded")


def test_non_finite_numbers_come_out_as_null(client: TestClient) -> None:
    client.executor.diverge_next = True
    job_id = client.post("/api/jobs", json=JOB).json()["id"]
    events = read_sse(client, f"/api/jobs/{job_id}/events")
    assert events[-1]["data"]["event"]["summary"] == {"final_loss": None, "best_loss": None}
    response = client.get(f"/api/jobs/{job_id}")
    assert "NaN" not in response.text and response.json()["summary"]["final_loss"] is None
    assert response.json()["status"] == "diverged"


# ---------------------------------------------------------------------- comparisons
def test_comparison_runs_and_streams_to_its_end(client: TestClient) -> None:
    response = client.post("/api/comparisons", json=COMPARISON)
    assert response.status_code == 201
    comparison = response.json()
    labels = [job["label"] for job in comparison["jobs"]]
    assert labels == ["psgd-dense seed=0", "psgd-dense seed=1", "adam seed=0", "adam seed=1"]
    assert comparison["job_ids"] == [job["id"] for job in comparison["jobs"]]
    assert all(job["comparison_id"] == comparison["id"] for job in comparison["jobs"])
    # the task preset applied per job (landscape: PSGD Newton fitting)
    assert comparison["jobs"][0]["spec"]["optimizer"]["fitting"] == "newton"

    events = read_sse(client, f"/api/comparisons/{comparison['id']}/events")
    finals = [e["data"]["job_id"] for e in events if e["type"] == "status"]
    assert sorted(finals) == sorted(comparison["job_ids"])
    assert len(events) == 4 * 6

    cid = comparison["id"]
    detail = client.get(f"/api/comparisons/{cid}").json()
    assert detail["status"] == "succeeded"
    assert {job["status"] for job in detail["jobs"]} == {"succeeded"}
    page = client.get("/api/comparisons").json()
    assert page["total"] == 1 and page["items"][0]["job_ids"] == comparison["job_ids"]
    jobs = client.get("/api/jobs", params={"comparison_id": cid}).json()
    assert jobs["total"] == 4

    metrics = client.get(f"/api/comparisons/{cid}/metrics").json()
    assert [m["label"] for m in metrics["jobs"]] == labels
    csv = client.get(f"/api/comparisons/{cid}/metrics?format=csv").text.strip().splitlines()
    assert len(csv) == 1 + 4 * 3 and csv[1].split(",")[1] == "psgd-dense seed=0"

    resumed = read_sse(
        client, f"/api/comparisons/{cid}/events", headers={"Last-Event-ID": str(events[9]["id"])}
    )
    assert [e["id"] for e in resumed] == [e["id"] for e in events[10:]]


def test_cancel_and_delete_comparisons(client: TestClient) -> None:
    client.executor.hold()
    comparison = client.post("/api/comparisons", json=COMPARISON).json()
    cid, first = comparison["id"], comparison["job_ids"][0]
    wait_for(client, first, "running")
    cancelled = client.post(f"/api/comparisons/{cid}/cancel")
    assert cancelled.status_code == 200
    assert {job["status"] for job in cancelled.json()["jobs"]} == {"cancelled"}
    assert cancelled.json()["status"] == "finished"
    assert client.post(f"/api/comparisons/{cid}/cancel").status_code == 200  # nothing to do

    assert client.delete(f"/api/comparisons/{cid}").status_code == 204
    assert client.get(f"/api/comparisons/{cid}").status_code == 404
    assert client.get(f"/api/jobs/{first}").status_code == 404
    assert client.get("/api/jobs").json()["total"] == 0


# ---------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/jobs", {**JOB, "optimizer": {"name": "adam", "lr": -1}}, "optimizer.lr"),
        ("/api/jobs", {**JOB, "optimizer": {"name": "nope"}}, "optimizer: Input tag 'nope'"),
        ("/api/jobs", {**JOB, "task": {"name": "rosenbrock", "dim": 3}}, "task.dim"),
        ("/api/jobs", {**JOB, "task": {"name": "nope"}}, "task: Input tag 'nope'"),
        ("/api/jobs", {**JOB, "steps": 0}, "steps"),
        ("/api/jobs", {**JOB, "steps": 10**7}, "steps: 10000000 exceeds"),
        ("/api/jobs", {**JOB, "colour": "red"}, "colour: unknown field (valid: task, steps,"),
        (
            "/api/jobs",
            {**JOB, "optimizer": {"name": "sgd", "mom": 0.9}},
            "optimizer.mom: unknown field (valid: name, lr, momentum, weight_decay)",
        ),
        ("/api/jobs", {**JOB, "seed": -1}, "seed: Input should be greater than or equal to 0 (got"),
        ("/api/jobs", {"optimizer": {"name": "adam"}}, "task: Field required"),
        ("/api/jobs", [1, 2], "body: Input should be a valid dictionary"),
        ("/api/jobs", {**JOB, "optimizer": {"name": {}}}, "optimizer: Input tag '{}' found"),
        ("/api/jobs", {**JOB, "task": {"name": ["x"]}}, "task: Input tag '['x']' found"),
        ("/api/jobs", {**JOB, "target": False}, "target: Input should be a valid number"),
        ("/api/jobs", {**JOB, "seed": "3"}, "seed: Input should be a valid integer"),
        ("/api/jobs", {**JOB, "seed": 2.5}, "seed: Input should be a valid integer"),
        ("/api/jobs", {**JOB, "optimizer": {"name": "adam", "lr": "0.1"}}, "optimizer.lr"),
        ("/api/comparisons", {**COMPARISON, "optimizers": []}, "optimizers"),
        (
            "/api/comparisons",
            {**COMPARISON, "optimizers": [{"name": "adam"}, {"name": "sgd", "lr": 0}]},
            "optimizers[1].lr",
        ),
        ("/api/comparisons", {**COMPARISON, "seeds": [0, -1]}, "seeds[1]"),
        ("/api/comparisons", {**COMPARISON, "task": {"name": "x"}}, "task: Input tag 'x'"),
    ],
)
def test_invalid_specs_are_422_naming_the_field(
    client: TestClient, path: str, body: Any, field: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 422
    assert field in response.json()["detail"]


def test_integral_floats_count_as_integers(client: TestClient) -> None:
    job = client.post("/api/jobs", json={**JOB, "seed": 3.0, "steps": 2.0}).json()
    assert (job["spec"]["seed"], job["spec"]["steps"]) == (3, 2)


def test_non_finite_numbers_in_a_spec_are_422(client: TestClient) -> None:
    body = json.dumps({**JOB, "target": 1.0}).replace("1.0", "NaN")
    response = client.post("/api/jobs", content=body, headers={"content-type": "application/json"})
    detail = response.json()["detail"]
    assert response.status_code == 422
    assert detail == "target: Input should be a finite number (got NaN)"


def test_cuda_jobs_are_refused_on_a_cpu_server(make_client) -> None:
    client = make_client(device="cpu")
    response = client.post("/api/jobs", json={**JOB, "device": "cuda"})
    assert response.status_code == 422 and response.json()["detail"].startswith("device:")
    job = client.post("/api/jobs", json=JOB).json()
    assert job["spec"]["device"] == "cpu"  # auto means the server's device


@pytest.mark.parametrize(
    ("content", "content_type"),
    [(b'{"task": ', "application/json"), (b"[[[", "application/json"), (b"task=x", None)],
)
def test_malformed_bodies_are_400(client: TestClient, content: bytes, content_type) -> None:
    headers = {"content-type": content_type} if content_type else {}
    for path in ("/api/jobs", "/api/comparisons"):
        response = client.post(path, content=content, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["detail"].startswith("body:")


def test_oversized_bodies_are_413(make_client) -> None:
    client = make_client(max_request_bytes=1000)
    big = {**JOB, "pad": "x" * 2000}
    response = client.post("/api/jobs", json=big)
    assert response.status_code == 413
    assert response.json() == {"detail": "request body larger than 1000 bytes"}

    def chunks():  # no Content-Length: the streamed size counts
        for _ in range(10):
            yield b" " * 200

    response = client.post(
        "/api/jobs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    assert client.post("/api/jobs", json=JOB).status_code == 201


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/jobs/{}"),
        ("POST", "/api/jobs/{}/cancel"),
        ("DELETE", "/api/jobs/{}"),
        ("GET", "/api/jobs/{}/events"),
        ("GET", "/api/jobs/{}/metrics"),
        ("GET", "/api/comparisons/{}"),
        ("POST", "/api/comparisons/{}/cancel"),
        ("DELETE", "/api/comparisons/{}"),
        ("GET", "/api/comparisons/{}/events"),
        ("GET", "/api/comparisons/{}/metrics"),
    ],
)
def test_unknown_ids_are_404(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path.format("123456789abc"))
    assert response.status_code == 404
    assert "123456789abc" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/api/tasks", "GET"),
        ("PUT", "/api/jobs", "GET, POST"),
        ("POST", "/api/jobs/123456789abc", "DELETE, GET"),
        ("GET", "/api/jobs/123456789abc/cancel", "POST"),
        ("PATCH", "/api/comparisons/123456789abc", "DELETE, GET"),
    ],
)
def test_wrong_method_is_405_listing_the_allowed_ones(
    client: TestClient, method: str, path: str, allow: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.json()["detail"] == f"method {method} not allowed here; allowed: {allow}"


@pytest.mark.parametrize(
    ("url", "headers", "field"),
    [
        ("/api/jobs?limit=0", {}, "query.limit"),
        ("/api/jobs?limit=501", {}, "query.limit"),
        ("/api/jobs?offset=-1", {}, "query.offset"),
        ("/api/jobs?offset=99999999999999999999", {}, "query.offset"),
        ("/api/jobs?status=done", {}, "query.status"),
        ("/api/comparisons?limit=x", {}, "query.limit"),
        ("/api/jobs/abc/metrics?format=xml", {}, "query.format"),
        ("/api/jobs/abc/events?last_event_id=-1", {}, "query.last_event_id"),
        ("/api/jobs/abc/events", {"Last-Event-ID": "x"}, "header.Last-Event-ID"),
    ],
)
def test_bad_parameters_are_422(client: TestClient, url: str, headers: dict, field: str) -> None:
    response = client.get(url, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"].startswith(field)


def test_full_queue_is_429(make_client) -> None:
    client = make_client(max_queued=3)
    client.executor.pause()
    for _ in range(2):
        assert client.post("/api/jobs", json=JOB).status_code == 201
    two_jobs = {**COMPARISON, "seeds": [0], "optimizers": [{"name": "adam"}, {"name": "sgd"}]}
    response = client.post("/api/comparisons", json=two_jobs)
    assert response.status_code == 429 and "3" in response.json()["detail"]
    assert client.post("/api/comparisons", json=COMPARISON).status_code == 422  # 4 > 3 ever
    assert client.post("/api/jobs", json=JOB).status_code == 201
    assert client.post("/api/jobs", json=JOB).status_code == 429
    assert client.get("/api/health").json()["queued"] == 3
    client.executor.resume()


def test_token_guards_mutating_requests(make_client) -> None:
    client = make_client(token="s3cret")
    good = {"Authorization": "Bearer s3cret"}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"}):
        response = client.post("/api/jobs", json=JOB, headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    job_id = client.post("/api/jobs", json=JOB, headers=good).json()["id"]
    wait_for(client, job_id, "succeeded")  # reads need no token
    assert client.get("/api/health").json()["auth"] is True
    assert client.delete(f"/api/jobs/{job_id}").status_code == 401
    assert client.post(f"/api/jobs/{job_id}/cancel").status_code == 401
    assert client.post("/api/comparisons", json=COMPARISON).status_code == 401
    assert client.delete(f"/api/jobs/{job_id}", headers=good).status_code == 204
    schema = client.get("/openapi.json").json()
    assert "security" in schema["paths"]["/api/jobs"]["post"]
    assert "security" not in schema["paths"]["/api/jobs"]["get"]


def test_cors_origins_from_settings(make_client) -> None:
    client = make_client(cors_origins=["http://localhost:5173"])
    response = client.get("/api/health", headers={"Origin": "http://localhost:5173"})
    assert response.headers["access-control-allow-origin"] == "http://localhost:5173"
    other = client.get("/api/health", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_unexpected_errors_are_logged_500s(make_client, caplog) -> None:
    client = make_client(raise_errors=False)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    client.app.state.service.store.list_comparisons = broken
    response = client.get("/api/comparisons")
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error (RuntimeError)"}
    assert "disk on fire" in caplog.text


# ---------------------------------------------------------------------- restarts
def test_restart_interrupts_running_jobs_and_resubmits_queued_ones(make_client) -> None:
    first = make_client()
    first.executor.hold()
    done = first.post("/api/jobs", json=JOB).json()["id"]
    first.executor.release()
    wait_for(first, done, "succeeded")
    first.executor.hold()
    running = first.post("/api/jobs", json=JOB).json()["id"]
    queued = first.post("/api/jobs", json=JOB).json()["id"]
    wait_for(first, running, "running")
    first.__exit__(None, None, None)

    second = make_client()
    assert second.get(f"/api/jobs/{done}").json()["status"] == "succeeded"
    assert len(read_sse(second, f"/api/jobs/{done}/events")) == 6  # events intact
    interrupted = second.get(f"/api/jobs/{running}").json()
    assert interrupted["status"] == "interrupted" and "server stopped" in interrupted["message"]
    assert read_sse(second, f"/api/jobs/{running}/events")[0]["type"] == "started"  # then ends
    wait_for(second, queued, "succeeded")
    assert second.executor.submitted == [queued]

    second.executor.hold()
    again = second.post("/api/jobs", json=JOB).json()["id"]
    wait_for(second, again, "running")
    second.__exit__(None, None, None)
    third = make_client(requeue_interrupted=True)
    wait_for(third, again, "succeeded")
    assert third.executor.submitted == [again]


# ---------------------------------------------------------------------- pieces
def test_openapi_documents_bodies_and_errors(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    post = schema["paths"]["/api/jobs"]["post"]
    body = post["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/JobSpec"}
    assert {"400", "413", "422", "429"} <= set(post["responses"])
    assert "401" not in post["responses"] and "security" not in post  # no token configured
    components = schema["components"]["schemas"]
    comparison = components["ComparisonSpec"]["properties"]
    assert "oneOf" in comparison["optimizers"]["items"]
    # generated from the models themselves: the union tag is required, bounds are stated
    assert components["JobSpec"]["required"] == ["task", "optimizer"]
    assert "name" in components["AdamConfig"]["required"]
    assert components["AdamConfig"]["properties"]["lr"]["exclusiveMinimum"] == 0
    assert {"optimizer", "optimizer_label", "seed", "label"} <= set(components["Job"]["required"])
    items = schema["paths"]["/api/jobs"]["get"]["parameters"]
    status = next(p for p in items if p["name"] == "status")["schema"]
    assert "anyOf" not in status and "null" not in status["enum"]  # absent, never null
    events = schema["paths"]["/api/jobs/{job_id}/events"]["get"]["responses"]["200"]
    assert "text/event-stream" in events["content"]
    error = schema["paths"]["/api/jobs/{job_id}"]["get"]["responses"]["404"]
    assert error["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("PSGD_PLAYGROUND_PORT", "9001")
    monkeypatch.setenv("PSGD_PLAYGROUND_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("PSGD_PLAYGROUND_CORS_ORIGINS", '["http://a.test"]')
    monkeypatch.setenv("PSGD_PLAYGROUND_TOKEN", "")
    settings = Settings()
    assert (settings.host, settings.port, settings.token) == ("127.0.0.1", 9001, None)
    assert settings.db_path == tmp_path / "jobs.sqlite"
    assert settings.cors_origins == ["http://a.test"]
    assert Settings(port=1).port == 1  # arguments beat the environment
    monkeypatch.setenv("PSGD_PLAYGROUND_EXECUTOR", "ray")
    monkeypatch.setenv("PSGD_PLAYGROUND_RAY_ADDRESS", "127.0.0.1:6379")
    settings = Settings()
    assert (settings.executor, settings.ray_address) == ("ray", "127.0.0.1:6379")


def test_broker_drops_to_lagged_instead_of_growing() -> None:
    import asyncio

    async def scenario() -> None:
        broker = Broker(asyncio.get_running_loop(), queue_size=2)
        with broker.subscription(["a"]) as sub:
            thread = threading.Thread(
                target=lambda: [broker.publish(j, {"id": i}) for i, j in enumerate("abaa")]
            )
            thread.start()
            thread.join()
            await asyncio.sleep(0.05)
            assert [await sub.get(), await sub.get()] == [{"id": 0}, {"id": 2}]
            assert sub.lagged and sub.queue.empty()
        assert broker.subscribers == 0

    asyncio.run(scenario())
