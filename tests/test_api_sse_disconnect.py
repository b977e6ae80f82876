"""Clients that hang up in the middle of a long replay, against a real uvicorn server on
127.0.0.1 (in a thread, fake executor): the log says so once per client, instead of
asyncio's `socket.send() raised exception.` for every write after the hang-up."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fake_executor import FakeExecutor
from threaded_server import serve_in_thread

from server.api import create_app
from server.jobs.store import JobStore
from server.settings import DB_NAME, Settings

EVENTS = 6000  # about 3 MB of replay per client
CLIENTS = 3

pytestmark = pytest.mark.timeout(120)


def stored_job(data_dir: Path) -> str:
    """A finished job with many stored events (trajectory events are never thinned)."""
    with JobStore(data_dir / DB_NAME) as store:
        job_id = store.create_job({"task": {"name": "rosenbrock"}}, label="big")
        store.set_status(job_id, "running")
        for step in range(EVENTS):
            point = [0.123456789 * step, 1.0 + 0.5 * step] * 32
            store.append_event(job_id, {"type": "trajectory", "step": step, "point": point})
        store.append_event(
            job_id,
            {"type": "status", "step": EVENTS, "status": "succeeded", "message": "", "summary": {}},
        )
        store.set_status(job_id, "succeeded")
    return job_id


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(base url, the big job's id) of a server on a free loopback port."""
    job_id = stored_job(tmp_path / "data")
    app = create_app(Settings(data_dir=tmp_path / "data"), executor=FakeExecutor())
    with serve_in_thread(app, log_config=None) as url:
        yield url, job_id


def hang_up_after(url: str, lines: int) -> None:
    """Read `lines` lines of the stream, then close the socket under it."""
    with httpx.Client(timeout=30) as client, client.stream("GET", url) as response:
        assert response.status_code == 200
        for i, _ in enumerate(response.iter_lines()):
            if i >= lines:
                break


def test_clients_hanging_up_mid_replay_are_logged_once_each(
    server: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    base, job_id = server
    url = f"{base}/api/jobs/{job_id}/events"
    caplog.set_level(logging.INFO)
    clients = [
        threading.Thread(target=hang_up_after, args=(url, 40 * (k + 1))) for k in range(CLIENTS)
    ]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(60)
    deadline = time.monotonic() + 20  # the server notices each hang-up on its next write
    while time.monotonic() < deadline:
        gone = [r for r in caplog.records if "disconnected" in r.getMessage()]
        if len(gone) >= CLIENTS:
            break
        time.sleep(0.1)
    time.sleep(0.5)  # a stream still writing would log more by now
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "socket.send() raised exception" in m], len(messages)
    gone = [m for m in messages if "disconnected" in m]
    assert len(gone) == CLIENTS, messages
    assert all(job_id in m for m in gone)
    # the server still serves a full replay to a client that stays
    with httpx.Client(timeout=60) as client:
        body = client.get(url).text
    assert body.count("event: trajectory") == EVENTS and body.count("event: status") == 1
