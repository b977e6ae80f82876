"""The Benchmarks tab in headless Chromium against a real server: the claims with their
verdicts, a report's tables and plots, and Run starting a suite's plan as comparisons that
open, live, in the Compare tab.

The server reads its reports from a folder this test writes (a step-cost quick report and a
partial full one), so
the test does not depend on which reports are committed. Same browser and skips as
tests/test_ui_browser.py (its fixtures are reused)."""

from __future__ import annotations

import pytest
import test_ui_browser as browser
from benchmark_scripts import load_benchmark
from test_ui_browser import wait_for
from ui_server import ui_server

from server.suites import SUITES
from server.suites.base import Figure, Report, Series, Table

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]
chromium, ui = browser.chromium, browser.ui  # the same fixtures


@pytest.fixture(scope="module")
def reports_server(tmp_path_factory, chromium):
    pytest.importorskip("matplotlib")
    results = tmp_path_factory.mktemp("suite-results")
    table = Table("mlp: 2,913,290 parameters", ["optimizer", "× AdamW"], [["psgd.Kron", "1.23×"]])
    ratios = Series("psgd.Kron", [1, 2], [1.2, 1.3])
    figure = Figure("ratios-mlp", "mlp ratios", "round", "× AdamW", [ratios])
    finding = "psgd.Kron took 1.23× AdamW's step (a test report)."
    report = Report("not yet run at full scale", finding, [table], [figure])
    load_benchmark("suite_report").write_report(
        SUITES["step-cost"],
        "quick",
        report,
        results / "step-cost" / "quick",
        started=0.0,
        command="python benchmarks/suite.py step-cost --quick",
    )
    partial = Report("not yet run at full scale", "A trimmed GPU run took 2.34×.", [table], [])
    load_benchmark("suite_report").write_report(
        SUITES["step-cost"],
        "full",
        partial,
        results / "step-cost" / "full-partial",
        started=0.0,
        command="python benchmarks/suite.py step-cost --full --cap 10",
    )
    data, logs = tmp_path_factory.mktemp("ui-data"), tmp_path_factory.mktemp("ui-log")
    env = {"PSGD_PLAYGROUND_SUITE_RESULTS_DIR": str(results)}
    with ui_server(data, logs / "server.log", env=env) as url:
        yield url


def text(page, elem_id: str) -> str:
    return page.inner_text(f"#{elem_id}")


def pick_suite(page, title: str) -> None:
    page.locator("#suite-pick input").click()
    page.get_by_role("option", name=title).click()


def test_the_tab_shows_each_claim_its_verdict_and_a_reports_tables_and_plots(ui, reports_server):
    ui.goto(f"{reports_server}/ui/")
    ui.get_by_role("tab", name="Benchmarks").click()
    ui.wait_for_selector("#run", state="hidden")  # one Run in sight: the suite's own
    titles = [suite.title for suite in SUITES.values()]

    def claims_table() -> str:  # while loading, the element shows Gradio's timer ("1.3s")
        shown = text(ui, "suite-claims")
        return shown if all(title in shown for title in titles) else ""

    claims = wait_for(claims_table, 60, "the claims table with every suite")
    assert "not yet run at full scale" in claims  # the step-cost report's verdict
    pick_suite(ui, SUITES["step-cost"].title)
    wait_for(lambda: "1.23× AdamW" in text(ui, "suite-report"), 30, "the step-cost report")
    assert "psgd.Kron" in text(ui, "suite-report")  # its table
    image = ui.locator("#suite-figures img")
    assert image.count() == 1 and image.get_attribute("alt") == "mlp ratios"
    assert image.evaluate("img => img.complete && img.naturalWidth > 0")  # the SVG drew
    assert ui.locator("#suite-run").is_disabled()  # step cost is timed outside jobs
    ui.locator("#suite-mode").get_by_role("radio", name="full", exact=True).check()
    wait_for(lambda: "No full-mode report" in text(ui, "suite-report"), 30, "no full report")
    assert "full-partial" in claims  # the claims table names the partial runs
    ui.locator("#suite-mode").get_by_role("radio", name="full-partial", exact=True).check()
    wait_for(lambda: "2.34×" in text(ui, "suite-report"), 30, "the partial report")
    assert "A partial run" in text(ui, "suite-report")
    assert ui.locator("#suite-figures img").count() == 0  # it has no figures


def test_run_starts_a_suites_smoke_plan_and_links_its_comparisons(ui, reports_server):
    runnable = [s for s in SUITES.values() if s.runs_jobs]
    if not runnable:
        pytest.skip("no suite that runs jobs is registered")
    ui.goto(f"{reports_server}/ui/")
    ui.get_by_role("tab", name="Benchmarks").click()
    wait_for(lambda: runnable[0].title in text(ui, "suite-claims"), 60, "the claims table")
    pick_suite(ui, runnable[0].title)
    ui.wait_for_function("() => !document.querySelector('#suite-run').disabled", timeout=30_000)
    ui.locator("#suite-run-mode").get_by_role(
        "radio", name="smoke (seconds; checks the path)"
    ).check()
    ui.locator("#suite-run").click()
    wait_for(lambda: "Started" in text(ui, "suite-status"), 60, "the suite to start")
    link = ui.locator("#suite-status a").first
    comparison = link.inner_text()
    assert link.get_attribute("href") == f"?comparison={comparison}"
    # the link's page: the Compare tab with that comparison open, its jobs running or done
    browser.open_comparison_link(ui, reports_server, comparison, comparison, timeout=60)
