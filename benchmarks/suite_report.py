"""A suite's report on disk: report.json (the record), report.md (for people), SVG plots and
runs.json.gz (the runs it was analysed from).

The JSON keeps what is needed to trust a number later: the machine, the versions, the git
commit, the command and the date, next to the report itself. The Benchmarks tab and the
API read these files back (`server.suites.results`). The kept runs let later analysis code
read the same evidence again, or pool it with runs made elsewhere (`suite.py --from`).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

from server.suites.base import Figure, Mode, Report, Run, Suite
from server.suites.render import report_markdown
from server.version import package_version

ROOT = Path(__file__).resolve().parents[1]
KEPT_RUNS = "runs.json.gz"
#: committed reports, relative to ROOT: not code, so not "uncommitted changes" of a run
RESULTS_PATHSPEC = "benchmarks/results"


def machine() -> dict[str, Any]:
    """Where it ran: enough to tell a CPU run from a GPU one and one CPU from another."""
    import torch

    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "psgd_playground": package_version(),
        "cpus": os.cpu_count(),
        "cpu": _cpu_model(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": _git_commit(),
    }
    return facts


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _git_commit() -> str | None:
    """The short commit, with " + uncommitted changes" when tracked files differ from it;
    reports under `benchmarks/results/` do not count (they are what this writes, not the
    code that ran: re-analysing pooled reports one after another would mark all but the
    first)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        changed = subprocess.run(
            ["git", "diff", "--quiet", "HEAD", "--", ".", f":(exclude){RESULTS_PATHSPEC}"],
            cwd=ROOT,
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    if not commit:
        return None
    return f"{commit} + uncommitted changes" if changed.returncode == 1 else commit


def write_report(
    suite: Suite,
    mode: Mode,
    report: Report,
    out: Path,
    *,
    started: float,
    command: str,
    where: dict[str, Any] | None = None,
    runs: list[Run] | None = None,
    trimmed: str = "",
    sources: list[dict[str, Any]] | None = None,
) -> None:
    """Write report.json, report.md, the figures' SVGs and (given `runs`) the kept runs
    into `out` (created).

    `where` is `machine()` taken when the run started: a long run's job workers keep the
    code they started with, whatever is committed while they run. `trimmed` says how the
    plan was cut ("" for a whole mode); `sources` are the records of the reports whose kept
    runs this one analysed again (None for a report of runs it made).
    """
    out.mkdir(parents=True, exist_ok=True)
    record = {
        "suite": suite.name,
        "title": suite.title,
        "claim": suite.claim,
        "mode": mode,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "wall_seconds": round(time.time() - started, 1),
        "command": command,
        "machine": where or machine(),
        "report": dataclasses.asdict(report),
    }
    if sources is not None:
        record["sources"] = sources
    for figure in report.figures:
        (out / f"{figure.name}.svg").write_text(figure_svg(figure))
    (out / "report.json").write_text(json.dumps(record, indent=1, allow_nan=False) + "\n")
    (out / "report.md").write_text(report_markdown(record))
    if runs is not None:
        write_runs(suite, mode, runs, out / KEPT_RUNS, trimmed)


def write_runs(suite: Suite, mode: Mode, runs: list[Run], path: Path, trimmed: str) -> None:
    """The runs with the events `suite.analyse` reads (status and `analysed_events`, narrowed
    to `analysed_fields`), gzipped JSON; written byte for byte the same for the same runs (no
    time stamp in the header)."""
    kept = {"started", "status", *suite.analysed_events}
    fields = suite.analysed_fields
    payload = {
        "suite": suite.name,
        "mode": mode,
        "trimmed": trimmed,
        "runs": [  # not dataclasses.asdict: it would deep-copy every per-step event first
            {
                **{f.name: getattr(run, f.name) for f in dataclasses.fields(run)},
                "events": [
                    e if e["type"] not in fields else _narrowed(e, fields[e["type"]])
                    for e in run.events
                    if e.get("type") in kept
                ],
            }
            for run in runs
        ],
    }
    text = json.dumps(payload, separators=(",", ":"))
    path.write_bytes(gzip.compress(text.encode(), mtime=0))


def _narrowed(event: dict[str, Any], fields: frozenset[str]) -> dict[str, Any]:
    return {key: value for key, value in event.items() if key == "type" or key in fields}


def read_runs(report_folder: Path) -> tuple[dict[str, Any], list[Run]]:
    """A report's kept runs and its header (suite, mode, trimmed); ValueError saying why
    when the folder has none or they cannot be read."""
    path = report_folder / KEPT_RUNS
    try:
        payload = json.loads(gzip.decompress(path.read_bytes()))
        runs = [Run(**run) for run in payload["runs"]]
        header = {key: payload[key] for key in ("suite", "mode", "trimmed")}
    except FileNotFoundError:
        raise ValueError(f"{report_folder} keeps no runs (no {KEPT_RUNS})") from None
    except (OSError, EOFError, ValueError, TypeError, KeyError) as e:
        raise ValueError(f"{path} cannot be read: {e}") from None
    return header, runs


def figure_svg(figure: Figure) -> str:
    """The figure drawn by matplotlib as SVG text (lines, with shaded intervals)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    try:
        for series in figure.series:
            (line,) = ax.plot(series.x, series.y, label=series.name, linewidth=1.5)
            if series.low is not None and series.high is not None:
                ax.fill_between(
                    series.x,
                    series.low,
                    series.high,
                    alpha=0.2,
                    linewidth=0,
                    color=line.get_color(),
                )
        ax.set(title=figure.title, xlabel=figure.x_label, ylabel=figure.y_label)
        if figure.log_x:
            ax.set_xscale("log")
        if figure.log_y:
            ax.set_yscale("log")
        if len(figure.series) > 1:
            ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        return buffer.getvalue()
    finally:
        plt.close(fig)
