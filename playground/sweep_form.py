"""The Sweeps tab's search-space table and the sweep spec it reads back.

One editable table row per (optimizer, hyperparameter): `tune` ticks it, `low`/`high`/`log`
or `values` give its range. The ranges shown first are the server's own defaults
(`POST /api/sweeps?dry_run=true`, the function the API stores sweeps with), never restated
here; a hyperparameter the server finds no default range for gets an empty row to fill in,
with the server's reason beside the table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from playground.forms import FormError

SPACE_COLUMNS = ["optimizer", "hyperparameter", "tune", "type", "low", "high", "log", "values"]
SPACE_TYPES = ["str", "str", "bool", "str", "number", "number", "bool", "str"]
FIXED_COLUMNS = [0, 1, 3]  # which hyperparameter a row is, and its kind, are not edited
OBJECTIVES = ["final", "best", "steps_to_target", "seconds_to_target", "evaluations_to_target"]
TUNED_FIRST = "lr"  # ticked by default: the hyperparameter every comparison hinges on


def searchable(schema: Mapping[str, Any]) -> dict[str, str]:
    """Hyperparameter → its range type (`float`, `int`, `choice`) for every field a search
    could cover; lists, free text and the name are left out."""
    out = {}
    for name, prop in (schema.get("properties") or {}).items():
        variants = [v for v in prop.get("anyOf", [prop]) if v.get("type") != "null"]
        kinds = {v.get("type") for v in variants}
        if name == "name" or len(kinds) != 1:
            continue
        kind = kinds.pop()
        if "enum" in variants[0] or kind == "boolean":
            out[name] = "choice"
        elif kind in ("number", "integer"):
            out[name] = "float" if kind == "number" else "int"
    return out


def space_rows(
    optimizer: str, kinds: Mapping[str, str], defaults: Mapping[str, dict[str, Any] | str]
) -> list[list[Any]]:
    """The table rows of one optimizer: its server-derived default range per hyperparameter
    (a dict as the API stores it), or blanks where the server gave a reason instead."""
    ranged = [name for name in kinds if isinstance(defaults.get(name), dict)]
    first = TUNED_FIRST if TUNED_FIRST in ranged else (ranged[0] if ranged else None)
    rows = []
    for name, kind in kinds.items():
        param = defaults.get(name)
        if not isinstance(param, dict):
            rows.append([optimizer, name, False, kind, None, None, False, ""])
            continue
        values = param.get("values")
        rows.append(
            [
                optimizer,
                name,
                name == first,
                param["type"],
                _shown(param.get("low")),
                _shown(param.get("high")),
                bool(param.get("log")),
                "" if values is None else ", ".join(_choice_text(v) for v in values),
            ]
        )
    return rows


def _shown(bound: float | None) -> float | None:
    """A bound as a person reads it: 1e-11, not the 1.0000000000000001e-11 of default/100."""
    return None if bound is None else float(f"{bound:.6g}")


def keep_edits(fresh: list[list[Any]], shown: Sequence[Sequence[Any]] | None) -> list[list[Any]]:
    """`fresh` rows, with what the user set in rows still shown (same optimizer and name)."""
    edited = {(row[0], row[1]): list(row) for row in shown or [] if len(row) == len(SPACE_COLUMNS)}
    return [edited.get((row[0], row[1]), row) for row in fresh]


def _choice_text(value: Any) -> str:
    return (
        "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    )


def _choice_value(text: str) -> Any:
    lower = text.lower()
    if lower in ("true", "false"):
        return lower == "true"
    if lower in ("none", "null"):
        return None
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _ticked(cell: Any) -> bool:
    return cell is True or str(cell).strip().lower() in ("true", "1", "yes")


def _number(cell: Any, where: str) -> float | int:
    text = "" if cell is None else str(cell).strip()
    try:
        value = float(text)
    except ValueError:
        raise FormError(f"{where}: a number, got {text!r}" if text else f"{where}: empty") from None
    if math.isnan(value):
        raise FormError(f"{where}: empty")
    return int(value) if value.is_integer() else value


def read_space(rows: Sequence[Sequence[Any]], optimizers: Sequence[str]) -> dict[str, dict]:
    """Optimizer → {hyperparameter: range} of the ticked rows; FormError naming the cell."""
    space: dict[str, dict[str, Any]] = {name: {} for name in optimizers}
    for row in rows:
        optimizer, name, tune, kind, low, high, log, values = (list(row) + [None] * 8)[:8]
        if optimizer not in space or not _ticked(tune):
            continue
        where = f"{optimizer} · {name}"
        if kind == "choice":
            picked = [_choice_value(v.strip()) for v in str(values or "").split(",") if v.strip()]
            if not picked:
                raise FormError(f"{where}: values, separated by commas")
            space[optimizer][name] = {"type": "choice", "values": picked}
        else:
            low_value, high_value = _number(low, f"{where} low"), _number(high, f"{where} high")
            param = {"type": kind, "low": low_value, "high": high_value, "log": _ticked(log)}
            space[optimizer][name] = param
    for optimizer, params in space.items():
        if not params:
            raise FormError(f"{optimizer}: tick at least one hyperparameter to tune")
    return space


def sweep_spec(
    task: str,
    space: Mapping[str, dict[str, Any]],
    *,
    trials: float | None,
    seeds: float | None,
    steps: float | None,
    parallel: float | None,
    objective: Mapping[str, Any],
    pruning: Mapping[str, Any] | None,
    sampler: str,
    seed: float | None,
) -> dict[str, Any]:
    """The body of `POST /api/sweeps`; the server checks every field and names a bad one."""
    kind = objective.get("kind") or "final"
    wanted: dict[str, Any] = {"kind": kind}
    if kind.endswith("_to_target"):
        if not objective.get("target"):  # an empty number box reads 0, as in the compare view
            raise FormError(f"target: {kind} needs a target value")
        wanted["target"] = float(objective["target"])
    else:
        if objective.get("metric"):  # blank: the server's default (val_accuracy on data tasks)
            wanted["metric"] = objective["metric"]
        if objective.get("direction") in ("minimize", "maximize"):
            wanted["direction"] = objective["direction"]
    spec: dict[str, Any] = {
        "task": {"name": task},
        "optimizers": [{"name": name, "space": params} for name, params in space.items()],
        "objective": wanted,
        "sampler": sampler or "tpe",
    }
    for field, value in (("trials", trials), ("seeds", seeds), ("steps", steps),
                         ("parallel", parallel), ("seed", seed)):  # fmt: skip
        if value is not None:
            spec[field] = int(value)
    if pruning is not None:
        spec["pruning"] = {k: int(v) for k, v in pruning.items() if v is not None}
    return spec
