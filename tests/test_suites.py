"""The suite framework (issue 16): the registry, the report files, reading them back, the
command end to end through a real job service, and the /api/suites routes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import threading

import pytest
import torch
from benchmark_scripts import load_benchmark

from server.specs import ComparisonSpec
from server.suites import SUITES, suite_named
from server.suites.base import Figure, Report, Run, Series, Suite, Table
from server.suites.render import report_markdown
from server.suites.results import figure_svg, partial_records, report_record

pytest.importorskip("matplotlib")
suite_command = load_benchmark("suite")
suite_report = load_benchmark("suite_report")


def landscape_plan(mode: str) -> list[tuple[str, ComparisonSpec]]:
    steps = {"smoke": 5, "quick": 30, "full": 300}[mode]
    spec = {"task": {"name": "rosenbrock"}, "steps": steps, "seeds": [0, 1],
            "optimizers": [{"name": "sgd", "lr": 1e-3}, {"name": "adam", "lr": 1e-2}]}  # fmt: skip
    return [("rosenbrock", ComparisonSpec.model_validate(spec))]


def final_losses(runs: list[Run], mode: str) -> Report:
    """Mean final loss per optimizer label: enough to check what the runs carry."""
    finals: dict[str, list[float]] = {}
    for run in runs:
        finals.setdefault(run.label, []).append(run.summary["final_loss"])
    rows = [[label, f"{sum(v) / len(v):.6g}", str(len(v))] for label, v in finals.items()]
    series = [Series(run.label, [float(run.seed)], [run.summary["final_loss"]]) for run in runs]
    return Report(
        "not yet run at full scale",
        f"{len(runs)} runs ended",
        [Table("final loss", ["optimizer", "mean", "runs"], rows)],
        [Figure("final", "final loss by seed", "seed", "loss", series, log_y=True)],
        ["a test suite"],
    )


TOY = Suite(
    name="toy",
    title="Toy suite",
    claim="Adam ends lower than SGD on Rosenbrock.",
    description="Two optimizers, two seeds.",
    plan=landscape_plan,
    analyse=final_losses,
)


@pytest.fixture
def toy_registered(monkeypatch):
    monkeypatch.setitem(SUITES, "toy", TOY)  # the command and the API read the same dict


def test_a_suite_gives_a_plan_and_an_analysis_or_a_measurement_not_both():
    with pytest.raises(ValueError, match="plan and analyse, or measure"):
        Suite("x", "x", "c", "d", plan=landscape_plan)
    with pytest.raises(ValueError, match="plan and analyse, or measure"):
        Suite("x", "x", "c", "d", plan=landscape_plan, analyse=final_losses, measure=print)
    with pytest.raises(ValueError, match="verdict must be one of"):
        Report("probably", "")


def test_the_registry_names_each_suite_once_and_refuses_unknown_names():
    assert "step-cost" in SUITES
    assert all(name == suite.name for name, suite in SUITES.items())
    with pytest.raises(KeyError, match=r"unknown suite 'nope' \(valid: .*step-cost"):
        suite_named("nope")


def test_every_job_suite_plans_valid_comparisons_in_every_mode():
    for suite in SUITES.values():
        if suite.plan is None:
            continue
        for mode in ("smoke", "quick", "full"):
            plan = suite.plan(mode)
            assert plan and all(isinstance(spec, ComparisonSpec) for _, spec in plan), suite.name


def test_the_command_runs_a_plan_through_the_job_service_and_writes_the_report(
    toy_registered, tmp_path, clean_env
):
    out = tmp_path / "report"
    assert suite_command.main(["toy", "--smoke", "--out", str(out)]) == 0
    record = json.loads((out / "report.json").read_text())
    assert record["suite"] == "toy" and record["mode"] == "smoke"
    assert record["command"] == f"python benchmarks/suite.py toy --smoke --out {out}"
    assert record["machine"]["torch"] and record["machine"]["cpus"] >= 1
    rows = {row[0]: row for row in record["report"]["tables"][0]["rows"]}
    assert set(rows) == {"sgd", "adam"} and all(row[2] == "2" for row in rows.values())
    assert record["report"]["finding"] == "4 runs ended"
    assert (out / "final.svg").read_text().lstrip().startswith("<?xml")
    markdown = (out / "report.md").read_text()
    assert "**Verdict: not yet run at full scale.** 4 runs ended" in markdown
    assert "![final loss by seed](final.svg)" in markdown and "| sgd |" in markdown


def test_a_trimmed_plan_runs_what_was_kept_and_says_so(
    toy_registered, tmp_path, clean_env, monkeypatch
):
    monkeypatch.setattr(suite_command, "RESULTS", tmp_path)
    argv = ["toy", "--full", "--entries", "1", "--seeds", "5-7", "--cap", "4", "--jobs", "2"]
    assert suite_command.main(argv) == 0
    record = json.loads((tmp_path / "toy" / "full-partial" / "report.json").read_text())
    (row,) = record["report"]["tables"][0]["rows"]
    assert row[0] == "adam" and row[2] == "3"  # one entry, three seeds
    assert record["report"]["verdict"] == "not yet run at full scale"
    assert record["report"]["notes"][0] == (
        "Trimmed plan: entries 1 of each; seeds 5–7; a cap of 4 steps a job. "
        "This is part of the mode's plan, not its result."
    )


def test_a_run_cut_short_says_why_after_the_trimming_note(
    toy_registered, tmp_path, clean_env, monkeypatch
):
    ran = suite_command._runs
    why = "Cut short: SIGTERM after 3 s, the 1 job(s) not yet ended were cancelled (…)."
    monkeypatch.setattr(suite_command, "_runs", lambda plan, args: (ran(plan, args)[0], why))
    out = tmp_path / "cut"
    assert suite_command.main(["toy", "--full", "--entries", "1", "--out", str(out)]) == 0
    notes = json.loads((out / "report.json").read_text())["report"]["notes"]
    assert notes[0].startswith("Trimmed plan: entries 1 of each.") and notes[1] == why
    assert why in (out / "report.md").read_text()


def test_trimming_keeps_the_asked_parts_and_never_raises_a_cap():
    plan = [*landscape_plan("full"), ("other", landscape_plan("smoke")[0][1])]
    trimmed, said = suite_command.trim_plan(plan, only="rosen", seeds=1, cap=1000)
    ((title, spec),) = trimmed
    assert title == "rosenbrock" and spec.seeds == [0] and spec.steps == 300
    assert [o.name for o in spec.optimizers] == ["sgd", "adam"]
    assert said == (
        "Trimmed plan: only the comparisons titled with 'rosen'; the first 1 seeds; "
        "a cap of 1,000 steps a job."
    )
    assert suite_command.trim_plan(plan) == (plan, "")


@pytest.mark.parametrize(
    ("text", "seeds", "said"),
    [("17,19", [17, 19], "seeds 17, 19"), ("0-2,9", [0, 1, 2, 9], "seeds 0, 1, 2, 9"),
     ("5-7", [5, 6, 7], "seeds 5–7"), ("1", [0], "the first 1 seeds")],
)  # fmt: skip
def test_seeds_take_a_count_a_range_or_a_list(text, seeds, said):
    """A list fills the holes a pool left (seeds 17 and 19) without re-running seed 18."""
    plan = landscape_plan("full")
    trimmed, sentence = suite_command.trim_plan(plan, seeds=suite_command._seeds(text))
    assert all(spec.seeds == seeds for _, spec in trimmed)
    assert sentence == f"Trimmed plan: {said}."


def test_the_plan_is_printed_with_entry_positions(toy_registered, capsys):
    assert suite_command.main(["toy", "--quick", "--entries", "1", "--plan"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "rosenbrock: 2 jobs, seeds [0, 1], cap 30 steps"
    assert '   0  {"lr": 0.01, "name": "adam"}' in out and out.endswith("2 jobs in all\n")


def test_a_deadline_cancels_the_jobs_not_yet_ended(clean_env):
    spec = {"task": {"name": "xor", "sequence_length": 64}, "steps": 100_000, "seeds": [0],
            "optimizers": [{"name": "adam"}]}  # fmt: skip
    plan = [("long", ComparisonSpec.model_validate(spec))]
    how = suite_command.LocalRun(device="cpu", deadline=1.0)
    (run,), note = suite_command.run_local(plan, how)
    assert run.status == "cancelled"
    assert re.fullmatch(
        r"Cut short: the --deadline of 1 s after \d+ s, the 1 job\(s\) not yet ended were "
        r"cancelled \(listed as cancelled, not counted\)\.",
        note,
    )


def test_ctrl_c_cancels_the_jobs_not_yet_ended_and_keeps_the_report(clean_env, capsys):
    spec = {"task": {"name": "xor", "sequence_length": 64}, "steps": 100_000, "seeds": [0],
            "optimizers": [{"name": "adam"}]}  # fmt: skip
    plan = [("long", ComparisonSpec.model_validate(spec))]
    before = signal.getsignal(signal.SIGINT)
    interrupt = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    interrupt.start()
    try:
        (run,), note = suite_command.run_local(plan, suite_command.LocalRun(device="cpu"))
    finally:
        interrupt.cancel()
    assert run.status == "cancelled"
    assert note.startswith("Cut short: SIGINT after ")
    assert "SIGINT: cancelling the jobs not yet ended" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is before  # the handler is the caller's again


def test_the_command_runs_a_plan_through_a_servers_api_with_its_token(
    toy_registered, tmp_path, clean_env
):
    from thread_executor import ThreadExecutor
    from threaded_server import serve_in_thread

    from server.api import create_app
    from server.settings import Settings

    app = create_app(Settings(data_dir=tmp_path / "data", token="t0k"), executor=ThreadExecutor())
    out = tmp_path / "report"
    with serve_in_thread(app, log_level="warning") as url:
        argv = ["toy", "--smoke", "--api", url, "--token", "t0k", "--out", str(out)]
        assert suite_command.main(argv) == 0
        listed = app.state.service.list_comparisons()["items"]
    record = json.loads((out / "report.json").read_text())
    assert record["report"]["finding"] == "4 runs ended" and len(listed) == 1
    assert record["command"].endswith("--token … --out " + str(out))


def test_the_command_keeps_the_token_out_of_the_recorded_command():
    command = suite_command._command(["xor", "--api", "http://x", "--token", "s3cret"])
    assert "s3cret" not in command and command.endswith("--token …")
    assert "s3cret" not in suite_command._command(["xor", "--token=s3cret"])
    quoted = suite_command._command(["xor", "--only", "T = 64"])
    assert quoted == "python benchmarks/suite.py xor --only 'T = 64'"  # as a shell reads it


def test_the_command_names_a_bad_flag(capsys, toy_registered):
    for argv, message in (
        (["nope"], "suite: unknown suite 'nope'"),
        (["step-cost", "--threads", "0"], "--threads: must be at least 1"),
        (["toy", "--api", "http://127.0.0.1:1", "--data", "x"], "--data: a server finds"),
        ([], "name a suite"),
        (["toy", "--api", "http://127.0.0.1:1", "--jobs", "4"], "--jobs: only for the in-process"),
        (["toy", "--jobs", "0"], "--jobs: must be at least 1"),
        (["toy", "--deadline", "0"], "--deadline: must be a positive number"),
        (["toy", "--seeds", "3-1"], "--seeds: '3-1' is neither a count"),
        (["toy", "--seeds", "x"], "--seeds: 'x' is neither a count"),
        (["toy", "--seeds", "1,1"], "--seeds: '1,1' is neither a count"),
        (["toy", "--seeds", "0"], "--seeds: '0' is neither a count"),
        (["toy", "--entries", "0,9"], "--entries: rosenbrock has entries 0 to 1"),
        (["toy", "--entries", "a"], "--entries: 'a' is not a comma-separated list"),
        (["toy", "--only", "nothing"], "--only: no comparison's title holds 'nothing'"),
        (["step-cost", "--cap", "10"], "--cap: step-cost measures; it has no plan"),
    ):
        with pytest.raises(SystemExit):
            suite_command.main(argv)
        assert message in capsys.readouterr().err


def write_toy_report(folder, mode="quick", name=None):
    band = Series("s", [1.0, 2.0], [3.0, 1.0], [2.0, 0.5], [4.0, 2.0])
    table = Table("t", ["a", "b|c"], [["1", "2"]])
    report = Report(
        "not reproduced",
        "SGD ended lower.",
        [table],
        [Figure("curve", "A curve", "x", "y", [band])],
    )
    out = folder / "toy" / (name or mode)
    suite_report.write_report(TOY, mode, report, out, started=0.0, command="c")


def test_reports_read_back_only_by_the_names_the_report_lists(tmp_path):
    write_toy_report(tmp_path)
    record = report_record(tmp_path, "toy", "quick")
    assert record["report"]["verdict"] == "not reproduced" and record["date"].startswith("1970")
    assert "<svg" in figure_svg(tmp_path, "toy", "quick", "curve")
    (tmp_path / "toy" / "quick" / "other.svg").write_text("<svg/>")
    assert figure_svg(tmp_path, "toy", "quick", "other") is None  # a file, not a figure
    assert figure_svg(tmp_path, "toy", "quick", "../quick/curve") is None
    assert report_record(tmp_path, "toy", "full") is None
    assert report_record(None, "toy", "quick") is None
    (tmp_path / "toy" / "quick" / "report.json").write_text("{not json")
    assert report_record(tmp_path, "toy", "quick") is None
    markdown = report_markdown({**record}, figures=False)
    assert "| a | b\\|c |" in markdown and "curve.svg" not in markdown


# ----------------------------------------------------------------------------- API
def assert_not_found(client, *paths):
    for path in paths:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"]


def test_the_api_lists_the_claims_with_the_committed_verdicts(
    make_client, toy_registered, tmp_path
):
    write_toy_report(tmp_path / "results")
    client = make_client(suite_results_dir=tmp_path / "results")
    listed = {s["name"]: s for s in client.get("/api/suites").json()}
    assert listed["toy"]["claim"] == TOY.claim and listed["toy"]["runs_jobs"] is True
    assert listed["toy"]["reports"]["quick"]["verdict"] == "not reproduced"
    assert listed["toy"]["reports"]["full"] is None
    assert listed["step-cost"]["runs_jobs"] is False
    record = client.get("/api/suites/toy/reports/quick").json()
    assert record["report"]["figures"][0]["name"] == "curve"
    svg = client.get("/api/suites/toy/reports/quick/figures/curve.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert_not_found(
        client,
        "/api/suites/toy/reports/full",
        "/api/suites/nope/reports/quick",
        "/api/suites/toy/reports/quick/figures/nope.svg",
        "/api/suites/toy/reports/quick/figures/..%2Freport.svg",
    )
    assert client.get("/api/suites/toy/reports/smoke").status_code == 404  # never shown


def test_partial_reports_are_listed_and_read_by_their_folder_names_only(
    make_client, toy_registered, tmp_path
):
    results = tmp_path / "results"
    write_toy_report(results)
    for name in ("full-partial-seeds10-19", "full-partial"):
        write_toy_report(results, "full", name)
    write_toy_report(results, "smoke")  # a smoke report proves the path only
    (results / "toy" / "empty-folder").mkdir()
    assert list(partial_records(results, "toy")) == ["full-partial", "full-partial-seeds10-19"]
    assert partial_records(results, "nope") == {} and partial_records(None, "toy") == {}
    client = make_client(suite_results_dir=results)
    listed = {s["name"]: s for s in client.get("/api/suites").json()}
    partial = listed["toy"]["partial_reports"]
    assert [p["name"] for p in partial] == ["full-partial", "full-partial-seeds10-19"]
    assert partial[0]["verdict"] == "not reproduced" and partial[0]["command"] == "c"
    assert listed["step-cost"]["partial_reports"] == []
    record = client.get("/api/suites/toy/reports/full-partial-seeds10-19").json()
    assert record["mode"] == "full" and record["report"]["figures"][0]["name"] == "curve"
    svg = client.get("/api/suites/toy/reports/full-partial/figures/curve.svg")
    assert svg.status_code == 200 and "<svg" in svg.text
    assert_not_found(
        client,
        "/api/suites/toy/reports/smoke",
        "/api/suites/toy/reports/empty-folder",
        "/api/suites/toy/reports/..%2F..%2Ftoy%2Fquick",
        "/api/suites/toy/reports/.hidden",
        "/api/suites/toy/reports/full-partial/figures/nope.svg",
    )


def test_starting_a_suite_submits_its_plan_as_comparisons(make_client, toy_registered):
    client = make_client()
    response = client.post("/api/suites/toy/runs", json={"mode": "smoke"})
    assert response.status_code == 201, response.text
    started = response.json()
    (comparison,) = started["comparisons"]
    assert comparison["title"] == "rosenbrock" and len(comparison["job_ids"]) == 4
    stored = client.get(f"/api/comparisons/{comparison['id']}").json()
    assert stored["spec"]["steps"] == 5
    assert client.post("/api/suites/toy/runs", json={"mode": "full"}).status_code == 422
    assert client.post("/api/suites/toy/runs", json={"mode": "quick", "x": 1}).status_code == 422
    refused = client.post("/api/suites/step-cost/runs", json={})
    assert (
        refused.status_code == 409 and "benchmarks/suite.py step-cost" in refused.json()["detail"]
    )
    assert client.post("/api/suites/nope/runs", json={}).status_code == 404


def test_a_suite_that_breaks_a_server_limit_starts_nothing(make_client, toy_registered):
    client = make_client(max_steps=10)  # the smoke plan's 5 steps pass, quick's 30 do not
    response = client.post("/api/suites/toy/runs", json={"mode": "quick"})
    assert response.status_code == 422 and "steps" in response.json()["detail"]
    assert client.get("/api/comparisons").json()["total"] == 0


def test_starting_a_suite_needs_the_token(make_client, toy_registered):
    client = make_client(token="t0k")
    assert client.post("/api/suites/toy/runs", json={"mode": "smoke"}).status_code == 401
    authorised = {"Authorization": "Bearer t0k"}
    response = client.post("/api/suites/toy/runs", json={"mode": "smoke"}, headers=authorised)
    assert response.status_code == 201
    assert client.get("/api/suites").status_code == 200  # reading needs none


# ----------------------------------------------------------------------------- step cost
def step_time_results(kron_ratio: float) -> dict:
    rows = [
        {"optimizer": "AdamW", "update_probability": None, "ms_per_step": 10.0,
         "ratio_vs_adamw": 1.0, "floats_per_param": None, "ratios": [1.0, 1.0]},
        {"optimizer": "psgd.Kron", "update_probability": 1.0, "ms_per_step": 30.0,
         "ratio_vs_adamw": 3.0, "floats_per_param": 0.4, "ratios": [2.9, 3.1]},
        {"optimizer": "psgd.Kron", "update_probability": 0.1, "ms_per_step": 11.0,
         "ratio_vs_adamw": kron_ratio, "floats_per_param": 0.4, "ratios": [kron_ratio] * 2},
    ]  # fmt: skip
    return {"mlp": {"params": 1000, "batch": 128, "rows": rows}}


def test_step_cost_verdict_follows_the_kron_ratio_at_full_scale_only():
    from server.suites.step_cost import report

    env = {"device": "cuda (H200)", "load_average_start": 0.1, "peers": "heavyball: no"}
    assert report("full", env, step_time_results(1.05)).verdict == "reproduced"
    refuted = report("full", env, step_time_results(1.4))
    assert refuted.verdict == "not reproduced" and "mlp 1.40×" in refuted.finding
    assert "not met" in refuted.finding
    quick = report("quick", env, step_time_results(1.05))
    assert quick.verdict == "not yet run at full scale" and "met here" in quick.finding
    (table,) = quick.tables
    assert table.rows[2][3] == "1.05× (1.05–1.05)" and table.rows[0][1] == "–"
    assert [s.name for s in quick.figures[0].series] == [
        "AdamW",
        "psgd.Kron p=1",
        "psgd.Kron p=0.1",
    ]


def test_step_cost_finding_names_the_peers_that_ran():
    from server.suites.step_cost import report

    results = step_time_results(1.3)
    peer = {"optimizer": "heavyball.PSGDKron", "update_probability": 0.1, "ms_per_step": 20.0,
            "ratio_vs_adamw": 2.04, "floats_per_param": None, "ratios": [2.0, 2.08]}  # fmt: skip
    results["mlp"]["rows"].append(peer)
    env = {"device": "cpu", "load_average_start": 0.1, "peers": "heavyball 3.2.1, kron_torch: no"}
    quick = report("quick", env, results)
    assert quick.finding.endswith(
        "PyPI peers at p = 0.1, same runs: mlp: heavyball.PSGDKron 2.04×."
    )
    assert "Peers: heavyball 3.2.1, kron_torch: no." in quick.notes
    assert "peers" not in report("quick", env, step_time_results(1.3)).finding


class _BrokenStep(torch.optim.SGD):
    def step(self, closure=None):
        raise RuntimeError("compile failed\nmore detail")


class _BareAssertion(torch.optim.SGD):
    def step(self, closure=None):
        raise RuntimeError("AssertionError: \n")  # how inductor's InductorError reads


class _LateBreak(torch.optim.SGD):
    """Steps through the warm-up (one step), then fails."""

    def step(self, closure=None):
        self.steps = getattr(self, "steps", 0) + 1
        if self.steps > 1:
            raise RuntimeError("compile failed")
        return super().step(closure)


def test_a_peer_that_fails_is_left_out_and_ours_must_run():
    step_time = load_benchmark("step_time")
    args = step_time.parse_args(["--models", "mlp", "--rounds", "1", "--warmup", "1"])
    args.batch, args.block = 2, 10
    work = step_time.make_workload("mlp", 2, torch.device("cpu"))
    adamw = step_time.baseline_specs()[0]
    peer = step_time.OptimizerSpec("peer.Broken", 0.1, lambda ps: _BrokenStep(ps, 0.1), True)
    rows, failed = step_time.benchmark_model(work, [adamw, peer], args)
    assert [row.optimizer for row in rows] == ["AdamW"]
    assert failed == ["peer.Broken p=0.1 on mlp: RuntimeError: compile failed"]
    # a peer whose warm-up passes but whose later step fails (its first update compiles)
    late = step_time.OptimizerSpec("peer.Late", 0.1, lambda ps: _LateBreak(ps, 0.1), True)
    rows, failed_late = step_time.benchmark_model(work, [adamw, late], args)
    assert [row.optimizer for row in rows] == ["AdamW"] and len(rows[0].ratios) == 1
    assert failed_late == ["peer.Late p=0.1 on mlp: RuntimeError: compile failed"]
    bare = step_time.OptimizerSpec("peer.Bare", 1.0, lambda ps: _BareAssertion(ps, 0.1), True)
    _, failed_bare = step_time.benchmark_model(work, [adamw, bare], args)
    assert failed_bare == ["peer.Bare p=1 on mlp: RuntimeError: AssertionError"]
    ours = step_time.OptimizerSpec("ours", 0.1, lambda ps: _BrokenStep(ps, 0.1))
    with pytest.raises(RuntimeError, match="compile failed"):
        step_time.benchmark_model(work, [adamw, ours], args)
    from server.suites.step_cost import report

    env = {"device": "cpu", "load_average_start": 0.1, "peers": "p 1", "peers_failed": failed}
    notes = report("quick", env, step_time_results(1.3)).notes
    assert "Peers left out (failed): peer.Broken p=0.1 on mlp: RuntimeError: " in notes[2]


def test_step_cost_smoke_mode_times_the_mlp_end_to_end(tmp_path):
    out = tmp_path / "step-cost"
    assert suite_command.main(["step-cost", "--smoke", "--out", str(out)]) == 0
    record = json.loads((out / "report.json").read_text())
    (table,) = record["report"]["tables"]
    assert table["title"].startswith("mlp: ") and len(table["rows"]) >= 7
    assert "psgd.Kron (whitening, update probability 0.1) took mlp " in record["report"]["finding"]
    assert (out / "ratios-mlp.svg").exists()


def test_the_claims_table_links_a_suites_trimmed_runs(toy_registered, tmp_path):
    results = tmp_path / "results"
    write_toy_report(results)
    write_toy_report(results, "full", "full-partial-t32")
    lines = suite_command.claims_table(results).splitlines()[2:]  # under the header
    rows = {row.split(" | ")[1]: row for row in lines}
    toy = rows["`toy`"].split(" | ")
    assert toy[2].startswith("**") and "benchmarks/results/toy/quick/report.md" in toy[2]
    assert toy[3] == "not run"  # a trimmed run of the full plan is not its verdict
    assert toy[4] == "[full-partial-t32](benchmarks/results/toy/full-partial-t32/report.md) |"
    assert rows["`step-cost`"].endswith(" | none |")


def test_the_tabs_claims_table_keeps_a_claim_with_bars_in_one_cell():
    """The fitting claim says |H|⁻¹: unescaped, its bars split the row and push the full
    mode's verdict out of its column (the Benchmarks tab showed it under "partial runs")."""
    pytest.importorskip("gradio")
    from playground.benchmarks_tab import claims_markdown

    fitting = SUITES["fitting"]
    assert "|" in fitting.claim
    reports = {"quick": {"verdict": "not yet run at full scale"}, "full": {"verdict": "x"}}
    suites = [{"title": fitting.title, "claim": fitting.claim, "reports": reports,
               "partial_reports": [{"name": "full-partial-a"}]}]  # fmt: skip
    header, _, row = claims_markdown(suites).splitlines()
    cells = [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]
    assert len(cells) == len(header.split("|")) - 2 == 5
    assert cells[1] == fitting.claim.replace("|", "\\|")
    assert cells[2:] == ["not yet run at full scale", "x", "`full-partial-a`"]


