"""The Gradio Blocks of the playground: setup on the left, live figures on the right.

`build_ui(api_url)` talks to the backend only through `ApiClient(api_url)`, so the same UI
works against this process's API or a remote one. It holds no token of its own: when the API
needs one (`GET /api/health` says `auth`), the page asks for it, keeps it in the browser tab's
sessionStorage, and Run and Cancel send that user's token with their one request, so whoever
reaches /ui can only do what the API lets them. The task's options and each optimizer's
hyperparameters are forms rendered (`gr.render`) from the catalogue schemas; a `form seed`
state (setup + generation) says what they start with (changing the optimizers carries the
typed values into a new seed), and Run reads them back. Live figures
come from a shared `live.Follower` per comparison (an SSE reader thread) and are redrawn by a
1 s timer only when new events arrived; every figure keeps a fixed `uirevision`, so zoom
survives. Right after Run a tick waits for the first loss value instead of the timer, and
while a running comparison's points are not drawn yet a tick sends the loss figure alone
(the browser draws all four in one go, seconds on a loaded machine): first points first.
Whether a task can run here (its data present) comes from the catalogue's `ready`, asked
afresh when a task is picked and on Run; the UI never imports `server.tasks`.
"""

from __future__ import annotations

import itertools
import json
import os
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr

from playground import benchmarks_tab, figures, forms, live, sweeps_tab, views
from playground.client import ApiClient, ApiError
from playground.presets import (
    PRESETS,
    comparison_spec,
    decode_setup,
    encode_setup,
    setup_of_spec,
)
from playground.refusals import cancel_as_user, refusal, token_refusal
from playground.widgets import section_inputs

DEFAULT_PRESET = "Rosenbrock: PSGD vs Adam vs L-BFGS"
EMPTY = {
    "loss": "Run a preset to see PSGD learn the curvature",
    "trajectory": "Paths over the landscape appear here<br>(PCA of the path on big tasks)",
    "spectrum": "Eigenvalues of P over time,<br>beside the exact |H|⁻¹ on small problems",
    "metrics": "Accuracy / solved / distance to the minimum<br>appear here",
}
HISTORY_COLUMNS = ["id", "created", "task", "optimizers", "seeds", "status"]
SHARE_JS = "(q) => q ? window.location.origin + window.location.pathname + q : ''"
PLOTS = {"loss-plot": "loss", "traj-plot": "trajectories", "spec-plot": "spectrum",
         "metrics-plot": "metrics"}  # fmt: skip
TOKEN_KEY = "psgd-playground-token"
# The token lives in this tab's sessionStorage: it survives a reload, not the tab.
TOKEN_LOAD_JS = f"() => sessionStorage.getItem('{TOKEN_KEY}') || ''"
TOKEN_SAVE_JS = f"""(token) => {{
    if (token) sessionStorage.setItem('{TOKEN_KEY}', token);
    else sessionStorage.removeItem('{TOKEN_KEY}');
}}"""
# Plotly.js renders each figure to PNG in the browser: offline, no kaleido on the server.
PNG_JS = f"""async (name) => {{
    for (const [id, what] of Object.entries({json.dumps(PLOTS)})) {{
        const plot = document.querySelector('#' + id + ' .js-plotly-plot');
        if (plot && window.Plotly) {{
            await window.Plotly.downloadImage(
                plot, {{format: 'png', scale: 2, filename: what + '-' + name}});
        }}
    }}
}}"""


#: the `rendered` state of a tick that drew only the loss figure: [*key, LOSS_ONLY, points]
LOSS_ONLY = "loss only"
#: seconds the tick after Run waits for the first loss value before drawing without it
FIRST_POINTS_WAIT = 5.0


def points_drawn(rendered: Any) -> bool:
    """Whether the figures shown hold a comparison's points: a full draw (`[version,
    finished, statuses]`) or a loss-only draw that had them; -1 means redraw from scratch."""
    if not isinstance(rendered, list):
        return False
    return len(rendered) == 3 or (rendered[3] == LOSS_ONLY and bool(rendered[4]))


def _empty_figures() -> list[Any]:
    return [figures.empty_figure(text, title=name.title()) for name, text in EMPTY.items()]


