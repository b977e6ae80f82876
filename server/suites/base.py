"""A benchmark suite: the jobs that settle one claim of the seed paper, and how to read them.

A suite is data plus two pure functions, so every entry point runs the same thing: the
command (`benchmarks/suite.py`) submits `plan(mode)` to a job service and hands the ended
jobs to `analyse`; the API and the Benchmarks tab submit the same `plan("quick")` as
comparisons a user watches live. A suite whose evidence is not jobs (step cost) has no
plan and a `measure` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from server.specs import ComparisonSpec

#: smoke: the quick plan cut to seconds (CI checks the whole path with it; its numbers
#: settle nothing); quick: minutes on a CPU; full: what the claim needs, for a GPU machine
Mode = Literal["smoke", "quick", "full"]
MODES: tuple[Mode, ...] = ("smoke", "quick", "full")
Verdict = Literal["reproduced", "not reproduced", "not yet run at full scale"]
VERDICTS: tuple[Verdict, ...] = ("reproduced", "not reproduced", "not yet run at full scale")


@dataclass(frozen=True)
class Run:
    """One ended job of a suite: which comparison and optimizer entry it was, its seed and
    final status, the stored spec and every event it emitted (metrics, eval, spectrum,
    status: the dicts of `server.events`), in order."""

    comparison: str
    label: str
    seed: int
    status: str
    spec: dict[str, Any]
    events: list[dict[str, Any]]

    @property
    def summary(self) -> dict[str, Any]:
        """The runner's end-of-job summary (solved step, final eval, work...); {} if none."""
        for event in reversed(self.events):
            if event.get("type") == "status":
                return event.get("summary") or {}
        return {}

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == kind]


@dataclass(frozen=True)
class Series:
    """One line of a figure; `low`/`high` draw a band (an interval) around it."""

    name: str
    x: list[float]
    y: list[float]
    low: list[float] | None = None
    high: list[float] | None = None


@dataclass(frozen=True)
class Figure:
    """A plot of a report; `name` is its file's stem (`<name>.svg`)."""

    name: str
    title: str
    x_label: str
    y_label: str
    series: list[Series]
    log_x: bool = False
    log_y: bool = False


@dataclass(frozen=True)
class Table:
    title: str
    columns: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Report:
    """What a suite found: the verdict on its claim, one paragraph with the numbers behind
    it, then tables, figures and notes (caveats, what full mode adds)."""

    verdict: Verdict
    finding: str
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


@dataclass(frozen=True)
class Suite:
    """`plan(mode)` names the comparisons (each a title and its spec); `analyse(runs, mode)`
    reads their ended jobs. A suite without jobs gives `measure(mode)` instead.

    `analysed_events` names the event types `analyse` reads besides the status events: a
    report keeps its runs with those only, so later code can analyse them again or pool them
    with other runs (per-step metrics and trajectories are most of a run's volume).
    `analysed_fields` narrows an event type to the fields `analyse` reads (a spectrum's
    eigenvalue lists are most of a fitting run's kept volume); a type not named keeps all."""

    name: str
    title: str
    claim: str
    description: str
    plan: Callable[[Mode], list[tuple[str, ComparisonSpec]]] | None = None
    analyse: Callable[[list[Run], Mode], Report] | None = None
    measure: Callable[[Mode], Report] | None = None
    analysed_events: frozenset[str] = frozenset()
    analysed_fields: Mapping[str, frozenset[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.plan is None) != (self.analyse is None) or (self.plan is None) == (
            self.measure is None
        ):
            raise ValueError(f"suite {self.name}: give plan and analyse, or measure")

    @property
    def runs_jobs(self) -> bool:
        return self.plan is not None
