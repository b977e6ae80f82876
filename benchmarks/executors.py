"""Many small jobs on the local executor and on the Ray executor, on this machine (issue 14).

What it measures
    Each executor gets the same jobs (short quadratic landscape runs, Adam, seeds 0..N-1),
    driven through the Executor interface the server uses (no HTTP):
      ready      seconds from start() until a first round of `concurrency` jobs has ended
                 (local: its workers import torch; ray: the private cluster starts, the
                 bridge connects, the first actors start): what a fresh server costs;
      latency    one job at a time (--singles of them): seconds from submit to the job's
                 first event (`started`) and to its end (p50 / p90);
      batch      all --jobs submitted at once: jobs per minute until the last one ended,
                 and the seconds from submit to each job's first event (p50 / p90; these
                 include the wait for a free slot).
    Both run `concurrency` jobs at once: the local executor with that many slots, Ray with
    a private one-machine cluster of that many CPUs (one CPU per job). Ray runs every job in
    a fresh actor that starts its own worker process, with no warm pool: its overhead per
    job is an actor start plus a torch import, which the local executor's warm workers hide.

How to run
    .venv/bin/python benchmarks/executors.py                # 40 jobs, 3 singles, both
    Flags: --jobs N  --singles N  --steps N (default 50)  --concurrency N (default 2)
    --executors local,ray  --address A (a running cluster instead of a private one, e.g.
    127.0.0.1:6379)  --out DIR (default benchmarks/results/executors/<time>/, git-ignored).
    Writes results.json and results.md there and prints the table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.jobs.executor import Executor, LocalExecutor  # noqa: E402
from server.jobs.ray_executor import RayExecutor  # noqa: E402


class Recorder:
    """The executor's callbacks: when each job was submitted, first heard of, and ended."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.submitted: dict[str, float] = {}
        self.first: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.statuses: dict[str, str] = {}

    def on_event(self, job_id: str, event: dict[str, Any]) -> None:
        with self.lock:
            self.first.setdefault(job_id, time.perf_counter())
            if event.get("type") == "status":
                self.statuses[job_id] = str(event.get("status"))

    def on_exit(self, job_id: str, error: str | None) -> None:
        with self.lock:
            self.ended[job_id] = time.perf_counter()
            if error:
                self.errors[job_id] = error
            self.lock.notify_all()

    def submit(self, executor: Executor, job_id: str, spec: dict[str, Any]) -> None:
        with self.lock:
            self.submitted[job_id] = time.perf_counter()
        executor.submit(job_id, spec)

    def wait(self, job_ids: list[str], timeout: float) -> None:
        with self.lock:
            done = self.lock.wait_for(lambda: all(j in self.ended for j in job_ids), timeout)
        if not done:
            raise SystemExit(f"jobs did not end within {timeout:g} s")


def spec(seed: int, steps: int) -> dict[str, Any]:
    return {
        "task": {"name": "quadratic"},
        "optimizer": {"name": "adam", "lr": 0.05},
        "steps": steps,
        "seed": seed,
    }


def make(name: str, concurrency: int, address: str) -> Executor:
    if name == "local":
        return LocalExecutor(concurrency=concurrency)
    return RayExecutor(address=address, num_cpus=concurrency)


def quantiles(values: list[float]) -> tuple[float, float]:
    if len(values) == 1:
        return values[0], values[0]
    cuts = statistics.quantiles(values, n=10, method="inclusive")
    return statistics.median(values), cuts[8]


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    recorder = Recorder()
    began = time.perf_counter()
    executor = make(name, args.concurrency, args.address)
    executor.start(recorder.on_event, recorder.on_exit)
    try:
        warm_up = [f"warm-up-{i}" for i in range(args.concurrency)]
        for i, job_id in enumerate(warm_up):
            recorder.submit(executor, job_id, spec(i, args.steps))
        recorder.wait(warm_up, timeout=300)
        ready_s = time.perf_counter() - began
        singles = [f"single-{i}" for i in range(args.singles)]
        for i, job_id in enumerate(singles):
            recorder.submit(executor, job_id, spec(i, args.steps))
            recorder.wait([job_id], timeout=300)
        batch = [f"batch-{i}" for i in range(args.jobs)]
        start = time.perf_counter()
        for i, job_id in enumerate(batch):
            recorder.submit(executor, job_id, spec(i, args.steps))
        recorder.wait(batch, timeout=900)
        elapsed = time.perf_counter() - start
    finally:
        executor.shutdown()
    failed = {j: s for j, s in recorder.statuses.items() if s != "succeeded"}
    if failed or recorder.errors:
        raise SystemExit(f"{name}: jobs did not succeed: {failed} {recorder.errors}")

    def since_submit(times: dict[str, float], ids: list[str]) -> list[float]:
        return [times[j] - recorder.submitted[j] for j in ids]

    return {
        "executor": name,
        "ready_s": ready_s,
        "single_first_event_s": quantiles(since_submit(recorder.first, singles)),
        "single_end_s": quantiles(since_submit(recorder.ended, singles)),
        "batch_jobs_per_minute": args.jobs / elapsed * 60,
        "batch_seconds": elapsed,
        "batch_first_event_s": quantiles(since_submit(recorder.first, batch)),
    }


def table(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def pair(values: tuple[float, float]) -> str:
        return f"{values[0]:.2f} / {values[1]:.2f}"

    lines = [
        f"{args.jobs} quadratic jobs of {args.steps} Adam steps, {args.concurrency} at once; "
        f"{args.singles} single jobs first. Times in seconds, p50 / p90.",
        "",
        "| executor | ready | single: first event | single: end | batch jobs/min | "
        "batch: first event |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['executor']} | {row['ready_s']:.1f} | {pair(row['single_first_event_s'])} "
            f"| {pair(row['single_end_s'])} | {row['batch_jobs_per_minute']:.1f} "
            f"| {pair(row['batch_first_event_s'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--singles", type=int, default=3)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--executors", default="local,ray")
    parser.add_argument("--address", default="local")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    for flag in ("jobs", "singles", "steps", "concurrency"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1")
    names = [name.strip() for name in args.executors.split(",") if name.strip()]
    if not names or set(names) - {"local", "ray"}:
        parser.error("--executors: a comma-separated list of local and ray")
    out = args.out or ROOT / "benchmarks" / "results" / "executors" / time.strftime("%Y%m%d-%H%M%S")
    rows = []
    load_before = Path("/proc/loadavg").read_text().split()[:3]
    for name in names:
        print(f"{name}: running {args.singles} single jobs, then {args.jobs} at once", flush=True)
        rows.append(measure(name, args))
    load_after = Path("/proc/loadavg").read_text().split()[:3]
    text = table(rows, args) + f"\n\nLoad average (1/5/15 min): {' '.join(load_before)} before, "
    text += f"{' '.join(load_after)} after."
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    record = {"args": {**vars(args), "out": str(out)}, "rows": rows, "load": load_after}
    (out / "results.json").write_text(json.dumps(record, indent=2))
    (out / "results.md").write_text(text + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main()
