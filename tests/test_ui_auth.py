"""With PSGD_PLAYGROUND_TOKEN set, the UI acts only with the token its user gives.

A real server (API + UI, uvicorn subprocess on 127.0.0.1): the Run handler against its API,
and the UI's Cancel endpoint called with gradio_client the way anyone reaching /ui could.
Without the token, or with a wrong one, nothing is submitted or cancelled.
"""

from __future__ import annotations

import os
import time
from typing import Any

import httpx
import pytest
from ui_server import ui_server

pytest.importorskip("gradio")
pytest.importorskip("gradio_client")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # gradio_client: no Hugging Face lookups
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from gradio_client import Client

from playground.forms import to_widget
from playground.ui import Playground

pytestmark = pytest.mark.timeout(120)
TOKEN = "ui-auth-token"
LONG = {"task": {"name": "rosenbrock"}, "optimizers": [{"name": "sgd"}], "steps": 1_000_000}
REFUSALS = [("", "enter the server token"), ("wrong", "the server refused this token")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data, logs = tmp_path_factory.mktemp("auth-data"), tmp_path_factory.mktemp("auth-log")
    with ui_server(data, logs / "server.log", token=TOKEN) as url:
        yield url


def comparisons(server: str) -> dict[str, Any]:
    return httpx.get(f"{server}/api/comparisons").json()


def test_run_submits_only_with_the_users_token(server):
    pg = Playground(f"{server}/api")
    seed = pg.form_seed({"task": {"name": "rosenbrock"}})
    sections = pg.sections(seed, ["adam"])
    raws = [to_widget(f, s.values[f.key]) for s in sections for f in s.fields]

    def run(token: str) -> tuple[Any, ...]:
        settings = ("0", 20, None, "cpu", None)  # seeds, steps, epochs, device, target
        return pg.run(sections, seed["generation"], seed, token, *settings, *raws)

    for token, refusal in REFUSALS:
        with pytest.warns(UserWarning, match=refusal):  # the toast, outside a page
            chosen, _, status, _ = run(token)
        assert refusal in status and not isinstance(chosen, str), status
    assert comparisons(server)["total"] == 0
    chosen, _, status, form_error = run(TOKEN)
    assert status.startswith(f"Submitted comparison `{chosen}`") and form_error == ""
    assert [c["id"] for c in comparisons(server)["items"]] == [chosen]


def test_ui_cancel_over_gradio_client_needs_the_token(server):
    answer = httpx.post(
        f"{server}/api/comparisons", json=LONG, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert answer.status_code == 201, answer.text
    running = answer.json()["id"]
    client = Client(f"{server}/ui/", verbose=False)
    try:
        loaded = client.predict(api_name="/on_load")  # puts the running comparison in view
        assert running in loaded[7]
        assert client.predict(api_name="/cancel").startswith("**Not cancelled**")
        for token, refusal in REFUSALS:
            assert refusal in client.predict(token=token, api_name="/cancel")
        assert httpx.get(f"{server}/api/comparisons/{running}").json()["status"] == "running"
        done = client.predict(token=TOKEN, api_name="/cancel")
        assert done == f"Cancelled comparison `{running}`"
    finally:
        client.close()
    deadline = time.monotonic() + 30
    while httpx.get(f"{server}/api/comparisons/{running}").json()["status"] != "finished":
        assert time.monotonic() < deadline, "the cancelled comparison did not finish"
        time.sleep(0.2)
