"""A real one-machine Ray head for tests, started the way this machine's network rules
require (server/jobs/ray_env.py): `ray start --head --block` on 127.0.0.1, no dashboard,
no usage statistics, HOME holding the local-provider bootstrap file.

`--block` keeps `ray start` in the foreground; SIGTERM to it stops every process the head
started, so a test ends its own head by pid and never touches another Ray.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from threaded_server import free_port

from server.jobs.ray_env import head_command, loopback_env


def require_ray() -> None:
    """Skip without the ray package, except in CI (CI_REQUIRE_RAY=1, set by .ci/run, or
    CI set), where a missing ray fails the run."""
    try:
        import ray  # noqa: F401
    except ImportError:
        if os.environ.get("CI_REQUIRE_RAY") == "1" or os.environ.get("CI"):
            pytest.fail("CI must run the Ray tests: install the ray extra (make venv)")
        pytest.skip("needs the ray extra: pip install 'psgd-playground[ray]'")


class RayHead:
    """A head on a loopback port; `stop()` ends it, `start()` starts it again (same port)."""

    def __init__(self, num_cpus: int = 2, port: int | None = None) -> None:
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.num_cpus = num_cpus
        # short: Ray's socket paths live under it and must stay under 107 characters
        self.folder = Path(tempfile.mkdtemp(prefix="psgd-ray-", dir="/tmp"))
        self.env = {**os.environ, **loopback_env(self.folder)}
        self.env.pop("RAY_ADDRESS", None)  # a head of its own, whatever a test has set
        self.process: subprocess.Popen | None = None
        self.log = self.folder / "head.log"

    def start(self, timeout: float = 60.0) -> RayHead:
        ray = str(Path(sys.executable).with_name("ray"))
        command = head_command(ray, self.port, str(self.folder / "t"), self.num_cpus)
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while not _listening(self.port):
            assert self.process.poll() is None, f"ray head exited:\n{self.log.read_text()}"
            assert time.monotonic() < deadline, f"ray head did not start:\n{self.log.read_text()}"
            time.sleep(0.2)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0
