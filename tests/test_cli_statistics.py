"""`psgd-playground run` with several seeds: statistics under the table, work on the x axis."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from playground.cli import main

pytest.importorskip("plotly")


@pytest.mark.slow  # four jobs, each in a worker process that imports torch
def test_several_seeds_get_statistics_and_the_loss_plot_its_work_axis(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    argv = ["run", "--task", "quadratic", "--task-option", "dim=4", "--task-option", "noise=0.1"]
    argv += ["--optimizer", "adam", "--optimizer", "lbfgs", "--set", "adam.lr=0.1"]
    argv += ["--steps", "20", "--seeds", "2", "--target", "0.05", "--x-axis", "evaluations"]
    code = main([*argv, "--out", str(out), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    header = captured.out.splitlines()[0]
    columns = ["steps to target", "evals to target", "s to target"]
    assert re.split(r"\s{2,}", header)[6:9] == columns
    assert "over seeds: means with Student-t 95 % intervals" in captured.out
    block = captured.out.split("over seeds:", 1)[1].splitlines()
    lbfgs = next(line for line in block if line.startswith("lbfgs  final loss"))
    assert "reached target" in lbfgs and "to target: steps" in lbfgs and "evals" in lbfgs
    assert re.search(r"^(adam|lbfgs) (vs|has a)", captured.out, re.MULTILINE)
    html = (out / "loss.html").read_text()
    assert "gradient evaluations + Hessian-vector products" in html


@pytest.mark.slow  # a job in a worker process
def test_one_seed_prints_no_statistics(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "--task", "rosenbrock", "--optimizer", "sgd", "--steps", "5", "--plot", "none"]
    assert main([*argv, "--out", str(tmp_path / "r"), "--quiet"]) == 0
    assert "over seeds" not in capsys.readouterr().out


def test_an_unknown_x_axis_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--task", "rosenbrock", "--optimizer", "sgd", "--x-axis", "epochs"]) == 2
    assert "--x-axis" in capsys.readouterr().err
