"""Pool the runs kept by several suite reports into one set of runs (`suite.py --from`).

Reports are trimmed differently (other seeds, other entries, another machine), so a job is
known by its comparison, its optimizer settings and its seed, never by its label: a label
follows the entry's position in the trimmed plan, and two reports can give one label to
different entries.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from benchmarks.suite_report import read_runs
from server.jobs.summary import OUTCOMES
from server.specs import ComparisonSpec, expand
from server.suites.base import Mode, Run


def pool_runs(suite: str, folders: list[Path]) -> tuple[Mode, list[Run], str, list[dict[str, Any]]]:
    """The runs kept in `folders`, pooled: their mode, the runs, how they cut the mode's plan
    and where each came from (a pooled source's own sources in its place). A job kept more
    than once counts once, by the one copy that ran to its end (see `_one_run_per_job`).
    ValueError when they are of another suite or mode, a job cannot be counted once, or an
    entry's runs differ in anything but the seed (a cap, a setting): pooling those would
    compare unlike runs."""
    headers, kept_from, sources = [], [], []
    for folder in folders:
        header, kept = read_runs(folder)
        if header["suite"] != suite:
            raise ValueError(f"{folder} keeps runs of {header['suite']!r}, not {suite!r}")
        headers.append(header)
        kept_from += [(folder.name, run) for run in kept]
        record = _record_at(folder)
        sources += record.get("sources") or [_source(folder.name, record)]
    modes = {header["mode"] for header in headers}
    if len(modes) > 1:
        raise ValueError(f"the reports are of different modes ({', '.join(sorted(modes))})")
    _check_same_settings([run for _, run in kept_from])
    runs, replaced = _one_run_per_job(_relabelled(kept_from))
    if len(folders) == 1:
        trimmed = headers[0]["trimmed"]
    else:
        cuts = [f"{f.name} ({_cut(h['trimmed'])})" for f, h in zip(folders, headers, strict=True)]
        trimmed = f"Runs pooled from {len(folders)} reports: {'; '.join(cuts)}."
    if replaced:
        trimmed += f" Runs kept more than once and cut short: {'; '.join(replaced)}."
    return modes.pop(), runs, trimmed, sources


def is_whole_plan(plan: list[tuple[str, ComparisonSpec]], runs: list[Run]) -> bool:
    """Whether `runs` are exactly the plan's jobs, each once and run to its end: a mode's
    plan run in parts (sessions, machines) and pooled is then the mode's result. Where a job
    ran (its device) is not part of the experiment; everything else in its spec is."""
    planned = Counter(
        (title, _job_key(job.spec.model_dump(mode="json"))) for title, spec in plan
        for job in expand(spec)
    )  # fmt: skip
    ended = Counter((run.comparison, _job_key(run.spec)) for run in runs if run.status in OUTCOMES)
    return ended.total() == len(runs) and ended == planned


def _job_key(spec: dict[str, Any]) -> str:
    return json.dumps({k: v for k, v in spec.items() if k != "device"}, sort_keys=True)


def _entry(run: Run) -> str:
    """The optimizer entry a run belongs to, the same in every report of its suite."""
    optimizer = run.spec.get("optimizer")
    return run.label if optimizer is None else json.dumps(optimizer, sort_keys=True)


def _check_same_settings(runs: list[Run]) -> None:
    settings: dict[tuple[str, str], dict[str, Any]] = {}
    for run in runs:
        spec = {key: value for key, value in run.spec.items() if key != "seed"}
        first = settings.setdefault((run.comparison, _entry(run)), spec)
        if spec != first:
            differ = sorted(k for k in first.keys() | spec.keys() if first.get(k) != spec.get(k))
            raise ValueError(
                f"{run.label} in {run.comparison!r}: its runs differ in {', '.join(differ)}; "
                "pool only runs of the same settings"
            )


def _relabelled(kept_from: list[tuple[str, Run]]) -> list[tuple[str, Run]]:
    """One label per entry of a comparison across the reports: the label it had where it
    was first kept, unless an earlier entry holds that label; then the name's next free
    "#k", as a plan holding both entries would have named it."""
    labels: dict[tuple[str, str], str] = {}
    taken: dict[str, set[str]] = defaultdict(set)
    relabelled = []
    for origin, run in kept_from:
        key = (run.comparison, _entry(run))
        if key not in labels:
            label, name, repeat = run.label, run.label.partition("#")[0], 1
            while label in taken[run.comparison]:
                repeat += 1
                label = f"{name}#{repeat}"
            labels[key] = label
            taken[run.comparison].add(label)
        relabelled.append((origin, dataclasses.replace(run, label=labels[key])))
    return relabelled


def _one_run_per_job(kept_from: list[tuple[str, Run]]) -> tuple[list[Run], list[str]]:
    """One run per (comparison, entry, seed), in the order first kept, and a phrase per
    group of jobs kept more than once. Such a job is counted by its one copy that ran to its
    end (succeeded or diverged), in place of copies that were cut short: a re-run of a job a
    deadline cancelled. Copies all cut short leave a hole, the last copy standing for it
    (left out of the counts like any cut run: no result is chosen). Two copies that both ran
    to their end are an error: choosing between them would choose a result."""
    copies: dict[tuple[str, str, int], list[tuple[str, Run]]] = defaultdict(list)
    for origin, run in kept_from:
        copies[(run.comparison, run.label, run.seed)].append((origin, run))
    runs, said = [], defaultdict(list)
    for (comparison, label, seed), kept in copies.items():
        if len(kept) == 1:
            runs.append(kept[0][1])
            continue
        ended = [(origin, run) for origin, run in kept if run.status in OUTCOMES]
        if len(ended) > 1:
            where = ", ".join(f"{origin} ({run.status})" for origin, run in kept)
            times = "twice" if len(kept) == 2 else f"{len(kept)} times"
            raise ValueError(
                f"{label} in {comparison!r}, seed {seed}, is kept {times}: in {where}; it ran "
                "to its end more than once, so counting one would choose a result"
            )
        cut = ", ".join(f"{c.status} in {o}" for o, c in kept if c.status not in OUTCOMES)
        if ended:
            origin, run = ended[0]
            outcome = f"re-run in {origin}"
        else:
            run, outcome = kept[-1][1], "in every copy: left out"
        runs.append(run)
        said[(comparison, label, cut, outcome)].append(seed)
    return runs, [
        f"{label} in {comparison!r}, seed{'s' * (len(seeds) > 1)} "
        f"{', '.join(map(str, seeds))} ({cut}; {outcome})"
        for (comparison, label, cut, outcome), seeds in said.items()
    ]


def _cut(trimmed: str) -> str:
    """ "Trimmed plan: entries 0 of each; seeds 5–7." -> "entries 0 of each; seeds 5–7"."""
    return trimmed.removeprefix("Trimmed plan: ").removesuffix(".") or "the whole plan"


def _record_at(folder: Path) -> dict[str, Any]:
    try:
        record = json.loads((folder / "report.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{folder}/report.json cannot be read: {e}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{folder}/report.json is not a report's record")
    return record


def _source(name: str, record: dict[str, Any]) -> dict[str, Any]:
    """Where a report's runs were made, for the report that analyses them again."""
    keys = ("date", "wall_seconds", "command", "machine")
    return {"report": name, **{key: record.get(key) for key in keys}}
