"""The informational and data commands: `tasks`, `optimizers`, `data download|check`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from playground.cli_spec import PROG, UsageError, one_line, unknown_name


def _schema_type(prop: dict[str, Any]) -> str:
    if "anyOf" in prop:
        return "|".join(_schema_type(p) for p in prop["anyOf"])
    if "enum" in prop:
        return "|".join(str(v) for v in prop["enum"])
    if "const" in prop:
        return str(prop["const"])
    kind = prop.get("type", "any")
    if kind == "array":
        return f"list[{_schema_type(prop.get('items', {}))}]"
    names = {"number": "float", "integer": "int", "string": "str", "boolean": "bool"}
    return names.get(kind, kind)


def _schema_bounds(prop: dict[str, Any]) -> str:
    for p in (prop, *prop.get("anyOf", [])):
        if "pattern" in p:
            return f"matches {p['pattern']}"
        keys = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")
        if any(k in p for k in keys):
            lo = f"[{p['minimum']:g}" if "minimum" in p else None
            lo = lo or (f"({p['exclusiveMinimum']:g}" if "exclusiveMinimum" in p else "(-inf")
            hi = f"{p['maximum']:g}]" if "maximum" in p else None
            hi = hi or (f"{p['exclusiveMaximum']:g})" if "exclusiveMaximum" in p else "inf)")
            return f"{lo}, {hi}"
    return "-"


def _print_fields(schema: dict[str, Any], defaults: dict[str, Any] | None) -> None:
    rows = [["name", "type", "default", "bounds", "description"]]
    for key, prop in schema.get("properties", {}).items():
        if key == "name":
            continue
        default = defaults[key] if defaults and key in defaults else prop.get("default")
        rows.append(
            [
                key,
                _schema_type(prop),
                json.dumps(default),
                _schema_bounds(prop),
                one_line(prop.get("description", "")),
            ]
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])


def _name_list(items: list[dict[str, Any]]) -> None:
    width = max(len(item["name"]) for item in items)
    for item in items:
        print(f"{item['name'].ljust(width)}  {one_line(item['description'])}")


def _first_sentence(task: str) -> str:
    from server.tasks import TASKS

    text = one_line(TASKS[task].__doc__ or "")
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def cmd_tasks(args: argparse.Namespace) -> int:
    from server.tasks import TASKS, catalogue

    if args.name is None:
        _name_list([{**item, "description": _first_sentence(item["name"])} for item in catalogue()])
        return 0
    if args.name not in TASKS:
        raise unknown_name("task", args.name, list(TASKS))
    cls = TASKS[args.name]
    print(f"{args.name}: {one_line(cls.__doc__ or '')}")
    print("options (set with --task-option KEY=VALUE; values are JSON, e.g. null, [1, 2]):")
    _print_fields(cls.model_json_schema(), None)
    return 0


def cmd_optimizers(args: argparse.Namespace) -> int:
    from server.optimizers import REGISTRY, catalogue, optimizer_config
    from server.tasks import TASKS

    if args.name is None:
        _name_list(catalogue())
        return 0
    if args.name not in REGISTRY:
        raise unknown_name("optimizer", args.name, list(REGISTRY))
    if args.task is not None and args.task not in TASKS:
        raise unknown_name("task", args.task, list(TASKS))
    cls = REGISTRY[args.name]
    defaults = None
    note = ""
    if args.task:
        defaults = optimizer_config({"name": args.name}, args.task).model_dump()
        note = f"; defaults include the {args.task} preset"
    print(f"{args.name}: {cls.description}")
    print(f"hyperparameters (set with --set {args.name}.KEY=VALUE; null = empty{note}):")
    _print_fields(cls.model_json_schema(), defaults)
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from server.tasks import cifar

    tty = sys.stderr.isatty()
    shown = [-1]

    def progress(done: int, total: int | None) -> None:
        mib = done / 2**20
        if tty and int(mib) != shown[0]:
            shown[0] = int(mib)
            of = f" / {total / 2**20:.1f}" if total else ""
            sys.stderr.write(f"\rdownloading CIFAR-10: {mib:.1f}{of} MiB\x1b[K")
            sys.stderr.flush()

    try:
        path = cifar.download(args.data_dir, progress=progress)
    except (OSError, ValueError) as e:
        if tty:
            sys.stderr.write("\n")
        print(f"{PROG}: error: {one_line(str(e))}", file=sys.stderr)
        return 1
    if tty and shown[0] >= 0:
        sys.stderr.write("\n")
    print(f"CIFAR-10 ready at {path} (md5 verified)")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from server.tasks import cifar

    path = Path(args.path) if args.path else cifar.default_data_path()
    try:
        _, train_y, _, test_y = cifar.load_cifar10(path)
    except FileNotFoundError as e:
        raise UsageError(one_line(str(e))) from e
    except (OSError, ValueError) as e:
        print(f"{PROG}: error: {one_line(str(e))}", file=sys.stderr)
        return 1
    print(f"{path}: CIFAR-10 python format, {len(train_y)} train and {len(test_y)} test images")
    if path.is_file():
        try:
            cifar.verify_md5(path, cifar.CIFAR10_MD5)
            print("md5: matches the official archive")
        except ValueError:
            print("md5: not the official archive (a copy or a subset)")
    width = max(len(c) for c in cifar.CLASSES)
    print(f"  {'class'.ljust(width)}  {'train':>6}  {'test':>6}")
    for i, name in enumerate(cifar.CLASSES):
        train, test = int((train_y == i).sum()), int((test_y == i).sum())
        print(f"  {name.ljust(width)}  {train:>6}  {test:>6}")
    return 0
