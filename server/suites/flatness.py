"""Suite 4: how flat are the solutions each optimizer reaches on the CIFAR-10 model? The
top eigenvalue (power iteration) and the trace (Hutchinson) of the training loss's Hessian.

The jobs measure it themselves (the suite never sees the weights): the cifar10 task's
`flatness_probes` option makes every evaluation report `hessian_top_eigenvalue`,
`hessian_trace` and its standard error on fixed training images (server/tasks/cifar.py).
The runs are the CIFAR suite's comparison (same split, presets, seeds and epochs) with
that option on.
"""

from __future__ import annotations

from typing import Any

from server.jobs.summary import Criteria, summarize
from server.specs import ComparisonSpec
from server.suites.base import Figure, Mode, Report, Run, Suite, Table
from server.suites.cifar import (
    BASELINES,
    OPTIMIZERS,
    by_label,
    comparison,
    curve_series,
    final_values,
    interval_text,
    outcomes,
    pair_table,
    per_epoch,
    psgd_ahead,
    tuned_values,
)
from server.tasks.cifar import FLATNESS_IMAGES

TOP, TRACE = "hessian_top_eigenvalue", "hessian_trace"
#: power iterations and Hutchinson probes per measurement, and the optimizers, per mode
_PROBES: dict[str, int] = {"smoke": 2, "quick": 5, "full": 30}
_OPTIMIZERS: dict[str, tuple[str, ...]] = {
    "smoke": ("psgd-kron", "sgd"),
    "quick": ("psgd-kron", *BASELINES),
    "full": OPTIMIZERS,
}


def plan(mode: Mode) -> list[tuple[str, ComparisonSpec]]:
    model = "ResNet-18" if mode == "full" else "small CNN"
    spec = comparison(mode, _OPTIMIZERS[mode], {"flatness_probes": _PROBES[mode]})
    return [(f"CIFAR-10 Hessian at the solutions ({model})", spec)]


def analyse(runs: list[Run], mode: Mode) -> Report:
    groups = by_label(runs)
    top = summarize(outcomes(runs), Criteria(metric=TOP, lower_is_better=True))
    trace = summarize(outcomes(runs), Criteria(metric=TRACE, lower_is_better=True))
    rows = []
    for label, group in groups.items():
        rows.append(
            [
                label,
                tuned_values(group[0]),
                str(len(final_values(group, TOP))),
                interval_text(final_values(group, TOP), digits=3),
                interval_text(final_values(group, TRACE), digits=1),
                interval_text(final_values(group, "train_loss"), digits=3),
                interval_text(final_values(group, "test_accuracy"), scale=100),
                interval_text([s for run in group if (s := seconds_per_evaluation(run))]),
            ]
        )
    table = Table(
        title="At the end of training (mean [95 % t interval] over seeds)",
        columns=[
            "optimizer",
            "hyperparameters (preset)",
            "runs measured",
            "top Hessian eigenvalue",
            "Hessian trace",
            "train loss",
            "test accuracy %",
            "s per evaluation",
        ],
        rows=rows,
    )
    figures = [
        Figure(
            name=name,
            title=f"{title} per epoch (mean, 95 % band)",
            x_label="epoch",
            y_label=title,
            series=[curve_series(label, per_epoch(g, metric)) for label, g in groups.items()],
        )
        for name, title, metric in (
            ("top_eigenvalue", "Top Hessian eigenvalue", TOP),
            ("trace", "Hessian trace", TRACE),
        )
    ]
    return Report(
        verdict=_verdict(top, trace, mode),
        finding=_finding(top, trace, mode, runs),
        tables=[
            table,
            pair_table(top, "final top Hessian eigenvalue"),
            pair_table(trace, "final Hessian trace"),
        ],
        figures=figures,
        notes=_notes(mode, runs),
    )


