"""Serving with only the `server` extra: gradio missing is simulated with
`sys.modules["gradio"] = None` (every `import gradio` then fails as if not installed)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from threaded_server import free_port

from playground.app import UI_MISSING, create_app
from server.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
WITHOUT_GRADIO = (
    "import sys; sys.modules['gradio'] = None; from playground.cli import main; "
    "sys.exit(main(sys.argv[1:]))"
)


def test_the_app_serves_the_api_alone_when_gradio_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "gradio", None)
    app = create_app(Settings(data_dir=tmp_path))
    assert app.state.ui is False
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [UI_MISSING]
    with TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False) as client:
        assert client.get("/").headers["location"] == "/docs"
        assert client.get("/api/health").status_code == 200
        assert client.get("/ui/").status_code == 404


@pytest.mark.timeout(90)
def test_serve_without_gradio_starts_and_says_the_ui_is_missing(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PSGD_PLAYGROUND_")}
    command = [sys.executable, "-c", WITHOUT_GRADIO, "serve", "--port", str(port)]
    command += ["--data-dir", str(tmp_path / "data")]
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"serve exited:\n{log.read_text()}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        root = httpx.get(f"http://127.0.0.1:{port}/")
        assert root.status_code == 307 and root.headers["location"] == "/docs"
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(20)
    output = log.read_text()
    assert "Traceback" not in output, output
    assert output.count("UI is not installed") == 1, output
    assert f"serving the API on http://127.0.0.1:{port}/api" in output, output
