"""What the playground costs over a bare training loop, per preset task (issue 12).

What it measures
    Each case (a task preset, an optimizer, a step budget, seed 0) runs three ways,
    interleaved round by round so machine load hits all three alike:
      bare    the task and optimizer built from the registry, stepped in a plain loop
              (next batch, step, read the loss): no events, no snapshots;
      runner  `server.runner.run_job` with a no-op sink (what `psgd-playground run` does);
      api     POST /api/jobs to a real `psgd-playground serve` on 127.0.0.1 with one SSE
              client attached: seconds from the POST to the first metrics event and to the
              final status (the server's own worker process, threads and start-up included),
              and the CPU seconds the server's own process used meanwhile (its event loop,
              executor thread and store; not the job's worker): per-event costs show there
              even when other load blurs the wall times.
    All three use the same torch thread count (--threads; the server gets it as its
    threads_per_job): on a loaded 2-core machine two threads made a delayed-XOR step 25×
    slower than one.
    Ratios are medians over rounds, to the bare loop's median.

Targets (issue 12): ≤ 1.05× bare for jobs of 30 s or more, ≤ 1.5× for short landscape jobs,
first metrics event ≤ 1 s after the POST (p50).

How to run
    .venv/bin/python benchmarks/overhead.py --quick          # seconds; the smoke test's mode
    .venv/bin/python benchmarks/overhead.py                  # full: XOR 300 steps, CIFAR epoch
    Flags: --quick  --rounds N (default 3; quick 1)  --threads N (default 1)
    --cases rosenbrock,quadratic,xor32,xor64,cifar  --steps N (the step budget of every case
    but cifar, e.g. `--cases xor64 --steps 1800` for a job of 30 s or more)  --no-api  --out DIR
    (default benchmarks/results/overhead/<time>/, git-ignored)  --markdown PATH (also
    write the table there, e.g. benchmarks/overhead.md, which README links).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

#: the kinds of observation the runner spaces by cost (the summary's `overhead` keys)
OBSERVATIONS = ("snapshots", "trajectories", "evaluations")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.local_server import LocalServer  # noqa: E402
from server.runner import JobSpec, Work, _take_step, run_job  # noqa: E402
from server.tasks import cifar  # noqa: E402

CIFAR_ARCHIVE = Path(
    os.environ.get("PSGD_PLAYGROUND_CIFAR")
    or ROOT.parent / "shared" / "data" / "cifar-10-subset-python.tar.gz"
)


@dataclass(frozen=True)
class Case:
    name: str
    spec: dict[str, Any]
    landscape: bool = False


def cases(quick: bool, steps: int | None = None) -> dict[str, Case]:
    """The preset tasks; quick mode shrinks every budget to a few seconds; `steps` replaces
    the step budget of the step-counted ones (all but CIFAR's epoch)."""
    xor_steps = steps or (20 if quick else 300)
    cifar_task = {"name": "cifar10", "dataset": CIFAR_ARCHIVE.name}
    if quick:
        cifar_task.update(train_size=512, test_size=256)
    return {
        "rosenbrock": Case(
            "rosenbrock",
            {"task": {"name": "rosenbrock"}, "optimizer": {"name": "psgd-dense"}},
            landscape=True,
        ),
        "quadratic": Case(
            "quadratic",
            {"task": {"name": "quadratic"}, "optimizer": {"name": "psgd-dense"}},
            landscape=True,
        ),
        "xor32": Case(
            "xor32",
            {
                "task": {"name": "xor", "sequence_length": 32},
                "optimizer": {"name": "psgd-lra"},
                "steps": xor_steps,
            },
        ),
        "xor64": Case(
            "xor64",
            {
                "task": {"name": "xor", "sequence_length": 64},
                "optimizer": {"name": "psgd-lra"},
                "steps": xor_steps,
            },
        ),
        "cifar": Case(
            "cifar",
            {"task": cifar_task, "optimizer": {"name": "psgd-kron"}, "epochs": 1},
        ),
    }


def job_spec(case: Case, quick: bool, steps: int | None = None) -> dict[str, Any]:
    spec = {"seed": 0, "device": "cpu", **case.spec}
    if case.landscape:
        spec["steps"] = steps or (100 if quick else 2000)
    return spec


@contextlib.contextmanager
def data_for(case: Case) -> Iterator[None]:
    if case.name == "cifar":
        with cifar.local_data(CIFAR_ARCHIVE):
            yield
    else:
        yield


def bare(spec: dict[str, Any]) -> float:
    """Seconds of the plain loop, building the task and optimizer included."""
    began = time.perf_counter()
    job = JobSpec.model_validate(spec)
    torch.manual_seed(job.seed)
    task = job.task.build(torch.device("cpu"), job.seed)
    opt = job.optimizer.build(task.params, job.seed)
    kind = job.optimizer.step_kind
    per_epoch = task.steps_per_epoch
    total = job.steps or (job.epochs or 1) * (per_epoch or 1)
    for _ in range(total):
        task.next_batch()
        float(_take_step(kind, opt, task, Work()).detach())
    if per_epoch is not None:
        task.evaluate()  # an epoch task's one evaluation belongs to the bare job too
    return time.perf_counter() - began


def runner(spec: dict[str, Any]) -> tuple[float, dict[str, Any]]:
    began = time.perf_counter()
    status = run_job(JobSpec.model_validate(spec), lambda event: None)
    if status.status != "succeeded":
        raise RuntimeError(f"runner job {status.status}: {status.message}")
    return time.perf_counter() - began, status.summary


class Server(LocalServer):
    """`psgd-playground serve` on a free loopback port, jobs with the same thread count."""

    def __init__(self, data_dir: Path, threads: int) -> None:
        # Each job gets --threads torch threads, like the bare loop and the runner.
        env = {
            "PSGD_PLAYGROUND_THREADS_PER_JOB": str(threads),
            cifar.EXTRA_DATA_DIR_ENV: str(CIFAR_ARCHIVE.parent),
        }
        super().__init__(data_dir, env)

    def job(self, spec: dict[str, Any]) -> tuple[float, float, float]:
        """(seconds from POST to the first metrics event, to the final status; CPU seconds
        the server's own process used meanwhile)."""
        cpu = self.cpu_seconds()
        began = time.perf_counter()
        response = self.client.post("/api/jobs", json=spec)
        if response.status_code != 201:
            raise RuntimeError(f"POST /api/jobs: {response.status_code} {response.text}")
        first = None
        url = f"/api/jobs/{response.json()['id']}/events"
        with self.client.stream("GET", url, timeout=None) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[len("data: ") :])["event"]
                if event["type"] == "metrics" and first is None:
                    first = time.perf_counter() - began
                if event["type"] == "status":
                    if event["status"] != "succeeded":
                        log = self.log_tail()
                        raise RuntimeError(f"api job {event['status']}: {event['message']}\n{log}")
                    break
        total = time.perf_counter() - began
        return first if first is not None else float("nan"), total, self.cpu_seconds() - cpu


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    chosen = cases(args.quick, args.steps)
    wanted = [chosen[name] for name in args.cases]
    if "cifar" in args.cases and not CIFAR_ARCHIVE.exists():
        print(f"skipping cifar: {CIFAR_ARCHIVE} not found (set PSGD_PLAYGROUND_CIFAR)")
        wanted = [c for c in wanted if c.name != "cifar"]
    times: dict[str, dict[str, list[float]]] = {c.name: {} for c in wanted}
    summaries: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="psgd-overhead-") as folder:
        server = None if args.no_api else Server(Path(folder), args.threads)
        try:
            for case in wanted:  # warm-up: one-time imports and data caches, untimed
                with data_for(case):
                    bare({**job_spec(case, args.quick, args.steps), "steps": 2, "epochs": None})
            for round_index in range(args.rounds):
                for case in wanted:
                    spec = job_spec(case, args.quick, args.steps)
                    record = times[case.name]
                    with data_for(case):
                        record.setdefault("bare", []).append(bare(spec))
                        seconds, summaries[case.name] = runner(spec)
                    record.setdefault("runner", []).append(seconds)
                    if server is not None:
                        first, total, cpu = server.job(spec)
                        record.setdefault("api_first_metrics", []).append(first)
                        record.setdefault("api", []).append(total)
                        record.setdefault("api_server_cpu", []).append(cpu)
                    print(f"round {round_index + 1}: {case.name} {_last(record)}", flush=True)
        finally:
            if server is not None:
                server.stop()
    return [
        _row(c, job_spec(c, args.quick, args.steps), times[c.name], summaries[c.name])
        for c in wanted
    ]


