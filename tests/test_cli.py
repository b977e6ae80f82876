"""The `psgd-playground` command line, called in-process through `main(argv)`."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("pydantic")
pytest.importorskip("plotly")

from playground import figures
from playground.cli import main
from playground.cli_output import Progress, RunRecord

REPO = Path(__file__).resolve().parents[1]
CIFAR_SUBSET = REPO.parent / "shared" / "data" / "cifar-10-subset-python.tar.gz"


def _strict_json(path: Path) -> object:
    """Parse a JSON file, refusing NaN/Infinity (which strict JSON readers reject)."""

    def refuse(constant: str) -> None:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def _assert_one_line_error(capsys: pytest.CaptureFixture[str], code: int, *needles: str) -> str:
    captured = capsys.readouterr()
    assert code == 2, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("psgd-playground: error: "), lines[0]
    assert "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_issue_example_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "results"
    argv = ["run", "--task", "rosenbrock", "--optimizer", "psgd-dense", "--optimizer", "adam"]
    code = main([*argv, "--steps", "50", "--seeds", "3", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err

    summary = _strict_json(out / "summary.json")
    assert [(r["optimizer"], r["seed"]) for r in summary] == [
        (name, seed) for name in ("psgd-dense", "adam") for seed in range(3)
    ]
    assert all(r["status"] == "succeeded" for r in summary)
    first = summary[0]
    assert first["optimizer_config"]["fitting"] == "newton"  # the rosenbrock preset
    assert first["task"]["name"] == "rosenbrock"
    assert first["environment"]["torch"]
    assert first["summary"]["steps"] == 50

    # metrics.csv is the job service's export, as the API's /metrics?format=csv writes it
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[:5] == ["job_id", "label", "optimizer_label", "seed", "step"]
    assert set(rows[0]) >= {"loss", "grad_norm", "lr"}
    for run in summary:
        assert sum(row["job_id"] == run["job_id"] for row in rows) == 50
    assert rows[0]["label"] == "psgd-dense seed=0" and rows[-1]["optimizer_label"] == "adam"
    assert len(list((out / "events").glob("*.jsonl"))) == 6
    lines = (out / "events" / "4-adam-seed0.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["type"] == "started"
    assert json.loads(lines[-1])["type"] == "status"
    assert _strict_json(out / "spec.json")["seeds"] == [0, 1, 2]

    for plot in ("loss.html", "trajectory.html"):
        html = (out / plot).read_text(encoding="utf-8")
        assert "<script src=" not in html and '<script type="text/javascript" src=' not in html
        figure_script = html[html.rindex("<script") :]  # after the embedded plotly.js
        assert "Plotly.newPlot" in figure_script
        assert "cdn." not in figure_script

    table = captured.out
    assert "final loss" in table and "best loss" in table
    assert "setup (s)" in table and "run (s)" in table
    assert sum(" succeeded " in line for line in table.splitlines()) == 6
    assert "psgd-dense  final loss" in table and "adam" in table
    # Not a terminal: one progress line per finished job on stderr.
    assert captured.err.count("succeeded at step 50") == 6


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_spec_file_with_flags_overriding(
    suffix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    doc = {
        "task": {"name": "quadratic", "dim": 4},
        "optimizers": [{"name": "sgd"}, {"name": "adam", "lr": 0.02}],
        "seeds": [0, 1],
        "steps": 500,
    }
    spec = tmp_path / f"spec{suffix}"
    if suffix == ".json":
        spec.write_text(json.dumps(doc))
    else:
        import yaml

        spec.write_text(yaml.safe_dump(doc))
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--spec",
            str(spec),
            "--steps",
            "20",
            "--set",
            "sgd.lr=0.05",
            "--out",
            str(out),
            "--plot",
            "none",
        ]
    )
    assert code == 0, capsys.readouterr().err
    runs = _strict_json(out / "summary.json")
    assert [(r["optimizer"], r["seed"]) for r in runs] == [
        ("sgd", 0),
        ("sgd", 1),
        ("adam", 0),
        ("adam", 1),
    ]
    assert {r["summary"]["steps"] for r in runs} == {20}  # the flag beat the file's 500
    assert runs[0]["optimizer_config"]["lr"] == 0.05
    assert runs[2]["optimizer_config"]["lr"] == 0.02  # kept from the file
    assert runs[0]["task"]["dim"] == 4
    assert not (out / "loss.html").exists()


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (["run", "--task", "nope", "--optimizer", "adam"], ["unknown task 'nope'", "rosenbrock"]),
        (["run", "--task", "rosenbrock", "--optimizer", "adm"], ["did you mean 'adam'"]),
        (
            ["run", "--task", "rosenbrock", "--task-option", "colour=1", "--optimizer", "adam"],
            ["spec: task.colour: unknown field (valid: ", "dim"],
        ),
        (
            ["run", "--task", "rosenbrock", "--task-option", "dim", "--optimizer", "adam"],
            ["--task-option 'dim'"],
        ),
        (
            ["run", "--task", "rosenbrock", "--optimizer", "adam", "--set", "adam.lr=-1"],
            ["spec: adam.lr: Input should be greater than 0 (got -1)"],
        ),
        (
            ["run", "--task", "rosenbrock", "--optimizer", "adam", "--set", "adam.lr"],
            ["expected NAME.KEY=VALUE"],
        ),
        (
            ["run", "--task", "rosenbrock", "--optimizer", "adam", "--set", "lr=0.1"],
            ["expected NAME.KEY=VALUE"],
        ),
        (
            ["run", "--task", "rosenbrock", "--optimizer", "adam", "--set", "sgd.lr=0.1"],
            ["'sgd' is not among the chosen optimizers (adam)"],
        ),
        (
            ["run", "--task", "rosenbrock", "--optimizer", "adam", "--set", "adam.betas=1"],
            ["spec: adam.betas: unknown field (valid: ", "beta1"],
        ),
        (["run", "--task", "rosenbrock", "--optimizer", "adam", "--steps", "0"], ["--steps"]),
        (["run", "--task", "rosenbrock", "--optimizer", "adam", "--bogus"], ["--bogus"]),
        (["run", "--task", "rosenbrock", "--optimizer", "adam", "--plot", "svg"], ["--plot"]),
        (["run", "--task", "rosenbrock"], ["no optimizer"]),
        (["run", "--optimizer", "adam"], ["no task"]),
        (["run", "--spec", "/nonexistent/spec.json"], ["cannot read spec file"]),
        (["optimizers", "nope"], ["unknown optimizer 'nope'"]),
        (["tasks", "nope"], ["unknown task 'nope'"]),
        ([], ["choose a command"]),
    ],
)
def test_user_errors_are_one_line_and_exit_2(
    argv: list[str], needles: list[str], capsys: pytest.CaptureFixture[str]
):
    _assert_one_line_error(capsys, main(argv), *needles)


def test_unreadable_spec_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    _assert_one_line_error(capsys, main(["run", "--spec", str(bad_json)]), "invalid JSON")
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("task: [unclosed\n  - x: {")
    _assert_one_line_error(capsys, main(["run", "--spec", str(bad_yaml)]), "invalid YAML")
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"task": "rosenbrock", "optimizers": ["adam"], "colour": 1}))
    _assert_one_line_error(capsys, main(["run", "--spec", str(extra)]), "spec: colour")


def test_diverging_run_shows_in_table_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    out = tmp_path / "out"
    argv = ["run", "--task", "quadratic", "--optimizer", "sgd", "--set", "sgd.lr=10"]
    code = main([*argv, "--steps", "50", "--out", str(out), "--plot", "none"])
    captured = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in captured.err
    row = next(line for line in captured.out.splitlines() if line.strip().startswith("1 "))
    assert "diverged" in row
    assert "diverged 1/1" in captured.out
    runs = _strict_json(out / "summary.json")  # final loss inf is written as null
    assert runs[0]["status"] == "diverged"
    assert runs[0]["summary"]["final_loss"] is None


def test_eval_metric_column_and_eval_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "out"
    argv = ["run", "--task", "xor", "--task-option", "sequence_length=8", "--optimizer", "adam"]
    code = main([*argv, "--steps", "10", "--out", str(out), "--plot", "html"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "final accuracy" in captured.out
    with open(out / "eval.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and "accuracy" in rows[0]
    assert (out / "loss.html").exists()
    assert not (out / "trajectory.html").exists()  # not a 2-D landscape


def test_png_without_kaleido_warns_and_continues(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    import importlib.util

    if importlib.util.find_spec("kaleido") is not None:
        pytest.skip("kaleido is installed")
    out = tmp_path / "out"
    argv = ["run", "--task", "beale", "--optimizer", "adam", "--steps", "5", "--plot", "png"]
    code = main([*argv, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0
    warnings = [line for line in captured.err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "kaleido" in warnings[0]
    assert not (out / "loss.png").exists()


def test_ctrl_c_cancels_the_current_job_and_keeps_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    default = signal.getsignal(signal.SIGINT)

    def interrupt_once_running() -> None:
        deadline = time.monotonic() + 30
        while signal.getsignal(signal.SIGINT) is default and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=interrupt_once_running, daemon=True)
    thread.start()
    out = tmp_path / "out"
    argv = ["run", "--task", "quadratic", "--optimizer", "sgd", "--seeds", "2"]
    code = main(
        [*argv, "--steps", "1000000", "--max-seconds", "30", "--out", str(out), "--plot", "none"]
    )
    thread.join()
    captured = capsys.readouterr()
    assert code == 130
    assert signal.getsignal(signal.SIGINT) is default  # handler restored
    runs = _strict_json(out / "summary.json")
    assert [r["status"] for r in runs] == ["cancelled"]  # the second seed never started
    assert "1 of 2 jobs not started" in captured.out
    assert (out / "metrics.csv").exists()


def test_optimizer_help_lists_hyperparameters(capsys: pytest.CaptureFixture[str]):
    assert main(["optimizers", "psgd-kron"]) == 0
    text = capsys.readouterr().out
    line = next(line for line in text.splitlines() if line.strip().startswith("preconditioner_lr"))
    assert "float" in line and "0.1" in line and "(0, 2]" in line
    assert "--set psgd-kron.KEY=VALUE" in text

    assert main(["optimizers", "adam", "--task", "rosenbrock"]) == 0
    lr = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("lr "))
    assert "0.01" in lr  # the rosenbrock preset, not the schema default 0.001

    assert main(["optimizers"]) == 0
    names = capsys.readouterr().out
    assert "psgd-kron" in names and "lbfgs" in names


def test_tasks_list_and_options(capsys: pytest.CaptureFixture[str]):
    assert main(["tasks"]) == 0
    assert "rosenbrock" in capsys.readouterr().out
    assert main(["tasks", "quadratic"]) == 0
    text = capsys.readouterr().out
    assert "condition_number" in text and "--task-option" in text


def test_data_check_shared_archive(capsys: pytest.CaptureFixture[str]):
    if not CIFAR_SUBSET.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CIFAR_SUBSET} is missing")
        pytest.skip(f"{CIFAR_SUBSET} is missing")
    assert main(["data", "check", str(CIFAR_SUBSET)]) == 0
    text = capsys.readouterr().out
    assert "10000 train and 2000 test images" in text
    assert "not the official archive" in text
    airplane = next(line for line in text.splitlines() if line.strip().startswith("airplane"))
    assert airplane.split()[1:] == ["1000", "200"]


def test_data_check_missing_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    code = main(["data", "check", str(tmp_path / "missing.tar.gz")])
    _assert_one_line_error(capsys, code, "not found")


def _console_script() -> list[str]:
    script = Path(sys.executable).parent / "psgd-playground"
    return [str(script)] if script.exists() else [sys.executable, "-m", "playground.cli"]


def test_console_script_bad_flag_has_no_traceback():
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [*_console_script(), "run", "--task", "rosenbrock", "--steps", "ten"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "psgd-playground: error: argument --steps: expected a positive integer, got 'ten'"
    ]


@pytest.mark.parametrize(
    "command",
    [
        [*_console_script(), "optimizers"],
        [sys.executable, "benchmarks/suite.py", "fitting", "--full", "--plan"],
    ],
    ids=["cli", "suite"],
)
def test_a_reader_that_has_gone_ends_the_command_quietly(command: list[str]):
    """`… | head` closes the pipe early: exit as a shell expects (141), no traceback."""
    reader, writer = os.pipe()
    os.close(reader)  # no reader from the start, so the first write fails for certain
    try:
        process = subprocess.Popen(
            command,
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
    finally:
        os.close(writer)
    _, err = process.communicate(timeout=120)
    assert (process.returncode, err) == (141, "")


def test_progress_redraws_one_line_per_job_on_a_terminal():
    from server.events import Metrics, Started, Status

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    stream = Terminal()
    progress = Progress(2, stream=stream)

    class Job:
        seed = 1

    progress.start(RunRecord(index=2, label="adam", job=Job()))
    progress.event(Started(total_steps=500, meta={}))
    for step in range(1, 501):  # fast: throttled to ≤ 10 redraws per second
        progress.event(
            Metrics(step=step, loss=1.0 / step, grad_norm=1, lr=0.1, step_time=0, elapsed=0)
        )
    progress.finish(Status(step=500, status="succeeded", summary={"final_loss": 0.002}))
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text.count("\r") <= 5
    assert "[2/2] adam seed=1 |########################| 500/500 loss 2.00e-03" in text


def test_progress_without_a_terminal_prints_lines_as_the_job_goes():
    """A log file gets a plain line at each tenth of the steps (no carriage returns), at
    most one a second, and one every 10 s in between; it used to get nothing until the end."""
    from server.events import Metrics, Started, Status

    now = [0.0]
    stream = io.StringIO()  # not a terminal
    progress = Progress(1, stream=stream, clock=lambda: now[0])

    class Job:
        seed = 0

    def at(step: int, seconds: float) -> None:
        now[0] = seconds
        metrics = Metrics(step=step, loss=1.0, grad_norm=1, lr=0.1, step_time=0, elapsed=0)
        progress.event(metrics)

    progress.start(RunRecord(index=1, label="sgd", job=Job()))
    progress.event(Started(total_steps=1000, meta={}))
    at(50, 0.5)  # 5 %: nothing due
    at(100, 0.9)  # 10 % but within a second of the start: held back
    at(150, 1.5)  # the held-back tenth is printed now
    at(160, 1.6)
    at(170, 11.6)  # 10 s without a line
    at(200, 12.0)  # 20 %, but 0.4 s after the last line
    at(300, 13.0)  # 30 %
    progress.finish(Status(step=1000, status="succeeded", summary={"final_loss": 0.5}))
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines == [
        "[1/1] sgd seed=0 step 150/1000 (15%) loss 1.00e+00 0:01",
        "[1/1] sgd seed=0 step 170/1000 (17%) loss 1.00e+00 0:11",
        "[1/1] sgd seed=0 step 300/1000 (30%) loss 1.00e+00 0:13",
        "[1/1] sgd seed=0 succeeded at step 1000, loss 5.00e-01, 0:13",
    ]


def test_events_are_written_while_the_job_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """events/*.jsonl grows as the events come (flushed about once a second), not only at
    the job's end."""
    from playground import cli_files

    monkeypatch.setattr(cli_files, "EVENTS_FLUSH_SECONDS", 0.0)  # flush every line
    seen: list[int] = []
    real_write = cli_files.EventLog.write

    def watching_write(log: cli_files.EventLog, event: object) -> None:
        real_write(log, event)
        if event.type == "metrics" and event.step == 5:  # type: ignore[attr-defined]
            seen.append(len(log.path.read_text().splitlines()))

    monkeypatch.setattr(cli_files.EventLog, "write", watching_write)
    argv = ["run", "--task", "rosenbrock", "--optimizer", "adam", "--steps", "20"]
    assert main([*argv, "--out", str(tmp_path / "out"), "--plot", "none", "--quiet"]) == 0
    assert seen and seen[0] >= 6  # started + five metrics lines already on disk
    (path,) = (tmp_path / "out" / "events").iterdir()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    assert events[0]["type"] == "started" and events[-1]["type"] == "status"


def test_figures_accept_event_dicts():
    def run(scale: float) -> list[dict]:
        events: list[dict] = [{"type": "started", "total_steps": 3, "meta": {}}]
        for step in (1, 2, 3):
            events.append({"type": "metrics", "step": step, "loss": scale / step})
            events.append({"type": "trajectory", "step": step, "point": [step, scale]})
        return events

    fig = figures.loss_figure([("adam", run(1.0)), ("adam", run(2.0)), ("sgd", run(3.0))])
    assert fig.layout.yaxis.type == "log"
    mean = next(t for t in fig.data if t.name == "adam (mean of 2 seeds)")
    assert list(mean.y) == [1.5, 0.75, 0.5]
    assert any(t.fill == "toself" for t in fig.data)  # the min–max band
    assert figures.optimizer_color("adam#2") == figures.optimizer_color("adam")

    negative = [{"type": "metrics", "step": 1, "loss": -2.0}]
    assert figures.loss_figure([("sgd", negative)]).layout.yaxis.type == "linear"

    xs, ys = [0.0, 0.5, 1.0], [0.0, 1.0, 2.0]
    contour = (xs, ys, [[x + y for x in xs] for y in ys])
    traj = figures.trajectory_figure(
        [("adam", run(1.0))], contour=contour, task={"known_minima": [[1, 1]]}
    )
    assert traj.data[0].type == "contour"
    assert any(t.name == "known minima" for t in traj.data)


def test_runs_go_through_the_job_service_and_store_keeps_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """`--store DIR` keeps the job service's store: its jobs are the run's, labelled by the
    service, and metrics.csv is the store's export, as the API serves it."""
    from server.jobs.export import collect_metrics, metrics_csv
    from server.jobs.store import JobStore

    store_dir, out = tmp_path / "store", tmp_path / "out"
    argv = ["run", "--task", "rosenbrock", "--optimizer", "adam", "--optimizer", "adam"]
    argv += ["--steps", "5", "--store", str(store_dir), "--out", str(out), "--plot", "none"]
    assert main(argv) == 0, capsys.readouterr().err
    runs = _strict_json(out / "summary.json")
    with JobStore(store_dir / "jobs.sqlite") as store:
        jobs = [store.get_job(run["job_id"]) for run in runs]
        assert [job["label"] for job in jobs] == ["adam seed=0", "adam#2 seed=0"]
        assert {job["status"] for job in jobs} == {"succeeded"}
        assert (out / "metrics.csv").read_text() == metrics_csv(collect_metrics(store, jobs))
    assert [run["label"] for run in runs] == ["adam", "adam#2"]


def test_a_run_after_torch_used_its_thread_team_still_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """The CLI forks its workers (a spawned one imports torch anew, seconds a job). A copy
    of a thread that has run an OpenMP team hangs in its next parallel region: the workers
    are forked by the executor's thread, never by this one, which has run a team here."""
    if not CIFAR_SUBSET.exists():
        pytest.skip(f"{CIFAR_SUBSET} is missing")
    import torch

    torch.set_num_threads(2)
    torch.sin(torch.randn(4_000_000)).sum()  # a parallel region on this thread
    argv = ["run", "--task", "cifar10", "--optimizer", "sgd", "--steps", "1", "--threads", "2"]
    for option in ("train_size=100", "test_size=100", "batch_size=100"):
        argv += ["--task-option", option]
    argv += ["--data", str(CIFAR_SUBSET), "--max-seconds", "60", "--plot", "none", "--quiet"]
    assert main([*argv, "--out", str(tmp_path)]) == 0, capsys.readouterr().out


def test_a_kept_store_s_leftover_queued_jobs_are_cancelled_not_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """A killed run leaves its queued jobs in `--store DIR`; the service would run them first
    at the next start: the next run cancels them, says so, and runs what it was asked."""
    from server.jobs.store import JobStore

    store_dir = tmp_path / "store"
    with JobStore(store_dir / "jobs.sqlite") as store:
        spec = {"task": {"name": "rosenbrock"}, "optimizer": {"name": "sgd"}, "steps": 10**6}
        spec["max_seconds"] = 20  # would it run, it would end failed at its time limit
        leftover = store.create_job(spec, label="sgd seed=0")
    argv = ["run", "--task", "rosenbrock", "--optimizer", "adam", "--steps", "5"]
    code = main([*argv, "--store", str(store_dir), "--out", str(tmp_path / "out"), "--quiet"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "cancelled 1 job(s) an earlier run left queued in the store" in captured.err
    with JobStore(store_dir / "jobs.sqlite") as store:
        assert store.get_job(leftover)["status"] == "cancelled"


def test_errors_name_a_repeated_optimizer_by_its_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
):
    """The spec is validated once, by the one formatter; its `optimizers[1]` reads as the
    run names that entry: `adam#2`."""
    spec = tmp_path / "spec.json"
    doc = {"task": "rosenbrock", "optimizers": ["adam", {"name": "adam", "lr": -1}]}
    spec.write_text(json.dumps(doc))
    code = main(["run", "--spec", str(spec), "--out", str(tmp_path / "out")])
    _assert_one_line_error(capsys, code, "spec: adam#2.lr: Input should be greater than 0")
