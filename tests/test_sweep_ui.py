"""The UI's Sweeps tab: its table and figures from stored trials, its search-space form, and
its Run/Cancel handlers against a real API served in this process (with a token)."""

from __future__ import annotations

import time
from typing import Any

import pytest

pytest.importorskip("gradio")

from playground import sweep_figures, sweep_form
from playground.forms import FormError


def trial(optimizer: str, number: int, params: dict, value: float | None, status: str, **kw):
    return {"optimizer": optimizer, "number": number, "params": params, "value": value,
            "status": status, "job_id": f"job-{optimizer}-{number}", "message": "",
            "created": 10.0 + number, "finished": 20.0 + number, **kw}  # fmt: skip


def stored_sweep() -> dict[str, Any]:
    """A sweep as GET /api/sweeps/{id} returns it: adam over lr (log), psgd over lr and a
    choice; one diverged trial and one still running."""
    trials = [
        trial("adam", 0, {"lr": 0.1}, 50.0, "complete"),
        trial("adam", 1, {"lr": 1.0}, None, "diverged", message="non-finite at step 4"),
        trial("adam", 2, {"lr": 0.01}, 0.5, "complete"),
        trial("psgd-kron", 0, {"lr": 0.02, "fitting": "newton"}, 2.0, "complete", finished=30.0),
        trial("psgd-kron", 1, {"lr": 0.5, "fitting": "whiten"}, 3.0, "complete", finished=31.0),
        trial("psgd-kron", 2, {"lr": 0.2, "fitting": "whiten"}, None, "running", finished=None),
    ]
    lr = {"type": "float", "low": 1e-4, "high": 1.0, "log": True, "values": None}
    fitting = {"type": "choice", "low": None, "high": None, "log": False,
               "values": ["whiten", "newton"]}  # fmt: skip
    return {
        "id": "s1",
        "spec": {"task": {"name": "rosenbrock"}, "objective": {"kind": "final", "metric": "loss"}},
        "status": "running",
        "phase": "search",
        "message": "",
        "direction": "minimize",
        "trials": trials,
        "optimizers": [
            {
                "name": "adam",
                "space": {"lr": lr},
                "trials_total": 3,
                "trials_done": 3,
                "best": trials[2],
                "best_so_far": [
                    {"number": 0, "value": 50.0, "best": 50.0},
                    {"number": 1, "value": None, "best": 50.0},
                    {"number": 2, "value": 0.5, "best": 0.5},
                ],
            },
            {
                "name": "psgd-kron",
                "space": {"lr": lr, "fitting": fitting},
                "trials_total": 3,
                "trials_done": 2,
                "best": trials[3],
                "best_so_far": [
                    {"number": 0, "value": 2.0, "best": 2.0},
                    {"number": 1, "value": 3.0, "best": 2.0},
                ],
            },
        ],
        "rerun": None,
    }


# ---------------------------------------------------------------------- table and figures
def test_the_trials_table_lists_the_latest_first_with_values_and_messages():
    headers, rows = sweep_figures.trials_table(stored_sweep())
    assert headers == ["optimizer", "trial", "params", "value", "status", "job"]
    order = [(r[0], r[1]) for r in rows]
    assert order[:4] == [("psgd-kron", 2), ("psgd-kron", 1), ("psgd-kron", 0), ("adam", 2)]
    by_key = {(r[0], r[1]): r for r in rows}
    assert by_key[("psgd-kron", 0)][2:4] == ["lr=0.02, fitting=newton", "2"]
    assert by_key[("adam", 1)][3:] == ["–", "diverged: non-finite at step 4", "job-adam-1"]
    assert by_key[("psgd-kron", 2)][4] == "running"


