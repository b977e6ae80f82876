"""The delayed-XOR suite (issue 16, suite 1): its plans have the issue's shape and fit a
default server, its analysis gives exactly the rates, intervals and steps of hand-made
runs with an honest verdict, and its smoke mode runs end to end."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from benchmark_scripts import assert_kept_runs_give_the_same_report, load_benchmark

from server.settings import Settings
from server.specs import expand
from server.suites import SUITES
from server.suites.base import Run
from server.suites.xor import ABLATIONS, PRESET, REFERENCE_LIKE, analyse, entry_name, plan

#: the xor preset is psgd-lra Newton with the 2022 reference's four choices (chosen by the
#: suite's T = 64 ablation, 2026-11-30)
MAIN = [
    "psgd-lra newton + all four (2022 reference)",
    "psgd-lra whiten + all four (2022 reference)",
    "psgd-kron newton + FD Hv after 1,000",
    "psgd-kron whiten",
    "adam",
    "sgd",
    "rmsprop",
]
#: the ablation group: the library's defaults, each choice alone, then all but each one (all
#: four together is the preset, already among the main entries)
ABLATED = (
    ["psgd-lra newton"]
    + [f"psgd-lra newton + {label}" for label in ABLATIONS]
    + [f"psgd-lra newton + all but {label}" for label in ABLATIONS]
)


def _names(spec: Any) -> list[str]:
    return [entry_name(o.model_dump()) for o in spec.optimizers]


def test_the_suite_is_registered() -> None:
    assert SUITES["xor"].runs_jobs


def test_full_plan_has_the_issues_shape() -> None:
    comparisons = plan("full")
    lengths = [spec.task.sequence_length for _, spec in comparisons]
    assert lengths == [16, 32, 64, 112]
    for title, spec in comparisons:
        assert str(spec.task.sequence_length) in title
        assert len(spec.seeds) >= 10 and len(set(spec.seeds)) == len(spec.seeds)
        assert spec.steps == 100_000  # the paper's cap
        assert spec.stop_when_solved  # a solved run costs its steps to solve, not the cap
        expected = MAIN + (ABLATED if spec.task.sequence_length in (32, 64) else [])
        assert _names(spec) == expected
    # the ablations' positions are those the committed trimmed runs name (`--entries 7,11`)
    assert _names(comparisons[1][1])[7:12] == _names(comparisons[2][1])[7:12] == ABLATED[:5]
    entries = {entry_name(o.model_dump()): o for o in comparisons[2][1].optimizers}
    base = entries["psgd-lra newton"]
    assert (base.uv_init, base.uv_balance) == ("zero_v", "rotate")
    assert (base.step_normalizer, base.finite_difference_after) == ("lipschitz", None)
    random_uv = entries["psgd-lra newton + random UV"]
    assert (random_uv.uv_init, random_uv.uv_balance) == ("random", "rotate")
    assert entries["psgd-lra newton + norm balancing"].uv_balance == "norms"
    assert entries["psgd-lra newton + gradient-norm step"].step_normalizer == "gradient_norm"
    assert entries["psgd-lra newton + FD Hv after 1,000"].finite_difference_after == 1000
    no_fd = entries["psgd-lra newton + all but FD Hv after 1,000"]
    assert (no_fd.uv_init, no_fd.uv_balance, no_fd.step_normalizer) == (
        "random",
        "norms",
        "gradient_norm",
    )
    assert no_fd.finite_difference_after is None
    no_random = entries["psgd-lra newton + all but random UV"]
    assert (no_random.uv_init, no_random.finite_difference_after) == ("zero_v", 1000)
    preset = entries[PRESET]
    assert preset.fitting == "newton" and preset.preconditioner_init_scale == 1.0
    assert {k: getattr(preset, k) for k in REFERENCE_LIKE} == REFERENCE_LIKE


def test_quick_plan_fits_a_default_server() -> None:
    settings = Settings()
    comparisons = plan("quick")
    jobs = sum(len(expand(spec)) for _, spec in comparisons)
    assert jobs <= settings.max_queued
    for _, spec in comparisons:
        assert len(spec.seeds) >= 5
        assert spec.steps is not None and spec.steps <= settings.max_steps
        assert _names(spec) == MAIN


def test_a_default_server_starts_the_quick_plan(make_client: Any) -> None:
    client = make_client()  # default limits, a fake executor: nothing is trained
    response = client.post("/api/suites/xor/runs", json={"mode": "quick"})
    assert response.status_code == 201, response.text
    (comparison,) = response.json()["comparisons"]
    assert comparison["title"] == "Delayed XOR, T = 16" and len(comparison["job_ids"]) == 35


def test_smoke_plan_is_the_quick_plan_cut_to_seconds() -> None:
    smoke, quick = plan("smoke"), plan("quick")
    assert [t for t, _ in smoke] == [t for t, _ in quick]
    for _, spec in smoke:
        assert len(spec.seeds) == 1 and spec.steps is not None and spec.steps <= 20
        assert _names(spec) == MAIN


# ------------------------------------------------------------------------ analysis
def _run(length: int, optimizer: dict[str, Any], seed: int, solved: int | None, **kw: Any) -> Run:
    status = kw.get("status", "succeeded")
    summary: dict[str, Any] = {"steps": kw.get("cap", 1000), "solved_step": solved}
    if "accuracy" in kw:  # what the runner keeps at the end (runs stored before it: none)
        summary["final_loss"] = kw["final_loss"]
        summary["final_eval"] = {"accuracy": kw["accuracy"], "eval_loss": kw["final_loss"]}
    if solved is not None:  # Newton PSGD: a gradient and a Hessian-vector product a step
        newton = optimizer.get("fitting") == "newton"
        work = {"function_evaluations": solved, "gradient_evaluations": solved}
        summary["solved_work"] = {**work, "hessian_vector_products": solved if newton else 0}
        summary["solved_seconds"] = solved / 100
    return Run(
        comparison=f"Delayed XOR, T = {length}",
        label=optimizer["name"],
        seed=seed,
        status=status,
        spec={
            "task": {"name": "xor", "sequence_length": length},
            "steps": kw.get("cap", 1000),
            "optimizer": optimizer,
        },
        events=[{"type": "status", "status": status, "summary": summary}],
    )


#: psgd-lra Newton with the library's defaults, and the xor preset (all four choices)
BASE = {"name": "psgd-lra", "fitting": "newton"}
LRA = {**BASE, **REFERENCE_LIKE}


def _many(length: int, optimizer: dict[str, Any], solved: list[int | None]) -> list[Run]:
    return [_run(length, optimizer, seed, step) for seed, step in enumerate(solved)]


def test_analyse_gives_rates_intervals_and_censored_steps() -> None:
    runs = _many(16, LRA, [400, 100, None, 300]) + _many(16, {"name": "adam"}, [None] * 4)
    runs.append(_run(16, {"name": "adam"}, 9, None, status="failed"))
    report = analyse(runs, "quick")
    assert report.verdict == "not yet run at full scale"
    table, cost, per_seed, _ = report.tables
    rows = {row[0]: row for row in table.rows}
    # 3/4: Wilson 95 % = [0.3006, 0.9544]; steps 100, 300, 400, censored: median 350
    assert rows[PRESET][1] == "3/4 = 75% [30%, 95%]"
    assert rows[PRESET][2] == "350 [IQR 250–beyond the cap]"
    assert rows[PRESET][3] == "100–400"
    assert rows["adam"][1] == "0/4 = 0% [0%, 49%]"
    assert rows["adam"][2] == "> cap (0/4 solved)"
    assert rows["adam"][4] == "1"  # the failed run is left out, and counted
    # against the preset: P(0 of 3 solves on adam's side) = 4/56, as likely as 3 of 3
    assert table.columns[5] == "solved vs the preset: Fisher exact p (two-sided)"
    assert (rows[PRESET][5], rows["adam"][5]) == ("–", "p = 0.14")
    # paired on seeds 0–3 (adam's failed seed 9 is not counted): 3 solved by the preset only
    assert table.columns[6] == (
        "same seeds, solved by it only / by the preset only: McNemar exact p"
    )
    assert (rows[PRESET][6], rows["adam"][6]) == ("–", "0 / 3 of 4 seeds, p = 0.25")
    assert f"T = 16 (cap 1,000 steps): {PRESET} 3/4, adam 0/4" in report.finding
    (figure,) = report.figures  # one length: no solved-vs-T figure
    lra = next(s for s in figure.series if s.name == PRESET)
    assert lra.x == [0, 100, 100, 300, 300, 400, 400, 1000]
    assert lra.y == [0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 0.75]
    # the work and seconds of a solve, censored like the steps
    assert cost.title == "T = 16: what a solve cost, median [IQR] (unsolved runs censored)"
    assert cost.columns[1:] == [
        "solved",
        "function evaluations to solve",
        "gradient evaluations to solve",
        "Hessian-vector products to solve",
        "seconds to solve",
    ]
    assert cost.rows[0] == [PRESET, "3/4"] + ["350 [IQR 250–beyond the cap]"] * 3 + [
        "3.5 [IQR 2.5–beyond the cap]"
    ]
    assert cost.rows[1] == ["adam", "0/4"] + ["> cap (0/4 solved)"] * 4
    # each seed's outcome side by side: a solve's step, "–" unsolved, a status otherwise
    assert per_seed.title == "T = 16: steps to solve per seed (– = not solved within the cap)"
    assert per_seed.columns == ["seed", PRESET, "adam"]
    assert per_seed.rows == [
        ["0", "400", "–"],
        ["1", "100", "–"],
        ["2", "–", "–"],
        ["3", "300", "–"],
        ["9", "not run", "failed"],
    ]


def _claim_runs(preset: list[int | None], baseline: list[int | None]) -> list[Run]:
    runs = []
    for length in (16, 32, 64, 112):
        runs += _many(length, LRA, preset)
        for name in ("adam", "sgd", "rmsprop"):
            runs += _many(length, {"name": name}, baseline)
    return runs


def test_full_mode_reproduces_when_the_preset_is_separated_at_long_delays() -> None:
    report = analyse(_claim_runs([1000] * 10, [None] * 10), "full")
    assert report.verdict == "reproduced"
    assert report.figures[0].name == "solved-vs-length"
    lra = next(s for s in report.figures[0].series if s.name == PRESET)
    assert lra.x == [16, 32, 64, 112] and lra.y == [1.0] * 4
    assert lra.low == pytest.approx([0.7225] * 4, abs=1e-4)


def test_full_mode_does_not_reproduce_when_intervals_overlap() -> None:
    # 5/10 = [0.2366, 0.7634] overlaps 0/10 = [0, 0.2775]
    report = analyse(_claim_runs([1000] * 5 + [None] * 5, [None] * 10), "full")
    assert report.verdict == "not reproduced"
    assert "T = 64, 112" in report.finding


def test_full_mode_without_the_long_delays_settles_nothing() -> None:
    runs = [
        r for r in _claim_runs([1000] * 10, [None] * 10) if r.spec["task"]["sequence_length"] < 112
    ]
    assert analyse(runs, "full").verdict == "not yet run at full scale"


def test_quick_mode_never_claims_a_verdict() -> None:
    assert analyse(_claim_runs([1000] * 10, [None] * 10), "quick").verdict == (
        "not yet run at full scale"
    )


def test_the_best_ablation_is_every_one_tied_at_the_top_and_none_when_none_solved() -> None:
    tied = _many(64, {**BASE, "uv_init": "random"}, [None, 100])
    tied += _many(64, {**BASE, "uv_balance": "norms"}, [200, None])
    tied += _many(64, {**BASE, "step_normalizer": "gradient_norm"}, [None, None])
    assert analyse(tied, "full").finding.endswith(
        "Highest solved fraction: psgd-lra newton + random UV and psgd-lra newton + norm balancing."
    )
    unsolved = _many(64, {**BASE, "uv_init": "random"}, [None] * 5)
    unsolved += _many(64, {**BASE, "uv_balance": "norms"}, [None] * 5)
    finding = analyse(unsolved, "full").finding
    assert finding.endswith("None of them solved a seed.") and "Highest" not in finding


def test_a_diverged_run_counts_as_unsolved_and_says_so_per_seed() -> None:
    runs = [_run(64, LRA, 0, 500), _run(64, LRA, 1, None, status="diverged")]
    runs += [_run(64, {"name": "adam"}, 0, 200), _run(64, {"name": "adam"}, 1, 400)]
    report = analyse(runs, "full")
    table, cost, per_seed, _ = report.tables
    assert table.rows[0][1] == "1/2 = 50% [9%, 91%]"
    assert per_seed.rows == [["0", "500", "200"], ["1", "diverged", "400"]]
    # Adam makes no Hessian-vector products: its solves cost gradients only
    assert cost.rows[1][2:5] == ["300 [IQR 250–350]"] * 2 + ["0 [IQR 0–0]"]
    assert "adam 2/2" in report.finding


def test_unsolved_runs_say_how_far_from_chance_they_ended() -> None:
    """An unsolved run at chance and one leaving the plateau differ only here."""
    runs = [
        _run(64, LRA, 0, 500),
        _run(64, LRA, 1, None, final_loss=0.562, accuracy=0.7266),
        _run(64, LRA, 2, None, final_loss=0.693, accuracy=0.5039),
        _run(64, LRA, 3, None, final_loss=0.692, accuracy=0.5996),  # just under 60 %
        _run(64, LRA, 4, None, status="diverged"),  # counted unsolved, but not at the cap
    ]
    runs += [_run(64, {"name": "adam"}, seed, None) for seed in range(2)]  # nothing kept
    runs.append(_run(64, {"name": "sgd"}, 0, 300))
    *_, unsolved = analyse(runs, "full").tables
    assert unsolved.title == (
        "T = 64: where the unsolved runs stood at the cap "
        "(chance: batch loss ln 2 = 0.693, held-out accuracy 50%)"
    )
    assert unsolved.columns[1:] == [
        "reached the cap unsolved",
        "final training-batch loss: median [range]",
        "held-out accuracy: median [range]",
        "seeds at ≥ 60% held-out (leaving chance)",
    ]
    assert unsolved.rows == [
        [PRESET, "3/5", "0.692 [0.562–0.693]", "60% [50%–73%]", "1 (73%)"],
        ["adam", "2/2", "not recorded", "not recorded", "none"],
        ["sgd", "0/1", "–", "–", "–"],
    ]


def test_an_entry_whose_runs_were_all_cancelled_is_said_to_have_none_counted() -> None:
    runs = [_run(64, LRA, 0, 500), _run(64, {"name": "adam"}, 0, None, status="cancelled")]
    report = analyse(runs, "full")
    assert f"{PRESET} 1/1, adam none counted." in report.finding
    assert report.tables[0].rows[1][1] == "no counted runs"


def test_the_ablations_are_named_and_the_best_reported() -> None:
    runs = _many(64, BASE, [None] * 8 + [500, 700])
    runs += _many(64, {**BASE, "uv_init": "random"}, [None] * 4 + [100] * 6)
    runs += _many(64, {**BASE, "finite_difference_after": 1000}, [None] * 10)
    runs += _many(64, LRA, [None] * 9 + [42])
    report = analyse(runs, "full")
    assert report.finding.endswith(
        "Ablations at T = 64, cap 1,000 steps (solved, 95 % Wilson): "
        "psgd-lra newton + all four (2022 reference): 1/10 = 10% [2%, 40%]; "
        "psgd-lra newton: 2/10 = 20% [6%, 51%] (p = 1 against the preset; paired, solved by "
        "it only / by the preset only: 1 / 0 of 10 seeds, p = 1; steps on the seeds both "
        "solved: 16.67× [16.67–16.67] on 1 seed; fewer on 0, more on 1, p = 1); "
        "psgd-lra newton + random UV: 6/10 = 60% [31%, 83%] (p = 0.057 against the preset; "
        "paired, solved by it only / by the preset only: 5 / 0 of 10 seeds, p = 0.062; steps "
        "on the seeds both solved: 2.38× [2.38–2.38] on 1 seed; fewer on 0, more on 1, p = 1); "
        "psgd-lra newton + FD Hv after 1,000: 0/10 = 0% [0%, 28%] (p = 1 against the preset; "
        "paired, solved by it only / by the preset only: 0 / 1 of 10 seeds, p = 1; steps on "
        "the seeds both solved: no seed solved by both). "
        "Highest solved fraction: psgd-lra newton + random UV."
    )
    names = [row[0] for row in report.tables[0].rows]
    assert names == [
        "psgd-lra newton",
        "psgd-lra newton + random UV",
        "psgd-lra newton + FD Hv after 1,000",
        PRESET,
    ]


def test_a_run_of_ablations_alone_says_their_rates_and_cap() -> None:
    # a trimmed run (`--entries 7,8`) has no preset entry: the finding still gives the rates
    runs = _many(64, {**BASE, "uv_init": "random"}, [None] * 4 + [100])
    runs += _many(64, {**BASE, "uv_balance": "norms"}, [None] * 5)
    report = analyse(runs, "full")
    finding = report.finding
    assert "Solved: " not in finding and ": ." not in finding
    assert len(report.tables[0].columns) == 5  # no preset, nothing to test against
    assert (
        "Ablations at T = 64, cap 1,000 steps (solved, 95 % Wilson): psgd-lra newton + random "
        "UV: 1/5 = 20% [4%, 62%]; psgd-lra newton + norm balancing: 0/5 = 0% [0%, 43%]. "
        "Highest solved fraction: psgd-lra newton + random UV."
    ) in finding


def test_ablations_at_both_lengths_are_said_per_length() -> None:
    runs = _many(32, LRA, [300] * 9 + [None])
    runs += _many(32, {**LRA, "uv_init": "zero_v"}, [None] * 6 + [400] * 4)
    runs += _many(64, BASE, [None] * 10)
    finding = analyse(runs, "full").finding
    assert finding.startswith("Solved: T = 32 (cap 1,000 steps): " + PRESET + " 9/10.")
    assert (
        "Ablations at T = 32, cap 1,000 steps (solved, 95 % Wilson): "
        f"{PRESET}: 9/10 = 90% [60%, 98%]; "
        "psgd-lra newton + all but random UV: 4/10 = 40% [17%, 69%] "
        "(p = 0.057 against the preset; paired, solved by it only / by the preset only: "
        "1 / 6 of 10 seeds, p = 0.12; steps on the seeds both solved: 1.33× [1.33–1.33] "
        "on 3 seeds; fewer on 0, more on 3, p = 0.25). "
        f"Highest solved fraction: {PRESET}. "
        "Ablations at T = 64, cap 1,000 steps (solved, 95 % Wilson): "
        "psgd-lra newton: 0/10 = 0% [0%, 28%]."
    ) in finding


def test_the_paired_test_counts_seeds_one_side_solved_and_only_seeds_both_ran() -> None:
    # 7/10 against 3/10 is Fisher p = 0.18; seed by seed the 3 are among the 7, so only 4
    # seeds split them, all one way: p = 2/16
    runs = _many(64, LRA, [100] * 7 + [None] * 3)
    runs += _many(64, BASE, [100] * 3 + [None] * 7)
    runs.append(_run(64, BASE, 12, 100))  # a seed the preset did not run: not paired
    runs += [_run(64, BASE, 9, None)]  # seed 9 twice under one name: no single outcome
    runs += [_run(64, {**BASE, "uv_init": "random"}, seed, 100) for seed in (20, 21)]
    rows = {row[0]: row for row in analyse(runs, "full").tables[0].rows}
    assert rows["psgd-lra newton"][6] == "0 / 4 of 9 seeds, p = 0.12"
    assert rows["psgd-lra newton + random UV"][6] == "no seeds in common"


def test_the_paired_steps_compare_only_seeds_both_solved() -> None:
    # seeds 0–8 solved sooner than the preset, seed 9 by it alone, seed 10 at the same step
    # (a tie: counted in the ratios, for neither side in the sign test), seed 11 by neither
    runs = _many(64, LRA, [1000] * 9 + [None, 1000, None])
    mine = [700, 750, 800, 850, 900, 700, 750, 800, 850, 500, 1000, None]
    runs += _many(64, BASE, mine)
    table = analyse(runs, "full").tables[0]
    assert table.columns[7] == (
        "same seeds, solved by both: its steps ÷ the preset's, median [range]; "
        "fewer / more steps: sign test p"
    )
    rows = {row[0]: row for row in table.rows}
    assert rows[PRESET][5:] == ["–", "–", "–"]
    # ratios 0.70–0.90 and 1.0: median (0.80 + 0.80) / 2; 9 of 9 one way: 2 / 2⁹
    assert rows["psgd-lra newton"][7] == (
        "0.80× [0.70–1.00] on 10 seeds; fewer on 9, more on 0, p = 0.0039"
    )
    assert rows["psgd-lra newton"][6] == "1 / 0 of 12 seeds, p = 1"


def test_entries_sharing_a_name_but_not_their_settings_are_counted_apart() -> None:
    older = {**LRA, "lr": 0.02}  # a preset as it once was, pooled with today's
    runs = [
        _run(64, LRA, 0, 500),
        _run(64, LRA, 1, None),
        dataclasses.replace(_run(64, older, 0, None), label="psgd-lra#2"),
    ]
    rows = {row[0]: row[1] for row in analyse(runs, "full").tables[0].rows}
    assert rows == {
        f"{PRESET} (psgd-lra)": "1/2 = 50% [9%, 91%]",
        f"{PRESET} (psgd-lra#2)": "0/1 = 0% [0%, 79%]",
    }


def test_entry_names_follow_the_stored_spec() -> None:
    assert entry_name({"name": "adam", "lr": 1e-3}) == "adam"
    assert entry_name({"name": "psgd-kron", "fitting": "whiten"}) == "psgd-kron whiten"
    two = {**BASE, "uv_balance": "norms", "step_normalizer": "gradient_norm"}
    assert entry_name(two) == "psgd-lra newton + norm balancing + gradient-norm step"
    assert entry_name(LRA) == PRESET == "psgd-lra newton + all four (2022 reference)"
    three = {**LRA, "uv_balance": "rotate"}
    assert entry_name(three) == "psgd-lra newton + all but norm balancing"


# ---------------------------------------------------------------------------- smoke
def test_smoke_mode_runs_end_to_end(tmp_path: Path) -> None:
    suite_script = load_benchmark("suite")
    assert suite_script.main(["xor", "--smoke", "--out", str(tmp_path)]) == 0
    record = json.loads((tmp_path / "report.json").read_text())
    assert record["suite"] == "xor" and record["mode"] == "smoke"
    report = record["report"]
    assert report["verdict"] == "not yet run at full scale"
    table, _, per_seed, unsolved = report["tables"]
    assert [row[0] for row in table["rows"]] == MAIN
    assert per_seed["columns"] == ["seed", *MAIN] and len(per_seed["rows"]) == 1
    # 15 steps solve nothing: every run ends at the cap with its final loss and evaluation
    for row in unsolved["rows"]:
        assert row[1] == "1/1" and "recorded" not in row[2] + row[3], row
    assert all(row[1].endswith("]") and row[4] == "0" for row in table["rows"])
    assert (tmp_path / "cumulative-T16.svg").read_text().lstrip().startswith("<?xml")
    assert "Delayed XOR (smoke mode)" in (tmp_path / "report.md").read_text()
    assert_kept_runs_give_the_same_report("xor", tmp_path)
