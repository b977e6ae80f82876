"""The suites' committed reports, read back for the API and the Benchmarks tab.

`benchmarks/suite.py` writes `<folder>/<suite>/<mode>/report.json` plus one SVG per figure;
a trimmed run of a plan writes `<mode>-partial/` (or a folder named with `--out`). Here they
are only read. A report is named by its folder; a name a client sends must match the
folder-name pattern (no separator, no leading dot) and name a folder holding a readable
report.json, i.e. one of those listed here; other file names come from the suite registry
and the report's own figure list, never from a client, so a request cannot reach another
file.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, get_args

from server.suites.base import Mode

#: the modes whose reports are committed and shown (smoke reports prove the path only)
SHOWN_MODES: tuple[Mode, ...] = ("quick", "full")
_CHECKOUT_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"
#: a report folder's name: what `--out` and the modes produce ("full-partial-seeds10-19")
_REPORT_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")


def results_folder(configured: Path | None) -> Path | None:
    """The configured folder, else the source checkout's benchmarks/results, else None."""
    if configured is not None:
        return configured
    return _CHECKOUT_RESULTS if _CHECKOUT_RESULTS.is_dir() else None


def partial_records(folder: Path | None, suite: str) -> dict[str, dict[str, Any]]:
    """The suite's other committed reports (trimmed runs, part of a plan) by folder name,
    sorted: every folder but the modes' that holds a readable report.json (a smoke report
    proves the path only and is not shown). One read of each, for the whole listing."""
    if folder is None or not (folder / suite).is_dir():
        return {}
    records = {}
    for entry in sorted((folder / suite).iterdir()):
        if entry.is_dir() and _is_partial(entry.name):
            record = _read(entry)
            if record is not None:
                records[entry.name] = record
    return records


def _is_partial(name: str) -> bool:
    return bool(_REPORT_NAME.fullmatch(name)) and name not in get_args(Mode)


def report_record(folder: Path | None, suite: str, report: str) -> dict[str, Any] | None:
    """The report.json of `suite` named `report` (a shown mode or a partial report's folder),
    or None when there is none by that name (or it is unreadable). The name pattern admits
    no path separator or leading dot, so the folder read lies inside the suite's."""
    if folder is None or not (report in SHOWN_MODES or _is_partial(report)):
        return None
    return _read(folder / suite / report)


def _read(report_folder: Path) -> dict[str, Any] | None:
    try:
        record = json.loads((report_folder / "report.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("report"), dict) else None


def figure_svg(folder: Path | None, suite: str, report: str, figure: str) -> str | None:
    """The SVG of one figure the report names; None for a name it does not list."""
    record = report_record(folder, suite, report)
    if record is None or folder is None:
        return None
    names = {f.get("name") for f in record["report"].get("figures", []) if isinstance(f, dict)}
    if figure not in names:
        return None
    try:
        return (folder / suite / report / f"{figure}.svg").read_text()
    except OSError:
        return None