class Playground:
    """The callbacks, around one API client and its cached catalogues and contour maps."""

    def __init__(self, api_url: str) -> None:
        self.client = ApiClient(api_url)  # reads only; actions use `as_user`
        self._tasks: dict[str, dict[str, Any]] = {}
        self._optimizers: dict[str, dict[str, Any]] = {}
        self._contours: dict[str, tuple[Any, Any, Any] | None] = {}
        self._generations = itertools.count(1)

    def as_user(self, token: str | None) -> closing[ApiClient]:
        """A client for one action, carrying the token this user typed (none if blank)."""
        return closing(ApiClient(self.client.base_url, (token or "").strip() or None))

    # ------------------------------------------------------------------ catalogues
    def catalogues(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        if not self._tasks:
            self._optimizers = {o["name"]: o for o in self.client.optimizers()}
            self._tasks = {t["name"]: t for t in self.client.tasks()}
        return self._tasks, self._optimizers

    def not_ready(self, task: str) -> str | None:
        """Why `task` cannot run with its default options on the server now, else None.
        Asked afresh each time (the data may have been fetched since); the cached entry is
        refreshed too, so the task's form says it as well."""
        try:
            fresh = {t["name"]: t for t in self.client.tasks()}
        except ApiError:
            return None  # the server will say it on Run
        if self._tasks:
            self._tasks.update(fresh)
        entry = fresh.get(task) or {}
        return None if entry.get("ready", True) else entry.get("not_ready_reason") or "not ready"

    def task_note(self, task: str | None) -> str:
        """The note at the top when the chosen task cannot run yet: why, and what to do."""
        reason = self.not_ready(task) if task else None
        return f"⚠ **{task} cannot run on this server yet** — {reason}" if reason else ""

    def contour(self, comparison: dict[str, Any], events: dict[str, list]) -> Any:
        """The landscape under the trajectories, from the API (cached); None unless 2-D."""
        if not views.task_meta(events).get("domain"):
            return None
        task = dict((comparison.get("spec") or {}).get("task") or {})
        jobs = comparison.get("jobs") or []
        # the seed of the runs drawn on it (the trajectories show each optimizer's first job)
        name, seed = task.pop("name", ""), jobs[0]["seed"] if jobs else 0
        key = json.dumps([name, task, seed], sort_keys=True)
        if key not in self._contours:
            if len(self._contours) >= 32:  # a few maps per session are plenty; keep memory flat
                self._contours.pop(next(iter(self._contours)))
            try:
                self._contours[key] = views.contour_grid(self.client.contour(name, task, seed))
            except ApiError:
                self._contours[key] = None  # the map is only a background
        return self._contours[key]

    # ------------------------------------------------------------------ the form
    def form_seed(self, setup: dict[str, Any]) -> dict[str, Any]:
        """What the schema forms start with; each seed is a new generation of them."""
        return {
            "generation": next(self._generations),
            "task": dict(setup.get("task") or {"name": "rosenbrock"}),
            "hyperparameters": dict(setup.get("hyperparameters") or {}),
        }

    def sections(self, seed: dict[str, Any], chosen: list[str]) -> list[forms.Section]:
        tasks, optimizers = self.catalogues()
        return forms.sections(tasks, optimizers, seed["task"], chosen, seed["hyperparameters"])

    def form_values(self, setup: dict[str, Any]) -> list[Any]:
        tasks, optimizers = self.catalogues()
        return [
            gr.update(choices=list(tasks), value=(setup.get("task") or {}).get("name")),
            gr.update(choices=list(optimizers), value=list(setup.get("optimizers") or [])),
            self.form_seed(setup),
            ", ".join(str(s) for s in setup.get("seeds") or [0]),
            gr.update(value=setup.get("steps"), step=forms.number_step("int", setup.get("steps"))),
            setup.get("epochs"),
            setup.get("device") or "auto",
            gr.update(
                value=setup.get("target"), step=forms.number_step("float", setup.get("target"))
            ),
        ]

    def load_preset(self, name: str) -> list[Any]:
        """The preset's setup in the form, and the note when its task cannot run yet."""
        if name not in PRESETS:
            return [gr.skip()] * 9
        setup = PRESETS[name]
        return [*self.form_values(setup), self.task_note(setup["task"]["name"])]

    def carry(
        self, form: list[forms.Section], seed: dict[str, Any], raws: tuple[Any, ...]
    ) -> dict[str, Any]:
        """A form seed holding what the inputs show now, for a re-render with other
        optimizers (one left out keeps its values in case it comes back)."""
        try:
            options, typed = forms.read_sections(form, raws)
        except forms.FormError:  # an unreadable value: start from the last seed instead
            return self.form_seed(seed)
        hyperparameters = dict(seed["hyperparameters"])
        for section in form[1:]:
            hyperparameters[section.name] = typed.get(section.name, {})
        return self.form_seed(
            {"task": {**options, "name": form[0].name}, "hyperparameters": hyperparameters}
        )

    def on_task(self, name: str, seed: dict[str, Any] | None) -> tuple[Any, Any]:
        """A new task: its options and its optimizer presets, nothing carried over, and the
        note when it cannot run yet.

        The dropdown can report the same pick twice (select, then blur); re-rendering for the
        task already shown would wipe what was typed into its form meanwhile.
        """
        if seed and (seed.get("task") or {}).get("name") == name:
            return gr.skip(), gr.skip()
        return self.form_seed({"task": {"name": name}}), self.task_note(name)

    @staticmethod
    def read_setup(
        form: list[forms.Section],
        seeds: str,
        steps: float | None,
        epochs: float | None,
        device: str,
        target: float | None,
        raws: tuple[Any, ...],
    ) -> dict[str, Any]:
        """The setup the inputs describe; FormError naming the field when one is invalid."""
        options, hyperparameters = forms.read_sections(form, raws)
        try:
            seed_list = [int(s) for s in str(seeds).replace(",", " ").split()] or [0]
        except ValueError as e:
            raise forms.FormError(f"seeds: whole numbers separated by commas ({e})") from e
        optimizers = [section.name for section in form if section.scope == "optimizer"]
        if not optimizers:
            raise forms.FormError("optimizers: pick at least one")
        return {
            "task": {**options, "name": form[0].name},
            "optimizers": optimizers,
            "hyperparameters": hyperparameters,
            "seeds": seed_list,
            "steps": int(steps) if steps and not epochs else None,
            "epochs": int(epochs) if epochs else None,
            "device": device or "auto",
            "target": float(target) if target else None,
        }

    # ------------------------------------------------------------------ actions
    def run(
        self, form: list[forms.Section], generation: int, seed: Any, token: str, *values: Any
    ) -> tuple[Any, ...]:
        """Submit the comparison with the user's token. A refusal is said where the user
        looks, the status line beside Run and a toast, and also beside the form."""
        skip = (gr.skip(),) * 2
        if not seed or seed["generation"] != generation:
            return (*skip, refusal("The form was still loading: press **Run** again."), "")
        try:
            setup = self.read_setup(form, *values[:5], raws=values[5:])
        except forms.FormError as e:
            return (*skip, *self.refused(f"**Not run** — {e}"))
        task = setup["task"]
        # `ready` speaks for the task's default options; with others, the server decides
        if len(task) == 1 and (reason := self.not_ready(task["name"])):
            return (*skip, *self.refused(f"**Not run** — {task['name']}: {reason}"))
        try:
            with self.as_user(token) as client:
                comparison = client.submit_comparison(comparison_spec(setup))
        except ApiError as e:
            if e.status == 401:
                return (*skip, token_refusal(token, "run"), "")
            detail = forms.explain(e.detail, task["name"], setup["optimizers"])
            return (*skip, *self.refused(f"**The server refused the setup** — {detail}"))
        live.follow(self.client, comparison["id"])
        jobs = len(comparison.get("job_ids") or [])
        status = f"Submitted comparison `{comparison['id']}` ({jobs} jobs)"
        return comparison["id"], -1, status, ""

    @staticmethod
    def refused(message: str) -> tuple[str, str]:
        """(status line, note beside the form) of a refused Run, with a toast."""
        return refusal(message), message

    def cancel(self, comparison_id: str | None, token: str) -> str:
        if not comparison_id:
            return "Nothing to cancel"
        return cancel_as_user(
            self.as_user(token),
            token,
            lambda api: api.cancel_comparison(comparison_id),
            f"Cancelled comparison `{comparison_id}`",
        )

    def share(self, form: list[forms.Section], *values: Any) -> tuple[str, str]:
        try:
            setup = self.read_setup(form, *values[:5], raws=values[5:])
        except forms.FormError as e:
            return "", f"**No share link** — {e}"
        shared = {k: v for k, v in setup.items() if v is not None}
        return f"?setup={encode_setup(shared)}", ""

    def tick(
        self, comparison_id: str | None, rendered: Any, x_axis: str = "step"
    ) -> tuple[Any, ...]:
        """Redraw when new events arrived; otherwise leave every output as it is. Once the
        comparison has ended, the history is read again (its row no longer says running)."""
        skip = (gr.skip(),) * 10
        if not comparison_id:
            return skip
        if isinstance(rendered, list) and rendered[1]:
            return skip  # finished and drawn: nothing will change
        follower = live.follow(self.client, comparison_id)
        version, events = follower.snapshot()
        try:
            comparison = self.client.comparison(comparison_id)
        except ApiError as e:
            return (*skip[:6], f"Comparison `{comparison_id}`: {e.detail}", *skip[7:])
        statuses = [job["status"] for job in comparison.get("jobs") or []]
        finished = follower.done and comparison["status"] != "running"
        key = [version, finished, statuses]
        if rendered == key:
            return skip
        if not finished and not points_drawn(rendered):
            return self.loss_first(comparison, events, key, rendered, x_axis)
        contour = self.contour(comparison, events)
        figs = views.build_figures(comparison, events, contour, x_axis=x_axis)
        headers, rows = views.results_table(comparison)
        history = self.history(keep_pick=True) if finished else (gr.skip(), gr.skip())
        return (*figs.values(), {"headers": headers, "data": rows}, key,
                self.comparison_status(comparison, events), *history,
                self.statistics(comparison))  # fmt: skip

    def loss_first(
        self,
        comparison: dict[str, Any],
        events: dict[str, list],
        key: list[Any],
        rendered: Any,
        x_axis: str,
    ) -> tuple[Any, ...]:
        """The loss figure, results and status line, while a running comparison's first
        points are not drawn yet: the browser draws all changed figures in one go (a second
        or more on a loaded machine), so the cheap loss figure goes first and the others
        follow on the next tick. Before any point the others are cleared (no figure: no
        plotly drawing at all), so they never show another comparison's figures."""
        skip = gr.skip()
        points = views.has_points(events)
        drawn = [*key, LOSS_ONLY, points]
        if rendered == drawn:
            return (skip,) * 10
        loss = views.loss_view(comparison, events, x_axis)
        others = (skip,) * 3 if points else (None,) * 3
        headers, rows = views.results_table(comparison)
        return (loss, *others, {"headers": headers, "data": rows}, drawn,
                self.comparison_status(comparison, events), skip, skip,
                skip if points else "")  # fmt: skip

    def first_points(
        self, comparison_id: str | None, rendered: Any, x_axis: str = "step"
    ) -> tuple[Any, ...]:
        """Right after Run: the tick as soon as the first loss value has arrived (at most
        `FIRST_POINTS_WAIT` seconds from now), instead of at the redraw timer's next beat."""
        if comparison_id:
            live.follow(self.client, comparison_id).wait_for_metrics(FIRST_POINTS_WAIT)
        return self.tick(comparison_id, rendered, x_axis)

    def statistics(self, comparison: dict[str, Any]) -> str:
        """The statistics over seeds below the results (none for a single seed, or from a
        server without the summary route)."""
        if len((comparison.get("spec") or {}).get("seeds") or [0]) < 2:
            return ""
        try:
            return views.statistics_markdown(self.client.comparison_summary(comparison["id"]))
        except ApiError:
            return ""

    @staticmethod
    def comparison_status(comparison: dict[str, Any], events: dict[str, list]) -> str:
        """The status line of a comparison: its state, its jobs' states, and every failed or
        diverged job's message."""
        statuses = [job["status"] for job in comparison.get("jobs") or []]
        counts = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
        task = comparison["spec"]["task"]["name"]
        line = (
            f"Comparison `{comparison['id']}` on **{task}** — {comparison['status']} ({counts}); "
            f"{sum(map(len, events.values()))} events"
        )
        return "\n".join([line, *(f"- ⚠ {problem}" for problem in views.problems(comparison))])

    def opened(self, comparison_id: str) -> dict[str, Any]:
        """The setup of a comparison, its live view started: what History → Open, a
        `?comparison=` link and a reload mid-run all show (ApiError when it is not there)."""
        comparison = self.client.comparison(comparison_id)
        live.follow(self.client, comparison_id)
        return setup_of_spec(comparison["spec"])

    def open_comparison(self, comparison_id: str | None) -> tuple[Any, ...]:
        if not comparison_id:
            raise gr.Error("History: pick a comparison to open")
        try:
            setup = self.opened(comparison_id)
        except ApiError as e:
            raise gr.Error(f"History: {e.detail}") from e
        return (
            *self.form_values(setup),
            comparison_id,
            -1,
            f"Opened comparison `{comparison_id}`",
            self.task_note(setup["task"].get("name")),
        )

    def history(self, keep_pick: bool = False) -> tuple[Any, Any]:
        """The history table and the Open dropdown's choices (picking the newest unless
        `keep_pick`: a refresh while the user may have picked one)."""
        try:
            items = self.client.comparisons(limit=50)["items"]
        except ApiError as e:
            return [[f"error: {e.detail}", "", "", "", "", ""]], gr.update()
        rows, choices = [], []
        for c in items:
            task = c.get("task") or "?"  # list items are summaries: names, not specs
            opts = ", ".join(name or "?" for name in c.get("optimizers") or [])
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.get("created", 0)))
            rows.append([c["id"], when, task, opts, len(c.get("seeds") or []), c["status"]])
            choices.append((f"{c['id']} · {task} · {opts} · {c['status']}", c["id"]))
        if keep_pick:
            return rows, gr.update(choices=choices)
        return rows, gr.update(choices=choices, value=choices[0][1] if choices else None)

    @staticmethod
    def export_name(comparison_id: str | None) -> str:
        """The comparison every export needs; without one the user is told, not handed blanks."""
        if not comparison_id:
            raise gr.Error("Export: run or open a comparison first")
        return comparison_id

    def export_metrics(self, comparison_id: str | None, fmt: str) -> str:
        comparison_id = self.export_name(comparison_id)
        path = Path(tempfile.mkdtemp(prefix="psgd-export-")) / f"comparison-{comparison_id}.{fmt}"
        path.write_text(self.client.metrics(comparison_id, fmt))
        return str(path)

    def export_html(self, comparison_id: str | None, x_axis: str = "step") -> str:
        comparison_id = self.export_name(comparison_id)
        comparison = self.client.comparison(comparison_id)
        _, events = live.follow(self.client, comparison_id).snapshot()
        contour = self.contour(comparison, events)
        figs = views.build_figures(comparison, events, contour, x_axis=x_axis)
        path = Path(tempfile.mkdtemp(prefix="psgd-export-")) / f"figures-{comparison_id}.html"
        path.write_text(views.figures_html(figs))
        return str(path)

    def on_load(self, request: gr.Request) -> tuple[Any, ...]:
        """The form and live view a page opens with: a `?comparison=` link's comparison (as
        History → Open shows it), else a comparison still running (reload, second tab),
        else the default preset; a `?setup=` share link's setup fills the form in any case."""
        params = dict(request.query_params) if request else {}
        note, setup, comparison_id = "", PRESETS[DEFAULT_PRESET], None
        shared = params.get("setup")
        if shared:
            try:
                setup, note = decode_setup(shared), "Restored the shared setup"
            except ValueError as e:
                note, shared = f"Share link: {e}", None
        wanted, verb = params.get("comparison"), "Opened comparison"
        if not wanted:
            running = [
                c for c in self.client.comparisons(limit=20)["items"] if c["status"] == "running"
            ]
            wanted = running[0]["id"] if running else None
            verb = "Resumed the live view of comparison"
        if wanted:
            try:
                opened = self.opened(wanted)
            except ApiError as e:
                note = note or f"Comparison `{wanted}`: {e.detail}"
            else:
                comparison_id, setup = wanted, setup if shared else opened
                note = note or f"{verb} `{wanted}`"
        asks_token = gr.update(visible=bool(self.client.health().get("auth")))
        return (
            *self.form_values(setup), comparison_id, -1, note or "Ready", *self.history(),
            asks_token, self.task_note((setup.get("task") or {}).get("name")),
        )  # fmt: skip


