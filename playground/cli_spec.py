"""From flags and spec files to a validated comparison, and user errors as one line.

Used by `playground.cli`; every problem a user can cause here raises `UsageError` with a
message that names the flag, field or file at fault.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
from pathlib import Path
from typing import Any

PROG = "psgd-playground"
_SCALARS = ("steps", "epochs", "device", "snapshot_every", "target", "max_seconds")


class UsageError(Exception):
    """A user error: reported as one line, exit code 2."""


def one_line(text: str) -> str:
    return " ".join(str(text).split())


# ------------------------------------------------------------------------ value parsing
def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated seeds ≥ 0, got {text!r}")
    return seeds


def _value(text: str) -> Any:
    """A flag value: JSON when it parses (numbers, true, null, lists), else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _key_value(flag: str, text: str, example: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{flag} {text!r}: expected {example}")
    return key.strip(), _value(value)


def unknown_name(kind: str, name: str, names: list[str]) -> UsageError:
    """The error for a name that is not in `names`, with the closest match and the choices."""
    match = difflib.get_close_matches(name, names, n=1)
    hint = f" (did you mean {match[0]!r}?)" if match else ""
    return UsageError(f"unknown {kind} {name!r}{hint}; choose from: {', '.join(names)}")


# ------------------------------------------------------------------------ spec building
def _load_spec_file(path: str) -> dict[str, Any]:
    doc = read_spec_file(path, "task, optimizers, seeds, ...")
    if "optimizer" in doc and "optimizers" not in doc:  # a single-job spec
        doc["optimizers"] = [doc.pop("optimizer")]
    if "seed" in doc and "seeds" not in doc:
        doc["seeds"] = [doc.pop("seed")]
    return doc


def read_spec_file(path: str, fields: str) -> dict[str, Any]:
    """A .json or .yaml spec file as a mapping (`fields`: what it holds, for the error)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise UsageError(f"spec file {path}: expected a .json, .yaml or .yml file")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(
            f"cannot read spec file {path}: {getattr(e, 'strerror', None) or e}"
        ) from e
    try:
        if suffix == ".json":
            doc = json.loads(text)
        else:
            import yaml

            doc = yaml.safe_load(text)
    except ValueError as e:
        raise UsageError(f"spec file {path}: invalid JSON: {e}") from e
    except Exception as e:  # yaml.YAMLError and friends
        raise UsageError(f"spec file {path}: invalid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise UsageError(f"spec file {path}: expected a mapping with {fields}")
    return doc


def _as_spec(entry: Any, what: str) -> dict[str, Any]:
    if isinstance(entry, str):
        return {"name": entry}
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise UsageError(f"{what}: expected a name or a mapping with a name, got {entry!r}")
    return dict(entry)


def build_comparison(args: argparse.Namespace) -> Any:
    """The ComparisonSpec from a spec file and flags (flags win)."""
    from server.errors import InvalidSpec
    from server.optimizers import REGISTRY
    from server.specs import optimizer_labels, parse_comparison
    from server.tasks import TASKS

    doc = _load_spec_file(args.spec) if args.spec else {}
    task = _as_spec(doc["task"], "spec task") if doc.get("task") is not None else None
    if args.task:
        keep = task is not None and task.get("name") == args.task
        task = task if keep else {"name": args.task}
    if task is None:
        raise UsageError("no task: give --task NAME (see `psgd-playground tasks`) or --spec FILE")
    for text in args.task_option:
        key, value = _key_value("--task-option", text, "KEY=VALUE, e.g. dim=10")
        task[key] = value
    if task["name"] not in TASKS:
        raise unknown_name("task", task["name"], list(TASKS))

    entries = doc.get("optimizers") or []
    if not isinstance(entries, list):
        raise UsageError("spec optimizers: expected a list")
    optimizers = [_as_spec(entry, "spec optimizer") for entry in entries]
    if args.optimizer:
        from_file = {o["name"]: o for o in optimizers}
        optimizers = [dict(from_file.get(name, {"name": name})) for name in args.optimizer]
    if not optimizers:
        raise UsageError("no optimizer: give --optimizer NAME (see `psgd-playground optimizers`)")
    for o in optimizers:
        if o["name"] not in REGISTRY:
            raise unknown_name("optimizer", o["name"], list(REGISTRY))
    chosen = [o["name"] for o in optimizers]
    for text in args.set:
        target, value = _key_value("--set", text, "NAME.KEY=VALUE, e.g. adam.lr=0.01")
        name, dot, key = target.partition(".")
        if not dot or not key:
            raise UsageError(f"--set {text!r}: expected NAME.KEY=VALUE, e.g. adam.lr=0.01")
        if name not in chosen:
            raise UsageError(
                f"--set {text}: {name!r} is not among the chosen optimizers ({', '.join(chosen)})"
            )
        for o in optimizers:
            if o["name"] == name:
                o[key] = value
    doc.update(task=task, optimizers=optimizers)
    if args.seeds is not None:
        doc["seeds"] = list(range(args.seeds))
    elif args.seed_list is not None:
        doc["seeds"] = args.seed_list
    for key in _SCALARS:
        if getattr(args, key) is not None:
            doc[key] = getattr(args, key)
    try:
        return parse_comparison(doc)  # validated once, as the API validates its body
    except InvalidSpec as e:
        raise UsageError(f"spec: {_named(str(e), optimizer_labels(chosen))}") from e


def _named(message: str, labels: list[str]) -> str:
    """The one formatter's `optimizers[1].lr` as the run names it: `adam#2.lr`."""
    return re.sub(r"optimizers\[(\d+)\]", lambda m: labels[int(m.group(1))], message)


# ------------------------------------------------------------------------ local runs
def check_local_run(path: str | None, task: dict[str, Any], jobs: list[Any]) -> None:
    """Refuse a `--data PATH` that cannot serve the run (cifar10 only, any local archive or
    folder; the API takes only dataset names), and, like the server, a job whose estimated
    memory exceeds this machine's memory."""
    from server.tasks import cifar

    if path is None:
        _check_memory(jobs)
        return
    if task.get("name") != "cifar10":
        raise UsageError(f"--data: only the cifar10 task reads data, not {task.get('name')}")
    if task.get("dataset") is not None:
        raise UsageError("--data: give --data PATH or the task option dataset, not both")
    if not Path(path).expanduser().exists():
        raise UsageError(f"--data {path}: no such file or folder")
    with cifar.local_data(path):  # the estimate sizes this dataset
        _check_memory(jobs)


def _check_memory(jobs: list[Any]) -> None:
    from server import memory
    from server.jobs.executor import total_memory_mb

    try:
        machine = total_memory_mb() * 2**20
    except (ValueError, OSError, AttributeError):  # not on this platform
        return
    for job in jobs:
        if job.device == "cuda":
            continue  # GPU memory is not this check's
        why = memory.refusal(job, machine, job.optimizer.name, "this machine's memory")
        if why is not None:
            raise UsageError(f"spec: {why}")
