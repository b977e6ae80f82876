"""The composed app (API + UI at /ui) in a uvicorn subprocess on 127.0.0.1, for UI tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from threaded_server import free_port

ROOT = Path(__file__).resolve().parent.parent
CODE = (
    "import uvicorn; from playground.app import create_app; from server.settings import "
    "Settings; s = Settings(); uvicorn.run(create_app(s), host='127.0.0.1', port=s.port, "
    "log_level='warning', timeout_graceful_shutdown=2)"
)


@contextmanager
def ui_server(
    data_dir: Path, log_path: Path, token: str | None = None, env: dict[str, str] | None = None
) -> Iterator[str]:
    """Serve on a free loopback port until the block ends; yields the base URL.

    `token` becomes PSGD_PLAYGROUND_TOKEN; without it the server needs none, whatever the
    calling shell has set. `env` adds variables (settings) of the test's own.
    """
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if k != "PSGD_PLAYGROUND_TOKEN"}
    environment.update(
        PSGD_PLAYGROUND_DATA_DIR=str(data_dir),
        PSGD_PLAYGROUND_PORT=str(port),
        PSGD_PLAYGROUND_CONCURRENCY="3",
        PSGD_PLAYGROUND_DEVICE="cpu",
        GRADIO_ANALYTICS_ENABLED="False",
    )
    if token is not None:
        environment["PSGD_PLAYGROUND_TOKEN"] = token
    environment.update(env or {})
    with open(log_path, "w+") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", CODE], cwd=ROOT, env=environment, stdout=log, stderr=log
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            proc.kill()
            proc.wait()
            log.seek(0)
            pytest.fail(f"server did not start:\n{log.read()[-3000:]}")
        try:
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
