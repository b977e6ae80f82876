"""Schemathesis against the API's own OpenAPI document: every operation, all checks.

The app runs in a uvicorn thread on 127.0.0.1 (fake executor, so fuzzed jobs cost nothing;
a token, so the auth checks run too) and the schemathesis CLI drives it with at most 20
examples per operation in deterministic mode, through its coverage, fuzzing and stateful
phases. Every response status the server sends is recorded: no 5xx is allowed, whatever
schemathesis concludes.

Configured: the job-, comparison- and sweep-submitting operations may answer 422 to a
body their schema allows, since some rules are not expressible in JSON Schema (a
Rosenbrock `dim` must be even, `start` must have `dim` values, optimizers × seeds must fit
the queue, a sweep's ranges must lie within the optimizer's bounds); the contour
map may answer 404 or 422 to any task name and options (its `options` are a JSON string).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from fake_executor import FakeExecutor
from threaded_server import serve_in_thread

from server.api import create_app
from server.settings import Settings

TOKEN = "fuzz-token"
CONFIG = """
[[operations]]
include-path = "/api/jobs"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422", "429"]

[[operations]]
include-path = "/api/comparisons"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422", "429"]

[[operations]]
include-path = "/api/sweeps"
include-method = "POST"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "404", "409", "422", "429"]

[[operations]]
include-path = "/api/tasks/{name}/contour"
include-method = "GET"
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "422"]
"""

pytestmark = pytest.mark.timeout(240)


@pytest.fixture
def server(tmp_path):
    """The app in a uvicorn thread on a free loopback port; yields (url, statuses seen)."""
    settings = Settings(
        data_dir=tmp_path / "data", token=TOKEN, max_queued=1000, max_jobs_per_minute=10**6
    )
    app = create_app(settings, executor=FakeExecutor(max_steps=3))
    statuses: list[int] = []

    async def recording(scope, receive, send):
        async def send_and_record(message):
            if message["type"] == "http.response.start":
                statuses.append(message["status"])
            await send(message)

        await app(scope, receive, send_and_record)

    with serve_in_thread(recording, log_level="warning") as url:
        yield url, statuses


def test_schemathesis_finds_no_failures(server, tmp_path: Path) -> None:
    url, statuses = server
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(tmp_path / "schemathesis.toml"),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        "20",
        "--generation-deterministic",
        "--workers",
        "1",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--request-timeout",
        "20",
    ]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "120"}
    # cwd: schemathesis and hypothesis keep their caches in the working directory
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=200
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "Operations:       30 selected / 30 total" in report, report
    server_errors = sorted({status for status in statuses if status >= 500})
    assert not server_errors, f"5xx answers: {server_errors}\n{report}"
    assert len(statuses) > 500  # it did exercise the API
