"""Suite 3 (CIFAR-10): its plans, its analysis on hand-made runs, and a smoke run end to end
on the real subset archive (skipped without it, as tests/test_tasks_cifar.py is)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from server.optimizers import TASK_PRESETS
from server.settings import Settings
from server.suites import SUITE_MODULES, suite_named
from server.suites.base import Run
from server.suites.cifar import OPTIMIZERS, SWEEP_SPLIT, analyse, plan
from tests.benchmark_scripts import (
    BENCHMARKS,
    assert_kept_runs_give_the_same_report,
    load_benchmark,
)
from tests.test_tasks_cifar import ARCHIVE


def test_registered_in_order() -> None:
    assert suite_named("cifar").name == "cifar"
    assert SUITE_MODULES.index("cifar") < SUITE_MODULES.index("flatness")


@pytest.mark.parametrize("mode", ["smoke", "quick", "full"])
def test_every_mode_compares_the_five_optimizers_with_their_presets(mode: Any) -> None:
    [(title, spec)] = plan(mode)
    assert "CIFAR-10" in title
    assert [o.name for o in spec.optimizers] == list(OPTIMIZERS)
    assert spec.task.name == "cifar10" and spec.task.evaluate_test
    assert spec.task.validation_size > 0  # the images the presets were selected on
    assert 0 not in spec.seeds  # the sweep's trials ran seed 0: these are fresh
    sgd = spec.optimizers[OPTIMIZERS.index("sgd")]
    assert sgd.momentum > 0  # the preset's, not the schema's default 0


def test_quick_trains_on_the_images_the_presets_were_selected_on() -> None:
    """The sweep spec that chose the presets and the quick plan share the split: its
    trials and these jobs train on the same images."""
    [(_, spec)] = plan("quick")
    sweep = json.loads((BENCHMARKS / "cifar_presets_sweep.json").read_text())
    for key, value in SWEEP_SPLIT.items():
        assert getattr(spec.task, key) == value == sweep["task"][key]
    assert spec.task.model == "small_cnn" == sweep["task"].get("model", "small_cnn")
    assert len(spec.seeds) >= 3


SWEEPS = BENCHMARKS / "results" / "cifar" / "presets-sweep"


def test_the_presets_are_the_best_trials_of_the_recorded_sweeps() -> None:
    """The cifar10 presets of the optimizers swept are their best validation trials over
    the committed sweeps (benchmarks/results/cifar/presets-sweep), fixed values included."""
    best: dict[str, tuple[float, dict[str, Any]]] = {}
    for path in sorted(SWEEPS.rglob("sweep.json")):
        sweep = json.loads(path.read_text())
        assert sweep["status"] == "succeeded" and not sweep["spec"]["task"]["evaluate_test"]
        for entry in sweep["optimizers"]:
            value, params = entry["best"]["value"], {**entry["fixed"], **entry["best"]["params"]}
            if entry["name"] not in best or value > best[entry["name"]][0]:
                best[entry["name"]] = (value, params)
    assert set(best) == set(TASK_PRESETS["cifar10"])  # every preset was swept
    for name, (_, params) in best.items():
        preset = TASK_PRESETS["cifar10"][name]
        assert set(preset) == set(params), name
        for key, value in params.items():
            assert preset[key] == pytest.approx(value, rel=5e-3), (name, key)


def test_full_is_resnet18_on_the_whole_data_set_with_more_seeds() -> None:
    [(_, spec)] = plan("full")
    assert spec.task.model == "resnet18"
    assert (spec.task.train_size, spec.task.test_size) == (50000, 10000)
    assert len(spec.seeds) >= 5 and spec.epochs >= 30


def test_smoke_is_tiny() -> None:
    [(_, spec)] = plan("smoke")
    assert spec.task.train_size <= 300 and len(spec.seeds) == 1 and spec.epochs <= 2


def test_quick_plan_fits_a_server_with_default_settings() -> None:
    settings = Settings()
    [(_, spec)] = plan("quick")
    steps = spec.epochs * -(-spec.task.training_images // spec.task.batch_size)
    assert steps <= settings.max_steps
    assert len(spec.optimizers) * len(spec.seeds) <= settings.max_queued


def test_a_default_server_starts_the_quick_plan(make_client: Any) -> None:
    client = make_client()  # default limits, a fake executor: nothing is trained
    response = client.post("/api/suites/cifar/runs", json={"mode": "quick"})
    assert response.status_code == 201, response.text
    [comparison] = response.json()["comparisons"]
    assert len(comparison["job_ids"]) == len(OPTIMIZERS) * 3


# ------------------------------------------------------------------------------ analyse
def _run(
    label: str, seed: int, accuracies: list[float], status: str = "succeeded", **optimizer: Any
) -> Run:
    evals = [
        {
            "type": "eval",
            "step": 10 * (e + 1),
            "epoch": float(e + 1),
            "metrics": {"test_accuracy": a},
        }
        for e, a in enumerate(accuracies)
    ]
    summary = {
        "steps": 10 * len(accuracies),
        "seconds": 10.0,
        "final_eval": {"test_accuracy": accuracies[-1]} if accuracies else {},
        "overhead": {
            "step_seconds": 5.0,
            "evaluations": {"count": 2, "seconds": 2.0},
            "snapshots": {"count": 3, "seconds": 1.0},
        },
    }
    spec = {"epochs": len(accuracies), "optimizer": {"name": label, **optimizer}}
    status_event = {"type": "status", "step": 20, "status": status, "summary": summary}
    return Run("CIFAR-10", label, seed, status, spec, [*evals, status_event])


def _runs(finals: dict[str, list[float]]) -> list[Run]:
    return [
        _run(label, seed, [acc - 0.1, acc], lr=0.5)
        for label, accs in finals.items()
        for seed, acc in enumerate(accs, start=1)
    ]


def test_analyse_gives_means_intervals_and_seconds_per_epoch() -> None:
    runs = _runs({"psgd-kron": [0.5, 0.6, 0.7], "sgd": [0.55, 0.56, 0.57]})
    report = analyse(runs, "quick")
    table = report.tables[0]
    kron, sgd = table.rows
    # mean 60 %, sd 10 %, t(0.975, 2) = 4.3027: ± 24.84
    assert kron[0] == "psgd-kron" and kron[3] == "60.0 [35.2, 84.8]"
    assert sgd[3] == "56.0 [53.5, 58.5]"
    assert kron[1] == "lr=0.5" and kron[2] == "3 succeeded"
    # (10 s − 2 s of evaluations − 1 s of snapshots) / 2 epochs
    assert kron[4] == "3.5 [3.5, 3.5]"
    assert report.verdict == "not yet run at full scale"
    assert "psgd-kron 60.0 %" in report.finding and "sgd 56.0 %" in report.finding
    [pair] = report.tables[1].rows
    assert pair[:2] == ["psgd-kron vs sgd", "no"]
    assert "no difference beyond the noise" in pair[2]


def test_the_figure_is_mean_test_accuracy_per_epoch_with_its_band() -> None:
    report = analyse(_runs({"adamw": [0.5, 0.6, 0.7]}), "quick")
    [series] = report.figures[0].series
    assert series.x == [1.0, 2.0]
    assert series.y == pytest.approx([50.0, 60.0])
    assert series.low is not None and series.high is not None
    assert series.low[1] == pytest.approx(35.1586, abs=1e-3)
    assert series.high[1] == pytest.approx(84.8414, abs=1e-3)


def test_full_mode_reproduced_only_when_psgd_beats_both_baselines_beyond_the_noise() -> None:
    ahead = {"psgd-kron": [0.80, 0.81, 0.82], "sgd": [0.55, 0.56, 0.57], "adamw": [0.6, 0.61, 0.6]}
    report = analyse(_runs(ahead), "full")
    assert report.verdict == "reproduced"
    assert "PSGD ahead of both baselines beyond the noise: psgd-kron" in report.finding
    level = {**ahead, "adamw": [0.80, 0.82, 0.81]}
    assert analyse(_runs(level), "full").verdict == "not reproduced"
    behind = {**ahead, "psgd-kron": [0.40, 0.41, 0.42]}
    assert analyse(_runs(behind), "full").verdict == "not reproduced"


def test_failed_runs_are_counted_but_not_averaged() -> None:
    runs = [*_runs({"sgd": [0.5, 0.7]}), _run("sgd", 9, [0.1, 0.99], status="failed")]
    row = analyse(runs, "quick").tables[0].rows[0]
    assert row[2] == "1 failed, 2 succeeded"
    assert row[3].startswith("60.0 [")


# ------------------------------------------------------------------------------ smoke
def test_smoke_run_end_to_end_writes_the_report(tmp_path: Path) -> None:
    if not ARCHIVE.exists():
        pytest.skip(f"CIFAR-10 subset not found at {ARCHIVE} (set PSGD_PLAYGROUND_CIFAR)")
    suite = load_benchmark("suite")
    assert suite.main(["cifar", "--smoke", "--out", str(tmp_path), "--data", str(ARCHIVE)]) == 0
    record = json.loads((tmp_path / "report.json").read_text())
    assert record["suite"] == "cifar" and record["mode"] == "smoke"
    report = record["report"]
    assert report["verdict"] == "not yet run at full scale"
    rows = report["tables"][0]["rows"]
    assert [row[0] for row in rows] == list(OPTIMIZERS)
    assert all(row[2] == "1 succeeded" and row[3].endswith("(n = 1)") for row in rows)
    assert (tmp_path / "test_accuracy.svg").read_text().startswith("<?xml")
    assert "CIFAR-10" in (tmp_path / "report.md").read_text()
    assert_kept_runs_give_the_same_report("cifar", tmp_path)
