"""Run one of the seed paper's benchmark suites (issue 16) and write its report.

    python benchmarks/suite.py --list
    python benchmarks/suite.py xor --quick                 # a few minutes on a CPU
    python benchmarks/suite.py xor --full --threads 4      # meant for a GPU machine
    python benchmarks/suite.py cifar --quick --data ../shared/data/cifar-10-subset-python.tar.gz
    python benchmarks/suite.py xor --full --only "T = 64" --entries 0,11 --jobs 16 --plan

The suite's jobs go through a job service, as `psgd-playground run`'s do: by default one
in this process with the local executor (each job in its own worker, one at a time), or
with `--api URL` a running server's, so they use that server's executor (Ray included),
its limits and its token (`--token` or PSGD_PLAYGROUND_TOKEN). The report lands in
`benchmarks/results/<suite>/<mode>/` (or `--out`): report.json (machine, versions,
command, date, the report), report.md and one SVG per figure. Commit what you ran there.

A mode's plan can be trimmed to what a machine's time allows (`--only`, `--entries`,
`--seeds`, `--cap`; `--plan` prints the result). A trimmed run is not its mode's result:
its report says how it was trimmed, its verdict is "not yet run at full scale", and it
lands in `<mode>-partial/` (or `--out`): the claims table links it and the Benchmarks tab
shows it beside the modes' reports, never as its mode's verdict.

A report keeps its runs (runs.json.gz, the events its analysis reads). `--from FOLDER`
analyses kept runs again with the code as it is now, instead of running anything; given
several times it pools them (other seeds, other entries, another machine, the re-run of
jobs a deadline cancelled) into one report, which names each source and, like any part of
a plan, gives no verdict, unless the pooled runs are exactly the mode's plan (every job,
each run to its end once): then it is the mode's result, run in parts.

Ctrl-C (or SIGTERM) while the in-process service runs a plan acts as `--deadline` reached
now: what has not ended is cancelled and the report is written with what ran; a second
Ctrl-C aborts without one.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import shlex
import signal
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.suite_pool import is_whole_plan, pool_runs  # noqa: E402
from benchmarks.suite_report import machine, write_report  # noqa: E402
from benchmarks.xor_delay import parse_seeds  # noqa: E402
from server.specs import ComparisonSpec  # noqa: E402
from server.suites import SUITES, suite_named  # noqa: E402
from server.suites.base import Mode, Report, Run, Suite  # noqa: E402
from server.suites.render import markdown_row  # noqa: E402
from server.suites.results import (  # noqa: E402
    SHOWN_MODES,
    partial_records,
    report_record,
    results_folder,
)

RESULTS = ROOT / "benchmarks" / "results"

Plan = list[tuple[str, ComparisonSpec]]


class _Collector:
    """A plan's events per job, with `k/n jobs ended` on stderr (one line rewritten)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.total = sum(len(spec.optimizers) * len(spec.seeds) for _, spec in self.plan)
        self.events: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.runs: list[Run] = []
        self.ended = 0

    def record(self, job_id: str, event: Any) -> None:
        self.events[job_id].append(event.model_dump(mode="json"))
        if event.type == "status":
            self.ended += 1
            end = "" if self.ended < self.total else "\n"
            print(f"\r{self.ended}/{self.total} jobs ended", end=end, file=sys.stderr)

    def ended_jobs(self, title: str, jobs: list[dict[str, Any]]) -> None:
        self.runs += [_run(title, job, self.events[job["id"]]) for job in jobs]


@dataclasses.dataclass(frozen=True)
class LocalRun:
    """How the in-process job service runs a plan: its jobs `concurrency` at a time, each
    with `threads` torch threads on `device`; after `deadline` seconds (if set) the jobs
    not yet ended are cancelled, so a machine lent for a while still yields a report."""

    data: str | None = None
    threads: int = 1
    concurrency: int = 1
    device: str = "auto"
    deadline: float | None = None


