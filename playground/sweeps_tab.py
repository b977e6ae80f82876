"""The Sweeps tab: tune each optimizer with the same trial budget, watch the trials, see the
re-runs' statistics.

It talks to the API through the compare view's `Playground` (its read client, and
`as_user(token)` for Run and Cancel: the same token field and refusals as the comparison's
buttons). A 1 s timer reads `GET /api/sweeps/{id}` and redraws only when a trial, the
phase or the status changed; the re-runs' statistics use the compare view's "Over seeds"
table (`views.statistics_markdown`), with a link that opens the re-run comparison there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import gradio as gr

from playground import sweep_figures, sweep_form, views
from playground.client import ApiClient, ApiError
from playground.forms import FormError, explain
from playground.refusals import cancel_as_user, refusal, token_refusal

if TYPE_CHECKING:  # the compare view builds this tab; importing it here would be a cycle
    from playground.ui import Playground

DEFAULT_TASK = "rosenbrock"
DEFAULT_OPTIMIZERS = ["psgd-kron", "adam"]
NEEDS_TOKEN = "Enter the server token above: this server derives the default ranges only for it."
RUN_FIELDS = ["trials", "seeds", "steps", "parallel", "kind", "metric", "direction", "target",
              "prune", "startup", "warmup", "sampler", "seed"]  # fmt: skip


class SweepsTab:
    """The tab's callbacks; default ranges are cached per (task, optimizer, hyperparameter)."""

    def __init__(self, pg: Playground) -> None:
        self.pg = pg
        self._defaults: dict[tuple[str, str, str], dict[str, Any] | str] = {}

    # ------------------------------------------------------------------ the search space
    def default_range(
        self, client: ApiClient, task: str, optimizer: str, name: str
    ) -> dict[str, Any] | str:
        """The range the server would search for `tune: [name]`, or its reason for none.
        A refused token (401) is raised: it is no answer about the hyperparameter."""
        key = (task, optimizer, name)
        if key not in self._defaults:
            probe = {"task": {"name": task}, "optimizers": [{"name": optimizer, "tune": [name]}],
                     "trials": 1, "seeds": 0}  # fmt: skip
            try:
                resolved = client.resolve_sweep(probe)
            except ApiError as e:
                if e.status == 401:
                    raise
                return e.detail.split(": ", 1)[-1]  # not cached: the server may change its mind
            self._defaults[key] = resolved["optimizers"][0]["space"][name]
        return self._defaults[key]

    def space(
        self, task: str | None, chosen: list[str] | None, shown: Any, token: str = ""
    ) -> tuple[Any, str]:
        """The search-space table for the task and optimizers (edits kept) and the note
        naming hyperparameters without a default range. The server derives the ranges
        (`POST /api/sweeps?dry_run=true`), which needs the user's token where runs do."""
        if not task or not chosen:
            return [], "Pick a task and at least one optimizer."
        _, catalogue = self.pg.catalogues()
        rows, reasons = [], []
        with self.pg.as_user(token) as client:
            for optimizer in chosen:
                schema = (catalogue.get(optimizer) or {}).get("schema") or {}
                kinds = sweep_form.searchable(schema)
                try:
                    defaults = {n: self.default_range(client, task, optimizer, n) for n in kinds}
                except ApiError:
                    return sweep_form.keep_edits(rows, shown), NEEDS_TOKEN
                rows += sweep_form.space_rows(optimizer, kinds, defaults)
                reasons += [
                    f"{optimizer} · {n}: {r}" for n, r in defaults.items() if isinstance(r, str)
                ]
        note = ("Without a default range (give low and high to tune them): " + "; ".join(reasons)
                if reasons else "")  # fmt: skip
        return sweep_form.keep_edits(rows, shown), note

    def choices(self) -> tuple[Any, ...]:
        """What the tab opens with: the pickers with their defaults, and the newest sweep
        still running (a reload or a second tab resumes its live view). The table follows,
        once the page has put the stored token in its field."""
        tasks, optimizers = self.pg.catalogues()
        chosen = [name for name in DEFAULT_OPTIMIZERS if name in optimizers]
        running = [s for s in self.pg.client.sweeps(limit=20)["items"] if s["status"] == "running"]
        sweep_id = running[0]["id"] if running else None
        status = f"Resumed the live view of sweep `{sweep_id}`" if sweep_id else gr.skip()
        pickers = (
            gr.update(choices=list(tasks), value=DEFAULT_TASK),
            gr.update(choices=list(optimizers), value=chosen),
        )
        return (*pickers, sweep_id, -1, status)

    # ------------------------------------------------------------------ actions
    def run(
        self, token: str, task: str, chosen: list[str], rows: Any, *fields: Any
    ) -> tuple[Any, Any, str]:
        """Start the sweep with the user's token: (sweep id, redraw key, status line)."""
        given = dict(zip(RUN_FIELDS, fields, strict=True))
        try:
            spec = sweep_form.sweep_spec(
                task,
                sweep_form.read_space(rows or [], chosen or []),
                **{
                    k: given[k] for k in ("trials", "seeds", "steps", "parallel", "sampler", "seed")
                },
                objective={k: given[k] for k in ("kind", "metric", "direction", "target")},
                pruning={"startup_trials": given["startup"], "warmup_steps": given["warmup"]}
                if given["prune"]
                else None,
            )
        except FormError as e:
            return gr.skip(), gr.skip(), refusal(f"**Not run** — {e}")
        try:
            with self.pg.as_user(token) as client:
                sweep = client.submit_sweep(spec)
        except ApiError as e:
            if e.status == 401:
                return gr.skip(), gr.skip(), token_refusal(token, "run")
            detail = explain(e.detail, task, chosen)
            return (
                gr.skip(),
                gr.skip(),
                refusal(f"**The server refused the sweep** — {detail}"),
            )
        total = sum(o["trials_total"] for o in sweep["optimizers"])
        return sweep["id"], -1, f"Started sweep `{sweep['id']}` ({total} trials)"

    def cancel(self, sweep_id: str | None, token: str) -> str:
        if not sweep_id:
            return "No sweep to cancel"
        return cancel_as_user(
            self.pg.as_user(token),
            token,
            lambda api: api.cancel_sweep(sweep_id),
            f"Cancelled sweep `{sweep_id}`",
        )

    # ------------------------------------------------------------------ the live view
    def tick(self, sweep_id: str | None, rendered: Any) -> tuple[Any, ...]:
        """(trials table, best-so-far, slice plot, status, re-runs, redraw key), each skipped
        while nothing changed."""
        skip = (gr.skip(),) * 6
        if not sweep_id:
            return skip
        try:
            sweep = self.pg.client.sweep(sweep_id)
        except ApiError as e:
            return (*skip[:3], f"Sweep `{sweep_id}`: {e.detail}", *skip[4:])
        rerun = sweep.get("rerun") or {}
        key = [sweep["status"], sweep["phase"], sweep["message"], rerun.get("status"),
               [[t["optimizer"], t["number"], t["status"]] for t in sweep["trials"]]]  # fmt: skip
        if rendered == key:
            return skip
        headers, rows = sweep_figures.trials_table(sweep)
        return (
            {"headers": headers, "data": rows},
            sweep_figures.best_so_far_figure(sweep),
            sweep_figures.slice_figure(sweep),
            sweep_figures.sweep_status(sweep),
            rerun_markdown(rerun),
            key,
        )


