"""A sweep's trials as a table: one row per trial, one column per hyperparameter."""

from __future__ import annotations

import csv
import io
from typing import Any

COLUMNS = ("optimizer", "optimizer_index", "number", "status", "value", "job_id", "message")


def trials_csv(trials: list[dict[str, Any]]) -> str:
    """Each trial's identity, status and value, then `param_<name>` for every hyperparameter
    any trial searched (empty for an optimizer without it)."""
    names = sorted({name for trial in trials for name in trial["params"]})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*COLUMNS, *(f"param_{name}" for name in names)])
    for trial in trials:
        cells = [trial[c] for c in COLUMNS] + [trial["params"].get(n) for n in names]
        writer.writerow(["" if cell is None else cell for cell in cells])
    return out.getvalue()
