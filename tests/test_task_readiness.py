"""A task that cannot run here yet (CIFAR-10 without its data) says so before it runs.

`GET /api/tasks` carries `ready` / `not_ready_reason` per task; the UI reads them through the
API (never `server.tasks`): choosing the CIFAR preset shows why and what to do, and Run
refuses it with that message instead of submitting three jobs that fail.
"""

from __future__ import annotations

from typing import Any

import pytest
from conftest import API_BASE_URL

from playground.forms import to_widget
from playground.presets import PRESETS

CIFAR_PRESET = "CIFAR-10 subset: PSGD vs SGD vs AdamW"
FETCH = "psgd-playground data download"


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cifar-data"
    folder.mkdir()
    monkeypatch.setenv("PSGD_PLAYGROUND_DATA_DIR", str(folder))
    return folder


def _tasks(client) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in client.get("/api/tasks").json()}


def test_the_catalogue_says_which_tasks_can_run_and_why_not(make_client, data_dir):
    client = make_client()
    tasks = _tasks(client)
    cifar = tasks["cifar10"]
    assert cifar["ready"] is False
    assert FETCH in cifar["not_ready_reason"]
    assert str(data_dir) not in cifar["not_ready_reason"]  # no server path to any client
    assert all(
        t["ready"] and t["not_ready_reason"] is None for t in tasks.values() if t is not cifar
    )
    (data_dir / "cifar-10-batches-py").mkdir()  # the data arrive: asked afresh, now ready
    assert _tasks(client)["cifar10"] == {**cifar, "ready": True, "not_ready_reason": None}


@pytest.fixture
def playground(make_client, data_dir):
    pytest.importorskip("gradio")
    from playground.ui import Playground

    api = make_client()
    api.base_url = api.base_url.join("/api")
    pg = Playground(f"{API_BASE_URL}/api")  # loopback: as_user clients reach nothing else
    pg.client._http = api  # the UI's API client, over the in-process app
    return pg, api


def test_the_cifar_preset_says_what_to_do_before_it_runs(playground, data_dir):
    pg, api = playground
    note = pg.load_preset(CIFAR_PRESET)[-1]
    assert "cifar10 cannot run on this server yet" in note and FETCH in note
    seed = pg.form_seed(PRESETS[CIFAR_PRESET])
    sections = pg.sections(seed, PRESETS[CIFAR_PRESET]["optimizers"])
    assert FETCH in sections[0].description  # beside the task's options too
    raws = [to_widget(f, s.values[f.key]) for s in sections for f in s.fields]
    settings = ("0", None, 1, "cpu", None)  # seeds, steps, epochs, device, target
    with pytest.warns(UserWarning, match="Not run"):  # the toast, outside a page
        chosen, _, status, beside_form = pg.run(
            sections, seed["generation"], seed, "", *settings, *raws
        )
    assert "**Not run** — cifar10:" in status and FETCH in status and beside_form == status
    assert not isinstance(chosen, str)
    assert api.get("/comparisons").json()["total"] == 0
    (data_dir / "cifar-10-batches-py").mkdir()
    assert pg.load_preset(CIFAR_PRESET)[-1] == ""  # ready now: no note
    assert pg.load_preset("Rosenbrock: PSGD vs Adam vs L-BFGS")[-1] == ""
