"""The Benchmarks tab: each claim of the seed paper, the verdict of the committed suite run
that tests it, the report's tables and plots (the modes' reports and the partial ones:
trimmed runs of a plan), and a button that starts the suite's quick (or smoke) plan as
comparisons the user watches in the Compare tab (issue 16).

Everything comes from the API (`/api/suites`), so a remote server's reports show as its
own; Run sends the user's token like the other tabs' Run buttons.
"""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING, Any

import gradio as gr

from playground.client import ApiError
from playground.refusals import refusal, token_refusal
from server.suites.render import markdown_row, report_markdown

if TYPE_CHECKING:  # the compare view builds this tab; importing it here would be a cycle
    from playground.ui import Playground

MODES = ["quick", "full"]
RUN_MODES = [("quick (minutes on a CPU)", "quick"), ("smoke (seconds; checks the path)", "smoke")]
NO_REPORT = "No {mode}-mode report of this suite has been committed."
PARTIAL = (
    "**A partial run** (`{name}`): part of its mode's plan, trimmed to fit the time at hand "
    "(its notes say how), so its verdict is never more than *not yet run at full scale*."
)


class BenchmarksTab:
    def __init__(self, pg: Playground) -> None:
        self.pg = pg

    def choices(self) -> tuple[Any, str]:
        """The suite picker and the claims table the tab opens with."""
        try:
            suites = self.pg.client.suites()
        except ApiError as e:
            return gr.update(choices=[]), f"Could not list the suites: {e.detail}"
        options = [(s["title"], s["name"]) for s in suites]
        first = options[0][1] if options else None
        return gr.update(choices=options, value=first), claims_markdown(suites)

    def reports(self, name: str | None, current: str | None) -> Any:
        """The picked suite's reports to choose from: the modes, then its partial runs;
        the current choice stays when the suite has it."""
        suite = self._suite(name) if name else None
        choices = MODES + [p["name"] for p in (suite or {}).get("partial_reports", [])]
        return gr.update(choices=choices, value=current if current in choices else MODES[0])

    def _suite(self, name: str) -> dict[str, Any] | None:
        return next((s for s in self.pg.client.suites() if s["name"] == name), None)

    def show(self, name: str | None, mode: str) -> tuple[str, str, Any]:
        """The picked suite's report `mode` (a mode or a partial run's name): Markdown
        (tables, notes), the figures as HTML, and whether Run applies (a suite that is not
        jobs cannot be started here)."""
        if not name:
            return "", "", gr.update(interactive=False)
        suite = self._suite(name)
        if suite is None:
            return f"No suite `{name}` on this server.", "", gr.update(interactive=False)
        runnable = gr.update(interactive=bool(suite["runs_jobs"]))
        try:
            record = self.pg.client.suite_report(name, mode)
        except ApiError as e:
            if e.status != 404:
                return f"Could not read the report: {e.detail}", "", runnable
            head = f"# {suite['title']}\n\n**Claim.** {suite['claim']}\n\n{suite['description']}"
            return f"{head}\n\n{NO_REPORT.format(mode=mode)}", "", runnable
        figures = [
            (f["title"], self.pg.client.suite_figure(name, mode, f["name"]))
            for f in record["report"].get("figures", [])
        ]
        markdown = report_markdown(record, figures=False)
        if mode not in MODES:
            markdown = f"{PARTIAL.format(name=mode)}\n\n{markdown}"
        return markdown, figures_html(figures), runnable

    def run(self, name: str | None, mode: str, token: str) -> str:
        """Start the suite's plan as the user; say which comparisons to watch."""
        if not name:
            return refusal("**Not started** — pick a suite first")
        try:
            with self.pg.as_user(token) as client:
                started = client.start_suite(name, mode)
        except ApiError as e:
            if e.status == 401:
                return token_refusal(token, "started")
            return refusal(f"**Not started** — {e.detail}")
        return started_markdown(started)


def claims_markdown(suites: list[dict[str, Any]]) -> str:
    """One row per claim: its verdict in each committed mode, and its partial runs."""
    rows = ["| suite | claim | quick | full | partial runs |", "| --- | --- | --- | --- | --- |"]
    for s in suites:
        cells = [(s["reports"].get(m) or {}).get("verdict") or "not run" for m in MODES]
        partial = ", ".join(f"`{p['name']}`" for p in s.get("partial_reports", [])) or "–"
        rows.append(markdown_row([s["title"], s["claim"], *cells, partial]))
    return "\n".join(rows)


def figures_html(figures: list[tuple[str, str]]) -> str:
    """The report's SVG plots as images (data URLs: no file is served to the browser)."""
    images = []
    for title, svg in figures:
        data = base64.b64encode(svg.encode()).decode()
        alt = html.escape(title, quote=True)
        images.append(
            f'<img src="data:image/svg+xml;base64,{data}" alt="{alt}" title="{alt}" '
            'style="max-width:48%;display:inline-block;margin:4px">'
        )
    return "<div class='suite-figures'>" + "".join(images) + "</div>"


def started_markdown(started: dict[str, Any]) -> str:
    lines = [f"**Started {started['suite']}** ({started['mode']} mode): each link opens a "
             "comparison in the Compare tab, live."]  # fmt: skip
    for c in started["comparisons"]:
        lines.append(
            f"- {c['title']}: [`{c['id']}`](?comparison={c['id']}) · {len(c['job_ids'])} jobs"
        )
    return "\n".join(lines)


def build(pg: Playground, token: gr.Textbox, page_tab: gr.Tab) -> None:
    """The tab's contents, inside `with gr.Tab(...) as page_tab`; `token` is the page's
    server token. The reports load when the tab is opened, not with the page."""
    tab = BenchmarksTab(pg)
    claims = gr.Markdown("", elem_id="suite-claims")
    with gr.Row():
        suite = gr.Dropdown(label="Suite", elem_id="suite-pick", scale=2)
        mode = gr.Radio(MODES, value="quick", label="Report", elem_id="suite-mode", scale=2)
    report = gr.Markdown("", elem_id="suite-report")
    plots = gr.HTML("", elem_id="suite-figures")
    with gr.Row():
        run_mode = gr.Radio(RUN_MODES, value="quick", label="Run it here", elem_id="suite-run-mode")
        run_btn = gr.Button("Run suite", variant="primary", elem_id="suite-run", scale=0)
    status = gr.Markdown("", elem_id="suite-status")
    show = {"fn": tab.show, "inputs": [suite, mode], "outputs": [report, plots, run_btn]}
    pick = {"fn": tab.reports, "inputs": [suite, mode], "outputs": mode}
    page_tab.select(tab.choices, None, [suite, claims], api_name="suite_choices").then(
        **pick, api_name="suite_reports_on_open"
    ).then(**show, api_name="suite_report_on_open")
    suite.input(**pick, api_name="suite_reports").then(**show, api_name="suite_report_of_suite")
    mode.input(**show, api_name="suite_report")
    run_btn.click(tab.run, [suite, run_mode, token], status, api_name="suite_run")