def build_ui(api_url: str) -> gr.Blocks:
    pg = Playground(api_url)
    editable = {"interactive": True}  # inputs of listeners that the form's render attaches
    with gr.Blocks(title="PSGD Playground", analytics_enabled=False) as demo:
        comparison_id = gr.State(None)
        rendered = gr.State(-1)
        form_seed = gr.State(None)
        with gr.Row():
            gr.Markdown("## PSGD Playground")
            preset = gr.Dropdown(
                list(PRESETS), value=None, label="Preset", scale=3, elem_id="preset"
            )
            token = gr.Textbox(
                "",
                label="Server token",
                placeholder="needed to run and cancel",
                type="password",
                visible=False,  # shown on load when the API needs a token
                scale=1,
                elem_id="token",
            )
            run_btn = gr.Button("Run", variant="primary", scale=1, elem_id="run")
            cancel_btn = gr.Button("Cancel", variant="stop", scale=1, elem_id="cancel")
        status = gr.Markdown("Loading…", elem_id="status")
        task_note = gr.Markdown("", elem_id="task-note")  # a task that cannot run yet: why
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Compare", elem_id="compare-tab") as compare_tab:
                with gr.Row():
                    with gr.Column(scale=1, min_width=300):
                        task = gr.Dropdown(label="Task", allow_custom_value=True, elem_id="task")
                        optimizers = gr.Dropdown(
                            label="Optimizers (each gets a form below)", multiselect=True,
                            allow_custom_value=True, elem_id="optimizers",
                        )  # fmt: skip
                        schema_forms = gr.Column(elem_id="schema-forms")
                        form_error = gr.Markdown("", elem_id="form-error")
                        seeds = gr.Textbox(
                            label="Seeds (comma-separated)", elem_id="seeds", **editable
                        )
                        with gr.Row():
                            steps = gr.Number(
                                label="Steps", precision=0, elem_id="steps", **editable
                            )
                            epochs = gr.Number(
                                label="Epochs (overrides steps)", precision=0, **editable
                            )
                        with gr.Row():
                            device = gr.Radio(
                                ["auto", "cpu", "cuda"], value="auto", label="Device", **editable
                            )
                            target = gr.Number(label="Target loss (optional)", **editable)
                        share_btn = gr.Button("Share link", elem_id="share")
                        share_box = gr.Textbox(
                            label="Share URL", elem_id="share-url", buttons=["copy"]
                        )
                        with gr.Row():
                            small = {"size": "sm", "min_width": 0}
                            csv_btn = gr.Button("Export CSV", elem_id="export-csv", **small)
                            json_btn = gr.Button("Export JSON", elem_id="export-json", **small)
                            html_btn = gr.Button("Figures HTML", elem_id="export-html", **small)
                            png_btn = gr.Button("Figures PNG", elem_id="export-png", **small)
                        export_file = gr.File(label="Download", elem_id="export-file")
                        png_name = gr.Textbox(visible=False)
                    with gr.Column(scale=3):
                        initial = _empty_figures()
                        x_axis = gr.Radio(
                            [(title, key) for key, (title, _) in figures.X_AXES.items()],
                            value="step",
                            label="Loss against (evaluations and seconds compare optimizers whose "
                            "steps cost differently, e.g. L-BFGS)",
                            elem_id="x-axis",
                        )
                        with gr.Row():
                            loss_plot = gr.Plot(initial[0], label="Loss", elem_id="loss-plot")
                            traj_plot = gr.Plot(
                                initial[1], label="Trajectories", elem_id="traj-plot"
                            )
                        with gr.Row():
                            spec_plot = gr.Plot(
                                initial[2], label="Preconditioner", elem_id="spec-plot"
                            )
                            metr_plot = gr.Plot(
                                initial[3], label="Task metrics", elem_id="metrics-plot"
                            )
                        results = gr.Dataframe(
                            headers=views.RESULT_COLUMNS,
                            label="Results",
                            interactive=False,
                            elem_id="results",
                        )
                        statistics = gr.Markdown("", elem_id="statistics")
                with gr.Accordion("History", open=True):
                    with gr.Row():
                        pick = gr.Dropdown(
                            label="Reopen a comparison", scale=4, elem_id="history-pick"
                        )
                        open_btn = gr.Button("Open", scale=0, elem_id="history-open")
                        refresh_btn = gr.Button("Refresh", scale=0, elem_id="history-refresh")
                    history = gr.Dataframe(
                        headers=HISTORY_COLUMNS, interactive=False, elem_id="history"
                    )
            with gr.Tab("Sweeps", elem_id="sweeps-tab") as sweeps:
                sweeps_tab.build(pg, token, demo)
            with gr.Tab("Benchmarks", elem_id="benchmarks-tab") as benchmarks:
                benchmarks_tab.build(pg, token, benchmarks)
        # the preset, Run, Cancel and status line above the tabs are the comparison's
        sweeps_tab.header_follows_tabs(
            compare_tab, [sweeps, benchmarks], [preset, run_btn, cancel_btn, status]
        )

        form = [task, optimizers, form_seed, seeds, steps, epochs, device, target]
        settings = [seeds, steps, epochs, device, target]
        plots = [loss_plot, traj_plot, spec_plot, metr_plot]
        timer = gr.Timer(1.0)
        tick_outputs = [*plots, results, rendered, status, history, pick, statistics]

        with schema_forms:

            @gr.render(inputs=[optimizers, form_seed], triggers=[form_seed.change])
            def render_forms(chosen: list[str] | None, seed: dict[str, Any] | None) -> None:
                """The task's and each optimizer's form; Run and Share read them."""
                if not seed:
                    gr.Markdown("Loading the forms…")
                    return
                generation = seed["generation"]
                sections = pg.sections(seed, list(chosen or []))
                inputs = []
                for index, section in enumerate(sections):
                    inputs += section_inputs(section, generation, open=index == 0)

                def run(seed: Any, user_token: str, *values: Any) -> tuple[Any, ...]:
                    return pg.run(sections, generation, seed, user_token, *values)

                def share(*values: Any) -> tuple[str, str]:
                    return pg.share(sections, *values)

                def carry(*raws: Any) -> dict[str, Any]:
                    return pg.carry(sections, seed, raws)

                submits = [box.submit for box in [*settings, *inputs] if hasattr(box, "submit")]
                gr.on(
                    [run_btn.click, *submits],
                    run,
                    [form_seed, token, *settings, *inputs],
                    [comparison_id, rendered, status, form_error],
                ).then(
                    pg.first_points, [comparison_id, rendered, x_axis], tick_outputs,
                    show_progress="hidden", concurrency_limit=None,
                ).then(pg.history, None, [history, pick])  # fmt: skip
                share_btn.click(share, [*settings, *inputs], [share_box, form_error]).then(
                    None, share_box, share_box, js=SHARE_JS
                )
                optimizers.input(carry, inputs, form_seed)  # re-render, keeping typed values

        demo.load(
            pg.on_load,
            None,
            [*form, comparison_id, rendered, status, history, pick, token, task_note],
        )
        demo.load(None, None, token, js=TOKEN_LOAD_JS)
        token.change(None, token, None, js=TOKEN_SAVE_JS)
        # select, not input: the dropdown reports input twice (select, then blur), and two
        # quick re-renders of the forms left Run bound to a listener the server had replaced
        preset.select(pg.load_preset, preset, [*form, task_note])
        task.input(pg.on_task, [task, form_seed], [form_seed, task_note])
        cancel_btn.click(pg.cancel, [comparison_id, token], status)
        csv_btn.click(lambda cid: pg.export_metrics(cid, "csv"), comparison_id, export_file)
        json_btn.click(lambda cid: pg.export_metrics(cid, "json"), comparison_id, export_file)
        html_btn.click(pg.export_html, [comparison_id, x_axis], export_file)
        png_btn.click(pg.export_name, comparison_id, png_name).success(
            None, png_name, None, js=PNG_JS
        )
        refresh_btn.click(pg.history, None, [history, pick])
        open_btn.click(
            pg.open_comparison, pick, [*form, comparison_id, rendered, status, task_note]
        ).then(pg.history, None, [history, pick])  # fmt: skip
        x_axis.change(lambda: -1, None, rendered)  # the next tick redraws on the new axis
        timer.tick(
            pg.tick,
            [comparison_id, rendered, x_axis],
            tick_outputs,
            show_progress="hidden",
            concurrency_limit=None,
        )
    return demo
