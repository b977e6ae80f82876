"""The UI's first points after Run (issue 12): the tick after Run waits for the first loss
value instead of the redraw timer's next beat, and draws the loss figure before the others."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import plotly.graph_objects as go
import pytest

from playground import live
from server.events import Metrics, Started, StreamMessage

gr = pytest.importorskip("gradio")

COMPARISON = {
    "id": "c-first",
    "status": "running",
    "spec": {"task": {"name": "rosenbrock"}, "seeds": [0]},
    "jobs": [{"id": "j1", "optimizer_label": "adam", "seed": 0, "status": "running"}],
}


class HeldStream:
    """An API client whose event stream sends `started`, then holds the first loss value
    until `release` is set, then ends."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.release = threading.Event()

    def comparison(self, comparison_id: str) -> dict[str, Any]:
        return COMPARISON

    def events(self, comparison_id: str, last_event_id: int = 0) -> Iterator[StreamMessage]:
        if last_event_id < 1:
            yield StreamMessage(job_id="j1", id=1, event=Started(total_steps=10, meta={}))
        self.release.wait(30)
        metrics = Metrics(step=1, loss=2.5, grad_norm=1.0, lr=0.1, step_time=0.01, elapsed=0.01)
        yield StreamMessage(job_id="j1", id=2, event=metrics)


def _points(figure: go.Figure) -> int:
    return sum(len(trace.x or []) for trace in figure.data)


def test_the_tick_after_run_waits_for_the_first_loss_value_and_draws_it_first() -> None:
    from playground.ui import Playground

    ui = Playground("http://127.0.0.1:9/api")  # never reached: the client is replaced
    client = ui.client = HeldStream(f"http://first-points-{time.monotonic_ns()}/api")
    follower = live.follow(client, COMPARISON["id"])
    deadline = time.monotonic() + 30
    while follower.version < 1:  # `started` has arrived, the loss value is held back
        assert time.monotonic() < deadline, "the follower never read the stream"
        time.sleep(0.01)
    answer: list[tuple[Any, ...]] = []
    after_run = threading.Thread(target=lambda: answer.append(ui.first_points("c-first", -1)))
    after_run.start()
    time.sleep(0.2)  # long enough for a tick that did not wait to have drawn no points
    client.release.set()
    after_run.join(30)
    assert answer, "the tick after Run never returned"
    loss, trajectory, spectrum, metrics, results, rendered, status = answer[0][:7]
    assert isinstance(loss, go.Figure) and _points(loss) == 1  # it waited for the value
    assert "Comparison `c-first`" in status and results["data"][0][0] == "adam"
    # the heavier figures wait for the next tick
    assert all(isinstance(out, type(gr.skip())) for out in (trajectory, spectrum, metrics))

    full = ui.tick("c-first", rendered)
    assert all(isinstance(figure, go.Figure) for figure in full[:4])
    assert _points(full[0]) == 1
    assert all(isinstance(out, type(gr.skip())) for out in ui.tick("c-first", full[5]))


def test_a_running_comparison_without_points_redraws_only_its_loss_figure() -> None:
    from playground.ui import Playground, points_drawn

    ui = Playground("http://127.0.0.1:9/api")
    client = ui.client = HeldStream(f"http://no-points-{time.monotonic_ns()}/api")
    follower = live.follow(client, COMPARISON["id"])
    deadline = time.monotonic() + 30
    while follower.version < 1:
        assert time.monotonic() < deadline, "the follower never read the stream"
        time.sleep(0.01)
    first = ui.tick("c-first", -1)
    assert isinstance(first[0], go.Figure) and _points(first[0]) == 0
    # the other figures are cleared (not a previous comparison's), nothing to draw
    assert first[1:4] == (None, None, None)
    assert [row[0] for row in first[4]["data"]] == ["adam"]  # this comparison's results
    assert not points_drawn(first[5])
    # nothing new: nothing is rebuilt, not even the loss figure
    assert all(isinstance(out, type(gr.skip())) for out in ui.tick("c-first", first[5]))
    client.release.set()