def rerun_markdown(rerun: dict[str, Any]) -> str:
    """The re-run comparison (a link that opens it in the compare view) and its statistics
    over seeds, as the compare view shows them."""
    if not rerun:
        return ""
    cid = rerun["comparison_id"]
    head = (
        f"**Re-runs of each best on fresh seeds**: comparison [`{cid}`](?comparison={cid}) "
        f"({rerun['status']}; the link opens it in the compare view)"
    )
    stats = views.statistics_markdown(rerun.get("summary") or {})
    return f"{head}\n\n{stats or 'No statistics over seeds yet (they need two runs each).'}"


def header_follows_tabs(
    compare_tab: gr.Tab, other_tabs: list[gr.Tab], compare_header: list[gr.Component]
) -> None:
    """Show the comparison's controls above the tabs only while its tab is open, so the
    Sweeps and Benchmarks tabs have one Run (their own) in sight."""
    for tab, shown in ((compare_tab, True), *((other, False) for other in other_tabs)):
        tab.select(lambda s=shown: [gr.update(visible=s)] * len(compare_header), None,
                   compare_header, show_progress="hidden", queue=False)  # fmt: skip


def build(pg: Playground, token: gr.Textbox, demo: gr.Blocks) -> None:
    """The tab's contents, inside `with gr.Tab(...)`; `token` is the page's server token."""
    tab = SweepsTab(pg)
    sweep_id, rendered = gr.State(None), gr.State(-1)
    with gr.Row():
        task = gr.Dropdown(label="Task", elem_id="sweep-task", scale=1)
        chosen = gr.Dropdown(label="Optimizers (the same trial budget each)", multiselect=True,
                             elem_id="sweep-optimizers", scale=2)  # fmt: skip
    space = gr.Dataframe(
        headers=sweep_form.SPACE_COLUMNS,
        datatype=sweep_form.SPACE_TYPES,
        static_columns=sweep_form.FIXED_COLUMNS,
        type="array",
        interactive=True,
        label="Search space (tick what to tune; ranges are the server's defaults: edit them "
        "freely; log = log-uniform; choices: values separated by commas)",
        elem_id="sweep-space",
    )
    space_note = gr.Markdown("", elem_id="sweep-space-note")
    with gr.Row():
        trials = gr.Number(8, label="Trials per optimizer", precision=0, elem_id="sweep-trials")
        seeds = gr.Number(3, label="Re-run seeds (0: none)", precision=0, elem_id="sweep-seeds")
        steps = gr.Number(200, label="Steps per trial", precision=0, elem_id="sweep-steps")
        parallel = gr.Number(1, label="Trials at once", precision=0, elem_id="sweep-parallel")
    with gr.Row():
        kind = gr.Dropdown(sweep_form.OBJECTIVES, value="final", label="Objective",
                           elem_id="sweep-objective")  # fmt: skip
        metric = gr.Textbox(
            "",
            label="Metric (final / best)",
            max_lines=1,
            placeholder="blank: loss, or val_accuracy on data tasks",
        )
        direction = gr.Dropdown(["auto", "minimize", "maximize"], value="auto",
                                label="Direction (auto: loss down, accuracy up)")  # fmt: skip
        target = gr.Number(None, label="Target (… to target)")
    with gr.Row():
        prune = gr.Checkbox(False, label="Prune bad trials (median rule)")
        startup = gr.Number(3, label="Complete trials before pruning", precision=0)
        warmup = gr.Number(0, label="Steps before pruning", precision=0)
        sampler = gr.Radio(["tpe", "random"], value="tpe", label="Sampler")
        seed = gr.Number(0, label="Sweep seed", precision=0)
    with gr.Row():
        run_btn = gr.Button("Run sweep", variant="primary", elem_id="sweep-run")
        cancel_btn = gr.Button("Cancel sweep", variant="stop", elem_id="sweep-cancel")
    status = gr.Markdown("Pick a task and optimizers, then **Run sweep**.", elem_id="sweep-status")
    table = gr.Dataframe(headers=sweep_figures.TRIAL_COLUMNS, label="Trials (latest first)",
                         interactive=False, elem_id="sweep-trials-table")  # fmt: skip
    with gr.Row():
        best = gr.Plot(sweep_figures.best_so_far_figure({}), label="Best so far",
                       elem_id="sweep-best-plot")  # fmt: skip
        slices = gr.Plot(sweep_figures.slice_figure({}), label="Trials", elem_id="sweep-slice-plot")
    rerun = gr.Markdown("", elem_id="sweep-rerun")

    show_space = {"fn": tab.space, "inputs": [task, chosen, space, token],
                  "outputs": [space, space_note], "show_progress": "hidden"}  # fmt: skip
    demo.load(
        tab.choices, None, [task, chosen, sweep_id, rendered, status], api_name="sweep_choices"
    ).then(**show_space, api_name="sweep_space_on_load")
    gr.on([task.input, chosen.input, token.change], **show_space, api_name="sweep_space")
    fields = [trials, seeds, steps, parallel, kind, metric, direction, target, prune, startup,
              warmup, sampler, seed]  # fmt: skip
    run_btn.click(
        tab.run,
        [token, task, chosen, space, *fields],
        [sweep_id, rendered, status],
        api_name="sweep_run",
    )
    cancel_btn.click(tab.cancel, [sweep_id, token], status, api_name="sweep_cancel")
    gr.Timer(1.0).tick(
        tab.tick,
        [sweep_id, rendered],
        [table, best, slices, status, rerun, rendered],
        show_progress="hidden",
        concurrency_limit=None,
        api_name="sweep_tick",
    )
