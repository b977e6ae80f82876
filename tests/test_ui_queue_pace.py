"""Gradio's queue must not busy-poll: at its default 1 ms an idle server's event loop used
0.073-0.077 CPU s per second, taken from the jobs it runs (issue 12)."""

from __future__ import annotations

import pytest

pytest.importorskip("gradio")

from starlette.routing import Mount

from playground.app import PROGRESS_POLL_S, QUEUE_POLL_S, create_app
from server.settings import Settings


def mounted_queue(app):
    (ui,) = [r for r in app.routes if isinstance(r, Mount) and r.path == "/ui"]
    return ui.app.get_blocks()._queue


def test_the_mounted_ui_polls_its_queue_at_most_every_20_ms(tmp_path):
    queue = mounted_queue(create_app(Settings(data_dir=tmp_path)))
    assert queue.sleep_when_free >= QUEUE_POLL_S == 0.02
    assert queue.progress_update_sleep_when_free >= PROGRESS_POLL_S