def seconds_per_evaluation(run: Run) -> float | None:
    """What one evaluation took in this run: scoring the splits and measuring the Hessian
    (the measurement is charged to the evaluations)."""
    evaluations = (run.summary.get("overhead") or {}).get("evaluations") or {}
    count, seconds = evaluations.get("count"), evaluations.get("seconds")
    return seconds / count if count and isinstance(seconds, (int, float)) else None


def _flatter(top: dict[str, Any], trace: dict[str, Any]) -> dict[str, bool]:
    """Per PSGD family: lower top eigenvalue and lower trace than every baseline, beyond
    the noise."""
    by_top, by_trace = psgd_ahead(top, False), psgd_ahead(trace, False)
    return {family: by_top[family] and by_trace.get(family, False) for family in by_top}


def _verdict(top: dict[str, Any], trace: dict[str, Any], mode: Mode) -> Any:
    if mode != "full":
        return "not yet run at full scale"
    flatter = _flatter(top, trace)
    return "reproduced" if flatter and all(flatter.values()) else "not reproduced"


def _finding(top: dict[str, Any], trace: dict[str, Any], mode: Mode, runs: list[Run]) -> str:
    def means(summary: dict[str, Any], digits: int) -> str:
        parts = [
            f"{o['label']} {o['final']['mean']:.{digits}f}"
            for o in summary["optimizers"]
            if o["final"]
        ]
        return ", ".join(parts) or "none measured"

    flatter = _flatter(top, trace)
    which = [family for family, yes in flatter.items() if yes]
    verdict = (
        f"flatter than both baselines on both measures, beyond the noise: {', '.join(which)}"
        if which
        else "no PSGD family is flatter than both baselines on both measures beyond the noise"
    )
    epochs = max((run.spec.get("epochs") or 0 for run in runs), default=0)
    seeds = len({run.seed for run in runs})
    return (
        f"After {epochs} epoch(s), over {seeds} seed(s): mean top Hessian eigenvalue "
        f"{means(top, 3)}; mean trace {means(trace, 1)}; {verdict}."
    )


def _notes(mode: Mode, runs: list[Run]) -> list[str]:
    probes = next(
        ((run.spec.get("task") or {}).get("flatness_probes") for run in runs), _PROBES[mode]
    )
    notes = [
        f"Each measurement: {probes} power iterations and {probes} Hutchinson ±1 probes "
        f"({2 * probes} Hessian-vector products by double backward) of the training loss on "
        f"{FLATNESS_IMAGES} fixed class-balanced training images, model in eval mode "
        "(BatchNorm's running statistics), no augmentation; probe vectors from a fixed "
        "seed, so every run is measured with the same vectors. The cost is part of each "
        "evaluation's time.",
        "Power iteration finds the eigenvalue of largest magnitude; at a point that is not "
        "a minimum it may be a negative one. Hutchinson's trace has a standard error "
        "(hessian_trace_stderr in each evaluation); the interval above is over seeds.",
        "Sharpness is not invariant to reparametrisation: with BatchNorm, a layer's scale "
        "is free and weight decay shrinks it, which raises its curvature. The optimizers' "
        "weight decays differ (their presets), so part of a difference may be that.",
        "Verdict rule (full mode): reproduced when every PSGD family has a lower top "
        "eigenvalue and a lower trace than both SGD and AdamW, beyond the noise.",
    ]
    if mode != "full":
        notes.append(
            "After two epochs on 4,000 images the runs are far from minima; full mode "
            "(ResNet-18, 30 epochs, all five optimizers, 30 probes) measures at the end of "
            "training."
        )
    return notes


SUITE = Suite(
    name="flatness",
    title="Flatness of the solutions on CIFAR-10",
    claim="PSGD converges to flatter minima than SGD and AdamW: a smaller top Hessian "
    "eigenvalue and trace of the training loss at the solution.",
    description="The top eigenvalue (power iteration) and trace (Hutchinson) of the "
    "training loss's Hessian at the end of each epoch, measured inside the jobs on fixed "
    "training images, for the CIFAR suite's optimizers and presets over several seeds.",
    plan=plan,
    analysed_events=frozenset({"eval"}),
    analyse=analyse,
)
