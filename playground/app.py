"""The one-process app: the API (server.api) with the Gradio UI mounted at /ui.

    from playground.app import create_app
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port)

The UI reaches the API over HTTP at `api_url` (default: this server's own
http://<host>:<port>/api), like any other client. `/` redirects to `/ui/`.

Without the `ui` extra (no gradio) the API is served alone, `/` redirects to `/docs`, and
one warning says so: the `server` extra is enough to serve.
"""

from __future__ import annotations

import logging
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from server.settings import Settings

log = logging.getLogger(__name__)
UI_MISSING = (
    "the UI is not installed (pip install 'psgd-playground[ui]'): serving the API only; "
    "/ redirects to /docs"
)


def local_api_url(settings: Settings) -> str:
    host = settings.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}/api"


def create_app(settings: Settings | None = None, api_url: str | None = None) -> FastAPI:
    """The API with the UI at /ui; `app.state.ui` says whether the UI is there."""
    from server.api import create_app as create_api

    settings = settings or Settings()
    app = create_api(settings)
    try:
        import gradio as gr
    except ModuleNotFoundError as e:
        if e.name != "gradio":
            raise
        log.warning(UI_MISSING)
        _redirect_root(app, "/docs")
        app.state.ui = False
        return app

    from playground.ui import build_ui

    _redirect_root(app, "/ui/")
    app.state.ui = True

    blocks = build_ui(api_url or local_api_url(settings))  # never the server's token
    mounted = gr.mount_gradio_app(app, blocks, path="/ui", footer_links=[], ssr_mode=False)
    pace_queue(blocks._queue)
    return mounted


# Gradio's queue polls for work every 1 ms (progress every 10 ms) on Linux: an idle server's
# event loop then spent 0.073-0.077 CPU s per second (0.002 without the UI), taken from the
# jobs on a small machine. 20 ms adds at most that to a UI event; our ticks are 1 s apart.
QUEUE_POLL_S = 0.02
PROGRESS_POLL_S = 0.1


def pace_queue(queue) -> None:
    """Slow the queue's idle polling to QUEUE_POLL_S / PROGRESS_POLL_S (never speed it up)."""
    queue.sleep_when_free = max(queue.sleep_when_free, QUEUE_POLL_S)
    queue.progress_update_sleep_when_free = max(
        queue.progress_update_sleep_when_free, PROGRESS_POLL_S
    )


def _redirect_root(app: FastAPI, to: str) -> None:
    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(to)
