"""CPU seconds the server spends on a job's events, from its worker's pipe to an SSE stream.

What it measures
    In this process, the server's event path as `serve` builds it: a `LocalExecutor` (its
    bookkeeping thread reads the worker's pipe), the `JobService`, the SQLite `JobStore`,
    the `Broker` and one SSE stream (`server.api.sse.event_stream`) read to its end on an
    asyncio loop, for jobs whose worker (benchmarks/paced_worker.py: no torch) sends
    --events metrics events, one every --pace seconds, then a final status. For each job:
    this process's CPU seconds from the submit to the stream's end (the worker's own CPU is
    another process's), per event, and the wall time (a fresh worker's start included).
    CPU seconds, unlike wall times, barely move with other load, so this shows the server's
    per-event cost (issue 12: a landscape sends an event per step) on a busy machine too.
    Not in it: HTTP, the UI, the runner.

How to run
    .venv/bin/python benchmarks/event_path.py          # 3 jobs of 2000 events, 1 ms apart
    Flags: --events N (default 2000)  --pace S (default 0.001)  --rounds N (default 3)
    --out DIR (default benchmarks/results/event_path/<time>/, git-ignored)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.paced_worker import run_paced_worker  # noqa: E402
from server.api.sse import event_stream  # noqa: E402
from server.jobs.broker import Broker  # noqa: E402
from server.jobs.executor import LocalExecutor  # noqa: E402
from server.jobs.service import JobService  # noqa: E402
from server.jobs.store import JobStore  # noqa: E402
from server.settings import Settings  # noqa: E402


class PacedExecutor(LocalExecutor):
    worker_main = staticmethod(run_paced_worker)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="metrics events per job")
    parser.add_argument("--pace", type=float, default=0.001, help="seconds between events")
    parser.add_argument("--rounds", type=int, default=3, help="jobs (default 3)")
    parser.add_argument("--out", type=Path, help="results folder")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    if args.pace < 0:
        parser.error("--pace must be 0 or more")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.out = ROOT / "benchmarks" / "results" / "event_path" / stamp
    return args


async def _stream_length(service: JobService, job_id: str) -> int:
    """Events the job's SSE stream sends until it closes (after the final status)."""

    async def connected() -> bool:
        return False

    count = 0
    async for chunk in event_stream(service, [job_id], 0, 15.0, connected):
        count += chunk.count(b"\nevent: ")
    return count


def one_job(service: JobService, loop: asyncio.AbstractEventLoop, args: Any) -> dict[str, Any]:
    job_id = service.store.create_job({"events": args.events, "pace": args.pace})
    stream = asyncio.run_coroutine_threadsafe(_stream_length(service, job_id), loop)
    while service.broker.subscribers == 0:  # the stream is following before the job starts
        time.sleep(0.01)
    cpu, wall = time.process_time(), time.perf_counter()
    service.executor.submit(job_id, service.job(job_id)["spec"])
    streamed = stream.result(timeout=60 + 10 * args.events * args.pace)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    expected = args.events + 2  # started, the metrics, the final status
    if streamed != expected:
        raise RuntimeError(f"the stream sent {streamed} events, not {expected}")
    return {
        "events": streamed,
        "cpu_s": cpu,
        "cpu_ms_per_event": 1000 * cpu / streamed,
        "wall_s": wall,
    }


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    jobs = []
    with tempfile.TemporaryDirectory(prefix="psgd-event-path-") as folder:
        settings = Settings(data_dir=Path(folder))
        store = JobStore(settings.db_path)
        executor = PacedExecutor(concurrency=1, pool_size=0, memory_limit_mb=0)
        service = JobService(store, executor, Broker(loop), settings)
        service.start()
        try:
            for index in range(args.rounds):
                jobs.append(one_job(service, loop, args))
                job = jobs[-1]
                print(
                    f"job {index + 1}: {job['events']} events, server CPU {job['cpu_s']:.3f} s "
                    f"({job['cpu_ms_per_event']:.3f} ms an event), wall {job['wall_s']:.2f} s "
                    "(the worker's start included)",
                    flush=True,
                )
        finally:
            service.stop()
            store.close()
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
    return jobs


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    load_before = os.getloadavg()
    jobs = measure(args)
    result = {
        "events": args.events,
        "pace": args.pace,
        "jobs": jobs,
        "cpu_s_median": statistics.median(job["cpu_s"] for job in jobs),
        "load_average": {"before": load_before, "after": os.getloadavg()},
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    print(
        f"server CPU per job of {args.events} events: median {result['cpu_s_median']:.3f} s "
        f"(load average {load_before[0]:.1f} before, {result['load_average']['after'][0]:.1f} "
        "after)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "event_path.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")
    return result


if __name__ == "__main__":
    main()
