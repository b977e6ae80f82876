"""The overhead benchmark script: flag checks and a quick run (a smoke test, not a timing test)."""

from __future__ import annotations

import json

import pytest
from benchmark_scripts import load_benchmark


@pytest.fixture(scope="module")
def overhead():
    return load_benchmark("overhead")


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--cases", "mnist"], "--cases"),
        (["--cases", ","], "--cases"),
        (["--rounds", "0"], "--rounds"),
        (["--threads", "0"], "--threads"),
        (["--steps", "0"], "--steps"),
    ],
)
def test_bad_flags_are_named(overhead, flags, named, capsys):
    with pytest.raises(SystemExit) as exit_info:
        overhead.parse_args(flags)
    assert exit_info.value.code == 2
    assert named in capsys.readouterr().err


def test_quick_run_times_bare_and_runner_and_writes_json_and_markdown(overhead, tmp_path):
    table = tmp_path / "table.md"
    out = tmp_path / "out"
    flags = ["--quick", "--cases", "rosenbrock", "--no-api", "--out", str(out)]
    rows = overhead.main([*flags, "--markdown", str(table)])
    (row,) = rows
    assert row["case"] == "rosenbrock" and row["steps"] == 100
    assert row["seconds"]["bare"] > 0 and row["seconds"]["runner"] > 0
    assert row["runner_ratio"] == pytest.approx(row["seconds"]["runner"] / row["seconds"]["bare"])
    assert row["observations"]["snapshots"]["count"] >= 1  # the last step (0 is set-up)
    assert row["observations"]["trajectories"]["count"] >= 1
    assert json.loads((out / "overhead.json").read_text()) == rows
    text = table.read_text()
    assert text == (out / "overhead.md").read_text()
    assert "| rosenbrock | 100 |" in text and "×" in text


@pytest.mark.slow
def test_quick_run_through_a_real_server_reports_time_to_first_metrics(overhead, tmp_path):
    flags = ["--quick", "--cases", "rosenbrock", "--out", str(tmp_path)]
    (row,) = overhead.main(flags)
    first, total = row["seconds"]["api_first_metrics"], row["seconds"]["api"]
    assert 0 < first <= total and row["api_ratio"] > 0
    assert 0 < row["api_server_cpu_s"] < 60  # the server's own process, from /proc


def test_steps_replaces_the_step_budget(overhead, tmp_path):
    flags = ["--quick", "--cases", "rosenbrock", "--no-api", "--steps", "30"]
    (row,) = overhead.main([*flags, "--out", str(tmp_path)])
    assert row["steps"] == 30 and row["spec"]["steps"] == 30
