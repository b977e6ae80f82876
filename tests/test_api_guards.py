"""Trusted Host names (DNS rebinding) and cross-site mutations (request forgery), in-process
with the fake executor; server/api/guards.py."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import API_BASE_URL
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from server.api.guards import host_name, trusted_hosts
from server.settings import Settings

JOB = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}, "steps": 3}


pytestmark = pytest.mark.usefixtures("clean_env")


def health(client: TestClient, host: str) -> Any:
    return client.get("/api/health", headers={"host": host})


# ---------------------------------------------------------------------- trusted hosts
@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.1:8000", "localhost", "LOCALHOST:9000", "[::1]:8000", "::1"]
)
def test_a_loopback_server_answers_loopback_names_on_any_port(make_client, host: str) -> None:
    assert health(make_client(), host).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "testserver", "10.0.0.5"])
def test_a_loopback_server_refuses_other_host_names(make_client, host: str) -> None:
    client = make_client()
    for response in (
        health(client, host),
        client.get("/api/jobs", headers={"host": host}),
        client.post("/api/jobs", json=JOB, headers={"host": host}),
    ):
        assert response.status_code == 400
        assert response.json()["detail"] == (
            f"Host {host!r} is not a trusted host of this server (see the trusted_hosts setting)"
        )
    assert client.get("/api/jobs").json()["total"] == 0  # the refused POST created nothing


def test_trusted_hosts_adds_names_and_star_allows_any(make_client) -> None:
    lab = make_client(trusted_hosts=["lab.example"])
    assert health(lab, "lab.example:8000").status_code == 200
    assert health(lab, "127.0.0.1:8000").status_code == 200  # the UI's way to the API
    assert health(lab, "evil.example").status_code == 400
    assert health(make_client(trusted_hosts=["*"]), "evil.example").status_code == 200


def test_a_server_bound_to_all_interfaces_answers_any_name_by_default(make_client) -> None:
    assert health(make_client(host="0.0.0.0"), "lab.example").status_code == 200
    assert health(make_client(host="127.0.0.2"), "127.0.0.2:8000").status_code == 200


def test_trusted_hosts_setting_reads_json_or_a_comma_list(monkeypatch) -> None:
    monkeypatch.setenv("PSGD_PLAYGROUND_TRUSTED_HOSTS", "lab.example, [fd00::1]:80")
    assert trusted_hosts(Settings()) == {"lab.example", "fd00::1", "127.0.0.1", "localhost", "::1"}
    monkeypatch.setenv("PSGD_PLAYGROUND_TRUSTED_HOSTS", '["*"]')
    assert trusted_hosts(Settings()) is None
    monkeypatch.setenv("PSGD_PLAYGROUND_TRUSTED_HOSTS", "a,,b")
    with pytest.raises(ValueError, match="trusted host is blank"):
        Settings()


def test_host_name_drops_port_and_brackets() -> None:
    assert host_name("[::1]:8000") == "::1"
    assert host_name("Example.COM.:80") == "example.com"
    assert host_name("::1") == "::1"


def test_a_websocket_from_an_untrusted_host_is_closed(make_client) -> None:
    client = make_client()
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/api/ws", headers={"host": "evil.example"}),
    ):
        pass
    assert closed.value.code == 1008


# ---------------------------------------------------------------------- cross-site
@pytest.mark.parametrize(
    "headers",
    [
        {"origin": "http://evil.example"},
        {"origin": "null"},  # sandboxed frames, file:// pages
        {"origin": "http://127.0.0.1:9999"},  # another local port is another origin
        {"sec-fetch-site": "cross-site"},
    ],
)
def test_cross_site_mutations_are_refused(make_client, headers: dict[str, str]) -> None:
    client = make_client()
    client.app.state.service.executor.hold()  # type: ignore[attr-defined]
    job_id = client.post("/api/jobs", json=JOB).json()["id"]
    for method, path in (
        ("POST", f"/api/jobs/{job_id}/cancel"),  # a plain form can send this one
        ("DELETE", f"/api/jobs/{job_id}"),
        ("POST", "/api/jobs"),
    ):
        response = client.request(method, path, headers=headers, json=JOB)
        assert response.status_code == 403, (method, path)
        assert response.json()["detail"].startswith("cross-site request refused")
    assert client.get(f"/api/jobs/{job_id}").json()["status"] in ("queued", "running")
    assert client.get("/api/jobs").json()["total"] == 1
    assert client.get(f"/api/jobs/{job_id}", headers=headers).status_code == 200  # reads pass
    client.app.state.service.executor.release()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("settings", "headers"),
    [
        ({}, {}),  # curl, the CLI, the UI's API client: no browser headers
        ({}, {"origin": API_BASE_URL, "sec-fetch-site": "same-origin"}),  # a page of this server
        ({"cors_origins": ["http://localhost:5173"]}, {"origin": "http://localhost:5173"}),
        (
            {"cors_origins": ["*"]},
            {"origin": "https://app.example", "sec-fetch-site": "cross-site"},
        ),
    ],
)
def test_same_origin_and_allowed_origin_mutations_pass(
    make_client, settings: dict[str, Any], headers: dict[str, str]
) -> None:
    client = make_client(**settings)
    created = client.post("/api/jobs", json=JOB, headers=headers)
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    cancel = client.post(f"/api/jobs/{job_id}/cancel", headers=headers)
    assert cancel.status_code in (200, 409)  # cancelled, or it had already finished
    assert client.delete(f"/api/jobs/{job_id}", headers=headers).status_code == 204


def test_a_form_shaped_body_is_not_a_job(make_client) -> None:
    """A cross-site form can only send urlencoded, multipart or text/plain bodies."""
    client = make_client()
    body = '{"task": {"name": "rosenbrock"}, "optimizer": {"name": "adam"}}'
    response = client.post("/api/jobs", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 400
    assert response.json()["detail"] == "body: expected JSON with Content-Type: application/json"
