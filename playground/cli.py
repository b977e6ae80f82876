"""The `psgd-playground` command line: run comparisons, inspect tasks and optimizers, get data.

    psgd-playground run --task rosenbrock --optimizer psgd-dense --optimizer adam \\
        --steps 500 --seeds 3 --out results/
    psgd-playground optimizers psgd-kron      # the hyperparameters `--set` accepts
    psgd-playground data check ../shared/data/cifar-10-subset-python.tar.gz
    psgd-playground serve --port 8000         # the HTTP API on 127.0.0.1

Every user error (bad flag, unknown name, out-of-range value, unreadable file) is one line
`psgd-playground: error: ...` on stderr and exit code 2. `run` exits 0 when every job
succeeded, 1 when one diverged or failed, 130 when cancelled with Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from playground import cli_files as files
from playground import cli_info as info
from playground import cli_output as out
from playground.cli_jobs import LocalJobs
from playground.cli_spec import (
    PROG,
    UsageError,
    build_comparison,
    check_local_run,
    one_line,
    positive_float,
    positive_int,
    seed_list,
)
from playground.cli_sweep import add_sweep_parser
from server.version import package_version

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _warn(message: str) -> None:
    print(f"{PROG}: warning: {one_line(message)}", file=sys.stderr)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


# ------------------------------------------------------------------------ commands
def cmd_run(args: argparse.Namespace) -> int:
    spec = build_comparison(args)
    from server.errors import ServiceError
    from server.jobs import export
    from server.specs import expand

    if spec.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: CUDA is not available on this machine")
    jobs_to_run = [job.spec for job in expand(spec)]
    check_local_run(args.data, spec.task.model_dump(), jobs_to_run)
    folder = Path(args.out or Path("results") / time.strftime("%Y%m%d-%H%M%S"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create output folder {folder}: {e.strerror or e}") from e

    stop = threading.Event()
    with LocalJobs(args.store, args.data, len(jobs_to_run), args.threads) as jobs:
        if jobs.leftovers:
            _warn(f"cancelled {jobs.leftovers} job(s) an earlier run left queued in the store")
        try:
            stored = jobs.submit(spec)
        except ServiceError as e:
            raise UsageError(f"spec: {e}") from e
        progress = out.Progress(len(stored), quiet=args.quiet)
        recorder = _Recorder(jobs, stored, folder, progress)
        try:
            with _cancel_on_sigint(stop, progress):
                jobs.follow([job["id"] for job in stored], recorder.record, stop)
        finally:
            recorder.close()
        done = recorder.done
        metrics = export.collect_metrics(jobs.store, [jobs.job(r.job_id) for r in done])

    written = files.write_results(folder, done, spec.model_dump(), metrics)
    written += files.write_plots(folder, done, args.plot, _warn, args.x_axis)
    print(out.summary_table(done, spec.target))
    for line in out.failure_notes(done):
        print(line)
    if len(done) < len(stored):
        print(f"{len(stored) - len(done)} of {len(stored)} jobs not started (cancelled)")
    print(f"results in {folder}: {', '.join([*written, *(['events/'] if done else [])])}")
    if stop.is_set():
        return EXIT_INTERRUPTED
    return 0 if all(r.status.status == "succeeded" for r in done) else 1


class _Recorder:
    """Each event of a run's jobs into its record, its events/*.jsonl and the progress
    line, as it comes; a job cancelled before it started is no run (it gets neither)."""

    def __init__(
        self, jobs: LocalJobs, stored: list[dict[str, Any]], folder: Path, progress: out.Progress
    ) -> None:
        from server.specs import stored_job

        self.jobs, self.folder, self.progress = jobs, folder, progress
        self.records = {
            job["id"]: out.RunRecord(
                index=i + 1,
                label=job["optimizer_label"],
                job=stored_job(job["spec"]),
                job_id=job["id"],
            )
            for i, job in enumerate(stored)
        }
        self.logs: dict[str, files.EventLog] = {}
        self.done: list[out.RunRecord] = []

    def record(self, job_id: str, event: Any) -> None:
        record = self.records[job_id]
        if job_id not in self.logs:
            if event.type == "status" and self.jobs.job(job_id)["started"] is None:
                return  # cancelled while queued
            self.progress.start(record)
            self.logs[job_id] = files.EventLog(self.folder, record)
        record.events.append(event)
        self.logs[job_id].write(event)
        self.progress.event(event)
        if event.type == "status":
            self.logs.pop(job_id).close()
            record.status = event
            self.progress.finish(event)
            self.done.append(record)

    def close(self) -> None:
        for log in self.logs.values():
            log.close()


@contextlib.contextmanager
def _cancel_on_sigint(stop: threading.Event, progress: out.Progress) -> Iterator[None]:
    """The first Ctrl-C sets `stop` (the run cancels its jobs), a second one aborts."""

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        progress.note(f"{PROG}: cancelling the current job (Ctrl-C again to abort at once)")

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from server.errors import validation_message
    from server.settings import Settings

    flags = {"host": args.host, "port": args.port, "data_dir": args.data_dir}
    try:
        settings = Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValidationError as e:
        raise UsageError(f"settings: {validation_message(e.errors(), model=Settings)}") from e
    if settings.host not in ("127.0.0.1", "localhost", "::1") and settings.token is None:
        _warn(f"serving on {settings.host} without a token: anyone who reaches it can run jobs")
    import uvicorn

    from playground.app import create_app

    app = create_app(settings)  # without the ui extra, it warns and serves the API alone
    url = f"http://{settings.host}:{settings.port}"
    serving = f"the UI on {url}/ui and the API" if app.state.ui else "the API"
    print(f"{PROG}: serving {serving} on {url}/api", flush=True)
    print(f"{PROG}: jobs in {settings.db_path}", flush=True)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        timeout_graceful_shutdown=3,  # open event streams must not hold the shutdown
    )
    return 0


# ------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG, description="PSGD Playground from the terminal.", allow_abbrev=False
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run one job or a comparison (optimizers × seeds on one task)",
        description="Run optimizers × seeds on one task; print a summary, write JSON/CSV/plots.",
        allow_abbrev=False,
    )
    run.add_argument("--task", help="task name (see `psgd-playground tasks`)")
    run.add_argument(
        "--task-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="task option, value as JSON when it parses (e.g. dim=10); repeatable",
    )
    run.add_argument(
        "--optimizer",
        action="append",
        default=[],
        metavar="NAME",
        help="optimizer name (see `psgd-playground optimizers`); repeatable",
    )
    run.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="hyperparameter of a chosen optimizer, e.g. adam.lr=0.01; repeatable",
    )
    run.add_argument("--steps", type=positive_int, help="optimizer steps (default 500)")
    run.add_argument("--epochs", type=positive_int, help="epochs, for dataset tasks (CIFAR)")
    seeds = run.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=positive_int, metavar="N", help="run seeds 0..N-1")
    seeds.add_argument("--seed-list", type=seed_list, metavar="S,S,...", help="e.g. 0,5,9")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), help="default auto")
    run.add_argument(
        "--target",
        type=float,
        metavar="X",
        help="target of the task's metric (loss; test accuracy for CIFAR)",
    )
    run.add_argument(
        "--snapshot-every",
        type=positive_int,
        metavar="K",
        help="steps between spectrum/trajectory snapshots",
    )
    run.add_argument("--max-seconds", type=positive_float, metavar="S", help="time limit per job")
    run.add_argument(
        "--data",
        metavar="PATH",
        help="cifar10: read CIFAR-10 from this archive or folder (local runs only; the "
        "server takes a dataset name from its data folders)",
    )
    run.add_argument(
        "--spec", metavar="FILE", help="comparison spec (.json/.yaml); flags override it"
    )
    run.add_argument("--out", metavar="DIR", help="output folder (default results/<timestamp>)")
    run.add_argument(
        "--threads",
        type=positive_int,
        default=1,
        metavar="N",
        help="torch threads of each job (default 1, as the server's jobs)",
    )
    run.add_argument(
        "--store",
        metavar="DIR",
        help="keep the job store (jobs.sqlite) in this folder, e.g. to view the runs with "
        "`serve --data-dir DIR` (default: a temporary folder, deleted after the run)",
    )
    run.add_argument(
        "--plot",
        choices=("none", "html", "png", "both"),
        default="html",
        help="static plots to write (default html; png needs kaleido)",
    )
    run.add_argument(
        "--x-axis",
        choices=("step", "evaluations", "function_evaluations", "seconds"),
        default="step",
        help="x axis of the loss plot: step (default), evaluations (gradients + "
        "Hessian-vector products), function evaluations, or seconds since step 1",
    )
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(handler=cmd_run)

    tasks = commands.add_parser("tasks", help="list tasks, or show one task's options")
    tasks.add_argument("name", nargs="?", help="a task name")
    tasks.set_defaults(handler=info.cmd_tasks)

    optimizers = commands.add_parser(
        "optimizers", help="list optimizers, or show one's hyperparameters"
    )
    optimizers.add_argument("name", nargs="?", help="an optimizer name")
    optimizers.add_argument("--task", help="show the defaults with this task's preset applied")
    optimizers.set_defaults(handler=info.cmd_optimizers)

    add_sweep_parser(commands)

    serve = commands.add_parser(
        "serve",
        help="run the HTTP API (settings from PSGD_PLAYGROUND_* variables; see README)",
        description="Serve the job API; flags override the PSGD_PLAYGROUND_* variables.",
        allow_abbrev=False,
    )
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8000)")
    serve.add_argument(
        "--data-dir", help="folder of the job database (default ~/.local/share/psgd-playground)"
    )
    serve.set_defaults(handler=cmd_serve)

    data = commands.add_parser("data", help="download or check CIFAR-10")
    data_commands = data.add_subparsers(dest="data_command", metavar="ACTION")
    download = data_commands.add_parser(
        "download", help="fetch and verify the official CIFAR-10 archive"
    )
    download.add_argument(
        "--data-dir",
        help="folder to save into (default $PSGD_PLAYGROUND_DATA_DIR "
        "or ~/.cache/psgd-playground/data)",
    )
    download.set_defaults(handler=info.cmd_data_download)
    check = data_commands.add_parser("check", help="verify a CIFAR-10 archive or folder")
    check.add_argument("path", nargs="?", help="archive or folder (default: the data folder)")
    check.set_defaults(handler=info.cmd_data_check)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        handler = getattr(args, "handler", None)
        if handler is None:
            what = "data action (download, check)" if args.command == "data" else "command"
            raise UsageError(f"choose a {what}; see `{PROG} --help`")
        return handler(args)
    except UsageError as e:
        print(f"{PROG}: error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return out.silence_closed_stdout()
    except SystemExit as e:  # --help and --version
        return e.code if isinstance(e.code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
