"""`psgd-playground sweep`: tune each optimizer with the same trial budget, then re-run
the best configuration of each on fresh seeds.

    psgd-playground sweep --task rosenbrock --optimizer adam --optimizer sgd --tune lr \\
        --trials 20 --seeds 5 --steps 200
    psgd-playground sweep --spec sweep.yaml --trials 50      # flags override the file

It runs in-process what the server runs: a SweepService over a JobService with the
executor the settings name (the local one: a worker process per job), on a job store in a
temporary folder unless `--data-dir` keeps it. A line per finished trial, then each
optimizer's best configuration and the re-runs' results (mean with a 95 % interval, and
whether each pair differs beyond the noise). `--out DIR` writes sweep.json and trials.csv.
Ctrl-C cancels the sweep. Exit 0 when the sweep succeeded, 1 when it failed, 130 when
cancelled, 2 for a usage error (`psgd-playground: error: ...` naming the flag or field).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from playground.cli_spec import (
    UsageError,
    _key_value,
    positive_float,
    positive_int,
    read_spec_file,
)

EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
_OBJECTIVES = ("final", "best", "steps_to_target", "seconds_to_target", "evaluations_to_target")
_SCALARS = ("trials", "seeds", "seed", "steps", "epochs", "parallel", "sampler", "device")


def add_sweep_parser(commands: Any) -> None:
    """Register `sweep` on the CLI's subcommands."""
    sweep = commands.add_parser(
        "sweep",
        help="tune optimizers with equal trial budgets (Optuna), re-run each best on fresh seeds",
        description="Tune each optimizer's hyperparameters with the same number of trials, "
        "then re-run the best configuration of each on fresh seeds. Flags override --spec.",
        allow_abbrev=False,
    )
    sweep.add_argument("--spec", metavar="FILE", help="sweep spec (.json/.yaml); see README")
    sweep.add_argument("--task", help="task name (see `psgd-playground tasks`)")
    sweep.add_argument(
        "--task-option", action="append", default=[], metavar="KEY=VALUE", help="repeatable"
    )
    sweep.add_argument(
        "--optimizer", action="append", default=[], metavar="NAME", help="repeatable"
    )
    sweep.add_argument(
        "--tune",
        action="append",
        default=[],
        metavar="KEYS",
        help="hyperparameters to search with their default ranges, comma-separated: lr "
        "(every optimizer) or adam.lr (one); repeatable",
    )
    sweep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME.KEY=VALUE",
        help="a hyperparameter held fixed, e.g. sgd.momentum=0.9; repeatable",
    )
    sweep.add_argument("--trials", type=positive_int, help="trials per optimizer (default 20)")
    sweep.add_argument(
        "--seeds", type=_count, metavar="N", help="fresh seeds each best is re-run on (default 3)"
    )
    sweep.add_argument("--seed", type=_count, help="the trials' and sampler's seed (default 0)")
    sweep.add_argument("--steps", type=positive_int, help="steps of each job (default 500)")
    sweep.add_argument("--epochs", type=positive_int, help="epochs, for dataset tasks")
    sweep.add_argument("--objective", choices=_OBJECTIVES, help="what a trial scores")
    sweep.add_argument("--metric", help="loss (default) or an evaluation metric")
    sweep.add_argument("--direction", choices=("minimize", "maximize"))
    sweep.add_argument("--target", type=float, metavar="X", help="for the *_to_target objectives")
    sweep.add_argument("--parallel", type=positive_int, help="trials in flight (default 1)")
    sweep.add_argument("--sampler", choices=("tpe", "random"), help="default tpe")
    sweep.add_argument("--pruning", action="store_true", help="prune trials (median rule)")
    sweep.add_argument("--device", choices=("auto", "cpu", "cuda"))
    sweep.add_argument("--max-seconds", type=positive_float, metavar="S", help="limit per job")
    sweep.add_argument("--data-dir", metavar="DIR", help="keep the job store here")
    sweep.add_argument("--out", metavar="DIR", help="write sweep.json and trials.csv here")
    sweep.add_argument("--quiet", action="store_true", help="no progress lines")
    sweep.set_defaults(handler=cmd_sweep)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {text!r}")
    return int(text)


