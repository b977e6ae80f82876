"""What `psgd-playground run` shows and writes: progress lines, the summary table, and the
result files (JSON, CSV, per-run event logs, plots).

Kept apart from `playground.cli` (argument handling) so each stays readable; nothing here
parses flags or exits.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TextIO

from server.jobs.summary import (
    Outcome,
    criteria_for,
    evaluations_to,
    number_text,
    spread_text,
    summarize,
)

_BAR = 24
EXIT_PIPE_CLOSED = 141  # 128 + SIGPIPE: what a shell reports for any tool cut off by `| head`
_REDRAW_SECONDS = 0.1  # at most 10 redraws per second
#: Without a terminal (a log file, CI, nohup): a line per job at each tenth of its steps or
#: after this many seconds without one, whichever comes first ...
PROGRESS_LINE_SECONDS = 10.0
#: ... but never two within this many seconds (a fast job prints just its final line).
PROGRESS_MIN_GAP = 1.0


@dataclass
class RunRecord:
    """One job of a comparison and everything it emitted."""

    index: int  # 1-based, as in the progress lines, summary.json and file names
    label: str  # the service's optimizer label: the name, "#k" on its k-th repeat
    job: Any  # server.specs.JobSpec
    job_id: str = ""  # the job service's id, as in metrics.csv
    events: list[Any] = field(default_factory=list)
    status: Any = None  # the final server.events.Status

    @property
    def seed(self) -> int:
        return self.job.seed

    @property
    def meta(self) -> dict[str, Any]:
        started = next((e for e in self.events if e.type == "started"), None)
        return started.meta if started is not None else {}

    @property
    def summary(self) -> dict[str, Any]:
        return self.status.summary if self.status is not None else {}

    @property
    def events_name(self) -> str:
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", self.label)
        return f"{self.index}-{safe}-seed{self.seed}.jsonl"


def silence_closed_stdout() -> int:
    """Call when a write raised BrokenPipeError (the reader, e.g. `| head`, has gone): points
    stdout at /dev/null so the interpreter's flush at exit cannot raise it again, and returns
    the exit status a shell expects from a tool its pipe cut off."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_PIPE_CLOSED


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Progress on stderr: one redrawn line per job on a terminal; otherwise plain lines
    (no carriage returns) at each tenth of a job's steps or every `PROGRESS_LINE_SECONDS`,
    and one when it ends, so a log file shows a long run as it goes."""

    def __init__(
        self,
        total_jobs: int,
        stream: TextIO | None = None,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.total_jobs = total_jobs
        self.quiet = quiet
        self.clock = clock
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.record: RunRecord | None = None

    def start(self, record: RunRecord) -> None:
        self.record = record
        self.began = self.clock()
        self.last_draw = -math.inf
        self.last_line, self.last_tenth = self.began, 0
        self.step, self.total_steps, self.loss = 0, None, math.nan

    def _head(self) -> str:
        assert self.record is not None
        r = self.record
        return f"[{r.index}/{self.total_jobs}] {r.label} seed={r.seed}"

    def event(self, event: Any) -> None:
        if event.type == "started":
            self.total_steps = event.total_steps
        elif event.type == "metrics":
            self.step, self.loss = event.step, event.loss
        else:
            return
        if self.quiet:
            return
        now = self.clock()
        if self.tty and now - self.last_draw >= _REDRAW_SECONDS:
            self.last_draw = now
            self._draw(self._bar_line(now))
        elif not self.tty and event.type == "metrics":
            self._maybe_line(now)

    def _maybe_line(self, now: float) -> None:
        total = self.total_steps or 0
        tenth = 10 * self.step // total if total else 0
        due = tenth > self.last_tenth or now - self.last_line >= PROGRESS_LINE_SECONDS
        if not due or now - self.last_line < PROGRESS_MIN_GAP:
            return
        self.last_line, self.last_tenth = now, tenth
        of_total = f"/{total} ({100 * self.step // total}%)" if total else ""
        loss = f"{self.loss:.2e}" if math.isfinite(self.loss) else "-"
        self.stream.write(
            f"{self._head()} step {self.step}{of_total} loss {loss} {_clock(now - self.began)}\n"
        )
        self.stream.flush()

    def _bar_line(self, now: float) -> str:
        total = self.total_steps or 0
        filled = round(_BAR * self.step / total) if total else 0
        bar = "#" * filled + "-" * (_BAR - filled)
        loss = f"{self.loss:.2e}" if math.isfinite(self.loss) else "-"
        return f"{self._head()} |{bar}| {self.step}/{total} loss {loss} {_clock(now - self.began)}"

    def _draw(self, line: str) -> None:
        width = shutil.get_terminal_size((100, 24)).columns - 1
        self.stream.write("\r" + line[:width] + "\x1b[K")
        self.stream.flush()

    def finish(self, status: Any) -> None:
        if self.quiet:
            return
        now = self.clock()
        loss = status.summary.get("final_loss")
        loss_text = f"{loss:.2e}" if isinstance(loss, float) and status.step else "-"
        tail = (
            f"{status.status} at step {status.step}, loss {loss_text}, {_clock(now - self.began)}"
        )
        if self.tty:
            self._draw(f"{self._bar_line(now)} {status.status}")
            self.stream.write("\n")
        else:
            self.stream.write(f"{self._head()} {tail}\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        self.stream.write(("\n" if self.tty and not self.quiet else "") + message + "\n")
        self.stream.flush()


# ------------------------------------------------------------------------------ table
def _num(value: Any, spec: str = ".3e") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec)


def eval_metric(records: list[RunRecord]) -> str | None:
    """The evaluation metric worth a column: the task's target metric, else accuracy."""
    keys: set[str] = set()
    for r in records:
        keys.update((r.summary.get("final_eval") or {}).keys())
    if not keys:
        return None
    target = next((r.meta.get("target_metric") for r in records if r.meta), None)
    if target in keys and target != "loss":
        return target
    return "accuracy" if "accuracy" in keys else sorted(keys)[0]