def test_best_so_far_draws_each_optimizers_running_best_over_its_trials():
    fig = sweep_figures.best_so_far_figure(stored_sweep())
    lines = {t.name: t for t in fig.data if t.mode == "lines"}
    dots = {t.name: t for t in fig.data if t.mode == "markers"}
    assert list(lines["adam"].y) == [50.0, 50.0, 0.5] and list(lines["adam"].x) == [1, 2, 3]
    assert list(lines["psgd-kron"].y) == [2.0, 2.0]
    assert list(dots["adam trials"].y) == [50.0, 0.5]  # the diverged trial has no value
    assert lines["adam"].line.color != lines["psgd-kron"].line.color
    assert fig.layout.yaxis.type == "log"  # 0.5 … 50 spans two decades
    assert "final loss (minimize)" in fig.layout.yaxis.title.text


def test_the_slice_plot_has_a_panel_per_hyperparameter_on_its_own_scale():
    fig = sweep_figures.slice_figure(stored_sweep())
    assert fig.layout.xaxis.title.text == "lr (log scale)" and fig.layout.xaxis.type == "log"
    assert fig.layout.xaxis2.title.text == "fitting" and fig.layout.xaxis2.type == "category"
    fitting = [t for t in fig.data if t.xaxis == "x2"]
    assert [t.name for t in fitting] == ["psgd-kron"] and list(fitting[0].x) == ["newton", "whiten"]
    lr_adam = next(t for t in fig.data if t.xaxis == "x" and t.name == "adam")
    assert list(lr_adam.x) == [0.1, 0.01] and list(lr_adam.y) == [50.0, 0.5]


def test_figures_before_any_complete_trial_say_what_they_will_show():
    sweep = {**stored_sweep(), "trials": [], "optimizers": []}
    for fig in (sweep_figures.best_so_far_figure(sweep), sweep_figures.slice_figure(sweep)):
        assert not fig.data and fig.layout.annotations


def test_the_status_line_names_progress_and_each_best():
    text = sweep_figures.sweep_status(stored_sweep())
    assert "running, search phase, 5/6 trials" in text
    assert "**adam**: best 0.5 at lr=0.01 (trial 2)" in text


def test_the_tab_leaves_the_compare_views_endpoint_names_alone():
    """gradio_client callers (tests/test_ui_auth.py) reach the compare view's /cancel and
    /tick by name; the tab, built first inside the layout, must not take them."""
    from playground.ui import build_ui

    demo = build_ui("http://127.0.0.1:9/api")  # builds without asking the server
    names = {fn.api_name: getattr(fn.fn, "__qualname__", None) for fn in demo.fns.values()}
    assert names["cancel"] == "Playground.cancel" and names["tick"] == "Playground.tick"
    assert names["sweep_cancel"] == "SweepsTab.cancel" and names["sweep_run"] == "SweepsTab.run"


# ---------------------------------------------------------------------- the space form
SCHEMA = {
    "properties": {
        "name": {"type": "string"},
        "lr": {"type": "number", "exclusiveMinimum": 0},
        "weight_decay": {"type": "number", "minimum": 0},
        "fitting": {"type": "string", "enum": ["whiten", "newton"]},
        "steps": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "betas": {"type": "array"},
    }
}


def test_space_rows_show_the_servers_ranges_and_blank_rows_where_it_has_none():
    kinds = sweep_form.searchable(SCHEMA)
    assert kinds == {"lr": "float", "weight_decay": "float", "fitting": "choice", "steps": "int"}
    defaults = {
        "lr": {"type": "float", "low": 1.0000000000000001e-5, "high": 0.1, "log": True},
        "weight_decay": "no default range for 'weight_decay'",
        "fitting": {"type": "choice", "low": None, "high": None, "values": ["whiten", "newton"]},
        "steps": "no default range",
    }
    rows = sweep_form.space_rows("sgd", kinds, defaults)
    assert rows[0] == ["sgd", "lr", True, "float", 1e-5, 0.1, True, ""]
    assert rows[1] == ["sgd", "weight_decay", False, "float", None, None, False, ""]
    assert rows[2][2:] == [False, "choice", None, None, False, "whiten, newton"]
    edited = [["sgd", "lr", True, "float", 1e-3, 0.5, False, ""], ["adam", "lr", True]]
    kept = sweep_form.keep_edits(rows, edited)
    assert kept[0] == edited[0] and kept[1:] == rows[1:]