# ------------------------------------------------------------------------ the spec
def build_sweep_spec(args: argparse.Namespace) -> dict[str, Any]:
    """The sweep spec from --spec and the flags (flags win); validated later, by the
    sweep service, whose messages name the fields."""
    doc = read_spec_file(args.spec, "task, optimizers, trials, ...") if args.spec else {}
    task = doc.get("task")
    if args.task:
        task = task if isinstance(task, dict) and task.get("name") == args.task else {}
        task = {**task, "name": args.task}
    if not task:
        raise UsageError("no task: give --task NAME (see `psgd-playground tasks`) or --spec FILE")
    if not isinstance(task, dict):
        raise UsageError("spec task: expected a mapping with a name")
    for text in args.task_option:
        key, value = _key_value("--task-option", text, "KEY=VALUE, e.g. dim=10")
        task[key] = value
    doc["task"] = task
    doc["optimizers"] = _optimizers(doc.get("optimizers") or [], args)
    for key in _SCALARS:
        if getattr(args, key) is not None:
            doc[key] = getattr(args, key)
    if args.max_seconds is not None:
        doc["max_seconds"] = args.max_seconds
    objective = dict(doc.get("objective") or {})
    for key, value in (
        ("kind", args.objective),
        ("metric", args.metric),
        ("direction", args.direction),
        ("target", args.target),
    ):
        if value is not None:
            objective[key] = value
    if objective:
        doc["objective"] = objective
    if args.pruning:
        doc["pruning"] = doc.get("pruning") or {}
    return doc


def _optimizers(entries: Any, args: argparse.Namespace) -> list[dict[str, Any]]:
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("name"), str) for e in entries
    ):
        raise UsageError("spec optimizers: expected a list of mappings with a name")
    optimizers = [dict(e) for e in entries]
    if args.optimizer:
        from_file = {o["name"]: o for o in optimizers}
        optimizers = [dict(from_file.get(name, {"name": name})) for name in args.optimizer]
    if not optimizers:
        raise UsageError("no optimizer: give --optimizer NAME (see `psgd-playground optimizers`)")
    by_name = {o["name"]: o for o in optimizers}
    for text in args.tune:
        for key in filter(None, (k.strip() for k in text.split(","))):
            name, dot, field = key.rpartition(".")
            if dot and name not in by_name:
                raise UsageError(f"--tune {key}: {name!r} is not among the chosen optimizers")
            for o in [by_name[name]] if dot else optimizers:
                if field not in o.get("space", {}) and field not in o.setdefault("tune", []):
                    o["tune"].append(field)
    for text in args.set:
        target, value = _key_value("--set", text, "NAME.KEY=VALUE, e.g. sgd.momentum=0.9")
        name, dot, key = target.partition(".")
        if not dot or name not in by_name:
            raise UsageError(f"--set {text}: expected NAME.KEY=VALUE for a chosen optimizer")
        by_name[name][key] = value
    return optimizers


