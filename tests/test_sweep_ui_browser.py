"""The Sweeps tab in headless Chromium against a real server: a tiny sweep on Rosenbrock
fills the trials table and draws the best-so-far and slice figures as its trials finish.

Same browser, server and skips as tests/test_ui_browser.py (its fixtures are reused)."""

from __future__ import annotations

import re

import pytest
import test_ui_browser as browser
from test_ui_browser import traces, wait_for

# generous: on a loaded 2-core machine the server start and the four trial jobs take minutes
pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]
chromium, server, ui = browser.chromium, browser.server, browser.ui  # the same fixtures
token_server = browser.token_server
OPTIMIZERS = {"psgd-kron", "adam"}  # the tab's default pick


def text(page, elem_id: str) -> str:
    return page.inner_text(f"#{elem_id}")


def started(status: str) -> bool:
    """The first line, "Started sweep <id>", lasts only until the next 1 s tick replaces it with
    "Sweep <id> on <task> — …": a poll on a loaded machine can miss it, so either counts."""
    return "Started sweep" in status or re.match(r"Sweep \S+ on ", status) is not None


def test_a_tiny_sweep_fills_the_trials_table_and_draws_best_so_far(ui, server):
    ui.goto(f"{server}/ui/")
    ui.get_by_role("tab", name="Sweeps").click()
    ui.wait_for_selector("#run", state="hidden")  # one Run in sight: the sweep's own
    # the server's default ranges arrive in the search-space table (lr ticked for each)
    wait_for(lambda: "preconditioner_lr" in text(ui, "sweep-space"), 60, "the default ranges")
    assert "Without a default range" in text(ui, "sweep-space-note")  # weight_decay, say
    for field, value in (("trials", "2"), ("seeds", "0"), ("steps", "20"), ("parallel", "2")):
        ui.locator(f"#sweep-{field} input").fill(value)
    before = text(ui, "sweep-status")
    ui.locator("#sweep-run").click()
    wait_for(lambda: started(now := text(ui, "sweep-status")) and now != before, 60, "the start")

    def finished() -> bool:
        return text(ui, "sweep-status").count("succeeded") > 0

    wait_for(finished, 300, "the sweep to finish")
    table = text(ui, "sweep-trials-table")
    assert table.count("complete") + table.count("diverged") == 4, table
    assert {"psgd-kron", "adam"} <= set(table.split())
    lines = traces(ui, "sweep-best-plot")
    assert set(lines) >= OPTIMIZERS, lines  # one best-so-far line per optimizer
    assert all(lines[name] == 2 for name in OPTIMIZERS), lines  # a point per finished trial
    assert OPTIMIZERS & set(traces(ui, "sweep-slice-plot"))
    ui.get_by_role("tab", name="Compare").click()
    ui.wait_for_selector("#run", state="visible")


def test_with_a_token_the_default_ranges_come_once_it_is_entered_and_after_a_reload(
    ui, token_server
):
    ui.goto(f"{token_server}/ui/")
    ui.get_by_role("tab", name="Sweeps").click()
    wait_for(lambda: "server token" in text(ui, "sweep-space-note"), 60, "the token note")
    token = ui.locator("#token input")
    token.fill(browser.TOKEN)
    token.press("Tab")
    wait_for(lambda: "preconditioner_lr" in text(ui, "sweep-space"), 60, "the default ranges")
    ui.reload()  # the token comes back from the tab's sessionStorage, and the ranges with it
    ui.get_by_role("tab", name="Sweeps").click()
    wait_for(lambda: "preconditioner_lr" in text(ui, "sweep-space"), 60, "the ranges again")