def test_read_space_builds_ranges_and_names_the_bad_cell():
    rows = [
        ["sgd", "lr", True, "float", 1e-4, 0.1, True, ""],
        ["sgd", "momentum", "true", "float", 0, 0.999, "false", ""],
        ["sgd", "nesterov", True, "choice", None, None, False, "false, true"],
        ["sgd", "weight_decay", False, "float", None, None, False, ""],
    ]
    space = sweep_form.read_space(rows, ["sgd"])
    assert space == {"sgd": {
        "lr": {"type": "float", "low": 0.0001, "high": 0.1, "log": True},
        "momentum": {"type": "float", "low": 0, "high": 0.999, "log": False},
        "nesterov": {"type": "choice", "values": [False, True]},
    }}  # fmt: skip
    rows[3][2] = True
    with pytest.raises(FormError, match=r"sgd · weight_decay low: empty"):
        sweep_form.read_space(rows, ["sgd"])
    with pytest.raises(FormError, match="adam: tick at least one"):
        sweep_form.read_space(rows[:3], ["sgd", "adam"])


def test_sweep_spec_carries_the_objective_and_pruning():
    space = {"adam": {"lr": {"type": "float", "low": 1e-4, "high": 1, "log": True}}}
    common = {"trials": 4, "seeds": 2, "steps": 30, "parallel": 1, "sampler": "tpe", "seed": 7}
    spec = sweep_form.sweep_spec(
        "rosenbrock", space, objective={"kind": "best", "metric": "loss", "direction": "auto"},
        pruning={"startup_trials": 2, "warmup_steps": 5}, **common,
    )  # fmt: skip
    assert spec["objective"] == {"kind": "best", "metric": "loss"}
    assert spec["pruning"] == {"startup_trials": 2, "warmup_steps": 5}
    assert spec["optimizers"] == [{"name": "adam", "space": space["adam"]}] and spec["seed"] == 7
    for empty in (None, 0):  # what an empty number box sends
        with pytest.raises(FormError, match="target: steps_to_target needs a target"):
            sweep_form.sweep_spec("rosenbrock", space, pruning=None,
                                  objective={"kind": "steps_to_target", "target": empty},
                                  **common)  # fmt: skip


# ---------------------------------------------------------------------- against a server
TOKEN = "sweep-ui-token"


@pytest.fixture
def serve(tmp_path, clean_env):
    """serve(executor) -> the API's base URL, served in this process with the token set."""
    from contextlib import ExitStack

    from threaded_server import serve_in_thread

    from server.api import create_app
    from server.settings import Settings

    with ExitStack() as stack:

        def start(executor: Any) -> str:
            app = create_app(Settings(data_dir=tmp_path, token=TOKEN), executor=executor)
            return f"{stack.enter_context(serve_in_thread(app, log_level='warning'))}/api"

        yield start


def tab_of(api_url: str) -> Any:
    from playground.sweeps_tab import SweepsTab
    from playground.ui import Playground

    return SweepsTab(Playground(api_url))


def run_fields(**given: Any) -> list[Any]:
    from playground.sweeps_tab import RUN_FIELDS

    fields = dict.fromkeys(RUN_FIELDS)
    fields.update(trials=2, seeds=2, steps=10, parallel=1, kind="final", metric="loss",
                  direction="auto", prune=False, sampler="random", seed=0, **given)  # fmt: skip
    return [fields[name] for name in RUN_FIELDS]


