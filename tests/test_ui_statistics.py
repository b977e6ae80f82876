"""The UI's compare view: the loss figure's x-axis choice and the statistics over seeds."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_api_summary import COMPARISON, RunnerExecutor

from playground import views
from server.api import create_app
from server.settings import Settings

pytest.importorskip("gradio")


def _finished(api: TestClient, cid: str) -> None:
    deadline = time.monotonic() + 60
    while api.get(f"/comparisons/{cid}").json()["status"] == "running":
        assert time.monotonic() < deadline, "the comparison did not finish"
        time.sleep(0.05)


def test_tick_draws_the_chosen_axis_and_the_statistics(tmp_path: Path) -> None:
    from playground import live
    from playground.ui import Playground

    app = create_app(Settings(data_dir=tmp_path), executor=RunnerExecutor(max_steps=60))
    with TestClient(app, base_url="http://127.0.0.1:8000/api") as api:
        cid = api.post("/comparisons", json=COMPARISON).json()["id"]
        _finished(api, cid)
        ui = Playground("http://127.0.0.1:8000/api")
        ui.client._http = api  # the UI's API client, over the in-process app
        follower = live.follow(ui.client, cid)
        deadline = time.monotonic() + 30
        while not follower.done:
            assert time.monotonic() < deadline, "the event stream did not end"
            time.sleep(0.05)
        by_step = ui.tick(cid, -1)
        by_work = ui.tick(cid, -1, "evaluations")
        by_time = ui.tick(cid, -1, "seconds")
        summary = api.get(f"/comparisons/{cid}/summary").json()
    assert by_step[0].layout.xaxis.title.text == "step"
    assert by_work[0].layout.xaxis.title.text.startswith("gradient evaluations")
    assert by_time[0].layout.xaxis.title.text == "seconds since step 1"
    statistics = by_step[-1]
    assert statistics == views.statistics_markdown(summary)
    assert statistics.startswith("**Over seeds**")
    assert "| adam | 3 |" in statistics and "| sgd | 3 |" in statistics
    assert summary["pairs"][0]["sentence"] in statistics


def test_statistics_are_left_out_for_a_single_seed() -> None:
    summary = {"optimizers": [{"label": "adam", "counted": 1}], "pairs": []}
    assert views.statistics_markdown(summary) == ""
    from playground.ui import Playground

    ui = Playground("http://127.0.0.1:9/api")  # never asked: one seed needs no request
    assert ui.statistics({"id": "x", "spec": {"seeds": [0]}}) == ""


def test_the_statistics_table_shows_censored_medians_and_wilson_intervals() -> None:
    spread = {"n": 3, "reached": 1, "median": None, "q1": None, "q3": None, "min": 5, "max": None}
    reached = {"n": 3, "reached": 3, "median": 20.0, "q1": 15.0, "q3": 25.0, "min": 10, "max": 30}
    summary = {
        "metric_name": "final loss",
        "success": "target",
        "optimizers": [
            {
                "label": "lbfgs",
                "counted": 3,
                "final": {"mean": 0.5, "low": 0.25, "high": 0.75, "n": 3},
                "success": {"successes": 1, "n": 3, "rate": 1 / 3, "low": 0.0615, "high": 0.792},
                "to_target": {"steps": spread, "evaluations": spread, "seconds": spread},
            },
            {
                "label": "adam",
                "counted": 3,
                "final": {"mean": 0.1, "low": 0.05, "high": 0.15, "n": 3},
                "success": {"successes": 3, "n": 3, "rate": 1.0, "low": 0.438, "high": 1.0},
                "to_target": {"steps": reached, "evaluations": reached, "seconds": reached},
            },
        ],
        "pairs": [{"sentence": "adam has a lower final loss than lbfgs, beyond the noise (…)."}],
    }
    text = views.statistics_markdown(summary)
    assert "| lbfgs | 3 | 0.5 [0.25, 0.75] | 1/3 [6%, 79%] | > budget (1/3 reached) |" in text
    assert "| adam | 3 | 0.1 [0.05, 0.15] | 3/3 [44%, 100%] | 20 [IQR 15–25] |" in text
    assert text.endswith("- adam has a lower final loss than lbfgs, beyond the noise (…).")