def test_readme_states_the_committed_verdicts():
    """README's claim → verdict table is `benchmarks/suite.py --claims` of the committed
    reports: commit a report, paste the new table."""
    from pathlib import Path

    from server.suites.results import results_folder

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert suite_command.claims_table(results_folder(None)) in readme


def test_a_runs_status_is_its_final_status_event_not_the_job_row_read_just_before_it():
    """The store updates a job's row just after storing its final event: a reader that saw
    the event could still read "running" (a clean-clone CI run did, for one CIFAR job)."""
    job = {"optimizer_label": "adam", "seed": 3, "status": "running", "spec": {}}
    events = [{"type": "metrics", "step": 1}, {"type": "status", "step": 1, "status": "diverged"}]
    assert suite_command._run("t", job, events).status == "diverged"
    assert suite_command._run("t", job, []).status == "running"  # no final event: the row's


def test_the_report_names_the_commit_the_run_started_from(tmp_path, monkeypatch):
    """A long run's jobs keep their code; a later commit or an edit must not relabel it."""
    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.strip()

    git("init", "-q")
    (repo / "f.txt").write_text("a\n")
    git("add", "f.txt")
    git("commit", "-qm", "one")
    first = git("rev-parse", "--short", "HEAD")
    monkeypatch.setattr(suite_report, "ROOT", repo)
    assert suite_report.machine()["git_commit"] == first
    # a committed report rewritten (a re-analysis) is output, not a change to the code
    results = repo / suite_report.RESULTS_PATHSPEC
    results.mkdir(parents=True)
    (results / "report.md").write_text("old\n")
    git("add", ".")
    git("commit", "-qm", "a report")
    first = git("rev-parse", "--short", "HEAD")
    (results / "report.md").write_text("re-analysed\n")
    assert suite_report.machine()["git_commit"] == first
    (repo / "f.txt").write_text("b\n")
    assert suite_report.machine()["git_commit"] == f"{first} + uncommitted changes"
    at_start = suite_report.machine()
    git("commit", "-qam", "two")
    out = tmp_path / "toy"
    suite_report.write_report(
        TOY,
        "quick",
        Report("not reproduced", "f", []),
        out,
        started=0.0,
        command="c",
        where=at_start,
    )
    record = json.loads((out / "report.json").read_text())
    assert record["machine"]["git_commit"] == f"{first} + uncommitted changes"


