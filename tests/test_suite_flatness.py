"""Suite 4 (flatness): its plans, its analysis on hand-made runs, and a smoke run end to end
on the real subset archive (skipped without it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from server.suites import suite_named
from server.suites.base import Run
from server.suites.cifar import plan as cifar_plan
from server.suites.flatness import analyse, plan
from tests.benchmark_scripts import assert_kept_runs_give_the_same_report, load_benchmark
from tests.test_tasks_cifar import ARCHIVE


@pytest.mark.parametrize("mode", ["smoke", "quick", "full"])
def test_every_mode_measures_the_cifar_suites_runs(mode: Any) -> None:
    [(title, spec)] = plan(mode)
    [(_, cifar)] = cifar_plan(mode)
    assert suite_named("flatness").plan is plan and "Hessian" in title
    assert spec.task.flatness_probes > 0
    same = {"flatness_probes"}
    assert spec.task.model_dump(exclude=same) == cifar.task.model_dump(exclude=same)
    assert (spec.epochs, spec.seeds) == (cifar.epochs, cifar.seeds)
    names = [o.name for o in spec.optimizers]
    assert {"sgd", "psgd-kron"} <= set(names)
    for optimizer in spec.optimizers:  # the same presets as the CIFAR suite's
        assert optimizer in cifar.optimizers


def test_quick_has_three_seeds_and_both_baselines_and_full_all_five() -> None:
    [(_, quick)] = plan("quick")
    assert len(quick.seeds) >= 3
    assert [o.name for o in quick.optimizers] == ["psgd-kron", "sgd", "adamw"]
    [(_, full)] = plan("full")
    assert len(full.optimizers) == 5 and full.task.flatness_probes >= 30


def test_a_default_server_starts_the_quick_plan(make_client: Any) -> None:
    client = make_client()  # default limits, a fake executor: nothing is trained
    response = client.post("/api/suites/flatness/runs", json={"mode": "quick"})
    assert response.status_code == 201, response.text
    [comparison] = response.json()["comparisons"]
    assert len(comparison["job_ids"]) == 9


def _run(label: str, seed: int, top: list[float], trace: list[float]) -> Run:
    evals = [
        {
            "type": "eval",
            "step": 10 * (e + 1),
            "epoch": float(e + 1),
            "metrics": {"hessian_top_eigenvalue": t, "hessian_trace": s, "train_loss": 1.0},
        }
        for e, (t, s) in enumerate(zip(top, trace))
    ]
    overhead = {"evaluations": {"count": 2, "seconds": 3.0 + seed}}
    summary = {
        "steps": 20,
        "seconds": 4.0,
        "final_eval": evals[-1]["metrics"],
        "overhead": overhead,
    }
    spec = {"epochs": 2, "task": {"flatness_probes": 4}, "optimizer": {"name": label}}
    status = {"type": "status", "step": 20, "status": "succeeded", "summary": summary}
    return Run("flatness", label, seed, "succeeded", spec, [*evals, status])


def _runs(tops: dict[str, list[float]], traces: dict[str, list[float]]) -> list[Run]:
    return [
        _run(label, seed, [2 * top, top], [2 * trace, trace])
        for label in tops
        for seed, (top, trace) in enumerate(zip(tops[label], traces[label]), start=1)
    ]


def test_analyse_gives_the_final_eigenvalue_and_trace_with_intervals() -> None:
    runs = _runs(
        {"psgd-kron": [1.0, 2.0, 3.0], "sgd": [5.0, 5.0, 5.0]},
        {"psgd-kron": [10.0, 20.0, 30.0], "sgd": [50.0, 51.0, 52.0]},
    )
    report = analyse(runs, "quick")
    kron, sgd = report.tables[0].rows
    # mean 2, sd 1, t(0.975, 2) = 4.3027: ± 2.484
    assert kron[:5] == ["psgd-kron", "defaults", "3", "2.000 [-0.484, 4.484]", "20.0 [-4.8, 44.8]"]
    assert sgd[3] == "5.000 [5.000, 5.000]" and sgd[4] == "51.0 [48.5, 53.5]"
    assert kron[5] == "1.000 [1.000, 1.000]" and kron[6] == "–"  # no test accuracy given
    assert kron[7] == "2.5 [1.3, 3.7]"  # (3 + seed) s over 2 evaluations, seeds 1-3
    assert report.verdict == "not yet run at full scale"
    assert "psgd-kron 2.000" in report.finding and "sgd 51.0" in report.finding
    assert "4 power iterations and 4 Hutchinson" in report.notes[0]
    top, trace = report.figures
    assert top.series[0].x == [1.0, 2.0] and top.series[0].y == pytest.approx([4.0, 2.0])
    assert trace.series[0].y == pytest.approx([40.0, 20.0])


def test_full_verdict_needs_both_measures_lower_beyond_the_noise() -> None:
    tops = {"psgd-kron": [1.0, 1.1, 1.2], "sgd": [5.0, 5.1, 5.2], "adamw": [4.0, 4.1, 4.2]}
    traces = {"psgd-kron": [10.0, 11.0, 12.0], "sgd": [50.0, 51.0, 52.0], "adamw": [40, 41, 42]}
    report = analyse(_runs(tops, traces), "full")
    assert report.verdict == "reproduced"
    assert "flatter than both baselines on both measures, beyond the noise: psgd-kron" in (
        report.finding
    )
    sharp_trace = {**traces, "psgd-kron": [60.0, 61.0, 62.0]}
    assert analyse(_runs(tops, sharp_trace), "full").verdict == "not reproduced"


def test_smoke_run_end_to_end_measures_the_hessian(tmp_path: Path) -> None:
    if not ARCHIVE.exists():
        pytest.skip(f"CIFAR-10 subset not found at {ARCHIVE} (set PSGD_PLAYGROUND_CIFAR)")
    suite = load_benchmark("suite")
    args = ["flatness", "--smoke", "--out", str(tmp_path), "--data", str(ARCHIVE)]
    assert suite.main(args) == 0
    report = json.loads((tmp_path / "report.json").read_text())["report"]
    rows = report["tables"][0]["rows"]
    assert [row[0] for row in rows] == ["psgd-kron", "sgd"]
    assert all(row[2] == "1" for row in rows)  # one run each, measured
    for row in rows:
        assert math.isfinite(float(row[3].split(" ")[0]))
        assert math.isfinite(float(row[4].split(" ")[0]))
    assert (tmp_path / "top_eigenvalue.svg").exists() and (tmp_path / "trace.svg").exists()
    assert_kept_runs_give_the_same_report("flatness", tmp_path)
