"""The suites' committed reports, read back for the API and the Benchmarks tab.

`benchmarks/suite.py` writes `<folder>/<suite>/<mode>/report.json` plus one SVG per figure;
here they are only read. File names come from the suite registry and the report's own
figure list, never from a client, so a request cannot reach another file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from server.suites.base import Mode

#: the modes whose reports are committed and shown (smoke reports prove the path only)
SHOWN_MODES: tuple[Mode, ...] = ("quick", "full")
_CHECKOUT_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results"


def results_folder(configured: Path | None) -> Path | None:
    """The configured folder, else the source checkout's benchmarks/results, else None."""
    if configured is not None:
        return configured
    return _CHECKOUT_RESULTS if _CHECKOUT_RESULTS.is_dir() else None


def report_record(folder: Path | None, suite: str, mode: Mode) -> dict[str, Any] | None:
    """The report.json of `suite` in `mode`, or None when that was never run (or unreadable)."""
    if folder is None:
        return None
    try:
        record = json.loads((folder / suite / mode / "report.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("report"), dict) else None


def figure_svg(folder: Path | None, suite: str, mode: Mode, figure: str) -> str | None:
    """The SVG of one figure the report names; None for a name it does not list."""
    record = report_record(folder, suite, mode)
    if record is None or folder is None:
        return None
    names = {f.get("name") for f in record["report"].get("figures", []) if isinstance(f, dict)}
    if figure not in names:
        return None
    try:
        return (folder / suite / mode / f"{figure}.svg").read_text()
    except OSError:
        return None
