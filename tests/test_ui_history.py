"""The UI's history table reads `GET /api/comparisons`, whose items are summaries."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_executor import FakeExecutor
from fastapi.testclient import TestClient

from server.api import create_app
from server.settings import Settings

pytest.importorskip("gradio")

COMPARISON = {
    "task": {"name": "rosenbrock"},
    "optimizers": [{"name": "psgd-dense"}, {"name": "adam"}],
    "seeds": [0, 1, 2],
    "steps": 3,
}


def test_history_rows_name_task_optimizers_and_seed_count(tmp_path: Path) -> None:
    from playground.ui import Playground

    app = create_app(Settings(data_dir=tmp_path), executor=FakeExecutor())
    with TestClient(app, base_url="http://127.0.0.1:8000/api") as api:
        cid = api.post("/comparisons", json=COMPARISON).json()["id"]
        ui = Playground("http://127.0.0.1:8000/api")
        ui.client._http = api  # the UI's API client, over the in-process app
        rows, choices = ui.history()
    assert [row[0] for row in rows] == [cid]
    assert rows[0][2:5] == ["rosenbrock", "psgd-dense, adam", 3]
    assert choices["choices"][0][1] == cid
