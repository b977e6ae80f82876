"""An ASGI app served by uvicorn in a thread on a free 127.0.0.1 port, for tests that need
a real socket (fuzzing, client hang-ups) without a subprocess."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


def free_port() -> int:
    """A loopback port free at the time of asking."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_in_thread(app: Any, **config: Any) -> Iterator[str]:
    """Yields the base URL while the server runs; `config` goes to uvicorn.Config."""
    port = free_port()
    settings = uvicorn.Config(app, host="127.0.0.1", port=port, **config)
    settings.timeout_graceful_shutdown = 2
    server = uvicorn.Server(settings)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