class _EarlyStop:
    """The event that cuts a run short (the deadline, or a signal) and why, for the report:
    a report whose jobs were cancelled says what cancelled them."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.started = time.monotonic()
        self.why = ""

    def __call__(self, why: str) -> None:
        if not self.event.is_set():
            self.why = f"{why} after {time.monotonic() - self.started:,.0f} s"
            self.event.set()

    def note(self, runs: list[Run]) -> str:
        cancelled = sum(run.status == "cancelled" for run in runs)
        if not self.why or not cancelled:
            return ""
        return (
            f"Cut short: {self.why}, the {cancelled} job(s) not yet ended were cancelled "
            "(listed as cancelled, not counted)."
        )


@contextlib.contextmanager
def _stopped_by_signals(stop: _EarlyStop) -> Iterator[None]:
    """While a plan runs, Ctrl-C or SIGTERM acts as an early deadline: the jobs not yet
    ended are cancelled and the report keeps what ran (hours of runs are not lost to a
    keystroke, or to a lent machine being taken back); a second signal aborts."""

    def stop_once(signum: int, frame: Any) -> None:
        if stop.event.is_set():
            raise KeyboardInterrupt
        name = signal.Signals(signum).name
        stop(name)
        print(
            f"\n{name}: cancelling the jobs not yet ended; the report "
            "keeps what ran (send it again to abort without a report)",
            file=sys.stderr,
        )

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may install handlers; a deadline still applies
        return
    previous = {sig: signal.signal(sig, stop_once) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_local(plan: Plan, how: LocalRun) -> tuple[list[Run], str]:
    """The plan's comparisons through a job service in this process, one after another;
    with a note for the report when the deadline or a signal cut them short ("" if not)."""
    from playground.cli_jobs import LocalJobs

    collector = _Collector(plan)
    stop = _EarlyStop()
    timer = None
    if how.deadline is not None:
        timer = threading.Timer(how.deadline, stop, (f"the --deadline of {how.deadline:g} s",))
    service = LocalJobs(None, how.data, collector.total, how.threads, how.concurrency, how.device)
    with _stopped_by_signals(stop), service as jobs:
        if timer is not None:
            timer.daemon = True
            timer.start()
        for title, spec in collector.plan:
            stored = jobs.submit(spec)
            jobs.follow([job["id"] for job in stored], collector.record, stop.event)
            collector.ended_jobs(title, [jobs.job(job["id"]) for job in stored])
    if timer is not None:
        timer.cancel()
    return collector.runs, stop.note(collector.runs)


def run_api(plan: Plan, url: str, token: str | None) -> list[Run]:
    """The plan's comparisons through a running server's API (its executor, its limits)."""
    from playground.client import ApiClient

    collector = _Collector(plan)
    base = url.rstrip("/")
    client = ApiClient(base if base.endswith("/api") else f"{base}/api", token=token, timeout=60)
    try:
        for title, spec in collector.plan:
            comparison = client.submit_comparison(spec.model_dump(mode="json", exclude_unset=True))
            for message in client.events(comparison["id"]):
                collector.record(message.job_id, message.event)
            collector.ended_jobs(title, [client.job(job_id) for job_id in comparison["job_ids"]])
    finally:
        client.close()
    return collector.runs


def _run(title: str, job: dict[str, Any], events: list[dict[str, Any]]) -> Run:
    # the final status event, not the job row: the row is updated just after the event is
    # stored, so a reader that saw the event can still find the row "running"
    ended = [e["status"] for e in events if e.get("type") == "status"]
    return Run(
        comparison=title,
        label=job["optimizer_label"],
        seed=int(job["seed"]),
        status=ended[-1] if ended else job["status"],
        spec=job["spec"],
        events=events,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="benchmarks/suite.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("suite", nargs="?", help="suite name (--list shows them)")
    parser.add_argument("--list", action="store_true", help="list the suites and exit")
    parser.add_argument(
        "--claims", action="store_true", help="print README's claim → verdict table and exit"
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--quick", action="store_true", help="the CPU mode (default)")
    modes.add_argument("--full", action="store_true", help="the full mode (a GPU machine)")
    modes.add_argument("--smoke", action="store_true", help="seconds; checks the path only")
    parser.add_argument("--out", type=Path, help="report folder (default results/<suite>/<mode>)")
    parser.add_argument("--data", help="local CIFAR-10 archive or folder (the cifar suites)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--api", metavar="URL", help="submit to this server instead")
    parser.add_argument("--token", default=os.environ.get("PSGD_PLAYGROUND_TOKEN"))
    local = parser.add_argument_group("the in-process job service (not with --api)")
    local.add_argument("--jobs", type=int, default=1, help="jobs run at once (default 1)")
    local.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    local.add_argument(
        "--deadline", type=float, metavar="SECONDS", help="cancel what has not ended by then"
    )
    trim = parser.add_argument_group("trimming the mode's plan (the report says so)")
    trim.add_argument("--only", metavar="TEXT", help="comparisons whose title holds TEXT")
    trim.add_argument("--entries", metavar="I,J", help="optimizer entries at these positions")
    trim.add_argument(
        "--seeds",
        metavar="N|A-B,C",
        help="the plan's first N seeds, or these seeds instead (A-B a range, commas between)",
    )
    trim.add_argument("--cap", type=int, metavar="STEPS", help="at most this many steps a job")
    parser.add_argument("--plan", action="store_true", help="print the plan and exit")
    parser.add_argument(
        "--from",
        dest="sources",
        metavar="FOLDER",
        type=Path,
        action="append",
        help="analyse the runs kept in this report folder instead of running (repeat to pool)",
    )
    args = parser.parse_args(argv)
    if args.list:
        for suite in SUITES.values():
            print(f"{suite.name:10s} {suite.title}\n{'':10s} claim: {suite.claim}")
        return 0
    if args.claims:
        print(claims_table(results_folder(None)))
        return 0
    if not args.suite:
        parser.error("name a suite (--list shows them)")
    try:
        suite = suite_named(args.suite)
    except KeyError as e:
        parser.error(f"suite: {e.args[0]}")
    for flag in ("threads", "jobs", "cap"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag}: must be at least 1")
    if args.deadline is not None and args.deadline <= 0:
        parser.error("--deadline: must be a positive number of seconds")
    if args.api and args.data:
        parser.error("--data: a server finds its own data; leave --data out with --api")
    if args.api:
        for flag in ("jobs", "device", "deadline"):
            if getattr(args, flag) != parser.get_default(flag):
                parser.error(f"--{flag}: only for the in-process job service; not with --api")
    if args.sources:
        return _analyse_again(suite, args, parser, argv)
    mode: Mode = "full" if args.full else "smoke" if args.smoke else "quick"
    plan, trimmed = _plan(suite, mode, args, parser)
    if args.plan:
        print(plan_text(plan))
        return 0
    started, where = time.time(), machine()  # the code the jobs run: as it is now
    if suite.measure is not None:
        report, runs = suite.measure(mode), None
    else:
        runs, stopped = _runs(plan, args)
        report = _analysed(suite, runs, mode, trimmed)
        if stopped:  # after the trimming note, which opens a trimmed report's notes
            at = 1 if trimmed else 0
            notes = [*report.notes[:at], stopped, *report.notes[at:]]
            report = dataclasses.replace(report, notes=notes)
    out = args.out or RESULTS / suite.name / (f"{mode}-partial" if trimmed else mode)
    write_report(suite, mode, report, out, started=started, command=_command(argv), where=where,
                 runs=runs, trimmed=trimmed)  # fmt: skip
    print(f"{suite.name} ({mode}): {report.verdict}. {report.finding}\nreport: {out}/report.md")
    return 0


def _runs(plan: Plan, args: argparse.Namespace) -> tuple[list[Run], str]:
    if args.api:
        return run_api(plan, args.api, args.token), ""
    return run_local(plan, LocalRun(args.data, args.threads, args.jobs, args.device, args.deadline))


def _analysed(suite: Suite, runs: list[Run], mode: Mode, trimmed: str) -> Report:
    assert suite.analyse is not None
    report = suite.analyse(runs, mode)
    return _partial(report, trimmed) if trimmed else report


#: flags that make or trim runs: meaningless when the runs are read from reports
_RUN_FLAGS = ("quick", "full", "smoke", "data", "threads", "api", "jobs", "device", "deadline",
              "only", "entries", "seeds", "cap", "plan")  # fmt: skip


def _analyse_again(
    suite: Suite, args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str] | None
) -> int:
    """`--from`: the kept runs of one or more reports, analysed (pooled) by this code."""
    if suite.analyse is None:
        parser.error(f"--from: {suite.name} measures; its reports keep no runs")
    for flag in _RUN_FLAGS:
        if getattr(args, flag) != parser.get_default(flag):
            parser.error(f"--{flag}: runs nothing with --from; the runs come from the reports")
    if args.out is None:
        parser.error(
            "--out: name the folder of the new report (--from leaves its sources as they are)"
        )
    started = time.time()
    try:
        mode, runs, trimmed, sources = pool_runs(suite.name, args.sources)
    except ValueError as e:
        parser.error(f"--from: {e}")
    assert suite.plan is not None  # a suite that analyses runs plans them
    whole = bool(trimmed) and is_whole_plan(suite.plan(mode), runs)
    report = _analysed(suite, runs, mode, "" if whole else trimmed)
    if whole:
        report, trimmed = _whole(report, trimmed), ""
    write_report(suite, mode, report, args.out, started=started, command=_command(argv),
                 runs=runs, trimmed=trimmed, sources=sources)  # fmt: skip
    print(
        f"{suite.name} ({mode}): {report.verdict}. {report.finding}\nreport: {args.out}/report.md"
    )
    return 0


def _plan(
    suite: Suite, mode: Mode, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> tuple[Plan, str]:
    """The mode's plan, trimmed as the flags ask, and a sentence saying how ("" if not)."""
    flags = [f for f in ("only", "entries", "seeds", "cap") if getattr(args, f) is not None]
    if suite.plan is None:
        if flags or args.plan:
            parser.error(f"--{(flags or ['plan'])[0]}: {suite.name} measures; it has no plan")
        return [], ""
    try:
        return trim_plan(
            suite.plan(mode), args.only, _positions(args.entries), _seeds(args.seeds), args.cap
        )
    except ValueError as e:
        parser.error(str(e))