# ------------------------------------------------------------------------ kept runs
def test_kept_runs_read_back_as_the_runs_with_the_analysed_events(tmp_path):
    suite = Suite("kept", "k", "c", "d", plan=landscape_plan, analyse=final_losses,
                  analysed_events=frozenset({"eval", "spectrum"}),
                  analysed_fields={"spectrum": frozenset({"step", "fit_error"})})  # fmt: skip
    events = [{"type": "started"}, {"type": "metrics", "step": 1}, {"type": "trajectory"},
              {"type": "eval", "step": 1, "accuracy": 0.5},
              {"type": "spectrum", "step": 1, "fit_error": 0.2, "spectra": {"p0": [1.0]}},
              {"type": "status", "status": "completed"}]  # fmt: skip
    run = Run("c", "sgd", 4, "completed", {"steps": 3}, events)
    suite_report.write_runs(suite, "quick", [run], tmp_path / "runs.json.gz", "Trimmed plan: x.")
    header, (back,) = suite_report.read_runs(tmp_path)
    assert header == {"suite": "kept", "mode": "quick", "trimmed": "Trimmed plan: x."}
    assert [e["type"] for e in back.events] == ["started", "eval", "spectrum", "status"]
    # a type with fields named keeps those only; one without keeps every field
    assert back.events[1:3] == [events[3], {"type": "spectrum", "step": 1, "fit_error": 0.2}]
    assert (back.comparison, back.label, back.seed, back.spec) == ("c", "sgd", 4, {"steps": 3})
    first = (tmp_path / "runs.json.gz").read_bytes()
    suite_report.write_runs(suite, "quick", [run], tmp_path / "runs.json.gz", "Trimmed plan: x.")
    assert (tmp_path / "runs.json.gz").read_bytes() == first  # no time stamp: same bytes
    with pytest.raises(ValueError, match="keeps no runs"):
        suite_report.read_runs(tmp_path / "elsewhere")
    (tmp_path / "runs.json.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="cannot be read"):
        suite_report.read_runs(tmp_path)


def test_kept_runs_are_analysed_again_to_the_same_report(toy_registered, tmp_path, clean_env):
    first, again = tmp_path / "first", tmp_path / "again"
    assert suite_command.main(["toy", "--smoke", "--out", str(first)]) == 0
    assert suite_command.main(["toy", "--from", str(first), "--out", str(again)]) == 0
    made, analysed = (json.loads((f / "report.json").read_text()) for f in (first, again))
    assert analysed["report"] == made["report"] and analysed["mode"] == "smoke"
    (source,) = analysed["sources"]
    assert source["report"] == "first" and source["command"] == made["command"]
    assert source["machine"] == made["machine"] and source["date"] == made["date"]
    markdown = (again / "report.md").read_text()
    assert "from the runs kept with 1 report(s):" in markdown
    assert f"- first: run {made['date']} in " in markdown and made["command"] in markdown
    # a report of kept runs keeps them too, and names the first runs, not itself
    third = tmp_path / "third"
    assert suite_command.main(["toy", "--from", str(again), "--out", str(third)]) == 0
    record = json.loads((third / "report.json").read_text())
    assert [s["report"] for s in record["sources"]] == ["first"]


def test_kept_runs_of_several_reports_are_pooled_into_one_partial_report(
    toy_registered, tmp_path, clean_env
):
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder, seeds in zip(folders, ("0-0", "1-2"), strict=True):
        argv = ["toy", "--full", "--entries", "1", "--seeds", seeds, "--cap", "4"]
        assert suite_command.main([*argv, "--out", str(folder)]) == 0
    pooled = tmp_path / "pooled"
    argv = ["toy", "--from", str(folders[0]), "--from", str(folders[1]), "--out", str(pooled)]
    assert suite_command.main(argv) == 0
    record = json.loads((pooled / "report.json").read_text())
    (row,) = record["report"]["tables"][0]["rows"]
    assert row[0] == "adam" and row[2] == "3"  # seeds 0, 1 and 2
    assert record["report"]["verdict"] == "not yet run at full scale"
    assert record["report"]["notes"][0] == (
        "Runs pooled from 2 reports: a (entries 1 of each; seeds 0–0; a cap of 4 steps a job); "
        "b (entries 1 of each; seeds 1–2; a cap of 4 steps a job). "
        "This is part of the mode's plan, not its result."
    )
    assert [s["report"] for s in record["sources"]] == ["a", "b"]


def test_parts_that_together_are_the_whole_plan_pool_into_the_modes_result(
    monkeypatch, tmp_path, clean_env
):
    judged = dataclasses.replace(  # a toy whose analysis gives a verdict when asked for one
        TOY,
        analyse=lambda runs, mode: dataclasses.replace(
            final_losses(runs, mode), verdict="reproduced"
        ),
    )
    monkeypatch.setitem(SUITES, "toy", judged)

    def part(name, *trim):
        assert suite_command.main(["toy", "--full", *trim, "--out", str(tmp_path / name)]) == 0
        return ["--from", str(tmp_path / name)]

    def pooled(*sources):
        out = tmp_path / "pooled"
        assert suite_command.main(["toy", *[a for s in sources for a in s], "--out", str(out)]) == 0
        return json.loads((out / "report.json").read_text()), suite_report.read_runs(out)[0]

    sgd, adam_1 = part("sgd", "--entries", "0"), part("adam-1", "--entries", "1", "--seeds", "1-1")
    record, header = pooled(sgd, adam_1)  # adam's seed 0 is missing
    assert record["report"]["verdict"] == "not yet run at full scale" and header["trimmed"]
    adam_0 = part("adam-0", "--entries", "1", "--seeds", "0-0")
    record, header = pooled(sgd, adam_1, adam_0)
    assert record["report"]["verdict"] == "reproduced" and header["trimmed"] == ""
    assert record["report"]["notes"][0] == (
        "Runs pooled from 3 reports: sgd (entries 0 of each); adam-1 (entries 1 of each; seeds "
        "1–1); adam-0 (entries 1 of each; seeds 0–0). Together they are every job of the "
        "mode's plan, each run to its end once."
    )
    assert [s["report"] for s in record["sources"]] == ["sgd", "adam-1", "adam-0"]
    # a run beyond the plan (another seed) or a job cut short: not the plan's result
    extra = part("extra", "--entries", "1", "--seeds", "2-2")
    assert pooled(sgd, adam_1, adam_0, extra)[0]["report"]["verdict"] == "not yet run at full scale"
    header, runs = suite_report.read_runs(tmp_path / "adam-0")
    cut = [dataclasses.replace(runs[0], status="cancelled")]
    suite_report.write_runs(
        judged, "full", cut, tmp_path / "adam-0" / "runs.json.gz", header["trimmed"]
    )
    assert pooled(sgd, adam_1, adam_0)[0]["report"]["verdict"] == "not yet run at full scale"


def test_a_run_cut_short_is_counted_by_its_re_run_and_the_report_says_so(
    toy_registered, tmp_path, clean_env, capsys
):
    def run(name, seeds):
        argv = ["toy", "--full", "--entries", "1", "--seeds", seeds, "--cap", "4"]
        assert suite_command.main([*argv, "--out", str(tmp_path / name)]) == 0
        return tmp_path / name

    first, rerun = run("first", "0-1"), run("rerun", "1-1")
    header, runs = suite_report.read_runs(first)
    # seed 1 as a deadline leaves it: cancelled, with a loss that must not be counted
    cancelled = {"type": "status", "status": "cancelled", "summary": {"final_loss": 1e6}}
    cut = [
        dataclasses.replace(r, status="cancelled", events=[*r.events[:-1], cancelled])
        if r.seed == 1
        else r
        for r in runs
    ]
    suite_report.write_runs(TOY, "full", cut, first / "runs.json.gz", header["trimmed"])
    pooled = tmp_path / "pooled"
    argv = ["toy", "--from", str(first), "--from", str(rerun), "--out", str(pooled)]
    assert suite_command.main(argv) == 0
    _, counted = suite_report.read_runs(pooled)
    (rerun_run,) = suite_report.read_runs(rerun)[1]
    assert [(r.seed, r.status) for r in counted] == [(0, "succeeded"), (1, "succeeded")]
    assert counted[1].events == rerun_run.events
    record = json.loads((pooled / "report.json").read_text())
    (row,) = record["report"]["tables"][0]["rows"]
    mean = (runs[0].summary["final_loss"] + rerun_run.summary["final_loss"]) / 2
    assert row == ["adam", f"{mean:.6g}", "2"]
    assert record["report"]["notes"][0].startswith("Runs pooled from 2 reports: ")
    assert (
        "Runs kept more than once and cut short: adam in 'rosenbrock', seed 1 "
        "(cancelled in first; re-run in rerun). This is part of" in record["report"]["notes"][0]
    )
    only_cut = tmp_path / "only-cut"
    only_cut.mkdir()
    (only_cut / "report.json").write_text((first / "report.json").read_text())
    suite_report.write_runs(TOY, "full", cut[1:], only_cut / "runs.json.gz", header["trimmed"])
    # cut short again (a re-run that a deadline cut too): still a hole, not an error
    argv = ["toy", "--from", str(first), "--from", str(only_cut), "--out", str(tmp_path / "h")]
    assert suite_command.main(argv) == 0
    assert [(r.seed, r.status) for r in suite_report.read_runs(tmp_path / "h")[1]] == [
        (0, "succeeded"),
        (1, "cancelled"),
    ]
    note = json.loads((tmp_path / "h" / "report.json").read_text())["report"]["notes"][0]
    assert (
        "Runs kept more than once and cut short: adam in 'rosenbrock', seed 1 (cancelled in "
        "first, cancelled in only-cut; in every copy: left out)." in note
    )
    for sources, message in (
        ((rerun, rerun), "seed 1, is kept twice: in rerun (succeeded), rerun (succeeded); "
                         "it ran to its end more than once"),
        ((rerun, first, rerun), "seed 1, is kept 3 times"),
    ):  # fmt: skip
        argv = [arg for source in sources for arg in ("--from", str(source))]
        with pytest.raises(SystemExit):
            suite_command.main(["toy", *argv, "--out", str(tmp_path / "out")])
        assert message in capsys.readouterr().err, sources


def test_pooling_knows_an_entry_by_its_settings_not_its_label(toy_registered, tmp_path, clean_env):
    def run(label, lr, seed, loss):
        optimizer = {"name": "psgd-lra", "lr": lr}
        status = {"type": "status", "status": "succeeded", "summary": {"final_loss": loss}}
        return Run("c", label, seed, "succeeded", {"optimizer": optimizer, "seed": seed}, [status])

    # the same trimmed plan position gives "psgd-lra" to lr 0.01 in one report and to
    # lr 0.02 in the other, where lr 0.01 is "psgd-lra#2"
    reports = {
        "a": [run("psgd-lra", 0.01, 0, 1.0)],
        "b": [run("psgd-lra", 0.02, 0, 5.0), run("psgd-lra#2", 0.01, 1, 3.0)],
    }
    for name, runs in reports.items():
        (tmp_path / name).mkdir()
        (tmp_path / name / "report.json").write_text(json.dumps({"command": name}))
        suite_report.write_runs(TOY, "full", runs, tmp_path / name / "runs.json.gz", "")
    pooled = tmp_path / "pooled"
    argv = ["toy", "--from", str(tmp_path / "a"), "--from", str(tmp_path / "b")]
    assert suite_command.main([*argv, "--out", str(pooled)]) == 0
    _, counted = suite_report.read_runs(pooled)
    assert [(r.label, r.spec["optimizer"]["lr"], r.seed) for r in counted] == [
        ("psgd-lra", 0.01, 0),
        ("psgd-lra#2", 0.02, 0),
        ("psgd-lra", 0.01, 1),
    ]
    rows = json.loads((pooled / "report.json").read_text())["report"]["tables"][0]["rows"]
    assert rows == [["psgd-lra", "2", "2"], ["psgd-lra#2", "5", "1"]]


def test_the_api_says_where_a_pooled_reports_runs_were_made(make_client, toy_registered, tmp_path):
    results = tmp_path / "results"
    write_toy_report(results, "full", "full-partial-pooled")
    path = results / "toy" / "full-partial-pooled" / "report.json"
    record = json.loads(path.read_text())
    record["machine"] = {"cpus": 2, "cuda": None}  # where it was analysed
    gpu, cpu = {"cpus": 16, "cuda": "NVIDIA H200"}, {"cpus": 2, "cuda": None}
    record["sources"] = [
        {"report": r, "machine": m} for r, m in (("a", gpu), ("b", cpu), ("c", gpu))
    ]
    path.write_text(json.dumps(record))
    client = make_client(suite_results_dir=results)
    (toy,) = [s for s in client.get("/api/suites").json() if s["name"] == "toy"]
    assert toy["partial_reports"][0]["device"] == "NVIDIA H200; 2 CPUs"


def test_pooling_refuses_runs_that_do_not_belong_together(
    toy_registered, tmp_path, clean_env, capsys
):
    def run(name, *flags):
        assert suite_command.main(["toy", *flags, "--out", str(tmp_path / name)]) == 0
        return str(tmp_path / name)

    capped = run("capped", "--full", "--seeds", "1", "--cap", "4")
    other_cap = run("other-cap", "--full", "--seeds", "2-2", "--cap", "3")
    smoke = run("smoke", "--smoke", "--seeds", "1-1")
    other_suite = tmp_path / "other-suite"
    other_suite.mkdir()
    xor_named = dataclasses.replace(TOY, name="xor")
    suite_report.write_runs(xor_named, "full", [], other_suite / "runs.json.gz", "")
    no_record = tmp_path / "no-record"
    no_record.mkdir()
    suite_report.write_runs(TOY, "full", [], no_record / "runs.json.gz", "")
    (no_record / "report.json").write_text("[]")
    out = ["--out", str(tmp_path / "out")]
    for argv, message in (
        (["--from", capped, "--from", capped, *out], "seed 0, is kept twice"),
        (["--from", capped, "--from", other_cap, *out], "its runs differ in steps; pool only"),
        (
            ["--from", capped, "--from", smoke, *out],
            "the reports are of different modes (full, smoke)",
        ),
        (["--from", str(other_suite), *out], "keeps runs of 'xor', not 'toy'"),
        (["--from", str(tmp_path), *out], "keeps no runs (no runs.json.gz)"),
        (["--from", str(no_record), *out], "report.json is not a report's record"),
        (["--from", capped], "--out: name the folder of the new report"),
        (["--from", capped, "--jobs", "2", *out], "--jobs: runs nothing with --from"),
        (["--from", capped, "--full", *out], "--full: runs nothing with --from"),
    ):
        with pytest.raises(SystemExit):
            suite_command.main(["toy", *argv])
        assert message in capsys.readouterr().err, argv
    with pytest.raises(SystemExit):
        suite_command.main(["step-cost", "--from", capped, *out])
    assert "step-cost measures; its reports keep no runs" in capsys.readouterr().err
