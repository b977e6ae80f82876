"""Run one of the seed paper's benchmark suites (issue 16) and write its report.

    python benchmarks/suite.py --list
    python benchmarks/suite.py xor --quick                 # a few minutes on a CPU
    python benchmarks/suite.py xor --full --threads 4      # meant for a GPU machine
    python benchmarks/suite.py cifar --quick --data ../shared/data/cifar-10-subset-python.tar.gz

The suite's jobs go through a job service, as `psgd-playground run`'s do: by default one
in this process with the local executor (each job in its own worker, one at a time), or
with `--api URL` a running server's, so they use that server's executor (Ray included),
its limits and its token (`--token` or PSGD_PLAYGROUND_TOKEN). The report lands in
`benchmarks/results/<suite>/<mode>/` (or `--out`): report.json (machine, versions,
command, date, the report), report.md and one SVG per figure. Commit what you ran there.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.suite_report import write_report  # noqa: E402
from server.suites import SUITES, suite_named  # noqa: E402
from server.suites.base import Mode, Report, Run, Suite  # noqa: E402
from server.suites.results import SHOWN_MODES, report_record, results_folder  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


class _Collector:
    """A plan's events per job, with `k/n jobs ended` on stderr (one line rewritten)."""

    def __init__(self, suite: Suite, mode: Mode) -> None:
        assert suite.plan is not None
        self.plan = suite.plan(mode)
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


def run_local(suite: Suite, mode: Mode, data: str | None, threads: int) -> list[Run]:
    """The plan's comparisons through a job service in this process, one after another."""
    from playground.cli_jobs import LocalJobs

    collector = _Collector(suite, mode)
    with LocalJobs(None, data, collector.total, threads) as jobs:
        for title, spec in collector.plan:
            stored = jobs.submit(spec)
            jobs.follow([job["id"] for job in stored], collector.record, threading.Event())
            collector.ended_jobs(title, [jobs.job(job["id"]) for job in stored])
    return collector.runs


def run_api(suite: Suite, mode: Mode, url: str, token: str | None) -> list[Run]:
    """The plan's comparisons through a running server's API (its executor, its limits)."""
    from playground.client import ApiClient

    collector = _Collector(suite, mode)
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
    if args.threads < 1:
        parser.error("--threads: must be at least 1")
    if args.api and args.data:
        parser.error("--data: a server finds its own data; leave --data out with --api")
    mode: Mode = "full" if args.full else "smoke" if args.smoke else "quick"
    started = time.time()
    report = _report(suite, mode, args)
    out = args.out or RESULTS / suite.name / mode
    write_report(suite, mode, report, out, started=started, command=_command(argv))
    print(f"{suite.name} ({mode}): {report.verdict}. {report.finding}\nreport: {out}/report.md")
    return 0


def _report(suite: Suite, mode: Mode, args: argparse.Namespace) -> Report:
    if suite.measure is not None:
        return suite.measure(mode)
    assert suite.analyse is not None
    if args.api:
        runs = run_api(suite, mode, args.api, args.token)
    else:
        runs = run_local(suite, mode, args.data, args.threads)
    return suite.analyse(runs, mode)


def claims_table(folder: Path | None) -> str:
    """README's claim → verdict table, from the committed reports (quick and full mode)."""
    lines = ["| claim | suite | quick mode | full mode |", "|---|---|---|---|"]
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
        row = [suite.claim, f"`{suite.name}`", *cells]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |")
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
    return " ".join(words)


if __name__ == "__main__":
    raise SystemExit(main())
