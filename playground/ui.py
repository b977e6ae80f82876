"""The Gradio Blocks of the playground: setup on the left, live figures on the right.

`build_ui(api_url)` talks to the backend only through `ApiClient(api_url)`, so the same UI
works against this process's API or a remote one. Live figures come from a shared
`live.Follower` per comparison (an SSE reader thread) and are redrawn by a 1 s timer only
when new events arrived; every figure keeps a fixed `uirevision`, so zoom survives.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from playground import figures, live, views
from playground.client import ApiClient, ApiError
from playground.presets import PRESETS, comparison_spec, decode_setup, encode_setup

DEFAULT_PRESET = "Rosenbrock: PSGD vs Adam vs L-BFGS"
EMPTY = {
    "loss": "Run a preset to see PSGD learn the curvature",
    "trajectory": "Paths over the landscape appear here (PCA of the path on big tasks)",
    "spectrum": "Eigenvalues of P over time, beside the exact |H|⁻¹ on small problems",
    "metrics": "Accuracy / solved / distance to the minimum appear here",
}
HISTORY_COLUMNS = ["id", "created", "task", "optimizers", "seeds", "status"]
SHARE_JS = "(q) => q ? window.location.origin + window.location.pathname + q : ''"


def _empty_figures() -> list[Any]:
    return [figures.empty_figure(text, title=name.title()) for name, text in EMPTY.items()]


def _schema_defaults(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        key: prop["default"]
        for key, prop in (schema.get("properties") or {}).items()
        if key != "name" and "default" in prop
    }


class Playground:
    """The callbacks, around one API client and its cached catalogues."""

    def __init__(self, api_url: str, token: str | None = None) -> None:
        self.client = ApiClient(api_url, token)
        self._tasks: dict[str, dict[str, Any]] = {}
        self._optimizers: list[str] = []

    # ------------------------------------------------------------------ catalogues
    def catalogues(self) -> tuple[dict[str, dict[str, Any]], list[str]]:
        if not self._tasks:
            self._tasks = {t["name"]: t for t in self.client.tasks()}
            self._optimizers = [o["name"] for o in self.client.optimizers()]
        return self._tasks, self._optimizers

    def task_defaults(self, name: str) -> str:
        task = self.catalogues()[0].get(name)
        return json.dumps(_schema_defaults(task["schema"]) if task else {}, indent=1)

    # ------------------------------------------------------------------ the form
    @staticmethod
    def read_setup(
        task: str,
        task_opts: str,
        optimizers: list[str],
        hyper: str,
        seeds: str,
        steps: float | None,
        epochs: float | None,
        device: str,
        target: float | None,
    ) -> dict[str, Any]:
        try:
            options = json.loads(task_opts or "{}")
        except json.JSONDecodeError as e:
            raise gr.Error(f"Task options: not JSON ({e.msg}, line {e.lineno})") from e
        try:
            hyperparameters = json.loads(hyper or "{}")
        except json.JSONDecodeError as e:
            raise gr.Error(f"Hyperparameters: not JSON ({e.msg}, line {e.lineno})") from e
        if not isinstance(options, dict) or not isinstance(hyperparameters, dict):
            raise gr.Error("Task options and hyperparameters must be JSON objects {...}")
        try:
            seed_list = [int(s) for s in str(seeds).replace(",", " ").split()] or [0]
        except ValueError as e:
            raise gr.Error(f"Seeds: whole numbers separated by commas ({e})") from e
        if not optimizers:
            raise gr.Error("Optimizers: pick at least one")
        return {
            "task": {**options, "name": task},
            "optimizers": list(optimizers),
            "hyperparameters": {k: v for k, v in hyperparameters.items() if k in optimizers},
            "seeds": seed_list,
            "steps": int(steps) if steps and not epochs else None,
            "epochs": int(epochs) if epochs else None,
            "device": device or "auto",
            "target": float(target) if target else None,
        }

    def form_values(self, setup: dict[str, Any]) -> list[Any]:
        tasks, optimizers = self.catalogues()
        task = dict(setup.get("task") or {"name": "rosenbrock"})
        name = task.pop("name", "rosenbrock")
        options = {**json.loads(self.task_defaults(name)), **task}
        chosen = list(setup.get("optimizers") or [])
        hyper = {n: (setup.get("hyperparameters") or {}).get(n, {}) for n in chosen}
        return [
            gr.update(choices=list(tasks), value=name),
            json.dumps(options, indent=1),
            gr.update(choices=optimizers, value=chosen),
            json.dumps(hyper, indent=1),
            ", ".join(str(s) for s in setup.get("seeds") or [0]),
            setup.get("steps"),
            setup.get("epochs"),
            setup.get("device") or "auto",
            setup.get("target"),
        ]

    def load_preset(self, name: str) -> list[Any]:
        if name not in PRESETS:
            return [gr.skip()] * 9
        return self.form_values(PRESETS[name])

    def on_task(self, name: str) -> str:
        return self.task_defaults(name)

    @staticmethod
    def on_optimizers(chosen: list[str], hyper: str) -> str:
        try:
            current = json.loads(hyper or "{}")
        except json.JSONDecodeError:
            return gr.skip()
        if not isinstance(current, dict):
            current = {}
        return json.dumps({n: current.get(n, {}) for n in chosen or []}, indent=1)

    # ------------------------------------------------------------------ actions
    def run(self, *form: Any) -> tuple[Any, ...]:
        spec = comparison_spec(self.read_setup(*form))
        try:
            comparison = self.client.submit_comparison(spec)
        except ApiError as e:
            raise gr.Error(f"The server refused the setup — {e.detail}") from e
        live.follow(self.client, comparison["id"])
        jobs = len(comparison.get("job_ids") or [])
        return comparison["id"], -1, f"Submitted comparison `{comparison['id']}` ({jobs} jobs)"

    def cancel(self, comparison_id: str | None) -> str:
        if not comparison_id:
            return "Nothing to cancel"
        try:
            self.client.cancel_comparison(comparison_id)
        except ApiError as e:
            return f"Cancel failed: {e.detail}"
        return f"Cancelled comparison `{comparison_id}`"

    def share(self, *form: Any) -> str:
        setup = {k: v for k, v in self.read_setup(*form).items() if v is not None}
        return f"?setup={encode_setup(setup)}"

    def tick(self, comparison_id: str | None, rendered: Any) -> tuple[Any, ...]:
        """Redraw when new events arrived; otherwise leave every output as it is."""
        skip = (gr.skip(),) * 7
        if not comparison_id:
            return skip
        if isinstance(rendered, list) and rendered[1]:
            return skip  # finished and drawn: nothing will change
        follower = live.follow(self.client, comparison_id)
        version, events = follower.snapshot()
        try:
            comparison = self.client.comparison(comparison_id)
        except ApiError as e:
            return (*skip[:6], f"Comparison `{comparison_id}`: {e.detail}")
        statuses = [job["status"] for job in comparison.get("jobs") or []]
        finished = follower.done and comparison["status"] != "running"
        key = [version, finished, statuses]
        if rendered == key:
            return skip
        figs = views.build_figures(comparison, events)
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
        task = comparison["spec"]["task"]["name"]
        status = (
            f"Comparison `{comparison_id}` on **{task}** — {comparison['status']} ({counts}); "
            f"{sum(map(len, events.values()))} events"
        )
        rows = views.results_rows(comparison)
        return (*figs.values(), rows, key, status)

    def open_comparison(self, comparison_id: str | None) -> tuple[Any, ...]:
        if not comparison_id:
            raise gr.Error("History: pick a comparison to open")
        try:
            comparison = self.client.comparison(comparison_id)
        except ApiError as e:
            raise gr.Error(f"History: {e.detail}") from e
        spec = comparison["spec"]
        setup = {
            "task": spec["task"],
            "optimizers": [o["name"] for o in spec["optimizers"]],
            "hyperparameters": {
                o["name"]: {k: v for k, v in o.items() if k != "name"} for o in spec["optimizers"]
            },
            "seeds": spec.get("seeds"),
            "steps": spec.get("steps"),
            "epochs": spec.get("epochs"),
            "device": spec.get("device"),
            "target": spec.get("target"),
        }
        live.follow(self.client, comparison_id)
        return (
            *self.form_values(setup),
            comparison_id,
            -1,
            f"Opened comparison `{comparison_id}`",
        )

    def history(self) -> tuple[Any, Any]:
        try:
            items = self.client.comparisons(limit=50)["items"]
        except ApiError as e:
            return [[f"error: {e.detail}", "", "", "", "", ""]], gr.update()
        rows, choices = [], []
        for c in items:
            spec = c.get("spec") or {}
            task = spec.get("task", {}).get("name", "?")
            opts = ", ".join(o.get("name", "?") for o in spec.get("optimizers") or [])
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.get("created", 0)))
            rows.append([c["id"], when, task, opts, len(spec.get("seeds") or []), c["status"]])
            choices.append((f"{c['id']} · {task} · {opts} · {c['status']}", c["id"]))
        return rows, gr.update(choices=choices, value=choices[0][1] if choices else None)

    def export_csv(self, comparison_id: str | None) -> str:
        if not comparison_id:
            raise gr.Error("Export: run or open a comparison first")
        path = Path(tempfile.mkdtemp(prefix="psgd-export-")) / f"comparison-{comparison_id}.csv"
        path.write_text(self.client.metrics_csv(comparison_id))
        return str(path)

    def export_html(self, comparison_id: str | None) -> str:
        if not comparison_id:
            raise gr.Error("Export: run or open a comparison first")
        comparison = self.client.comparison(comparison_id)
        _, events = live.follow(self.client, comparison_id).snapshot()
        html = views.figures_html(views.build_figures(comparison, events))
        path = Path(tempfile.mkdtemp(prefix="psgd-export-")) / f"figures-{comparison_id}.html"
        path.write_text(html)
        return str(path)

    def on_load(self, request: gr.Request) -> tuple[Any, ...]:
        params = dict(request.query_params) if request else {}
        note, setup, comparison_id = "", PRESETS[DEFAULT_PRESET], None
        if params.get("setup"):
            try:
                setup, note = decode_setup(params["setup"]), "Restored the shared setup"
            except ValueError as e:
                note = f"Share link: {e}"
        if params.get("comparison"):
            comparison_id = params["comparison"]
        else:  # resume the live view of a comparison still running (reload, second tab)
            running = [
                c for c in self.client.comparisons(limit=20)["items"] if c["status"] == "running"
            ]
            if running:
                comparison_id = running[0]["id"]
                note = note or f"Resumed the live view of comparison `{comparison_id}`"
        if comparison_id:
            live.follow(self.client, comparison_id)
        return (*self.form_values(setup), comparison_id, -1, note or "Ready", *self.history())


def build_ui(api_url: str, token: str | None = None) -> gr.Blocks:
    pg = Playground(api_url, token)
    with gr.Blocks(title="PSGD Playground", analytics_enabled=False) as demo:
        comparison_id = gr.State(None)
        rendered = gr.State(-1)
        with gr.Row():
            gr.Markdown("## PSGD Playground")
            preset = gr.Dropdown(
                list(PRESETS), value=None, label="Preset", scale=3, elem_id="preset"
            )
            run_btn = gr.Button("Run", variant="primary", scale=1, elem_id="run")
            cancel_btn = gr.Button("Cancel", variant="stop", scale=1, elem_id="cancel")
        status = gr.Markdown("Loading…", elem_id="status")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                task = gr.Dropdown(label="Task", allow_custom_value=True, elem_id="task")
                task_opts = gr.Code(
                    label="Task options (JSON, from the task's schema)",
                    language="json",
                    elem_id="task-options",
                )
                optimizers = gr.Dropdown(
                    label="Optimizers", multiselect=True, allow_custom_value=True,
                    elem_id="optimizers",
                )  # fmt: skip
                hyper = gr.Code(
                    label="Hyperparameters per optimizer (JSON; unset = the task's preset)",
                    language="json",
                    elem_id="hyperparameters",
                )
                seeds = gr.Textbox(label="Seeds (comma-separated)", elem_id="seeds")
                with gr.Row():
                    steps = gr.Number(label="Steps", precision=0, elem_id="steps")
                    epochs = gr.Number(label="Epochs (overrides steps)", precision=0)
                with gr.Row():
                    device = gr.Radio(["auto", "cpu", "cuda"], value="auto", label="Device")
                    target = gr.Number(label="Target loss (optional)")
                share_btn = gr.Button("Share link", elem_id="share")
                share_box = gr.Textbox(label="Share URL", elem_id="share-url", buttons=["copy"])
                with gr.Row():
                    csv_btn = gr.Button("Export CSV", elem_id="export-csv")
                    html_btn = gr.Button("Export figures (HTML)", elem_id="export-html")
                export_file = gr.File(label="Download", elem_id="export-file")
            with gr.Column(scale=3):
                initial = _empty_figures()
                with gr.Row():
                    loss_plot = gr.Plot(initial[0], label="Loss", elem_id="loss-plot")
                    traj_plot = gr.Plot(initial[1], label="Trajectories", elem_id="traj-plot")
                with gr.Row():
                    spec_plot = gr.Plot(initial[2], label="Preconditioner", elem_id="spec-plot")
                    metr_plot = gr.Plot(initial[3], label="Task metrics", elem_id="metrics-plot")
                results = gr.Dataframe(
                    headers=views.RESULT_COLUMNS,
                    label="Results",
                    interactive=False,
                    elem_id="results",
                )
        with gr.Accordion("History", open=True):
            with gr.Row():
                pick = gr.Dropdown(label="Reopen a comparison", scale=4, elem_id="history-pick")
                open_btn = gr.Button("Open", scale=0, elem_id="history-open")
                refresh_btn = gr.Button("Refresh", scale=0, elem_id="history-refresh")
            history = gr.Dataframe(headers=HISTORY_COLUMNS, interactive=False, elem_id="history")

        form = [task, task_opts, optimizers, hyper, seeds, steps, epochs, device, target]
        plots = [loss_plot, traj_plot, spec_plot, metr_plot]
        timer = gr.Timer(1.0)

        demo.load(pg.on_load, None, [*form, comparison_id, rendered, status, history, pick])
        preset.input(pg.load_preset, preset, form)
        task.input(pg.on_task, task, task_opts)
        optimizers.input(pg.on_optimizers, [optimizers, hyper], hyper)
        run_event = run_btn.click(pg.run, form, [comparison_id, rendered, status])
        for box in (seeds, steps, epochs, target):
            box.submit(pg.run, form, [comparison_id, rendered, status])
        run_event.then(pg.history, None, [history, pick])
        cancel_btn.click(pg.cancel, comparison_id, status)
        share_btn.click(pg.share, form, share_box).then(None, share_box, share_box, js=SHARE_JS)
        csv_btn.click(pg.export_csv, comparison_id, export_file)
        html_btn.click(pg.export_html, comparison_id, export_file)
        refresh_btn.click(pg.history, None, [history, pick])
        open_btn.click(
            pg.open_comparison, pick, [*form, comparison_id, rendered, status]
        ).then(pg.history, None, [history, pick])  # fmt: skip
        timer.tick(
            pg.tick,
            [comparison_id, rendered],
            [*plots, results, rendered, status],
            show_progress="hidden",
            concurrency_limit=None,
        )
    return demo