def _last(record: dict[str, list[float]]) -> str:
    return " ".join(f"{k} {v[-1]:.2f}s" for k, v in record.items())


def _row(
    case: Case, spec: dict[str, Any], record: dict[str, list[float]], summary: dict[str, Any]
) -> dict[str, Any]:
    median = {k: statistics.median(v) for k, v in record.items()}
    overhead = summary["overhead"]
    runner_seconds = median["runner"]
    row = {
        "case": case.name,
        "spec": spec,
        "steps": summary["steps"],
        "seconds": median,
        "runner_ratio": runner_seconds / median["bare"],
        # per kind of observation (snapshots, trajectories, evaluations): count and share
        "observations": {
            kind: {**overhead[kind], "share": overhead[kind]["seconds"] / summary["seconds"]}
            for kind in OBSERVATIONS
        },
        "samples": record,
    }
    if "api" in median:
        row["api_ratio"] = median["api"] / median["bare"]
        row["api_first_metrics_p50"] = median["api_first_metrics"]
        row["api_server_cpu_s"] = median["api_server_cpu"]
    return row


def markdown(rows: list[dict[str, Any]], args: argparse.Namespace) -> str:
    lines = [
        f"Overhead over the bare loop ({'quick' if args.quick else 'full'} mode, "
        f"{args.rounds} round(s), torch threads {args.threads}, "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}):",
        "",
        "| case | steps | bare s | runner s | runner / bare | API s | API / bare "
        "| first metrics s | server CPU s | "
        + " | ".join(f"{kind} (share)" for kind in OBSERVATIONS)
        + " |",
        "|---|---|---|---|---|---|---|---|---" + "|---" * len(OBSERVATIONS) + "|",
    ]
    for r in rows:
        s = r["seconds"]
        api = (
            f"{s['api']:.2f} | {r['api_ratio']:.2f}× | {r['api_first_metrics_p50']:.2f} "
            f"| {r['api_server_cpu_s']:.2f}"
            if "api" in s
            else "– | – | – | –"
        )
        lines.append(
            f"| {r['case']} | {r['steps']} | {s['bare']:.2f} | {s['runner']:.2f} "
            f"| {r['runner_ratio']:.2f}× | {api} "
            + "".join(
                f"| {o['count']} ({o['share']:.1%}) "
                for o in (r["observations"][kind] for kind in OBSERVATIONS)
            )
            + "|"
        )
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short jobs (the smoke test)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--cases", default="rosenbrock,quadratic,xor32,xor64,cifar")
    parser.add_argument(
        "--steps", type=int, help="step budget of every case but cifar (default: the mode's)"
    )
    parser.add_argument("--no-api", action="store_true", help="skip the server runs")
    parser.add_argument("--out", type=Path, help="results folder")
    parser.add_argument("--markdown", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    args.cases = [name.strip() for name in args.cases.split(",") if name.strip()]
    unknown = sorted(set(args.cases) - set(cases(True)))
    if unknown or not args.cases:
        parser.error(f"--cases: unknown {unknown}; choose from {', '.join(cases(True))}")
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    if args.steps is not None and args.steps < 1:
        parser.error("--steps must be at least 1")
    if args.out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        args.out = ROOT / "benchmarks" / "results" / "overhead" / f"{stamp}-{_mode(args)}"
    return args


def _mode(args: argparse.Namespace) -> str:
    return "quick" if args.quick else "full"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    rows = measure(args)
    table = markdown(rows, args)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overhead.json").write_text(json.dumps(rows, indent=2) + "\n")
    (args.out / "overhead.md").write_text(table)
    if args.markdown:
        args.markdown.write_text(table)
    print(f"written to {args.out}")
    return rows


if __name__ == "__main__":
    main()
