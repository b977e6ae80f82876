"""`psgd-playground serve` in a subprocess on a free 127.0.0.1 port, as a user starts it.

For the benchmarks that time the server from outside (overhead.py: jobs through the API;
ui_first_points.py: the UI in a browser). The server gets none of the caller's
PSGD_PLAYGROUND_* variables, only `env`; its output goes to `server.log` in its data folder.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


class LocalServer:
    """A started server (the constructor returns once `/api/health` answers); `stop()` it."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, wait: float = 120):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        environment = {k: v for k, v in os.environ.items() if not k.startswith("PSGD_PLAYGROUND_")}
        environment.update(PYTHONUNBUFFERED="1", GRADIO_ANALYTICS_ENABLED="False", **(env or {}))
        command = [sys.executable, "-m", "playground.cli", "serve", "--port", str(self.port)]
        self.log = data_dir / "server.log"
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [*command, "--data-dir", str(data_dir)],
                cwd=ROOT,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(base_url=self.url, timeout=60)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                if self.client.get("/api/health").status_code == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server did not start within {wait:g} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """CPU seconds the server's process (all its threads, not its workers) has used so
        far; NaN without Linux's /proc. Less sensitive to other load than wall time."""
        try:
            text = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return math.nan
        fields = text[text.rindex(")") + 2 :].split()  # after the command's name
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> None:
        """Ctrl+C, as a user stops it (its jobs are cancelled); killed if it hangs."""
        self.client.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
