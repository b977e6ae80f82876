"""`psgd-playground sweep`: flags and spec files, progress, results, usage errors.

The fast tests run the jobs on a thread (tests/thread_executor.py) in place of the worker
processes; the slow one runs a tiny sweep with the real local executor, as a user would.
"""

from __future__ import annotations

import contextlib
import csv
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from fake_executor import FakeExecutor
from thread_executor import ThreadExecutor

import server.api.app
from playground.cli import main
from playground.cli_sweep import run_sweep
from server.sweeps.spec import SweepSpec
from server.sweeps.store import SweepStore

TINY = ["--task", "rosenbrock", "--steps", "10", "--trials", "2", "--seeds", "2"]


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch, clean_env: None) -> None:
    monkeypatch.setattr(server.api.app, "make_executor", lambda settings: ThreadExecutor())


def test_sweep_from_flags_prints_progress_the_bests_and_the_reruns(
    in_process: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [*TINY, "--optimizer", "adam", "--optimizer", "sgd", "--tune", "lr"]
    code = main(["sweep", *argv, "--set", "sgd.momentum=0.9", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("trial adam #") == 2 and out.count("trial sgd #") == 2
    assert "best of 2 trials per optimizer (final loss, minimize):" in out
    assert "re-runs on seeds 1, 2 (final loss, mean with a 95 % interval):" in out
    sweep = json.loads((tmp_path / "sweep.json").read_text())
    assert sweep["status"] == "succeeded"
    assert sweep["spec"]["optimizers"][1]["momentum"] == 0.9  # --set: held fixed
    assert set(sweep["spec"]["optimizers"][1]["space"]) == {"lr"}
    for optimizer in sweep["optimizers"]:
        best = optimizer["best"]
        assert f"  {optimizer['name']}: {best['value']:.4g}  lr={best['params']['lr']:.4g}" in out
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert [(r["optimizer"], r["number"]) for r in rows] == [
        ("adam", "0"),
        ("adam", "1"),
        ("sgd", "0"),
        ("sgd", "1"),
    ]


def test_flags_override_the_spec_file(
    in_process: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "sweep.yaml"
    spec.write_text(
        "task: {name: rosenbrock}\n"
        "steps: 10\n"
        "trials: 5\n"
        "seeds: 0\n"
        "objective: {kind: best}\n"
        "optimizers:\n"
        "  - name: adam\n"
        "    space: {lr: {type: float, low: 0.001, high: 0.1, log: true}}\n"
    )
    code = main(["sweep", "--spec", str(spec), "--trials", "2", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "trial adam" not in out  # --quiet
    assert "best of 2 trials per optimizer (best, minimize):" in out
    assert "re-runs" not in out  # seeds: 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--optimizer", "adam", "--tune", "lr"], "no task: give --task NAME"),
        (
            ["--task", "rosenbrock", "--optimizer", "adam", "--tune", "foo"],
            "sweep spec: optimizers[0].tune.foo: no hyperparameter 'foo'",
        ),
        (
            ["--task", "rosenbrock", "--optimizer", "adam", "--tune", "sgd.lr"],
            "--tune sgd.lr: 'sgd' is not among the chosen optimizers",
        ),
        (["--task", "rosenbrock", "--tune", "lr"], "no optimizer: give --optimizer NAME"),
        (
            ["--task", "rosenbrock", "--optimizer", "adam", "--tune", "lr", "--objective", "bad"],
            "argument --objective: invalid choice: 'bad'",
        ),
        (
            ["--task", "rosenbrock", "--optimizer", "adam", "--tune", "lr", "--trials", "0"],
            "argument --trials: expected a positive integer",
        ),
    ],
)
def test_a_bad_sweep_is_one_line_naming_the_flag_or_field(
    in_process: None, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["sweep", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("psgd-playground: error: ") and message in err, err
    assert err.count("\n") == 1


@pytest.mark.slow
def test_a_tiny_sweep_runs_on_the_local_executor(
    clean_env: None, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setenv("PSGD_PLAYGROUND_CONCURRENCY", "1")
    code = main(["sweep", *TINY, "--seeds", "1", "--optimizer", "adam", "--tune", "lr"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("→ complete") == 2 and "re-runs on seeds 1 (" in out


def test_stopping_cancels_the_sweep(tmp_path: Path, clean_env: None) -> None:
    """What Ctrl-C does: the stop event cancels the sweep and its trials in flight."""
    executor = FakeExecutor()
    executor.pause()  # the first trial's job stays queued
    spec = {
        "task": {"name": "rosenbrock"},
        "steps": 10,
        "optimizers": [{"name": "adam", "tune": ["lr"]}],
    }
    stop = threading.Event()
    seen: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        seen.append(event["type"])
        if event["type"] == "trial_started":
            stop.set()

    sweep = run_sweep(spec, str(tmp_path), on_event, stop, executor)
    assert sweep["status"] == "cancelled" and seen[-1] == "status"
    assert [t["status"] for t in sweep["trials"]] == ["cancelled"]


def test_a_kept_store_says_which_sweeps_left_running_it_resumes(
    in_process: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    left = SweepSpec.model_validate(
        {
            "task": {"name": "rosenbrock"},
            "steps": 5,
            "trials": 1,
            "seeds": 0,
            "optimizers": [{"name": "adam", "space": {"lr": {"type": "choice", "values": [0.1]}}}],
        }
    )
    with contextlib.closing(SweepStore(tmp_path / "jobs.sqlite")) as store:
        left_id = store.create_sweep(left.model_dump(mode="json"))  # as a killed run left it
    argv = [*TINY, "--seeds", "0", "--optimizer", "adam", "--tune", "lr", "--quiet"]
    assert main(["sweep", *argv, "--data-dir", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert f"warning: resuming 1 sweep(s) left running in {tmp_path}: {left_id}" in err