def _positions(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        return [int(word) for word in text.split(",")]
    except ValueError:
        raise ValueError(
            f"--entries: {text!r} is not a comma-separated list of positions"
        ) from None


def _seeds(text: str | None) -> int | list[int] | None:
    """`--seeds`: N (the plan's first N), or seeds in place of the plan's: a range A-B, or
    several seeds and ranges with commas between (`17,19`, `0-4,9`)."""
    if text is None:
        return None
    try:
        if "-" in text or "," in text:
            return parse_seeds(text)
        if int(text) >= 1:
            return int(text)
    except ValueError:
        pass
    raise ValueError(
        f"--seeds: {text!r} is neither a count N ≥ 1 nor seeds A-B or A,B,C-D (each once, ≥ 0)"
    )


def _seeds_said(seeds: int | list[int] | None) -> str:
    if seeds is None:
        return ""
    if isinstance(seeds, int):
        return f"the first {seeds} seeds"
    if seeds == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return f"seeds {', '.join(map(str, seeds))}"


def trim_plan(
    plan: Plan,
    only: str | None = None,
    entries: list[int] | None = None,
    seeds: int | list[int] | None = None,
    cap: int | None = None,
) -> tuple[Plan, str]:
    """Keep the comparisons whose title holds `only`, in each the optimizer entries at
    `entries` (positions as `--plan` prints them), the first `seeds` seeds (or a list of
    seeds in their place), and at most
    `cap` steps a job; with the sentence the report carries about it."""
    kept = [(title, spec) for title, spec in plan if only is None or only in title]
    if not kept:
        titles = "; ".join(title for title, _ in plan)
        raise ValueError(f"--only: no comparison's title holds {only!r} (titles: {titles})")
    trimmed = []
    for title, spec in kept:
        data = spec.model_dump(mode="json", exclude_unset=True)
        if entries is not None:
            count = len(data["optimizers"])
            if any(not 0 <= i < count for i in entries):
                raise ValueError(f"--entries: {title} has entries 0 to {count - 1}")
            data["optimizers"] = [data["optimizers"][i] for i in entries]
        if isinstance(seeds, int):
            data["seeds"] = list(spec.seeds)[:seeds]
        elif seeds is not None:
            data["seeds"] = seeds
        if cap is not None and (spec.steps is None or spec.steps > cap):
            data["steps"] = cap
        trimmed.append((title, ComparisonSpec.model_validate(data)))
    changes = [
        f"only the comparisons titled with {only!r}" if only is not None else "",
        f"entries {', '.join(map(str, entries))} of each" if entries is not None else "",
        _seeds_said(seeds),
        f"a cap of {cap:,} steps a job" if cap is not None else "",
    ]
    said = "; ".join(change for change in changes if change)
    return trimmed, said and f"Trimmed plan: {said}."


def _partial(report: Report, trimmed: str) -> Report:
    """A trimmed run cannot settle its mode's claim: say how it was trimmed, and no verdict."""
    note = f"{trimmed} This is part of the mode's plan, not its result."
    return dataclasses.replace(
        report, verdict="not yet run at full scale", notes=[note, *report.notes]
    )


def _whole(report: Report, pooled: str) -> Report:
    """Parts that together are the whole plan are its result: say how they were pooled."""
    note = f"{pooled} Together they are every job of the mode's plan, each run to its end once."
    return dataclasses.replace(report, notes=[note, *report.notes])


def plan_text(plan: Plan) -> str:
    """The plan as `--plan` prints it: each comparison, its entries by position, its jobs."""
    lines, total = [], 0
    for title, spec in plan:
        jobs = len(spec.optimizers) * len(spec.seeds)
        total += jobs
        lines.append(f"{title}: {jobs} jobs, seeds {list(spec.seeds)}, cap {spec.steps} steps")
        for position, entry in enumerate(
            spec.model_dump(mode="json", exclude_unset=True)["optimizers"]
        ):
            lines.append(f"  {position:2d}  {json.dumps(entry)}")
    lines.append(f"{total} jobs in all")
    return "\n".join(lines)


def claims_table(folder: Path | None) -> str:
    """README's claim → verdict table, from the committed reports (quick and full mode), with
    links to the suite's other reports (trimmed runs), whose evidence README discusses."""
    lines = [
        "| claim | suite | quick mode | full mode | other reports (trimmed runs) |",
        "|---|---|---|---|---|",
    ]
    for suite in SUITES.values():
        cells = []
        for mode in SHOWN_MODES:
            record = report_record(folder, suite.name, mode)
            if record is None:
                cells.append("not run")
                continue
            report, link = record["report"], f"benchmarks/results/{suite.name}/{mode}/report.md"
            cells.append(f"**{report['verdict']}** ({record['date']}, [report]({link})): "
                         f"{report['finding']}")  # fmt: skip
        others = ", ".join(
            f"[{name}](benchmarks/results/{suite.name}/{name}/report.md)"
            for name in partial_records(folder, suite.name)
        )
        lines.append(markdown_row([suite.claim, f"`{suite.name}`", *cells, others or "none"]))
    return "\n".join(lines)


def _command(argv: list[str] | None) -> str:
    """The command line as run, for the record, without the token's value."""
    words, hidden = ["python", "benchmarks/suite.py"], False
    for word in sys.argv[1:] if argv is None else argv:
        if hidden or word.startswith("--token="):
            word, hidden = "--token=…" if not hidden else "…", False
        elif word == "--token":
            hidden = True
        words.append(word)
    return shlex.join(words).replace("'…'", "…").replace("'--token=…'", "--token=…")


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:  # `--plan | head`: the reader has gone, not an error of ours
        from playground.cli_output import silence_closed_stdout

        raise SystemExit(silence_closed_stdout()) from None