def test_a_reload_resumes_a_running_sweep_and_cancel_needs_the_token(serve):
    from fake_executor import FakeExecutor

    executor = FakeExecutor()
    executor.pause()  # the trials wait: the sweep stays running
    tab = tab_of(serve(executor))
    assert tab.choices()[2] is None  # no sweep yet: nothing resumed
    rows, _ = tab.space("rosenbrock", ["adam"], None, TOKEN)
    sweep_id, _, status = tab.run(TOKEN, "rosenbrock", ["adam"], rows, *run_fields())
    assert status == f"Started sweep `{sweep_id}` (2 trials)"
    *_, resumed, rendered, line = tab.choices()
    assert (resumed, rendered, line) == (
        sweep_id,
        -1,
        f"Resumed the live view of sweep `{sweep_id}`",
    )
    with pytest.warns(UserWarning, match="enter the server token"):  # the toast
        assert "enter the server token" in tab.cancel(sweep_id, "")
    assert tab.pg.client.sweep(sweep_id)["status"] == "running"
    assert tab.cancel(sweep_id, TOKEN) == f"Cancelled sweep `{sweep_id}`"
    assert tab.pg.client.sweep(sweep_id)["status"] == "cancelled"
    executor.resume()


@pytest.mark.slow  # a real sweep: about 10 s on a loaded 2-core machine
@pytest.mark.timeout(120)
def test_run_starts_a_sweep_only_with_the_token_and_the_tick_shows_its_end(serve):
    import gradio as gr
    from thread_executor import ThreadExecutor

    from playground.client import ApiClient
    from playground.sweeps_tab import NEEDS_TOKEN

    api_url = serve(ThreadExecutor())
    tab = tab_of(api_url)
    assert tab.space("rosenbrock", ["adam"], None) == ([], NEEDS_TOKEN)  # no token: no ranges
    rows, note = tab.space("rosenbrock", ["adam", "sgd"], None, TOKEN)
    adam_lr = next(r for r in rows if r[:2] == ["adam", "lr"])
    assert adam_lr[2:7] == [True, "float", 1e-4, 1.0, True]  # the server's default range
    assert "sgd · weight_decay: no default range" in note
    values = run_fields()
    reader = ApiClient(api_url)

    for token, refusal in [("", "enter the server token"), ("wrong", "refused this token")]:
        with pytest.warns(UserWarning, match=refusal):
            sweep_id, _, status = tab.run(token, "rosenbrock", ["adam", "sgd"], rows, *values)
        assert refusal in status and not isinstance(sweep_id, str)
    assert reader.sweeps()["total"] == 0

    sweep_id, rendered, status = tab.run(TOKEN, "rosenbrock", ["adam", "sgd"], rows, *values)
    assert status == f"Started sweep `{sweep_id}` (4 trials)"
    deadline = time.monotonic() + 90
    while reader.sweep(sweep_id)["status"] == "running":
        assert time.monotonic() < deadline, "the sweep did not finish"
        time.sleep(0.1)
    table, best, _, line, rerun, rendered = tab.tick(sweep_id, rendered)
    assert len(table["data"]) == 4 and {r[0] for r in table["data"]} == {"adam", "sgd"}
    assert {t.name for t in best.data if t.mode == "lines"} == {"adam", "sgd"}
    assert f"Sweep `{sweep_id}` on **rosenbrock** — succeeded" in line
    comparison = reader.sweep(sweep_id)["rerun"]["comparison_id"]
    assert f"[`{comparison}`](?comparison={comparison})" in rerun and "**Over seeds**" in rerun
    assert tab.tick(sweep_id, rendered) == (gr.skip(),) * 6  # nothing new: nothing redrawn
    assert tab.cancel(sweep_id, TOKEN).startswith("Cancel failed: sweep")  # it has ended


def test_a_blank_metric_leaves_the_choice_to_the_server() -> None:
    """A data task selects on its validation split by default; the form must not say `loss`."""
    space = {"adam": {"lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True}}}
    spec = sweep_form.sweep_spec(
        "cifar10", space, trials=2, seeds=0, steps=None, parallel=None,
        objective={"kind": "final", "metric": "", "direction": "auto"},
        pruning=None, sampler="random", seed=0,
    )  # fmt: skip
    assert spec["objective"] == {"kind": "final"}