# ------------------------------------------------------------------------ running
def cmd_sweep(args: argparse.Namespace) -> int:
    spec = build_sweep_spec(args)
    stop = threading.Event()

    def on_sigint(signum: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("psgd-playground: cancelling the sweep (Ctrl-C again to abort at once)", flush=True)

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        sweep = run_sweep(spec, args.data_dir, _progress(args.quiet), stop)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    for line in report(sweep):
        print(line)
    if args.out:
        for path in write_results(Path(args.out), sweep):
            print(f"wrote {path}")
    if sweep["status"] == "cancelled":
        return EXIT_INTERRUPTED
    return 0 if sweep["status"] == "succeeded" else EXIT_FAILED


def run_sweep(
    spec: dict[str, Any],
    data_dir: str | None,
    on_event: Callable[[dict[str, Any]], None],
    stop: threading.Event,
    executor: Any = None,
) -> dict[str, Any]:
    """Run the sweep to its end (or until `stop` is set: cancelled); its final detail.
    `executor` replaces the one the settings name (tests pass an in-process one)."""
    from server.errors import InvalidSpec

    with _services(data_dir, executor) as sweeps:
        try:
            sweep_id = sweeps.create(spec)["id"]
        except InvalidSpec as e:
            raise UsageError(f"sweep spec: {e}") from e
        after = 0
        while True:
            for row in sweeps.store.events(sweep_id, after):
                after = row["id"]
                on_event(row["event"])
            status = sweeps.store.get_sweep(sweep_id)["status"]  # type: ignore[index]
            if status != "running":
                for row in sweeps.store.events(sweep_id, after):
                    on_event(row["event"])
                return sweeps.sweep(sweep_id)
            if stop.is_set():
                sweeps.cancel(sweep_id)
                continue
            time.sleep(0.1)


@contextlib.contextmanager
def _services(data_dir: str | None, executor: Any) -> Iterator[Any]:
    """A started JobService and SweepService, as the server's lifespan makes them."""
    from pydantic import ValidationError

    from server.api.app import make_executor
    from server.jobs.service import JobService
    from server.jobs.store import JobStore
    from server.settings import Settings
    from server.sweeps.service import SweepService
    from server.sweeps.store import SweepStore

    with contextlib.ExitStack() as stack:
        folder = data_dir or stack.enter_context(tempfile.TemporaryDirectory(prefix="sweep-"))
        try:
            settings = Settings(data_dir=Path(folder))
        except ValidationError as e:
            raise UsageError(f"settings: {e.errors()[0]['msg']}") from e
        store = JobStore(settings.db_path, settings.max_metric_points)
        stack.callback(store.close)
        # no broker: nothing subscribes here; the progress lines follow the store
        jobs = JobService(store, executor or make_executor(settings), None, settings)
        jobs.start()
        stack.callback(jobs.stop)
        sweeps = SweepService(jobs, SweepStore(settings.db_path))
        stack.callback(sweeps.store.close)
        resumed = sweeps.start()
        stack.callback(sweeps.stop)
        if resumed:  # a kept store's sweeps a killed run left: they go on, as in the server
            print(
                f"psgd-playground: warning: resuming {len(resumed)} sweep(s) left running in "
                f"{folder}: {', '.join(resumed)}",
                file=sys.stderr,
            )
        yield sweeps


# ------------------------------------------------------------------------ output
def _progress(quiet: bool) -> Callable[[dict[str, Any]], None]:
    def show(event: dict[str, Any]) -> None:
        if quiet:
            return
        kind = event.get("type")
        if kind == "trial_finished":
            value = "" if event["value"] is None else f" {_num(event['value'])}"
            best = event.get("best") or {}
            best_text = f" (best {_num(best['value'])})" if best else ""
            print(
                f"trial {event['optimizer']} #{event['number']}: {_params(event['params'])}"
                f" → {event['status']}{value}{best_text}",
                flush=True,
            )
        elif kind == "phase":
            print(f"re-running each best on fresh seeds (comparison {event['comparison_id']})")

    return show


def report(sweep: dict[str, Any]) -> list[str]:
    """The best configuration per optimizer, then the re-runs' statistics."""
    spec = sweep["spec"]
    objective = spec["objective"]
    what = objective["kind"] if objective["kind"] != "final" else f"final {objective['metric']}"
    lines = [
        f"sweep {sweep['id']}: {sweep['status']}"
        + (f" ({sweep['message']})" if sweep["message"] else ""),
        f"best of {spec['trials']} trials per optimizer ({what}, {sweep['direction']}):",
    ]
    if sweep.get("held_out"):
        lines.insert(1, f"data: {sweep['held_out']}")
    for optimizer in sweep["optimizers"]:
        best = optimizer["best"]
        text = (
            "no complete trial"
            if best is None
            else (f"{_num(best['value'])}  {_params(best['params'])}  (trial {best['number']})")
        )
        lines.append(f"  {optimizer['name']}: {text}")
    rerun = sweep.get("rerun")
    if rerun is not None:
        summary = rerun["summary"]
        lines.append(
            f"re-runs on seeds {', '.join(map(str, _rerun_seeds(spec)))} "
            f"({summary['metric_name']}, mean with a {summary['level'] * 100:g} % interval):"
        )
        for entry in summary["optimizers"]:
            final = entry["final"]
            interval = (
                "no finite value"
                if final is None
                else (
                    f"{_num(final['mean'])} [{_num(final['low'])}, {_num(final['high'])}] "
                    f"n={final['n']}"
                )
            )
            statuses = ", ".join(f"{n} {s}" for s, n in sorted(entry["statuses"].items()))
            lines.append(f"  {entry['label']}: {interval} ({statuses})")
        lines += [f"  {pair['sentence']}" for pair in summary["pairs"]]
    return lines


def _rerun_seeds(spec: dict[str, Any]) -> list[int]:
    return [spec["seed"] + 1 + i for i in range(spec["seeds"])]


def write_results(folder: Path, sweep: dict[str, Any]) -> list[Path]:
    from server.sweeps.export import trials_csv

    try:
        folder.mkdir(parents=True, exist_ok=True)
        detail = folder / "sweep.json"
        detail.write_text(json.dumps(sweep, indent=2, default=str), encoding="utf-8")
        trials = folder / "trials.csv"
        trials.write_text(trials_csv(sweep["trials"]), encoding="utf-8")
    except OSError as e:
        raise UsageError(f"--out {folder}: {e.strerror or e}") from e
    return [detail, trials]


def _params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={_num(v)}" for k, v in sorted(params.items()))


def _num(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
