"""From flags and spec files to a validated comparison, and user errors as one line.

Used by `playground.cli`; every problem a user can cause here raises `UsageError` with a
message that names the flag, field or file at fault.
"""

from __future__ import annotations

import argparse
import difflib
import json
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


def validation_message(
    error: Any, context: str, tag: str | None = None, fields: list[str] | None = None
) -> str:
    """A pydantic ValidationError as one line: `context: field: message (got value)`.

    `tag` is the discriminator value to drop from error locations (the task or optimizer
    name); `fields` are the valid field names, listed when an unknown one was given.
    """
    found: dict[str, tuple[list[str], Any]] = {}
    for e in error.errors(include_url=False):
        loc = list(e["loc"])
        if tag is not None and loc and loc[0] == tag:
            loc = loc[1:]
        name = str(loc[0]) if loc else ""
        name += "".join(f"[{part}]" for part in loc[1:] if isinstance(part, int))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = f"unknown field (valid: {', '.join(fields)})" if fields else "unknown field"
        value = e.get("input")
        shown = json.dumps(value, default=str)
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        # Custom messages (value_error) quote the value already; unknown fields need none.
        quiet = e["type"] == "extra_forbidden" or (e["type"] == "value_error" and shown in msg)
        messages, got = found.setdefault(name, ([], None))
        if msg not in messages:
            messages.append(msg)
        if got is None and not quiet and value is not None and not isinstance(value, dict):
            found[name] = (messages, shown)
    parts = []
    for name, (messages, got) in found.items():
        text = " or ".join(messages) + (f" (got {got})" if got is not None else "")
        parts.append(f"{name}: {text}" if name else text)
    return f"{context}: " + "; ".join(parts)


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
    from pydantic import ValidationError

    from server.optimizers import REGISTRY, optimizer_config
    from server.specs import ComparisonSpec
    from server.tasks import TASKS, task_config

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
    try:
        task = task_config(task).model_dump()
    except ValidationError as e:
        fields = [f for f in TASKS[task["name"]].model_fields if f != "name"]
        message = validation_message(e, f"task {task['name']}", task["name"], fields)
        raise UsageError(message) from e

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
    resolved = []
    for o in optimizers:
        try:
            resolved.append(optimizer_config(o, task["name"]).model_dump())
        except ValidationError as e:
            fields = [f for f in REGISTRY[o["name"]].model_fields if f != "name"]
            message = validation_message(e, f"optimizer {o['name']}", o["name"], fields)
            raise UsageError(message) from e

    doc.update(task=task, optimizers=resolved)
    if args.seeds is not None:
        doc["seeds"] = list(range(args.seeds))
    elif args.seed_list is not None:
        doc["seeds"] = args.seed_list
    for key in _SCALARS:
        if getattr(args, key) is not None:
            doc[key] = getattr(args, key)
    try:
        spec = ComparisonSpec.model_validate(doc)
    except ValidationError as e:
        raise UsageError(validation_message(e, "spec")) from e
    return spec


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