def _has_solved_notion(records: list[RunRecord]) -> bool:
    for r in records:
        task = r.meta.get("task") or {}
        if r.summary.get("solved_step") is not None or "solved_threshold" in task:
            return True
        if task.get("minimum_value") is not None:
            return True
    return False


def _align(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


def summary_table(records: list[RunRecord], target: float | None) -> str:
    """The end-of-run table (one row per run) and one aggregate line per optimizer."""
    if not records:
        return "no job finished"
    metric = eval_metric(records)
    solved = _has_solved_notion(records)
    success = "target" if target is not None else "solved"
    reach = reach_words(success)
    header = ["run", "optimizer", "seed", "status", "final loss", "best loss", f"steps {reach}"]
    header += [f"evals {reach}", f"s {reach}"]  # evals: gradients + Hessian-vector products
    # set-up (building task and optimizer, step 0) apart from the run (steps 1…n)
    header += ["setup (s)", "run (s)", *([f"final {metric}"] if metric else [])]
    rows = [header]
    for r in records:
        s = r.summary
        reached = s.get("target_step") if target is not None else s.get("solved_step")
        row = [str(r.index), r.label, str(r.seed), r.status.status if r.status else "-"]
        final = s.get("final_loss") if s.get("steps") else None  # no step, no loss
        row += [_num(final), _num(s.get("best_loss")), _num(reached, "d")]
        row.append(_num(evaluations_to(s, success), "d"))
        row.append(_num(s.get(f"{success}_seconds"), ".2f"))
        row += [_num(s.get("setup_seconds"), ".2f"), _num(s.get("seconds"), ".2f")]
        if metric:
            row.append(_num((s.get("final_eval") or {}).get(metric), ".4g"))
        rows.append(row)
    lines = _align(rows, right={0, 2, *range(4, len(header))})
    lines.insert(1, "-" * len(lines[0]))

    lines.append("")
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        groups.setdefault(r.label, []).append(r)
    agg = []
    for label, group in groups.items():
        n = len(group)
        finals = [r.summary.get("final_loss") for r in group]
        finite = [v for v in finals if isinstance(v, (int, float)) and math.isfinite(v)]
        if finite:
            std = statistics.stdev(finite) if len(finite) > 1 else 0.0
            runs = f"{n} seed{'s' if n > 1 else ''}"
            over = runs if len(finite) == n else f"the {len(finite)} finite of {runs}"
            loss = f"final loss {statistics.fmean(finite):.3e} ± {std:.1e} over {over}"
        else:
            loss = "final loss - (no finite value)"
        parts = [label, loss]
        if solved:
            parts.append(
                f"solved {sum(r.summary.get('solved_step') is not None for r in group)}/{n}"
            )
        if target is not None:
            reached = sum(r.summary.get("target_step") is not None for r in group)
            parts.append(f"reached target {reached}/{n}")
        for status in ("diverged", "failed", "cancelled"):
            count = sum(r.status is not None and r.status.status == status for r in group)
            if count:
                parts.append(f"{status} {count}/{n}")
        agg.append(parts)
    width = max(len(p[0]) for p in agg)
    lines += [f"{p[0].ljust(width)}  " + " · ".join(p[1:]) for p in agg]
    return "\n".join([*lines, *statistics_lines(records, target)])


def statistics_lines(records: list[RunRecord], target: float | None) -> list[str]:
    """The statistics over seeds (`server.jobs.summary`, as the API's summary route gives
    them): per optimizer the final metric with its 95 % interval, the success rate with its
    Wilson interval and the steps / evaluations / seconds to it; a sentence per pair. None
    unless some optimizer ran at least two seeds."""
    runs = [Outcome(r.label, r.status.status, r.summary) for r in records if r.status]
    meta = next((r.meta for r in records if r.meta), {})
    solved = any(run.summary.get("solved_step") is not None for run in runs)
    result = summarize(runs, criteria_for(target, meta, solved))
    if not any(row["counted"] >= 2 for row in result["optimizers"]):
        return []
    lines = [
        "",
        "over seeds: means with Student-t 95 % intervals, success rates with Wilson "
        "intervals; runs that never got there count as beyond the budget (censored)",
    ]
    width = max(len(row["label"]) for row in result["optimizers"])
    for row in result["optimizers"]:
        final = row["final"]
        parts = [f"{result['metric_name']} -"]
        if final:
            interval = (
                f" [{number_text(final['low'])}, {number_text(final['high'])}]"
                if final["low"] is not None
                else ""
            )
            parts = [f"{result['metric_name']} {number_text(final['mean'])}{interval}"]
        if row["success"]:
            rate, to = row["success"], row["to_target"]
            verb = "reached target" if result["success"] == "target" else "solved"
            parts.append(
                f"{verb} {rate['successes']}/{rate['n']} [{rate['low']:.0%}, {rate['high']:.0%}]"
            )
            parts.append(
                f"{reach_words(result['success'])}: steps {spread_text(to['steps'])}, "
                f"evals {spread_text(to['evaluations'])}, seconds {spread_text(to['seconds'])}"
            )
        lines.append(f"{row['label'].ljust(width)}  " + " · ".join(parts))
    return [*lines, *(pair["sentence"] for pair in result["pairs"])]


def reach_words(success: str) -> str:
    return "to target" if success == "target" else "to solve"


def failure_notes(records: list[RunRecord]) -> list[str]:
    """One line per run that did not succeed, with its message."""
    return [
        f"run {r.index} ({r.label} seed={r.seed}) {r.status.status}: {r.status.message}"
        for r in records
        if r.status is not None and r.status.status != "succeeded" and r.status.message
    ]
